import { DataSource } from 'typeorm';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

jest.setTimeout(30_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Settings validation against the portal: every error at once, and nothing saved on a 422. */
describe('Bitrix24 settings', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let t: TestApp;
  let admin: { token: string; companyId: number };
  const inactiveId = 900;

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({
      users: [
        { ID: 1, ADMIN: true, UF_PHONE_INNER: '101' },
        { ID: 2, UF_PHONE_INNER: '102' },
        { ID: 3, UF_PHONE_INNER: '103' },
        { ID: 4, UF_PHONE_INNER: '' },
        { ID: inactiveId, ACTIVE: false, UF_PHONE_INNER: '190' },
      ],
    });
    t = await createTestApp({ env: bitrixEnv(emu, [portal]) });
    admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
  });
  afterAll(async () => {
    await t.close();
    await emu.stop();
  });

  const save = (body: unknown) => t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send(body as object);
  const current = async () => (await t.http().get('/integration/bitrix/settings').set(auth(admin.token)).expect(200)).body.result;

  it('saves a partial update and keeps everything else', async () => {
    await save({ attach_records: false }).expect(200);
    await save({ pipeline_id: 1, crm_create: 'all', bindings: [{ sip_phone: '101', bitrix_user_id: 1 }] }).expect(200);
    const after = await save({ show_card: 'never' }).expect(200);
    expect(after.body.result).toMatchObject({ attach_records: false, pipeline_id: 1, crm_create: 'all', show_card: 'never', bindings: [{ sip_phone: '101', bitrix_user_id: 1 }] });
    // Setting nullable fields back to null is allowed.
    const reset = await save({ pipeline_id: null, crm_source: null, default_bitrix_user_id: null }).expect(200);
    expect(reset.body.result).toMatchObject({ pipeline_id: null, crm_source: null, default_bitrix_user_id: null });
  });

  it('accepts the read-only fields the SPA sends back, and ignores them', async () => {
    const before = await current();
    const res = await save({ ...before, suggested_bindings: [{ sip_phone: '999', bitrix_user_id: 3 }], smart_redirect_url: 'https://evil.example/x' }).expect(200);
    expect(res.body.result.smart_redirect_url).toBe(before.smart_redirect_url);
  });

  it.each([
    ['duplicate sip_phone', { bindings: [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '101', bitrix_user_id: 2 }] }, { 'bindings.1.sip_phone': ['sip_phone 101 is already bound in bindings.0.'] }],
    ['duplicate employee', { bindings: [{ sip_phone: '101', bitrix_user_id: 2 }, { sip_phone: '102', bitrix_user_id: 2 }] }, { 'bindings.1.bitrix_user_id': ['Bitrix24 user 2 is already bound in bindings.0.'] }],
    ['an inactive employee', { bindings: [{ sip_phone: '190', bitrix_user_id: inactiveId }] }, { 'bindings.0.bitrix_user_id': [`Bitrix24 user ${inactiveId} is not an active employee of the portal.`] }],
    ['an unknown employee', { bindings: [{ sip_phone: '105', bitrix_user_id: 4242 }] }, { 'bindings.0.bitrix_user_id': ['Bitrix24 user 4242 is not an active employee of the portal.'] }],
    ['an unknown default user', { default_bitrix_user_id: 4242 }, { default_bitrix_user_id: ['Bitrix24 user 4242 is not an active employee of the portal.'] }],
    ['an unknown pipeline', { pipeline_id: 77 }, { pipeline_id: ['Deal pipeline 77 does not exist in the portal.'] }],
    ['an unknown lead source', { crm_source: 'TELEGRAM' }, { crm_source: ['Lead source TELEGRAM does not exist in the portal.'] }],
    [
      'several at once',
      { pipeline_id: 77, crm_source: 'NOPE', default_bitrix_user_id: 4242, bindings: [{ sip_phone: '105', bitrix_user_id: 4242 }] },
      {
        pipeline_id: ['Deal pipeline 77 does not exist in the portal.'],
        crm_source: ['Lead source NOPE does not exist in the portal.'],
        default_bitrix_user_id: ['Bitrix24 user 4242 is not an active employee of the portal.'],
        'bindings.0.bitrix_user_id': ['Bitrix24 user 4242 is not an active employee of the portal.'],
      },
    ],
  ])('refuses %s against the portal with 422 and saves nothing', async (_, body, errors) => {
    const before = await current();
    const res = await save({ ...body, show_card: 'answered' }).expect(422);
    expect(res.body).toEqual({ status: 'error', code: 422, result: null, message: 'The given data was invalid.', errors });
    expect(await current()).toEqual(before);
  });

  it.each([
    [{ crm_create: 'sometimes' }, 'crm_create'],
    [{ crm_create: null }, 'crm_create'],
    [{ show_card: 'always' }, 'show_card'],
    [{ show_card: null }, 'show_card'],
    [{ attach_records: 'yes' }, 'attach_records'],
    [{ attach_records: null }, 'attach_records'],
    [{ missed_call_task: 1 }, 'missed_call_task'],
    [{ smart_redirect: null }, 'smart_redirect'],
    [{ pipeline_id: '1' }, 'pipeline_id'],
    [{ pipeline_id: -1 }, 'pipeline_id'],
    [{ pipeline_id: 1.5 }, 'pipeline_id'],
    [{ default_bitrix_user_id: 0 }, 'default_bitrix_user_id'],
    [{ crm_source: 5 }, 'crm_source'],
    [{ bindings: null }, 'bindings'],
    [{ bindings: 'none' }, 'bindings'],
    [{ bindings: [{ sip_phone: '', bitrix_user_id: 1 }] }, 'bindings.0.sip_phone'],
    [{ bindings: [{ sip_phone: '10 1', bitrix_user_id: 1 }] }, 'bindings.0.sip_phone'],
    [{ bindings: [{ sip_phone: '101', bitrix_user_id: '1' }] }, 'bindings.0.bitrix_user_id'],
    [{ bindings: [{ sip_phone: '101' }] }, 'bindings.0.bitrix_user_id'],
    [{ bindings: [{ sip_phone: '101', bitrix_user_id: 1, extra: true }] }, 'bindings.0.extra'],
    [{ bindings: [null] }, 'bindings.0'],
    [{ unknown_setting: true }, 'unknown_setting'],
  ])('refuses the malformed body %j with 422 before asking Bitrix24', async (body, field) => {
    const before = emu.requestCount();
    const res = await save(body).expect(422);
    expect(Object.keys(res.body.errors)).toContain(field);
    expect(emu.requestCount()).toBe(before);
  });

  it('suggests an employee whose extension equals a known, unbound sip_phone', async () => {
    await save({ bindings: [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '102', bitrix_user_id: 2 }, { sip_phone: '555', bitrix_user_id: 3 }] }).expect(200);
    // 102 and 555 become unbound but stay known; employee 2 has UF_PHONE_INNER 102, nobody has 555.
    const res = await save({ bindings: [{ sip_phone: '101', bitrix_user_id: 1 }] }).expect(200);
    expect(res.body.result.suggested_bindings).toEqual([{ sip_phone: '102', bitrix_user_id: 2 }]);
    // Once 102 is bound (to anyone), it is no longer suggested; nor is an employee who is bound elsewhere.
    const bound = await save({ bindings: [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '777', bitrix_user_id: 2 }] }).expect(200);
    expect(bound.body.result.suggested_bindings).toEqual([]);
  });

  it('serialises concurrent saves: every one succeeds and the last word wins whole', async () => {
    const variants = [
      [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '102', bitrix_user_id: 2 }],
      [{ sip_phone: '102', bitrix_user_id: 1 }, { sip_phone: '101', bitrix_user_id: 2 }],
      [{ sip_phone: '103', bitrix_user_id: 3 }],
    ];
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => save({ bindings: variants[i % 3] })));
    expect(results.map((r) => r.status)).toEqual(Array(6).fill(200));
    const final = (await current()).bindings;
    expect(variants.map((v) => JSON.stringify([...v].sort((a, b) => a.sip_phone.localeCompare(b.sip_phone))))).toContain(JSON.stringify(final));
  });

  it('refuses to save while not connected (409) and still shows the settings', async () => {
    const other = await t.login('admin');
    const res = await t.http().post('/integration/bitrix/settings').set(auth(other.token)).send({ crm_create: 'all' }).expect(409);
    expect(res.body).toEqual({ status: 'error', code: 409, result: null, message: 'Bitrix24 is not connected.' });
    const got = await t.http().get('/integration/bitrix/settings').set(auth(other.token)).expect(200);
    expect(got.body.result.crm_create).toBe('none');
  });

  it('gives every company its own Smart Redirect key, stored encrypted', async () => {
    const other = await t.login('admin');
    const a = (await current()).smart_redirect_url as string;
    const b = (await t.http().get('/integration/bitrix/settings').set(auth(other.token)).expect(200)).body.result.smart_redirect_url as string;
    expect(a).not.toBe(b);
    const key = a.split('/').pop()!;
    const dump = JSON.stringify(await t.app.get(DataSource).query('SELECT * FROM bitrix_settings'));
    expect(dump).not.toContain(key);
  });

  it('finds a lead source past the first page of crm.status.list', async () => {
    const sort = portal.crm.sources.length * 10;
    for (let i = 1; i <= 60; i++) {
      const id = `UC_${String(i).padStart(3, '0')}`;
      portal.crm.sources.push({ ID: '0', ENTITY_ID: 'SOURCE', STATUS_ID: id, NAME: `Source ${i}`, NAME_INIT: '', SORT: String(sort + i * 10), SYSTEM: 'N', CATEGORY_ID: null, SEMANTICS: null });
    }
    // 72 sources: UC_060 sorts last, on the second page.
    expect(portal.crm.sources.length).toBeGreaterThan(60);
    expect((await save({ crm_source: 'UC_060' }).expect(200)).body.result.crm_source).toBe('UC_060');
    expect((await save({ crm_source: 'UC_061' }).expect(422)).body.errors).toEqual({ crm_source: ['Lead source UC_061 does not exist in the portal.'] });
    await save({ crm_source: null }).expect(200);
  });

  it('records the portal licence (Enterprise portals get the larger rate limit)', async () => {
    const ent = await emu.addPortal({ users: 2, licenseFamily: 'ent' });
    const company = await t.login('admin');
    const app = await createTestApp({ env: bitrixEnv(emu, [ent]), databaseUrl: t.databaseUrl });
    try {
      expect((await connectPortal(app, company.token, ent)).res.status).toBe(200);
      const [row] = await t.app.get(DataSource).query('SELECT license_family FROM bitrix_integrations WHERE company_id = $1', [company.companyId]);
      expect(row.license_family).toBe('ent');
    } finally {
      await app.close();
    }
  });
});
