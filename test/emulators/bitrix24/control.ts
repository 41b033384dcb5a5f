import type { ServerResponse } from 'node:http';
import { Args } from './args';
import { sendJson } from './http';
import type { Portal } from './portal';

/**
 * Emulator-only endpoints under `/_emulator/` for driving the standalone emulator by hand (not
 * part of Bitrix24; tests call the Portal methods directly):
 * - `POST /_emulator/click-to-call` `user_id`, `phone` [, `line_number`]: ONEXTERNALCALLSTART
 * - `POST /_emulator/event` `event`, `data[…]`: any event to the bound handlers
 * - `GET /_emulator/state`: bindings, calls, statistics, cards and CRM counts
 */
export async function handleControl(
  portal: Portal,
  path: string,
  params: Record<string, unknown>,
  res: ServerResponse,
): Promise<void> {
  const args = new Args(params);
  switch (path.replace(/\/$/, '')) {
    case '/_emulator/click-to-call': {
      const userId = args.int('user_id') ?? 1;
      const phone = args.str('phone');
      if (!phone) return sendJson(res, 400, { error: 'phone is required' });
      const lineNumber = args.str('line_number');
      return sendJson(res, 200, await portal.clickToCall({ userId, phoneNumber: phone, ...(lineNumber ? { lineNumber } : {}) }));
    }
    case '/_emulator/event': {
      const event = args.str('event');
      if (!event) return sendJson(res, 400, { error: 'event is required' });
      return sendJson(res, 200, await portal.sendEvent(event, args.obj('data') ?? {}));
    }
    case '/_emulator/state':
      return sendJson(res, 200, {
        memberId: portal.memberId,
        origin: portal.origin,
        applicationToken: portal.applicationToken,
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
