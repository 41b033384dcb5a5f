import type { ConfigService } from '@nestjs/config';
import { DataSource } from 'typeorm';
import { SecretBox } from '../../src/common/secret-box';
import type { Config } from '../../src/config/config';
import { createTestApp, TEST_APP_KEY } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
const boxWith = (appKey: string) => new SecretBox({ get: () => ({ appKey: Buffer.from(appKey, 'base64'), appKeyPrevious: null }) } as unknown as ConfigService<Config, true>);

/**
 * SPEC §9: secrets the current APP_KEY cannot open (the key was changed) are a clear, logged error
 * and reauth_required, never a 500. Its own file: the one application whose logs are captured must
 * be the only one in this module registry (nestjs-pino keeps its root logger in module state).
 */
describe('a changed APP_KEY', () => {
  it('turns into reauth_required naming APP_KEY: users 409, settings 200, one logged error each; a reconnect heals', async () => {
    const emu = new Bitrix24Emulator();
    await emu.start();
    const portal = await emu.addPortal({ users: 3 });
    const t = await createTestApp({ env: bitrixEnv(emu, [portal]), captureLogs: true });
    try {
      const admin = await t.login('admin');
      expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
      const url = (await t.http().get('/integration/bitrix/settings').set(auth(admin.token)).expect(200)).body.result.smart_redirect_url as string;

      // What a restart with another APP_KEY amounts to: every stored secret sealed by a key the service does not have.
      const db = t.app.get(DataSource);
      const [ours, foreign] = [boxWith(TEST_APP_KEY), boxWith(Buffer.alloc(32, 9).toString('base64'))];
      const reseal = (sealed: string | null) => (sealed === null ? null : foreign.encrypt(ours.decrypt(sealed)));
      const [row] = await db.query('SELECT access_token, refresh_token, handler_key FROM bitrix_integrations WHERE company_id = $1', [admin.companyId]);
      await db.query('UPDATE bitrix_integrations SET access_token = $2, refresh_token = $3, handler_key = $4 WHERE company_id = $1', [
        admin.companyId,
        reseal(row.access_token),
        reseal(row.refresh_token),
        reseal(row.handler_key),
      ]);
      const [settings] = await db.query('SELECT smart_redirect_key FROM bitrix_settings WHERE company_id = $1', [admin.companyId]);
      await db.query('UPDATE bitrix_settings SET smart_redirect_key = $2 WHERE company_id = $1', [admin.companyId, reseal(settings.smart_redirect_key)]);
      const logged = t.logs.length;

      const users = await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(409);
      expect(users.body).toEqual({ status: 'error', code: 409, result: null, message: 'Bitrix24 needs to be re-authorised: connect the portal again.' });
      const info = (await t.http().get('/integration/bitrix/info').set(auth(admin.token)).expect(200)).body.result;
      expect(info).toMatchObject({ enabled: false, status: 'reauth_required', domain: portal.origin, member_id: portal.memberId });
      expect(info.last_error).toMatch(/cannot be decrypted with APP_KEY/);
      const shown = (await t.http().get('/integration/bitrix/settings').set(auth(admin.token)).expect(200)).body.result;
      expect(shown.smart_redirect_url).toMatch(/\/pbx\/smart-redirect\/[A-Za-z0-9_-]{20,}$/);
      expect(shown.smart_redirect_url).not.toBe(url);
      expect((await t.http().get('/integration/bitrix/settings').set(auth(admin.token)).expect(200)).body.result.smart_redirect_url).toBe(shown.smart_redirect_url);
      await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ crm_create: 'all' }).expect(409);

      const lines = t.logs.slice(logged).map((l) => JSON.parse(l) as { level: number; msg: string });
      expect(lines.filter((l) => l.level >= 50).map((l) => l.msg)).toEqual([
        expect.stringMatching(/Bitrix24 credentials cannot be decrypted with APP_KEY/),
        expect.stringMatching(/Smart Redirect key cannot be decrypted with APP_KEY/),
      ]);

      // Reconnecting under the current key heals everything, the handler key included.
      const { res } = await connectPortal(t, admin.token, portal);
      expect(res.body.result).toMatchObject({ status: 'connected', last_error: null });
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(200);
      const [healed] = await db.query('SELECT handler_key FROM bitrix_integrations WHERE company_id = $1', [admin.companyId]);
      const handlerKey = ours.decrypt(healed.handler_key);
      expect(portal.eventBindings.map((b) => b.handler)).toEqual(Array(3).fill(expect.stringContaining(`key=${handlerKey}`)));
    } finally {
      await t.close();
      await emu.stop();
    }
  });
});
