import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Config } from '../config/config';
import type { RateLimit } from '../config/bitrix.config';
import { prepared, run } from '../database/prepared';
import { WorkerPool } from '../database/worker-pool';

const STANDARD: RateLimit = { rate: 2, burst: 50 };
const ENTERPRISE: RateLimit = { rate: 5, burst: 250 };

/** Takes one slot if the level after draining stays within the lane's cap ($1 member_id, $2 rate, $3 cap); a row when taken. */
const ACQUIRE = prepared(
  'rate_limit_acquire',
  `WITH now AS (SELECT clock_timestamp() AS t)
   INSERT INTO bitrix_rate_buckets AS b (member_id, level, updated_at)
   VALUES ($1, 1, (SELECT t FROM now))
   ON CONFLICT (member_id) DO UPDATE
     SET level = GREATEST(0, b.level - $2 * EXTRACT(EPOCH FROM (SELECT t FROM now) - b.updated_at)) + 1,
         updated_at = (SELECT t FROM now)
     WHERE GREATEST(0, b.level - $2 * EXTRACT(EPOCH FROM (SELECT t FROM now) - b.updated_at)) + 1 <= $3
       AND (b.blocked_until IS NULL OR b.blocked_until <= (SELECT t FROM now))
   RETURNING b.level`,
);
/** A bucket's state as one JSON value (`member`: an SQL expression of the portal's member_id). */
const BUCKET = (member: string) =>
  `SELECT json_build_object('level', level, 'age', EXTRACT(EPOCH FROM clock_timestamp() - updated_at), 'blocked', EXTRACT(EPOCH FROM blocked_until - clock_timestamp()))
     FROM bitrix_rate_buckets WHERE member_id = ${member}`;
const PAUSED = (member: string) =>
  `SELECT json_object_agg(method, EXTRACT(EPOCH FROM until) * 1000) FROM bitrix_method_pauses WHERE member_id = ${member} AND until > clock_timestamp()`;
const LEVEL = prepared('rate_limit_level', `SELECT (${BUCKET('$1')}) AS rate_bucket`);
const PAUSED_METHODS = prepared('rate_limit_paused_methods', `SELECT (${PAUSED('$1')}) AS paused_methods`);

/** A portal's bucket as last written: its level, seconds since, and seconds it is still blocked for (QUERY_LIMIT_EXCEEDED). */
export interface BucketState {
  level: number;
  age: number;
  blocked: number | null;
}

/** Methods paused by OPERATION_TIME_LIMIT, with the time (ms) each is paused until. */
export type PausedMethods = Map<string, number>;

/** What `bucketColumns` reads, as node-postgres returns it. */
export interface LimiterColumns {
  rate_bucket: BucketState | null;
  paused_methods: Record<string, number> | null;
}

/** Who is asking: a ringing card or a person waiting on an endpoint, or background sync work. */
export type Lane = 'priority' | 'background';

/**
 * Bitrix24's own leaky bucket, mirrored in PostgreSQL so that every instance of the service
 * shares one count per portal: each request adds 1, the level drains at `rate` per second. Our
 * burst keeps a margin below Bitrix24's (its count includes requests in flight and its clock is
 * not ours), and background work stops short of it by a reserve, so a ringing call or a person
 * waiting on an endpoint always finds a free slot at once. Methods paused by OPERATION_TIME_LIMIT
 * live here too, so that every instance respects the pause.
 */
@Injectable()
export class BitrixRateLimiter {
  private readonly override: RateLimit | null;

  constructor(
    private readonly db: WorkerPool,
    config: ConfigService<Config, true>,
  ) {
    this.override = config.get('bitrix', { infer: true }).rateLimit;
  }

  limitFor(licenseFamily: string | null): RateLimit {
    return this.override ?? (licenseFamily === 'ent' ? ENTERPRISE : STANDARD);
  }

  /**
   * The levels a lane may fill the bucket to. The margin below Bitrix24's burst absorbs the time
   * between taking a slot here and the request reaching Bitrix24 (~300 ms of drain, at least 2);
   * the priority reserve is about half a second of drain (at least 2 requests).
   */
  static caps(limit: RateLimit): Record<Lane, number> {
    const priority = Math.max(1, limit.burst - Math.max(2, Math.ceil(limit.rate * 0.3)));
    const reserve = Math.max(2, Math.ceil(limit.rate * 0.5));
    return { priority, background: Math.max(1, priority - reserve) };
  }

  /** Takes a slot if the lane has room now: 0. Otherwise nothing is taken and the answer is how long to wait (ms). */
  async tryAcquire(memberId: string, limit: RateLimit, lane: Lane): Promise<number> {
    const cap = BitrixRateLimiter.caps(limit)[lane];
    const taken = await run(this.db.pool, ACQUIRE, [memberId, limit.rate, cap]);
    if (taken.length) return 0;
    return Math.max(10, (await this.waits(memberId, limit))[lane] + 5);
  }

  /** How long each lane must wait for room (ms, 0: room now), without taking anything: a worker looks before it prepares a batch. */
  async waits(memberId: string, limit: RateLimit): Promise<Record<Lane, number>> {
    const [row] = await run<Pick<LimiterColumns, 'rate_bucket'>>(this.db.pool, LEVEL, [memberId]);
    return BitrixRateLimiter.waitsFor(row.rate_bucket, limit);
  }

  /**
   * The columns `rate_bucket` and `paused_methods` of the portal whose member_id is `member` (an SQL
   * expression), for a statement that reads them along with other things: the call-sync worker's
   * round learns all it needs before planning in one round trip.
   */
  static bucketColumns(member: string): string {
    return `(${BUCKET(member)}) AS rate_bucket, (${PAUSED(member)}) AS paused_methods`;
  }

  /** `waits` for a bucket read by `bucketColumns` (null: never used, room in every lane). */
  static waitsFor(bucket: BucketState | null, limit: RateLimit): Record<Lane, number> {
    if (!bucket) return { priority: 0, background: 0 };
    const caps = BitrixRateLimiter.caps(limit);
    const level = Math.max(0, Number(bucket.level) - limit.rate * Number(bucket.age));
    const wait = (lane: Lane) => Math.ceil(Math.max(Math.max(0, (level + 1 - caps[lane]) / limit.rate), Number(bucket.blocked ?? 0)) * 1000);
    return { priority: wait('priority'), background: wait('background') };
  }

  /** `pausedMethods` for what `bucketColumns` read. */
  static pausedFrom(columns: Pick<LimiterColumns, 'paused_methods'>): PausedMethods {
    return new Map(Object.entries(columns.paused_methods ?? {}));
  }

  /** After Bitrix24 said QUERY_LIMIT_EXCEEDED: treat the bucket as full and pause the portal. */
  async penalize(memberId: string, limit: RateLimit, pauseMs: number): Promise<void> {
    await this.db.pool.query(
      `UPDATE bitrix_rate_buckets SET level = $2, updated_at = clock_timestamp(),
         blocked_until = GREATEST(COALESCE(blocked_until, clock_timestamp()), clock_timestamp() + make_interval(secs => $3))
       WHERE member_id = $1`,
      [memberId, limit.burst, pauseMs / 1000],
    );
  }

  /** Methods of the portal still paused by OPERATION_TIME_LIMIT, with the time (ms) each is paused until. */
  async pausedMethods(memberId: string): Promise<PausedMethods> {
    const [row] = await run<Pick<LimiterColumns, 'paused_methods'>>(this.db.pool, PAUSED_METHODS, [memberId]);
    return BitrixRateLimiter.pausedFrom(row);
  }

  async pauseMethod(memberId: string, method: string, untilMs: number): Promise<void> {
    await this.db.pool.query(
      `INSERT INTO bitrix_method_pauses (member_id, method, until) VALUES ($1, $2, $3)
       ON CONFLICT (member_id, method) DO UPDATE SET until = GREATEST(bitrix_method_pauses.until, EXCLUDED.until)`,
      [memberId, method.toLowerCase(), new Date(untilMs)],
    );
  }
}
