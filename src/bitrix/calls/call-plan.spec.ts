import { desiredCards, finishUser, planCall, startDate, statusCode, type SyncContext } from './call-plan';
import type { Call } from './call.entity';

const ctx = (over: Partial<SyncContext> = {}): SyncContext => ({
  showCard: 'ringing',
  crmCreate: 'none',
  crmSource: null,
  pipelineId: null,
  attachRecords: true,
  missedCallTask: false,
  defaultBitrixUserId: null,
  ownerBitrixUserId: 9,
  bindings: new Map([['101', 1], ['102', 2]]),
  ...over,
});
const call = (over: Partial<Call> = {}): Call =>
  ({
    id: '7', callId: 'pbx-7', direction: 'inbound', phoneNumber: '+998901234567', lineNumber: null, status: 'ringing', firstSipPhone: '101',
    rung: ['101', '102'], answeredBy: [], handledBy: null, startedAt: new Date('2026-11-24T05:00:00Z'), startOffsetMin: 300, endedAt: null,
    duration: null, recordingUrl: null, bitrixCallId: null, clickToCall: false, registerUserId: null, crmEntityType: null, crmEntityId: null,
    dealId: null, shownTo: [], sentSteps: [], doneSteps: [], taskResponsibleId: null, attempts: 0, ...over,
  }) as Call;

describe('call plan', () => {
  it('writes CALL_START_DATE in the offset the PBX reported', () => {
    expect(startDate({ startedAt: new Date('2026-11-24T05:00:00Z'), startOffsetMin: 300 })).toBe('2026-11-24T10:00:00+05:00');
    expect(startDate({ startedAt: new Date('2026-11-24T05:00:00Z'), startOffsetMin: -210 })).toBe('2026-11-24T01:30:00-03:30');
    expect(startDate({ startedAt: new Date('2026-11-24T05:00:00Z'), startOffsetMin: 0 })).toBe('2026-11-24T05:00:00+00:00');
  });

  it.each([
    ['answered', 'inbound', '200'],
    ['no_answer', 'inbound', '304'],
    ['cancelled', 'inbound', '304'],
    ['cancelled', 'outbound', '603-S'],
    ['busy', 'outbound', '486'],
    ['failed', 'inbound', '503'],
  ] as const)('finishes %s %s with %s', (status, direction, code) => {
    expect(statusCode({ status, direction })).toBe(code);
  });

  it('shows cards per show_card and moves them to whoever holds the call', () => {
    expect(desiredCards(call(), ctx())).toEqual([1, 2]);
    expect(desiredCards(call(), ctx({ showCard: 'answered' }))).toEqual([]);
    expect(desiredCards(call({ answeredBy: ['102'] }), ctx({ showCard: 'answered' }))).toEqual([2]);
    expect(desiredCards(call({ answeredBy: ['102', '101'] }), ctx())).toEqual([1]);
    expect(desiredCards(call({ endedAt: new Date() }), ctx())).toEqual([]);
    expect(desiredCards(call({ clickToCall: true }), ctx())).toEqual([]);
    expect(desiredCards(call({ rung: ['555'] }), ctx())).toEqual([]);
  });

  it('registers with SHOW=0 for the first operator, falling back to the default user, then the owner', () => {
    const [register, show] = planCall(call(), ctx()).commands;
    expect(register).toMatchObject({ kind: 'register', params: { USER_ID: 1, TYPE: 2, SHOW: 0, EXTERNAL_CALL_ID: 'pbx-7', CRM_CREATE: 0 } });
    expect(show).toMatchObject({ kind: 'show', params: { CALL_ID: '$result[r7][CALL_ID]', USER_ID: [1, 2] } });
    expect(planCall(call({ firstSipPhone: '555' }), ctx({ defaultBitrixUserId: 4 })).commands[0].params.USER_ID).toBe(4);
    expect(planCall(call({ firstSipPhone: null }), ctx()).commands[0].params.USER_ID).toBe(9);
    expect(planCall(call({ firstSipPhone: null }), ctx({ ownerBitrixUserId: null })).impossible).toMatch(/No Bitrix24 user/);
  });

  it('asks Bitrix24 for leads only without a pipeline, and never on a resend', () => {
    const inbound = ctx({ crmCreate: 'inbound', crmSource: 'CALL' });
    expect(planCall(call(), inbound).commands[0].params).toMatchObject({ CRM_CREATE: 1, CRM_SOURCE: 'CALL' });
    expect(planCall(call({ direction: 'outbound' }), inbound).commands[0].params.CRM_CREATE).toBe(0);
    expect(planCall(call({ sentSteps: ['register'] }), inbound).commands[0].params.CRM_CREATE).toBe(0);
    expect(planCall(call(), ctx({ crmCreate: 'all', pipelineId: 3 })).commands[0]).toMatchObject({ kind: 'dedupe', method: 'crm.duplicate.findbycomm' });
  });

  it('finishes with the operator who handled the call, and looks up a lost register+finish first', () => {
    const ended = call({ endedAt: new Date(), status: 'answered', duration: 40, answeredBy: ['102'], bitrixCallId: 'externalCall.x', registerUserId: 1 });
    expect(finishUser(ended, ctx())).toBe(2);
    expect(planCall(ended, ctx()).commands).toEqual([
      { key: 'f7', kind: 'finish', method: 'telephony.externalcall.finish', params: { CALL_ID: 'externalCall.x', USER_ID: 2, DURATION: 40, STATUS_CODE: '200' } },
    ]);
    const lost = planCall(call({ endedAt: new Date(), sentSteps: ['register', 'finish'] }), ctx());
    expect(lost.commands.map((c) => c.method)).toEqual(['voximplant.statistic.get']);
  });

  it('is complete once finished, with the task and recording done', () => {
    const done = call({ endedAt: new Date(), status: 'no_answer', bitrixCallId: 'externalCall.x', doneSteps: ['finish'] });
    expect(planCall(done, ctx({ attachRecords: false })).complete).toBe(true);
    expect(planCall(done, ctx({ missedCallTask: true })).commands[0].kind).toBe('search');
    expect(planCall({ ...done, recordingUrl: 'https://r.utel.uz/1.mp3' }, ctx()).record).toBe(true);
  });
});
