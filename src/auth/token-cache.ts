import { Injectable } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { sha256Hex } from '../common/secret-box';
import { ChangeListener, type ChangeFeed } from '../database/change-listener';
import { AccountsService } from './accounts.service';
import type { Principal } from './principal';

/** A backstop only: changes are announced, so an entry normally lives until one. It also bounds how stale `last_used_at` gets. */
const TTL_MS = 60_000;
const MAX_TOKENS = 10_000;

interface Entry {
  principal: Principal;
  /** The token's own expiry, checked on every use (ms; Infinity when it never expires). */
  expiresAt: number;
}

/**
 * The principals of recently used bearer tokens, so that an authenticated request costs no
 * database round trip. Kept true by the `auth_changed` announcements of migration
 * AuthChanges1765200000000 (a token revoked or changed, a user deleted or given another role or
 * company) through ChangeListener, and served only while it listens. Keyed by the token's hash:
 * no plaintext is kept. Only tokens that authenticated are cached, so bad tokens cannot crowd it.
 */
@Injectable()
export class TokenCache implements ChangeFeed {
  readonly channel = 'auth_changed';
  private readonly entries = new LRUCache<string, Entry>({ max: MAX_TOKENS, ttl: TTL_MS });
  private live = false;
  /** Bumped by every change: a read that started before one does not store what it read. */
  private generation = 0;

  constructor(
    private readonly accounts: AccountsService,
    listener: ChangeListener,
  ) {
    listener.register(this);
  }

  async principal(token: string): Promise<Principal | null> {
    const key = sha256Hex(token);
    const hit = this.live ? this.entries.get(key) : undefined;
    if (hit && hit.expiresAt > Date.now()) return hit.principal;
    const generation = this.generation;
    const found = await this.accounts.authenticate(token);
    if (found && this.live && generation === this.generation) {
      this.entries.set(key, { principal: found.principal, expiresAt: found.expiresAt?.getTime() ?? Infinity });
    }
    return found?.principal ?? null;
  }

  /** `t:<token id>`, `u:<user id>`, or `*`. */
  changed(payload: string): void {
    this.generation++;
    const [kind, id] = payload.split(':');
    const matches = kind === 't' ? (p: Principal) => p.tokenId === Number(id) : kind === 'u' ? (p: Principal) => p.userId === Number(id) : null;
    if (!matches) {
      this.entries.clear();
      return;
    }
    const stale = [...this.entries.entries()].filter(([, entry]) => matches(entry.principal)).map(([key]) => key);
    for (const key of stale) this.entries.delete(key);
  }

  resume(): void {
    this.generation++;
    this.entries.clear();
    this.live = true;
  }

  suspend(): void {
    this.generation++;
    this.live = false;
    this.entries.clear();
  }
}
