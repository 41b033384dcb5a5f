import { DataSource } from 'typeorm';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal, freePort } from './support/bitrix';

jest.setTimeout(60_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
const refreshes = (emu: Bitrix24Emulator) => emu.oauthRequests.filter((r) => r.grantType === 'refresh_token');

/** BitrixApiService against the emulator: token life cycle, shared rate limit, renames, failures. */
describe('BitrixApiService behaviour seen through the API', () => {
  let emu: Bitrix24Emulator;

  beforeEach(async () => {
    emu = new Bitrix24Emulator({ rateLimit: { rate: 20, burst: 10 } });
    await emu.start();
  });
  afterEach(() => emu.stop());

  async function connected(portal: Portal, env: Record<string, string> = {}, extraOrigins: string[] = []) {
    const t = await createTestApp({ env: { ...bitrixEnv(emu, [portal], extraOrigins), BITRIX_RATE_LIMIT: '20/10', ...env } });
    const admin = await t.login('admin');
    const { res } = await connectPortal(t, admin.token, portal);
    expect(res.status).toBe(200);
    return { t, admin };
  }

  it('refreshes once when Bitrix24 says the token expired mid-request, and retries the call', async () => {
    const portal = await emu.addPortal({ users: 4 });
    const { t, admin } = await connected(portal);
    try {
      portal.expireAccessTokens();
      const res = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
      expect(res.body.result).toHaveLength(4);
      expect(refreshes(emu)).toHaveLength(1);
      expect(portal.requests.some((r) => r.error === 'expired_token')).toBe(true);
      // The rotated pair was stored: the next call needs no refresh.
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
      expect(refreshes(emu)).toHaveLength(1);
      // The on-call view: latency per method and the error codes Bitrix24 answered.
      const metrics = (await t.http().get('/metrics').expect(200)).text;
      expect(metrics).toMatch(/bitrix_request_duration_seconds_count\{method="user.get",outcome="ok"\} [1-9]/);
      expect(metrics).toMatch(/bitrix_request_errors_total\{method="user.get",code="expired_token"\} 1/);
    } finally {
      await t.close();
    }
  });

  it('refreshes before calling when the stored expiry has passed (no refused request)', async () => {
    const portal = await emu.addPortal({ users: 2 });
    const { t, admin } = await connected(portal);
    try {
      await t.app.get(DataSource).query(`UPDATE bitrix_integrations SET access_expires_at = now() - interval '1 second'`);
      portal.expireAccessTokens();
      const before = portal.requests.length;
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
      expect(refreshes(emu)).toHaveLength(1);
      expect(portal.requests.slice(before).filter((r) => r.status === 401)).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('uses the single-use refresh token once when two instances and many requests race for it', async () => {
    const portal = await emu.addPortal({ users: 3 });
    const { t, admin } = await connected(portal);
    const t2 = await createTestApp({ env: { ...bitrixEnv(emu, [portal]), BITRIX_RATE_LIMIT: '20/10' }, databaseUrl: t.databaseUrl });
    try {
      portal.expireAccessTokens();
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => (i % 2 ? t : t2).http().get('/integration/bitrix/bitrix-users').set(auth(admin.token))),
      );
      expect(results.map((r) => [r.status, r.body.message])).toEqual(Array(12).fill([200, 'Ok']));
      expect(refreshes(emu)).toHaveLength(1);
      expect(emu.oauthRequests.filter((r) => r.error === 'invalid_grant')).toEqual([]);
      expect((await t.http().get('/integration/bitrix/info').set(auth(admin.token))).body.result.status).toBe('connected');
    } finally {
      await t2.close();
      await t.close();
    }
  });

  it('does not refresh on a 401 that is not an expired or invalid token (NO_AUTH_FOUND), and keeps the integration', async () => {
    const portal = await emu.addPortal({ users: 2 });
    const { t, admin } = await connected(portal);
    try {
      // SPEC §9: only expired_token/invalid_token (or the stored expiry) trigger a refresh.
      portal.faults.failNext('user.get', { status: 401, error: 'NO_AUTH_FOUND', error_description: 'Wrong authorization data' });
      const refused = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(502);
      expect(refused.body.message).toMatch(/NO_AUTH_FOUND/);
      expect(refreshes(emu)).toHaveLength(0);
      const [row] = await t.app.get(DataSource).query('SELECT status, refresh_token FROM bitrix_integrations');
      expect(row.status).toBe('connected');
      expect(row.refresh_token).not.toBeNull();
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
      const info = (await t.http().get('/integration/bitrix/info').set(auth(admin.token))).body.result;
      expect(info).toMatchObject({ status: 'connected', enabled: true });
    } finally {
      await t.close();
    }
  });

  it('keeps tokens and answers 503 when Bitrix24 refuses this server\'s client credentials', async () => {
    const portal = await emu.addPortal({ users: 2 });
    const { t, admin } = await connected(portal);
    try {
      emu.faults.failNext('refresh_token', { status: 401, error: 'invalid_client', error_description: 'Invalid client' });
      portal.expireAccessTokens();
      const res = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(503);
      expect(res.body.message).toMatch(/BITRIX_CLIENT_ID/);
      expect((await t.http().get('/integration/bitrix/info').set(auth(admin.token))).body.result.status).toBe('connected');
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
    } finally {
      await t.close();
    }
  });

  it('moves to reauth_required when the refresh token is refused, and recovers on reconnect', async () => {
    const portal = await emu.addPortal({ users: 2 });
    const { t, admin } = await connected(portal);
    try {
      portal.revokeApp();
      const res = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(409);
      expect(res.body).toEqual({ status: 'error', code: 409, result: null, message: 'Bitrix24 needs to be re-authorised: connect the portal again.' });
      const info = (await t.http().get('/integration/bitrix/info').set(auth(admin.token)).expect(200)).body.result;
      expect(info).toMatchObject({ enabled: false, status: 'reauth_required', domain: portal.origin, member_id: portal.memberId });
      expect(info.last_error).toMatch(/reconnect/i);

      portal.reinstallApp();
      const again = await connectPortal(t, admin.token, portal);
      expect(again.res.body.result).toMatchObject({ enabled: true, status: 'connected', last_error: null });
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
    } finally {
      await t.close();
    }
  });

  it('lists 5,000 employees for 20 concurrent callers without tripping the portal rate limit', async () => {
    const portal = await emu.addPortal({ users: 5000 });
    const { t, admin } = await connected(portal);
    try {
      const results = await Promise.all(Array.from({ length: 20 }, () => t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token))));
      for (const res of results) {
        expect(res.status).toBe(200);
        expect(res.body.result).toHaveLength(5000);
      }
      expect(new Set(results[0].body.result.map((u: { id: number }) => u.id)).size).toBe(5000);
      expect(portal.stats.queryLimitExceeded).toBe(0);
      // Paging went through batch: one request for the first page, then 50 pages per batch.
      expect(portal.requests.filter((r) => !r.inBatch && r.method === 'user.get').length).toBe(20);
    } finally {
      await t.close();
    }
  });

  it('shares one rate-limit bucket per portal between service instances', async () => {
    const portal = await emu.addPortal({ users: 2 });
    const { t, admin } = await connected(portal);
    const t2 = await createTestApp({ env: { ...bitrixEnv(emu, [portal]), BITRIX_RATE_LIMIT: '20/10' }, databaseUrl: t.databaseUrl });
    try {
      // Each instance alone would let 9 through at once; together they must stay under the portal's 10.
      const results = await Promise.all(Array.from({ length: 30 }, (_, i) => (i % 2 ? t : t2).http().get('/integration/bitrix/bitrix-users').set(auth(admin.token))));
      expect(results.map((r) => r.status)).toEqual(Array(30).fill(200));
      expect(portal.stats.queryLimitExceeded).toBe(0);
    } finally {
      await t2.close();
      await t.close();
    }
  });

  it('backs off and retries when Bitrix24 still answers QUERY_LIMIT_EXCEEDED', async () => {
    const portal = await emu.addPortal({ users: 2 });
    const { t, admin } = await connected(portal);
    try {
      portal.faults.failNext('user.get', { status: 503, error: 'QUERY_LIMIT_EXCEEDED', error_description: 'Too many requests' });
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
      const calls = portal.requests.filter((r) => r.method === 'user.get');
      expect(calls.map((r) => r.status)).toEqual([503, 200]);
      expect(calls[1].at.getTime() - calls[0].at.getTime()).toBeGreaterThanOrEqual(1900);
    } finally {
      await t.close();
    }
  });

  it('does not hammer a method over its operating budget (OPERATION_TIME_LIMIT)', async () => {
    const portal = await emu.addPortal({ users: 2 });
    const { t, admin } = await connected(portal);
    try {
      // A good answer first, so the last known operating_reset_at exists (and may be stale).
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
      portal.requests.length = 0;
      portal.faults.failNext('user.get', { status: 429, error: 'OPERATION_TIME_LIMIT', error_description: 'Method is blocked due to operation time limit.' });
      const res = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(502);
      expect(res.body.message).toMatch(/OPERATION_TIME_LIMIT/);
      expect(portal.requests.filter((r) => r.method === 'user.get')).toHaveLength(1);
      const again = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(502);
      expect(again.body.message).toMatch(/OPERATION_TIME_LIMIT/);
      expect(portal.requests.filter((r) => r.method === 'user.get')).toHaveLength(1);
    } finally {
      await t.close();
    }
  });

  it('follows a renamed portal to an allowed origin (POST stays POST) and stores the new domain', async () => {
    const portal = await emu.addPortal({ users: 3 });
    const port = await freePort();
    const { t, admin } = await connected(portal, {}, [`http://127.0.0.1:${port}`]);
    try {
      const oldOrigin = portal.origin;
      const moved = await portal.rename(port);
      const res = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
      expect(res.body.result).toHaveLength(3);
      const info = (await t.http().get('/integration/bitrix/info').set(auth(admin.token))).body.result;
      expect(info.domain).toBe(moved);
      expect(moved).not.toBe(oldOrigin);
      const served = portal.requests.filter((r) => r.method === 'user.get' && r.status === 200);
      expect(served.at(-1)?.httpMethod).toBe('POST');
    } finally {
      await t.close();
    }
  });

  it('refuses to follow a rename to an origin outside the allow-list and records why', async () => {
    const portal = await emu.addPortal({ users: 3 });
    const { t, admin } = await connected(portal);
    try {
      await portal.rename();
      const before = portal.requests.length;
      const res = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(502);
      expect(res.body.message).toMatch(/not an allowed portal domain/);
      expect(portal.requests.length).toBe(before);
      const info = (await t.http().get('/integration/bitrix/info').set(auth(admin.token))).body.result;
      expect(info.last_error).toMatch(/not an allowed portal domain/);
    } finally {
      await t.close();
    }
  });

  it('answers 502 with the portal and method when Bitrix24 is down, after retrying', async () => {
    const portal = await emu.addPortal({ users: 2 });
    const { t, admin } = await connected(portal);
    try {
      portal.faults.outage = true;
      const res = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(502);
      expect(res.body).toEqual({ status: 'error', code: 502, result: null, message: expect.stringContaining('user.get') });
      expect(res.body.message).toContain(portal.origin);
      portal.faults.outage = false;
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
    } finally {
      await t.close();
    }
  });
});
