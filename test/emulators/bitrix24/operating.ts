import { restErrors } from './errors';

const BUCKET_MS = 60_000;
const BUCKETS = 10;
/** Runs shorter than this are not charged (the core's `minimalFixTime`). */
const MIN_CHARGED_SEC = 0.1;
/** The cloud budget per method per app per 10 minutes (brief §2.7; the box default is 420). */
export const DEFAULT_OPERATING_LIMIT_SEC = 480;

export interface OperatingOptions {
  /** Seconds of execution a method may use per 10 minutes before 429; default 480. */
  limitSec?: number;
  /** Emulated execution time charged per call of a method (lower-case name), in seconds. */
  costSec?: Record<string, number>;
}

interface Bucket {
  sec: number;
  /** When this bucket stops counting: the first charge in it plus 10 minutes (ms). */
  expiresAt: number;
}

/**
 * The per-method operating budget ("resource intensity") of the one app installed on a portal,
 * after `Bitrix\Rest\Engine\Access\LoadLimiter`: execution seconds in ten one-minute buckets;
 * once a method has used more than the limit, its next call is refused with 429
 * OPERATION_TIME_LIMIT until the oldest bucket drops out. `batch` itself is not limited (its
 * commands are, each under its own method).
 */
export class OperatingMeter {
  limitSec: number;
  private readonly costs = new Map<string, number>();
  private readonly spent = new Map<string, Map<number, Bucket>>();

  constructor(options: OperatingOptions = {}) {
    this.limitSec = options.limitSec ?? DEFAULT_OPERATING_LIMIT_SEC;
    for (const [method, sec] of Object.entries(options.costSec ?? {})) this.setCost(method, sec);
  }

  /** Every later call of `method` is charged `sec` of execution instead of its measured time. */
  setCost(method: string, sec: number): void {
    if (!Number.isFinite(sec) || sec < 0) throw new Error(`operating cost of ${method} must be a non-negative number`);
    this.costs.set(method.toLowerCase(), sec);
  }

  /** What a call of `method` that really ran `measuredSec` is charged. */
  charge(method: string, measuredSec: number): number {
    return this.costs.get(method.toLowerCase()) ?? measuredSec;
  }

  /** Throws 429 OPERATION_TIME_LIMIT when `method` is over its budget at `now` (ms). */
  check(method: string, now: number): void {
    if (method === 'batch') return;
    if (this.used(method, now) > this.limitSec) throw restErrors.operationTimeLimit();
  }

  record(method: string, startedAt: number, sec: number): void {
    if (method === 'batch' || sec <= MIN_CHARGED_SEC) return;
    const buckets = this.spent.get(method) ?? new Map<number, Bucket>();
    const index = Math.floor(startedAt / BUCKET_MS);
    const bucket = buckets.get(index) ?? { sec: 0, expiresAt: startedAt + BUCKETS * BUCKET_MS };
    bucket.sec += sec;
    buckets.set(index, bucket);
    this.spent.set(method, buckets);
  }

  /** `time.operating` and `time.operating_reset_at` (unix s) of an answer for `method`. */
  report(method: string, startedAt: number, now: number): { operating_reset_at: number; operating: number } {
    const live = this.live(method, now);
    const oldest = live.reduce<Bucket | undefined>((first, bucket) => (first && first.expiresAt <= bucket.expiresAt ? first : bucket), undefined);
    return {
      operating_reset_at: Math.floor((oldest?.expiresAt ?? startedAt + BUCKETS * BUCKET_MS) / 1000),
      operating: live.reduce((sum, bucket) => sum + bucket.sec, 0),
    };
  }

  /** Forgets every charge (a new 10-minute window for every method). */
  reset(): void {
    this.spent.clear();
  }

  private used(method: string, now: number): number {
    return this.live(method, now).reduce((sum, bucket) => sum + bucket.sec, 0);
  }

  /** The buckets of the current minute and the nine before it; older ones are dropped. */
  private live(method: string, now: number): Bucket[] {
    const buckets = this.spent.get(method);
    if (!buckets) return [];
    const current = Math.floor(now / BUCKET_MS);
    for (const index of buckets.keys()) if (index <= current - BUCKETS) buckets.delete(index);
    return [...buckets.values()];
  }
}
