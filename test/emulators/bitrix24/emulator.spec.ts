import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import qs from 'qs';
import { Bitrix24Emulator } from './emulator';
import type { Portal } from './portal';
import { connectApp, restCall, tokenRequest, type Answer, type TokenAnswer } from './spec-support';

describe('Bitrix24 emulator', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;

  const token = (params: Record<string, string>, method: 'GET' | 'POST' = 'POST'): Promise<Answer> => tokenRequest(emu, params, method);
  const connect = (target: Portal = portal, userId = 1): Promise<TokenAnswer> => connectApp(emu, target, userId);
  const call = (auth: string, method: string, params: Record<string, unknown> = {}, target: Portal = portal): Promise<Answer> =>
    restCall(target, auth, method, params);

  beforeEach(async () => {
    emu = new Bitrix24Emulator({ codeTtlSec: 30 });
    await emu.start();
    portal = await emu.addPortal({ users: 12 });
  });

  afterEach(async () => {
    await emu.stop();
  });

  describe('OAuth', () => {
    it('redirects the consent with a code and exchanges it for the §1.4 token answer', async () => {
      const consent = await fetch(`${portal.origin}/oauth/authorize/?client_id=${emu.clientId}&state=s1`, {
        redirect: 'manual',
      });
      expect(consent.status).toBe(302);
      const location = new URL(consent.headers.get('location')!);
      expect(location.origin + location.pathname).toBe(`${emu.oauthUrl}/app/callback`);
      expect(Object.fromEntries(location.searchParams)).toEqual({
        code: expect.stringMatching(/^[0-9a-f]{60,}$/),
        state: 's1',
        domain: portal.domain,
        member_id: portal.memberId,
        scope: 'crm,telephony,user_basic,placement',
        server_domain: emu.oauthDomain,
      });

      const answer = await token({ grant_type: 'authorization_code', code: location.searchParams.get('code')! }, 'GET');
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({
        access_token: expect.stringMatching(/^[0-9a-f]{60,}$/),
        expires: expect.any(Number),
        expires_in: 3600,
        scope: 'crm,telephony,user_basic,placement',
        domain: emu.oauthDomain,
        server_endpoint: `${emu.oauthUrl}/rest/`,
        status: 'L',
        client_endpoint: `${portal.origin}/rest/`,
        member_id: portal.memberId,
        user_id: 1,
        refresh_token: expect.stringMatching(/^[0-9a-f]{60,}$/),
      });
      expect(answer.body).not.toHaveProperty('application_token');
    });

    it('refuses a wrong client_id on the consent page without redirecting', async () => {
      const page = await fetch(`${portal.origin}/oauth/authorize/?client_id=someone.else`, { redirect: 'manual' });
      expect(page.status).toBe(400);
      expect(page.headers.get('location')).toBeNull();
    });

    it('makes codes single-use, expiring after codeTtlSec, and checks the client', async () => {
      const { code } = portal.authorize();
      expect((await token({ grant_type: 'authorization_code', code, client_secret: 'wrong' })).body.error).toBe('invalid_client');
      expect((await token({ grant_type: 'authorization_code', code })).status).toBe(200); // the client is checked first
      expect(await token({ grant_type: 'authorization_code', code })).toEqual({
        status: 400,
        body: { error: 'invalid_grant', error_description: expect.any(String) },
      });
      const late = portal.authorize().code;
      emu.advanceTime(31);
      expect(await token({ grant_type: 'authorization_code', code: late })).toEqual({
        status: 400,
        body: { error: 'expired_token', error_description: 'The authorization token provided has expired.' },
      });
      expect(emu.oauthRequests.map((r) => [r.grantType, r.status])).toEqual([
        ['authorization_code', 401],
        ['authorization_code', 200],
        ['authorization_code', 400],
        ['authorization_code', 400],
      ]);
    });

    it('rotates refresh tokens: a reused one is invalid_grant and the old access token dies', async () => {
      const first = await connect();
      const refreshed = await token({ grant_type: 'refresh_token', refresh_token: first.refresh_token });
      expect(refreshed.status).toBe(200);
      expect(refreshed.body.refresh_token).not.toBe(first.refresh_token);
      expect(refreshed.body.user_id).toBe(1);

      expect((await token({ grant_type: 'refresh_token', refresh_token: first.refresh_token })).body.error).toBe('invalid_grant');
      expect((await call(first.access_token, 'profile')).body.error).toBe('invalid_token');
      expect((await call(refreshed.body.access_token, 'profile')).body.result).toMatchObject({ ID: '1', ADMIN: true });
    });

    it('answers 401 expired_token for an expired access token, and refresh still works', async () => {
      const tokens = await connect();
      portal.expireAccessTokens();
      expect(await call(tokens.access_token, 'user.current')).toEqual({
        status: 401,
        body: { error: 'expired_token', error_description: 'The access token provided has expired.' },
      });
      const refreshed = await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token });
      expect((await call(refreshed.body.access_token, 'user.current')).status).toBe(200);
      emu.advanceTime(3601);
      expect((await call(refreshed.body.access_token, 'user.current')).body.error).toBe('expired_token');
    });

    it('revokes everything when the app is uninstalled', async () => {
      const tokens = await connect();
      portal.revokeApp();
      expect((await call(tokens.access_token, 'profile')).status).toBe(401);
      expect((await token({ grant_type: 'refresh_token', refresh_token: tokens.refresh_token })).body.error).toBe('invalid_grant');
    });
  });

  describe('REST', () => {
    it('answers the documented auth, method and scope errors', async () => {
      const tokens = await connect();
      expect((await fetch(`${portal.origin}/rest/profile`)).status).toBe(401);
      expect((await call('0'.repeat(70), 'profile')).body.error).toBe('invalid_token');
      expect(await call(tokens.access_token, 'no.such.method')).toEqual({
        status: 404,
        body: { error: 'ERROR_METHOD_NOT_FOUND', error_description: 'Method not found!' },
      });
      expect((await call(tokens.access_token, 'tasks.task.add', { fields: { TITLE: 'x' } })).status).toBe(403);
      // Method names are case-insensitive; GET with PHP brackets works as well as JSON.
      const viaGet = await fetch(`${portal.origin}/rest/USER.Get?auth=${tokens.access_token}&FILTER%5BUF_PHONE_INNER%5D=103`);
      expect(((await viaGet.json()) as Answer['body']).result).toEqual([expect.objectContaining({ ID: '3', UF_PHONE_INNER: '103', ACTIVE: true })]);
    });

    it('refuses requests above the burst with 503 QUERY_LIMIT_EXCEEDED and counts them', async () => {
      const limited = await emu.addPortal({ users: 2, rateLimit: { rate: 0.01, burst: 5 } });
      const tokens = await connect(limited);
      const statuses: number[] = [];
      for (let i = 0; i < 7; i++) statuses.push((await call(tokens.access_token, 'profile', {}, limited)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 503, 503]);
      expect((await call(tokens.access_token, 'profile', {}, limited)).body).toEqual({
        error: 'QUERY_LIMIT_EXCEEDED',
        error_description: 'Too many requests',
      });
      expect(limited.stats).toMatchObject({ queryLimitExceeded: 3, requests: 8 });
      // Brief §2.7: every HTTP request adds 1, refused ones too, so the three refusals lifted it to 8.
      expect(limited.stats.maxBucketLevel).toBeCloseTo(8, 1);
      emu.advanceTime(100); // drains one request's worth at 0.01/s: 7 + 1 is still above 5
      expect((await call(tokens.access_token, 'profile', {}, limited)).status).toBe(503);
      emu.advanceTime(500); // 8 - 5 = 3, + 1 = 4
      expect((await call(tokens.access_token, 'profile', {}, limited)).status).toBe(200);
    });

    it('starts a filled bucket at the burst: nothing until it drains', async () => {
      const limited = await emu.addPortal({ users: 2, rateLimit: { rate: 0.01, burst: 5 } });
      const tokens = await connect(limited);
      limited.limiter.fill();
      expect((await call(tokens.access_token, 'profile', {}, limited)).status).toBe(503);
      emu.advanceTime(200); // 6 - 2 = 4, + 1 = 5
      expect((await call(tokens.access_token, 'profile', {}, limited)).status).toBe(200);
    });

    it('uses the Enterprise bucket for licenseFamily ent', async () => {
      const ent = await emu.addPortal({ licenseFamily: 'ent' });
      expect(ent.limiter.limit).toEqual({ rate: 5, burst: 250 });
      expect(portal.limiter.limit).toEqual({ rate: 2, burst: 50 });
    });

    it('pages user.get by 50 with total and next, and start=-1 without a count', async () => {
      const big = await emu.addPortal({ users: 120, rateLimit: { rate: 100, burst: 100 } });
      const tokens = await connect(big);
      const pages = [];
      for (let start = 0; start !== undefined; ) {
        const page = await call(tokens.access_token, 'user.get', { FILTER: { ACTIVE: true }, start }, big);
        pages.push(page.body);
        start = page.body.next;
      }
      expect(pages.map((p) => [p.result.length, p.total, p.next])).toEqual([
        [50, 120, 50],
        [50, 120, 100],
        [20, 120, undefined],
      ]);
      expect(new Set(pages.flatMap((p) => p.result.map((u: { UF_PHONE_INNER: string }) => u.UF_PHONE_INNER))).size).toBe(120);
      const scan = await call(tokens.access_token, 'user.get', { filter: { '>ID': 100 }, order: { ID: 'ASC' }, start: -1 }, big);
      expect(scan.body.result).toHaveLength(20);
      expect(scan.body).not.toHaveProperty('total');
      expect(scan.body).not.toHaveProperty('next');
    });

    it('seeds 5,000 users quickly', async () => {
      const started = Date.now();
      const large = await emu.addPortal({ users: 5000 });
      expect(Date.now() - started).toBeLessThan(1000);
      expect(new Set(large.users.map((u) => u.UF_PHONE_INNER)).size).toBe(5000);
      expect(large.users.filter((u) => u.ADMIN).map((u) => u.ID)).toEqual([1]);
    });
  });

  describe('batch', () => {
    it('feeds $result references forward and encodes empty maps as []', async () => {
      const tokens = await connect();
      const answer = await call(tokens.access_token, 'batch', {
        halt: 0,
        cmd: {
          find: 'user.get?FILTER[UF_PHONE_INNER]=104',
          same: 'user.get?FILTER[ID]=$result[find][0][ID]',
          nothing: 'crm.duplicate.findbycomm?type=PHONE&values[]=%2B998900000000',
        },
      });
      expect(answer.status).toBe(200);
      const { result } = answer.body;
      expect(result.result.same).toEqual([expect.objectContaining({ ID: '4', UF_PHONE_INNER: '104' })]);
      expect(result.result.nothing).toEqual([]);
      expect(result.result_error).toEqual([]);
      expect(result.result_next).toEqual([]);
      expect(result.result_total).toEqual({ find: 1, same: 1 });
      expect(Object.keys(result.result_time)).toEqual(['find', 'same', 'nothing']);
      expect(portal.requests.filter((r) => !r.inBatch).map((r) => r.method)).toEqual(['batch']);
      expect(portal.stats.maxBucketLevel).toBe(1);
    });

    it('reports errors per command (array form) and halts on demand', async () => {
      const tokens = await connect();
      const mixed = await call(tokens.access_token, 'batch', { cmd: ['crm.lead.get?id=999', 'profile', 'batch?cmd[]=profile'] });
      expect(mixed.body.result.result).toEqual({ 1: expect.objectContaining({ ID: '1' }) });
      expect(mixed.body.result.result_error).toEqual({
        0: { error: '', error_description: 'Not found' },
        2: { error: 'ERROR_BATCH_METHOD_NOT_ALLOWED', error_description: 'Method is not allowed for batch usage' },
      });
      const halted = await call(tokens.access_token, 'batch', { halt: 1, cmd: ['crm.lead.get?id=999', 'profile'] });
      expect(halted.body.result.result).toEqual([]);
    });
  });

  describe('telephony', () => {
    const register = (auth: string, extra: Record<string, unknown> = {}) =>
      call(auth, 'telephony.externalcall.register', {
        USER_ID: 2,
        PHONE_NUMBER: '+998901112233',
        TYPE: 2,
        CRM_CREATE: 1,
        LINE_NUMBER: '+998712000000',
        ...extra,
      });

    it('applies the 30-minute rule, finishes once, and creates the lead and the activity', async () => {
      const { access_token: auth } = await connect();
      const first = await register(auth, { CALL_START_DATE: new Date().toISOString().replace('Z', '+00:00') });
      expect(first.body.result).toEqual({
        CALL_ID: expect.stringMatching(/^externalCall\.[0-9a-f]{32}\.\d+$/),
        CRM_CREATED_LEAD: 1,
        CRM_CREATED_ENTITIES: [{ ENTITY_TYPE: 'LEAD', ENTITY_ID: 1 }],
        CRM_ENTITY_TYPE: 'LEAD',
        CRM_ENTITY_ID: 1,
      });
      const again = await register(auth, { PHONE_NUMBER: '998901112233' });
      expect(again.body.result.CALL_ID).toBe(first.body.result.CALL_ID);
      const distinct = await register(auth, { EXTERNAL_CALL_ID: 'pbx-2' });
      expect(distinct.body.result.CALL_ID).not.toBe(first.body.result.CALL_ID);
      expect(distinct.body.result.CRM_ENTITY_ID).toBe(1); // the lead now matches the number

      const finish = await call(auth, 'telephony.externalcall.finish', { CALL_ID: first.body.result.CALL_ID, USER_ID: 3, DURATION: 42 });
      expect(finish.body.result).toMatchObject({
        CALL_ID: first.body.result.CALL_ID,
        PORTAL_USER_ID: 3,
        PHONE_NUMBER: '998901112233',
        PORTAL_NUMBER: '+998712000000',
        INCOMING: '2',
        CALL_DURATION: 42,
        CALL_START_DATE: {},
        CALL_STATUS: 1,
        CALL_FAILED_CODE: '200',
        CRM_ACTIVITY_ID: 1,
        CRM_ENTITY_TYPE: 'LEAD',
        CRM_ENTITY_ID: 1,
      });
      expect(portal.crm.leads[0]).toMatchObject({ ASSIGNED_BY_ID: '3', SOURCE_ID: 'CALL' });
      expect(await call(auth, 'telephony.externalcall.finish', { CALL_ID: first.body.result.CALL_ID, USER_ID: 3 })).toEqual({
        status: 400,
        body: { error: '', error_description: 'Call is not found (call should be registered prior to finishing' },
      });
      // After finish the same key registers a new call.
      expect((await register(auth)).body.result.CALL_ID).not.toBe(first.body.result.CALL_ID);
      // A start more than 30 minutes ago is outside the window.
      const old = await register(auth, { PHONE_NUMBER: '+998905556677', CALL_START_DATE: '2020-01-01T10:00:00+05:00' });
      const oldAgain = await register(auth, { PHONE_NUMBER: '+998905556677' });
      expect(oldAgain.body.result.CALL_ID).not.toBe(old.body.result.CALL_ID);
    });

    it('validates register like the core', async () => {
      const { access_token: auth } = await connect();
      const error = async (params: Record<string, unknown>) => (await register(auth, params)).body.error_description;
      expect(await error({ USER_ID: undefined })).toBe('USER_ID or USER_PHONE_INNER should be set');
      expect(await error({ TYPE: 9 })).toBe('Unknown TYPE');
      expect(await error({ CALL_START_DATE: '2026-03-07 10:20:30' })).toBe('CALL_START_DATE should be in the ISO-8601 format');
      expect(await error({ PHONE_NUMBER: 'abc' })).toBe('Unsupported phone number format');
      expect(await error({ USER_ID: 999 })).toBe('User is not found or is not active');
      const byExtension = await register(auth, { USER_ID: undefined, USER_PHONE_INNER: '105', PHONE_NUMBER: '102' });
      expect(byExtension.body.result).toMatchObject({ CRM_ENTITY_TYPE: '', CRM_ENTITY_ID: null, CRM_CREATED_LEAD: null });
    });

    it('attaches a recording only after finish, wav/mp3 only, by base64 or uploadUrl', async () => {
      const { access_token: auth } = await connect();
      const callId = (await register(auth)).body.result.CALL_ID as string;
      const attach = (params: Record<string, unknown>) => call(auth, 'telephony.externalCall.attachRecord', { CALL_ID: callId, ...params });
      expect((await attach({ FILENAME: 'a.mp3', FILE_CONTENT: 'AAAA' })).body).toEqual({
        error: '',
        error_description: 'Call is not found in the statistic table. Looks like it is not finished yet.',
      });
      await call(auth, 'telephony.externalcall.finish', { CALL_ID: callId, USER_ID: 2, DURATION: 0 });
      expect((await attach({ FILENAME: 'a.ogg', FILE_CONTENT: 'AAAA' })).body.error_description).toBe(
        'Wrong file extension. Only wav and mp3 are allowed',
      );
      expect((await attach({ FILENAME: 'a.mp3', FILE_CONTENT: 'not base64!' })).body.error_description).toMatch(/Base64/);
      expect((await attach({ FILENAME: 'a.mp3', FILE_CONTENT: Buffer.from('ID3 audio').toString('base64') })).body.result).toEqual({ FILE_ID: 1 });

      const { uploadUrl, fieldName } = (await attach({ FILENAME: 'call.wav' })).body.result;
      expect(fieldName).toBe('file');
      const form = new FormData();
      form.append('file', new Blob([Buffer.from('RIFF....WAVE')]), 'call.wav');
      const uploaded = await fetch(uploadUrl, { method: 'POST', body: form });
      expect(((await uploaded.json()) as Answer['body']).result).toEqual({ FILE_ID: 2 });
      expect(portal.callRecordings).toEqual([
        expect.objectContaining({ CALL_ID: callId, FILE_ID: 2, FILENAME: 'call.wav', via: 'upload', content: Buffer.from('RIFF....WAVE') }),
      ]);
      expect(portal.crm.activities[0]).toMatchObject({ RECORD_FILE_ID: 2, MISSED: true, STATUS_CODE: '304' });
    });

    it('shows and hides cards and logs them; finish hides the rest', async () => {
      const { access_token: auth } = await connect();
      const callId = (await register(auth, { SHOW: 0 })).body.result.CALL_ID;
      expect((await call(auth, 'telephony.externalcall.show', { CALL_ID: callId, USER_ID: [2, 3, 4] })).body.result).toBe(true);
      expect((await call(auth, 'telephony.externalcall.hide', { CALL_ID: callId, USER_ID: 3 })).body.result).toBe(true);
      await call(auth, 'telephony.externalcall.finish', { CALL_ID: callId, USER_ID: 2, DURATION: 5 });
      expect((await call(auth, 'telephony.externalcall.show', { CALL_ID: callId })).body.result).toBe(false);
      expect(portal.shownCards.map((c) => [c.action, c.userIds, c.via])).toEqual([
        ['show', [2, 3, 4], 'show'],
        ['hide', [3], 'hide'],
        ['hide', [2, 4], 'finish'],
      ]);
    });

    it('finds the responsible manager by phone', async () => {
      const { access_token: auth } = await connect();
      await call(auth, 'crm.contact.add', { fields: { NAME: 'Aziz', PHONE: [{ VALUE: '+998 90 777-66-55' }], ASSIGNED_BY_ID: 7 } });
      const search = await call(auth, 'telephony.externalCall.searchCrmEntities', { PHONE_NUMBER: '998907776655' });
      expect(search.body.result).toEqual([
        expect.objectContaining({
          CRM_ENTITY_TYPE: 'CONTACT',
          CRM_ENTITY_ID: 1,
          ASSIGNED_BY_ID: 7,
          ASSIGNED_BY: expect.objectContaining({ ID: '7', USER_PHONE_INNER: '107' }),
        }),
      ]);
      expect((await call(auth, 'crm.duplicate.findbycomm', { type: 'PHONE', values: ['+998907776655'] })).body.result).toEqual({ CONTACT: [1] });
      expect((await call(auth, 'crm.duplicate.findbycomm', { type: 'PHONE', values: ['907776655'] })).body.result).toEqual([]);
    });
  });

  describe('events and portal lifecycle', () => {
    let receiver: Server;
    let received: Record<string, unknown>[];
    let handlerUrl: string;

    beforeEach(async () => {
      received = [];
      receiver = createServer((req: IncomingMessage, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          received.push(qs.parse(body));
          res.end('ok');
        });
      });
      await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
      handlerUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/events?key=secret`;
    });

    afterEach(async () => {
      receiver.closeAllConnections();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    });

    it('binds events and delivers click-to-call as a PHP-style form', async () => {
      const { access_token: auth } = await connect();
      expect((await call(auth, 'event.bind', { event: 'onExternalCallStart', handler: handlerUrl })).body.result).toBe(true);
      expect(await call(auth, 'event.bind', { event: 'ONEXTERNALCALLSTART', handler: handlerUrl })).toEqual({
        status: 400,
        body: { error: 'ERROR_CORE', error_description: 'Handler already binded' },
      });
      expect((await call(auth, 'event.bind', { event: 'ONNOTHING', handler: handlerUrl })).body.error).toBe('ERROR_EVENT_NOT_FOUND');
      expect((await call(auth, 'event.get')).body.result).toEqual([
        { event: 'ONEXTERNALCALLSTART', handler: handlerUrl, auth_type: '0', offline: 0 },
      ]);

      const { callId, deliveries } = await portal.clickToCall({ userId: 4, phoneNumber: '+998935554433' });
      expect(deliveries.map((d) => d.status)).toEqual([200]);
      expect(received[0]).toMatchObject({
        event: 'ONEXTERNALCALLSTART',
        data: { USER_ID: '4', CALL_ID: callId, PHONE_NUMBER: '+998935554433', CRM_ENTITY_TYPE: 'LEAD', IS_MOBILE: '0' },
        auth: { member_id: portal.memberId, application_token: portal.applicationToken, domain: portal.domain, user_id: '4' },
      });
      const eventToken = (received[0].auth as { access_token: string }).access_token;
      expect((await call(eventToken, 'user.current')).body.result.ID).toBe('4');
      expect((await call(auth, 'telephony.externalcall.finish', { CALL_ID: callId, USER_ID: 4, DURATION: 10 })).status).toBe(200);

      expect((await call(auth, 'event.unbind', { event: 'ONEXTERNALCALLSTART', handler: handlerUrl })).body.result).toEqual({ count: 1 });
      await portal.uninstallApp();
      expect(received).toHaveLength(1); // no binding left for ONAPPUNINSTALL
    });

    it('moves to a new origin on rename; the old one redirects with 302', async () => {
      const { access_token: auth } = await connect();
      const oldOrigin = portal.origin;
      const newOrigin = await portal.rename();
      expect(newOrigin).not.toBe(oldOrigin);
      expect(portal.origin).toBe(newOrigin);
      const redirected = await fetch(`${oldOrigin}/rest/profile.json?auth=${auth}`, { method: 'POST', redirect: 'manual' });
      expect(redirected.status).toBe(302);
      expect(redirected.headers.get('location')).toBe(`${newOrigin}/rest/profile.json?auth=${auth}`);
      expect((await call(auth, 'profile')).status).toBe(200);
      expect((await connect()).client_endpoint).toBe(`${newOrigin}/rest/`);
    });

    it('injects faults: outage, one-off errors and connection resets', async () => {
      const { access_token: auth } = await connect();
      portal.faults.failNext('user.current', { status: 429, error: 'OPERATION_TIME_LIMIT', error_description: 'Method is blocked due to operation time limit.' });
      expect((await call(auth, 'user.current')).status).toBe(429);
      expect((await call(auth, 'user.current')).status).toBe(200);
      portal.faults.outage = true;
      expect((await call(auth, 'user.current')).body.error).toBe('INTERNAL_SERVER_ERROR');
      portal.faults.outage = false;
      portal.faults.resetConnections = true;
      await expect(call(auth, 'user.current')).rejects.toThrow();
      portal.faults.reset();
      const before = emu.requestCount();
      expect((await call(auth, 'profile')).status).toBe(200);
      expect(emu.requestCount()).toBe(before + 1);
    });
  });
});
