import { DataSource } from 'typeorm';
import { SecretBox } from '../../src/common/secret-box';
import { createTestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

jest.setTimeout(60_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

/**
 * Log hygiene (SPEC §9). Its own file: nestjs-pino keeps its root logger in module state, so the
 * one application whose logs are captured must be the only one in this module registry.
 */
describe('logs', () => {
  let emu: Bitrix24Emulator;

  beforeAll(async () => {
    emu = new Bitrix24Emulator({ rateLimit: { rate: 20, burst: 10 } });
    await emu.start();
  });
  afterAll(() => emu.stop());

  it('writes no token, code or client secret into the logs, even when Bitrix24 fails', async () => {
    const portal = await emu.addPortal({ users: 2 });
    const t = await createTestApp({ env: { ...bitrixEnv(emu, [portal]), BITRIX_RATE_LIMIT: '20/10' }, captureLogs: true });
    try {
      const admin = await t.login('admin');
      const failedCode = portal.authorize().code;
      emu.faults.outage = true;
      await t.http().post('/integration/bitrix/oauth').set(auth(admin.token)).send({ domain: portal.origin, code: failedCode }).expect(502);
      emu.faults.outage = false;
      emu.faults.resetConnections = true;
      const droppedCode = portal.authorize().code;
      await t.http().post('/integration/bitrix/oauth').set(auth(admin.token)).send({ domain: portal.origin, code: droppedCode }).expect(502);
      emu.faults.resetConnections = false;
      const { res } = await connectPortal(t, admin.token, portal);
      expect(res.status).toBe(200);
      portal.faults.resetConnections = true;
      await t.http().get('/integration/bitrix/bitrix-users').set(auth(admin.token)).expect(502);
      portal.faults.resetConnections = false;

      const [row] = await t.app.get(DataSource).query('SELECT * FROM bitrix_integrations');
      const box = t.app.get(SecretBox);
      const secrets = [emu.clientSecret, failedCode, droppedCode, admin.token.split('|')[1], box.decrypt(row.access_token), box.decrypt(row.refresh_token), box.decrypt(row.handler_key)];
      const logs = t.logs.join('');
      expect(logs).toContain('Bitrix24');
      for (const secret of secrets) expect(logs).not.toContain(secret);
    } finally {
      await t.close();
    }
  });

});
