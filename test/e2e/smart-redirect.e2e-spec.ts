import { DataSource } from 'typeorm';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

jest.setTimeout(60_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const DEADLINE_MS = 1000;
const NOBODY = { sip_phone: null, bitrix_user_id: null, crm_entity_type: null, crm_entity_id: null };
/** The tables whose triggers announce changes to every instance's company view (LISTEN/NOTIFY). */
const ANNOUNCED = ['bitrix_settings', 'bitrix_integrations', 'bitrix_bindings'];

/** SPEC §8 over HTTP: the responsible lookup against the emulator's CRM, its deadline, cache and single flight. */
describe('Smart Redirect', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  /** A second company's portal, for the disconnected and re-authorisation cases. */
  let otherPortal: Portal;
  let t: TestApp;
  let admin: { token: string; companyId: number };
  let key: string;
  const ids: Record<string, number> = {};
  const announcements = async (on: boolean) => {
    for (const table of ANNOUNCED) await t.app.get(DataSource).query(`ALTER TABLE ${table} ${on ? 'ENABLE' : 'DISABLE'} TRIGGER USER`);
  };

  const addContact = (name: string, phone: string, owner: number, type: 'CONTACT' | 'LEAD' | 'COMPANY' = 'CONTACT') =>
    (ids[name] = Number(portal.crm.add(type, { NAME: name, TITLE: name, PHONE: [{ VALUE: phone, VALUE_TYPE: 'WORK' }], ASSIGNED_BY_ID: owner }, 1).ID));
  const responsible = (phone: string, token = admin.token) => t.http().get('/pbx/responsible').query({ phone_number: phone }).set(auth(token));
  const redirect = (phone: string | undefined, k = key) => t.http().get(`/pbx/smart-redirect/${k}`).query(phone === undefined ? {} : { phone });
  const lookupsOf = (p: Portal) => p.requests.filter((r) => r.method === 'telephony.externalcall.searchcrmentities').length;
  /** Polls until the slow lookup has finished into the cache (the answer changes from nobody). */
  const untilCached = async (phone: string) => {
    for (let i = 0; i < 100; i++) {
      const res = await responsible(phone).expect(200);
      if (res.body.result.sip_phone !== null) return res.body.result;
      await sleep(100);
    }
    throw new Error(`${phone} never reached the cache`);
  };

  beforeAll(async () => {
    emu = new Bitrix24Emulator({ rateLimit: { rate: 50, burst: 500 } });
    await emu.start();
    portal = await emu.addPortal({
      users: [
        { ID: 1, ADMIN: true, UF_PHONE_INNER: '101', TIMEMAN_STATUS: 'OPENED' },
        { ID: 2, UF_PHONE_INNER: '102', TIMEMAN_STATUS: 'OPENED' },
        { ID: 3, UF_PHONE_INNER: '103', TIMEMAN_STATUS: 'CLOSED' },
        { ID: 4, UF_PHONE_INNER: '104', TIMEMAN_STATUS: 'OPENED' },
      ],
    });
    addContact('searched', '+998 90 111 11 11', 2);
    addContact('national', '90 222 22 22', 1);
    addContact('unbound', '+998903333333', 4);
    // Two records for one number: the closed owner's lead and the working owner's contact.
    addContact('closed-lead', '+998905555555', 3, 'LEAD');
    addContact('working-contact', '+998905555555', 2);
    // A bound owner out of office beats a working owner with no extension.
    addContact('unbound-working', '+998906666666', 4, 'LEAD');
    addContact('bound-closed', '+998906666666', 3);
    otherPortal = await emu.addPortal({ users: [{ ID: 1, ADMIN: true, UF_PHONE_INNER: '201' }] });
    otherPortal.crm.add('CONTACT', { NAME: 'Known', PHONE: [{ VALUE: '+998901111111' }], ASSIGNED_BY_ID: 1 }, 1);
    t = await createTestApp({ env: { ...bitrixEnv(emu, [portal, otherPortal]), BITRIX_RATE_LIMIT: '50/500', SMART_REDIRECT_TIMEOUT_MS: String(DEADLINE_MS) } });
    // Until the two-instance cases, nothing announces changes: whatever this instance writes must
    // reach its company view through its own invalidation, at once ("the next lookup uses it").
    await announcements(false);
    admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
    const saved = await t
      .http()
      .post('/integration/bitrix/settings')
      .set(auth(admin.token))
      .send({ default_bitrix_user_id: 1, bindings: [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '102', bitrix_user_id: 2 }, { sip_phone: '103', bitrix_user_id: 3 }] })
      .expect(200);
    key = new URL(saved.body.result.smart_redirect_url as string).pathname.split('/').pop()!;
  });
  afterAll(async () => {
    await t.close();
    await emu.stop();
  });
  afterEach(() => portal.faults.reset());

  describe('with smart_redirect off', () => {
    it('answers {} even for a caller with a responsible operator, and asks Bitrix24 nothing', async () => {
      const before = portal.stats.requests;
      const res = await redirect('+998901111111').expect(200);
      expect(res.text).toBe('{}');
      expect(res.headers['content-type']).toContain('application/json');
      expect(portal.stats.requests).toBe(before);
    });
  });

  describe('with smart_redirect on', () => {
    beforeAll(async () => {
      await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ smart_redirect: true }).expect(200);
    });

    it('finds the responsible through searchCrmEntities and answers exactly their extension', async () => {
      const res = await redirect('+998 90 111-11-11').expect(200);
      expect(res.text).toBe('{"extension":"102"}');
      const lookup = await responsible('998901111111').expect(200);
      expect(lookup.body).toEqual({ status: 'success', code: 200, message: 'Ok', result: { sip_phone: '102', bitrix_user_id: 2, crm_entity_type: 'CONTACT', crm_entity_id: ids.searched } });
    });

    it('finds a record stored in the national form only through the findbycomm fallback, in the same request', async () => {
      const before = portal.requests.length;
      const lookup = await responsible('+998 90 222 22 22').expect(200);
      expect(lookup.body.result).toEqual({ sip_phone: '101', bitrix_user_id: 1, crm_entity_type: 'CONTACT', crm_entity_id: ids.national });
      const sent = portal.requests.slice(before);
      expect(sent.filter((r) => !r.inBatch).map((r) => r.method)).toEqual(['batch']);
      const search = sent.find((r) => r.method === 'telephony.externalcall.searchcrmentities');
      const duplicates = sent.find((r) => r.method === 'crm.duplicate.findbycomm');
      expect(search?.status).toBe(200);
      expect(duplicates?.params).toMatchObject({ type: 'PHONE', values: ['+998902222222', '902222222'] });
      await redirect('8 90 222 22 22').expect(200, '{"extension":"101"}');
    });

    it('names the responsible without an extension when they are not bound (not the default user)', async () => {
      expect((await responsible('+998903333333').expect(200)).body.result).toEqual({ sip_phone: null, bitrix_user_id: 4, crm_entity_type: 'CONTACT', crm_entity_id: ids.unbound });
      await redirect('+998903333333').expect(200, '{}');
    });

    it('answers nobody for a number no CRM record has', async () => {
      expect((await responsible('+998909999999').expect(200)).body.result).toEqual(NOBODY);
      await redirect('+998909999999').expect(200, '{}');
    });

    it('prefers a bound owner at work, then any bound owner', async () => {
      expect((await responsible('+998905555555').expect(200)).body.result).toEqual({ sip_phone: '102', bitrix_user_id: 2, crm_entity_type: 'CONTACT', crm_entity_id: ids['working-contact'] });
      expect((await responsible('+998906666666').expect(200)).body.result).toEqual({ sip_phone: '103', bitrix_user_id: 3, crm_entity_type: 'CONTACT', crm_entity_id: ids['bound-closed'] });
    });

    it('serves repeated lookups from the cache but reads the bindings fresh', async () => {
      addContact('rebound', '+998907777777', 4);
      expect((await responsible('+998907777777').expect(200)).body.result.sip_phone).toBeNull();
      const before = lookupsOf(portal);
      await t
        .http()
        .post('/integration/bitrix/settings')
        .set(auth(admin.token))
        .send({ bindings: [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '102', bitrix_user_id: 2 }, { sip_phone: '103', bitrix_user_id: 3 }, { sip_phone: '104', bitrix_user_id: 4 }] })
        .expect(200);
      await redirect('+998907777777').expect(200, '{"extension":"104"}');
      expect(lookupsOf(portal)).toBe(before);
    });

    it('uses a saved change at once: smart_redirect off, a binding removed, then restored', async () => {
      const save = (body: object) => t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send(body).expect(200);
      const bindings = [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '102', bitrix_user_id: 2 }, { sip_phone: '103', bitrix_user_id: 3 }, { sip_phone: '104', bitrix_user_id: 4 }];
      await redirect('+998901111111').expect(200, '{"extension":"102"}');
      await save({ smart_redirect: false });
      await redirect('+998901111111').expect(200, '{}');
      await save({ smart_redirect: true, bindings: bindings.filter((b) => b.bitrix_user_id !== 2) });
      await redirect('+998901111111').expect(200, '{}');
      expect((await responsible('+998901111111').expect(200)).body.result).toMatchObject({ sip_phone: null, bitrix_user_id: 2 });
      await save({ bindings: bindings.map((b) => (b.bitrix_user_id === 2 ? { ...b, sip_phone: '222' } : b)) });
      await redirect('+998901111111').expect(200, '{"extension":"222"}');
      await save({ bindings });
      await redirect('+998901111111').expect(200, '{"extension":"102"}');
    });

    it('answers nobody by the deadline while Bitrix24 is slow, then from the cache once the lookup finished', async () => {
      addContact('slow', '+998904444444', 1);
      portal.faults.delayMs = DEADLINE_MS * 4;
      const before = { http: portal.stats.requests, lookups: lookupsOf(portal) };
      const started = Date.now();
      const first = await redirect('+998904444444').expect(200);
      const elapsed = Date.now() - started;
      expect(first.text).toBe('{}');
      expect(elapsed).toBeGreaterThanOrEqual(DEADLINE_MS - 50);
      expect(elapsed).toBeLessThan(DEADLINE_MS * 3);
      // The answer came while the emulator was still holding the request.
      expect(portal.stats.requests).toBe(before.http + 1);
      expect(lookupsOf(portal)).toBe(before.lookups);
      expect((await responsible('+998904444444').expect(200)).body.result).toEqual(NOBODY);

      expect(await untilCached('+998904444444')).toEqual({ sip_phone: '101', bitrix_user_id: 1, crm_entity_type: 'CONTACT', crm_entity_id: ids.slow });
      // Still slow, but answered at once from the cache, by the one lookup that ran.
      const cachedStart = Date.now();
      await redirect('+998904444444').expect(200, '{"extension":"101"}');
      expect(Date.now() - cachedStart).toBeLessThan(DEADLINE_MS);
      expect(portal.stats.requests).toBe(before.http + 1);
      expect(lookupsOf(portal)).toBe(before.lookups + 1);
      const metrics = await t.http().get('/metrics').expect(200);
      for (const outcome of ['timeout', 'cached', 'looked_up']) expect(metrics.text).toMatch(new RegExp(`smart_redirect_lookups_total\\{outcome="${outcome}"\\} [1-9]`));
    });

    it('runs one lookup for many concurrent requests for the same number', async () => {
      addContact('popular', '+998908888888', 2);
      portal.faults.delayMs = 300;
      const before = { http: portal.stats.requests, lookups: lookupsOf(portal) };
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 ? redirect('+998908888888') : responsible('+998 90 888 88 88'))));
      for (const [i, res] of answers.entries()) {
        expect(res.status).toBe(200);
        if (i % 2) expect(res.text).toBe('{"extension":"102"}');
        else expect(res.body.result.sip_phone).toBe('102');
      }
      expect(portal.stats.requests).toBe(before.http + 1);
      expect(lookupsOf(portal)).toBe(before.lookups + 1);
    });

    it('answers nobody when Bitrix24 fails, and uses the fallback when only the search fails', async () => {
      addContact('outage', '+998901212121', 1);
      portal.faults.outage = true;
      await redirect('+998901212121').expect(200, '{}');
      expect((await responsible('+998901313131').expect(200)).body.result).toEqual(NOBODY);
      portal.faults.outage = false;

      addContact('search-fails', '+998901414141', 2);
      portal.faults.failNext('telephony.externalCall.searchCrmEntities', { status: 500, error: 'INTERNAL_SERVER_ERROR', error_description: 'Internal server error' });
      expect((await responsible('+998901414141').expect(200)).body.result).toEqual({ sip_phone: '102', bitrix_user_id: 2, crm_entity_type: 'CONTACT', crm_entity_id: ids['search-fails'] });
    });
  });

  describe('bad input', () => {
    it('answers an unknown or malformed key with exactly {} and 404, phone or not', async () => {
      for (const k of ['A'.repeat(32), 'short', 'has.dots.in.it.and.is.long', '%20'.repeat(20)]) {
        const res = await redirect('+998901111111', k);
        expect({ k, status: res.status, text: res.text }).toEqual({ k, status: 404, text: '{}' });
      }
      await redirect(undefined, 'A'.repeat(32)).expect(404, '{}');
    });

    it.each([
      ['no phone', undefined],
      ['an empty phone', ''],
      ['letters', 'abc'],
      ['a number with words', '+998 90 CALL ME'],
      ['a phone too long', '1'.repeat(41)],
    ])('answers %s with {} and 422 on the Smart Redirect URL', async (_, phone) => {
      await redirect(phone).expect(422, '{}');
    });

    it('answers {} and 500 when the service itself fails, and recovers', async () => {
      const db = t.app.get(DataSource);
      await db.query('ALTER TABLE bitrix_settings RENAME TO bitrix_settings_away');
      try {
        // A key the company view does not hold, so the request reads the database (a known one is answered from the view).
        await redirect('+998901111111', 'B'.repeat(32)).expect(500, '{}');
      } finally {
        await db.query('ALTER TABLE bitrix_settings_away RENAME TO bitrix_settings');
      }
      await redirect('+998901111111').expect(200, '{"extension":"102"}');
    });

    it('answers a repeated phone parameter with {} and 422', async () => {
      await t.http().get(`/pbx/smart-redirect/${key}?phone=1&phone=2`).expect(422, '{}');
    });

    it.each([
      ['no phone_number', undefined],
      ['an empty phone_number', ''],
      ['letters', 'abc'],
      ['a phone_number too long', '1'.repeat(41)],
    ])('refuses %s on /pbx/responsible with a 422 envelope', async (_, phone) => {
      const res = await t.http().get('/pbx/responsible').query(phone === undefined ? {} : { phone_number: phone }).set(auth(admin.token)).expect(422);
      expect(res.body).toMatchObject({ status: 'error', code: 422, result: null, message: 'The given data was invalid.', errors: { phone_number: expect.any(Array) } });
    });

    it('needs a bearer token for /pbx/responsible', async () => {
      await t.http().get('/pbx/responsible').query({ phone_number: '+998901111111' }).expect(401);
    });
  });

  describe('a company whose portal is not connected', () => {
    let other: { token: string; companyId: number };
    let otherKey: string;

    beforeAll(async () => {
      other = await t.login('admin');
      expect((await connectPortal(t, other.token, otherPortal)).res.status).toBe(200);
      const saved = await t.http().post('/integration/bitrix/settings').set(auth(other.token)).send({ smart_redirect: true, bindings: [{ sip_phone: '201', bitrix_user_id: 1 }] }).expect(200);
      otherKey = new URL(saved.body.result.smart_redirect_url as string).pathname.split('/').pop()!;
      await redirect('+998901111111', otherKey).expect(200, '{"extension":"201"}');
    });

    it('answers {} and sip_phone null once disconnected, without asking Bitrix24', async () => {
      await t.http().delete('/integration/bitrix/disconnect').set(auth(other.token)).expect(200);
      const before = otherPortal.stats.requests;
      await redirect('+998901111111', otherKey).expect(200, '{}');
      expect((await responsible('+998901111111', other.token).expect(200)).body.result).toEqual(NOBODY);
      expect(otherPortal.stats.requests).toBe(before);
    });

    it('answers {} and sip_phone null at once when a refresh is refused (re-authorisation needed)', async () => {
      expect((await connectPortal(t, other.token, otherPortal)).res.status).toBe(200);
      await redirect('+998901111111', otherKey).expect(200, '{"extension":"201"}');
      // The app is revoked: the next Bitrix24 request's refresh is refused (invalid_grant).
      otherPortal.revokeApp();
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(other.token)).expect(409);
      await redirect('+998901111111', otherKey).expect(200, '{}');
      expect((await responsible('+998901111111', other.token).expect(200)).body.result).toEqual(NOBODY);
    });

    it('answers {} at once after ONAPPUNINSTALL', async () => {
      otherPortal.reinstallApp();
      expect((await connectPortal(t, other.token, otherPortal)).res.status).toBe(200);
      await redirect('+998901111111', otherKey).expect(200, '{"extension":"201"}');
      // Bitrix24 delivers ONAPPUNINSTALL to the bound handler: point it at this app.
      const { port } = t.app.getHttpServer().address() as { port: number };
      for (const binding of otherPortal.eventBindings) binding.handler = binding.handler.replace('https://bitrix.utel.example', `http://127.0.0.1:${port}`);
      expect((await otherPortal.uninstallApp()).map((d) => d.status)).toEqual([200]);
      await redirect('+998901111111', otherKey).expect(200, '{}');
      expect((await responsible('+998901111111', other.token).expect(200)).body.result).toEqual(NOBODY);
    });

    it('answers sip_phone null, and {} on its key, for a company that never connected', async () => {
      const fresh = await t.login('admin');
      expect((await responsible('+998901111111', fresh.token).expect(200)).body.result).toEqual(NOBODY);
      const settings = await t.http().get('/integration/bitrix/settings').set(auth(fresh.token)).expect(200);
      const freshKey = new URL(settings.body.result.smart_redirect_url as string).pathname.split('/').pop()!;
      await redirect('+998901111111', freshKey).expect(200, '{}');
    });
  });

  /** Service replicas share one database (SPEC): a change committed through one is answered by the others within moments. */
  describe('two instances on one database', () => {
    let b: TestApp;
    const onB = (phone: string) => b.http().get(`/pbx/smart-redirect/${key}`).query({ phone });
    /** Polls an instance (B by default) until it answers `expected` (a notification takes a moment to arrive); the last answer otherwise. */
    const answers = async (expected: string, app = b) => {
      let text = '';
      for (let i = 0; i < 40 && text !== expected; i++) {
        if (i) await sleep(50);
        text = (await app.http().get(`/pbx/smart-redirect/${key}`).query({ phone: '+998901111111' }).expect(200)).text;
      }
      return text;
    };
    const save = (body: object) => t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send(body).expect(200);
    const bindings = [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '102', bitrix_user_id: 2 }, { sip_phone: '103', bitrix_user_id: 3 }, { sip_phone: '104', bitrix_user_id: 4 }];
    const listeners = () =>
      t.app.get(DataSource).query<{ pid: number }[]>(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %bitrix_company_changed%'`);

    beforeAll(async () => {
      await announcements(true);
      b = await createTestApp({ env: { ...bitrixEnv(emu, [portal, otherPortal]), BITRIX_RATE_LIMIT: '50/500', SMART_REDIRECT_TIMEOUT_MS: String(DEADLINE_MS) }, databaseUrl: t.databaseUrl });
    });
    afterAll(() => b.close());

    it('answers a binding change, smart_redirect off and a disconnect saved through the other instance', async () => {
      // B holds the current facts first.
      await onB('+998901111111').expect(200, '{"extension":"102"}');
      await onB('+998901111111').expect(200, '{"extension":"102"}');

      await save({ bindings: bindings.map((x) => (x.bitrix_user_id === 2 ? { ...x, sip_phone: '222' } : x)) });
      expect(await answers('{"extension":"222"}')).toBe('{"extension":"222"}');
      await save({ smart_redirect: false });
      expect(await answers('{}')).toBe('{}');
      await save({ smart_redirect: true, bindings });
      expect(await answers('{"extension":"102"}')).toBe('{"extension":"102"}');

      await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
      expect(await answers('{}')).toBe('{}');
      expect((await responsible('+998901111111').expect(200)).body.result).toEqual(NOBODY);
      expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
      expect(await answers('{"extension":"102"}')).toBe('{"extension":"102"}');
    });

    it('answers a change written to the database directly, and one made while its listener was cut off', async () => {
      const db = t.app.get(DataSource);
      await db.query(`UPDATE bitrix_bindings SET sip_phone = '333' WHERE company_id = $1 AND bitrix_user_id = 2`, [admin.companyId]);
      expect(await answers('{"extension":"333"}')).toBe('{"extension":"333"}');

      // Both instances lose their LISTEN connection; the change below may never be announced to them.
      expect(await listeners()).toHaveLength(2);
      await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %bitrix_company_changed%'`);
      await db.query(`UPDATE bitrix_bindings SET sip_phone = '102' WHERE company_id = $1 AND bitrix_user_id = 2`, [admin.companyId]);
      expect(await answers('{"extension":"102"}')).toBe('{"extension":"102"}');
      expect(await answers('{"extension":"102"}', t)).toBe('{"extension":"102"}');

      // Both listen again, and announcements reach them again.
      for (let i = 0; i < 100 && (await listeners()).length < 2; i++) await sleep(50);
      expect(await listeners()).toHaveLength(2);
      await onB('+998901111111').expect(200, '{"extension":"102"}');
      await db.query(`UPDATE bitrix_settings SET smart_redirect = false WHERE company_id = $1`, [admin.companyId]);
      expect(await answers('{}')).toBe('{}');
      await db.query(`UPDATE bitrix_settings SET smart_redirect = true WHERE company_id = $1`, [admin.companyId]);
      expect(await answers('{"extension":"102"}')).toBe('{"extension":"102"}');
    });
  });
});
