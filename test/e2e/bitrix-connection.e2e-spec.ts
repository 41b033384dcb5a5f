import { DataSource } from 'typeorm';
import { SecretBox } from '../../src/common/secret-box';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

jest.setTimeout(30_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('Bitrix24 connection: connect → info → users → settings → disconnect', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let other: Portal;
  let t: TestApp;

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: 12 });
    other = await emu.addPortal({ users: 3 });
    t = await createTestApp({ env: bitrixEnv(emu, [portal, other]) });
  });
  afterAll(async () => {
    await t.close();
    await emu.stop();
  });

  it('walks the whole flow an admin follows in the SPA, with the exact SPEC shapes', async () => {
    const admin = await t.login('admin');
    const before = await t.http().get('/integration/bitrix/info').set(auth(admin.token)).expect(200);
    expect(before.body.result).toEqual({ enabled: false, domain: null, status: 'disconnected', member_id: null, connected_at: null, last_error: null });

    const { res, authUrl } = await connectPortal(t, admin.token, portal);
    expect(`${authUrl.origin}${authUrl.pathname}`).toBe(`${portal.origin}/oauth/authorize/`);
    expect(authUrl.searchParams.get('client_id')).toBe(emu.clientId);
    expect(authUrl.searchParams.get('state')).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(res.status).toBe(200);
    const info = { enabled: true, domain: portal.origin, status: 'connected', member_id: portal.memberId, connected_at: expect.any(String), last_error: null };
    expect(res.body).toEqual({ status: 'success', code: 200, result: info, message: 'Ok' });
    expect((await t.http().get('/integration/bitrix/info').set(auth(admin.token)).expect(200)).body.result).toEqual(info);

    // Events bound with handler URLs that carry the integration's key.
    const handlers = portal.eventBindings.map((b) => [b.event, b.handler.replace(/key=[^&]+/, 'key=*')]).sort();
    expect(handlers).toEqual([
      ['ONAPPUNINSTALL', 'https://bitrix.utel.example/integration/bitrix/events?key=*'],
      ['ONEXTERNALCALLBACKSTART', 'https://bitrix.utel.example/integration/bitrix/events?key=*'],
      ['ONEXTERNALCALLSTART', 'https://bitrix.utel.example/integration/bitrix/originate?key=*'],
    ]);

    const users = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
    expect(users.body.result).toHaveLength(12);
    const first = portal.users[0];
    expect(users.body.result[0]).toEqual({ id: first.ID, name: `${first.NAME} ${first.LAST_NAME}`, email: first.EMAIL, inner_phone: first.UF_PHONE_INNER });

    const settings = await t.http().get('/integration/bitrix/settings').set(auth(admin.token)).expect(200);
    expect(settings.body.result).toEqual({
      pipeline_id: null,
      crm_create: 'none',
      crm_source: null,
      show_card: 'ringing',
      attach_records: true,
      missed_call_task: false,
      smart_redirect: false,
      default_bitrix_user_id: null,
      bindings: [],
      suggested_bindings: [],
      smart_redirect_url: expect.stringMatching(/^https:\/\/bitrix\.utel\.example\/pbx\/smart-redirect\/[A-Za-z0-9_-]{20,}$/),
    });

    const [u1, u2] = portal.users;
    const saved = await t
      .http()
      .post('/integration/bitrix/settings')
      .set(auth(admin.token))
      .send({ crm_create: 'inbound', crm_source: 'CALL', show_card: 'answered', missed_call_task: true, default_bitrix_user_id: u2.ID, bindings: [{ sip_phone: '201', bitrix_user_id: u1.ID }] })
      .expect(200);
    expect(saved.body.result).toMatchObject({
      crm_create: 'inbound',
      crm_source: 'CALL',
      show_card: 'answered',
      missed_call_task: true,
      attach_records: true,
      default_bitrix_user_id: u2.ID,
      bindings: [{ sip_phone: '201', bitrix_user_id: u1.ID }],
      smart_redirect_url: settings.body.result.smart_redirect_url,
    });
    expect((await t.http().get('/integration/bitrix/settings').set(auth(admin.token)).expect(200)).body.result).toEqual(saved.body.result);

    const gone = await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
    expect(gone.body).toEqual({
      status: 'success',
      code: 200,
      message: 'Successfully disconnected from Bitrix24',
      result: { enabled: false, domain: null, status: 'disconnected', member_id: null, connected_at: null, last_error: null },
    });
    expect(portal.eventBindings).toEqual([]);
    const [row] = await t.app.get(DataSource).query('SELECT access_token, refresh_token, application_token FROM bitrix_integrations WHERE company_id = $1', [admin.companyId]);
    expect(row).toEqual({ access_token: null, refresh_token: null, application_token: null });
    const after = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(409);
    expect(after.body).toEqual({ status: 'error', code: 409, result: null, message: 'Bitrix24 is not connected.' });
    await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(409);
  });

  it('stores no usable token in the database: everything is AES-GCM ciphertext', async () => {
    const admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, other)).res.status).toBe(200);
    const [row] = await t.app.get(DataSource).query('SELECT * FROM bitrix_integrations WHERE company_id = $1', [admin.companyId]);
    const box = t.app.get(SecretBox);
    const access = box.decrypt(row.access_token);
    const refresh = box.decrypt(row.refresh_token);
    const key = box.decrypt(row.handler_key);
    // Every row of every table, as a dump would hold it.
    const db = t.app.get(DataSource);
    const tables: { table_name: string }[] = await db.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'`);
    expect(tables.map((r) => r.table_name)).toEqual(expect.arrayContaining(['bitrix_integrations', 'bitrix_oauth_states', 'bitrix_settings']));
    const dump = JSON.stringify(await Promise.all(tables.map((r) => db.query(`SELECT * FROM "${r.table_name}"`))));
    for (const secret of [access, refresh, key]) {
      expect(secret.length).toBeGreaterThan(20);
      expect(dump).not.toContain(secret);
    }
    // And the decrypted token is the live one.
    const probe = await fetch(`${other.origin}/rest/profile`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ auth: access }) });
    expect(probe.status).toBe(200);
    await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
  });

  it('forgets the application_token when the app was reinstalled, keeps it on a plain reconnect', async () => {
    const admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, other)).res.status).toBe(200);
    const db = t.app.get(DataSource);
    const box = t.app.get(SecretBox);
    await db.query('UPDATE bitrix_integrations SET application_token = $1 WHERE company_id = $2', [box.encrypt('learned-token'), admin.companyId]);
    expect((await connectPortal(t, admin.token, other)).res.status).toBe(200);
    const [kept] = await db.query('SELECT application_token FROM bitrix_integrations WHERE company_id = $1', [admin.companyId]);
    expect(box.decrypt(kept.application_token)).toBe('learned-token');

    other.revokeApp();
    expect((await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token))).status).toBe(409);
    other.reinstallApp();
    expect((await connectPortal(t, admin.token, other)).res.status).toBe(200);
    const [reset] = await db.query('SELECT application_token, status FROM bitrix_integrations WHERE company_id = $1', [admin.companyId]);
    expect(reset).toEqual({ application_token: null, status: 'connected' });
    await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
  });

  it('remembers the Bitrix24 user who approved the connection as its owner', async () => {
    const admin = await t.login('admin');
    // A second portal administrator approves.
    other.users[1].ADMIN = true;
    try {
      expect((await connectPortal(t, admin.token, other, { userId: 2 })).res.status).toBe(200);
    } finally {
      other.users[1].ADMIN = false;
    }
    const [row] = await t.app.get(DataSource).query('SELECT owner_bitrix_user_id FROM bitrix_integrations WHERE company_id = $1', [admin.companyId]);
    expect(row.owner_bitrix_user_id).toBe(2);
    await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
  });

  it('lets a user-role token read but change nothing', async () => {
    const admin = await t.login('admin');
    const user = await t.login('user', admin.companyId);
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
    await t.http().get('/integration/bitrix/info').set(auth(user.token)).expect(200);
    await t.http().get('/integration/bitrix/settings').set(auth(user.token)).expect(200);
    await t.http().get('/integration/bitrix/bitrix-users').set(auth(user.token)).expect(200);
    const requests = emu.requestCount();
    for (const [method, path, body] of [
      ['post', '/integration/bitrix/oauth/credentials', { domain: portal.origin }],
      ['post', '/integration/bitrix/oauth', { domain: portal.origin, code: 'x' }],
      ['post', '/integration/bitrix/settings', { crm_create: 'all' }],
      ['delete', '/integration/bitrix/disconnect', undefined],
    ] as const) {
      const res = await t.http()[method](path).set(auth(user.token)).send(body);
      expect({ path, status: res.status, body: res.body }).toEqual({ path, status: 403, body: { status: 'error', code: 403, result: null, message: 'This action requires the admin role.' } });
    }
    expect(emu.requestCount()).toBe(requests);
    expect((await t.http().get('/integration/bitrix/settings').set(auth(admin.token))).body.result.crm_create).toBe('none');
    await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
  });

  it("shows another company's token nothing of this company's integration", async () => {
    const admin = await t.login('admin');
    const stranger = await t.login('admin');
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
    await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ crm_create: 'all', bindings: [{ sip_phone: '301', bitrix_user_id: portal.users[0].ID }] }).expect(200);
    const info = await t.http().get('/integration/bitrix/info').set(auth(stranger.token)).expect(200);
    expect(info.body.result).toMatchObject({ enabled: false, status: 'disconnected', domain: null, member_id: null });
    await t.http().get('/integration/bitrix/bitrix-users').set(auth(stranger.token)).expect(409);
    const theirs = (await t.http().get('/integration/bitrix/settings').set(auth(stranger.token)).expect(200)).body.result;
    expect(theirs).toMatchObject({ crm_create: 'none', bindings: [] });
    await t.http().delete('/integration/bitrix/disconnect').set(auth(stranger.token)).expect(409);
    // The portal is taken: another company cannot connect it too.
    const { res } = await connectPortal(t, stranger.token, portal);
    expect(res.status).toBe(422);
    expect(res.body.errors).toEqual({ domain: ['This Bitrix24 portal is already connected to another company.'] });
    await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
  });
});
