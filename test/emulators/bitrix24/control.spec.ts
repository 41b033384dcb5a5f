import { Bitrix24Emulator } from './emulator';
import type { Portal } from './portal';
import { connectApp, restCall, type Answer } from './spec-support';

/** The standalone's `/_emulator/…` control API, as the emulator README documents it (not Bitrix24). */
describe('Bitrix24 emulator control API', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let auth: string;

  const control = async (endpoint: string, params: Record<string, string> = {}): Promise<Answer> => {
    const response = await fetch(`${portal.origin}/_emulator/${endpoint}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(params).toString(),
    });
    return { status: response.status, body: await response.json() };
  };

  beforeEach(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: 5 });
    auth = (await connectApp(emu, portal)).access_token;
  });

  afterEach(async () => {
    await emu.stop();
  });

  it('expires every access token of the portal', async () => {
    expect(await control('expire-tokens')).toEqual({ status: 200, body: { expired: true } });
    expect((await restCall(portal, auth, 'profile')).body.error).toBe('expired_token');
  });

  it('sets the rate limit, and refuses a bad one', async () => {
    expect((await control('rate-limit', { rate: '0.5', burst: '2' })).body).toEqual({ rateLimit: { rate: 0.5, burst: 2 } });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await restCall(portal, auth, 'profile')).status);
    expect(statuses).toEqual([200, 200, 503]);
    expect((await control('rate-limit', { rate: 'fast', burst: '2' })).status).toBe(400);
    expect((await control('rate-limit', { rate: '2' })).status).toBe(400);
  });

  it('sets the latency of every answer', async () => {
    expect((await control('latency', { ms: '150' })).body).toEqual({ delayMs: 150 });
    const started = Date.now();
    await restCall(portal, auth, 'profile');
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect((await control('latency', { ms: '-1' })).status).toBe(400);
  });

  it('injects errors, an outage, and clears them; control works during an outage', async () => {
    expect((await control('fail', { method: 'user.get', error: 'QUERY_LIMIT_EXCEEDED', error_description: 'Too many requests', status: '503', times: '2' })).status).toBe(200);
    expect((await restCall(portal, auth, 'user.get')).status).toBe(503);
    expect((await restCall(portal, auth, 'user.get')).status).toBe(503);
    expect((await restCall(portal, auth, 'user.get')).status).toBe(200);
    expect((await control('fail', { method: 'user.get' })).status).toBe(400);
    expect((await control('fail', { method: 'user.get', error: 'X', status: '200' })).status).toBe(400);
    expect((await control('outage', { on: '1' })).body).toEqual({ outage: true });
    expect((await restCall(portal, auth, 'profile')).status).toBe(500);
    expect((await control('outage', { on: '0' })).body).toEqual({ outage: false });
    await control('fail', { method: '*', error: 'INTERNAL_SERVER_ERROR', status: '500' });
    await control('reset-faults');
    expect((await restCall(portal, auth, 'profile')).status).toBe(200);
  });

  it('changes the employee count: new ones join with extensions, the last ones are dismissed', async () => {
    expect((await control('employees', { count: '8' })).body).toEqual({ active: 8, total: 8 });
    const hired = (await restCall(portal, auth, 'user.get', { FILTER: { ID: 8 } })).body.result;
    expect(hired).toEqual([expect.objectContaining({ ID: '8', UF_PHONE_INNER: '108', ACTIVE: true })]);
    expect((await control('employees', { count: '3' })).body).toEqual({ active: 3, total: 8 });
    expect((await restCall(portal, auth, 'user.get', { FILTER: { ACTIVE: true } })).body.total).toBe(3);
    expect((await control('employees', { count: '0' })).status).toBe(400);
  });

  it('sets operating costs and the limit, and moves emulator time', async () => {
    await control('operating', { method: 'profile', cost_sec: '300', limit_sec: '500' });
    expect((await restCall(portal, auth, 'profile')).status).toBe(200);
    expect((await restCall(portal, auth, 'profile')).status).toBe(200);
    expect((await restCall(portal, auth, 'profile')).status).toBe(429);
    expect((await control('advance-time', { seconds: '601' })).status).toBe(200);
    expect((await restCall(portal, auth, 'profile')).status).toBe(200); // the 10-minute window moved on
    expect((await control('operating', { method: 'profile' })).status).toBe(400);
    const state = (await fetch(`${portal.origin}/_emulator/state`).then((r) => r.json())) as Answer['body'];
    expect(state).toMatchObject({ employees: { active: 5, total: 5 }, operatingLimitSec: 500, faults: { outage: false, delayMs: 0 } });
    expect((await control('nothing')).status).toBe(404);
  });
});
