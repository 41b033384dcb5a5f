import { DataSource } from 'typeorm';
import type { TestApp } from './app';

let seq = 0;
/** A PBX call id unique across the run. */
export const pbxCallId = () => `pbx-${Date.now()}-${++seq}`;

/** Waits until `probe` holds (polling), failing with what it last saw. */
export async function until<T>(probe: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await probe();
  while (!ok(last)) {
    if (Date.now() > deadline) throw new Error(`timed out; last seen: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
    last = await probe();
  }
  return last;
}

/** A PBX event as SPEC §6 shows it (inbound, a Tashkent mobile number) with `extra` on top. */
export const pbxEvent = (callId: string, event: string, extra: object = {}) => ({
  call_id: callId,
  event,
  direction: 'inbound',
  phone_number: '+998 90 123 45 67',
  occurred_at: '2026-11-24T10:00:00+05:00',
  ...extra,
});

/** Ringing then ended (answered, 30 s) on operator 101. */
export const answeredCall = (callId: string, extra: object = {}) => [
  pbxEvent(callId, 'ringing', { sip_phones: ['101'], ...extra }),
  pbxEvent(callId, 'ended', { sip_phones: ['101'], status: 'answered', duration: 30, occurred_at: '2026-11-24T10:00:30+05:00', ...extra }),
];

export async function callRow(t: TestApp, callId: string): Promise<Record<string, unknown> | undefined> {
  const [row] = await t.app.get(DataSource).query(`SELECT * FROM calls WHERE call_id = $1`, [callId]);
  return row as Record<string, unknown> | undefined;
}

/** Waits until the call is mirrored (or failed) and returns its row. */
export const settled = (t: TestApp, callId: string, timeoutMs?: number) =>
  until(() => callRow(t, callId), (r) => r?.sync_state === 'synced' || r?.sync_state === 'failed', timeoutMs) as Promise<Record<string, unknown>>;
