import { Injectable, Logger } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Not, Repository } from 'typeorm';
import { AppError } from '../../common/app-error';
import { safeEqual, SecretBox, sha256Hex } from '../../common/secret-box';
import { BitrixApiService } from '../bitrix-api.service';
import { BitrixIntegration } from '../bitrix-integration.entity';

/** Who is calling a public Bitrix24 callback, once proven. */
export type CallbackCaller =
  /** A Bitrix24 event delivery: key and application_token matched. */
  | { kind: 'event'; integration: BitrixIntegration }
  /** The documented form with the integration's key (a server-to-server caller). */
  | { kind: 'key'; integration: BitrixIntegration }
  /** The documented form with a Bitrix24 user's access token (a widget inside Bitrix24). */
  | { kind: 'user'; integration: BitrixIntegration; bitrixUserId: number };

export interface CallbackCredentials {
  /** `?key=` of the bound handler URL, or `key` in the documented form's body. */
  key?: string;
  /** True for an event delivery (the body has `event`): it must carry the application_token. */
  isEvent: boolean;
  auth?: { member_id?: unknown; access_token?: unknown; application_token?: unknown };
}

const USER_CACHE_TTL_MS = 60_000;
const USER_CACHE_MAX = 10_000;
/**
 * New (uncached) user tokens checked per portal per minute. Each check is a `user.current` on the
 * portal's own rate limit: without a cap, anyone who knows a member_id could spend that budget
 * (and starve call sync) by posting random tokens.
 */
const USER_CHECKS_PER_MINUTE = 30;
const DENIED = 'The request could not be authenticated.';

/**
 * SPEC §7 authenticity for the public callbacks. Every refusal is the same 401, so a caller
 * learns nothing about which check failed; the reason goes to the log only.
 */
@Injectable()
export class CallbackAuthService {
  private readonly logger = new Logger(CallbackAuthService.name);
  /** `integration id:sha256(access token)` → Bitrix24 user id, for a minute. */
  private readonly users = new Map<string, { userId: number; until: number }>();
  /** Per portal: the current minute's window and the checks made in it. */
  private readonly checks = new Map<number, { since: number; count: number }>();

  constructor(
    @InjectRepository(BitrixIntegration) private readonly integrations: Repository<BitrixIntegration>,
    private readonly secrets: SecretBox,
    private readonly api: BitrixApiService,
  ) {}

  async authenticate(credentials: CallbackCredentials): Promise<CallbackCaller> {
    const memberId = text(credentials.auth?.member_id);
    if (credentials.key !== undefined) {
      const integration = await this.byKey(credentials.key);
      if (memberId !== undefined && memberId !== integration.memberId) this.deny('member_id of another portal', integration);
      if (!credentials.isEvent) return { kind: 'key', integration };
      await this.checkApplicationToken(integration, text(credentials.auth?.application_token));
      return { kind: 'event', integration };
    }
    const accessToken = text(credentials.auth?.access_token);
    if (credentials.isEvent || memberId === undefined || accessToken === undefined) this.deny('no key and no user token');
    return this.byUserToken(memberId, accessToken);
  }

  /**
   * The key is looked up by its SHA-256 (an index hit reveals nothing about the secret's bytes),
   * then compared in constant time with the stored, encrypted key. A disconnected integration's
   * key no longer opens anything.
   */
  private async byKey(key: string): Promise<BitrixIntegration> {
    const integration = key ? await this.integrations.findOneBy({ handlerKeyHash: sha256Hex(key), status: Not('disconnected') }) : null;
    if (!integration || !safeEqual(this.secrets.decrypt(integration.handlerKey), key)) this.deny('unknown or retired key');
    return integration;
  }

  /** The first genuine delivery teaches the portal's application_token (atomically); later ones must match it. */
  private async checkApplicationToken(integration: BitrixIntegration, token: string | undefined): Promise<void> {
    if (!token) this.deny('event without application_token', integration);
    if (integration.applicationToken === null) {
      const learned = await this.integrations
        .createQueryBuilder()
        .update()
        .set({ applicationToken: this.secrets.encrypt(token) })
        .where('id = :id AND application_token IS NULL', { id: integration.id })
        .returning(['id'])
        .execute();
      if ((learned.raw as unknown[]).length) {
        this.logger.log({ memberId: integration.memberId }, 'Learned the portal\'s application_token from its first event');
        return;
      }
      // Another delivery taught it a moment ago: compare with that one.
      const fresh = await this.integrations.findOneBy({ id: integration.id });
      integration.applicationToken = fresh?.applicationToken ?? null;
      if (integration.applicationToken === null) this.deny('application_token reset meanwhile', integration);
    }
    if (!safeEqual(this.secrets.decrypt(integration.applicationToken), token)) this.deny('wrong application_token', integration);
  }

  /** `user.current` on that portal with that token says whose it is; cached a minute. */
  private async byUserToken(memberId: string, accessToken: string): Promise<CallbackCaller> {
    const integration = await this.integrations.findOneBy({ memberId, status: 'connected' });
    if (!integration) this.deny('user token for an unknown portal');
    const cacheKey = `${integration.id}:${sha256Hex(accessToken)}`;
    const cached = this.users.get(cacheKey);
    if (cached && cached.until > Date.now()) return { kind: 'user', integration, bitrixUserId: cached.userId };

    this.countCheck(integration);
    let userId: number;
    try {
      // The user's own token, never refreshed or stored.
      const result = await this.api.callWithToken<{ ID?: string | number }>(integration.domain, integration.memberId, accessToken, 'user.current');
      userId = Number(result.ID);
    } catch (err) {
      // A token Bitrix24 refuses, or a check it cannot answer, proves nothing.
      if (!(err instanceof AppError)) throw err;
      this.deny(`Bitrix24 did not confirm the user token (${err.code})`, integration);
    }
    if (!Number.isSafeInteger(userId) || userId <= 0) this.deny('user.current named nobody', integration);
    if (this.users.size >= USER_CACHE_MAX) this.users.delete(this.users.keys().next().value as string);
    this.users.set(cacheKey, { userId, until: Date.now() + USER_CACHE_TTL_MS });
    return { kind: 'user', integration, bitrixUserId: userId };
  }

  private countCheck(integration: BitrixIntegration): void {
    const now = Date.now();
    const window = this.checks.get(integration.id);
    if (!window || now - window.since >= 60_000) {
      this.checks.set(integration.id, { since: now, count: 1 });
      return;
    }
    if (++window.count > USER_CHECKS_PER_MINUTE) this.deny('too many new user tokens this minute', integration);
  }

  private deny(reason: string, integration?: BitrixIntegration): never {
    this.logger.warn({ memberId: integration?.memberId, reason }, 'Refused a Bitrix24 callback');
    throw new AppError('UNAUTHENTICATED', DENIED);
  }
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
