import { DataSource } from 'typeorm';
import { SecretBox } from '../../src/common/secret-box';
import { createTestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

jest.setTimeout(60_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

/**
 * SPEC §9: the Smart Redirect key is a credential in a URL path and must never reach a log line,
 * whatever the request becomes (an answer, a timeout, a Bitrix24 failure, a bad phone). Its own
 * file for the reason logs.e2e-spec.ts gives: one captured application per module registry.
 */
describe('Smart Redirect logs', () => {
  let emu: Bitrix24Emulator;

  beforeAll(async () => {
    emu = new Bitrix24Emulator({ rateLimit: { rate: 20, burst: 100 } });
    await emu.start();
  });
  afterAll(() => emu.stop());

  it('never writes the key, and writes the path redacted', async () => {
    const portal = await emu.addPortal({ users: [{ ID: 1, ADMIN: true, UF_PHONE_INNER: '101' }] });
    portal.crm.add('CONTACT', { NAME: 'Known', PHONE: [{ VALUE: '+998901111111' }], ASSIGNED_BY_ID: 1 }, 1);
    const t = await createTestApp({ env: { ...bitrixEnv(emu, [portal]), BITRIX_RATE_LIMIT: '20/100', SMART_REDIRECT_TIMEOUT_MS: '300' }, captureLogs: true });
    try {
      const admin = await t.login('admin');
      expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
      const saved = await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ smart_redirect: true, bindings: [{ sip_phone: '101', bitrix_user_id: 1 }] }).expect(200);
      const key = new URL(saved.body.result.smart_redirect_url as string).pathname.split('/').pop()!;
      const guessed = 'Zq'.repeat(16);

      await t.http().get(`/pbx/smart-redirect/${key}?phone=%2B998901111111`).expect(200, '{"extension":"101"}');
      await t.http().get(`/pbx/smart-redirect/${key}?phone=nope`).expect(422, '{}');
      await t.http().get(`/pbx/smart-redirect/${guessed}?phone=%2B998901111111`).expect(404, '{}');
      portal.faults.delayMs = 1000;
      await t.http().get(`/pbx/smart-redirect/${key}?phone=%2B998902222222`).expect(200, '{}');
      portal.faults.delayMs = 0;
      portal.faults.outage = true;
      await t.http().get(`/pbx/smart-redirect/${key}`).query({ phone: '+998903333333' }).expect(200, '{}');
      portal.faults.outage = false;
      // Let the timed-out and failing lookups finish and log.
      await new Promise((resolve) => setTimeout(resolve, 4_000));

      const [row] = await t.app.get(DataSource).query('SELECT access_token FROM bitrix_integrations');
      const logs = t.logs.join('');
      expect(logs).toContain('/pbx/smart-redirect/[redacted]');
      expect(logs).toContain('passed its deadline');
      for (const secret of [key, guessed, t.app.get(SecretBox).decrypt(row.access_token)]) expect(logs).not.toContain(secret);
    } finally {
      await t.close();
    }
  });
});
