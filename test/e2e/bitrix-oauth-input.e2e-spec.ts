import { DataSource } from 'typeorm';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

jest.setTimeout(30_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Hostile and wrong input on the connect endpoints: clear 422s, and not one request to anyone. */
describe('Bitrix24 connect: bad input', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let portalB: Portal;
  let t: TestApp;
  let admin: { token: string; companyId: number };

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: 3 });
    portalB = await emu.addPortal({ users: 3 });
    t = await createTestApp({ env: bitrixEnv(emu, [portal, portalB]) });
    admin = await t.login('admin');
  });
  afterAll(async () => {
    await t.close();
    await emu.stop();
  });

  const integrationRows = async () => (await t.app.get(DataSource).query('SELECT count(*)::int AS n FROM bitrix_integrations'))[0].n as number;

  describe.each([
    '127.0.0.1',
    '169.254.169.254',
    'http://169.254.169.254/latest/meta-data',
    'localhost',
    'localhost:3000',
    'mycompany.bitrix24.uz.evil.com',
    'https://mycompany.bitrix24.uz.evil.com/',
    'user@mycompany.bitrix24.uz',
    'https://user:pass@mycompany.bitrix24.uz',
    'mycompany.bitrix24.uz@evil.com',
    'mycompany.bitrix24.uz:8443',
    'http://mycompany.bitrix24.uz',
    'mycompany.bitrix24.uz/oauth/authorize',
    'mycompany.bitrix24.uz?x=1',
    'mycompany.bitrix24.uz#frag',
    'evil.com\\@mycompany.bitrix24.uz',
    'a.b.bitrix24.uz',
    'bitrix24.uz',
    'ftp://mycompany.bitrix24.uz',
    ' ',
    'xn--80ak6aa92e.com',
  ])('domain %j', (domain) => {
    it('is refused with 422 on both connect endpoints and nothing is contacted', async () => {
      const before = emu.requestCount();
      const credentials = await t.http().post('/integration/bitrix/oauth/credentials').set(auth(admin.token)).send({ domain });
      expect(credentials.status).toBe(422);
      expect(credentials.body).toMatchObject({ status: 'error', code: 422, result: null, errors: { domain: [expect.any(String)] } });
      const connect = await t.http().post('/integration/bitrix/oauth').set(auth(admin.token)).send({ domain, code: 'abc' });
      expect(connect.status).toBe(422);
      expect(connect.body.errors.domain).toBeDefined();
      expect(emu.requestCount()).toBe(before);
    });
  });

  it('accepts the documented domain forms, in any case', async () => {
    for (const domain of ['mycompany.bitrix24.uz', 'https://MyCompany.Bitrix24.UZ/', 'MYCOMPANY.bitrix24.uz']) {
      const res = await t.http().post('/integration/bitrix/oauth/credentials').set(auth(admin.token)).send({ domain }).expect(200);
      expect(res.body.result.auth_url).toMatch(/^https:\/\/mycompany\.bitrix24\.uz\/oauth\/authorize\/\?client_id=local\.emulator\.app&state=[\w-]+$/);
    }
  });

  it.each([
    [{}, ['domain']],
    [{ domain: 5 }, ['domain']],
    [{ domain: 'x'.repeat(300) }, ['domain']],
    [{ domain: 'mycompany.bitrix24.uz', extra: 1 }, ['extra']],
  ])('validates the credentials body %j', async (body, fields) => {
    const res = await t.http().post('/integration/bitrix/oauth/credentials').set(auth(admin.token)).send(body).expect(422);
    expect(Object.keys(res.body.errors).sort()).toEqual(fields);
  });

  it.each([
    [{ domain: 'mycompany.bitrix24.uz', code: 'x', state: null }, ['state']],
    [{ domain: 'mycompany.bitrix24.uz', code: 'x', server_domain: null }, ['server_domain']],
    [{ domain: `${'a'.repeat(240)}.bitrix24.uz`, code: 'x' }, ['domain']],
    [{ domain: `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(40)}.bitrix24.uz`, code: 'x' }, ['domain']],
    [{ domain: 'mycompany.bitrix24.uz' }, ['code']],
    [{ domain: 'mycompany.bitrix24.uz', code: '' }, ['code']],
    [{ domain: 'mycompany.bitrix24.uz', code: 'x', state: 7 }, ['state']],
    [{ domain: 'mycompany.bitrix24.uz', code: 'x', server_domain: ['a'] }, ['server_domain']],
  ])('validates the connect body %j', async (body, fields) => {
    const res = await t.http().post('/integration/bitrix/oauth').set(auth(admin.token)).send(body).expect(422);
    expect(Object.keys(res.body.errors).sort()).toEqual(fields);
  });

  it.each(['evil.com', 'oauth.bitrix.info.evil.com', '127.0.0.1', 'localhost'])('refuses server_domain %s without contacting it', async (serverDomain) => {
    const before = emu.requestCount();
    const code = portal.authorize().code;
    const res = await t.http().post('/integration/bitrix/oauth').set(auth(admin.token)).send({ domain: portal.origin, code, server_domain: serverDomain }).expect(422);
    expect(res.body.errors).toEqual({ server_domain: ['server_domain must be oauth.bitrix.info or oauth.bitrix24.tech.'] });
    expect(emu.requestCount()).toBe(before);
  });

  it('refuses an invalid or reused code with 422 on code', async () => {
    const bad = await t.http().post('/integration/bitrix/oauth').set(auth(admin.token)).send({ domain: portal.origin, code: 'not-a-code' }).expect(422);
    expect(bad.body.errors).toEqual({ code: ['The authorization code is invalid or has expired: authorise again.'] });

    const code = portal.authorize().code;
    const ok = await t.http().post('/integration/bitrix/oauth').set(auth(admin.token)).send({ domain: portal.origin, code }).expect(200);
    expect(ok.body.result.status).toBe('connected');
    const reused = await t.http().post('/integration/bitrix/oauth').set(auth(admin.token)).send({ domain: portal.origin, code }).expect(422);
    expect(reused.body.errors.code).toBeDefined();
    await t.http().delete('/integration/bitrix/disconnect').set(auth(admin.token)).expect(200);
  });

  it('refuses an expired code (it lives 30 s)', async () => {
    const code = portal.authorize().code;
    emu.advanceTime(31);
    const res = await t.http().post('/integration/bitrix/oauth').set(auth(admin.token)).send({ domain: portal.origin, code }).expect(422);
    expect(res.body.errors.code).toBeDefined();
  });

  it('refuses a code issued by another portal and stores nothing', async () => {
    const company = await t.login('admin');
    const code = portalB.authorize().code;
    const res = await t.http().post('/integration/bitrix/oauth').set(auth(company.token)).send({ domain: portal.origin, code }).expect(422);
    expect(res.body.errors).toEqual({ domain: ['The authorization code was issued by another Bitrix24 portal.'] });
    const rows = await t.app.get(DataSource).query('SELECT 1 FROM bitrix_integrations WHERE company_id = $1', [company.companyId]);
    expect(rows).toEqual([]);
  });

  it('takes a state only once, only from the company it was issued to, only for its portal', async () => {
    const a = await t.login('admin');
    const b = await t.login('admin');
    const issue = async (token: string, domain: string) =>
      new URL((await t.http().post('/integration/bitrix/oauth/credentials').set(auth(token)).send({ domain }).expect(200)).body.result.auth_url).searchParams.get('state')!;

    const foreign = await issue(a.token, portal.origin);
    const res1 = await t.http().post('/integration/bitrix/oauth').set(auth(b.token)).send({ domain: portal.origin, code: portal.authorize().code, state: foreign }).expect(422);
    expect(res1.body.errors).toEqual({ state: ['The state is unknown, expired or already used: start the connection again.'] });

    const forB = await issue(b.token, portalB.origin);
    const res2 = await t.http().post('/integration/bitrix/oauth').set(auth(b.token)).send({ domain: portal.origin, code: portal.authorize().code, state: forB }).expect(422);
    expect(res2.body.errors).toEqual({ state: ['The state was issued for another portal.'] });

    const good = await issue(b.token, portal.origin);
    await t.http().post('/integration/bitrix/oauth').set(auth(b.token)).send({ domain: portal.origin, code: portal.authorize().code, state: good }).expect(200);
    const replay = await t.http().post('/integration/bitrix/oauth').set(auth(b.token)).send({ domain: portal.origin, code: portal.authorize().code, state: good }).expect(422);
    expect(replay.body.errors.state).toBeDefined();
    await t.http().delete('/integration/bitrix/disconnect').set(auth(b.token)).expect(200);
  });

  it('refuses an expired state (10 minutes)', async () => {
    const company = await t.login('admin');
    const url = (await t.http().post('/integration/bitrix/oauth/credentials').set(auth(company.token)).send({ domain: portal.origin }).expect(200)).body.result.auth_url;
    const state = new URL(url).searchParams.get('state');
    await t.app.get(DataSource).query(`UPDATE bitrix_oauth_states SET expires_at = now() - interval '1 second' WHERE company_id = $1`, [company.companyId]);
    const res = await t.http().post('/integration/bitrix/oauth').set(auth(company.token)).send({ domain: portal.origin, code: portal.authorize().code, state }).expect(422);
    expect(res.body.errors.state).toBeDefined();
  });

  it('follows the redirect flow with server_domain naming the configured OAuth server', async () => {
    const company = await t.login('admin');
    const { res, redirect } = await connectPortal(t, company.token, portalB);
    expect(redirect.server_domain).toBe(new URL(emu.oauthUrl).host);
    expect(res.status).toBe(200);
    await t.http().delete('/integration/bitrix/disconnect').set(auth(company.token)).expect(200);
  });

  it('answers 503 with a clear message when the Bitrix24 application is not configured', async () => {
    const bare = await createTestApp();
    try {
      const { token } = await bare.login('admin');
      const res = await bare.http().post('/integration/bitrix/oauth/credentials').set(auth(token)).send({ domain: 'mycompany.bitrix24.uz' }).expect(503);
      expect(res.body).toEqual({
        status: 'error',
        code: 503,
        result: null,
        message: 'The Bitrix24 application is not configured on this server (BITRIX_CLIENT_ID, BITRIX_CLIENT_SECRET).',
      });
      await bare.http().post('/integration/bitrix/oauth').set(auth(token)).send({ domain: 'mycompany.bitrix24.uz', code: 'x' }).expect(503);
    } finally {
      await bare.close();
    }
  });

  it('writes no integration row for any refused connect', async () => {
    const rows = await integrationRows();
    const company = await t.login('admin');
    const refused = [
      { domain: portal.origin, code: 'bogus' },
      { domain: portal.origin, code: portalB.authorize().code },
      { domain: portal.origin, code: portal.authorize().code, state: 'forged' },
      { domain: '169.254.169.254', code: portal.authorize().code },
    ];
    for (const body of refused) await t.http().post('/integration/bitrix/oauth').set(auth(company.token)).send(body).expect(422);
    expect(await integrationRows()).toBe(rows);
  });

  it('connects once when two admins of a company post codes at the same moment', async () => {
    const company = await t.login('admin');
    const colleague = await t.login('admin', company.companyId);
    const results = await Promise.all(
      [company, colleague].map((a) => t.http().post('/integration/bitrix/oauth').set(auth(a.token)).send({ domain: portal.origin, code: portal.authorize().code })),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200]);
    const rows = await t.app.get(DataSource).query('SELECT status FROM bitrix_integrations WHERE company_id = $1', [company.companyId]);
    expect(rows).toEqual([{ status: 'connected' }]);
    await t.http().delete('/integration/bitrix/disconnect').set(auth(company.token)).expect(200);
  });
});
