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
 * Bitrix24's per-portal leaky bucket: every HTTP request adds 1, the level drains by `rate` per
 * second, and a request that would lift it above `burst` is refused with 503 QUERY_LIMIT_EXCEEDED.
 * Refused requests do not add to the level, so a client that backs off recovers.
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

  tryTake(): boolean {
    const level = this.drained();
    if (level + 1 > this.limit.burst) return false;
    this.level = level + 1;
    this.maxLevel = Math.max(this.maxLevel, this.level);
    return true;
  }

  /** The current level after draining. */
  drained(): number {
    const now = this.clock.now();
    this.level = Math.max(0, this.level - ((now - this.last) / 1000) * this.limit.rate);
    this.last = now;
    return this.level;
  }
}
