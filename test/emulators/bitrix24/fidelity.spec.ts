import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import qs from 'qs';
import { Bitrix24Emulator } from './emulator';
import type { Portal } from './portal';
import { connectApp, restCall, type Answer } from './spec-support';

/**
 * Where the emulator is held to real Bitrix24 (issue 6 items 8 and 10). Each case names the real
 * source it follows: the brief (`bitrix24-api.md` §…), the official docs source
 * (bitrix24/b24restdocs), field reports, or the Bitrix24 module source as public mirrors carry it
 * (`modules/voximplant/…` in avshatalov48/bitrix24-core-corp, `bitrix/modules/rest/…` in
 * yuriy-yarvinen/bitrix-1c-lesson and bziksv/riester).
 */
describe('Bitrix24 emulator fidelity', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let auth: string;

  const call = (method: string, params: Record<string, unknown> = {}, target: Portal = portal, token = auth): Promise<Answer> =>
    restCall(target, token, method, params);

  beforeEach(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: 12, rateLimit: { rate: 100, burst: 1000 } });
    auth = (await connectApp(emu, portal)).access_token;
  });

  afterEach(async () => {
    await emu.stop();
  });

  it('treats a doubled slash as the same method (b24jssdk with a client_endpoint ending in /rest/; nginx merge_slashes)', async () => {
    const doubled = await fetch(`${portal.origin}/rest//profile?auth=${auth}`);
    expect(doubled.status).toBe(200);
    expect(((await doubled.json()) as Answer['body']).result).toMatchObject({ ID: '1', ADMIN: true });
    const json = await fetch(`${portal.origin}/rest///user.get.json`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ auth, FILTER: { UF_PHONE_INNER: '103' } }),
    });
    expect(((await json.json()) as Answer['body']).result).toEqual([expect.objectContaining({ ID: '3' })]);
    // A webhook path stays a webhook path: only repeated slashes merge.
    expect((await fetch(`${portal.origin}/rest/1/secret/profile`)).status).toBe(401);
  });

  describe('user.get (modules/rest/lib/api/user.php; b24restdocs api-reference/user/user-get.md)', () => {
    it('ignores top-level keys that are not user fields, as prepareUserData drops them', async () => {
      const sdkKeys = { bx24_request_id: '3bff40bd-cddb-7a04-b2aa-02a6a0199d7b', bx24_sdk_ver: '2.2.0', bx24_sdk_type: 'b24-js-sdk' };
      expect((await call('user.get', sdkKeys)).body.total).toBe(12);
      expect((await call('user.get', { ...sdkKeys, FILTER: { ACTIVE: true } })).body.total).toBe(12);
      // Top-level user fields still filter (the docs' own example passes UF_DEPARTMENT there).
      const byDepartment = await call('user.get', { ...sdkKeys, UF_DEPARTMENT: 2 });
      expect(byDepartment.body.total).toBeGreaterThan(0);
      expect(byDepartment.body.result.every((user: { UF_DEPARTMENT: number[] }) => user.UF_DEPARTMENT.includes(2))).toBe(true);
      expect((await call('user.get', { '>ID': 10 })).body.result.map((user: { ID: string }) => user.ID)).toEqual(['11', '12']);
      // Inside FILTER, a key that is no user field is dropped the same way.
      expect((await call('user.get', { FILTER: { NO_SUCH_FIELD: 'x', ID: 4 } })).body.result).toEqual([expect.objectContaining({ ID: '4' })]);
    });

    it('leaves out UF_PHONE_INNER when it was never set, instead of null', async () => {
      const sparse = await emu.addPortal({ users: [{}, { UF_PHONE_INNER: '' }] });
      const token = (await connectApp(emu, sparse)).access_token;
      const rows = (await call('user.get', {}, sparse, token)).body.result as Record<string, unknown>[];
      expect(rows[0].UF_PHONE_INNER).toBe('101');
      expect(rows[1]).not.toHaveProperty('UF_PHONE_INNER');
      expect((await call('user.current', {}, sparse, (await connectApp(emu, sparse, 2)).access_token)).body.result).not.toHaveProperty(
        'UF_PHONE_INNER',
      );
    });
  });

  describe('batch (CRestProvider::methodsBatch, bitrix/modules/rest/classes/general/rest_provider.php)', () => {
    it('runs the first 50 commands and reports ERROR_BATCH_LENGTH_EXCEEDED for the rest, HTTP 200', async () => {
      const cmd = Object.fromEntries(Array.from({ length: 52 }, (_, i) => [`c${i}`, 'profile']));
      const answer = await call('batch', { cmd });
      expect(answer.status).toBe(200);
      expect(Object.keys(answer.body.result.result)).toHaveLength(50);
      expect(answer.body.result.result_error).toEqual({
        c50: { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: 'Max batch length exceeded' },
        c51: { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: 'Max batch length exceeded' },
      });
      expect(portal.requests.filter((request) => request.inBatch)).toHaveLength(50);
    });

    it('counts non-string entries towards the 50 and stops at the first excess one with halt', async () => {
      const cmd = [{ not: 'a string' }, ...Array.from({ length: 51 }, () => 'profile')];
      const answer = await call('batch', { halt: 1, cmd });
      expect(Object.keys(answer.body.result.result)).toHaveLength(49);
      expect(answer.body.result.result_error).toEqual({
        50: { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: 'Max batch length exceeded' },
      });
    });
  });

  describe('telephony (modules/voximplant/classes/general/vi_rest.php, lib/rest/helper.php)', () => {
    const register = (extra: Record<string, unknown> = {}) =>
      call('telephony.externalcall.register', { USER_ID: 2, PHONE_NUMBER: '+998901112233', TYPE: 2, CRM_CREATE: 1, ...extra });

    it('answers a repeated register of an unfinished call with the lead it created the first time', async () => {
      const first = (await register({ EXTERNAL_CALL_ID: 'pbx-1' })).body.result;
      expect(first).toMatchObject({ CRM_CREATED_LEAD: 1, CRM_CREATED_ENTITIES: [{ ENTITY_TYPE: 'LEAD', ENTITY_ID: 1 }] });
      const again = (await register({ EXTERNAL_CALL_ID: 'pbx-1', CRM_CREATE: 0 })).body.result;
      expect(again).toEqual({
        CALL_ID: first.CALL_ID,
        CRM_CREATED_LEAD: 1,
        CRM_CREATED_ENTITIES: [{ ENTITY_TYPE: 'LEAD', ENTITY_ID: 1 }],
        CRM_ENTITY_TYPE: 'LEAD',
        CRM_ENTITY_ID: 1,
      });
      expect(portal.crm.leads).toHaveLength(1);
      // The duplicate branch shows the card again when SHOW is on (the default).
      expect(portal.shownCards.map((card) => [card.action, card.CALL_ID, card.via])).toEqual([
        ['show', first.CALL_ID, 'register'],
        ['show', first.CALL_ID, 'register'],
      ]);
    });

    it('raises register, finish, attachRecord and line errors as new RestException($message): 400 with an empty code', async () => {
      const failure = async (method: string, params: Record<string, unknown>) => {
        const answer = await call(method, params);
        expect(answer.status).toBe(400);
        return answer.body as { error: string; error_description: string };
      };
      const empty = (description: string) => ({ error: '', error_description: description });
      expect(await failure('telephony.externalcall.register', { PHONE_NUMBER: '+998901112233', TYPE: 2 })).toEqual(
        empty('USER_ID or USER_PHONE_INNER should be set'),
      );
      // An extension that resolves to nobody is the same error (getUserByPhone returns false).
      expect(await failure('telephony.externalcall.register', { USER_PHONE_INNER: '999', PHONE_NUMBER: '+998901112233', TYPE: 2 })).toEqual(
        empty('USER_ID or USER_PHONE_INNER should be set'),
      );
      expect(await failure('telephony.externalcall.register', { USER_ID: 2, PHONE_NUMBER: '+998901112233', TYPE: 7 })).toEqual(empty('Unknown TYPE'));
      expect(await failure('telephony.externalcall.register', { USER_ID: 2, PHONE_NUMBER: 'abc', TYPE: 2 })).toEqual(
        empty('Unsupported phone number format'),
      );
      expect(await failure('telephony.externalcall.register', { USER_ID: 99, PHONE_NUMBER: '+998901112233', TYPE: 2 })).toEqual(
        empty('User is not found or is not active'),
      );
      // finish looks the call up before it checks the user (field report: b24-rest-docs issue #175).
      expect(await failure('telephony.externalcall.finish', { CALL_ID: 'externalCall.none.1', USER_ID: 99 })).toEqual(
        empty('Call is not found (call should be registered prior to finishing'),
      );
      expect(await failure('telephony.externalcall.finish', { CALL_ID: ['x'], USER_ID: 2 })).toEqual({
        error: 'INVALID_ARGUMENT',
        error_description: 'CALL_ID must be a string',
      });
      expect(await failure('telephony.externalCall.attachRecord', { CALL_ID: 'externalCall.none.1' })).toEqual(
        empty('Required parameters are not set. Request should contain or URL or FILENAME parameter'),
      );
      expect(await failure('telephony.externalCall.searchCrmEntities', {})).toEqual(empty('PHONE_NUMBER is empty'));
      expect(await failure('telephony.externalLine.add', {})).toEqual(empty('NUMBER should not be empty'));
    });

    it('leaves CRM_ENTITY_TYPE and CRM_ENTITY_ID out of the finish result of an unbound call', async () => {
      const callId = (await register({ CRM_CREATE: 0 })).body.result.CALL_ID as string;
      const finish = await call('telephony.externalcall.finish', { CALL_ID: callId, USER_ID: 2, DURATION: 7 });
      expect(finish.body.result).not.toHaveProperty('CRM_ENTITY_TYPE');
      expect(finish.body.result).not.toHaveProperty('CRM_ENTITY_ID');
      expect(finish.body.result).toMatchObject({
        CALL_ID: callId,
        CRM_ACTIVITY_ID: null,
        ERRORS: { ACTIVITY_CREATION: 'Could not find associated crm entity for the current call' },
      });
      const bound = (await register({ PHONE_NUMBER: '+998907770000' })).body.result.CALL_ID as string;
      const boundFinish = await call('telephony.externalcall.finish', { CALL_ID: bound, USER_ID: 2, DURATION: 7 });
      expect(boundFinish.body.result).toMatchObject({ CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: 1 });
      expect(boundFinish.body.result).not.toHaveProperty('ERRORS');
    });
  });

  describe('operating budget (bitrix/modules/rest/lib/engine/access/loadlimiter.php; CRestServer::processCall; brief §2.3, §2.7)', () => {
    let expensive: Portal;
    let token: string;

    beforeEach(async () => {
      expensive = await emu.addPortal({ operating: { costSec: { 'user.get': 100 } } });
      token = (await connectApp(emu, expensive)).access_token;
    });

    it('refuses a method with 429 OPERATION_TIME_LIMIT once it used more than 480 s, and reports time.operating', async () => {
      const started = emu.clock.nowSec();
      const operating: number[] = [];
      for (let i = 0; i < 5; i++) {
        const answer = await call('user.get', {}, expensive, token);
        expect(answer.status).toBe(200);
        operating.push(answer.body.time.operating);
        expect(answer.body.time.processing).toBe(100);
        expect(answer.body.time.operating_reset_at).toBeGreaterThanOrEqual(started + 600);
        expect(answer.body.time.operating_reset_at).toBeLessThanOrEqual(started + 601);
      }
      expect(operating).toEqual([100, 200, 300, 400, 500]);
      expect(await call('user.get', {}, expensive, token)).toEqual({
        status: 429,
        body: { error: 'OPERATION_TIME_LIMIT', error_description: 'Method is blocked due to operation time limit.' },
      });
      // Other methods keep their own budget; calls under 0.1 s are not charged at all.
      const profile = await call('profile', {}, expensive, token);
      expect(profile.status).toBe(200);
      expect(profile.body.time.operating).toBe(0);
    });

    it('limits the method inside batch too, while batch itself answers 200', async () => {
      for (let i = 0; i < 5; i++) await call('user.get', {}, expensive, token);
      const batch = await call('batch', { cmd: { users: 'user.get', me: 'profile' } }, expensive, token);
      expect(batch.status).toBe(200);
      expect(batch.body.result.result_error).toEqual({
        users: { error: 'OPERATION_TIME_LIMIT', error_description: 'Method is blocked due to operation time limit.' },
      });
      expect(batch.body.result.result.me).toMatchObject({ ID: '1' });
    });

    it('charges each batch command under its own method', async () => {
      const batch = await call('batch', { cmd: ['user.get', 'user.get', 'user.get', 'user.get', 'user.get', 'user.get'] }, expensive, token);
      expect(Object.keys(batch.body.result.result)).toEqual(['0', '1', '2', '3', '4']);
      expect(batch.body.result.result_time[4].operating).toBe(500);
      expect(batch.body.result.result_error).toEqual({
        5: { error: 'OPERATION_TIME_LIMIT', error_description: 'Method is blocked due to operation time limit.' },
      });
    });

    it('forgets charges as their one-minute buckets leave the 10-minute window', async () => {
      for (let i = 0; i < 3; i++) await call('user.get', {}, expensive, token);
      emu.advanceTime(5 * 60);
      for (let i = 0; i < 2; i++) await call('user.get', {}, expensive, token);
      expect((await call('user.get', {}, expensive, token)).status).toBe(429);
      emu.advanceTime(5 * 60 + 1); // the first three calls' bucket is out; 200 s remain
      const after = await call('user.get', {}, expensive, token);
      expect(after.status).toBe(200);
      expect(after.body.time.operating).toBe(300);
    });

    it('takes a smaller limit and costs set at run time', async () => {
      expensive.operating.limitSec = 10;
      expensive.operating.setCost('crm.lead.list', 6);
      expect((await call('crm.lead.list', {}, expensive, token)).status).toBe(200);
      expect((await call('crm.lead.list', {}, expensive, token)).status).toBe(200);
      expect((await call('crm.lead.list', {}, expensive, token)).status).toBe(429);
    });
  });

  it('adds a refused request to the bucket too (brief §2.7: every HTTP request adds 1)', async () => {
    const tight = await emu.addPortal({ rateLimit: { rate: 1, burst: 3 } });
    const token = (await connectApp(emu, tight)).access_token;
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await call('profile', {}, tight, token)).status);
    expect(statuses).toEqual([200, 200, 200, 503, 503, 503]);
    emu.advanceTime(2); // 6 - 2 = 4, + 1 = 5: still above 3, so knocking on keeps it refused
    expect((await call('profile', {}, tight, token)).status).toBe(503);
    emu.advanceTime(3); // 5 - 3 = 2, + 1 = 3
    expect((await call('profile', {}, tight, token)).status).toBe(200);
  });

  describe('events (brief §4.2, §4.6; b24-rest-docs issue #55)', () => {
    let receiver: Server;
    let received: Record<string, Record<string, unknown>>[];
    let handler: string;

    beforeEach(async () => {
      received = [];
      receiver = createServer((req: IncomingMessage, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          received.push(qs.parse(body) as Record<string, Record<string, unknown>>);
          res.end('ok');
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      handler = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events`;
    });

    afterEach(async () => {
      receiver.closeAllConnections();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    });

    it('delivers ONEXTERNALCALLSTART with exactly the data and auth keys of a live delivery, no server_endpoint', async () => {
      await call('event.bind', { event: 'ONEXTERNALCALLSTART', handler });
      await call('event.bind', { event: 'ONAPPUNINSTALL', handler });
      await portal.clickToCall({ userId: 3, phoneNumber: '+998935554433' });
      const [start] = received;
      expect(Object.keys(start).sort()).toEqual(['auth', 'data', 'event', 'event_handler_id', 'ts']);
      expect(Object.keys(start.data).sort()).toEqual(
        ['CALL_ID', 'CALL_LIST_ID', 'CRM_ENTITY_ID', 'CRM_ENTITY_TYPE', 'EXTENSION', 'IS_MOBILE', 'LINE_NUMBER', 'PHONE_NUMBER', 'PHONE_NUMBER_INTERNATIONAL', 'USER_ID'],
      );
      expect(Object.keys(start.auth).sort()).toEqual(
        ['access_token', 'application_token', 'client_endpoint', 'domain', 'expires', 'expires_in', 'member_id', 'scope', 'status', 'user_id'],
      );
      await portal.uninstallApp();
      expect(received[1].event).toBe('ONAPPUNINSTALL');
      expect(Object.keys(received[1].auth).sort()).toEqual(['application_token', 'client_endpoint', 'domain', 'member_id']);
    });
  });
});
