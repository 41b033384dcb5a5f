import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { DataSource } from 'typeorm';
import type { Config } from '../config/config';
import type { RateLimit } from '../config/bitrix.config';

const STANDARD: RateLimit = { rate: 2, burst: 50 };
const ENTERPRISE: RateLimit = { rate: 5, burst: 250 };
/** The longest a caller waits for a slot before the request is given up as "Bitrix24 busy". */
const MAX_WAIT_MS = 60_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Bitrix24's own leaky bucket, mirrored in PostgreSQL so that every instance of the service
 * shares one count per portal: each request adds 1, the level drains at `rate` per second, and a
 * request waits while it would push the level past our burst. Our burst keeps a margin below
 * Bitrix24's because its count also includes requests in flight and its clock is not ours.
 */
@Injectable()
export class BitrixRateLimiter {
  private readonly override: RateLimit | null;

  constructor(
    private readonly dataSource: DataSource,
    config: ConfigService<Config, true>,
  ) {
    this.override = config.get('bitrix', { infer: true }).rateLimit;
  }

  limitFor(licenseFamily: string | null): RateLimit {
    return this.override ?? (licenseFamily === 'ent' ? ENTERPRISE : STANDARD);
  }

  /** Waits until the portal's bucket has room for one more request, then takes it. */
  async acquire(memberId: string, limit: RateLimit): Promise<void> {
    const burst = Math.max(1, limit.burst - Math.max(1, Math.ceil(limit.burst * 0.1)));
    const deadline = Date.now() + MAX_WAIT_MS;
    for (;;) {
      const taken: unknown[] = await this.dataSource.query(
        `WITH now AS (SELECT clock_timestamp() AS t)
         INSERT INTO bitrix_rate_buckets AS b (member_id, level, updated_at)
         VALUES ($1, 1, (SELECT t FROM now))
         ON CONFLICT (member_id) DO UPDATE
           SET level = GREATEST(0, b.level - $2 * EXTRACT(EPOCH FROM (SELECT t FROM now) - b.updated_at)) + 1,
               updated_at = (SELECT t FROM now)
           WHERE GREATEST(0, b.level - $2 * EXTRACT(EPOCH FROM (SELECT t FROM now) - b.updated_at)) + 1 <= $3
             AND (b.blocked_until IS NULL OR b.blocked_until <= (SELECT t FROM now))
         RETURNING b.level`,
        [memberId, limit.rate, burst],
      );
      if (taken.length) return;
      const waitMs = await this.waitMs(memberId, limit.rate, burst);
      if (Date.now() + waitMs > deadline) throw new RateLimitWaitExceeded(memberId);
      await sleep(waitMs);
    }
  }

  /** After Bitrix24 said QUERY_LIMIT_EXCEEDED: treat the bucket as full and pause the portal. */
  async penalize(memberId: string, limit: RateLimit, pauseMs: number): Promise<void> {
    await this.dataSource.query(
      `UPDATE bitrix_rate_buckets SET level = $2, updated_at = clock_timestamp(),
         blocked_until = GREATEST(COALESCE(blocked_until, clock_timestamp()), clock_timestamp() + make_interval(secs => $3))
       WHERE member_id = $1`,
      [memberId, limit.burst, pauseMs / 1000],
    );
  }

  private async waitMs(memberId: string, rate: number, burst: number): Promise<number> {
    const [row] = await this.dataSource.query<{ level: number; blocked: number | null }[]>(
      `SELECT GREATEST(0, level - $2 * EXTRACT(EPOCH FROM clock_timestamp() - updated_at)) AS level,
              GREATEST(0, EXTRACT(EPOCH FROM blocked_until - clock_timestamp())) AS blocked
         FROM bitrix_rate_buckets WHERE member_id = $1`,
      [memberId, rate],
    );
    if (!row) return 0;
    const drainSeconds = Math.max(0, (Number(row.level) + 1 - burst) / rate);
    return Math.max(10, Math.ceil(Math.max(drainSeconds, Number(row.blocked ?? 0)) * 1000) + 5);
  }
}

export class RateLimitWaitExceeded extends Error {
  constructor(readonly memberId: string) {
    super(`Bitrix24 portal ${memberId} is rate-limited for longer than ${MAX_WAIT_MS / 1000} s`);
  }
}
