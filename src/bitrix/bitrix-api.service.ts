import { HttpService } from '@nestjs/axios';
import { Injectable, Logger } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { InjectRepository } from '@nestjs/typeorm';
import { Counter, Histogram } from 'prom-client';
import { stringify } from 'qs';
import { firstValueFrom } from 'rxjs';
import { DataSource, Repository } from 'typeorm';
import { AppError } from '../common/app-error';
import { SecretBox } from '../common/secret-box';
import type { BitrixConfig } from '../config/bitrix.config';
import type { Config } from '../config/config';
import { MetricsService } from '../metrics/metrics.service';
import { BitrixApiError, invalidClientError } from './bitrix-api.error';
import type { BatchResponse, BitrixProfile, RestFailure, RestSuccess, TokenResponse } from './bitrix-api.types';
import { BitrixIntegration } from './bitrix-integration.entity';
import { BitrixRateLimiter, RateLimitWaitExceeded } from './bitrix-rate-limiter';

const REST_TIMEOUT_MS = 20_000;
const TOKEN_TIMEOUT_MS = 10_000;
/** Network failures and 5xx answers are retried this many times with exponential backoff. */
const MAX_TRANSIENT_RETRIES = 3;
/** QUERY_LIMIT_EXCEEDED despite our own limiter (another app on the portal): pause, then retry. */
const MAX_RATE_LIMIT_RETRIES = 5;
const RATE_LIMIT_PAUSE_MS = 2_000;
/** A method over its operating budget (429) is waited for only this long in a request. */
const MAX_OPERATING_WAIT_MS = 10_000;
const OPERATING_BACKOFF_MS = 60_000;
/** REST answers that mean "this access token is not (or no longer) good". */
const AUTH_ERRORS = new Set(['expired_token', 'invalid_token', 'NO_AUTH_FOUND']);
const MAX_REDIRECTS = 3;
const BATCH_LIMIT = 50;
/** A list longer than this is cut (a guard against a portal reporting an absurd `total`). */
const MAX_LIST_ROWS = 100_000;
const PAGE_SIZE = 50;

/** An HTTP client failure reduced to its code and message: the original carries the request, credentials included. */
function transportError(err: unknown): Error {
  const { code, message } = err as { code?: string; message?: string };
  return new Error([code, message].filter(Boolean).join(': ') || 'network error');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const sections = <T>(v: Record<string, T> | unknown[] | undefined): Record<string, T> => (isObject(v) ? v : {});

interface RawResponse {
  status: number;
  data: unknown;
  location?: string;
}

export type BatchCommands = Record<string, [method: string, params?: object]>;

export interface BatchResult {
  result: Record<string, unknown>;
  errors: Record<string, RestFailure>;
  total: Record<string, number>;
}

/**
 * The one client of Bitrix24: the OAuth server (code exchange, refresh) and the portals' REST API.
 * Every request has a timeout and passes the portal's shared rate limiter; tokens are refreshed
 * only when expired or refused, once per portal across processes; a renamed portal's redirect is
 * followed only to an allowed origin. Tokens never reach a log line.
 */
@Injectable()
export class BitrixApiService {
  private readonly logger = new Logger(BitrixApiService.name);
  private readonly config: BitrixConfig;
  /** Refreshes in flight in this process, so concurrent callers share one (the row lock covers other processes). */
  private readonly refreshing = new Map<number, Promise<BitrixIntegration>>();
  /** `operating_reset_at` of the last good answer per portal and method, and methods blocked by a 429. */
  private readonly operatingResetAt = new Map<string, number>();
  private readonly operatingBlockedUntil = new Map<string, number>();
  private readonly duration: Histogram<'method' | 'outcome'>;
  private readonly errors: Counter<'method' | 'code'>;

  constructor(
    private readonly http: HttpService,
    private readonly secrets: SecretBox,
    private readonly dataSource: DataSource,
    private readonly limiter: BitrixRateLimiter,
    @InjectRepository(BitrixIntegration) private readonly integrations: Repository<BitrixIntegration>,
    config: ConfigService<Config, true>,
    metrics: MetricsService,
  ) {
    this.config = config.get('bitrix', { infer: true });
    this.duration = new Histogram({
      name: 'bitrix_request_duration_seconds',
      help: 'Latency of Bitrix24 REST and OAuth requests',
      labelNames: ['method', 'outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20],
      registers: [metrics.registry],
    });
    this.errors = new Counter({
      name: 'bitrix_request_errors_total',
      help: 'Bitrix24 error answers by method and error code',
      labelNames: ['method', 'code'],
      registers: [metrics.registry],
    });
  }

  /** Exchanges an authorization code (it lives 30 s) at an OAuth server the caller has vetted. */
  exchangeCode(oauthServer: string, code: string): Promise<TokenResponse> {
    return this.tokenRequest(oauthServer, { grant_type: 'authorization_code', code }, null);
  }

  /**
   * The encrypted token columns for a token response. The expiry comes from `expires_in` on our
   * own clock (Bitrix24's absolute `expires` is on theirs; a skew would look like a refresh timer).
   */
  sealTokens(tokens: TokenResponse): Pick<BitrixIntegration, 'accessToken' | 'refreshToken' | 'accessExpiresAt' | 'scope'> {
    const lifetime = Number(tokens.expires_in) > 0 ? Number(tokens.expires_in) : 3600;
    const expiresAt = Date.now() + lifetime * 1000;
    return {
      accessToken: this.secrets.encrypt(tokens.access_token),
      refreshToken: this.secrets.encrypt(tokens.refresh_token),
      accessExpiresAt: new Date(expiresAt),
      scope: tokens.scope ?? '',
    };
  }

  /**
   * `profile` of a token pair that is not stored yet: a connect learns who approved it (and whether
   * they are an admin) before it stores anything. One request through the portal's rate limit; no
   * refresh, retry or redirect, since there is no stored integration to update.
   */
  async profileOf(origin: string, tokens: TokenResponse): Promise<BitrixProfile> {
    const details = { memberId: tokens.member_id, method: 'profile' };
    try {
      await this.limiter.acquire(tokens.member_id, this.limiter.limitFor(null));
    } catch (err) {
      if (err instanceof RateLimitWaitExceeded) throw new BitrixApiError('BITRIX_UNAVAILABLE', `Bitrix24 portal ${origin} is rate-limited; try again shortly (profile).`, details, { cause: err });
      throw err;
    }
    let res: RawResponse;
    try {
      res = await this.post(`${origin}/rest/profile`, { auth: tokens.access_token }, REST_TIMEOUT_MS, 'profile');
    } catch (err) {
      throw new BitrixApiError('BITRIX_UNAVAILABLE', `Bitrix24 portal ${origin} did not answer (profile).`, details, { cause: transportError(err) });
    }
    const body = res.data;
    if (res.status === 200 && isObject(body) && isObject(body.result)) return body.result;
    const code = isObject(body) && typeof body.error === 'string' ? body.error : `HTTP_${res.status}`;
    this.errors.inc({ method: 'profile', code });
    throw new BitrixApiError('BITRIX_REJECTED', `Bitrix24 refused profile (${code}).`, { ...details, bitrixError: code, httpStatus: res.status });
  }

  /** Calls one REST method. `integration` is updated in place when tokens or domain change. */
  call<T>(integration: BitrixIntegration, method: string, params: object = {}): Promise<RestSuccess<T>> {
    return this.execute<T>(integration, method, params);
  }

  /** Runs commands through `batch`, 50 per request; per-command errors are returned, not thrown. */
  async batch(integration: BitrixIntegration, commands: BatchCommands): Promise<BatchResult> {
    const out: BatchResult = { result: {}, errors: {}, total: {} };
    const entries = Object.entries(commands);
    for (let i = 0; i < entries.length; i += BATCH_LIMIT) {
      const cmd = Object.fromEntries(entries.slice(i, i + BATCH_LIMIT).map(([key, [method, params]]) => [key, `${method}?${stringify(params ?? {})}`]));
      const { result } = await this.execute<BatchResponse>(integration, 'batch', { halt: 0, cmd });
      Object.assign(out.result, sections(result.result));
      Object.assign(out.errors, sections(result.result_error));
      Object.assign(out.total, sections(result.result_total));
    }
    return out;
  }

  /** Every row of a paged list method: the first page tells the total, the rest come in batches. */
  async listAll<T>(integration: BitrixIntegration, method: string, params: object = {}): Promise<T[]> {
    const first = await this.execute<T[]>(integration, method, { ...params, start: 0 });
    if (!Array.isArray(first.result)) throw this.rejected(integration, method, 200, { error: 'UNEXPECTED_ANSWER', error_description: 'a list was expected' });
    const rows = [...first.result];
    const total = Math.min(Number(first.total) || 0, MAX_LIST_ROWS);
    if (typeof first.next !== 'number' || total <= rows.length) return rows;
    const commands: BatchCommands = {};
    for (let start = first.next; start < total; start += PAGE_SIZE) commands[`p${start}`] = [method, { ...params, start }];
    const { result, errors } = await this.batch(integration, commands);
    const failed = Object.entries(errors)[0];
    if (failed) throw this.rejected(integration, method, 200, failed[1]);
    for (const key of Object.keys(commands)) {
      const page = result[key];
      if (Array.isArray(page)) rows.push(...(page as T[]));
    }
    return rows;
  }

  private async execute<T>(integration: BitrixIntegration, method: string, params: object): Promise<RestSuccess<T>> {
    const limit = this.limiter.limitFor(integration.licenseFamily);
    let authRetries = 0;
    let redirects = 0;
    let transient = 0;
    let rateLimited = 0;
    for (;;) {
      if (integration.accessExpiresAt && integration.accessExpiresAt.getTime() <= Date.now()) {
        await this.refresh(integration);
      }
      const accessToken = this.usableToken(integration);
      await this.waitForOperatingBudget(integration, method);
      try {
        await this.limiter.acquire(integration.memberId, limit);
      } catch (err) {
        if (err instanceof RateLimitWaitExceeded) throw this.unavailable(integration, method, 'is rate-limited; try again shortly', err);
        throw err;
      }

      const url = `${integration.domain}/rest/${method}`;
      let res: RawResponse;
      try {
        res = await this.post(url, { ...params, auth: accessToken }, REST_TIMEOUT_MS, method);
      } catch (err) {
        if (++transient <= MAX_TRANSIENT_RETRIES) {
          await sleep(250 * 2 ** transient);
          continue;
        }
        throw this.unavailable(integration, method, 'did not answer', transportError(err));
      }

      if ([301, 302, 303, 307, 308].includes(res.status)) {
        if (++redirects > MAX_REDIRECTS) throw this.unavailable(integration, method, 'redirects in a loop');
        await this.followRename(integration, url, res.location, method);
        continue;
      }
      const body = res.data;
      if (res.status < 300 && isObject(body) && 'result' in body && !('error' in body)) {
        const success = body as unknown as RestSuccess<T>;
        this.noteOperating(integration, method, success);
        return success;
      }

      const error: RestFailure =
        isObject(body) && typeof body.error === 'string'
          ? { error: body.error, error_description: typeof body.error_description === 'string' ? body.error_description : '' }
          : { error: `HTTP_${res.status}`, error_description: '' };
      this.errors.inc({ method, code: error.error || 'EMPTY' });

      // A refused token: refresh (or pick up the pair another process just rotated) and retry, twice at
      // most. Only the OAuth server's invalid_grant ends the integration; a REST 401 never does.
      if (res.status === 401 || AUTH_ERRORS.has(error.error)) {
        if (++authRetries <= 2) {
          await this.refresh(integration, true);
          continue;
        }
        await this.recordError(integration, `Bitrix24 keeps refusing fresh access tokens (${error.error}).`);
      }
      if (error.error === 'QUERY_LIMIT_EXCEEDED') {
        await this.limiter.penalize(integration.memberId, limit, RATE_LIMIT_PAUSE_MS * 2 ** rateLimited);
        if (++rateLimited <= MAX_RATE_LIMIT_RETRIES) continue;
        throw this.unavailable(integration, method, 'keeps answering QUERY_LIMIT_EXCEEDED');
      }
      if (error.error === 'OPERATION_TIME_LIMIT') {
        // Blocked until the budget's oldest minute drops out: the reset of the last good answer if it
        // is still ahead, else a minute from now. waitForOperatingBudget then waits or gives up.
        const key = `${integration.memberId}:${method}`;
        this.operatingBlockedUntil.set(key, Math.max(this.operatingResetAt.get(key) ?? 0, Date.now() + OPERATING_BACKOFF_MS));
        if (++transient <= MAX_TRANSIENT_RETRIES) continue;
        throw this.unavailable(integration, method, 'answers OPERATION_TIME_LIMIT');
      }
      if (res.status >= 500) {
        if (++transient <= MAX_TRANSIENT_RETRIES) {
          await sleep(250 * 2 ** transient);
          continue;
        }
        throw this.unavailable(integration, method, `keeps failing (${error.error || `HTTP ${res.status}`})`);
      }
      throw this.rejected(integration, method, res.status, error);
    }
  }

  /** The decrypted access token, or the 409 that tells the caller to (re)connect. */
  private usableToken(integration: BitrixIntegration): string {
    if (integration.status === 'reauth_required') {
      throw new AppError('INTEGRATION_REAUTH_REQUIRED', 'Bitrix24 needs to be re-authorised: connect the portal again.');
    }
    if (integration.status !== 'connected' || !integration.accessToken) throw new AppError('INTEGRATION_NOT_CONNECTED', 'Bitrix24 is not connected.');
    return this.secrets.decrypt(integration.accessToken);
  }

  /**
   * Single-flight token refresh. Refresh tokens are single use, so across processes the row lock
   * serialises refreshes and whoever waited re-reads the row: if another process already rotated
   * the pair, it is used as is. The new pair is committed before it is used.
   */
  private async refresh(integration: BitrixIntegration, refusedByBitrix = false): Promise<void> {
    let pending = this.refreshing.get(integration.id);
    if (!pending) {
      pending = this.refreshLocked(integration.id, integration.accessToken, refusedByBitrix).finally(() => this.refreshing.delete(integration.id));
      this.refreshing.set(integration.id, pending);
    }
    Object.assign(integration, await pending);
  }

  private async refreshLocked(id: number, usedToken: string | null, refusedByBitrix: boolean): Promise<BitrixIntegration> {
    return this.dataSource.transaction(async (em) => {
      const repo = em.getRepository(BitrixIntegration);
      const row = await repo.findOne({ where: { id }, lock: { mode: 'pessimistic_write' } });
      if (!row) throw new AppError('INTEGRATION_NOT_CONNECTED', 'Bitrix24 is not connected.');
      if (row.status !== 'connected' || !row.refreshToken) return row;
      const rotatedMeanwhile = row.accessToken !== usedToken;
      const stillValid = row.accessExpiresAt !== null && row.accessExpiresAt.getTime() > Date.now();
      if (rotatedMeanwhile && (stillValid || refusedByBitrix)) return row;

      let tokens: TokenResponse;
      try {
        tokens = await this.tokenRequest(row.oauthServer, { grant_type: 'refresh_token', refresh_token: this.secrets.decrypt(row.refreshToken) }, row.memberId);
      } catch (err) {
        if (err instanceof BitrixApiError && err.bitrixError === 'invalid_grant') {
          Object.assign(row, { status: 'reauth_required', accessToken: null, refreshToken: null, accessExpiresAt: null, lastError: 'Bitrix24 refused the refresh token (invalid_grant): reconnect the portal.' });
          return repo.save(row);
        }
        if (err instanceof BitrixApiError && err.bitrixError === 'invalid_client') {
          // Our credentials, not the portal's tokens, are wrong: keep the tokens for when they are fixed.
          throw invalidClientError();
        }
        throw err;
      }
      Object.assign(row, this.sealTokens(tokens), { lastError: null });
      this.logger.log({ memberId: row.memberId }, 'Bitrix24 tokens refreshed');
      return repo.save(row);
    });
  }

  private async recordError(integration: BitrixIntegration, reason: string): Promise<void> {
    integration.lastError = reason;
    await this.integrations.update({ id: integration.id }, { lastError: reason });
  }

  private async tokenRequest(oauthServer: string, params: Record<string, string>, memberId: string | null): Promise<TokenResponse> {
    const credentials = this.config.credentials;
    if (!credentials) throw new AppError('BITRIX_NOT_CONFIGURED', 'The Bitrix24 application is not configured on this server (BITRIX_CLIENT_ID, BITRIX_CLIENT_SECRET).');
    const label = `oauth.${params.grant_type}`;
    const form = new URLSearchParams({ ...params, client_id: credentials.clientId, client_secret: credentials.clientSecret });
    let res: RawResponse;
    try {
      res = await this.post(`${oauthServer}/oauth/token/`, form, TOKEN_TIMEOUT_MS, label);
    } catch (err) {
      throw new BitrixApiError('BITRIX_UNAVAILABLE', 'The Bitrix24 authorisation server did not answer.', { memberId, method: label }, { cause: transportError(err) });
    }
    const body = res.data;
    if (res.status === 200 && isObject(body) && typeof body.access_token === 'string' && typeof body.refresh_token === 'string' && typeof body.member_id === 'string') {
      return body as unknown as TokenResponse;
    }
    const code = isObject(body) && typeof body.error === 'string' ? body.error : `HTTP_${res.status}`;
    this.errors.inc({ method: label, code });
    throw new BitrixApiError('BITRIX_REJECTED', `The Bitrix24 authorisation server refused the request (${code}).`, { memberId, method: label, bitrixError: code, httpStatus: res.status });
  }

  /** A renamed portal answers 302 to its new address: follow it only to an allowed origin, and remember it. */
  private async followRename(integration: BitrixIntegration, url: string, location: string | undefined, method: string): Promise<void> {
    let origin: string | null;
    try {
      origin = location ? new URL(location, url).origin : null;
    } catch {
      origin = null;
    }
    if (!origin || !this.config.allowedDomains.allows(origin)) {
      const reason = `Bitrix24 redirected ${method} to ${origin ?? 'an invalid address'}, which is not an allowed portal domain (BITRIX_ALLOWED_DOMAINS).`;
      await this.recordError(integration, reason);
      throw new BitrixApiError('BITRIX_REJECTED', reason, { memberId: integration.memberId, method });
    }
    this.logger.warn({ memberId: integration.memberId, from: integration.domain, to: origin }, 'Bitrix24 portal moved; following');
    integration.domain = origin;
    await this.integrations.update({ id: integration.id }, { domain: origin });
  }

  private async waitForOperatingBudget(integration: BitrixIntegration, method: string): Promise<void> {
    const key = `${integration.memberId}:${method}`;
    const until = this.operatingBlockedUntil.get(key);
    if (!until) return;
    const wait = until - Date.now();
    if (wait <= 0) {
      this.operatingBlockedUntil.delete(key);
      return;
    }
    if (wait > MAX_OPERATING_WAIT_MS) throw this.unavailable(integration, method, `limits ${method} until ${new Date(until).toISOString()} (OPERATION_TIME_LIMIT)`);
    await sleep(wait);
  }

  private noteOperating(integration: BitrixIntegration, method: string, body: RestSuccess<unknown>): void {
    const resetAt = body.time?.operating_reset_at;
    if (typeof resetAt === 'number') this.operatingResetAt.set(`${integration.memberId}:${method}`, resetAt * 1000);
  }

  private async post(url: string, body: object, timeout: number, method: string): Promise<RawResponse> {
    const end = this.duration.startTimer({ method });
    try {
      const res = await firstValueFrom(
        this.http.post<unknown>(url, body, {
          timeout,
          maxRedirects: 0,
          validateStatus: () => true,
          headers: { Accept: 'application/json', 'User-Agent': 'utel-bitrix24/1.0' },
        }),
      );
      end({ outcome: res.status < 400 ? 'ok' : 'error' });
      const location = res.headers.location as unknown;
      return { status: res.status, data: res.data, location: typeof location === 'string' ? location : undefined };
    } catch (err) {
      end({ outcome: 'network' });
      throw err;
    }
  }

  private unavailable(integration: BitrixIntegration, method: string, what: string, cause?: unknown): BitrixApiError {
    this.logger.warn({ memberId: integration.memberId, method, err: cause instanceof Error ? cause.message : undefined }, `Bitrix24 ${what}`);
    return new BitrixApiError('BITRIX_UNAVAILABLE', `Bitrix24 portal ${integration.domain} ${what} (${method}).`, { memberId: integration.memberId, method }, { cause });
  }

  private rejected(integration: BitrixIntegration, method: string, status: number, error: RestFailure): BitrixApiError {
    const description = error.error_description ? `: ${error.error_description}` : '';
    return new BitrixApiError('BITRIX_REJECTED', `Bitrix24 refused ${method} (${error.error || 'error'}${description}).`, {
      memberId: integration.memberId,
      method,
      bitrixError: error.error,
      httpStatus: status,
    });
  }
}
