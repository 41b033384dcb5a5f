import { DataSource } from 'typeorm';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

jest.setTimeout(120_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Token refresh and Bitrix24's limits under pressure (issue 6 items 1, 7 and 8). */
describe('Bitrix24 tokens and limits under load', () => {
  let emu: Bitrix24Emulator;
  afterEach(() => emu.stop());

  it('takes the token only after the rate-limit slot: short-lived tokens and a queue of listings all succeed', async () => {
    emu = new Bitrix24Emulator({ accessTokenTtlSec: 2 });
    await emu.start();
    const portal = await emu.addPortal({ users: 3, rateLimit: { rate: 2, burst: 10 } });
    const t = await createTestApp({ env: { ...bitrixEnv(emu, [portal]), BITRIX_RATE_LIMIT: '2/10' } });
    try {
      const admin = await t.login('admin');
      expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
      for (let wave = 0; wave < 3; wave++) {
        // 20 listings wait for slots in a bucket that drains 2 per second: tokens expire while they queue.
        const results = await Promise.all(Array.from({ length: 20 }, () => t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token))));
        expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
      }
      expect(emu.oauthRequests.filter((r) => r.error === 'invalid_grant')).toEqual([]);
      expect(portal.stats.queryLimitExceeded).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('keeps serving other requests while 30 portals refresh at once against a slow OAuth server', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const portals = await Promise.all(Array.from({ length: 30 }, () => emu.addPortal({ users: 2 })));
    const t = await createTestApp({ env: bitrixEnv(emu, portals) });
    try {
      const admins = [];
      for (const portal of portals) {
        const admin = await t.login('admin');
        expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
        admins.push(admin);
      }
      // An outage is over: every access token expired together, and the OAuth server is slow.
      await t.app.get(DataSource).query(`UPDATE bitrix_integrations SET access_expires_at = now() - interval '1 second'`);
      for (const portal of portals) portal.expireAccessTokens();
      emu.faults.delayMs = 1_500;
      const finished: string[] = [];
      const listings = admins.map((a) =>
        t
          .http()
          .get('/integration/bitrix/bitrix-users')
          .set(auth(a.token))
          .then((r) => {
            finished.push('listing');
            return r;
          }),
      );
      await new Promise((r) => setTimeout(r, 300));
      // Requests answered from the service's own data are not starved of database connections.
      for (let i = 0; i < 10; i++) {
        await t.http().get('/integration/bitrix/settings').set(auth(admins[i].token)).expect(200);
        finished.push('settings');
      }
      const results = await Promise.all(listings);
      expect(results.map((r) => r.status)).toEqual(Array(30).fill(200));
      expect(finished.slice(0, 10)).toEqual(Array(10).fill('settings'));
      expect(emu.oauthRequests.filter((r) => r.grantType === 'refresh_token' && r.status === 200)).toHaveLength(30);
      expect(emu.oauthRequests.filter((r) => r.error === 'invalid_grant')).toEqual([]);
    } finally {
      emu.faults.delayMs = 0;
      await t.close();
    }
  });

  describe('OPERATION_TIME_LIMIT', () => {
    let t: TestApp;
    let t2: TestApp;
    afterEach(async () => {
      await t2.close();
      await t.close();
    });

    it('pauses the method for every instance, and the emulator enforces the budget itself', async () => {
      emu = new Bitrix24Emulator();
      await emu.start();
      // Each user.get costs 100 s of the portal's 480 s per 10 minutes: the fifth is still allowed, then the method is blocked.
      const portal = await emu.addPortal({ users: 2, operating: { costSec: { 'user.get': 100 } } });
      t = await createTestApp({ env: bitrixEnv(emu, [portal]) });
      t2 = await createTestApp({ env: bitrixEnv(emu, [portal]), databaseUrl: t.databaseUrl });
      const admin = await t.login('admin');
      expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
      const list = (app: TestApp) => app.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token));
      const sent = () => portal.requests.filter((r) => r.method === 'user.get').length;
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await list(t)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 502]);
      const refused = await list(t2).expect(502);
      expect(refused.body.message).toMatch(/OPERATION_TIME_LIMIT/);
      // The second instance did not knock: the pause lives in PostgreSQL.
      expect(sent()).toBe(6);
      const [pause] = await t.app.get(DataSource).query(`SELECT method, until > now() AS active FROM bitrix_method_pauses`);
      expect(pause).toEqual({ method: 'user.get', active: true });
      // Other methods of the portal are not paused.
      await t2.http().get('/integration/bitrix/check').set(auth(admin.token)).expect(200);
    });
  });
});
