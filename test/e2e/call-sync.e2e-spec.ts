import { createServer, type Server } from 'node:http';
import { DataSource } from 'typeorm';
import { inTransaction, pgPool, prepared, run, runGeneric } from '../../src/database/prepared';
import { LOCK_CALLS } from '../../src/pbx/events/call-ingest.service';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';
import { callRow, pbxCallId as uid, pbxEvent as ev, settled, until } from './support/calls';

jest.setTimeout(60_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
/** Call sync end to end: PBX events over HTTP → PostgreSQL → worker → the emulator over sockets. */
describe('call sync', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let t: TestApp;
  let admin: { token: string; companyId: number };
  let recordings: Server;
  let recordingsOrigin: string;
  const mp3 = Buffer.concat([Buffer.from('ID3\u0004\u0000\u0000\u0000\u0000\u0000\u0000'), Buffer.alloc(2048, 0x55)]);
  const bigWav = Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(4), Buffer.from('WAVEfmt '), Buffer.alloc(1.5 * 1024 * 1024, 1)]);

  beforeAll(async () => {
    recordings = createServer((req, res) => {
      if (req.url === '/r/a.mp3') return void res.writeHead(200, { 'content-type': 'audio/mpeg' }).end(mp3);
      if (req.url === '/r/big.wav') return void res.writeHead(200).end(bigWav);
      if (req.url === '/r/page.mp3') return void res.writeHead(200, { 'content-type': 'text/html' }).end('<html>login</html>');
      res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => recordings.listen(0, '127.0.0.1', resolve));
    recordingsOrigin = `http://127.0.0.1:${(recordings.address() as { port: number }).port}`;

    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({
      users: [
        { ID: 1, ADMIN: true, UF_PHONE_INNER: '101' },
        { ID: 2, UF_PHONE_INNER: '102' },
        { ID: 3, UF_PHONE_INNER: '103' },
      ],
      scopes: ['crm', 'telephony', 'user_basic', 'task'],
    });
    t = await createTestApp({ env: { ...bitrixEnv(emu, [portal]), RECORDING_ALLOWED_HOSTS: `${recordingsOrigin},*.utel.uz` } });
    admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
    await t
      .http()
      .post('/integration/bitrix/settings')
      .set(auth(admin.token))
      .send({ show_card: 'ringing', missed_call_task: true, bindings: [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '102', bitrix_user_id: 2 }, { sip_phone: '103', bitrix_user_id: 3 }] })
      .expect(200);
  });
  afterAll(async () => {
    await t.close();
    await emu.stop();
    await new Promise((resolve) => recordings.close(resolve));
  });

  const post = (body: unknown, token = admin.token) => t.http().post('/pbx/events').set(auth(token)).send(body as object);
  const call = (callId: string) => callRow(t, callId);
  const synced = (callId: string) => settled(t, callId);
  const bitrixCall = (externalId: string) => portal.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID === externalId);
  it('answers 202 with the accepted count, stores before any Bitrix24 request', async () => {
    const id = uid();
    const before = portal.requests.length;
    const res = await post([ev(id, 'ringing', { sip_phones: ['101'] }), ev(id, 'ringing', { sip_phones: ['101'] })]).expect(202);
    expect(res.body).toEqual({ status: 'success', code: 202, result: { accepted: 2 }, message: 'Accepted' });
    expect(await call(id)).toMatchObject({ status: 'ringing', phone_number: '+998901234567', phone_raw: '+998 90 123 45 67' });
    expect(portal.requests.length).toBeGreaterThanOrEqual(before);
  });

  it('mirrors an answered inbound ring-group call: register, cards, hide on answer, finish 200', async () => {
    const id = uid();
    await post(ev(id, 'ringing', { sip_phones: ['101', '102'], line_number: '+998712000000', occurred_at: '2026-11-24T10:00:00+05:00' })).expect(202);
    const [registered] = await until(() => bitrixCall(id), (c) => c.length === 1 && c[0].shownTo.length === 2);
    expect(registered).toMatchObject({ TYPE: 2, USER_ID: 1, PHONE_NUMBER: '+998901234567', LINE_NUMBER: '+998712000000', CALL_START_DATE: '2026-11-24T10:00:00+05:00' });
    await post(ev(id, 'answered', { sip_phones: ['102'], occurred_at: '2026-11-24T10:00:05+05:00' })).expect(202);
    await until(() => registered.shownTo, (s) => s.length === 1 && s[0] === 2);
    await post(ev(id, 'ended', { sip_phones: ['102'], status: 'answered', duration: 42, occurred_at: '2026-11-24T10:00:47+05:00' })).expect(202);
    const row = await synced(id);
    expect(row).toMatchObject({ sync_state: 'synced', status: 'answered', bitrix_call_id: registered.CALL_ID });
    const stat = portal.telephony.statistics.find((s) => s.CALL_ID === registered.CALL_ID);
    expect(stat).toMatchObject({ PORTAL_USER_ID: 2, CALL_DURATION: 42, CALL_FAILED_CODE: '200' });
    const cards = portal.telephony.cards.filter((c) => c.CALL_ID === registered.CALL_ID).map((c) => [c.action, c.userIds, c.via]);
    expect(cards).toEqual([
      ['show', [1, 2], 'show'],
      ['hide', [1], 'hide'],
      ['hide', [2], 'finish'],
    ]);
    expect(bitrixCall(id)).toHaveLength(1);
  });

  it('finishes with the SPEC status codes', async () => {
    const cases: [string, string, string][] = [
      ['inbound', 'no_answer', '304'],
      ['inbound', 'cancelled', '304'],
      ['outbound', 'cancelled', '603-S'],
      ['inbound', 'busy', '486'],
      ['outbound', 'failed', '503'],
    ];
    const ids = cases.map(() => uid());
    await post(cases.flatMap(([direction, status], i) => [ev(ids[i], 'ringing', { direction, sip_phones: ['103'] }), ev(ids[i], 'ended', { direction, status, duration: 0, occurred_at: '2026-11-24T10:00:20+05:00' })])).expect(202);
    for (const [i, [direction, , code]] of cases.entries()) {
      await synced(ids[i]);
      const [registered] = bitrixCall(ids[i]);
      expect(registered.TYPE).toBe(direction === 'inbound' ? 2 : 1);
      expect(portal.telephony.statistics.find((s) => s.CALL_ID === registered.CALL_ID)?.CALL_FAILED_CODE).toBe(code);
    }
  });

  it('registers a call first seen when it ended at occurred_at − duration, with no card', async () => {
    const id = uid();
    await post(ev(id, 'ended', { sip_phones: ['101'], status: 'answered', duration: 30, occurred_at: '2026-11-24T12:00:30+05:00' })).expect(202);
    await synced(id);
    const [registered] = bitrixCall(id);
    expect(registered.CALL_START_DATE).toBe('2026-11-24T12:00:00+05:00');
    expect(portal.telephony.cards.filter((c) => c.CALL_ID === registered.CALL_ID && c.action === 'show')).toEqual([]);
  });

  it('keeps an answered call answered when a late no_answer leg arrives, and ignores duplicates', async () => {
    const id = uid();
    const events = [
      ev(id, 'ringing', { sip_phones: ['101', '102'] }),
      ev(id, 'answered', { sip_phones: ['101'], occurred_at: '2026-11-24T10:00:03+05:00' }),
      ev(id, 'ended', { sip_phones: ['101'], status: 'answered', duration: 12, occurred_at: '2026-11-24T10:00:15+05:00' }),
    ];
    await post(events).expect(202);
    await synced(id);
    await post([...events, ev(id, 'ended', { sip_phones: ['102'], status: 'no_answer', duration: 0, occurred_at: '2026-11-24T10:00:14+05:00' })]).expect(202);
    await new Promise((r) => setTimeout(r, 500));
    expect(await call(id)).toMatchObject({ status: 'answered', sync_state: 'synced' });
    const [registered] = bitrixCall(id);
    expect(portal.telephony.statistics.filter((s) => s.CALL_ID === registered.CALL_ID)).toHaveLength(1);
  });

  it('merges the events of a call posted at the same moment, each in its own request', async () => {
    const ids = Array.from({ length: 6 }, () => uid());
    const eventsOf = (id: string) => [
      ev(id, 'ringing', { sip_phones: ['101', '102'] }),
      ev(id, 'answered', { sip_phones: ['102'], occurred_at: '2026-11-24T10:00:04+05:00' }),
      ev(id, 'ended', { sip_phones: ['102'], status: 'answered', duration: 20, occurred_at: '2026-11-24T10:00:24+05:00' }),
    ];
    // Every event alone, twice, and the first two calls also together in one request: new calls
    // are created by one request while the others wait for them.
    const requests = [...ids.flatMap((id) => [...eventsOf(id), ...eventsOf(id)]), [...eventsOf(ids[0]), ...eventsOf(ids[1])]];
    await Promise.all(requests.map((body) => post(body).expect(202)));
    for (const id of ids) {
      expect(await synced(id)).toMatchObject({ status: 'answered', duration: 20, sync_state: 'synced' });
      const [registered, ...more] = bitrixCall(id);
      expect(more).toEqual([]);
      expect(portal.telephony.statistics.filter((s) => s.CALL_ID === registered.CALL_ID)).toEqual([expect.objectContaining({ PORTAL_USER_ID: 2, CALL_DURATION: 20 })]);
    }
  });

  it('moves the card on a transfer and finishes with the last operator', async () => {
    const id = uid();
    await post([ev(id, 'ringing', { sip_phones: ['101'] }), ev(id, 'answered', { sip_phones: ['101'], occurred_at: '2026-11-24T10:00:02+05:00' })]).expect(202);
    const [registered] = await until(() => bitrixCall(id), (c) => c.length === 1 && c[0].shownTo.join() === '1');
    await post(ev(id, 'answered', { sip_phones: ['103'], occurred_at: '2026-11-24T10:00:30+05:00' })).expect(202);
    await until(() => registered.shownTo.join(), (s) => s === '3');
    await post(ev(id, 'ended', { status: 'answered', duration: 60, occurred_at: '2026-11-24T10:01:02+05:00' })).expect(202);
    await synced(id);
    expect(portal.telephony.statistics.find((s) => s.CALL_ID === registered.CALL_ID)?.PORTAL_USER_ID).toBe(3);
  });

  it('creates a missed-call task for the CRM record\'s responsible, linked to it', async () => {
    const contact = portal.crm.add('CONTACT', { NAME: 'Dilnoza', PHONE: [{ VALUE: '+998935550011', VALUE_TYPE: 'WORK' }], ASSIGNED_BY_ID: '3' }, 3);
    const id = uid();
    await post([ev(id, 'ringing', { phone_number: '93 555 00 11', sip_phones: ['101'] }), ev(id, 'ended', { phone_number: '93 555 00 11', status: 'no_answer', duration: 0, occurred_at: '2026-11-24T10:00:25+05:00' })]).expect(202);
    await synced(id);
    const tasks = portal.tasks.filter((task) => String(task.fields.TITLE).includes('+998935550011'));
    expect(tasks).toHaveLength(1);
    expect(tasks[0].fields).toMatchObject({ RESPONSIBLE_ID: '3', UF_CRM_TASK: [`C_${contact.ID}`] });
  });

  it('attaches a recording after the finish: base64 for small files, uploadUrl for large, content checked', async () => {
    const small = uid();
    const large = uid();
    const fake = uid();
    await post([
      ev(small, 'recording', { recording_url: `${recordingsOrigin}/r/a.mp3` }),
      ev(small, 'ended', { sip_phones: ['101'], status: 'answered', duration: 5, occurred_at: '2026-11-24T10:00:05+05:00' }),
      ev(large, 'ended', { sip_phones: ['101'], status: 'answered', duration: 5, occurred_at: '2026-11-24T10:00:05+05:00' }),
      ev(large, 'recording', { recording_url: `${recordingsOrigin}/r/big.wav` }),
      ev(fake, 'ended', { sip_phones: ['101'], status: 'answered', duration: 5, occurred_at: '2026-11-24T10:00:05+05:00' }),
      ev(fake, 'recording', { recording_url: `${recordingsOrigin}/r/page.mp3` }),
    ]).expect(202);
    for (const id of [small, large, fake]) await synced(id);
    const recordingOf = (id: string) => portal.telephony.recordings.find((r) => r.CALL_ID === bitrixCall(id)[0].CALL_ID);
    expect(recordingOf(small)).toMatchObject({ via: 'base64', FILENAME: `${small}.mp3` });
    expect(recordingOf(small)?.content.equals(mp3)).toBe(true);
    expect(recordingOf(large)).toMatchObject({ via: 'upload', FILENAME: `${large}.wav` });
    expect(recordingOf(large)?.content.length).toBe(bigWav.length);
    expect(recordingOf(fake)).toBeUndefined();
    expect(await call(fake)).toMatchObject({ sync_state: 'failed', last_error: expect.stringMatching(/not a wav or mp3/) });
  });

  it('never downloads a recording from a host outside RECORDING_ALLOWED_HOSTS', async () => {
    const id = uid();
    await post([ev(id, 'ended', { sip_phones: ['101'], status: 'answered', duration: 5 }), ev(id, 'recording', { recording_url: 'http://169.254.169.254/latest/meta-data.mp3' })]).expect(202);
    expect(await synced(id)).toMatchObject({ sync_state: 'failed', last_error: expect.stringMatching(/RECORDING_ALLOWED_HOSTS/) });
  });

  it('rejects a bad element with its index and stores nothing', async () => {
    const id = uid();
    const res = await post([ev(id, 'ringing'), ev(id, 'ended', { status: 'weird' }), { ...ev(id, 'ringing'), occurred_at: '2026-11-24 10:00' }, 7]).expect(422);
    expect(Object.keys(res.body.errors).sort()).toEqual(['1.status', '2.occurred_at', '3']);
    expect(await call(id)).toBeUndefined();
    const tooMany = await post(Array.from({ length: 501 }, () => ev(uid(), 'ringing'))).expect(422);
    expect(tooMany.body.errors).toEqual({ body: ['must hold at most 500 events'] });
    await post([]).expect(422);
    await post('"x"').expect(422);
    await post(ev(id, 'ringing', { phone_number: 'anonymous' })).expect(422);
    await post(ev(id, 'recording', { recording_url: 'ftp://x/y.mp3' })).expect(422);
  });

  it("looks a company's stored calls up by their unique key even when the table's statistics predate them", async () => {
    const ringing = (ids: string[]) => ids.map((id) => ev(id, 'ringing', { sip_phones: ['101'] }));
    const postAll = async (token: string, ids: string[]) => {
      for (let i = 0; i < ids.length; i += 100) await post(ringing(ids.slice(i, i + 100)), token).expect(202);
    };
    // Statistics gathered while another company had all the calls: the planner expects this one to have none.
    const earlier = await t.login('admin');
    await postAll(earlier.token, Array.from({ length: 1000 }, () => uid()));
    const db = t.app.get(DataSource);
    await db.query('ANALYZE calls');
    const fresh = await t.login('admin');
    const ids = Array.from({ length: 500 }, () => uid()).sort();
    await postAll(fresh.token, ids);
    const plan = JSON.stringify(await db.query(`EXPLAIN (FORMAT JSON) ${LOCK_CALLS.text}`, [fresh.companyId, ids.slice(0, 3)]));
    expect(plan).toContain('"Index Name":"uq_calls_company_call"');
    expect(plan).not.toContain('"Filter"');
  });

  it('reuses one plan for a statement run with a generic plan, and plans the rest of its transaction for each run', async () => {
    const byId = prepared('test_company_by_id', 'SELECT id FROM companies WHERE id = $1');
    const plans = prepared('test_plans', `SELECT generic_plans, custom_plans, current_setting('plan_cache_mode') AS mode FROM pg_prepared_statements WHERE name = $1`);
    const seen = await inTransaction(pgPool(t.app.get(DataSource)), async (client) => {
      for (let i = 0; i < 3; i++) expect(await runGeneric(client, byId, [admin.companyId])).toEqual([{ id: admin.companyId }]);
      await run(client, byId, [admin.companyId]);
      const [row] = await run<{ generic_plans: string; custom_plans: string; mode: string }>(client, plans, [byId.name]);
      return { result: row, queued: [] };
    });
    expect(seen).toEqual({ generic_plans: '3', custom_plans: '1', mode: 'force_custom_plan' });
  });

  it('lists calls newest first, filters by sync_state, and lets an admin retry a failed one', async () => {
    const page = await t.http().get('/integration/bitrix/calls?per_page=3').set(auth(admin.token)).expect(200);
    expect(page.body.result).toMatchObject({ page: 1, per_page: 3 });
    expect(page.body.result.items).toHaveLength(3);
    expect(page.body.result.total).toBeGreaterThan(3);
    const item = page.body.result.items[0];
    expect(Object.keys(item).sort()).toEqual(['attempts', 'bitrix_call_id', 'call_id', 'direction', 'id', 'last_error', 'phone_number', 'started_at', 'status', 'sync_state', 'updated_at']);
    const failed = await t.http().get('/integration/bitrix/calls?sync_state=failed').set(auth(admin.token)).expect(200);
    expect(failed.body.result.items.length).toBeGreaterThan(0);
    expect(failed.body.result.items.every((i: { sync_state: string }) => i.sync_state === 'failed')).toBe(true);
    await t.http().get('/integration/bitrix/calls?sync_state=nope').set(auth(admin.token)).expect(422);
    await t.http().get('/integration/bitrix/calls?per_page=1000').set(auth(admin.token)).expect(422);

    const user = await t.login('user', admin.companyId);
    await t.http().post(`/integration/bitrix/calls/${failed.body.result.items[0].id}/retry`).set(auth(user.token)).expect(403);
    const retried = await t.http().post(`/integration/bitrix/calls/${failed.body.result.items[0].id}/retry`).set(auth(admin.token)).expect(200);
    expect(retried.body.result).toMatchObject({ sync_state: 'pending', attempts: 0, last_error: null });
    const synced = await t.http().get('/integration/bitrix/calls?sync_state=synced&per_page=1').set(auth(admin.token)).expect(200);
    const notFailed = await t.http().post(`/integration/bitrix/calls/${synced.body.result.items[0].id}/retry`).set(auth(admin.token)).expect(409);
    expect(notFailed.body.message).toBe('Only a failed call can be retried; this one is synced.');
    await t.http().post('/integration/bitrix/calls/999999999/retry').set(auth(admin.token)).expect(404);
    await t.http().post('/integration/bitrix/calls/abc/retry').set(auth(admin.token)).expect(404);
    // Another company sees none of these calls.
    const other = await t.login('admin');
    expect((await t.http().get('/integration/bitrix/calls').set(auth(other.token)).expect(200)).body.result.total).toBe(0);
    await t.http().post(`/integration/bitrix/calls/${item.id}/retry`).set(auth(other.token)).expect(404);
  });

  it('lets Bitrix24 create a lead (CRM_CREATE, CRM_SOURCE) only for the directions crm_create covers', async () => {
    await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ crm_create: 'inbound', crm_source: 'WEB', show_card: 'never' }).expect(200);
    try {
      const inbound = uid();
      const outbound = uid();
      await post([
        ev(inbound, 'ended', { phone_number: '+998 99 000 11 22', sip_phones: ['101'], status: 'answered', duration: 9 }),
        ev(outbound, 'ended', { direction: 'outbound', phone_number: '+998 99 000 33 44', sip_phones: ['101'], status: 'answered', duration: 9 }),
      ]).expect(202);
      await synced(inbound);
      await synced(outbound);
      const leads = portal.crm.list('LEAD');
      expect(leads.filter((l) => String(l.TITLE).includes('+998990001122'))).toMatchObject([{ SOURCE_ID: 'WEB' }]);
      expect(leads.filter((l) => String(l.TITLE).includes('+998990003344'))).toEqual([]);
      expect(bitrixCall(inbound)[0]).toMatchObject({ CRM_ENTITY_TYPE: 'LEAD', CRM_SOURCE: 'WEB' });
      expect(portal.telephony.cards.filter((c) => c.CALL_ID === bitrixCall(inbound)[0].CALL_ID && c.action === 'show')).toEqual([]);
    } finally {
      await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ crm_create: 'none', crm_source: null, show_card: 'ringing' }).expect(200);
    }
  });

  it('diagnoses the connection', async () => {
    const res = await t.http().get('/integration/bitrix/check').set(auth(admin.token)).expect(200);
    expect(res.body.result.checks.map((c: { name: string }) => c.name)).toEqual(['connected', 'token', 'scopes', 'events', 'rate_limit', 'default_line']);
    expect(res.body.result.checks.find((c: { name: string }) => c.name === 'connected').ok).toBe(true);
    const other = await t.login('admin');
    const off = await t.http().get('/integration/bitrix/check').set(auth(other.token)).expect(200);
    expect(off.body.result).toEqual({ ok: false, checks: [{ name: 'connected', ok: false, message: 'Bitrix24 is not connected.' }] });
  });
});
