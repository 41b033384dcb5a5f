import { randomBytes } from 'node:crypto';
import type { Clock } from './clock';

/** Who a code or token speaks for: a user of one portal, with the app's scopes. */
export interface Grant {
  memberId: string;
  userId: number;
  scope: readonly string[];
}

export interface IssuedPair {
  grant: Grant;
  accessToken: string;
  refreshToken: string;
  /** Access-token expiry, ms. */
  expiresAt: number;
}

interface Expiring extends Grant {
  expiresAt: number;
}

interface RefreshRecord extends Expiring {
  accessToken: string;
}

export interface TokenLifetimes {
  accessSec: number;
  codeSec: number;
  refreshSec: number;
}

/** Opaque, like the real ones (~70 hex chars; never assume a length). */
const opaque = (): string => randomBytes(35).toString('hex');

/**
 * The authorization server's memory: single-use authorization codes, access tokens, and
 * refresh tokens that rotate. A successful refresh invalidates the refresh token sent and the
 * access token issued with it (the old training docs' rule, which clients must survive).
 */
export class TokenStore {
  private readonly codes = new Map<string, Expiring>();
  private readonly access = new Map<string, Expiring>();
  private readonly refresh = new Map<string, RefreshRecord>();

  constructor(
    private readonly clock: Clock,
    readonly lifetimes: TokenLifetimes,
  ) {}

  issueCode(grant: Grant): string {
    const code = opaque();
    this.codes.set(code, { ...grant, expiresAt: this.clock.now() + this.lifetimes.codeSec * 1000 });
    return code;
  }

  /** Single use: any attempt consumes the code. */
  redeemCode(code: string): Grant | 'invalid' | 'expired' {
    const record = this.codes.get(code);
    if (!record) return 'invalid';
    this.codes.delete(code);
    return record.expiresAt <= this.clock.now() ? 'expired' : grantOf(record);
  }

  issuePair(grant: Grant): IssuedPair {
    const { token: accessToken, expiresAt } = this.issueAccess(grant);
    const refreshToken = opaque();
    this.refresh.set(refreshToken, {
      ...grantOf(grant),
      accessToken,
      expiresAt: this.clock.now() + this.lifetimes.refreshSec * 1000,
    });
    return { grant: grantOf(grant), accessToken, refreshToken, expiresAt };
  }

  /** An access token without a refresh token, as carried by event payloads. */
  issueAccess(grant: Grant): { token: string; expiresAt: number } {
    const token = opaque();
    const expiresAt = this.clock.now() + this.lifetimes.accessSec * 1000;
    this.access.set(token, { ...grantOf(grant), expiresAt });
    return { token, expiresAt };
  }

  rotate(refreshToken: string): IssuedPair | undefined {
    const record = this.refresh.get(refreshToken);
    if (!record) return undefined;
    this.refresh.delete(refreshToken);
    this.access.delete(record.accessToken);
    return record.expiresAt > this.clock.now() ? this.issuePair(record) : undefined;
  }

  checkAccess(token: string): { grant: Grant; expired: boolean } | undefined {
    const record = this.access.get(token);
    return record && { grant: grantOf(record), expired: record.expiresAt <= this.clock.now() };
  }

  expireAccess(memberId: string): void {
    const past = this.clock.now() - 1;
    for (const record of this.access.values()) if (record.memberId === memberId) record.expiresAt = past;
  }

  /** The app was removed from the portal: nothing issued for it works any more. */
  revoke(memberId: string): void {
    for (const map of [this.codes, this.access, this.refresh] as Map<string, Grant>[]) {
      for (const [key, record] of map) if (record.memberId === memberId) map.delete(key);
    }
  }
}

function grantOf(record: Grant): Grant {
  return { memberId: record.memberId, userId: record.userId, scope: record.scope };
}
