/**
 * Realistic PBX call traffic in the shape of `POST /pbx/events` (SPEC §6): what a day on a Utel PBX
 * looks like to the service. Used by `npm run pbx:simulate` and by the benchmarks.
 */

export interface PbxEventBody {
  call_id: string;
  event: 'ringing' | 'answered' | 'ended' | 'recording';
  direction: 'inbound' | 'outbound';
  phone_number: string;
  sip_phones?: string[];
  line_number?: string;
  occurred_at: string;
  duration?: number;
  status?: 'answered' | 'no_answer' | 'busy' | 'failed' | 'cancelled';
  recording_url?: string;
}

export type CallKind = 'inbound answered' | 'inbound ring group' | 'inbound missed' | 'inbound cancelled' | 'inbound busy' | 'transfer' | 'outbound answered' | 'outbound unanswered';

export interface SimulatedCall {
  kind: CallKind;
  callId: string;
  events: PbxEventBody[];
}

export interface TrafficOptions {
  calls: number;
  operators: string[];
  /** Base URL recordings are served from (`<base>/<call_id>.mp3`); none when omitted. */
  recordings?: string;
  lineNumber?: string;
  /** Share of events sent twice, and of neighbouring events swapped (0..1). */
  duplicates?: number;
  reorder?: number;
  seed?: number;
  /** The first call starts here; the rest follow a few seconds apart. */
  start?: Date;
  prefix?: string;
}

const MIX: [CallKind, number][] = [
  ['inbound answered', 30],
  ['inbound ring group', 15],
  ['inbound missed', 12],
  ['inbound cancelled', 5],
  ['inbound busy', 4],
  ['transfer', 6],
  ['outbound answered', 18],
  ['outbound unanswered', 10],
];

/** A small deterministic PRNG (mulberry32), so a seed reproduces a day. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** ISO 8601 in Tashkent time (+05:00), as a Utel PBX reports it. */
function tashkent(ms: number): string {
  return `${new Date(ms + 5 * 3_600_000).toISOString().slice(0, 19)}+05:00`;
}

export function generateTraffic(options: TrafficOptions): { calls: SimulatedCall[]; events: PbxEventBody[] } {
  const rnd = random(options.seed ?? 1);
  const pick = <T>(list: T[]): T => list[Math.floor(rnd() * list.length)];
  const between = (min: number, max: number) => Math.floor(min + rnd() * (max - min + 1));
  const total = MIX.reduce((sum, [, weight]) => sum + weight, 0);
  const start = (options.start ?? new Date()).getTime();
  const prefix = options.prefix ?? `sim-${start}`;
  const calls: SimulatedCall[] = [];

  for (let i = 0; i < options.calls; i++) {
    let roll = rnd() * total;
    const kind = MIX.find(([, weight]) => (roll -= weight) < 0)?.[0] ?? 'inbound answered';
    const callId = `${prefix}.${i + 1}`;
    const t0 = start + i * 2_000;
    // Uzbek mobile numbers in the formats PBXs really send.
    const digits = `9${between(0, 9)}${String(between(0, 9_999_999)).padStart(7, '0')}`;
    const phone = pick([`+998${digits}`, `998${digits}`, digits, `8 ${digits.slice(0, 2)} ${digits.slice(2)}`]);
    const outbound = kind.startsWith('outbound');
    const base = { call_id: callId, direction: outbound ? ('outbound' as const) : ('inbound' as const), phone_number: phone, ...(options.lineNumber ? { line_number: options.lineNumber } : {}) };
    const at = (s: number) => tashkent(t0 + s * 1000);
    const operator = pick(options.operators);
    const group = [...new Set([operator, pick(options.operators), pick(options.operators)])];
    const talk = between(8, 420);
    const events: PbxEventBody[] = [];
    const ended = (s: number, status: PbxEventBody['status'], duration: number, who: string[]) => events.push({ ...base, event: 'ended', sip_phones: who, status, duration, occurred_at: at(s) });
    switch (kind) {
      case 'inbound answered':
        events.push({ ...base, event: 'ringing', sip_phones: [operator], occurred_at: at(0) }, { ...base, event: 'answered', sip_phones: [operator], occurred_at: at(4) });
        ended(4 + talk, 'answered', talk, [operator]);
        break;
      case 'inbound ring group': {
        const answerer = pick(group);
        events.push({ ...base, event: 'ringing', sip_phones: group, occurred_at: at(0) }, { ...base, event: 'answered', sip_phones: [answerer], occurred_at: at(6) });
        ended(6 + talk, 'answered', talk, [answerer]);
        break;
      }
      case 'inbound missed':
        events.push({ ...base, event: 'ringing', sip_phones: group, occurred_at: at(0) });
        ended(25, 'no_answer', 0, [group[group.length - 1]]);
        break;
      case 'inbound cancelled':
        events.push({ ...base, event: 'ringing', sip_phones: [operator], occurred_at: at(0) });
        ended(7, 'cancelled', 0, [operator]);
        break;
      case 'inbound busy':
        events.push({ ...base, event: 'ringing', sip_phones: [operator], occurred_at: at(0) });
        ended(1, 'busy', 0, [operator]);
        break;
      case 'transfer': {
        const second = pick(options.operators.filter((o) => o !== operator)) ?? operator;
        events.push(
          { ...base, event: 'ringing', sip_phones: [operator], occurred_at: at(0) },
          { ...base, event: 'answered', sip_phones: [operator], occurred_at: at(3) },
          { ...base, event: 'answered', sip_phones: [second], occurred_at: at(40) },
        );
        ended(40 + talk, 'answered', 37 + talk, [second]);
        break;
      }
      case 'outbound answered':
        events.push({ ...base, event: 'ringing', sip_phones: [operator], occurred_at: at(0) }, { ...base, event: 'answered', sip_phones: [operator], occurred_at: at(9) });
        ended(9 + talk, 'answered', talk, [operator]);
        break;
      case 'outbound unanswered':
        events.push({ ...base, event: 'ringing', sip_phones: [operator], occurred_at: at(0) });
        ended(30, pick(['no_answer', 'busy', 'failed', 'cancelled'] as const), 0, [operator]);
        break;
    }
    const answered = events.some((e) => e.event === 'ended' && e.status === 'answered');
    if (options.recordings && answered && rnd() < 0.8) {
      const last = events[events.length - 1];
      events.push({ ...base, event: 'recording', recording_url: `${options.recordings.replace(/\/+$/, '')}/${encodeURIComponent(callId)}.mp3`, occurred_at: last.occurred_at });
    }
    calls.push({ kind, callId, events });
  }

  // The wire: calls interleave by time, some events come twice, some overtake their predecessor.
  const events = calls.flatMap((c) => c.events).sort((a, b) => a.occurred_at.localeCompare(b.occurred_at));
  const wire: PbxEventBody[] = [];
  for (const event of events) {
    wire.push(event);
    if (rnd() < (options.duplicates ?? 0.03)) wire.push({ ...event });
  }
  for (let i = 1; i < wire.length; i++) {
    if (rnd() < (options.reorder ?? 0.05)) [wire[i - 1], wire[i]] = [wire[i], wire[i - 1]];
  }
  return { calls, events: wire };
}
