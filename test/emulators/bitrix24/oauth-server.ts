import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Faults } from './faults';
import { parseRequest, readBody, sendJson, sleep } from './http';
import type { Portal } from './portal';
import type { IssuedPair, TokenStore } from './tokens';
import type { OAuthRecordedRequest } from './types';

/** What the authorization server needs from the emulator. */
export interface OAuthHost {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly tokens: TokenStore;
  readonly faults: Faults;
  readonly oauthRequests: OAuthRecordedRequest[];
  readonly oauthUrl: string;
  readonly oauthDomain: string;
  readonly portals: readonly Portal[];
  countRequest(): void;
}

class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
  ) {
    super(`${error}: ${description}`);
  }
}

/**
 * The authorization server (oauth.bitrix.info): `/oauth/token/` by GET query or POST form, plus
 * `/app/callback`, a stand-in for the app's redirect page that shows its query as JSON.
 */
export async function handleOAuth(host: OAuthHost, req: IncomingMessage, res: ServerResponse): Promise<void> {
  host.countRequest();
  const url = new URL(req.url ?? '/', 'http://oauth');
  if (host.faults.resetConnections) {
    req.socket.destroy();
    return;
  }
  if (host.faults.delayMs > 0) await sleep(host.faults.delayMs);
  const body = await readBody(req);
  if (/^\/app\/callback\/?$/.test(url.pathname)) return sendJson(res, 200, Object.fromEntries(url.searchParams));
  if (!/^\/oauth\/token\/?$/.test(url.pathname)) return sendJson(res, 404, { error: 'not_found', error_description: 'Not found' });
  const { params } = parseRequest(url.search, req.headers['content-type'], body);
  const grantType = typeof params.grant_type === 'string' ? params.grant_type : '';
  const record = (status: number, error?: string): void => {
    host.oauthRequests.push({ grantType, params, status, at: new Date(), ...(error === undefined ? {} : { error }) });
  };
  try {
    if (host.faults.outage) throw new OAuthError(500, 'server_error', 'Internal server error');
    const injected = host.faults.take(grantType);
    if (injected) throw new OAuthError(injected.status, injected.error, injected.error_description);
    const answer = tokenResponse(host, exchange(host, grantType, params));
    sendJson(res, 200, answer);
    record(200);
  } catch (error) {
    const failure = error instanceof OAuthError ? error : new OAuthError(500, 'server_error', 'Internal server error');
    sendJson(res, failure.status, { error: failure.error, error_description: failure.description });
    record(failure.status, failure.error);
  }
}

function exchange(host: OAuthHost, grantType: string, params: Record<string, unknown>): IssuedPair {
  const str = (name: string): string => (typeof params[name] === 'string' ? (params[name]) : '');
  if (grantType !== 'authorization_code' && grantType !== 'refresh_token') {
    throw new OAuthError(400, 'invalid_request', 'Invalid or missing grant_type');
  }
  if (str('client_id') !== host.clientId || str('client_secret') !== host.clientSecret) {
    throw new OAuthError(401, 'invalid_client', 'Invalid client credentials');
  }
  if (grantType === 'authorization_code') {
    if (!str('code')) throw new OAuthError(400, 'invalid_request', 'The code parameter is required');
    const grant = host.tokens.redeemCode(str('code'));
    if (grant === 'expired') throw new OAuthError(400, 'expired_token', 'The authorization token provided has expired.');
    if (grant === 'invalid') throw new OAuthError(400, 'invalid_grant', 'Invalid authorization code');
    return host.tokens.issuePair(grant);
  }
  if (!str('refresh_token')) throw new OAuthError(400, 'invalid_request', 'The refresh_token parameter is required');
  const pair = host.tokens.rotate(str('refresh_token'));
  if (!pair) throw new OAuthError(400, 'invalid_grant', 'Invalid refresh token');
  return pair;
}

/** The §1.4 token response: `domain` is the OAuth server, `client_endpoint` the portal. */
function tokenResponse(host: OAuthHost, issued: IssuedPair): Record<string, unknown> {
  const portal = host.portals.find((candidate) => candidate.memberId === issued.grant.memberId);
  if (!portal) throw new OAuthError(400, 'invalid_grant', 'Unknown portal');
  return {
    access_token: issued.accessToken,
    expires: Math.floor(issued.expiresAt / 1000),
    expires_in: host.tokens.lifetimes.accessSec,
    scope: issued.grant.scope.join(','),
    domain: host.oauthDomain,
    server_endpoint: `${host.oauthUrl}/rest/`,
    status: 'L',
    client_endpoint: `${portal.origin}/rest/`,
    member_id: portal.memberId,
    user_id: issued.grant.userId,
    refresh_token: issued.refreshToken,
  };
}
