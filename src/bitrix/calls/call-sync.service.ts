import { randomUUID } from 'node:crypto';
import { Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { Counter, Gauge } from 'prom-client';
import type { Pool, PoolClient } from 'pg';
import { DataSource } from 'typeorm';
import { ChangeListener, type ChangeFeed } from '../../database/change-listener';
import { pgPool, prepared, run, runGeneric, type Prepared, type Queryable } from '../../database/prepared';
import { WorkerPool } from '../../database/worker-pool';
import { MetricsService } from '../../metrics/metrics.service';
import { RecordingFetcher } from '../../pbx/recording-fetcher';
import { BATCH_LIMIT, BitrixApiService, errorKey, type BatchCommands, type CommandOutcome, type Outcome } from '../bitrix-api.service';
import type { BitrixIntegration } from '../bitrix-integration.entity';
import { BitrixRateLimiter, type LimiterColumns, type PausedMethods } from '../bitrix-rate-limiter';
import { IntegrationService } from '../oauth/integration.service';
import { marker, planCall, type CallPlan, type PlannedCommand, type SyncContext } from './call-plan';
import { Call, type CallStep } from './call.entity';

/** Portals one instance works on at once. */
const MAX_PORTALS = 32;
/** Calls looked at per round of one portal (a round sends at most one batch). */
const CALLS_PER_ROUND = 100;
/**
 * A portal's lease, renewed while its round runs: an instance that dies (SIGKILL) holds its
 * portals for at most this long.
 */
const LEASE_MS = 20_000;
const LEASE_RENEW_MS = 5_000;
const ROUND_DEADLINE_MS = 120_000;
/** Files up to this size are attached as base64 inside the request; larger ones use the uploadUrl flow. */
const INLINE_RECORDING_BYTES = 1024 * 1024;
/** How often an idle worker looks for work while nothing announces it (the change listener is down). */
const IDLE_POLL_MS = 25;
/**
 * While work stored anywhere is announced (`call_sync_due`), an idle worker sleeps until the next
 * portal it knows of falls due, and at most this long: a backstop for a dead instance's lease
 * running out, which nothing announces.
 */
const IDLE_MAX_MS = 1_000;
/** Something is due but another instance is claiming it: look again shortly. */
const IDLE_MIN_MS = 10;
/** Announced by markDue when a portal falls due now, for the idle workers of every instance. */
const DUE_CHANNEL = 'call_sync_due';
const RESUME_SCAN_MS = 2_000;
/**
 * A call the PBX never reported the end of is finished by the service this long after the service
 * first heard of it (the longest call the PBX can report lasts a day; counted on our clock, so
 * events the PBX replays days late are not cut short), so that Bitrix24 does not keep it open and
 * its cards shown forever.
 */
const ABANDONED_AFTER = '1 day 10 minutes';
const ABANDONED_SCAN_MS = 60_000;
const MAX_BACKOFF_MS = 5 * 60_000;
/** `next_attempt_at` of a call that waits for the PBX's next event. */
const WAITING = 'infinity';

/** A live call waits only while no lane has room; background work also while its own lane has none. */
const DUE_WHEN = `CASE WHEN $2::boolean THEN GREATEST(now(), held_until) ELSE GREATEST(now(), throttled_until, held_until) END`;
/**
 * `markDue`'s statement ($1 company, $2 live): creates the company's portal row, due now, when it
 * has none (the transaction that stores a company's first calls includes it), and a portal that
 * falls due now is announced to idle workers. A company that is not connected has nothing to
 * send: its new calls are stored paused, and a round would only pause what became pending
 * meanwhile, which the housekeeping scan finds (resumeReconnected) without a round for every event
 * the PBX posts.
 */
const MARK_DUE = prepared(
  'call_sync_mark_due',
  `WITH portal_row AS (INSERT INTO call_sync_portals (company_id, due_at) SELECT $1, now() WHERE NOT EXISTS (SELECT 1 FROM call_sync_portals WHERE company_id = $1)
     ON CONFLICT (company_id) DO NOTHING RETURNING 1),
   marked AS (UPDATE call_sync_portals SET due_at = ${DUE_WHEN} WHERE company_id = $1 AND (due_at IS NULL OR due_at > ${DUE_WHEN})
     AND EXISTS (SELECT 1 FROM bitrix_integrations WHERE company_id = $1 AND status = 'connected') RETURNING due_at)
   SELECT pg_notify('${DUE_CHANNEL}', '') FROM (SELECT due_at FROM marked UNION ALL SELECT now() FROM portal_row) m WHERE m.due_at <= now() LIMIT 1`,
);

/** A portal's work for a round: every column of the call, as the entity names them ($1 company, $2 how many). */
const CALL_FIELDS = `id, company_id AS "companyId", call_id AS "callId", direction, phone_number AS "phoneNumber", phone_raw AS "phoneRaw",
  line_number AS "lineNumber", status, sync_state AS "syncState", first_sip_phone AS "firstSipPhone", rung, answered_by AS "answeredBy",
  handled_by AS "handledBy", started_at AS "startedAt", start_offset_min AS "startOffsetMin", ringing_seen AS "ringingSeen",
  answered_at AS "answeredAt", ended_at AS "endedAt", duration, recording_url AS "recordingUrl", bitrix_call_id AS "bitrixCallId",
  click_to_call AS "clickToCall", member_id AS "memberId", register_user_id AS "registerUserId", crm_entity_type AS "crmEntityType",
  crm_entity_id AS "crmEntityId", deal_id AS "dealId", shown_to AS "shownTo", sent_steps AS "sentSteps", done_steps AS "doneSteps",
  task_id AS "taskId", task_responsible_id AS "taskResponsibleId", facts_version AS "factsVersion", attempts, last_error AS "lastError",
  next_attempt_at AS "nextAttemptAt", created_at AS "createdAt", updated_at AS "updatedAt"`;
/**
 * Live calls first, oldest first (their cards wait; ix_calls_live holds only them, in that order),
 * then ended calls in the order they became due (ix_calls_work, read no further than needed): a
 * backlog of thousands of finishes is never scanned or sorted whole. Each order is its index's own,
 * so no plan walks the whole table in id order looking for the few rows that match.
 */
const LIVE_CALLS = `SELECT ${CALL_FIELDS} FROM calls WHERE company_id = $1 AND ended_at IS NULL AND sync_state = 'pending' AND next_attempt_at <= now()
  ORDER BY created_at LIMIT $2`;
const DUE_CALLS = prepared(
  'call_sync_due_calls',
  `SELECT * FROM (
     SELECT 0 AS lane, live.* FROM (${LIVE_CALLS}) live
     UNION ALL
     SELECT 1, ended.* FROM (SELECT ${CALL_FIELDS} FROM calls WHERE company_id = $1 AND sync_state = 'pending' AND next_attempt_at <= now() AND ended_at IS NOT NULL
       ORDER BY next_attempt_at LIMIT $2) ended) due
   ORDER BY lane, CASE WHEN lane = 0 THEN "createdAt" END, "nextAttemptAt", id LIMIT $2`,
);
/**
 * Everything a round needs to know besides its calls, in one round trip ($1 company): the
 * integration (`integrationColumns`: its columns as the entity names them), the settings (none
 * saved: null columns) and bindings, and the portal's rate-limit bucket and paused methods.
 */
const CONTEXT = (integrationColumns: string) =>
  prepared(
    'call_sync_context',
    `SELECT ${integrationColumns}, s.show_card, s.crm_create, s.crm_source, s.pipeline_id, s.attach_records, s.missed_call_task, s.default_bitrix_user_id,
            (SELECT coalesce(json_agg(json_build_array(b.sip_phone, b.bitrix_user_id)), '[]') FROM bitrix_bindings b WHERE b.company_id = $1) AS bindings,
            ${BitrixRateLimiter.bucketColumns('i.member_id')}
       FROM (SELECT 1) one LEFT JOIN bitrix_integrations i ON i.company_id = $1 LEFT JOIN bitrix_settings s ON s.company_id = $1`,
  );
/** A row of CONTEXT. */
interface SettingsRow extends LimiterColumns {
  show_card: SyncContext['showCard'] | null;
  crm_create: SyncContext['crmCreate'] | null;
  crm_source: string | null;
  pipeline_id: number | null;
  attach_records: boolean | null;
  missed_call_task: boolean | null;
  default_bitrix_user_id: number | null;
  bindings: [string, number][];
}

function context(settings: SettingsRow, integration: BitrixIntegration): SyncContext {
  return {
    // The defaults of GET /settings for a company that never saved any.
    showCard: settings.show_card ?? 'ringing',
    crmCreate: settings.crm_create ?? 'none',
    crmSource: settings.crm_source,
    pipelineId: settings.pipeline_id,
    attachRecords: settings.attach_records ?? true,
    missedCallTask: settings.missed_call_task ?? false,
    defaultBitrixUserId: settings.default_bitrix_user_id,
    ownerBitrixUserId: integration.ownerBitrixUserId,
    bindings: new Map(settings.bindings),
  };
}

const CLAIM = prepared(
  'call_sync_claim',
  `WITH due AS (
     SELECT company_id FROM call_sync_portals
      WHERE (lease_until IS NULL AND due_at <= clock_timestamp()) OR lease_until < clock_timestamp()
      ORDER BY due_at NULLS FIRST LIMIT $2 FOR UPDATE SKIP LOCKED),
   claimed AS (
     UPDATE call_sync_portals p SET lease_owner = $1, lease_until = clock_timestamp() + make_interval(secs => $3), due_at = NULL
       FROM due WHERE p.company_id = due.company_id RETURNING p.company_id)
   SELECT (SELECT coalesce(array_agg(company_id), '{}') FROM claimed) AS claimed,
          (SELECT ceil(extract(epoch FROM min(due_at) - clock_timestamp()) * 1000) FROM call_sync_portals WHERE lease_until IS NULL AND due_at IS NOT NULL) AS next_due_ms`,
);
const RENEW = prepared('call_sync_renew', `UPDATE call_sync_portals SET lease_until = clock_timestamp() + make_interval(secs => $3) WHERE company_id = $1 AND lease_owner = $2`);
/**
 * Gives the portal back ($1 company, $2 owner): due again at $3, or ($6) when its next pending call
 * is, but not before $4 (the background lane's throttle); earlier if work was stored meanwhile.
 */
const RELEASE = prepared(
  'call_sync_release',
  `UPDATE call_sync_portals SET lease_owner = NULL, lease_until = NULL, throttled_until = $4, held_until = $5,
     due_at = LEAST(due_at, CASE WHEN $6 THEN (SELECT CASE WHEN n.next IS NOT NULL THEN GREATEST(n.next, $4::timestamptz) END
       FROM (SELECT min(next_attempt_at) AS next FROM calls WHERE company_id = $1 AND sync_state = 'pending' AND next_attempt_at < 'infinity') n) ELSE $3::timestamptz END)
   WHERE company_id = $1 AND lease_owner = $2`,
);

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const backoff = (attempts: number) => Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.max(0, attempts - 1)) * (0.5 + Math.random() * 0.5);
const without = <T>(list: T[], ...items: T[]) => list.filter((x) => !items.includes(x));
const withItems = <T>(list: T[], ...items: T[]) => [...new Set([...list, ...items])];

/**
 * When a portal is due again (`next`; null: nothing to do; `nextPending`: when its next pending call
 * is, read as it is released), until when its background lane has no room, and until when no lane
 * has (markDue holds background work, and then all work, back till those times).
 */
interface Due {
  next: Date | null;
  nextPending?: true;
  throttledUntil: Date | null;
  heldUntil?: Date;
}

/** The portal must wait until `until`; `held`: every lane must (a ringing call's batch found no room). */
interface Pause {
  until: Date;
  held: boolean;
}

/** Updates of calls, and the calls as the round read them. */
interface Writes {
  updates: Map<string, Update>;
  read: Map<string, Call>;
}

/** How a round ends: when the portal is due again, and the round's last updates, written as the portal is released. */
interface RoundEnd {
  due: Due;
  writes: Writes | null;
}

/** What a round works with once it has read the portal. */
interface Round {
  integration: BitrixIntegration;
  ctx: SyncContext;
  /** Methods paused by OPERATION_TIME_LIMIT. */
  paused: PausedMethods;
  signal: AbortSignal;
}

/** The later of two times; null when `time` is null (nothing to do). */
const later = (time: Date | null, floor: Date | null): Date | null => (time && floor && floor > time ? floor : time);

/** The columns the worker writes, with their SQL type: an Update names only those it changes. */
const WORKER_COLUMNS = {
  syncState: ['sync_state', 'text'],
  bitrixCallId: ['bitrix_call_id', 'text'],
  registerUserId: ['register_user_id', 'int'],
  crmEntityType: ['crm_entity_type', 'text'],
  crmEntityId: ['crm_entity_id', 'int'],
  dealId: ['deal_id', 'int'],
  shownTo: ['shown_to', 'int[]'],
  sentSteps: ['sent_steps', 'text[]'],
  doneSteps: ['done_steps', 'text[]'],
  taskId: ['task_id', 'int'],
  taskResponsibleId: ['task_responsible_id', 'int'],
  attempts: ['attempts', 'int'],
  lastError: ['last_error', 'text'],
  memberId: ['member_id', 'text'],
  nextAttemptAt: ['next_attempt_at', 'timestamptz'],
} as const;

type Update = Partial<Pick<Call, Exclude<keyof typeof WORKER_COLUMNS, 'nextAttemptAt'>>> & { nextAttemptAt?: Date | typeof WAITING };

/**
 * One statement for every call of a round: each column is set only where the call's update names
 * it. A call whose facts changed since the worker read it (a PBX event meanwhile) still takes the
 * update, but is due again at once and not `synced`: the worker decides on the new facts.
 */
const SAVE = prepared('call_sync_save', (() => {
  const value = (key: string, type: string) =>
    type.endsWith('[]') ? `ARRAY(SELECT jsonb_array_elements_text(u.patch->'${key}'))::${type}` : `(u.patch->>'${key}')::${type}`;
  const changed = `u.seen IS NOT NULL AND c.facts_version <> u.seen`;
  const sets = Object.entries(WORKER_COLUMNS).map(([key, [column, type]]) => {
    const given = `CASE WHEN u.patch ? '${key}' THEN ${value(key, type)} ELSE c.${column} END`;
    if (key === 'syncState') return `${column} = CASE WHEN ${changed} AND u.patch->>'${key}' = 'synced' THEN 'pending' ELSE ${given} END`;
    if (key === 'nextAttemptAt') return `${column} = CASE WHEN ${changed} THEN now() ELSE ${given} END`;
    return `${column} = ${given}`;
  });
  // The rows are locked first, one lookup each in the order given (call_id order, as ingest locks them).
  // $2 repeats the ids as an array, whose length the planner sees (it takes any recordset for 100
  // rows, and for 100 rows a table of a few thousand calls is cheaper to scan whole).
  return `WITH u AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, seen int, patch jsonb)),
    locked AS (SELECT l.id FROM u, LATERAL (SELECT id FROM calls WHERE id = u.id FOR UPDATE) l)
    UPDATE calls c SET ${sets.join(', ')}, updated_at = now() FROM u WHERE c.id = ANY($2::bigint[]) AND c.id = u.id AND c.id IN (SELECT id FROM locked)`;
})());

/**
 * Mirrors PBX calls into Bitrix24 (SPEC §6). The calls table is a durable outbox: each portal is
 * worked on by one instance at a time (a lease row, claimed with SKIP LOCKED), which plans the next
 * steps of its pending calls, packs them into one `batch` of up to 50 commands (live calls first,
 * in the rate limiter's priority lane), records which create-steps are in flight before sending,
 * and applies each command's outcome. Retryable outcomes back off with jitter, permanent ones fail
 * the call with the reason, and a portal that is not connected pauses its calls until it is.
 */
@Injectable()
export class CallSyncService implements OnApplicationBootstrap, BeforeApplicationShutdown, ChangeFeed {
  readonly channel = DUE_CHANNEL;
  private readonly logger = new Logger(CallSyncService.name);
  private readonly instanceId = randomUUID();
  private running = false;
  private loop: Promise<void> | null = null;
  private housekeeping: Promise<void> | null = null;
  private stopHousekeeping: (() => void) | null = null;
  private readonly active = new Set<Promise<void>>();
  private wakeUp: (() => void) | null = null;
  /** A wake-up that came while the loop was not idle: its next idle ends at once. */
  private woken = false;
  /** Whether work stored anywhere is announced (the change listener is connected). */
  private announced = false;
  private lastAbandonedScan = 0;
  /** Built on first use: it names the integration's columns, known once the data source is up. */
  private context: Prepared | null = null;
  private readonly synced: Counter;
  private readonly failed: Counter;

  constructor(
    private readonly dataSource: DataSource,
    private readonly api: BitrixApiService,
    private readonly limiter: BitrixRateLimiter,
    private readonly recordings: RecordingFetcher,
    private readonly integrations: IntegrationService,
    private readonly workerPool: WorkerPool,
    metrics: MetricsService,
    listener: ChangeListener,
  ) {
    listener.register(this);
    this.synced = new Counter({ name: 'calls_synced_total', help: 'Calls fully mirrored into Bitrix24', registers: [metrics.registry] });
    this.failed = new Counter({ name: 'calls_failed_total', help: 'Calls that could not be mirrored (permanent errors)', registers: [metrics.registry] });
    new Gauge({
      name: 'call_sync_queue_depth',
      help: 'Calls by sync state',
      labelNames: ['state'],
      registers: [metrics.registry],
      async collect() {
        const rows = await dataSource.query<{ sync_state: string; n: string }[]>(`SELECT sync_state, count(*) AS n FROM calls GROUP BY sync_state`);
        for (const state of ['pending', 'synced', 'failed', 'paused']) this.set({ state }, Number(rows.find((r) => r.sync_state === state)?.n ?? 0));
      },
    });
  }

  private get pool(): Pool {
    return this.workerPool.pool;
  }

  /**
   * Marks a company's portal as having work, after the transaction that stored it committed (so
   * the row is locked only for this statement; a crash in between is caught by the worker's sweep).
   * The row is written only when it is not due already: the first call stored after a claim
   * writes it, the others leave it alone. A claim clears `due_at`; the release keeps one set
   * meanwhile, so work stored during a round is never missed. Live work (a ringing card) is due
   * now unless no lane has room (`held_until`); other work also waits while the portal's
   * background lane is throttled.
   */
  static async markDue(db: Queryable, companyId: number, live: boolean): Promise<void> {
    await run(db, MARK_DUE, [companyId, live]);
  }

  /** markDue as the last statement of a transaction; it looks rows up by their keys only, so its plan is reused (runGeneric). */
  static async markDueInTransaction(client: PoolClient, companyId: number, live: boolean): Promise<void> {
    await runGeneric(client, MARK_DUE, [companyId, live]);
  }

  onApplicationBootstrap(): void {
    this.running = true;
    this.loop = this.run();
    this.housekeeping = this.keepHouse();
  }

  /** Before shutdown: the worker's connections close in the shutdown that follows. */
  async beforeApplicationShutdown(): Promise<void> {
    this.running = false;
    this.wake();
    this.stopHousekeeping?.();
    await Promise.all([this.loop, this.housekeeping]);
    await Promise.allSettled([...this.active]);
  }

  /** New work was stored: look for it now rather than at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** A portal fell due, marked by any instance. */
  changed(): void {
    this.wake();
  }

  resume(): void {
    this.announced = true;
    this.wake();
  }

  suspend(): void {
    this.announced = false;
  }

  /** An admin's retry of a failed call: back to pending, from where it stopped. */
  async retry(companyId: number, id: string): Promise<boolean> {
    const result = await this.dataSource.query<{ id: string }[]>(
      `WITH retried AS (UPDATE calls SET sync_state = CASE WHEN EXISTS (SELECT 1 FROM bitrix_integrations i WHERE i.company_id = calls.company_id AND i.status = 'connected') THEN 'pending' ELSE 'paused' END,
         attempts = 0, last_error = NULL, next_attempt_at = now(), updated_at = now()
       WHERE company_id = $1 AND id = $2 AND sync_state = 'failed' RETURNING id) SELECT id FROM retried`,
      [companyId, id],
    );
    if (!result.length) return false;
    await CallSyncService.markDue(pgPool(this.dataSource), companyId, false);
    this.wake();
    return true;
  }

  /** The app was uninstalled from the portal: the company's waiting calls resume only when that portal is connected again (SPEC §6). */
  async holdForPortal(companyId: number, memberId: string): Promise<void> {
    await this.dataSource.query(
      `UPDATE calls SET sync_state = 'paused', member_id = COALESCE(member_id, $2), updated_at = now() WHERE company_id = $1 AND sync_state IN ('pending', 'paused')`,
      [companyId, memberId],
    );
  }

  /**
   * A click-to-call the PBX could not place: its Bitrix24 call is finished through the outbox (as a
   * call of its own that ended at once, `failed`/`busy`/`no_answer`), so it never hangs, even if
   * Bitrix24 is down or this process stops right now.
   */
  async finishFailedClickToCall(call: { companyId: number; bitrixCallId: string; sipPhone: string; phoneNumber: string; status: 'failed' | 'busy' | 'no_answer'; reference: string }): Promise<void> {
    await this.dataSource.query(
      `INSERT INTO calls (company_id, call_id, direction, phone_number, phone_raw, status, sync_state, first_sip_phone, handled_by, started_at, start_offset_min,
         ringing_seen, ended_at, duration, bitrix_call_id, click_to_call, attempts, next_attempt_at)
       SELECT $1, $2, 'outbound', $3, $3, $4, CASE WHEN i.status = 'connected' THEN 'pending' ELSE 'paused' END, $5, $5, now(), 0, false, now(), 0, $6, true, 0, now()
         FROM (SELECT (SELECT status FROM bitrix_integrations WHERE company_id = $1) AS status) i
       ON CONFLICT (company_id, call_id) DO NOTHING`,
      [call.companyId, `click-to-call.${call.reference}`, call.phoneNumber, call.status, call.sipPhone, call.bitrixCallId],
    );
    await CallSyncService.markDue(pgPool(this.dataSource), call.companyId, false);
    this.wake();
  }

  /**
   * The scans that find work nobody marked (resumed portals, a crash between a commit and its
   * markDue, abandoned calls), on their own loop: under load a scan can take seconds, and claiming
   * must not wait for it.
   */
  private async keepHouse(): Promise<void> {
    while (this.running) {
      try {
        await this.resumeReconnected();
        if (Date.now() - this.lastAbandonedScan > ABANDONED_SCAN_MS) await this.endAbandoned();
      } catch (err) {
        if (!this.running) return;
        this.logger.error({ err }, 'Call sync housekeeping failed; continuing');
      }
      if (!this.running) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, RESUME_SCAN_MS);
        this.stopHousekeeping = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        const free = MAX_PORTALS - this.active.size;
        this.woken = false;
        const { claimed, nextDueMs } = free > 0 ? await this.claim(free) : { claimed: [], nextDueMs: null };
        for (const companyId of claimed) {
          const work: Promise<void> = this.round(companyId).finally(() => {
            this.active.delete(work);
            this.wake();
          });
          this.active.add(work);
        }
        if (!claimed.length) await this.idle(free > 0 ? nextDueMs : null);
      } catch (err) {
        if (!this.running) return;
        this.logger.error({ err }, 'Call sync loop failed; continuing');
        await sleep(1000);
      }
    }
  }

  /**
   * Until woken, or until the next portal falls due (`nextDueMs`, null: none known) while work is
   * announced; every IDLE_POLL_MS while it is not.
   */
  private idle(nextDueMs: number | null): Promise<void> {
    if (this.woken) return Promise.resolve();
    const ms = this.announced ? Math.min(IDLE_MAX_MS, Math.max(IDLE_MIN_MS, nextDueMs ?? IDLE_MAX_MS)) : IDLE_POLL_MS;
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  /**
   * Portals with work due and no live lease, or whose holder's lease ran out (it died): `due_at` is
   * consumed by the claim. Also how long until the next unclaimed portal falls due.
   */
  private async claim(limit: number): Promise<{ claimed: number[]; nextDueMs: number | null }> {
    const [row] = await run<{ claimed: number[]; next_due_ms: string | null }>(this.pool, CLAIM, [this.instanceId, limit, LEASE_MS / 1000]);
    return { claimed: row.claimed, nextDueMs: row.next_due_ms === null ? null : Number(row.next_due_ms) };
  }

  /**
   * Writes the round's last updates and gives the portal back, due again as `due` says or earlier if
   * work was stored meanwhile (`markDue`), noting until when background work cannot be sent. Both
   * go in one round trip on one connection, the updates first: whoever claims the portal next finds
   * them committed.
   */
  private async release(companyId: number, { due, writes }: RoundEnd): Promise<void> {
    const client = await this.pool.connect().catch((err: unknown) => {
      this.logger.error({ err, companyId }, 'Could not release a call-sync lease');
      return null;
    });
    if (!client) return;
    try {
      const [saved, released] = await Promise.allSettled([
        writes ? this.save(writes.updates, writes.read, client) : Promise.resolve(),
        run(client, RELEASE, [companyId, this.instanceId, due.next, due.throttledUntil, due.heldUntil ?? null, due.nextPending ?? false]),
      ]);
      if (saved.status === 'rejected') this.logger.error({ err: saved.reason as unknown, companyId }, 'Could not save a call-sync round; its calls are worked on again');
      if (released.status === 'rejected') this.logger.error({ err: released.reason as unknown, companyId }, 'Could not release a call-sync lease');
    } finally {
      client.release();
    }
  }

  /**
   * Paused calls of companies connected again (the same portal, or any portal for calls never
   * sent) go back to work, and portals with due work that nobody marked are marked.
   */
  private async resumeReconnected(): Promise<void> {
    const { rows } = await this.pool.query<{ company_id: number }>(
      `WITH resumed AS (
         UPDATE calls c SET sync_state = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
           FROM bitrix_integrations i
          WHERE c.sync_state = 'paused' AND i.company_id = c.company_id AND i.status = 'connected' AND (c.member_id IS NULL OR c.member_id = i.member_id)
         RETURNING c.company_id)
       SELECT DISTINCT company_id FROM resumed`,
    );
    // Resumed calls may still be ringing: their cards must not wait for background work.
    for (const row of rows) await CallSyncService.markDue(this.pool, row.company_id, true);
    // Work stored by a process that stopped before marking its portal due (a retry and a failed click-to-call mark it after their commit).
    const { rowCount } = await this.pool.query(
      `UPDATE call_sync_portals p SET due_at = now()
        WHERE p.due_at IS NULL AND p.lease_owner IS NULL
          AND EXISTS (SELECT 1 FROM calls c WHERE c.company_id = p.company_id AND c.sync_state = 'pending' AND c.next_attempt_at <= now())`,
    );
    if (rowCount) this.wake();
  }

  /**
   * Calls whose `ended` never came are ended by the service: an answered call as answered (its
   * duration unknown), any other as failed, with a note in `last_error` for the admin.
   */
  private async endAbandoned(): Promise<void> {
    this.lastAbandonedScan = Date.now();
    const { rows } = await this.pool.query<{ company_id: number }>(
      `WITH ended AS (
         UPDATE calls SET ended_at = now(), status = CASE WHEN status = 'answered' THEN 'answered' ELSE 'failed' END,
           last_error = 'The PBX never reported the end of this call; the service finished it a day after it began.',
           facts_version = facts_version + 1, next_attempt_at = now(), updated_at = now()
         WHERE ended_at IS NULL AND created_at < now() - $1::interval AND sync_state IN ('pending', 'paused')
         RETURNING company_id)
       SELECT DISTINCT company_id FROM ended`,
      [ABANDONED_AFTER],
    );
    for (const row of rows) await CallSyncService.markDue(this.pool, row.company_id, false);
    if (rows.length) this.logger.warn({ companies: rows.map((r) => r.company_id) }, 'Finished calls the PBX never reported the end of');
  }

  /** One round for one portal: at most one batch and one recording. */
  private async round(companyId: number): Promise<void> {
    let end: RoundEnd = { due: { next: new Date(Date.now() + 5_000), throttledUntil: null }, writes: null };
    const renew = setInterval(() => {
      run(this.pool, RENEW, [companyId, this.instanceId, LEASE_MS / 1000]).catch((err: unknown) => this.logger.warn({ err, companyId }, 'Could not renew a call-sync lease'));
    }, LEASE_RENEW_MS);
    try {
      end = await this.work(companyId, AbortSignal.timeout(ROUND_DEADLINE_MS));
    } catch (err) {
      this.logger.error({ err, companyId }, 'Call sync round failed; retrying shortly');
    } finally {
      clearInterval(renew);
      await this.release(companyId, end);
    }
  }

  /**
   * Returns when the portal is due again, and the round's last updates (written as it is released).
   * The rate limit, read with the due calls, is looked at first: with no room even for a ringing
   * card the round ends at once, and while only background work is throttled a round
   * happens only for a live call (background work fills the rest of its priority-lane batch), so a
   * throttled portal costs a query or two, not a prepared batch.
   */
  private async work(companyId: number, signal: AbortSignal): Promise<RoundEnd> {
    // Read together: under load each round trip of a round waits its turn on a busy machine.
    this.context ??= CONTEXT(this.integrations.columns('i'));
    const [[known], due] = await Promise.all([
      run<SettingsRow & Partial<BitrixIntegration>>(this.pool, this.context, [companyId]),
      run<Call & { lane: number }>(this.pool, DUE_CALLS, [companyId, CALLS_PER_ROUND]),
    ]);
    const integration = await this.integrations.fromRow(known);
    if (integration?.status !== 'connected') {
      await this.pauseCompany(companyId, integration);
      return { due: { next: null, throttledUntil: null }, writes: null };
    }
    const waits = BitrixRateLimiter.waitsFor(known.rate_bucket, this.limiter.limitFor(integration.licenseFamily));
    if (waits.priority > 0) {
      const until = new Date(Date.now() + waits.priority);
      return { due: { next: until, throttledUntil: until, heldUntil: until }, writes: null };
    }
    const throttledUntil = waits.background > 0 ? new Date(Date.now() + waits.background) : null;
    // Throttled background work goes only along with a live call (lane 0, listed first; in its
    // priority-lane batch): with none, the round ends.
    const calls = throttledUntil && due[0]?.lane !== 0 ? [] : due;
    if (!calls.length) return { due: { next: null, nextPending: true, throttledUntil }, writes: null };

    const ctx = context(known, integration);
    const round: Round = { integration, ctx, paused: BitrixRateLimiter.pausedFrom(known), signal };
    const updates = new Map<string, Update>();
    const batch: { call: Call; plan: CallPlan }[] = [];
    let commandCount = 0;
    let recording: Call | null = null;
    let more = calls.length === CALLS_PER_ROUND;
    for (const call of calls) {
      if (call.memberId && call.memberId !== integration.memberId) {
        // It was sent to another portal of this company: it resumes only there.
        updates.set(call.id, { syncState: 'paused' });
        continue;
      }
      const plan = planCall(call, ctx);
      if (plan.impossible) {
        updates.set(call.id, this.failure(call, plan.impossible));
      } else if (plan.complete) {
        updates.set(call.id, this.completed({ attempts: 0 }));
      } else if (plan.record) {
        recording ??= call;
        if (recording !== call) more = true;
      } else if (plan.idle) {
        updates.set(call.id, { nextAttemptAt: WAITING });
      } else if (commandCount + plan.commands.length <= BATCH_LIMIT) {
        batch.push({ call, plan });
        commandCount += plan.commands.length;
      } else {
        more = true;
      }
    }
    let writes: Writes = { updates, read: new Map(calls.map((c) => [c.id, c])) };
    let pause: Pause | null = null;
    // With a batch to send, these updates are written with what it puts in flight, in one statement.
    if (batch.length) ({ pause, writes } = await this.sendBatch(round, batch, writes));
    if (recording && !pause) {
      // Written before the recording's fetch and upload, which can take a while.
      await this.save(writes.updates, writes.read);
      ({ pause, writes } = await this.attachRecording(round, recording));
    }
    if (pause) return { due: { next: pause.until, throttledUntil: later(pause.until, throttledUntil), heldUntil: pause.held ? pause.until : undefined }, writes };
    // A call whose step left it due at once (a next step of its own) makes the portal due now, so
    // that a live one does not wait out the background lane's throttle. Otherwise the release reads
    // when the next pending call is: a batch whose calls all wait for the PBX costs no empty round.
    const now = Date.now();
    const dueNow = [...writes.updates.values()].some((u) => u.nextAttemptAt instanceof Date && u.nextAttemptAt.getTime() <= now && (u.syncState ?? 'pending') === 'pending');
    if (more || recording || dueNow) return { due: { next: new Date(), throttledUntil }, writes };
    return { due: { next: null, nextPending: true, throttledUntil }, writes };
  }

  /**
   * Not connected: the company's calls wait. A call already sent to a portal stays bound to it
   * (`member_id` is set when it is sent); after reauth_required every waiting call is bound to the
   * portal, which must be the one reconnected (SPEC §6).
   */
  private async pauseCompany(companyId: number, integration: BitrixIntegration | null): Promise<void> {
    await this.pool.query(
      `UPDATE calls SET sync_state = 'paused', member_id = CASE WHEN $3 THEN COALESCE(member_id, $2) ELSE member_id END, updated_at = now()
       WHERE company_id = $1 AND sync_state = 'pending'`,
      [companyId, integration?.memberId ?? null, integration?.status === 'reauth_required'],
    );
  }

  /**
   * Sends one batch; returns its calls' updates (to be written) and, if the portal must wait, until
   * when. `earlier`: updates of the round's other calls, written with what the batch puts in flight.
   */
  private async sendBatch({ integration, ctx, paused, signal }: Round, batch: { call: Call; plan: CallPlan }[], earlier: Writes): Promise<{ pause: Pause | null; writes: Writes }> {
    const { read } = earlier;
    // Before anything leaves: which create-steps are in flight, so a crash or a timeout is never resent blindly.
    const inFlight = new Map(earlier.updates);
    for (const { call, plan } of batch) inFlight.set(call.id, { sentSteps: withItems(call.sentSteps, ...plan.sending), memberId: integration.memberId });
    let written = false;
    const beforeSend = async () => {
      await this.save(inFlight, read);
      written = true;
    };

    const commands: BatchCommands = {};
    for (const { plan } of batch) for (const c of plan.commands) commands[c.key] = [c.method, c.params];
    const lane = batch.some(({ plan }) => plan.live) ? 'priority' : 'background';
    const outcome = await this.api.attemptBatch(integration, commands, { lane, signal, paused, beforeSend });
    // Refused a slot: nothing left, nothing changed but the earlier updates.
    const updates = new Map(written ? [] : earlier.updates);
    if (outcome.kind === 'retry' && outcome.reason === 'rate_limit') return { pause: { until: new Date(Date.now() + outcome.afterMs), held: lane === 'priority' }, writes: { updates, read } };

    let pause: Pause | null = null;
    switch (outcome.kind) {
      case 'done':
        for (const { call, plan } of batch) updates.set(call.id, this.settled(call, this.applyCommands(call, plan, outcome.value), ctx));
        break;
      case 'retry':
        pause = { until: new Date(Date.now() + outcome.afterMs), held: false };
        for (const { call, plan } of batch) {
          // Not sent: nothing is in doubt. Sent (a timeout, a 5xx): the steps stay in doubt for the next attempt.
          const sentSteps = outcome.sent ? withItems(call.sentSteps, ...plan.sending) : call.sentSteps;
          updates.set(call.id, { ...this.retryLater(call, outcome.message, outcome.afterMs), sentSteps });
        }
        break;
      case 'permanent':
        for (const { call } of batch) updates.set(call.id, this.failure(call, outcome.message));
        break;
      case 'reauth':
      case 'not_connected':
        for (const { call } of batch) updates.set(call.id, { sentSteps: call.sentSteps });
        await this.save(updates, read);
        await this.pauseCompany(integration.companyId, integration);
        return { pause: null, writes: { updates: new Map(), read } };
    }
    return { pause, writes: { updates, read } };
  }

  /** A call's row after its commands' outcomes. */
  private applyCommands(call: Call, plan: CallPlan, outcomes: Record<string, CommandOutcome>): Update {
    const u: Update = { sentSteps: withItems(call.sentSteps, ...plan.sending), doneSteps: call.doneSteps, shownTo: call.shownTo, attempts: 0, nextAttemptAt: new Date() };
    let problem: { message: string; retryAfter: number | null } | null = null;
    let crmRefused = false;
    const registerFailed = plan.commands.some((c) => c.kind === 'register' && !outcomes[c.key]?.ok);
    for (const command of plan.commands) {
      const outcome = outcomes[command.key];
      if (!outcome) continue;
      if (outcome.ok) {
        this.applySuccess(call, command, outcome.result, u);
        continue;
      }
      // A step that used the register's CALL_ID fails with it; the register's own outcome decides.
      if (registerFailed && command.kind !== 'register' && command.kind !== 'addContact' && command.kind !== 'addDeal') continue;
      if ((command.kind === 'addContact' || command.kind === 'addDeal') && !outcome.retry) {
        // The CRM refused the record: the call is still mirrored, registered without it.
        u.doneSteps = withItems(u.doneSteps ?? [], 'contact', 'deal');
        u.sentSteps = without(u.sentSteps ?? [], 'contact', 'deal');
        u.lastError = `Bitrix24 did not create the ${command.kind === 'addContact' ? 'contact' : 'deal'}: ${outcome.error.error_description || outcome.error.error}`;
        crmRefused = true;
        continue;
      }
      if (command.kind === 'register' && crmRefusedIn(plan, outcomes)) {
        u.sentSteps = without(u.sentSteps ?? [], 'register');
        continue;
      }
      const key = errorKey(outcome.error);
      if (command.kind === 'finish' && key === 'CALL_NOT_FOUND' && call.sentSteps.includes('finish')) {
        // The earlier finish, whose answer was lost, went through: the call is no longer live.
        u.doneSteps = withItems(u.doneSteps ?? [], 'finish');
        u.sentSteps = without(u.sentSteps ?? [], 'finish');
        u.shownTo = [];
        continue;
      }
      if (command.kind === 'show' || command.kind === 'hide') {
        // A card that cannot be shown is not worth losing the call over.
        u.shownTo = command.kind === 'show' ? withItems(u.shownTo ?? [], ...(command.users ?? [])) : without(u.shownTo ?? [], ...(command.users ?? []));
        if (!outcome.retry) continue;
      }
      if (command.kind === 'search' && !outcome.retry) {
        u.doneSteps = withItems(u.doneSteps ?? [], 'lookup');
        continue;
      }
      const message = `${command.method}: ${outcome.error.error || 'error'}${outcome.error.error_description ? ` (${outcome.error.error_description})` : ''}`;
      if (outcome.retry) problem ??= { message, retryAfter: outcome.afterMs };
      else problem = { message, retryAfter: null };
      if (!outcome.retry) u.sentSteps = without(u.sentSteps ?? [], ...stepOf(command));
    }
    if (crmRefused) u.nextAttemptAt = new Date();
    if (problem?.retryAfter === null) return { ...u, ...this.failure(call, `Bitrix24 refused ${problem.message}`) };
    if (problem) return { ...u, ...this.retryLater(call, problem.message, problem.retryAfter ?? 0) };
    return u;
  }

  private applySuccess(call: Call, command: PlannedCommand, result: unknown, u: Update): void {
    const r = (result ?? {}) as Record<string, unknown>;
    switch (command.kind) {
      case 'register': {
        u.bitrixCallId = String(r.CALL_ID);
        u.registerUserId = Number(command.params.USER_ID);
        u.sentSteps = without(u.sentSteps ?? [], 'register');
        if (typeof r.CRM_ENTITY_TYPE === 'string' && r.CRM_ENTITY_TYPE && Number(r.CRM_ENTITY_ID) > 0) {
          u.crmEntityType = r.CRM_ENTITY_TYPE;
          u.crmEntityId = Number(r.CRM_ENTITY_ID);
        }
        if (typeof r.LEAD_CREATION_ERROR === 'string') u.lastError = `Bitrix24 could not create a lead: ${r.LEAD_CREATION_ERROR}`;
        return;
      }
      case 'dedupe':
        // A number the CRM knows needs nothing created: register binds it by the number.
        u.doneSteps = withItems(u.doneSteps ?? [], 'dedupe', ...(Array.isArray(result) ? [] : (['contact', 'deal'] as const)));
        return;
      case 'addContact':
        u.crmEntityType = 'CONTACT';
        u.crmEntityId = Number(result);
        u.doneSteps = withItems(u.doneSteps ?? [], 'contact');
        u.sentSteps = without(u.sentSteps ?? [], 'contact');
        return;
      case 'addDeal':
        u.dealId = Number(result);
        u.doneSteps = withItems(u.doneSteps ?? [], 'deal');
        u.sentSteps = without(u.sentSteps ?? [], 'deal');
        return;
      case 'findContact':
      case 'findDeal': {
        const [row] = Array.isArray(result) ? (result as { ID?: unknown }[]) : [];
        const step = command.kind === 'findContact' ? 'contact' : 'deal';
        u.sentSteps = without(u.sentSteps ?? [], step);
        if (row && Number(row.ID) > 0) {
          u.doneSteps = withItems(u.doneSteps ?? [], step);
          if (step === 'contact') Object.assign(u, { crmEntityType: 'CONTACT', crmEntityId: Number(row.ID) });
          else u.dealId = Number(row.ID);
        }
        return;
      }
      case 'show':
        u.shownTo = withItems(u.shownTo ?? [], ...(command.users ?? []));
        return;
      case 'hide':
        u.shownTo = without(u.shownTo ?? [], ...(command.users ?? []));
        return;
      case 'finish':
        u.doneSteps = withItems(u.doneSteps ?? [], 'finish');
        u.sentSteps = without(u.sentSteps ?? [], 'finish');
        u.shownTo = [];
        if (!call.crmEntityType && typeof r.CRM_ENTITY_TYPE === 'string' && r.CRM_ENTITY_TYPE && Number(r.CRM_ENTITY_ID) > 0) {
          u.crmEntityType = r.CRM_ENTITY_TYPE;
          u.crmEntityId = Number(r.CRM_ENTITY_ID);
        }
        return;
      case 'lookup': {
        const rows = Array.isArray(result) ? (result as Record<string, unknown>[]) : [];
        const found = rows.find((row) => row.EXTERNAL_CALL_ID === call.callId && typeof row.CALL_ID === 'string');
        u.sentSteps = without(u.sentSteps ?? [], 'register', 'finish');
        if (found) {
          u.bitrixCallId = String(found.CALL_ID);
          u.doneSteps = withItems(u.doneSteps ?? [], 'finish');
        }
        return;
      }
      case 'search': {
        const rows = Array.isArray(result) ? (result as Record<string, unknown>[]) : [];
        const own = rows.find((row) => row.CRM_ENTITY_TYPE === call.crmEntityType && Number(row.CRM_ENTITY_ID) === call.crmEntityId) ?? rows[0];
        u.doneSteps = withItems(u.doneSteps ?? [], 'lookup');
        if (own && Number(own.ASSIGNED_BY_ID) > 0) u.taskResponsibleId = Number(own.ASSIGNED_BY_ID);
        if (own && !call.crmEntityType && typeof own.CRM_ENTITY_TYPE === 'string') {
          u.crmEntityType = own.CRM_ENTITY_TYPE;
          u.crmEntityId = Number(own.CRM_ENTITY_ID);
        }
        return;
      }
      case 'task': {
        const task = (r.task ?? {}) as Record<string, unknown>;
        u.taskId = Number(task.id) || null;
        u.doneSteps = withItems(u.doneSteps ?? [], 'task');
        u.sentSteps = without(u.sentSteps ?? [], 'task');
        return;
      }
      case 'findTask': {
        const tasks = ((r.tasks ?? []) as Record<string, unknown>[]).filter((t) => typeof t.title === 'string' && t.title.includes(marker(call)));
        u.sentSteps = without(u.sentSteps ?? [], 'task');
        if (tasks.length) {
          u.taskId = Number(tasks[0].id) || null;
          u.doneSteps = withItems(u.doneSteps ?? [], 'task');
        }
        return;
      }
    }
  }

  /**
   * Attaches the recording of a finished call (outside `batch`: base64 when small, else the
   * uploadUrl flow); returns the call's update (to be written) and, if the portal must wait, until when.
   */
  private async attachRecording({ integration, ctx, paused, signal }: Round, call: Call): Promise<{ pause: Pause | null; writes: Writes }> {
    const updates = new Map<string, Update>();
    const read = new Map([[call.id, call]]);
    const file = await this.recordings.fetch(call.recordingUrl as string, signal);
    if (file.kind !== 'file') {
      updates.set(call.id, file.kind === 'retry' ? this.retryLater(call, file.reason, 0) : this.failure(call, `Recording not attached: ${file.reason}.`));
      return { pause: null, writes: { updates, read } };
    }
    const filename = `${call.callId.replace(/[^A-Za-z0-9._-]/g, '_')}.${file.extension}`;
    const callId = call.bitrixCallId as string;
    const inline = file.content.length <= INLINE_RECORDING_BYTES;
    const params = inline ? { CALL_ID: callId, FILENAME: filename, FILE_CONTENT: file.content.toString('base64') } : { CALL_ID: callId, FILENAME: filename };
    let outcome: Outcome<unknown> = await this.api.attempt<unknown>(integration, 'telephony.externalCall.attachRecord', params, { signal, paused });
    if (outcome.kind === 'done' && !inline) {
      const upload = (outcome.value as { result?: { uploadUrl?: unknown; fieldName?: unknown } }).result;
      outcome =
        typeof upload?.uploadUrl === 'string'
          ? await this.api.uploadFile(integration, upload.uploadUrl, typeof upload.fieldName === 'string' ? upload.fieldName : 'file', filename, file.content, { signal })
          : { kind: 'permanent', message: 'Bitrix24 sent no uploadUrl for the recording.', error: { error: 'NO_UPLOAD_URL' } };
    }
    let pause: Pause | null = null;
    switch (outcome.kind) {
      case 'done':
        // attachRecord replaces an earlier recording of the call, so a resend after a lost answer is harmless.
        updates.set(call.id, this.settled(call, { doneSteps: withItems(call.doneSteps, 'record'), attempts: 0, nextAttemptAt: new Date() }, ctx));
        break;
      case 'retry':
        if (outcome.reason === 'rate_limit') pause = { until: new Date(Date.now() + outcome.afterMs), held: false };
        else updates.set(call.id, this.retryLater(call, outcome.message, outcome.afterMs));
        break;
      case 'permanent':
        updates.set(call.id, this.failure(call, `Recording not attached: ${outcome.message}`));
        break;
      case 'reauth':
      case 'not_connected':
        await this.pauseCompany(integration.companyId, integration);
        return { pause: null, writes: { updates, read } };
    }
    return { pause, writes: { updates, read } };
  }

  /**
   * A call's update after a successful step, taken one step further: a call that then needs nothing
   * until the PBX reports more (a card shown to whoever is rung), or nothing at all, says so in this
   * update, instead of being read and written again by another round for that alone.
   */
  private settled(call: Call, update: Update, ctx: SyncContext): Update {
    if (update.syncState !== undefined || update.attempts !== 0) return update;
    const next = planCall({ ...call, ...update, nextAttemptAt: call.nextAttemptAt }, ctx);
    if (next.complete) return this.completed(update);
    if (next.idle) return { ...update, nextAttemptAt: WAITING };
    return update;
  }

  private completed(update: Update): Update {
    this.synced.inc();
    return { ...update, syncState: 'synced', attempts: 0, sentSteps: [] };
  }

  private retryLater(call: Call, message: string, afterMs: number): Update {
    const attempts = call.attempts + 1;
    return { attempts, lastError: message, nextAttemptAt: new Date(Date.now() + Math.max(afterMs, backoff(attempts))) };
  }

  private failure(call: Call, message: string): Update {
    this.failed.inc();
    this.logger.warn({ companyId: call.companyId, callId: call.callId, reason: message }, 'Call could not be mirrored into Bitrix24');
    return { syncState: 'failed', attempts: call.attempts + 1, lastError: message, sentSteps: call.sentSteps };
  }

  /**
   * Writes the worker's view of each call. Where an event changed the call since it was read, the
   * worker's "wait" or "done" does not stand: the call is due again at once.
   */
  private async save(updates: Map<string, Update>, read: Map<string, Call>, db: Queryable = this.pool): Promise<void> {
    if (!updates.size) return;
    // In call_id order, the order ingest locks calls in, so that the two never wait on each other in a cycle.
    const rows = [...updates]
      .map(([id, patch]) => ({ id, callId: read.get(id)?.callId ?? '', seen: read.get(id)?.factsVersion ?? null, patch }))
      .sort((a, b) => (a.callId < b.callId ? -1 : a.callId > b.callId ? 1 : 0));
    await run(db, SAVE, [JSON.stringify(rows), rows.map((r) => r.id)]);
  }
}

/** The register bound to a contact created in the same batch fails with it; the call is registered again without it. */
function crmRefusedIn(plan: CallPlan, outcomes: Record<string, CommandOutcome>): boolean {
  return plan.commands.some((c) => c.kind === 'addContact' && outcomes[c.key] && !outcomes[c.key].ok);
}

function stepOf(command: PlannedCommand): CallStep[] {
  switch (command.kind) {
    case 'register':
      return ['register'];
    case 'finish':
      return ['finish'];
    case 'task':
    case 'findTask':
      return ['task'];
    case 'lookup':
      return ['register', 'finish'];
    case 'addContact':
      return ['contact'];
    case 'addDeal':
      return ['deal'];
    case 'dedupe':
    case 'findContact':
    case 'findDeal':
    case 'show':
    case 'hide':
    case 'search':
      return [];
  }
}
