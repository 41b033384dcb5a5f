import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectRepository } from '@nestjs/typeorm';
import { DataSource, Not, QueryFailedError, Repository } from 'typeorm';
import type { Principal } from '../../auth/principal';
import { AppError } from '../../common/app-error';
import { randomSecret, SecretBox, SecretUnreadable, sha256Hex } from '../../common/secret-box';
import type { Config } from '../../config/config';
import { pgPool, prepared, run, type Prepared } from '../../database/prepared';
import type { BitrixConfig } from '../../config/bitrix.config';
import { BitrixApiError, invalidClientError } from '../bitrix-api.error';
import { BitrixApiService } from '../bitrix-api.service';
import type { BitrixProfile, TokenResponse } from '../bitrix-api.types';
import { BitrixIntegration } from '../bitrix-integration.entity';
import { CompanyViewService } from '../company-view.service';
import { BOUND_EVENTS, handlerUrl, isOurHandler, type BoundEvent } from '../event-handlers';
import { normalizePortalDomain } from '../portal-domain';
import type { ConnectDto, IntegrationInfoDto } from './dto/oauth.dto';
import { OAuthState } from './oauth-state.entity';

const STATE_TTL_MS = 10 * 60_000;
/** First key of the advisory lock taken while a company's integration row is written. */
const ADVISORY_CONNECT = 4_242_001;
/** The regional Bitrix24 OAuth servers a redirect's `server_domain` may name. */
const OAUTH_SERVERS = ['oauth.bitrix.info', 'oauth.bitrix24.tech'];
const PORTAL_TAKEN = 'This Bitrix24 portal is already connected to another company.';
const SECRETS_UNREADABLE =
  'The stored Bitrix24 credentials cannot be decrypted with APP_KEY (the key was changed): restore the old key, or set it as APP_KEY_PREVIOUS, or reconnect the portal.';
/** The SecretBox columns of a connection. */
const SECRET_COLUMNS = ['accessToken', 'refreshToken', 'applicationToken', 'handlerKey'] as const;
type SecretColumn = (typeof SECRET_COLUMNS)[number];

interface EventBinding {
  event: string;
  handler: string;
}

/** Connecting a company to its Bitrix24 portal (OAuth), its status, and disconnecting. */
@Injectable()
export class IntegrationService {
  private readonly logger = new Logger(IntegrationService.name);
  private readonly bitrix: BitrixConfig;
  private readonly publicUrl: string;
  /** Built from the entity's columns on first use (the metadata exists once the data source is up). */
  private byCompany: Prepared | null = null;

  constructor(
    @InjectRepository(BitrixIntegration) private readonly integrations: Repository<BitrixIntegration>,
    @InjectRepository(OAuthState) private readonly states: Repository<OAuthState>,
    private readonly api: BitrixApiService,
    private readonly secrets: SecretBox,
    private readonly dataSource: DataSource,
    private readonly view: CompanyViewService,
    config: ConfigService<Config, true>,
  ) {
    this.bitrix = config.get('bitrix', { infer: true });
    this.publicUrl = config.get('app', { infer: true }).publicUrl;
  }

  async info(companyId: number): Promise<IntegrationInfoDto> {
    return toInfo(await this.find(companyId));
  }

  /**
   * The company's integration with its secrets checked: sealed by APP_KEY_PREVIOUS → re-sealed;
   * unreadable with any key → reauth_required naming APP_KEY (SPEC §9).
   */
  async find(companyId: number): Promise<BitrixIntegration | null> {
    this.byCompany ??= prepared('integration_by_company', `SELECT ${this.columns('i')} FROM bitrix_integrations i WHERE company_id = $1`);
    const [row] = await run<BitrixIntegration>(pgPool(this.dataSource), this.byCompany, [companyId]);
    return this.fromRow(row);
  }

  /**
   * The integration's columns as the entity names them (`alias`: the table's alias), for a statement
   * that reads the row with other things; `fromRow` makes the entity of them. The call-sync worker
   * reads it so every round.
   */
  columns(alias: string): string {
    return this.integrations.metadata.columns.map((c) => `${alias}.${c.databaseName} AS "${c.propertyName}"`).join(', ');
  }

  /** The integration of a row read with `columns` (its secrets checked as `find` does); null when the company has none. */
  async fromRow(row: Partial<BitrixIntegration> | undefined): Promise<BitrixIntegration | null> {
    if (!row || row.companyId === null || row.companyId === undefined) return null;
    const integration = this.integrations.create(row);
    await this.openSecrets(integration);
    return integration;
  }

  /** The company's integration, or a 409 telling the SPA to connect (or reconnect) first. */
  async requireConnected(companyId: number): Promise<BitrixIntegration> {
    const integration = await this.find(companyId);
    if (integration?.status === 'reauth_required') throw new AppError('INTEGRATION_REAUTH_REQUIRED', 'Bitrix24 needs to be re-authorised: connect the portal again.');
    if (integration?.status !== 'connected') throw new AppError('INTEGRATION_NOT_CONNECTED', 'Bitrix24 is not connected.');
    return integration;
  }

  /** Step 1: the portal's authorisation URL with a fresh single-use state bound to this company. */
  async authUrl(companyId: number, domain: string): Promise<{ auth_url: string }> {
    const credentials = this.requireCredentials();
    const origin = normalizePortalDomain(domain, this.bitrix.allowedDomains);
    const state = randomSecret(24);
    await this.dataSource.query(`DELETE FROM bitrix_oauth_states WHERE company_id = $1 AND (used_at IS NOT NULL OR expires_at < now())`, [companyId]);
    await this.states.save(this.states.create({ companyId, stateHash: sha256Hex(state), domain: origin, expiresAt: new Date(Date.now() + STATE_TTL_MS), usedAt: null }));
    const query = new URLSearchParams({ client_id: credentials.clientId, state });
    return { auth_url: `${origin}/oauth/authorize/?${query.toString()}` };
  }

  /** Step 2: exchange the code at once, check it belongs to the requested portal, store, bind events. */
  async connect(principal: Principal, dto: ConnectDto): Promise<IntegrationInfoDto> {
    this.requireCredentials();
    const origin = normalizePortalDomain(dto.domain, this.bitrix.allowedDomains);
    const oauthServer = this.oauthServerFor(dto.server_domain);
    if (dto.state !== undefined) await this.consumeState(principal.companyId, dto.state, origin);

    const tokens = await this.exchange(oauthServer, dto.code);
    if (!sameOrigin(tokens.client_endpoint, origin)) throw AppError.validation('domain', 'The authorization code was issued by another Bitrix24 portal.');

    // Every refusal comes before anything about the company's current connection changes.
    await this.refuseOtherCompanysPortal(principal.companyId, tokens.member_id);
    const ownerId = await this.requireAdminApproval(origin, tokens);
    const { integration, previous } = await this.store(principal.companyId, origin, oauthServer, tokens, ownerId);
    this.view.invalidate(principal.companyId);
    // Before afterConnect binds the new portal's events (see leavePortal).
    if (previous) await this.leavePortal(previous);
    await this.afterConnect(integration);
    return toInfo(integration);
  }

  /**
   * Unbinds our events (best effort) and deletes every token. The write takes connect's lock and
   * sets only the columns it changes, so a connect or token refresh that committed while the events
   * were being unbound is not overwritten with what was read before.
   */
  async disconnect(companyId: number): Promise<IntegrationInfoDto> {
    const integration = await this.integrations.findOneBy({ companyId });
    if (!integration || integration.status === 'disconnected') throw new AppError('INTEGRATION_NOT_CONNECTED', 'Bitrix24 is not connected.');
    if (integration.status === 'connected') {
      try {
        await this.unbindEvents(integration);
      } catch (err) {
        this.logger.warn({ memberId: integration.memberId, err: (err as Error).message }, 'Could not unbind Bitrix24 events while disconnecting');
      }
    }
    await this.dataSource.transaction(async (em) => {
      await em.query('SELECT pg_advisory_xact_lock($1, $2)', [ADVISORY_CONNECT, companyId]);
      await em.update(
        BitrixIntegration,
        { companyId },
        { status: 'disconnected', accessToken: null, refreshToken: null, accessExpiresAt: null, applicationToken: null, connectedAt: null, lastError: null },
      );
    });
    this.view.invalidate(companyId);
    return toInfo(null);
  }

  /**
   * Checks a connection's secrets before they are used (SPEC §9). Sealed by the previous key → re-sealed
   * with APP_KEY, so a rotation needs no reconnect. Unreadable (APP_KEY was changed) → a logged error
   * and `reauth_required` with a `last_error` saying so, instead of a 500 on every request.
   */
  private async openSecrets(integration: BitrixIntegration): Promise<void> {
    if (integration.status !== 'connected') return;
    const resealed: Partial<Record<SecretColumn, string>> = {};
    try {
      for (const column of SECRET_COLUMNS) {
        const sealed = integration[column];
        if (sealed !== null && !this.secrets.isCurrent(sealed)) resealed[column] = this.secrets.encrypt(this.secrets.decrypt(sealed));
      }
    } catch (err) {
      if (!(err instanceof SecretUnreadable)) throw err;
      await this.secretsUnreadable(integration);
      return;
    }
    for (const [column, value] of Object.entries(resealed) as [SecretColumn, string][]) {
      // Only over the ciphertext read: a refresh that committed meanwhile sealed its own with APP_KEY.
      const { affected } = await this.integrations.update({ id: integration.id, [column]: integration[column] }, { [column]: value });
      if (affected) integration[column] = value;
    }
  }

  private async secretsUnreadable(integration: BitrixIntegration): Promise<void> {
    const { affected } = await this.integrations.update({ id: integration.id, status: 'connected' }, { status: 'reauth_required', lastError: SECRETS_UNREADABLE });
    if (affected) {
      this.view.invalidate(integration.companyId);
      this.logger.error({ companyId: integration.companyId, memberId: integration.memberId }, SECRETS_UNREADABLE);
    }
    Object.assign(integration, { status: 'reauth_required', lastError: SECRETS_UNREADABLE });
  }

  private requireCredentials(): { clientId: string; clientSecret: string } {
    if (!this.bitrix.credentials) {
      throw new AppError('BITRIX_NOT_CONFIGURED', 'The Bitrix24 application is not configured on this server (BITRIX_CLIENT_ID, BITRIX_CLIENT_SECRET).');
    }
    return this.bitrix.credentials;
  }

  /** Only the regional Bitrix24 OAuth servers (or the configured one) are ever contacted. */
  private oauthServerFor(serverDomain: string | undefined): string {
    if (serverDomain === undefined) return this.bitrix.oauthUrl;
    const host = serverDomain.trim().toLowerCase();
    if (OAUTH_SERVERS.includes(host)) return `https://${host}`;
    if (host === new URL(this.bitrix.oauthUrl).host) return this.bitrix.oauthUrl;
    throw AppError.validation('server_domain', 'server_domain must be oauth.bitrix.info or oauth.bitrix24.tech.');
  }

  private async consumeState(companyId: number, state: string, origin: string): Promise<void> {
    const result = await this.states
      .createQueryBuilder()
      .update()
      .set({ usedAt: () => 'now()' })
      .where('state_hash = :hash AND company_id = :companyId AND used_at IS NULL AND expires_at > now()', { hash: sha256Hex(state), companyId })
      .returning(['domain'])
      .execute();
    const issued = result.raw as { domain: string }[];
    if (!issued.length) throw AppError.validation('state', 'The state is unknown, expired or already used: start the connection again.');
    if (issued[0].domain !== origin) throw AppError.validation('state', 'The state was issued for another portal.');
  }

  private async exchange(oauthServer: string, code: string): Promise<TokenResponse> {
    try {
      return await this.api.exchangeCode(oauthServer, code);
    } catch (err) {
      if (err instanceof BitrixApiError && ['invalid_grant', 'expired_token', 'invalid_request', 'invalid_code'].includes(err.bitrixError ?? '')) {
        throw AppError.validation('code', 'The authorization code is invalid or has expired: authorise again.');
      }
      // Our credentials are wrong, not the code: the same 503 a refresh answers.
      if (err instanceof BitrixApiError && err.bitrixError === 'invalid_client') throw invalidClientError();
      throw err;
    }
  }

  /** A portal another company has connected is refused up front (the unique key backs this up in store). */
  private async refuseOtherCompanysPortal(companyId: number, memberId: string): Promise<void> {
    // As the unique index: a disconnected row no longer holds its portal.
    const owned = await this.integrations.existsBy({ memberId, companyId: Not(companyId), status: Not('disconnected') });
    if (owned) throw AppError.validation('domain', PORTAL_TAKEN);
  }

  /**
   * Events bound by a portal user who is not an admin reach only that user, so only an admin may
   * approve the connection. Returns the approver's Bitrix24 id (the integration's owner).
   */
  private async requireAdminApproval(origin: string, tokens: TokenResponse): Promise<number | null> {
    const profile = await this.api.callWithToken<BitrixProfile>(origin, tokens.member_id, tokens.access_token, 'profile');
    if (profile.ADMIN !== true) {
      throw AppError.validation('code', 'The Bitrix24 user who approved the connection is not an administrator of the portal: a portal administrator must approve it.');
    }
    const id = Number(profile.ID ?? tokens.user_id);
    return Number.isSafeInteger(id) && id > 0 ? id : null;
  }

  /**
   * After a switch to another portal, unbinds the old portal's events (best effort) with its last
   * access token. `previous` is a detached copy (id 0 names no row): whatever the client would write
   * back while unbinding (a refresh, a rename, an error) must not land on the new connection's row,
   * and an expired token simply ends the attempt, since the old refresh token is gone.
   */
  private async leavePortal(previous: BitrixIntegration): Promise<void> {
    try {
      await this.unbindEvents(Object.assign(new BitrixIntegration(), previous, { id: 0 }));
    } catch (err) {
      this.logger.warn({ memberId: previous.memberId, err: (err as Error).message }, 'Could not unbind the previous portal\'s events');
    }
  }

  /**
   * Upserts the company's integration under a per-company lock (two admins connecting at once get
   * one row). The handler key survives a reconnect of the same portal; the application_token does
   * not survive a reconnect after a disconnect or re-authorisation, since a reinstall issues a new one.
   */
  private async store(
    companyId: number,
    origin: string,
    oauthServer: string,
    tokens: TokenResponse,
    ownerId: number | null,
  ): Promise<{ integration: BitrixIntegration; previous: BitrixIntegration | null }> {
    try {
      return await this.dataSource.transaction(async (em) => {
        await em.query('SELECT pg_advisory_xact_lock($1, $2)', [ADVISORY_CONNECT, companyId]);
        const repo = em.getRepository(BitrixIntegration);
        const existing = await repo.findOneBy({ companyId });
        // The connection being replaced, copied before connectedRow overwrites it, for leavePortal.
        const previous = existing?.status === 'connected' && existing.memberId !== tokens.member_id ? Object.assign(new BitrixIntegration(), existing) : null;
        const integration = await repo.save(this.connectedRow(existing ?? repo.create({ companyId }), existing, origin, oauthServer, tokens, ownerId));
        return { integration, previous };
      });
    } catch (err) {
      if (err instanceof QueryFailedError && (err.driverError as { constraint?: string }).constraint === 'uq_bitrix_integrations_member') {
        throw AppError.validation('domain', PORTAL_TAKEN);
      }
      throw err;
    }
  }

  private connectedRow(
    row: BitrixIntegration,
    existing: BitrixIntegration | null,
    origin: string,
    oauthServer: string,
    tokens: TokenResponse,
    ownerId: number | null,
  ): BitrixIntegration {
    const samePortal = existing?.memberId === tokens.member_id;
    // A reconnect after APP_KEY changed cannot keep a handler key it can no longer read.
    const key = samePortal && this.secrets.isReadable(existing.handlerKey) ? null : randomSecret(24);
    return Object.assign(row, {
      memberId: tokens.member_id,
      domain: origin,
      status: 'connected' as const,
      oauthServer,
      ...this.api.sealTokens(tokens),
      ownerBitrixUserId: ownerId,
      connectedAt: new Date(),
      lastError: null,
      ...(key ? { handlerKey: this.secrets.encrypt(key), handlerKeyHash: sha256Hex(key), licenseFamily: null } : {}),
      ...(!samePortal || existing?.status !== 'connected' ? { applicationToken: null } : {}),
    });
  }

  /** Licence (for the rate limit) and event bindings; failures are recorded in last_error, not fatal. */
  private async afterConnect(integration: BitrixIntegration): Promise<void> {
    const problems: string[] = [];
    try {
      const { result } = await this.api.call<{ LICENSE_FAMILY?: string }>(integration, 'app.info');
      integration.licenseFamily = result.LICENSE_FAMILY ?? null;
    } catch (err) {
      problems.push(`Could not read the portal licence: ${describe(err)}`);
    }
    try {
      problems.push(...(await this.bindEvents(integration)));
    } catch (err) {
      problems.push(`Could not bind Bitrix24 events: ${describe(err)}`);
    }
    integration.lastError = problems.length ? problems.join(' ') : null;
    await this.integrations.update({ id: integration.id }, { licenseFamily: integration.licenseFamily, lastError: integration.lastError });
  }

  /** Binds each event to our handler; removes bindings of ours that carry an old key. Returns problems. */
  private async bindEvents(integration: BitrixIntegration): Promise<string[]> {
    const key = this.secrets.decrypt(integration.handlerKey);
    const { result: bound } = await this.api.call<EventBinding[]>(integration, 'event.get');
    const wanted = (Object.keys(BOUND_EVENTS) as BoundEvent[]).map((event) => ({ event, handler: handlerUrl(this.publicUrl, event, key) }));
    const commands: Record<string, [string, object]> = {};
    for (const b of bound) {
      const stale = isOurHandler(this.publicUrl, b.handler) && !wanted.some((w) => w.event === b.event.toUpperCase() && w.handler === b.handler);
      if (stale) commands[`unbind_${Object.keys(commands).length}`] = ['event.unbind', { event: b.event, handler: b.handler }];
    }
    for (const w of wanted) {
      if (!bound.some((b) => b.event.toUpperCase() === w.event && b.handler === w.handler)) commands[`bind_${w.event}`] = ['event.bind', w];
    }
    if (!Object.keys(commands).length) return [];
    const { errors } = await this.api.batch(integration, commands);
    return Object.entries(errors).map(([cmd, e]) => `Could not ${cmd.replace('_', ' ')} (${e.error || 'error'}: ${e.error_description ?? ''}).`);
  }

  private async unbindEvents(integration: BitrixIntegration): Promise<void> {
    const { result: bound } = await this.api.call<EventBinding[]>(integration, 'event.get');
    const ours = bound.filter((b) => isOurHandler(this.publicUrl, b.handler));
    if (!ours.length) return;
    await this.api.batch(integration, Object.fromEntries(ours.map((b, i) => [`u${i}`, ['event.unbind', { event: b.event, handler: b.handler }]])));
  }
}

/** Our own errors carry sentences fit for /info; anything else is reduced to a generic one. */
function describe(err: unknown): string {
  return err instanceof AppError ? err.message : 'Bitrix24 sent an unexpected answer.';
}

function sameOrigin(endpoint: string | undefined, origin: string): boolean {
  if (!endpoint) return false;
  try {
    return new URL(endpoint).origin === origin;
  } catch {
    return false;
  }
}

function toInfo(integration: BitrixIntegration | null): IntegrationInfoDto {
  if (!integration || integration.status === 'disconnected') {
    return { enabled: false, domain: null, status: 'disconnected', member_id: null, connected_at: null, last_error: null };
  }
  return {
    enabled: integration.status === 'connected',
    domain: integration.domain,
    status: integration.status,
    member_id: integration.memberId,
    connected_at: integration.connectedAt?.toISOString() ?? null,
    last_error: integration.lastError,
  };
}
