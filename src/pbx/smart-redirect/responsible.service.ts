import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { LRUCache } from 'lru-cache';
import { Counter } from 'prom-client';
import { BitrixApiService } from '../../bitrix/bitrix-api.service';
import { CompanyViewService } from '../../bitrix/company-view.service';
import { IntegrationService } from '../../bitrix/oauth/integration.service';
import type { Config } from '../../config/config';
import { MetricsService } from '../../metrics/metrics.service';
import { normalizePhone, type PhoneNumber } from '../phone-number';
import { ownerLookupCommands, ownersFrom, type CrmEntityType, type CrmOwner } from './crm-owners';

/** SPEC §8's answer: the operator to route to, or `sip_phone: null` when nobody is responsible. */
export interface Responsible {
  sip_phone: string | null;
  bitrix_user_id: number | null;
  crm_entity_type: CrmEntityType | null;
  crm_entity_id: number | null;
}

export const NOBODY: Responsible = Object.freeze({ sip_phone: null, bitrix_user_id: null, crm_entity_type: null, crm_entity_id: null });

/** What the CRM said about a number: its records' owners (possibly none), or that it could not be asked. */
type CrmAnswer = { owners: CrmOwner[] } | { failed: true };

interface LookupContext {
  companyId: number;
  memberId: string;
  phone: PhoneNumber;
}

/** Owners are cached for a few minutes; "no record" shorter (a lead may be created any moment); a failure briefly, to spare a struggling portal. */
const FOUND_TTL_MS = 5 * 60_000;
const NOT_FOUND_TTL_MS = 60_000;
const FAILED_TTL_MS = 15_000;
/** Numbers cached across all companies (an entry is a few hundred bytes). */
const CACHE_ENTRIES = 20_000;

/** The answer is given this much before SMART_REDIRECT_TIMEOUT_MS runs out. */
const DEADLINE_MARGIN_MS = 25;

type Outcome = 'cached' | 'looked_up' | 'timeout' | 'failed' | 'not_connected' | 'not_a_number';

/**
 * The responsible-operator lookup behind Smart Redirect (SPEC §8): the CRM record for a caller's
 * number, its responsible, and that employee's bound extension. The PBX waits only so long, so
 * the answer is given by `SMART_REDIRECT_TIMEOUT_MS` whatever Bitrix24 does: past it, "nobody"
 * at once while the lookup finishes into the cache for the next call. One lookup runs per
 * company, portal and number at a time. The company's connection and bindings come from
 * CompanyViewService, which sees every committed change, so a cached answer needs no database
 * round trip and still uses the bindings saved a moment ago. Never throws.
 */
@Injectable()
export class ResponsibleService {
  private readonly logger = new Logger(ResponsibleService.name);
  private readonly timeoutMs: number;
  private readonly country: string;
  private readonly lookups: Counter<'outcome'>;
  /** Keyed `company:member_id:E.164`; `fetch` shares an in-flight lookup between callers (single flight). */
  private readonly cache = new LRUCache<string, CrmAnswer, LookupContext>({
    max: CACHE_ENTRIES,
    ttl: FOUND_TTL_MS,
    // A lookup that outlives its callers still lands in the cache, even if its entry was evicted meanwhile.
    ignoreFetchAbort: true,
    fetchMethod: (_key, _stale, { context, options }) => this.askCrm(context, options),
  });

  constructor(
    private readonly api: BitrixApiService,
    private readonly integrations: IntegrationService,
    private readonly view: CompanyViewService,
    config: ConfigService<Config, true>,
    metrics: MetricsService,
  ) {
    this.timeoutMs = config.get('pbx', { infer: true }).smartRedirectTimeoutMs;
    this.country = config.get('app', { infer: true }).defaultCountry;
    this.lookups = new Counter({
      name: 'smart_redirect_lookups_total',
      help: 'Responsible-operator lookups by outcome (cached, looked_up, timeout, failed, not_connected, not_a_number)',
      labelNames: ['outcome'],
      registers: [metrics.registry],
    });
  }

  /**
   * The operator responsible for `rawPhone` in `companyId`'s CRM, answered within the deadline
   * counted from `startedAt` (when the caller's request arrived, if it did work before asking).
   */
  async lookup(companyId: number, rawPhone: string, startedAt = Date.now()): Promise<Responsible> {
    const portal: { memberId?: string } = {};
    // A little before the deadline, so that writing the answer on a busy machine does not make it late.
    const found = await this.withinDeadline(this.find(companyId, rawPhone, portal), startedAt + this.timeoutMs - DEADLINE_MARGIN_MS);
    this.lookups.inc({ outcome: found?.outcome ?? 'timeout' });
    if (found) return found.responsible;
    this.logger.warn({ companyId, memberId: portal.memberId, timeoutMs: this.timeoutMs }, 'Responsible lookup passed its deadline; answering nobody, the lookup finishes into the cache');
    return NOBODY;
  }

  /** The whole lookup, database included (all of it counts against the deadline); never throws. */
  private async find(companyId: number, rawPhone: string, portal: { memberId?: string }): Promise<{ responsible: Responsible; outcome: Outcome }> {
    try {
      const phone = normalizePhone(rawPhone, this.country);
      if (!phone) return { responsible: NOBODY, outcome: 'not_a_number' };
      const { integration, extensions } = await this.view.company(companyId);
      if (integration?.status !== 'connected') return { responsible: NOBODY, outcome: 'not_connected' };
      const memberId = (portal.memberId = integration.memberId);
      const key = `${companyId}:${memberId}:${phone.e164}`;
      const cached = this.cache.get(key);
      const answer = cached ?? (await this.cache.fetch(key, { context: { companyId, memberId, phone } }));
      if (!answer) return { responsible: NOBODY, outcome: 'not_connected' };
      if ('failed' in answer) return { responsible: NOBODY, outcome: 'failed' };
      return { responsible: operatorFor(answer.owners, extensions), outcome: cached ? 'cached' : 'looked_up' };
    } catch (err) {
      this.logger.warn({ companyId, memberId: portal.memberId, err: (err as Error).message }, 'Responsible lookup failed; answering nobody');
      return { responsible: NOBODY, outcome: 'failed' };
    }
  }

  /** The lookup's answer, or undefined when the deadline comes first (the lookup goes on). */
  private async withinDeadline<T>(work: Promise<T>, deadline: number): Promise<T | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), Math.max(0, deadline - Date.now()));
    });
    try {
      return await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The cache's fetch method: asks Bitrix24 once and sets the entry's lifetime by what it learnt.
   * The integration (tokens, domain) is read here, only when Bitrix24 is asked; undefined (nothing
   * cached) when the portal was disconnected or switched since the view was read.
   */
  private async askCrm({ companyId, memberId, phone }: LookupContext, options: { ttl?: number }): Promise<CrmAnswer | undefined> {
    try {
      const integration = await this.integrations.find(companyId);
      if (integration?.status !== 'connected' || integration.memberId !== memberId) return undefined;
      const owners = ownersFrom(await this.api.batch(integration, ownerLookupCommands(phone)));
      options.ttl = owners.length ? FOUND_TTL_MS : NOT_FOUND_TTL_MS;
      return { owners };
    } catch (err) {
      options.ttl = FAILED_TTL_MS;
      this.logger.warn({ companyId, memberId, err: (err as Error).message }, 'Bitrix24 CRM lookup by phone failed');
      return { failed: true };
    }
  }
}

/**
 * The record whose owner can take the call: a bound owner at work first, then any bound owner,
 * then (for `bitrix_user_id` only) an owner at work. An owner without a binding has no extension
 * to route to: `sip_phone` stays null and the PBX routes as usual (SPEC §8 maps through the
 * bindings only; `default_bitrix_user_id` is for call registration and callbacks, not routing).
 */
function operatorFor(owners: CrmOwner[], extensions: ReadonlyMap<number, string>): Responsible {
  if (!owners.length) return NOBODY;
  const rank = (o: CrmOwner) => (extensions.has(o.bitrixUserId) ? 2 : 0) + (o.working ? 1 : 0);
  const best = owners.reduce((a, b) => (rank(b) > rank(a) ? b : a));
  return {
    sip_phone: extensions.get(best.bitrixUserId) ?? null,
    bitrix_user_id: best.bitrixUserId,
    crm_entity_type: best.entityType,
    crm_entity_id: best.entityId,
  };
}
