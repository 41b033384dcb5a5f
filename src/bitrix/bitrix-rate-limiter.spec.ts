import type { ConfigService } from '@nestjs/config';
import type { WorkerPool } from '../database/worker-pool';
import type { Config } from '../config/config';
import type { RateLimit } from '../config/bitrix.config';
import { BitrixRateLimiter } from './bitrix-rate-limiter';

const limiter = (rateLimit: RateLimit | null) =>
  new BitrixRateLimiter({} as WorkerPool, { get: () => ({ rateLimit }) } as unknown as ConfigService<Config, true>);

describe('BitrixRateLimiter.limitFor', () => {
  it('uses the plan: 2/50, Enterprise 5/250', () => {
    expect(limiter(null).limitFor(null)).toEqual({ rate: 2, burst: 50 });
    expect(limiter(null).limitFor('project')).toEqual({ rate: 2, burst: 50 });
    expect(limiter(null).limitFor('ent')).toEqual({ rate: 5, burst: 250 });
  });

  it('lets BITRIX_RATE_LIMIT override the plan', () => {
    expect(limiter({ rate: 1, burst: 10 }).limitFor('ent')).toEqual({ rate: 1, burst: 10 });
  });
});

describe('BitrixRateLimiter.caps', () => {
  it('keeps a margin below the portal burst and a reserve for the priority lane', () => {
    expect(BitrixRateLimiter.caps({ rate: 2, burst: 50 })).toEqual({ priority: 48, background: 46 });
    expect(BitrixRateLimiter.caps({ rate: 5, burst: 250 })).toEqual({ priority: 248, background: 245 });
    // A fast bucket needs a wider margin: more requests drain while one is in flight.
    expect(BitrixRateLimiter.caps({ rate: 20, burst: 10 })).toEqual({ priority: 4, background: 1 });
  });
});

describe('BitrixRateLimiter.waitsFor', () => {
  const limit = { rate: 2, burst: 50 };

  it('finds room in every lane in a bucket never used', () => {
    expect(BitrixRateLimiter.waitsFor(null, limit)).toEqual({ priority: 0, background: 0 });
  });

  it('drains the level at the rate since it was written, the background lane waiting longer', () => {
    // Level 50 written 1 s ago: 48 now; the priority lane (cap 48) waits 0.5 s for its next slot, the background lane (cap 46) 1.5 s.
    expect(BitrixRateLimiter.waitsFor({ level: 50, age: 1, blocked: null }, limit)).toEqual({ priority: 500, background: 1500 });
    expect(BitrixRateLimiter.waitsFor({ level: 50, age: 10, blocked: null }, limit)).toEqual({ priority: 0, background: 0 });
  });

  it('holds every lane while the portal is blocked after QUERY_LIMIT_EXCEEDED, and not after', () => {
    expect(BitrixRateLimiter.waitsFor({ level: 0, age: 0, blocked: 3 }, limit)).toEqual({ priority: 3000, background: 3000 });
    expect(BitrixRateLimiter.waitsFor({ level: 0, age: 0, blocked: -2 }, limit)).toEqual({ priority: 0, background: 0 });
  });
});
