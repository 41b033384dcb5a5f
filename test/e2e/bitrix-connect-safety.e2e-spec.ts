import { Client } from 'pg';
import { DataSource } from 'typeorm';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
/** connect's per-company advisory lock (IntegrationService). */
const ADVISORY_CONNECT = 4_242_001;

/** What a connect may and may not change about a company's current connection. */
describe('Bitrix24 connect and disconnect leave the current connection intact', () => {
  let emu: Bitrix24Emulator;
  let a: Portal;
  let b: Portal;
  let c: Portal;
  let t: TestApp;
  const row = async (companyId: number) => (await t.app.get(DataSource).query('SELECT * FROM bitrix_integrations WHERE company_id = $1', [companyId]))[0] as Record<string, unknown> | undefined;

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    [a, b, c] = await Promise.all([emu.addPortal({ users: 3 }), emu.addPortal({ users: 3 }), emu.addPortal({ users: 3 })]);
    t = await createTestApp({ env: bitrixEnv(emu, [a, b, c]) });
  });
  afterAll(async () => {
    await t.close();
    await emu.stop();
  });

  it("refuses a portal another company owns without unbinding or changing the caller's current one", async () => {
    const mine = await t.login('admin');
    const theirs = await t.login('admin');
    expect((await connectPortal(t, mine.token, a)).res.status).toBe(200);
    expect((await connectPortal(t, theirs.token, b)).res.status).toBe(200);
    const bindingsA = a.eventBindings.map((x) => ({ ...x }));
    const bindingsB = b.eventBindings.map((x) => ({ ...x }));
    const before = await row(mine.companyId);

    const { res } = await connectPortal(t, mine.token, b);
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual({ domain: ['This Bitrix24 portal is already connected to another company.'] });
    expect(a.eventBindings).toEqual(bindingsA);
    expect(b.eventBindings).toEqual(bindingsB);
    expect(await row(mine.companyId)).toEqual(before);
    expect((await t.http().get('/integration/bitrix/info').set(auth(mine.token))).body.result).toMatchObject({ status: 'connected', domain: a.origin });
    await t.http().get('/integration/bitrix/bitrix-users').set(auth(mine.token)).expect(200);

    await t.http().delete('/integration/bitrix/disconnect').set(auth(mine.token)).expect(200);
    await t.http().delete('/integration/bitrix/disconnect').set(auth(theirs.token)).expect(200);
  });

  it('switches a company to another portal: the new one is stored and bound, then the old one unbound', async () => {
    const admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, a)).res.status).toBe(200);
    expect(a.eventBindings).toHaveLength(3);
    expect((await connectPortal(t, admin.token, c)).res.status).toBe(200);
    expect(a.eventBindings).toEqual([]);
    expect(c.eventBindings).toHaveLength(3);
    expect(await row(admin.companyId)).toMatchObject({ status: 'connected', member_id: c.memberId, domain: c.origin });
    await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
  });

  it('refuses a connection approved by a portal user who is not an admin, storing and binding nothing', async () => {
    const fresh = await t.login('admin');
    const plain = a.users.find((u) => !u.ADMIN)!;
    const requests = a.requests.length;
    const { res } = await connectPortal(t, fresh.token, a, { userId: plain.ID });
    expect(res.status).toBe(422);
    expect(res.body).toEqual({
      status: 'error',
      code: 422,
      result: null,
      message: 'The given data was invalid.',
      errors: { code: ['The Bitrix24 user who approved the connection is not an administrator of the portal: a portal administrator must approve it.'] },
    });
    expect(await row(fresh.companyId)).toBeUndefined();
    expect(a.eventBindings).toEqual([]);
    // Beyond the user's approval page, only `profile` was asked.
    expect(a.requests.slice(requests).map((r) => r.method)).toEqual(['oauth/authorize', 'profile']);

    // A company already connected keeps its connection when a non-admin approves a reconnect.
    const connected = await t.login('admin');
    expect((await connectPortal(t, connected.token, c)).res.status).toBe(200);
    const before = await row(connected.companyId);
    const bindings = c.eventBindings.map((x) => ({ ...x }));
    expect((await connectPortal(t, connected.token, a, { userId: plain.ID })).res.status).toBe(422);
    expect((await connectPortal(t, connected.token, c, { userId: c.users.find((u) => !u.ADMIN)!.ID })).res.status).toBe(422);
    expect(await row(connected.companyId)).toEqual(before);
    expect(c.eventBindings).toEqual(bindings);
    await t.http().delete('/integration/bitrix/disconnect').set(auth(connected.token)).expect(200);
  });

  it('answers invalid_client on the code exchange with the same 503 as on a refresh', async () => {
    const wrong = await createTestApp({ env: { ...bitrixEnv(emu, [a]), BITRIX_CLIENT_SECRET: 'not-the-secret' }, databaseUrl: t.databaseUrl });
    try {
      const admin = await wrong.login('admin');
      const { res } = await connectPortal(wrong, admin.token, a);
      expect(res.body).toEqual({
        status: 'error',
        code: 503,
        result: null,
        message: "Bitrix24 refused this server's application credentials (invalid_client): check BITRIX_CLIENT_ID and BITRIX_CLIENT_SECRET.",
      });
      expect(await row(admin.companyId)).toBeUndefined();
    } finally {
      await wrong.close();
    }
  });

  it("serialises disconnect with connect's lock", async () => {
    const admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, a)).res.status).toBe(200);
    const holder = new Client({ connectionString: t.databaseUrl });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock($1, $2)', [ADVISORY_CONNECT, admin.companyId]);
      let done = false;
      const pending = t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).then((r) => ((done = true), r));
      await new Promise((resolve) => setTimeout(resolve, 700));
      expect(done).toBe(false);
      expect((await row(admin.companyId))?.status).toBe('connected');
      await holder.query('COMMIT');
      expect((await pending).status).toBe(200);
      expect((await row(admin.companyId))?.status).toBe('disconnected');
    } finally {
      await holder.end();
    }
  });

  it('writes only the columns it changes: a refresh committed while it unbinds is not overwritten', async () => {
    const admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, a)).res.status).toBe(200);
    a.faults.delayMs = 400;
    try {
      const sent = a.stats.requests;
      const pending = t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).then((r) => r);
      // Disconnect has read the row and is unbinding (its event.get reached the portal).
      while (a.stats.requests === sent) await new Promise((resolve) => setTimeout(resolve, 10));
      // What another instance commits meanwhile: a refresh (new scope) and a licence it read.
      await t.app.get(DataSource).query(`UPDATE bitrix_integrations SET scope = 'crm,telephony,user_basic,refreshed', license_family = 'ent', owner_bitrix_user_id = 3 WHERE company_id = $1`, [admin.companyId]);
      expect((await pending).status).toBe(200);
    } finally {
      a.faults.delayMs = 0;
    }
    expect(await row(admin.companyId)).toMatchObject({
      status: 'disconnected',
      access_token: null,
      refresh_token: null,
      scope: 'crm,telephony,user_basic,refreshed',
      license_family: 'ent',
      owner_bitrix_user_id: 3,
    });
    expect(a.eventBindings).toEqual([]);
  });
});
