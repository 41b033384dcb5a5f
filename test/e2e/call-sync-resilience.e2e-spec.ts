import { DataSource } from 'typeorm';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';
import { answeredCall, callRow, pbxCallId, pbxEvent, settled, until } from './support/calls';

jest.setTimeout(120_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
const USERS = [
  { ID: 1, ADMIN: true, UF_PHONE_INNER: '101' },
  { ID: 2, UF_PHONE_INNER: '102' },
];

/** Nothing lost, nothing sent twice: crashes mid-request, outages, expiring tokens, lost connections, two instances. */
describe('call sync through failures', () => {
  let emu: Bitrix24Emulator;
  afterEach(async () => {
    await emu.stop();
  });

  async function setUp(options: { portal?: Parameters<Bitrix24Emulator['addPortal']>[0]; connect?: boolean } = {}) {
    const portal = await emu.addPortal({ users: USERS, scopes: ['crm', 'telephony', 'user_basic', 'task'], ...options.portal });
    const t = await createTestApp({ env: bitrixEnv(emu, [portal]) });
    const admin = await t.login('admin');
    if (options.connect !== false) {
      expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
      await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ missed_call_task: true, bindings: [{ sip_phone: '101', bitrix_user_id: 1 }] }).expect(200);
    }
    const post = (body: unknown) => t.http().post('/pbx/events').set(auth(admin.token)).send(body as object).expect(202);
    return { portal, t, admin, post };
  }
  /** Every call of the portal registered once and finished once, by EXTERNAL_CALL_ID. */
  const mirroredOnce = (portal: Portal, ids: string[]) => {
    for (const id of ids) {
      const calls = portal.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID === id);
      expect([id, calls.length]).toEqual([id, 1]);
      expect([id, portal.telephony.statistics.filter((s) => s.CALL_ID === calls[0].CALL_ID).length]).toEqual([id, 1]);
    }
  };
  /** The row as a crashed instance leaves it: `steps` sent, their outcome never stored. */
  const crashAfterSending = (t: TestApp, callId: string, fields: string) =>
    t.app.get(DataSource).query(`UPDATE calls SET sync_state = 'pending', next_attempt_at = now(), ${fields} WHERE call_id = $1`, [callId]).then(() =>
      t.app.get(DataSource).query(`UPDATE call_sync_portals SET due_at = now()`),
    );

  it('never registers twice after a crash between sending and storing the answer', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const { portal, t, post } = await setUp();
    try {
      // Register and finish went out in one batch; the answer was lost.
      const both = pbxCallId();
      await post(answeredCall(both));
      await settled(t, both);
      await crashAfterSending(t, both, `bitrix_call_id = NULL, done_steps = '{}', sent_steps = '{register,finish}'`);
      await until(() => callRow(t, both), (r) => r?.sync_state === 'synced' && r.bitrix_call_id !== null);
      // Only the register went out (the call still rings): the same EXTERNAL_CALL_ID gets the same CALL_ID back.
      // (Within Bitrix24's 30 minutes of the call's start: a recent call.)
      const ringing = pbxCallId();
      const now = new Date().toISOString();
      await post(pbxEvent(ringing, 'ringing', { sip_phones: ['101'], occurred_at: now }));
      // Once the worker is done with it (waiting for the PBX's next event), as a crashed instance would have left it.
      const first = await until(() => callRow(t, ringing), (r) => typeof r?.bitrix_call_id === 'string' && r.next_attempt_at === Infinity);
      await crashAfterSending(t, ringing, `bitrix_call_id = NULL, shown_to = '{}', sent_steps = '{register}'`);
      await until(() => callRow(t, ringing), (r) => typeof r?.bitrix_call_id === 'string' && (r.shown_to as number[]).length === 1);
      expect((await callRow(t, ringing))?.bitrix_call_id).toBe(first?.bitrix_call_id);
      await post(pbxEvent(ringing, 'ended', { status: 'answered', duration: 3, occurred_at: new Date().toISOString() }));
      await settled(t, ringing);
      mirroredOnce(portal, [both, ringing]);
      // A missed-call task whose create answer was lost is found by its marker, not created again.
      const missed = pbxCallId();
      await post([pbxEvent(missed, 'ringing', { sip_phones: ['101'] }), pbxEvent(missed, 'ended', { status: 'no_answer', duration: 0 })]);
      await settled(t, missed);
      await crashAfterSending(t, missed, `done_steps = array_remove(done_steps, 'task'), sent_steps = '{task}', task_id = NULL`);
      await until(() => callRow(t, missed), (r) => r?.sync_state === 'synced' && r.task_id !== null);
      expect(portal.tasks.filter((task) => String(task.fields.TITLE).includes(missed))).toHaveLength(1);
    } finally {
      await t.close();
    }
  });

  it('creates a contact and a deal in the pipeline for an unknown number, at most once, and registers the call bound to the contact', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const { portal, t, admin, post } = await setUp();
    try {
      await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ pipeline_id: 1, crm_create: 'inbound', crm_source: 'WEB' }).expect(200);
      const known = portal.crm.add('CONTACT', { NAME: 'Aziz', PHONE: [{ VALUE: '+998935550022', VALUE_TYPE: 'WORK' }] }, 1);
      const fresh = pbxCallId();
      const regular = pbxCallId();
      await post([...answeredCall(fresh, { phone_number: '+998 97 111 22 33' }), ...answeredCall(regular, { phone_number: '93 555 00 22' })]);
      await settled(t, fresh);
      await settled(t, regular);
      const contacts = portal.crm.list('CONTACT').filter((c) => c.ORIGIN_ID === fresh);
      const deals = portal.crm.list('DEAL').filter((d) => d.ORIGIN_ID === fresh);
      expect(contacts).toHaveLength(1);
      expect(deals).toHaveLength(1);
      expect(deals[0]).toMatchObject({ CATEGORY_ID: '1', CONTACT_ID: contacts[0].ID, SOURCE_ID: 'WEB' });
      const [call] = portal.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID === fresh);
      expect(call).toMatchObject({ CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: Number(contacts[0].ID) });
      expect(portal.crm.activities.filter((a) => a.ORIGIN_ID === `VI_${call.CALL_ID}`)).toMatchObject([{ OWNER_TYPE: 'CONTACT', OWNER_ID: Number(contacts[0].ID) }]);
      // A number the CRM knows gets nothing created; outbound calls are not covered by crm_create.
      expect(portal.crm.list('CONTACT').filter((c) => c.ORIGIN_ID === regular)).toEqual([]);
      expect(portal.telephony.calls.find((c) => c.EXTERNAL_CALL_ID === regular)).toMatchObject({ CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: Number(known.ID) });
      // The create's answer was lost: the contact and deal are found by their origin, not made again.
      await crashAfterSending(t, fresh, `bitrix_call_id = NULL, done_steps = '{dedupe}', sent_steps = '{contact,deal,register,finish}', crm_entity_type = NULL, crm_entity_id = NULL, deal_id = NULL`);
      await until(() => callRow(t, fresh), (r) => r?.sync_state === 'synced' && r.deal_id !== null);
      expect(portal.crm.list('CONTACT').filter((c) => c.ORIGIN_ID === fresh)).toHaveLength(1);
      expect(portal.crm.list('DEAL').filter((d) => d.ORIGIN_ID === fresh)).toHaveLength(1);
      mirroredOnce(portal, [fresh, regular]);
    } finally {
      await t.close();
    }
  });

  it('stores calls of a company that is not connected (paused), and mirrors them without cards once it connects', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const { portal, t, admin, post } = await setUp({ connect: false });
    try {
      const ended = pbxCallId();
      const live = pbxCallId();
      await post([...answeredCall(ended), pbxEvent(live, 'ringing', { sip_phones: ['101'] })]);
      await until(() => callRow(t, ended), (r) => r?.sync_state === 'paused');
      const list = await t.http().get('/integration/bitrix/calls?sync_state=paused').set(auth(admin.token)).expect(200);
      expect(list.body.result.total).toBe(2);
      expect(portal.requests.filter((r) => r.method.startsWith('telephony'))).toEqual([]);

      expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
      await settled(t, ended);
      mirroredOnce(portal, [ended]);
      const [registered] = portal.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID === ended);
      expect(portal.telephony.cards.filter((c) => c.CALL_ID === registered.CALL_ID && c.action === 'show')).toEqual([]);
      // The call that still rings is registered for the integration's owner (no binding saved yet), and no
      // unbound operator gets a card.
      const [ringing] = await until(() => portal.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID === live), (c) => c.length === 1);
      expect(ringing).toMatchObject({ USER_ID: 1, shownTo: [] });
    } finally {
      await t.close();
    }
  });

  it('costs the worker no round for the events of a company that is not connected, and still pauses what falls pending', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const { portal, t, admin, post } = await setUp({ connect: false });
    const db = t.app.get(DataSource);
    const portalRow = async () =>
      (await db.query<{ due_at: Date | null; lease_owner: string | null }[]>(`SELECT due_at, lease_owner FROM call_sync_portals WHERE company_id = $1`, [admin.companyId]))[0];
    try {
      const first = pbxCallId();
      await post(pbxEvent(first, 'ringing', { sip_phones: ['101'] }));
      await until(() => callRow(t, first), (r) => r?.sync_state === 'paused');
      await until(portalRow, (r) => r?.due_at === null && r.lease_owner === null);
      // No worker may claim the portal now: a due_at set by the next events would stay for the test to see.
      await db.query(`UPDATE call_sync_portals SET lease_owner = 'elsewhere', lease_until = now() + interval '1 hour' WHERE company_id = $1`, [admin.companyId]);
      await post([pbxEvent(first, 'answered', { sip_phones: ['101'] }), pbxEvent(pbxCallId(), 'ringing', { sip_phones: ['101'] })]);
      expect((await portalRow()).due_at).toBeNull();
      await db.query(`UPDATE call_sync_portals SET lease_owner = NULL, lease_until = NULL WHERE company_id = $1`, [admin.companyId]);
      // A call left pending while nothing is connected (as a disconnect racing an ingest leaves it) is still paused.
      await db.query(`UPDATE calls SET sync_state = 'pending', next_attempt_at = now() WHERE call_id = $1`, [first]);
      await until(() => callRow(t, first), (r) => r?.sync_state === 'paused');

      expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
      await until(() => portal.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID === first), (c) => c.length === 1);
    } finally {
      await t.close();
    }
  });

  it('pauses on reauth_required and on disconnect, and resumes when the same portal is connected again', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const { portal, t, admin, post } = await setUp();
    try {
      portal.revokeApp();
      const afterRevoke = pbxCallId();
      await post(answeredCall(afterRevoke));
      await until(() => callRow(t, afterRevoke), (r) => r?.sync_state === 'paused');
      expect((await t.http().get('/integration/bitrix/info').set(auth(admin.token))).body.result.status).toBe('reauth_required');
      portal.reinstallApp();
      expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
      await settled(t, afterRevoke);

      // Waiting for re-authorisation, a call belongs to that portal: another portal of the company does not take it.
      portal.revokeApp();
      const whileRevoked = pbxCallId();
      await post(answeredCall(whileRevoked));
      await until(() => callRow(t, whileRevoked), (r) => r?.sync_state === 'paused');
      await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
      const afterDisconnect = pbxCallId();
      await post(answeredCall(afterDisconnect));
      await until(() => callRow(t, afterDisconnect), (r) => r?.sync_state === 'paused');
      const other = await emu.addPortal({ users: USERS });
      const t2 = await createTestApp({ env: bitrixEnv(emu, [portal, other]), databaseUrl: t.databaseUrl });
      try {
        // After a disconnect, the next portal the company connects takes the waiting calls.
        expect((await connectPortal(t2, admin.token, other)).res.status).toBe(200);
        await settled(t, afterDisconnect);
        mirroredOnce(other, [afterDisconnect]);
        expect((await callRow(t, whileRevoked))?.sync_state).toBe('paused');
        expect(other.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID === whileRevoked)).toEqual([]);
        portal.reinstallApp();
        await t2.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
        expect((await connectPortal(t2, admin.token, portal)).res.status).toBe(200);
      } finally {
        await t2.close();
      }
      await settled(t, whileRevoked);
      mirroredOnce(portal, [afterRevoke, whileRevoked]);
    } finally {
      await t.close();
    }
  });

  it('keeps the calls of an uninstalled portal paused until that portal installs and connects again', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const { portal, t, admin, post } = await setUp();
    try {
      // Bitrix24 delivers ONAPPUNINSTALL to the bound handler: point it at this app.
      const { port } = t.app.getHttpServer().address() as { port: number };
      for (const binding of portal.eventBindings) binding.handler = binding.handler.replace('https://bitrix.utel.example', `http://127.0.0.1:${port}`);
      portal.faults.outage = true;
      const waiting = pbxCallId();
      await post(answeredCall(waiting));
      await until(() => callRow(t, waiting), (r) => Number(r?.attempts) > 0);
      portal.faults.outage = false;
      expect((await portal.uninstallApp()).map((d) => d.status)).toEqual([200]);
      expect((await t.http().get('/integration/bitrix/info').set(auth(admin.token))).body.result.status).toBe('disconnected');
      expect(await callRow(t, waiting)).toMatchObject({ sync_state: 'paused', member_id: portal.memberId });

      const other = await emu.addPortal({ users: USERS });
      const t2 = await createTestApp({ env: bitrixEnv(emu, [portal, other]), databaseUrl: t.databaseUrl });
      try {
        expect((await connectPortal(t2, admin.token, other)).res.status).toBe(200);
        await new Promise((r) => setTimeout(r, 3_000));
        expect((await callRow(t, waiting))?.sync_state).toBe('paused');
        await t2.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
        portal.reinstallApp();
        expect((await connectPortal(t2, admin.token, portal)).res.status).toBe(200);
      } finally {
        await t2.close();
      }
      await settled(t, waiting);
      mirroredOnce(portal, [waiting]);
      expect(other.telephony.calls).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('finishes a call whose end the PBX never reported, a day after it was first heard of', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const { portal, t, post } = await setUp();
    const [abandoned, answeredAbandoned, recent] = [pbxCallId(), pbxCallId(), pbxCallId()];
    try {
      await post([
        pbxEvent(abandoned, 'ringing', { sip_phones: ['101'] }),
        pbxEvent(answeredAbandoned, 'ringing', { sip_phones: ['101'] }),
        pbxEvent(answeredAbandoned, 'answered', { sip_phones: ['101'] }),
        pbxEvent(recent, 'ringing', { sip_phones: ['101'] }),
      ]);
      const shown = (id: string) => until(() => portal.telephony.calls.find((c) => c.EXTERNAL_CALL_ID === id), (c) => c !== undefined && c.shownTo.length === 1);
      await Promise.all([shown(abandoned), shown(answeredAbandoned), shown(recent)]);
      // A day passes without their `ended`; an instance starting now looks for such calls at once.
      await t.app.get(DataSource).query(`UPDATE calls SET created_at = now() - interval '25 hours' WHERE call_id = ANY($1)`, [[abandoned, answeredAbandoned]]);
      const t2 = await createTestApp({ env: bitrixEnv(emu, [portal]), databaseUrl: t.databaseUrl });
      try {
        for (const [id, code] of [
          [abandoned, '503'],
          [answeredAbandoned, '200'],
        ]) {
          const row = await settled(t2, id);
          expect(row).toMatchObject({ sync_state: 'synced', status: code === '200' ? 'answered' : 'failed' });
          expect(String(row.last_error)).toContain('never reported the end');
          const [registered] = portal.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID === id);
          expect(registered.shownTo).toEqual([]);
          expect(portal.telephony.statistics.filter((st) => st.CALL_ID === registered.CALL_ID).map((st) => st.CALL_FAILED_CODE)).toEqual([code]);
        }
        mirroredOnce(portal, [abandoned, answeredAbandoned]);
        expect(await callRow(t2, recent)).toMatchObject({ status: 'ringing', ended_at: null });
      } finally {
        await t2.close();
      }
    } finally {
      await t.close();
    }
  });

  it('shows a ringing card before a backlog that has spent the rate limit, and still sends each step once', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const { portal, t, post } = await setUp({ portal: { rateLimit: { rate: 2, burst: 50 } } });
    try {
      // Register and finish of 1,200 calls: 48 batches, more than the burst holds.
      const backlog = Array.from({ length: 1200 }, () => pbxCallId());
      for (let i = 0; i < backlog.length; i += 250) await post(backlog.slice(i, i + 250).flatMap((id) => answeredCall(id)));
      const finished = () => portal.telephony.statistics.length;
      await until(finished, (n) => n > 0);
      const ringing: string[] = [];
      for (let i = 0; i < 6; i++) {
        const id = pbxCallId();
        ringing.push(id);
        await post(pbxEvent(id, 'ringing', { sip_phones: ['101'] }));
        await until(() => portal.telephony.calls.find((c) => c.EXTERNAL_CALL_ID === id), (c) => c !== undefined && c.shownTo.length === 1, 30_000);
        // Shown while finishes are still waiting for room: the card did not queue behind them.
        expect(finished()).toBeLessThan(backlog.length);
      }
      await post(ringing.map((id) => pbxEvent(id, 'ended', { sip_phones: ['101'], status: 'answered', duration: 5, occurred_at: '2026-11-24T10:00:05+05:00' })));
      for (const id of [...ringing, ...backlog]) await settled(t, id, 60_000);
      mirroredOnce(portal, [...ringing, ...backlog]);
      expect(portal.stats.queryLimitExceeded).toBe(0);
    } finally {
      await t.close();
    }
  });

  it('loses and duplicates nothing through a 20 s outage, lost connections and tokens expiring every 2 s', async () => {
    emu = new Bitrix24Emulator({ accessTokenTtlSec: 2 });
    await emu.start();
    const { portal, t, post } = await setUp();
    try {
      const ids = Array.from({ length: 120 }, () => pbxCallId());
      const half = ids.length / 2;
      await post(ids.slice(0, half).flatMap((id) => answeredCall(id)));
      portal.faults.outage = true;
      await post(ids.slice(half).flatMap((id) => answeredCall(id)));
      await new Promise((r) => setTimeout(r, 20_000));
      portal.faults.outage = false;
      portal.faults.resetConnections = true;
      await new Promise((r) => setTimeout(r, 1_000));
      portal.faults.resetConnections = false;
      for (const id of ids) await settled(t, id, 60_000);
      mirroredOnce(portal, ids);
      const rows = await t.app.get(DataSource).query(`SELECT sync_state, count(*)::int AS n FROM calls GROUP BY sync_state`);
      expect(rows).toEqual([{ sync_state: 'synced', n: ids.length }]);
      expect(emu.oauthRequests.filter((r) => r.error === 'invalid_grant')).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('two instances on one database send each step once and stay within the rate limit together', async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const { portal, t, post } = await setUp({ portal: { rateLimit: { rate: 2, burst: 50 } } });
    const t2 = await createTestApp({ env: bitrixEnv(emu, [portal]), databaseUrl: t.databaseUrl });
    try {
      const ids = Array.from({ length: 300 }, () => pbxCallId());
      await Promise.all([post(ids.slice(0, 150).flatMap((id) => answeredCall(id))), post(ids.slice(150).flatMap((id) => answeredCall(id)))]);
      for (const id of ids) await settled(t, id, 60_000);
      mirroredOnce(portal, ids);
      expect(portal.stats.queryLimitExceeded).toBe(0);
      // Register and finish of a call share a batch: 300 calls in a handful of requests.
      expect(portal.requests.filter((r) => r.method === 'batch').length).toBeLessThan(30);
    } finally {
      await t2.close();
      await t.close();
    }
  });
});
