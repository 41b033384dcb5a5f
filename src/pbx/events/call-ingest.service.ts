import { createHash } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { plainToInstance } from 'class-transformer';
import { LRUCache } from 'lru-cache';
import { validateSync, type ValidationError } from 'class-validator';
import type { PoolClient } from 'pg';
import { DataSource } from 'typeorm';
import { AppError, type FieldErrors } from '../../common/app-error';
import type { Config } from '../../config/config';
import { GroupCommit } from '../../database/group-commit';
import { inTransaction, pgPool, prepared, run, runGeneric, type TransactionWork } from '../../database/prepared';
import { applyEvent, initialFacts, sameFacts, type CallFacts, type PbxEvent } from '../../bitrix/calls/call-state';
import { CallSyncService } from '../../bitrix/calls/call-sync.service';
import type { SyncState } from '../../bitrix/calls/call.entity';
import { normalizePhone } from '../phone-number';
import { PbxEventDto } from './dto/pbx-event.dto';

export const MAX_EVENTS_PER_REQUEST = 500;
const DEADLOCK_DETECTED = '40P01';
const STORE_ATTEMPTS = 3;
/**
 * Transactions storing one company's requests at a time in this process; requests that arrive
 * meanwhile are stored together (GroupCommit). Under a flood of single events a transaction each
 * cost PostgreSQL a plan and a commit per event and kept both cores busy, so every request queued
 * behind the others. One, not two: at 500 single events/s two transactions at a time left most
 * events a transaction of their own, and PostgreSQL's CPU per event (planning, commit, marking the
 * portal due) was a fifth higher than with one, which groups the events that arrive while a store
 * runs; a store that waits on a call the worker is saving holds the company's next ones for as long.
 */
const STORES_PER_COMPANY = 1;
/** SPEC §6: a click-to-call matches an outbound call whose first event is within 2 minutes of the originate. */
const ORIGINATE_MATCH_MS = 2 * 60_000;

interface CallRow extends CallFacts {
  id: string;
  callId: string;
  direction: string;
  phoneNumber: string;
  syncState: SyncState;
  attempts: number;
  clickToCall: boolean;
}

/** The columns of `calls` an event can change, as jsonb_to_recordset reads them. */
const FACT_COLUMNS = `status text, line_number text, first_sip_phone text, rung text[], answered_by text[], handled_by text,
  started_at timestamptz, start_offset_min smallint, ringing_seen boolean, answered_at timestamptz, ended_at timestamptz,
  duration int, recording_url text, bitrix_call_id text, click_to_call boolean, sync_state text`;

/** A call row as the merge reads it. */
const CALL_COLUMNS = `id, call_id AS "callId", direction, phone_number AS "phoneNumber", status, line_number AS "lineNumber", first_sip_phone AS "firstSipPhone",
  rung, answered_by AS "answeredBy", handled_by AS "handledBy", started_at AS "startedAt", start_offset_min AS "startOffsetMin",
  ringing_seen AS "ringingSeen", answered_at AS "answeredAt", ended_at AS "endedAt", duration, recording_url AS "recordingUrl",
  bitrix_call_id AS "bitrixCallId", click_to_call AS "clickToCall", sync_state AS "syncState", attempts`;

/**
 * The calls of these ids ($1 company, $2 call ids), locked in the order given (sorted, like every
 * lock here): one unique-index lookup each, the calls this transaction created included. The
 * company's id reaches the planner only as a subquery's result, so it estimates the company's
 * share of the table from the number of companies. Given the value, it looks it up
 * in the statistics of the last ANALYZE: a company that had no calls then (a new company, or one
 * whose calls all arrived since) is expected to have none, every index on company_id then costs
 * the same, and it took ix_calls_listing, filtering each lookup's call_id over all of the company's
 * calls: a request of 100 events cost a second of CPU once the company had 10,000 calls.
 */
export const LOCK_CALLS = prepared(
  'ingest_lock_calls',
  `SELECT c.* FROM unnest($2::text[]) AS k(call_id),
     LATERAL (SELECT ${CALL_COLUMNS} FROM calls WHERE company_id = (SELECT $1::int) AND call_id = k.call_id FOR UPDATE) c`,
);

/**
 * Stores a request's events not seen before and creates the calls first seen now ($1 company, $2
 * events, $3 new calls, $4/$5 the span in which an originate could match). Run with a generic plan
 * (runGeneric): it inserts, and looks up by unique keys only; the calls that exist are locked by
 * LOCK_CALLS after it, planned for the table as it is.
 */
const STORE = prepared(
  'ingest_store',
  `WITH integration AS (SELECT status, member_id FROM bitrix_integrations WHERE company_id = $1),
  fresh AS (
    INSERT INTO pbx_call_events (company_id, call_id, event, fingerprint, payload)
    SELECT $1, r.call_id, r.event, r.fingerprint, r.payload FROM jsonb_to_recordset($2::jsonb) AS r(fingerprint text, call_id text, event text, payload jsonb)
    ON CONFLICT (company_id, fingerprint) DO NOTHING RETURNING fingerprint),
  created AS (
    INSERT INTO calls (company_id, call_id, direction, phone_number, phone_raw, status, line_number, first_sip_phone, rung, answered_by, handled_by,
      started_at, start_offset_min, ringing_seen, answered_at, ended_at, duration, recording_url, bitrix_call_id, click_to_call, sync_state, member_id, attempts, next_attempt_at)
    SELECT $1, r.call_id, r.direction, r.phone_number, r.phone_raw, r.status, r.line_number, r.first_sip_phone, r.rung, r.answered_by, r.handled_by,
      r.started_at, r.start_offset_min, r.ringing_seen, r.answered_at, r.ended_at, r.duration, r.recording_url, r.bitrix_call_id, r.click_to_call,
      -- Not connected: the call waits; waiting for re-authorisation, it belongs to that portal (SPEC §6).
      CASE WHEN i.status = 'connected' THEN 'pending' ELSE 'paused' END, CASE WHEN i.status = 'reauth_required' THEN i.member_id END, 0, now()
    FROM jsonb_to_recordset($3::jsonb) AS r(call_id text, direction text, phone_number text, phone_raw text, ${FACT_COLUMNS}) LEFT JOIN integration i ON true
    ON CONFLICT (company_id, call_id) DO NOTHING RETURNING call_id)
  SELECT (SELECT coalesce(array_agg(fingerprint), '{}') FROM fresh) AS fresh,
         (SELECT coalesce(array_agg(call_id), '{}') FROM created) AS created,
         $4::timestamptz IS NOT NULL AND EXISTS (SELECT 1 FROM pbx_originates WHERE company_id = $1 AND matched_call_id IS NULL AND bitrix_call_id IS NOT NULL
           AND status = 'dialing' AND created_at BETWEEN $4 AND $5) AS originates_waiting`,
);

/**
 * The merged facts of the calls that changed ($1 the facts, $2 their ids). The ids again as an
 * array: the planner knows the array's length, not the recordset's (it assumes 100 rows), and with
 * that guess it scanned a table of a few thousand calls whole for every single-call update.
 */
const UPDATE_CALLS = prepared(
  'ingest_update_calls',
  `UPDATE calls c SET status = u.status, line_number = u.line_number, first_sip_phone = u.first_sip_phone, rung = u.rung, answered_by = u.answered_by,
    handled_by = u.handled_by, started_at = u.started_at, start_offset_min = u.start_offset_min, ringing_seen = u.ringing_seen,
    answered_at = u.answered_at, ended_at = u.ended_at, duration = u.duration, recording_url = u.recording_url, bitrix_call_id = u.bitrix_call_id,
    click_to_call = u.click_to_call, sync_state = u.sync_state, facts_version = c.facts_version + 1,
    next_attempt_at = CASE WHEN c.attempts = 0 OR c.sync_state <> u.sync_state THEN now() ELSE c.next_attempt_at END, updated_at = now()
  FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, ${FACT_COLUMNS})
  WHERE c.id = ANY($2::bigint[]) AND c.id = u.id`,
);

interface StoreResult {
  fresh: string[];
  created: string[];
  originates_waiting: boolean;
}

function offsetMinutes(iso: string): number {
  const match = /(Z|([+-])(\d{2}):?(\d{2}))$/.exec(iso);
  if (!match || match[1] === 'Z') return 0;
  return (match[2] === '-' ? -1 : 1) * (Number(match[3]) * 60 + Number(match[4]));
}

function factsRecord(facts: CallFacts, extra: { id?: string; callId?: string; clickToCall: boolean; syncState: SyncState }) {
  return {
    id: extra.id,
    call_id: extra.callId,
    status: facts.status,
    line_number: facts.lineNumber,
    first_sip_phone: facts.firstSipPhone,
    rung: facts.rung,
    answered_by: facts.answeredBy,
    handled_by: facts.handledBy,
    started_at: facts.startedAt.toISOString(),
    start_offset_min: facts.startOffsetMin,
    ringing_seen: facts.ringingSeen,
    answered_at: facts.answeredAt?.toISOString() ?? null,
    ended_at: facts.endedAt?.toISOString() ?? null,
    duration: facts.duration,
    recording_url: facts.recordingUrl,
    bitrix_call_id: facts.bitrixCallId,
    click_to_call: extra.clickToCall,
    sync_state: extra.syncState,
  };
}

/**
 * `POST /pbx/events`: validates the whole request first (nothing stored on a 422), then stores the
 * events and the calls' new state in one transaction and wakes the sync worker. No Bitrix24
 * request happens here: the answer never waits on Bitrix24.
 */
@Injectable()
export class CallIngestService {
  private readonly country: string;
  private readonly seenExtensions = new LRUCache<string, true>({ max: 50_000, ttl: 60_000 });
  private readonly stores = new GroupCommit<PbxEvent>((companyId, events) => this.store(companyId, events), STORES_PER_COMPANY, MAX_EVENTS_PER_REQUEST);

  constructor(
    private readonly dataSource: DataSource,
    config: ConfigService<Config, true>,
  ) {
    this.country = config.get('app', { infer: true }).defaultCountry;
  }

  async ingest(companyId: number, body: unknown): Promise<{ accepted: number }> {
    const events = this.parse(body);
    // Workers learn of it from markDue's announcement (this instance's too), or by polling while it cannot be heard.
    await this.stores.add(companyId, events);
    return { accepted: events.length };
  }

  /** Stores events and their calls' new state in one transaction, again from the start after a deadlock. */
  private async store(companyId: number, events: PbxEvent[]): Promise<void> {
    const live = events.some((e) => e.event === 'ringing' || e.event === 'answered');
    for (let attempt = 1; ; attempt++) {
      const last = attempt === STORE_ATTEMPTS;
      try {
        await inTransaction(pgPool(this.dataSource), (client) => this.write(client, companyId, events, live));
        return;
      } catch (err) {
        // Requests sharing calls can still meet in opposite orders: PostgreSQL aborts one of them,
        // which is stored again from the start.
        if (last || (err as { code?: unknown }).code !== DEADLOCK_DETECTED) throw err;
      }
    }
  }

  /** Every element validated; errors keyed by the element's index (`3.phone_number`) when the body is an array. */
  private parse(body: unknown): PbxEvent[] {
    const isArray = Array.isArray(body);
    if (!isArray && (typeof body !== 'object' || body === null)) throw AppError.validation('body', 'must be one event object or an array of events');
    const items: unknown[] = isArray ? body : [body];
    if (items.length === 0) throw AppError.validation('body', 'must hold at least one event');
    if (items.length > MAX_EVENTS_PER_REQUEST) throw AppError.validation('body', `must hold at most ${MAX_EVENTS_PER_REQUEST} events`);
    const errors: FieldErrors = {};
    const events: PbxEvent[] = [];
    items.forEach((item, index) => {
      const prefix = isArray ? `${index}.` : '';
      if (typeof item !== 'object' || item === null || Array.isArray(item)) {
        errors[isArray ? String(index) : 'body'] = ['must be an event object'];
        return;
      }
      const dto = plainToInstance(PbxEventDto, item);
      const problems = validateSync(dto, { whitelist: true, forbidNonWhitelisted: false });
      if (problems.length) {
        Object.assign(errors, flatten(problems, prefix));
        return;
      }
      const phone = normalizePhone(dto.phone_number, this.country);
      if (!phone) {
        errors[`${prefix}phone_number`] = ['phone_number must contain digits'];
        return;
      }
      const occurredAt = new Date(dto.occurred_at);
      if (Number.isNaN(occurredAt.getTime())) {
        errors[`${prefix}occurred_at`] = ['occurred_at is not a valid date'];
        return;
      }
      events.push({
        callId: dto.call_id,
        event: dto.event,
        direction: dto.direction,
        phoneNumber: phone.e164,
        phoneRaw: dto.phone_number,
        sipPhones: dto.sip_phones ?? [],
        lineNumber: dto.line_number ?? null,
        bitrixCallId: dto.bitrix_call_id ?? null,
        occurredAt,
        offsetMin: offsetMinutes(dto.occurred_at),
        duration: dto.duration ?? null,
        status: dto.status ?? null,
        recordingUrl: dto.recording_url ?? null,
      });
    });
    if (Object.keys(errors).length) throw new AppError('VALIDATION_FAILED', 'The given data was invalid.', errors);
    return events;
  }

  /**
   * Stores the events and the calls' new state, in one write to PostgreSQL and one more when calls
   * changed: the events not seen before and the calls first seen now (STORE), every call of the
   * request locked (LOCK_CALLS), then the merged state of the calls that changed, and the portal
   * marked due last, so that its row, shared by all of the company's requests, is locked only for
   * the commit that follows.
   */
  private async write(client: PoolClient, companyId: number, events: PbxEvent[], live: boolean): Promise<TransactionWork<void>> {
    const unique = new Map<string, PbxEvent>();
    for (const event of events) {
      const fingerprint = createHash('sha256').update(JSON.stringify({ ...event, phoneRaw: undefined })).digest('hex');
      if (!unique.has(fingerprint)) unique.set(fingerprint, event);
    }
    const byCall = new Map<string, { fingerprint: string; event: PbxEvent }[]>();
    for (const [fingerprint, event] of unique) byCall.set(event.callId, [...(byCall.get(event.callId) ?? []), { fingerprint, event }]);
    // What a call first seen now starts as: all its events are new (a call and its events are stored together).
    const initial = new Map([...byCall].map(([callId, list]) => [callId, list.slice(1).reduce((facts, e) => applyEvent(facts, e.event), initialFacts(list[0].event))]));
    // Sorted, like every row touched here, so that concurrent requests sharing calls queue rather than deadlock.
    const callIds = [...byCall.keys()].sort();
    const newCalls = callIds.map((callId) => {
      const first = (byCall.get(callId) as { event: PbxEvent }[])[0].event;
      const facts = initial.get(callId) as CallFacts;
      return { ...factsRecord(facts, { callId, clickToCall: facts.bitrixCallId !== null, syncState: 'pending' }), direction: first.direction, phone_number: first.phoneNumber, phone_raw: first.phoneRaw.slice(0, 64) };
    });
    const records = [...unique].sort(([a], [b]) => (a < b ? -1 : 1)).map(([fingerprint, e]) => ({ fingerprint, call_id: e.callId, event: e.event, payload: e }));
    const window = this.originateWindow(events);

    // Sent together: the lock follows the insert, so it finds the calls created by this request, and
    // those created by a concurrent one, which the insert waited for.
    const [[stored], locked] = await Promise.all([
      runGeneric<StoreResult>(client, STORE, [companyId, JSON.stringify(records), JSON.stringify(newCalls), window?.from ?? null, window?.to ?? null]),
      run<CallRow>(client, LOCK_CALLS, [companyId, callIds]),
    ]);
    const fresh = new Set(stored.fresh);
    const created = new Set(stored.created);
    const rows = locked.map((row) => ({ ...row, id: String(row.id), isNew: created.has(row.callId) }));

    const updates: ReturnType<typeof factsRecord>[] = [];
    for (const row of rows) {
      const list = byCall.get(row.callId) ?? [];
      const current = pickFacts(row);
      let facts = row.isNew ? current : list.filter((e) => fresh.has(e.fingerprint)).reduce((f, e) => applyEvent(f, e.event), current);
      // A Bitrix24 CALL_ID from the PBX (not one this service registered) makes it a click-to-call.
      let clickToCall = row.clickToCall || (row.bitrixCallId === null && facts.bitrixCallId !== null);
      if (row.isNew && !clickToCall && stored.originates_waiting) {
        const matched = await this.matchOriginate(client, companyId, row, list[0].event);
        if (matched) {
          facts = { ...facts, bitrixCallId: matched };
          clickToCall = true;
        }
      } else if (row.isNew && facts.bitrixCallId) {
        await client.query(`UPDATE pbx_originates SET matched_call_id = $3 WHERE company_id = $1 AND bitrix_call_id = $2 AND matched_call_id IS NULL`, [companyId, facts.bitrixCallId, row.id]);
      }
      if (sameFacts(facts, current) && clickToCall === row.clickToCall) continue;
      const syncState: SyncState = row.syncState === 'synced' ? 'pending' : row.syncState;
      updates.push(factsRecord(facts, { id: row.id, clickToCall, syncState }));
    }
    // Sent, not awaited: the commit follows them on the connection (inTransaction).
    const queued: Promise<unknown>[] = [];
    if (updates.length) queued.push(run(client, UPDATE_CALLS, [JSON.stringify(updates), updates.map((u) => u.id)]));
    const extensions = this.rememberExtensions(client, companyId, events);
    if (extensions) queued.push(extensions);
    queued.push(CallSyncService.markDueInTransaction(client, companyId, live));
    return { result: undefined, queued };
  }

  /**
   * Every sip_phone seen, for `suggested_bindings`. These rows are shared by all of a company's
   * requests: written at most once a minute per extension and process, after the calls' rows.
   */
  private rememberExtensions(client: PoolClient, companyId: number, events: PbxEvent[]): Promise<unknown> | null {
    const sipPhones = [...new Set(events.flatMap((e) => e.sipPhones))].filter((sip) => !this.seenExtensions.has(`${companyId}:${sip}`)).sort();
    if (!sipPhones.length) return null;
    for (const sip of sipPhones) this.seenExtensions.set(`${companyId}:${sip}`, true);
    return client.query(
      `INSERT INTO pbx_known_extensions (company_id, sip_phone, last_seen_at) SELECT $1, s, now() FROM unnest($2::text[]) AS s
       ON CONFLICT (company_id, sip_phone) DO UPDATE SET last_seen_at = now()`,
      [companyId, sipPhones],
    );
  }

  /** The span in which an originate could match a new outbound call of these (their first events): null when none could. */
  private originateWindow(firstEvents: PbxEvent[]): { from: Date; to: Date } | null {
    const times = firstEvents.filter((e) => e.direction === 'outbound' && e.bitrixCallId === null && e.sipPhones.length > 0).map((e) => e.occurredAt.getTime());
    if (!times.length) return null;
    return { from: new Date(Math.min(...times) - ORIGINATE_MATCH_MS), to: new Date(Math.max(...times) + ORIGINATE_MATCH_MS) };
  }

  /**
   * SPEC §6: an outbound call whose first event names the originate's operator and number, within
   * 2 minutes either way of the time the originate was accepted; the oldest unmatched one wins.
   */
  private async matchOriginate(client: PoolClient, companyId: number, row: CallRow, first: PbxEvent): Promise<string | null> {
    if (row.direction !== 'outbound' || !first.sipPhones.length) return null;
    const at = first.occurredAt.getTime();
    const { rows: [match] } = await client.query<{ bitrix_call_id: string }>(
      `WITH candidate AS (
         SELECT id FROM pbx_originates
          WHERE company_id = $1 AND phone_number = $2 AND sip_phone = ANY($3::text[]) AND matched_call_id IS NULL
            AND bitrix_call_id IS NOT NULL AND status = 'dialing' AND created_at BETWEEN $4 AND $5
          ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED),
       matched AS (UPDATE pbx_originates o SET matched_call_id = $6 FROM candidate WHERE o.id = candidate.id RETURNING o.bitrix_call_id)
       SELECT bitrix_call_id FROM matched`,
      [companyId, row.phoneNumber, first.sipPhones, new Date(at - ORIGINATE_MATCH_MS), new Date(at + ORIGINATE_MATCH_MS), row.id],
    );
    return match?.bitrix_call_id ?? null;
  }
}

function pickFacts(row: CallRow): CallFacts {
  const date = (v: Date | string | null) => (v === null ? null : new Date(v));
  return {
    status: row.status,
    lineNumber: row.lineNumber,
    firstSipPhone: row.firstSipPhone,
    rung: row.rung,
    answeredBy: row.answeredBy,
    handledBy: row.handledBy,
    startedAt: new Date(row.startedAt),
    startOffsetMin: Number(row.startOffsetMin),
    ringingSeen: row.ringingSeen,
    answeredAt: date(row.answeredAt),
    endedAt: date(row.endedAt),
    duration: row.duration,
    recordingUrl: row.recordingUrl,
    bitrixCallId: row.bitrixCallId,
  };
}

function flatten(errors: ValidationError[], prefix: string): FieldErrors {
  const out: FieldErrors = {};
  for (const error of errors) {
    const path = `${prefix}${error.property}`;
    if (error.constraints) out[path] = Object.values(error.constraints);
    if (error.children?.length) Object.assign(out, flatten(error.children, `${path}.`));
  }
  return out;
}
