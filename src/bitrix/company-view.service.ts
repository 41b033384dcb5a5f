import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { ChangeListener, type ChangeFeed } from '../database/change-listener';
import type { IntegrationStatus } from './bitrix-integration.entity';

/** What the responsible lookup and the Smart Redirect URL need to know about a company. */
export interface CompanyFacts {
  companyId: number;
  /** `bitrix_settings.smart_redirect`; false while the company has no settings row. */
  smartRedirect: boolean;
  /** SHA-256 of the Smart Redirect key; null while the company has no settings row. */
  smartRedirectKeyHash: string | null;
  /** The Bitrix24 connection, null when the company never connected. */
  integration: { status: IntegrationStatus; memberId: string } | null;
  /** Bound extension (`sip_phone`) by Bitrix24 user id. */
  extensions: ReadonlyMap<number, string>;
}

/** A backstop only: changes are announced (ChangeListener), so an entry normally lives until one. */
const TTL_MS = 60_000;

interface FactsRow {
  smart_redirect: boolean | null;
  smart_redirect_key_hash: string | null;
  status: IntegrationStatus | null;
  member_id: string | null;
  bindings: [number, string][];
}

/**
 * An in-process view of each company's Smart Redirect facts, so a cached lookup costs no database
 * round trip. Writers in this process call `invalidate` right after their transaction commits (the
 * next request sees the change at once); other instances' writes arrive through PostgreSQL
 * LISTEN/NOTIFY (ChangeListener, triggers of migration CompanyChanges1764710000000: a company id, or
 * `*` for all, on `bitrix_company_changed`). Entries are served only while that listener is
 * connected (`resume`/`suspend`): without it a change could go unnoticed, so every read goes to the
 * database. The facts hold no secrets: a lookup that must call Bitrix24 reads the integration itself.
 */
@Injectable()
export class CompanyViewService implements ChangeFeed {
  readonly channel = 'bitrix_company_changed';
  private readonly entries = new Map<number, { facts: CompanyFacts; expiresAt: number }>();
  /** Smart Redirect key hash → company, for the entries above. */
  private readonly byKeyHash = new Map<string, number>();
  /** Reads in flight per company; an invalidation drops its read, so what it read is not stored. */
  private readonly loading = new Map<number, Promise<CompanyFacts>>();
  private live = false;

  constructor(
    private readonly dataSource: DataSource,
    listener: ChangeListener,
  ) {
    listener.register(this);
  }

  company(companyId: number): Promise<CompanyFacts> {
    return Promise.resolve(this.cached(companyId) ?? this.load(companyId));
  }

  /** The company whose Smart Redirect key has this hash, or null. */
  async byKey(keyHash: string): Promise<CompanyFacts | null> {
    const companyId = this.byKeyHash.get(keyHash);
    const cached = companyId === undefined ? undefined : this.cached(companyId);
    if (cached?.smartRedirectKeyHash === keyHash) return cached;
    const rows: { company_id: number }[] = await this.dataSource.query('SELECT company_id FROM bitrix_settings WHERE smart_redirect_key_hash = $1', [keyHash]);
    if (!rows.length) return null;
    const facts = await this.load(rows[0].company_id);
    // The key may have been re-issued between the two reads.
    return facts.smartRedirectKeyHash === keyHash ? facts : null;
  }

  /** A change to the company's settings, bindings or integration has committed (written here, or announced). */
  invalidate(companyId: number): void {
    const entry = this.entries.get(companyId);
    if (entry?.facts.smartRedirectKeyHash) this.byKeyHash.delete(entry.facts.smartRedirectKeyHash);
    this.entries.delete(companyId);
    this.loading.delete(companyId);
  }

  changed(payload: string): void {
    const companyId = Number(payload);
    if (Number.isSafeInteger(companyId) && companyId > 0) this.invalidate(companyId);
    else this.invalidateAll();
  }

  invalidateAll(): void {
    this.entries.clear();
    this.byKeyHash.clear();
    this.loading.clear();
  }

  /** Changes are being announced from now on: serve entries (starting empty, as some may have been missed). */
  resume(): void {
    this.invalidateAll();
    this.live = true;
  }

  /** Changes may go unannounced: read the database every time until `resume`. */
  suspend(): void {
    this.live = false;
    this.invalidateAll();
  }

  private cached(companyId: number): CompanyFacts | undefined {
    const entry = this.live ? this.entries.get(companyId) : undefined;
    return entry && entry.expiresAt > Date.now() ? entry.facts : undefined;
  }

  /** One read per company at a time; stored only if nothing invalidated the company meanwhile. */
  private load(companyId: number): Promise<CompanyFacts> {
    if (!this.live) return this.read(companyId);
    const pending = this.loading.get(companyId);
    if (pending) return pending;
    const load: Promise<CompanyFacts> = this.read(companyId)
      .then((facts) => {
        if (this.loading.get(companyId) === load) this.store(facts);
        return facts;
      })
      .finally(() => {
        if (this.loading.get(companyId) === load) this.loading.delete(companyId);
      });
    this.loading.set(companyId, load);
    return load;
  }

  private store(facts: CompanyFacts): void {
    const previous = this.entries.get(facts.companyId)?.facts.smartRedirectKeyHash;
    if (previous) this.byKeyHash.delete(previous);
    this.entries.set(facts.companyId, { facts, expiresAt: Date.now() + TTL_MS });
    if (facts.smartRedirectKeyHash) this.byKeyHash.set(facts.smartRedirectKeyHash, facts.companyId);
  }

  /** All of a company's facts in one statement: one round trip, one consistent snapshot. */
  private async read(companyId: number): Promise<CompanyFacts> {
    const rows: FactsRow[] = await this.dataSource.query(
      `SELECT s.smart_redirect, s.smart_redirect_key_hash, i.status, i.member_id,
              COALESCE((SELECT json_agg(json_build_array(b.bitrix_user_id, b.sip_phone) ORDER BY b.sip_phone)
                        FROM bitrix_bindings b WHERE b.company_id = $1), '[]'::json) AS bindings
       FROM (SELECT $1::int AS company_id) c
       LEFT JOIN bitrix_settings s ON s.company_id = c.company_id
       LEFT JOIN bitrix_integrations i ON i.company_id = c.company_id`,
      [companyId],
    );
    const row = rows[0];
    return {
      companyId,
      smartRedirect: row.smart_redirect ?? false,
      smartRedirectKeyHash: row.smart_redirect_key_hash,
      integration: row.status && row.member_id !== null ? { status: row.status, memberId: row.member_id } : null,
      extensions: new Map(row.bindings),
    };
  }
}
