import { B24OAuth, EnumAppStatus } from '@bitrix24/b24jssdk';
import { Bitrix24Emulator } from './emulator';
import type { Portal } from './portal';
import { connectApp } from './spec-support';

/**
 * The emulator driven by the official JS SDK (`@bitrix24/b24jssdk`, brief §9.3) in its documented
 * server set-up: `new B24OAuth(tokens, {clientId, clientSecret})` with the token answer's
 * `client_endpoint` (ending in `/rest/`) and `server_endpoint`.
 */
describe('Bitrix24 emulator driven by @bitrix24/b24jssdk', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let b24: B24OAuth;

  beforeEach(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: 60, rateLimit: { rate: 100, burst: 1000 } });
    const tokens = await connectApp(emu, portal);
    b24 = new B24OAuth(
      {
        applicationToken: portal.applicationToken,
        userId: tokens.user_id,
        memberId: tokens.member_id,
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token,
        expires: tokens.expires,
        expiresIn: tokens.expires_in,
        scope: tokens.scope,
        domain: portal.domain,
        clientEndpoint: tokens.client_endpoint,
        serverEndpoint: tokens.server_endpoint,
        status: EnumAppStatus.Local,
      },
      { clientId: emu.clientId, clientSecret: emu.clientSecret },
    );
    b24.offClientSideWarning();
  });

  afterEach(async () => {
    await emu.stop();
  });

  it('calls methods through /rest//<method> with its bx24_* keys, and user.get still lists every employee', async () => {
    const profile = await b24.actions.v2.call.make<{ ID: string; ADMIN: boolean }>({ method: 'profile' });
    expect(profile.isSuccess).toBe(true);
    expect(profile.getData()?.result).toMatchObject({ ID: '1', ADMIN: true });
    const users = await b24.actions.v2.callList.make<{ ID: string }>({ method: 'user.get', params: { FILTER: { ACTIVE: true } }, idKey: 'ID' });
    expect(users.isSuccess).toBe(true);
    expect(users.getData()).toHaveLength(60);
    const recorded = portal.requests.filter((request) => request.method === 'user.get');
    expect(recorded.length).toBeGreaterThan(1);
    expect(recorded[0].params).toHaveProperty('bx24_request_id');
    expect(recorded.every((request) => request.status === 200)).toBe(true);
  });

  it('runs a batch: results by name, and a failing command fails it when halting on errors', async () => {
    // A coded error: the SDK reads `{"error":"",…}` (real "Not found") as a success, whatever the server.
    const calls = { me: { method: 'profile' }, denied: { method: 'tasks.task.add', params: { fields: { TITLE: 'x' } } } };
    const lenient = await b24.actions.v2.batch.make<{ ID: string }>({ calls, options: { isHaltOnError: false } });
    expect(lenient.getData()).toEqual({ me: expect.objectContaining({ ID: '1' }) });
    const strict = await b24.actions.v2.batch.make({ calls, options: { isHaltOnError: true } });
    expect(strict.isSuccess).toBe(false);
    expect(strict.getErrorMessages().join(' ')).toMatch(/higher privileges/);
    expect(portal.requests.filter((request) => !request.inBatch).map((request) => [request.method, request.params.halt])).toEqual([
      ['batch', 0],
      ['batch', 1],
    ]);
  });

  it('refreshes an expired token at the OAuth server and repeats the call', async () => {
    portal.expireAccessTokens();
    const refreshed: string[] = [];
    b24.setCallbackRefreshAuth(({ authData }) => {
      refreshed.push(authData.access_token);
      return Promise.resolve();
    });
    const profile = await b24.actions.v2.call.make<{ ID: string }>({ method: 'profile' });
    expect(profile.getData()?.result.ID).toBe('1');
    expect(emu.oauthRequests.map((request) => [request.grantType, request.status])).toEqual([
      ['authorization_code', 200],
      ['refresh_token', 200],
    ]);
    expect(refreshed).toHaveLength(1);
  });
});
