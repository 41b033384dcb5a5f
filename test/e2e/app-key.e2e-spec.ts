import type { ConfigService } from '@nestjs/config';
import { DataSource } from 'typeorm';
import { SecretBox } from '../../src/common/secret-box';
import type { Config } from '../../src/config/config';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, TEST_APP_KEY, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
const key = (fill: number) => Buffer.alloc(32, fill).toString('base64');
const boxWith = (appKey: string) => new SecretBox({ get: () => ({ appKey: Buffer.from(appKey, 'base64'), appKeyPrevious: null }) } as unknown as ConfigService<Config, true>);

/** SPEC §2: APP_KEY rotated (the old key as APP_KEY_PREVIOUS) needs no reconnect. A changed key: app-key-changed.e2e-spec.ts. */
describe('APP_KEY rotation', () => {
  let emu: Bitrix24Emulator;
  let t: TestApp;
  let portal: Portal;
  const others: TestApp[] = [];

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: 3 });
    t = await createTestApp({ env: bitrixEnv(emu, [portal]) });
  });
  afterAll(async () => {
    for (const o of others) await o.app.close();
    await t.close();
    await emu.stop();
  });

  /** A second instance on the same database, started with other keys (as after a redeploy). */
  async function restartWith(env: Record<string, string>): Promise<TestApp> {
    const app = await createTestApp({ env: { ...bitrixEnv(emu, [portal]), ...env }, databaseUrl: t.databaseUrl, });
    others.push(app);
    return app;
  }

  async function connectedCompany() {
    const admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
    const url = (await t.http().get('/integration/bitrix/settings').set(auth(admin.token)).expect(200)).body.result.smart_redirect_url as string;
    return { admin, url };
  }

  it('rotates: APP_KEY new and APP_KEY_PREVIOUS old keep everything working, re-sealed as used, without reconnecting', async () => {
    const { admin, url } = await connectedCompany();
    const db = t.app.get(DataSource);
    const secrets = async () =>
      (await db.query(
        `SELECT i.access_token, i.refresh_token, i.handler_key, s.smart_redirect_key FROM bitrix_integrations i JOIN bitrix_settings s USING (company_id) WHERE company_id = $1`,
        [admin.companyId],
      ))[0] as Record<string, string>;
    const before = await secrets();

    const rotating = await restartWith({ APP_KEY: key(11), APP_KEY_PREVIOUS: TEST_APP_KEY });
    expect((await rotating.http().get('/integration/bitrix/info').set(auth(admin.token)).expect(200)).body.result).toMatchObject({ status: 'connected', last_error: null });
    expect((await rotating.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200)).body.result).toHaveLength(3);
    expect((await rotating.http().get('/integration/bitrix/settings').set(auth(admin.token)).expect(200)).body.result.smart_redirect_url).toBe(url);

    // Every secret is now sealed with the new key alone, and still holds the same value.
    const after = await secrets();
    const [oldBox, newBox] = [boxWith(TEST_APP_KEY), boxWith(key(11))];
    for (const column of Object.keys(before)) expect(newBox.decrypt(after[column])).toBe(oldBox.decrypt(before[column]));

    // So the previous key can go.
    const rotated = await restartWith({ APP_KEY: key(11) });
    await rotated.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
    expect((await rotated.http().get('/integration/bitrix/settings').set(auth(admin.token)).expect(200)).body.result.smart_redirect_url).toBe(url);
    expect((await rotated.http().get('/integration/bitrix/info').set(auth(admin.token)).expect(200)).body.result.status).toBe('connected');
  });
});
