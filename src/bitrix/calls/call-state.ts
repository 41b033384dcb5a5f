import type { CallDirection, CallStatus } from './call.entity';

export type PbxEventType = 'ringing' | 'answered' | 'ended' | 'recording';
export type EndStatus = 'answered' | 'no_answer' | 'busy' | 'failed' | 'cancelled';

/** A validated PBX event, its number already normalised. */
export interface PbxEvent {
  callId: string;
  event: PbxEventType;
  direction: CallDirection;
  phoneNumber: string;
  phoneRaw: string;
  sipPhones: string[];
  lineNumber: string | null;
  bitrixCallId: string | null;
  occurredAt: Date;
  /** The UTC offset `occurred_at` was written in, minutes. */
  offsetMin: number;
  duration: number | null;
  status: EndStatus | null;
  recordingUrl: string | null;
}

/** What the PBX has told about a call: the part of a call row that events change. */
export interface CallFacts {
  status: CallStatus;
  lineNumber: string | null;
  firstSipPhone: string | null;
  rung: string[];
  answeredBy: string[];
  handledBy: string | null;
  startedAt: Date;
  startOffsetMin: number;
  ringingSeen: boolean;
  answeredAt: Date | null;
  endedAt: Date | null;
  duration: number | null;
  recordingUrl: string | null;
  bitrixCallId: string | null;
}

/** Outcomes never move backwards: anything answered stays answered; the first final outcome of an unanswered call stands. */
function mergeStatus(current: CallStatus, next: CallStatus | null): CallStatus {
  if (next === null || current === 'answered') return current;
  if (next === 'answered') return 'answered';
  if (current !== 'ringing') return current;
  return next;
}

function earliest(a: Date | null, b: Date): Date {
  return a && a.getTime() <= b.getTime() ? a : b;
}

/** The call's start: the ringing time; for a call first seen when it ended, `occurred_at − duration`. */
function startOf(event: PbxEvent): Date {
  if (event.event === 'ended') return new Date(event.occurredAt.getTime() - (event.duration ?? 0) * 1000);
  return event.occurredAt;
}

export function initialFacts(event: PbxEvent): CallFacts {
  const facts: CallFacts = {
    status: 'ringing',
    lineNumber: null,
    firstSipPhone: event.sipPhones[0] ?? null,
    rung: [],
    answeredBy: [],
    handledBy: null,
    startedAt: startOf(event),
    startOffsetMin: event.offsetMin,
    ringingSeen: false,
    answeredAt: null,
    endedAt: null,
    duration: null,
    recordingUrl: null,
    bitrixCallId: null,
  };
  return applyEvent(facts, event);
}

/**
 * Applies one event. Idempotent (the same event twice changes nothing) and order-tolerant: a late
 * `no_answer` leg never downgrades an answered call, a late `ringing` only moves the start earlier,
 * and a transfer (another `answered` naming a new operator) moves the call to that operator.
 */
export function applyEvent(current: CallFacts, event: PbxEvent): CallFacts {
  const next: CallFacts = { ...current, rung: [...current.rung], answeredBy: [...current.answeredBy] };
  next.lineNumber ??= event.lineNumber;
  next.firstSipPhone ??= event.sipPhones[0] ?? null;
  next.bitrixCallId ??= event.bitrixCallId;
  switch (event.event) {
    case 'ringing':
      for (const sip of event.sipPhones) if (!next.rung.includes(sip)) next.rung.push(sip);
      if (!next.ringingSeen || event.occurredAt < next.startedAt) {
        next.startedAt = next.ringingSeen ? earliest(next.startedAt, event.occurredAt) : event.occurredAt;
        next.startOffsetMin = event.offsetMin;
      }
      next.ringingSeen = true;
      next.status = mergeStatus(next.status, 'ringing');
      break;
    case 'answered': {
      const operator = event.sipPhones[0];
      if (operator && next.answeredBy.at(-1) !== operator) next.answeredBy.push(operator);
      next.answeredAt = earliest(next.answeredAt, event.occurredAt);
      next.status = mergeStatus(next.status, 'answered');
      break;
    }
    case 'ended':
      next.endedAt = next.endedAt ?? event.occurredAt;
      next.duration = Math.max(next.duration ?? 0, event.duration ?? 0);
      // The operator who handled it: an answered leg's operator wins over an unanswered leg's.
      if (event.sipPhones[0] && (next.handledBy === null || event.status === 'answered')) next.handledBy = event.sipPhones[0];
      next.status = mergeStatus(next.status, event.status);
      break;
    case 'recording':
      next.recordingUrl = event.recordingUrl ?? next.recordingUrl;
      break;
  }
  return next;
}

export function sameFacts(a: CallFacts, b: CallFacts): boolean {
  const sameList = (x: string[], y: string[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  const sameTime = (x: Date | null, y: Date | null) => (x === null || y === null ? x === y : x.getTime() === y.getTime());
  return (
    a.status === b.status &&
    a.lineNumber === b.lineNumber &&
    a.firstSipPhone === b.firstSipPhone &&
    sameList(a.rung, b.rung) &&
    sameList(a.answeredBy, b.answeredBy) &&
    a.handledBy === b.handledBy &&
    sameTime(a.startedAt, b.startedAt) &&
    a.startOffsetMin === b.startOffsetMin &&
    a.ringingSeen === b.ringingSeen &&
    sameTime(a.answeredAt, b.answeredAt) &&
    sameTime(a.endedAt, b.endedAt) &&
    a.duration === b.duration &&
    a.recordingUrl === b.recordingUrl &&
    a.bitrixCallId === b.bitrixCallId
  );
}
