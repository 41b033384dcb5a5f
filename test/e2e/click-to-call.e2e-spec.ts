import { DataSource } from 'typeorm';
import { PBX_DRIVER, type PbxDriver } from '../../src/pbx/drivers/pbx-driver';
import { FakeAmiServer } from '../emulators/ami/ami-server';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

jest.setTimeout(30_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function waitFor(check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await sleep(20);
  }
}

/**
 * Click-to-call end to end: the Bitrix24 emulator delivers real form-encoded events to the app's
 * real socket (its bound handler URLs re-pointed there), and the app dials a fake AMI over TCP.
 */
describe('click-to-call (originate) and the Bitrix24 events', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let other: Portal;
  let ami: FakeAmiServer;
  let t: TestApp;
  let db: DataSource;
  let admin: { token: string; companyId: number };
  let key: string;
  let base: string;

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: [{ ID: 1, ADMIN: true, UF_PHONE_INNER: '101' }, { ID: 2, UF_PHONE_INNER: '102' }, { ID: 3, UF_PHONE_INNER: '103' }] });
    other = await emu.addPortal({ users: 2 });
    ami = new FakeAmiServer({ username: 'utel', secret: 's3cret' });
    await ami.start();
    t = await createTestApp({
      env: { ...bitrixEnv(emu, [portal, other]), PBX_DRIVER: 'ami', AMI_HOST: '127.0.0.1', AMI_PORT: String(ami.port), AMI_USER: 'utel', AMI_SECRET: 's3cret', AMI_CONTEXT: 'utel-out' },
    });
    db = t.app.get(DataSource);
    admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
    await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ bindings: [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '102', bitrix_user_id: 2 }], default_bitrix_user_id: 2 }).expect(200);
    // Bitrix24 posts to the bound handler URLs (PUBLIC_URL): point them at this app's real address.
    const { port } = t.app.getHttpServer().address() as { port: number };
    base = `http://127.0.0.1:${port}`;
    for (const binding of portal.eventBindings) binding.handler = binding.handler.replace('https://bitrix.utel.example', base);
    key = new URL(portal.eventBindings[0].handler).searchParams.get('key') as string;
    await waitFor(() => t.app.get<PbxDriver>(PBX_DRIVER).unavailable === null);
  });
  afterAll(async () => {
    await t.close();
    await ami.stop();
    await emu.stop();
  });
  beforeEach(() => {
    ami.actions.length = 0;
    ami.failOriginate = null;
  });

  const originates = () => db.query<{ id: number; sip_phone: string; phone_number: string; bitrix_call_id: string | null; bitrix_user_id: number | null; source: string; status: string; error: string | null }[]>('SELECT * FROM pbx_originates ORDER BY id');
  const statistic = (callId: string) => portal.callStatistics.find((s) => s.CALL_ID === callId);
  const postOriginate = (query: string) => t.http().post(`/integration/bitrix/originate${query}`);
  /** The brief's §4.2 example delivery, with this portal's identity and extra keys Bitrix24 may add. */
  const briefBody = (overrides: Record<string, string> = {}) => {
    const fields: Record<string, string> = {
      event: 'ONEXTERNALCALLSTART', event_handler_id: '41', ts: '1767225600',
      'data[PHONE_NUMBER]': '+998901234567', 'data[PHONE_NUMBER_INTERNATIONAL]': '+998901234567', 'data[EXTENSION]': '',
      'data[USER_ID]': '1', 'data[CALL_LIST_ID]': '0', 'data[LINE_NUMBER]': 'main', 'data[IS_MOBILE]': '0',
      'data[CALL_ID]': `externalCall.${'ab'.repeat(16)}.1767225600`, 'data[CRM_ENTITY_TYPE]': 'CONTACT', 'data[CRM_ENTITY_ID]': '55',
      'data[SOMETHING_NEW]': 'x', 'auth[access_token]': 'whatever', 'auth[expires_in]': '3600', 'auth[scope]': 'telephony,crm',
      'auth[domain]': portal.domain, 'auth[status]': 'L', 'auth[client_endpoint]': `${portal.origin}/rest/`,
      'auth[member_id]': portal.memberId, 'auth[application_token]': portal.applicationToken, 'auth[new_auth_key]': 'y', brand_new_top_level: '1',
      ...overrides,
    };
    return new URLSearchParams(fields).toString();
  };

  it('dials a genuine ONEXTERNALCALLSTART once, for the bound operator and the number, with the CALL_ID and company as channel variables', async () => {
    const { callId, deliveries } = await portal.clickToCall({ userId: 2, phoneNumber: '+998 90 765 43 21' });
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0].status).toBe(200);
    const id = (JSON.parse(deliveries[0].body) as { result: { call_id: number } }).result.call_id;
    expect(ami.originates).toHaveLength(1);
    const action = ami.originates[0];
    expect(action.get('Channel')).toBe('PJSIP/102');
    expect(action.get('Exten')).toBe('+998907654321');
    expect(action.get('Context')).toBe('utel-out');
    expect(action.get('Async')).toBe('true');
    expect(action.all('Variable')).toEqual(expect.arrayContaining([`BITRIX_CALL_ID=${callId}`, `UTEL_COMPANY_ID=${admin.companyId}`, `UTEL_ORIGINATE_ID=${id}`]));
    const row = (await originates()).find((r) => r.id === id);
    expect(row).toMatchObject({ sip_phone: '102', phone_number: '+998907654321', bitrix_call_id: callId, bitrix_user_id: 2, source: 'bitrix', status: 'dialing' });
    // Bitrix24 registered the call itself: the service never registers it again.
    expect(portal.externalCalls.filter((c) => c.CALL_ID === callId)).toHaveLength(1);
    // The first genuine delivery taught the application_token (stored encrypted).
    const [stored] = await db.query<{ application_token: string }[]>('SELECT application_token FROM bitrix_integrations WHERE member_id = $1', [portal.memberId]);
    expect(stored.application_token).toMatch(/^v2\./);
    expect(stored.application_token).not.toContain(portal.applicationToken);
  });

  it('accepts the brief\'s exact form payload with unknown keys at every level', async () => {
    const res = await postOriginate(`?key=${encodeURIComponent(key)}`).type('form').send(briefBody());
    expect(res.status).toBe(200);
    expect(res.body.result.call_id).toEqual(expect.any(Number));
    expect(ami.originates).toHaveLength(1);
    expect(ami.originates[0].get('Channel')).toBe('PJSIP/101');
  });

  it.each([
    ['a wrong key', () => `?key=${encodeURIComponent(key.slice(0, -2) + 'xx')}`, {}],
    ['no key', () => '', {}],
    ['a wrong application_token', () => `?key=${encodeURIComponent(key)}`, { 'auth[application_token]': 'f'.repeat(32) }],
    ['no application_token', () => `?key=${encodeURIComponent(key)}`, { 'auth[application_token]': '' }],
    ['another portal\'s auth', () => `?key=${encodeURIComponent(key)}`, { 'auth[member_id]': 'other-member' }],
  ])('refuses a forged delivery with %s (401, nothing dialled, nothing stored)', async (_, query, overrides) => {
    const before = (await originates()).length;
    const res = await postOriginate(query()).type('form').send(briefBody(overrides));
    expect(res.status).toBe(401);
    expect(res.body).toEqual({ status: 'error', code: 401, result: null, message: 'The request could not be authenticated.' });
    expect(ami.originates).toHaveLength(0);
    expect(await originates()).toHaveLength(before);
  });

  it('refuses the documented form with no authentication, or with another portal\'s member_id for a user token', async () => {
    await postOriginate('').send({ sip_phone: '101', phone_number: '+998901234567' }).expect(401);
    const token = emu.tokens.issueAccess({ memberId: portal.memberId, userId: 1, scope: portal.scopes }).token;
    await postOriginate('').send({ sip_phone: '101', phone_number: '+998901234567', auth: { member_id: other.memberId, access_token: token } }).expect(401);
    await postOriginate('').send({ sip_phone: '101', phone_number: '+998901234567', auth: { member_id: portal.memberId, access_token: 'not-a-token' } }).expect(401);
    expect(ami.originates).toHaveLength(0);
  });

  it('422s an unbound employee and an invalid number, dialling nothing', async () => {
    const unbound = await postOriginate(`?key=${encodeURIComponent(key)}`).type('form').send(briefBody({ 'data[USER_ID]': '3' }));
    expect(unbound.status).toBe(422);
    expect(unbound.body.errors).toHaveProperty(['data.USER_ID']);
    const badNumber = await postOriginate(`?key=${encodeURIComponent(key)}`).type('form').send(briefBody({ 'data[PHONE_NUMBER]': 'abc', 'data[PHONE_NUMBER_INTERNATIONAL]': '' }));
    expect(badNumber.status).toBe(422);
    const noCallId = await postOriginate(`?key=${encodeURIComponent(key)}`).type('form').send(briefBody({ 'data[CALL_ID]': '' }));
    expect(noCallId.status).toBe(422);
    expect(ami.originates).toHaveLength(0);
  });

  it('dials the documented form with the key, as JSON and as a form; an unknown sip_phone is 422', async () => {
    const json = await postOriginate(`?key=${encodeURIComponent(key)}`).send({ sip_phone: '101', phone_number: '90 123 45 67', extra: true });
    expect(json.status).toBe(200);
    const form = await postOriginate('').type('form').send({ sip_phone: '102', phone_number: '+998901234568', key });
    expect(form.status).toBe(200);
    expect(ami.originates.map((a) => [a.get('Channel'), a.get('Exten')])).toEqual([['PJSIP/101', '+998901234567'], ['PJSIP/102', '+998901234568']]);
    const rows = (await originates()).filter((r) => [json.body.result.call_id, form.body.result.call_id].includes(r.id));
    expect(rows.map((r) => [r.source, r.bitrix_call_id, r.bitrix_user_id])).toEqual([['api', null, 1], ['api', null, 2]]);
    const unknown = await postOriginate(`?key=${encodeURIComponent(key)}`).send({ sip_phone: '999', phone_number: '+998901234567' });
    expect(unknown.status).toBe(422);
    expect(unknown.body.errors).toHaveProperty('sip_phone');
    await postOriginate(`?key=${encodeURIComponent(key)}`).send({ phone_number: '+998901234567' }).expect(422);
    expect(ami.originates).toHaveLength(2);
  });

  it('dials the documented form for a Bitrix24 user\'s token, only from that user\'s extension', async () => {
    const token = emu.tokens.issueAccess({ memberId: portal.memberId, userId: 2, scope: portal.scopes }).token;
    const body = (sip: string) => ({ sip_phone: sip, phone_number: '+998901234567', auth: { member_id: portal.memberId, access_token: token, unknown: 1 } });
    await postOriginate('').send(body('102')).expect(200);
    const requests = portal.requests.length;
    await postOriginate('').send(body('102')).expect(200); // verified from the cache: no second user.current
    expect(portal.requests.slice(requests).filter((r) => r.method === 'user.current')).toHaveLength(0);
    const foreign = await postOriginate('').send(body('101'));
    expect(foreign.status).toBe(403);
    const unboundUser = emu.tokens.issueAccess({ memberId: portal.memberId, userId: 3, scope: portal.scopes }).token;
    await postOriginate('').send({ sip_phone: '103', phone_number: '+998901234567', auth: { member_id: portal.memberId, access_token: unboundUser } }).expect(422);
    expect(ami.originates.map((a) => a.get('Channel'))).toEqual(['PJSIP/102', 'PJSIP/102']);
  });

  it('reports an OriginateResponse failure: the row fails and the Bitrix24 call is finished as busy', async () => {
    ami.failOriginate = 5;
    const { callId, deliveries } = await portal.clickToCall({ userId: 1, phoneNumber: '+998901112233' });
    expect(deliveries[0].status).toBe(200);
    await waitFor(() => statistic(callId) !== undefined);
    expect(statistic(callId)).toMatchObject({ CALL_FAILED_CODE: '486', CALL_DURATION: 0 });
    const row = (await originates()).find((r) => r.bitrix_call_id === callId);
    expect(row).toMatchObject({ status: 'failed', error: 'the operator is busy' });
  });

  it('answers 503 at once while the PBX refuses the login or is down, finishes the Bitrix24 call as failed, and dials nothing when it is back', async () => {
    const driver = t.app.get<PbxDriver>(PBX_DRIVER);
    ami.refuseLogin = true;
    ami.dropConnections();
    await waitFor(() => driver.unavailable !== null);
    const rowsBefore = (await originates()).length;
    const refused = await portal.clickToCall({ userId: 1, phoneNumber: '+998901112244' });
    expect(refused.deliveries[0].status).toBe(503);
    expect(JSON.parse(refused.deliveries[0].body)).toMatchObject({ status: 'error', code: 503 });
    await waitFor(() => statistic(refused.callId) !== undefined);
    expect(statistic(refused.callId)?.CALL_FAILED_CODE).toBe('503');

    const port = ami.port;
    await ami.stop();
    const started = Date.now();
    const down = await portal.clickToCall({ userId: 2, phoneNumber: '+998901112255' });
    expect(down.deliveries[0].status).toBe(503);
    expect(Date.now() - started).toBeLessThan(2_000);
    await waitFor(() => statistic(down.callId) !== undefined);
    expect(statistic(down.callId)?.CALL_FAILED_CODE).toBe('503');
    expect(await originates()).toHaveLength(rowsBefore);

    ami.refuseLogin = false;
    await ami.start(port);
    await waitFor(() => driver.unavailable === null, 20_000);
    await sleep(200);
    expect(ami.originates).toHaveLength(0);
    const back = await portal.clickToCall({ userId: 2, phoneNumber: '+998901112266' });
    expect(back.deliveries[0].status).toBe(200);
    expect(ami.originates).toHaveLength(1);
  });

  it('originates a website callback (ONEXTERNALCALLBACKSTART) from the default operator, registered TYPE 4', async () => {
    const [delivery] = await portal.sendEvent('ONEXTERNALCALLBACKSTART', { PHONE_NUMBER: '+998935554433', TEXT: 'Call me', VOICE: 'ruinternalfemale', CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: 0, LINE_NUMBER: '', SOMETHING_NEW: 1 });
    expect(delivery.status).toBe(200);
    const id = (JSON.parse(delivery.body) as { result: { call_id: number } }).result.call_id;
    const row = (await originates()).find((r) => r.id === id);
    expect(row).toMatchObject({ source: 'callback', sip_phone: '102', bitrix_user_id: 2, phone_number: '+998935554433', status: 'dialing' });
    const registered = portal.externalCalls.find((c) => c.CALL_ID === row?.bitrix_call_id);
    expect(registered).toMatchObject({ TYPE: 4, USER_ID: 2 });
    expect(ami.originates).toHaveLength(1);
    expect(ami.originates[0].all('Variable')).toContain(`BITRIX_CALL_ID=${row?.bitrix_call_id}`);
  });

  it('422s other events, and any event on the originate route other than ONEXTERNALCALLSTART', async () => {
    const events = await t.http().post(`/integration/bitrix/events?key=${encodeURIComponent(key)}`).type('form').send(briefBody({ event: 'ONCRMLEADADD' }));
    expect(events.status).toBe(422);
    const onOriginate = await postOriginate(`?key=${encodeURIComponent(key)}`).type('form').send(briefBody({ event: 'ONAPPUNINSTALL' }));
    expect(onOriginate.status).toBe(422);
    const [integration] = await db.query<{ status: string }[]>('SELECT status FROM bitrix_integrations WHERE member_id = $1', [portal.memberId]);
    expect(integration.status).toBe('connected');
  });

  it('refuses a forged ONAPPUNINSTALL, then disconnects on the genuine one; a replayed click-to-call is 401 afterwards', async () => {
    const forged = await t.http().post(`/integration/bitrix/events?key=${encodeURIComponent(key)}`).type('form').send({ event: 'ONAPPUNINSTALL', auth: { member_id: portal.memberId, application_token: 'forged' } });
    expect(forged.status).toBe(401);
    const [deliveries] = [await portal.uninstallApp()];
    expect(deliveries.map((d) => d.status)).toEqual([200]);
    const [row] = await db.query<Record<string, unknown>[]>('SELECT status, access_token, refresh_token, application_token FROM bitrix_integrations WHERE member_id = $1', [portal.memberId]);
    expect(row).toEqual({ status: 'disconnected', access_token: null, refresh_token: null, application_token: null });
    const info = await t.http().get('/integration/bitrix/info').set(auth(admin.token)).expect(200);
    expect(info.body.result.status).toBe('disconnected');

    const replay = await postOriginate(`?key=${encodeURIComponent(key)}`).type('form').send(briefBody());
    expect(replay.status).toBe(401);
    const replayUninstall = await t.http().post(`/integration/bitrix/events?key=${encodeURIComponent(key)}`).type('form').send({ event: 'ONAPPUNINSTALL', auth: { member_id: portal.memberId, application_token: portal.applicationToken } });
    expect(replayUninstall.status).toBe(401);
    expect(ami.originates).toHaveLength(0);
  });
});

describe('click-to-call without a configured PBX, and the first deliveries of a portal', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let t: TestApp;
  let key: string;

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: [{ ID: 1, ADMIN: true, UF_PHONE_INNER: '101' }] });
    // No AMI_HOST/AMI_USER/AMI_SECRET: the ami driver is not configured.
    t = await createTestApp({ env: bitrixEnv(emu, [portal]) });
    const admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
    await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ bindings: [{ sip_phone: '101', bitrix_user_id: 1 }] }).expect(200);
    const { port } = t.app.getHttpServer().address() as { port: number };
    for (const binding of portal.eventBindings) binding.handler = binding.handler.replace('https://bitrix.utel.example', `http://127.0.0.1:${port}`);
    key = new URL(portal.eventBindings[0].handler).searchParams.get('key') as string;
  });
  afterAll(async () => {
    await t.close();
    await emu.stop();
  });

  it('learns the application_token once when the first deliveries arrive together, and refuses another token afterwards', async () => {
    const deliveries = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        t.http().post(`/integration/bitrix/originate?key=${encodeURIComponent(key)}`).type('form')
          .send({ event: 'ONEXTERNALCALLSTART', data: { USER_ID: '1', PHONE_NUMBER: '+998901234567', CALL_ID: `externalCall.${i}` }, auth: { member_id: portal.memberId, application_token: portal.applicationToken } }),
      ),
    );
    // Authenticated, then 503: the PBX is not configured.
    expect(deliveries.map((d) => d.status)).toEqual([503, 503, 503, 503, 503]);
    const forged = await t.http().post(`/integration/bitrix/originate?key=${encodeURIComponent(key)}`).type('form')
      .send({ event: 'ONEXTERNALCALLSTART', data: { USER_ID: '1', PHONE_NUMBER: '+998901234567', CALL_ID: 'externalCall.f' }, auth: { member_id: portal.memberId, application_token: 'other' } });
    expect(forged.status).toBe(401);
  });

  it('answers 503 with a clear message when the PBX is not configured and finishes the Bitrix24 call as failed', async () => {
    const { callId, deliveries } = await portal.clickToCall({ userId: 1, phoneNumber: '+998901234567' });
    expect(deliveries[0].status).toBe(503);
    expect(JSON.parse(deliveries[0].body)).toEqual({ status: 'error', code: 503, result: null, message: 'The PBX is not configured on this server (AMI_HOST, AMI_USER, AMI_SECRET).' });
    await waitFor(() => portal.callStatistics.some((s) => s.CALL_ID === callId));
    expect(portal.callStatistics.find((s) => s.CALL_ID === callId)?.CALL_FAILED_CODE).toBe('503');
    const rows = await t.app.get(DataSource).query<unknown[]>('SELECT id FROM pbx_originates');
    expect(rows).toHaveLength(0);
  });

  it('checks at most 30 new user tokens per portal a minute (each is a user.current on the portal\'s rate limit); cached ones still pass', async () => {
    const tokens = Array.from({ length: 31 }, () => emu.tokens.issueAccess({ memberId: portal.memberId, userId: 1, scope: portal.scopes }).token);
    const call = (token: string) => t.http().post('/integration/bitrix/originate').send({ sip_phone: '101', phone_number: '+998901234567', auth: { member_id: portal.memberId, access_token: token } });
    const before = portal.requests.filter((r) => r.method === 'user.current').length;
    for (const token of tokens.slice(0, 30)) expect((await call(token)).status).toBe(503); // authenticated; no PBX configured
    expect((await call(tokens[30])).status).toBe(401);
    expect(portal.requests.filter((r) => r.method === 'user.current').length - before).toBe(30);
    expect((await call(tokens[0])).status).toBe(503);
  });
});
