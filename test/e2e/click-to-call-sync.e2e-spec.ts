import { PBX_DRIVER, type PbxDriver } from '../../src/pbx/drivers/pbx-driver';
import { FakeAmiServer } from '../emulators/ami/ami-server';
import type { Portal } from '../emulators/bitrix24/portal';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';
import { callRow, pbxCallId, pbxEvent, settled, until } from './support/calls';

jest.setTimeout(60_000);

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });

/**
 * The whole click-to-call loop (SPEC §6, §7): a user clicks a number in Bitrix24, which registers
 * the call and delivers ONEXTERNALCALLSTART; the PBX dials (fake AMI over TCP) and reports the call;
 * call sync finishes Bitrix24's CALL_ID and never registers it again.
 */
describe('click-to-call finished by its PBX events', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let ami: FakeAmiServer;
  let t: TestApp;
  let admin: { token: string; companyId: number };

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: [{ ID: 1, ADMIN: true, UF_PHONE_INNER: '101' }, { ID: 2, UF_PHONE_INNER: '102' }] });
    ami = new FakeAmiServer({ username: 'utel', secret: 's3cret' });
    await ami.start();
    t = await createTestApp({ env: { ...bitrixEnv(emu, [portal]), AMI_HOST: '127.0.0.1', AMI_PORT: String(ami.port), AMI_USER: 'utel', AMI_SECRET: 's3cret' } });
    admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
    await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).send({ bindings: [{ sip_phone: '101', bitrix_user_id: 1 }, { sip_phone: '102', bitrix_user_id: 2 }] }).expect(200);
    const { port } = t.app.getHttpServer().address() as { port: number };
    for (const binding of portal.eventBindings) binding.handler = binding.handler.replace('https://bitrix.utel.example', `http://127.0.0.1:${port}`);
    await until(() => t.app.get<PbxDriver>(PBX_DRIVER).unavailable, (u) => u === null);
  });
  afterAll(async () => {
    await t.close();
    await ami.stop();
    await emu.stop();
  });

  const post = (body: unknown) => t.http().post('/pbx/events').set(auth(admin.token)).send(body as object).expect(202);
  const originatesOf = (bitrixCallId: string) => ami.actions.filter((a) => a.action === 'Originate' && a.all('Variable').some((v) => v.includes(bitrixCallId)));
  const registrations = () => portal.requests.filter((r) => r.method.toLowerCase() === 'telephony.externalcall.register').length;

  it('finishes the Bitrix24 CALL_ID the PBX echoes, without registering', async () => {
    const { callId, deliveries } = await portal.clickToCall({ userId: 1, phoneNumber: '+998901112233' });
    expect(deliveries.map((d) => d.status)).toEqual([200]);
    const [originate] = await until(() => originatesOf(callId), (a) => a.length === 1);
    expect([originate.get('Channel'), originate.get('Exten')]).toEqual(['PJSIP/101', '+998901112233']);
    const before = registrations();
    const id = pbxCallId();
    const now = new Date().toISOString();
    await post([
      pbxEvent(id, 'ringing', { direction: 'outbound', phone_number: '90 111 22 33', sip_phones: ['101'], bitrix_call_id: callId, occurred_at: now }),
      pbxEvent(id, 'ended', { direction: 'outbound', phone_number: '90 111 22 33', sip_phones: ['101'], bitrix_call_id: callId, status: 'answered', duration: 25, occurred_at: now }),
    ]);
    expect(await settled(t, id)).toMatchObject({ sync_state: 'synced', bitrix_call_id: callId, click_to_call: true });
    expect(portal.telephony.statistics.filter((s) => s.CALL_ID === callId)).toMatchObject([{ CALL_DURATION: 25, CALL_FAILED_CODE: '200', PORTAL_USER_ID: 1 }]);
    expect(registrations()).toBe(before);
  });

  it('matches a PBX call without bitrix_call_id to the originate of the same operator and number (2 minutes), once', async () => {
    const { callId } = await portal.clickToCall({ userId: 2, phoneNumber: '+998907778899' });
    await until(() => originatesOf(callId).length, (n) => n === 1);
    const before = registrations();
    const [first, second] = [pbxCallId(), pbxCallId()];
    const now = new Date().toISOString();
    await post([
      pbxEvent(first, 'ringing', { direction: 'outbound', phone_number: '998907778899', sip_phones: ['102'], occurred_at: now }),
      pbxEvent(first, 'ended', { direction: 'outbound', phone_number: '998907778899', sip_phones: ['102'], status: 'no_answer', duration: 0, occurred_at: now }),
    ]);
    expect(await settled(t, first)).toMatchObject({ bitrix_call_id: callId, click_to_call: true });
    expect(portal.telephony.statistics.find((s) => s.CALL_ID === callId)?.CALL_FAILED_CODE).toBe('304');
    expect(registrations()).toBe(before);
    // The originate is used up: a second call of the same operator and number is an ordinary one.
    await post(pbxEvent(second, 'ended', { direction: 'outbound', phone_number: '998907778899', sip_phones: ['102'], status: 'answered', duration: 4, occurred_at: new Date().toISOString() }));
    const row = await settled(t, second);
    expect(row.click_to_call).toBe(false);
    expect(row.bitrix_call_id).not.toBe(callId);
    expect(registrations()).toBe(before + 1);
    expect((await callRow(t, first))?.sync_state).toBe('synced');
  });
});
