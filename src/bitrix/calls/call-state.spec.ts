import { applyEvent, initialFacts, sameFacts, type PbxEvent } from './call-state';

const at = (s: number) => new Date(Date.UTC(2026, 10, 24, 5, 0, s));
const event = (e: Partial<PbxEvent> & Pick<PbxEvent, 'event'>): PbxEvent => ({
  callId: 'c1',
  direction: 'inbound',
  phoneNumber: '+998901234567',
  phoneRaw: '901234567',
  sipPhones: [],
  lineNumber: null,
  bitrixCallId: null,
  occurredAt: at(0),
  offsetMin: 300,
  duration: null,
  status: null,
  recordingUrl: null,
  ...e,
});
const run = (...events: PbxEvent[]) => events.slice(1).reduce(applyEvent, initialFacts(events[0]));

describe('call state machine', () => {
  it('follows a ring group answered by one operator', () => {
    const facts = run(
      event({ event: 'ringing', sipPhones: ['101', '102'] }),
      event({ event: 'answered', sipPhones: ['102'], occurredAt: at(5) }),
      event({ event: 'ended', sipPhones: ['102'], status: 'answered', duration: 42, occurredAt: at(47) }),
    );
    expect(facts).toMatchObject({ status: 'answered', rung: ['101', '102'], answeredBy: ['102'], handledBy: '102', duration: 42, startedAt: at(0), firstSipPhone: '101' });
  });

  it('never lets a late no_answer leg downgrade an answered call', () => {
    const facts = run(
      event({ event: 'ringing', sipPhones: ['101', '102'] }),
      event({ event: 'ended', sipPhones: ['102'], status: 'answered', duration: 30, occurredAt: at(40) }),
      event({ event: 'ended', sipPhones: ['101'], status: 'no_answer', duration: 0, occurredAt: at(10) }),
    );
    expect(facts).toMatchObject({ status: 'answered', handledBy: '102', duration: 30 });
  });

  it('ignores duplicates', () => {
    const ringing = event({ event: 'ringing', sipPhones: ['101'] });
    const once = run(ringing);
    expect(sameFacts(applyEvent(once, ringing), once)).toBe(true);
  });

  it('starts a call first seen at its end at occurred_at minus duration', () => {
    const facts = run(event({ event: 'ended', status: 'answered', duration: 30, occurredAt: at(50), sipPhones: ['101'] }));
    expect(facts).toMatchObject({ startedAt: at(20), status: 'answered', endedAt: at(50), ringingSeen: false });
    // A ringing that arrives afterwards gives the real start.
    expect(applyEvent(facts, event({ event: 'ringing', occurredAt: at(15), sipPhones: ['101'] })).startedAt).toEqual(at(15));
  });

  it('keeps the first final outcome of an unanswered call', () => {
    const facts = run(event({ event: 'ringing' }), event({ event: 'ended', status: 'busy', occurredAt: at(3) }), event({ event: 'ended', status: 'no_answer', occurredAt: at(9) }));
    expect(facts.status).toBe('busy');
  });

  it('records transfers in order and who finished the call', () => {
    const facts = run(
      event({ event: 'ringing', sipPhones: ['101'] }),
      event({ event: 'answered', sipPhones: ['101'], occurredAt: at(2) }),
      event({ event: 'answered', sipPhones: ['103'], occurredAt: at(20) }),
      event({ event: 'ended', status: 'answered', duration: 60, occurredAt: at(62) }),
    );
    expect(facts).toMatchObject({ answeredBy: ['101', '103'], handledBy: null, answeredAt: at(2) });
  });

  it('keeps a recording that arrives before the end', () => {
    const facts = run(event({ event: 'recording', recordingUrl: 'https://rec.utel.uz/1.mp3' }), event({ event: 'ended', status: 'answered', duration: 5, occurredAt: at(9) }));
    expect(facts).toMatchObject({ recordingUrl: 'https://rec.utel.uz/1.mp3', status: 'answered' });
  });

  it('tells facts apart by every field, and equal facts in new objects as the same', () => {
    const facts = run(event({ event: 'ringing', sipPhones: ['101'] }), event({ event: 'answered', sipPhones: ['101'], occurredAt: at(3) }), event({ event: 'ended', status: 'answered', duration: 7, occurredAt: at(10) }));
    expect(sameFacts(facts, structuredClone(facts))).toBe(true);
    const changed: Record<string, unknown> = {
      status: 'busy', lineNumber: '+998712000000', firstSipPhone: '102', rung: ['101', '102'], answeredBy: ['102'], handledBy: '102', startedAt: at(1),
      startOffsetMin: 0, ringingSeen: false, answeredAt: at(4), endedAt: null, duration: 8, recordingUrl: 'https://rec.utel.uz/1.mp3', bitrixCallId: 'externalCall.1',
    };
    // Every field of the facts is compared: a field added later must be added here, and to sameFacts.
    expect(Object.keys(changed).sort()).toEqual(Object.keys(facts).sort());
    for (const [field, value] of Object.entries(changed)) expect([field, sameFacts(facts, { ...facts, [field]: value })]).toEqual([field, false]);
  });
});
