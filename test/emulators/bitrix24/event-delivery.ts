import qs from 'qs';
import { scalarText, toInt } from './args';
import type { Portal } from './portal';

export interface EventOptions {
  /** Whose token goes into `auth` when the binding has no `auth_type` (default: data.USER_ID, else 1). */
  userId?: number;
  /** Only the binding with this handler URL. */
  handler?: string;
  /** false: no tokens in `auth` (an action by a robot, business process or agent). */
  tokens?: boolean;
  timeoutMs?: number;
}

export interface EventDelivery {
  event: string;
  handler: string;
  /** HTTP status of the handler's answer; 0 when it could not be reached. */
  status: number;
  body: string;
  error?: string;
  at: Date;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/**
 * Posts one event the way Bitrix24's queue does: `application/x-www-form-urlencoded`, PHP
 * brackets (`data[FIELDS][ID]=7`, `auth[application_token]=…`), every value a string. No retries.
 */
export async function deliverEvent(
  portal: Portal,
  handler: string,
  event: string,
  data: Record<string, unknown>,
  bindingId: number,
  authType: number,
  options: EventOptions,
): Promise<EventDelivery> {
  const payload = {
    event,
    event_handler_id: bindingId,
    data,
    ts: portal.clock.nowSec(),
    auth: eventAuth(portal, event, data, authType, options),
  };
  const at = new Date(portal.clock.now());
  try {
    const response = await fetch(handler, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'User-Agent': 'Bitrix24 Webhook Engine' },
      body: qs.stringify(phpStrings(payload)),
      signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
    return { event, handler, status: response.status, body: await response.text(), at };
  } catch (error) {
    return { event, handler, status: 0, body: '', error: error instanceof Error ? error.message : String(error), at };
  }
}

/**
 * The `auth` block: portal identity and `application_token` always; a fresh access token of the
 * acting user for ordinary events; a full pair for ONAPPINSTALL; no tokens for ONAPPUNINSTALL.
 * No `server_endpoint`: live deliveries dropped it in November 2024 (b24-rest-docs issue #55,
 * whose ONEXTERNALCALLSTART key set this follows exactly).
 */
function eventAuth(
  portal: Portal,
  event: string,
  data: Record<string, unknown>,
  authType: number,
  options: EventOptions,
): Record<string, unknown> {
  const identity = {
    domain: portal.domain,
    client_endpoint: `${portal.origin}/rest/`,
    member_id: portal.memberId,
    application_token: portal.applicationToken,
  };
  if (event === 'ONAPPUNINSTALL' || options.tokens === false) return identity;
  const userId = authType > 0 ? authType : (options.userId ?? toInt(data.USER_ID) ?? 1);
  const grant = { memberId: portal.memberId, userId, scope: portal.scopes };
  const tokens = portal.host.tokens;
  const pair = event === 'ONAPPINSTALL' ? tokens.issuePair(grant) : undefined;
  const access = pair ? { token: pair.accessToken, expiresAt: pair.expiresAt } : tokens.issueAccess(grant);
  return {
    access_token: access.token,
    expires: Math.floor(access.expiresAt / 1000),
    expires_in: tokens.lifetimes.accessSec,
    scope: portal.scopes.join(','),
    domain: identity.domain,
    status: 'L',
    client_endpoint: identity.client_endpoint,
    member_id: identity.member_id,
    user_id: userId,
    ...(pair ? { refresh_token: pair.refreshToken } : {}),
    application_token: identity.application_token,
  };
}

/** PHP `http_build_query` semantics: scalars become strings, booleans 1/0, nulls are dropped. */
function phpStrings(value: unknown): unknown {
  if (value === null || value === undefined) return undefined;
  if (typeof value === 'boolean') return value ? '1' : '0';
  if (Array.isArray(value)) return value.map(phpStrings);
  if (typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .map(([key, item]) => [key, phpStrings(item)])
        .filter(([, item]) => item !== undefined),
    );
  }
  return scalarText(value) ?? '';
}
