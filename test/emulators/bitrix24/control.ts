import type { ServerResponse } from 'node:http';
import { Args } from './args';
import { sendJson } from './http';
import type { Portal } from './portal';

/**
 * Emulator-only endpoints under `/_emulator/` for driving the standalone emulator by hand (not
 * part of Bitrix24; tests call the Portal methods directly). Parameters come in the query or a
 * form/JSON body; every endpoint answers JSON, a bad parameter 400 `{error}`.
 * - `click-to-call` `user_id`, `phone` [, `line_number`]: ONEXTERNALCALLSTART
 * - `event` `event`, `data[…]`: any event to the bound handlers
 * - `expire-tokens`: every access token of the portal answers `expired_token` from now on
 * - `rate-limit` `rate`, `burst`: the leaky bucket (drain per second, size)
 * - `latency` `ms`: delay before every answer (0 = none)
 * - `fail` `method` (`*` = any), `error` [, `error_description`, `status` (400), `times` (1)]
 * - `outage` `on` (1/0): every request answers 500 INTERNAL_SERVER_ERROR
 * - `reset-faults`: clears latency, outage and queued failures
 * - `employees` `count`: the number of active employees (new ones join, the last ones are dismissed)
 * - `operating` [`method`, `cost_sec`] [`limit_sec`] [`reset` 1]: the per-method operating budget
 * - `advance-time` `seconds`: emulator time moves on (tokens, codes, buckets, the 30-minute rule)
 * - `state` (GET): bindings, calls, statistics, cards, CRM counts, limits and stats
 */
export async function handleControl(
  portal: Portal,
  path: string,
  params: Record<string, unknown>,
  res: ServerResponse,
): Promise<void> {
  const args = new Args(params);
  const bad = (message: string): void => sendJson(res, 400, { error: message });
  const number = (name: string): number | undefined => {
    const text = args.str(name);
    const value = text === undefined || text.trim() === '' ? Number.NaN : Number(text);
    return Number.isFinite(value) ? value : undefined;
  };
  switch (path.replace(/\/$/, '')) {
    case '/_emulator/click-to-call': {
      const userId = args.int('user_id') ?? 1;
      const phone = args.str('phone');
      if (!phone) return bad('phone is required');
      if (!portal.users.some((user) => user.ID === userId && user.ACTIVE)) return bad(`user ${userId} is not an active employee`);
      const lineNumber = args.str('line_number');
      return sendJson(res, 200, await portal.clickToCall({ userId, phoneNumber: phone, ...(lineNumber ? { lineNumber } : {}) }));
    }
    case '/_emulator/event': {
      const event = args.str('event');
      if (!event) return bad('event is required');
      return sendJson(res, 200, await portal.sendEvent(event, args.obj('data') ?? {}));
    }
    case '/_emulator/expire-tokens':
      portal.expireAccessTokens();
      return sendJson(res, 200, { expired: true });
    case '/_emulator/rate-limit': {
      const rate = number('rate');
      const burst = number('burst');
      if (rate === undefined || rate <= 0 || burst === undefined || burst < 1) {
        return bad('rate (per second, > 0) and burst (>= 1) are required');
      }
      portal.limiter.limit = { rate, burst };
      return sendJson(res, 200, { rateLimit: portal.limiter.limit });
    }
    case '/_emulator/latency': {
      const ms = number('ms');
      if (ms === undefined || ms < 0) return bad('ms (>= 0) is required');
      portal.faults.delayMs = ms;
      return sendJson(res, 200, { delayMs: ms });
    }
    case '/_emulator/fail': {
      const method = args.str('method');
      const error = args.str('error');
      const status = number('status') ?? 400;
      const times = number('times') ?? 1;
      if (!method || !error) return bad('method and error are required');
      if (!Number.isInteger(status) || status < 400 || status > 599) return bad('status must be an HTTP error status');
      if (!Number.isInteger(times) || times < 1) return bad('times must be a positive integer');
      portal.faults.failNext(method, { status, error, error_description: args.str('error_description') ?? '' }, times);
      return sendJson(res, 200, { method: method.toLowerCase(), status, error, times });
    }
    case '/_emulator/outage': {
      if (!args.has('on')) return bad('on (1 or 0) is required');
      portal.faults.outage = args.flag('on', false);
      return sendJson(res, 200, { outage: portal.faults.outage });
    }
    case '/_emulator/reset-faults':
      portal.faults.reset();
      return sendJson(res, 200, { reset: true });
    case '/_emulator/employees': {
      const count = number('count');
      if (count === undefined || !Number.isInteger(count) || count < 1) return bad('count (a positive integer) is required');
      portal.setEmployeeCount(count);
      return sendJson(res, 200, { active: portal.users.filter((user) => user.ACTIVE).length, total: portal.users.length });
    }
    case '/_emulator/operating': {
      const method = args.str('method');
      const cost = number('cost_sec');
      const limit = number('limit_sec');
      if ((method === undefined) !== (cost === undefined) || (cost !== undefined && cost < 0)) {
        return bad('method and cost_sec (>= 0) go together');
      }
      if (limit !== undefined && limit <= 0) return bad('limit_sec must be > 0');
      if (method !== undefined && cost !== undefined) portal.operating.setCost(method, cost);
      if (limit !== undefined) portal.operating.limitSec = limit;
      if (args.flag('reset', false)) portal.operating.reset();
      return sendJson(res, 200, { limitSec: portal.operating.limitSec });
    }
    case '/_emulator/advance-time': {
      const seconds = number('seconds');
      if (seconds === undefined || seconds <= 0) return bad('seconds (> 0) is required');
      portal.clock.advance(seconds);
      return sendJson(res, 200, { now: new Date(portal.clock.now()).toISOString() });
    }
    case '/_emulator/state':
      return sendJson(res, 200, {
        memberId: portal.memberId,
        origin: portal.origin,
        applicationToken: portal.applicationToken,
        employees: { active: portal.users.filter((user) => user.ACTIVE).length, total: portal.users.length },
        rateLimit: portal.limiter.limit,
        operatingLimitSec: portal.operating.limitSec,
        faults: { outage: portal.faults.outage, delayMs: portal.faults.delayMs },
        eventBindings: portal.eventBindings,
        externalCalls: portal.externalCalls,
        callStatistics: portal.callStatistics,
        shownCards: portal.shownCards,
        recordings: portal.callRecordings.map(({ content, ...rest }) => ({ ...rest, size: content.length })),
        crm: {
          leads: portal.crm.leads.length,
          contacts: portal.crm.contacts.length,
          companies: portal.crm.companies.length,
          deals: portal.crm.deals.length,
          activities: portal.crm.activities.length,
        },
        tasks: portal.tasks,
        stats: portal.stats,
      });
    default:
      return sendJson(res, 404, { error: 'unknown emulator endpoint' });
  }
}
