import { Bitrix24Emulator } from './emulator';
import type { Portal } from './portal';
import { connectApp, restCall } from './spec-support';

/**
 * The lookups a client uses to find what it may already have created when a request's outcome was
 * lost: the call history (`voximplant.statistic.get`, dev.1c-bitrix.ru rest_help/scope_telephony/
 * voximplant/statistic: externalcall calls appear once finished) and `tasks.task.list`
 * (apidocs tasks/tasks-task-list: `filter` with `%` LIKE, `{tasks: […]}` in camelCase).
 */
describe('Bitrix24 emulator: call history and task list', () => {
  let emu: Bitrix24Emulator;
  let portal: Portal;
  let auth: string;

  beforeEach(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    portal = await emu.addPortal({ users: 3, scopes: ['telephony', 'task', 'crm', 'user_basic'], rateLimit: { rate: 100, burst: 1000 } });
    auth = (await connectApp(emu, portal)).access_token;
  });
  afterEach(() => emu.stop());

  it('lists finished external calls, filtered by EXTERNAL_CALL_ID', async () => {
    const register = (externalId: string) =>
      restCall(portal, auth, 'telephony.externalcall.register', { USER_ID: 1, PHONE_NUMBER: '+998901234567', TYPE: 2, EXTERNAL_CALL_ID: externalId, CALL_START_DATE: '2026-11-24T10:00:00+05:00' });
    const a = (await register('pbx-a')).body.result.CALL_ID as string;
    await register('pbx-b');
    expect((await restCall(portal, auth, 'voximplant.statistic.get', { FILTER: { EXTERNAL_CALL_ID: 'pbx-a' } })).body.result).toEqual([]);
    await restCall(portal, auth, 'telephony.externalcall.finish', { CALL_ID: a, USER_ID: 1, DURATION: 7 });
    const found = await restCall(portal, auth, 'voximplant.statistic.get', { FILTER: { EXTERNAL_CALL_ID: 'pbx-a' } });
    expect(found.body).toMatchObject({ total: 1, result: [{ CALL_ID: a, EXTERNAL_CALL_ID: 'pbx-a', CALL_DURATION: 7, CALL_START_DATE: '2026-11-24T10:00:00+05:00' }] });
  });

  it('finds tasks by a title fragment', async () => {
    await restCall(portal, auth, 'tasks.task.add', { fields: { TITLE: 'Missed call [utel:x1]', RESPONSIBLE_ID: 2 } });
    await restCall(portal, auth, 'tasks.task.add', { fields: { TITLE: 'Something else', RESPONSIBLE_ID: 2 } });
    const res = await restCall(portal, auth, 'tasks.task.list', { filter: { '%TITLE': '[utel:x1]' } });
    expect(res.body).toMatchObject({ total: 1, result: { tasks: [{ id: '1', title: 'Missed call [utel:x1]', responsibleId: '2' }] } });
  });
});
