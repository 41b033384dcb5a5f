import type { Clock } from './clock';

export interface RateLimit {
  /** Drain per second. */
  rate: number;
  /** Bucket size: the level above which requests are refused. */
  burst: number;
}

export const STANDARD_LIMIT: RateLimit = { rate: 2, burst: 50 };
export const ENTERPRISE_LIMIT: RateLimit = { rate: 5, burst: 250 };

/**
 * Bitrix24's per-portal leaky bucket (brief §2.7, limits.md): every HTTP request adds 1, refused
 * ones included, the level drains by `rate` per second, and a request that lifts it above `burst`
 * is refused with 503 QUERY_LIMIT_EXCEEDED. A client that keeps knocking keeps the bucket full.
 */
export class LeakyBucket {
  maxLevel = 0;
  private level = 0;
  private last: number;

  constructor(
    public limit: RateLimit,
    private readonly clock: Clock,
  ) {
    this.last = clock.now();
  }

  /** Adds this request; false when the level is now above the burst (the request is refused). */
  tryTake(): boolean {
    this.level = this.drained() + 1;
    this.maxLevel = Math.max(this.maxLevel, this.level);
    return this.level <= this.limit.burst;
  }

  /** Sets the level to the burst, as on a portal another client has just used up (the next request is refused). */
  fill(): void {
    this.level = this.limit.burst;
    this.last = this.clock.now();
  }

  /** The current level after draining. */
  drained(): number {
    const now = this.clock.now();
    this.level = Math.max(0, this.level - ((now - this.last) / 1000) * this.limit.rate);
    this.last = now;
    return this.level;
  }
}
