import { randomUUID } from 'node:crypto';
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
import type { BatchResponse, RestFailure, RestSuccess, TokenResponse } from './bitrix-api.types';
import { BitrixIntegration } from './bitrix-integration.entity';
import { CompanyViewService } from './company-view.service';
import { BitrixRateLimiter, type Lane, type PausedMethods } from './bitrix-rate-limiter';

const REST_TIMEOUT_MS = 20_000;
const TOKEN_TIMEOUT_MS = 10_000;
/** A refresh lease outlives the OAuth request it covers, so two processes never refresh one portal at once. */
const REFRESH_LEASE_MS = TOKEN_TIMEOUT_MS * 2;
/** Refreshes in flight per process: after an outage many portals expire together; they queue here, not in the pool. */
const MAX_CONCURRENT_REFRESHES = 4;
/** Answers that mean "this access token has expired or is not valid": the only ones that trigger a refresh. */
const REFRESH_ERRORS = new Set(['expired_token', 'invalid_token']);
const MAX_REDIRECTS = 3;
export const BATCH_LIMIT = 50;
/** A list longer than this is cut (a guard against a portal reporting an absurd `total`). */
const MAX_LIST_ROWS = 100_000;
const PAGE_SIZE = 50;
/** OPERATION_TIME_LIMIT without a known reset: the budget's oldest minute drops out within a minute. */
const OPERATING_PAUSE_MS = 60_000;
const QUERY_LIMIT_PAUSE_MS = 2_000;
/** Interactive callers wait this long at most for a rate-limit slot or a paused method. */
const INTERACTIVE_WAIT_MS = 60_000;
const INTERACTIVE_MAX_OPERATING_WAIT_MS = 10_000;
const INTERACTIVE_TRANSIENT_RETRIES = 3;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const sections = <T>(v: Record<string, T> | unknown[] | undefined): Record<string, T> => (isObject(v) ? v : {});
/** Full jitter: a random wait up to `ms`, at least a quarter of it. */
const jitter = (ms: number) => Math.round(ms * (0.25 + Math.random() * 0.75));

/** An HTTP client failure reduced to its code and message: the original carries the request, credentials included. */
function transportError(err: unknown): Error {
  const { code, message } = err as { code?: string; message?: string };
  return new Error([code, message].filter(Boolean).join(': ') || 'network error');
}

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

/** Why a request may be tried again later. `sent` tells whether Bitrix24 may have executed it. */
export type RetryReason = 'rate_limit' | 'operating_limit' | 'transient' | 'auth';

/**
 * One attempt's outcome, classified for a worker: done; try again after `afterMs`; a permanent
 * refusal that retrying cannot fix; the portal needs re-authorisation; the company is not connected.
 */
export type Outcome<T> =
  | { kind: 'done'; value: T }
  | { kind: 'retry'; afterMs: number; reason: RetryReason; message: string; sent: boolean }
  | { kind: 'permanent'; message: string; error: RestFailure }
  | { kind: 'reauth'; message: string }
  | { kind: 'not_connected'; message: string };

/** A command's outcome inside a batch that Bitrix24 answered. */
export type CommandOutcome =
  | { ok: true; result: unknown }
  | { ok: false; retry: false; error: RestFailure }
  | { ok: false; retry: true; afterMs: number; error: RestFailure };

export interface AttemptOptions {
  lane?: Lane;
  /** The caller's deadline: the request is aborted (and reported as a retry, possibly sent) when it fires. */
  signal?: AbortSignal;
  /** Runs once the rate-limit slot and the token are in hand, just before the request leaves: the caller records what is in flight, and a refused slot costs it nothing. */
  beforeSend?: () => Promise<void>;
  /** The portal's methods paused by OPERATION_TIME_LIMIT, when the caller has just read them (BitrixRateLimiter.bucketColumns). */
  paused?: PausedMethods;
}

/** Bitrix24 sometimes sends an empty error code; these descriptions are matched instead (brief §2.4). */
export function errorKey(error: RestFailure): string {
  if (error.error) return error.error;
  const description = error.error_description ?? '';
  if (/call is not found/i.test(description)) return 'CALL_NOT_FOUND';
  if (/not found/i.test(description)) return 'NOT_FOUND';
  return '';
}

/** Errors inside a batch (or of a whole request) that clear up if the command is sent again later. */
function retryableCommand(error: RestFailure): RetryReason | null {
  const code = error.error;
  if (code === 'QUERY_LIMIT_EXCEEDED' || code === 'ERROR_BATCH_LENGTH_EXCEEDED') return 'rate_limit';
  if (code === 'OPERATION_TIME_LIMIT') return 'operating_limit';
  if (REFRESH_ERRORS.has(code)) return 'auth';
  if (code === 'INTERNAL_SERVER_ERROR' || code === 'ERROR_UNEXPECTED_ANSWER' || code === 'OVERLOAD_LIMIT' || /^HTTP_5\d\d$/.test(code)) return 'transient';
  return null;
}

/** A tiny counting semaphore (bounded refresh concurrency). */
class Semaphore {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly size: number) {}
  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.active >= this.size) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await work();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/**
 * The one client of Bitrix24: the OAuth server (code exchange, refresh) and the portals' REST API.
 *
 * `attempt` and `attemptBatch` make one attempt and classify its outcome, for the call-sync worker,
 * which schedules its own retries. `call`, `batch` and `listAll` serve the interactive endpoints:
 * they wait for rate-limit slots and retry transient failures within bounds, and throw coded errors.
 *
 * Every request has a timeout and passes the portal's shared rate limiter; the token is read only
 * after the slot is granted; tokens are refreshed only when the stored expiry has passed or
 * Bitrix24 answers expired_token/invalid_token, once per portal across processes (a lease row, no
 * pooled connection held during the OAuth request); a renamed portal's redirect is followed only
 * to an allowed origin. Tokens never reach a log line.
 */
@Injectable()
export class BitrixApiService {
  private readonly logger = new Logger(BitrixApiService.name);
  private readonly config: BitrixConfig;
  private readonly instanceId = randomUUID();
  /** Refreshes in flight in this process, so concurrent callers share one. */
  private readonly refreshing = new Map<number, Promise<BitrixIntegration>>();
  private readonly refreshSlots = new Semaphore(MAX_CONCURRENT_REFRESHES);
  /** `operating_reset_at` (ms) of the last good answer per portal and method: where an OPERATION_TIME_LIMIT pause ends. */
  private readonly operatingResetAt = new Map<string, number>();
  private readonly duration: Histogram<'method' | 'outcome'>;
  private readonly errors: Counter<'method' | 'code'>;

  constructor(
    private readonly http: HttpService,
    private readonly secrets: SecretBox,
    private readonly dataSource: DataSource,
    private readonly limiter: BitrixRateLimiter,
    @InjectRepository(BitrixIntegration) private readonly integrations: Repository<BitrixIntegration>,
    private readonly view: CompanyViewService,
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
    return {
      accessToken: this.secrets.encrypt(tokens.access_token),
      refreshToken: this.secrets.encrypt(tokens.refresh_token),
      accessExpiresAt: new Date(Date.now() + lifetime * 1000),
      scope: tokens.scope ?? '',
    };
  }

  /**
   * A method called with a token that is not the stored integration's: the pair a connect has not
   * stored yet (`profile`: who approved it), or a Bitrix24 user's own token (`user.current`: whose
   * it is). One request through the portal's rate limit; no refresh, retry or redirect.
   */
  async callWithToken<T extends object>(origin: string, memberId: string, accessToken: string, method: string): Promise<T> {
    const details = { memberId, method };
    const deadline = Date.now() + INTERACTIVE_WAIT_MS;
    for (;;) {
      const wait = await this.limiter.tryAcquire(memberId, this.limiter.limitFor(null), 'priority');
      if (wait === 0) break;
      if (Date.now() + wait > deadline) throw new BitrixApiError('BITRIX_UNAVAILABLE', `Bitrix24 portal ${origin} is rate-limited; try again shortly (${method}).`, details);
      await sleep(wait);
    }
    let res: RawResponse;
    try {
      res = await this.post(`${origin}/rest/${method}`, { auth: accessToken }, REST_TIMEOUT_MS, method);
    } catch (err) {
      throw new BitrixApiError('BITRIX_UNAVAILABLE', `Bitrix24 portal ${origin} did not answer (${method}).`, details, { cause: transportError(err) });
    }
    const body = res.data;
    if (res.status === 200 && isObject(body) && isObject(body.result)) return body.result as T;
    const code = isObject(body) && typeof body.error === 'string' ? body.error : `HTTP_${res.status}`;
    this.errors.inc({ method, code });
    throw new BitrixApiError('BITRIX_REJECTED', `Bitrix24 refused ${method} (${code}).`, { ...details, bitrixError: code, httpStatus: res.status });
  }

  /** One attempt at one REST method, classified. `integration` is updated in place when tokens or domain change. */
  async attempt<T>(integration: BitrixIntegration, method: string, params: object = {}, options: AttemptOptions = {}): Promise<Outcome<RestSuccess<T>>> {
    const paused = (options.paused ?? (await this.limiter.pausedMethods(integration.memberId))).get(method.toLowerCase());
    if (paused) return this.operatingRetry(method, paused);
    return this.send<T>(integration, method, params, options);
  }

  /**
   * One attempt at up to 50 commands in one `batch` request. Commands of a method paused by
   * OPERATION_TIME_LIMIT are not sent (they come back as retries); the answer carries each sent
   * command's own outcome. A refused token inside the batch refreshes it for the next attempt.
   */
  async attemptBatch(integration: BitrixIntegration, commands: BatchCommands, options: AttemptOptions = {}): Promise<Outcome<Record<string, CommandOutcome>>> {
    const entries = Object.entries(commands);
    if (entries.length > BATCH_LIMIT) throw new Error(`a batch holds at most ${BATCH_LIMIT} commands`);
    const paused = options.paused ?? (await this.limiter.pausedMethods(integration.memberId));
    const outcomes: Record<string, CommandOutcome> = {};
    const cmd: Record<string, string> = {};
    for (const [key, [method, params]] of entries) {
      const until = paused.get(method.toLowerCase());
      if (until) outcomes[key] = { ok: false, retry: true, afterMs: until - Date.now(), error: { error: 'OPERATION_TIME_LIMIT', error_description: `${method} is paused` } };
      else cmd[key] = `${method}?${stringify(params ?? {})}`;
    }
    if (!Object.keys(cmd).length) return { kind: 'done', value: outcomes };

    const answer = await this.send<BatchResponse>(integration, 'batch', { halt: 0, cmd }, options);
    if (answer.kind !== 'done') return answer;
    const results = sections(answer.value.result.result);
    const errors = sections<RestFailure>(answer.value.result.result_error);
    let refreshNeeded = false;
    for (const key of Object.keys(cmd)) {
      const error = errors[key];
      if (!error) {
        outcomes[key] = { ok: true, result: results[key] };
        continue;
      }
      const failure: RestFailure = { error: typeof error.error === 'string' ? error.error : '', error_description: error.error_description ?? '' };
      const method = commands[key][0];
      this.errors.inc({ method, code: failure.error || 'EMPTY' });
      const retry = retryableCommand(failure);
      if (retry === 'auth') refreshNeeded = true;
      if (retry === 'operating_limit') {
        const until = this.operatingPauseEnd(integration, method);
        await this.limiter.pauseMethod(integration.memberId, method, until);
        outcomes[key] = { ok: false, retry: true, afterMs: until - Date.now(), error: failure };
      } else if (retry) {
        outcomes[key] = { ok: false, retry: true, afterMs: retry === 'auth' ? 0 : jitter(2_000), error: failure };
      } else {
        outcomes[key] = { ok: false, retry: false, error: failure };
      }
    }
    if (refreshNeeded) await this.refreshQuietly(integration);
    return { kind: 'done', value: outcomes };
  }

  /**
   * The second half of attachRecord's `uploadUrl` flow: the file as multipart field `fieldName`.
   * The URL must be on the portal itself (it carries the access token, so it goes nowhere else).
   */
  async uploadFile(integration: BitrixIntegration, uploadUrl: string, fieldName: string, filename: string, content: Buffer, options: AttemptOptions = {}): Promise<Outcome<unknown>> {
    let target: URL;
    try {
      target = new URL(uploadUrl);
    } catch {
      return this.permanent(integration, 'upload', { error: 'BAD_UPLOAD_URL', error_description: 'Bitrix24 sent an invalid uploadUrl' });
    }
    if (target.origin !== integration.domain) return this.permanent(integration, 'upload', { error: 'BAD_UPLOAD_URL', error_description: 'the uploadUrl is not on the portal' });
    const wait = await this.limiter.tryAcquire(integration.memberId, this.limiter.limitFor(integration.licenseFamily), options.lane ?? 'background');
    if (wait > 0) return { kind: 'retry', afterMs: wait, reason: 'rate_limit', message: `Bitrix24 portal ${integration.domain} is at its request rate limit`, sent: false };
    const form = new FormData();
    form.append(fieldName, new Blob([new Uint8Array(content)]), filename);
    let res: RawResponse;
    try {
      res = await this.post(target.toString(), form, REST_TIMEOUT_MS * 3, 'upload', options.signal);
    } catch (err) {
      this.logger.warn({ memberId: integration.memberId, err: transportError(err).message }, 'Bitrix24 did not answer an upload');
      return { kind: 'retry', afterMs: jitter(5_000), reason: 'transient', message: `Bitrix24 portal ${integration.domain} did not answer the upload`, sent: true };
    }
    const body = res.data;
    if (res.status < 300 && !(isObject(body) && 'error' in body)) return { kind: 'done', value: isObject(body) ? body.result : body };
    const error: RestFailure = isObject(body) && typeof body.error === 'string' ? { error: body.error, error_description: typeof body.error_description === 'string' ? body.error_description : '' } : { error: `HTTP_${res.status}`, error_description: '' };
    this.errors.inc({ method: 'upload', code: error.error || 'EMPTY' });
    if (res.status >= 500 || retryableCommand(error)) return { kind: 'retry', afterMs: jitter(5_000), reason: 'transient', message: `Bitrix24 failed the upload (${error.error})`, sent: true };
    return this.permanent(integration, 'upload', error, res.status);
  }

  /** Calls one REST method for an interactive endpoint. */
  async call<T>(integration: BitrixIntegration, method: string, params: object = {}): Promise<RestSuccess<T>> {
    return this.interactive(integration, method, () => this.attempt<T>(integration, method, params, { lane: 'priority' }));
  }

  /** Runs commands through `batch`, 50 per request, for an interactive endpoint; per-command errors are returned, not thrown. */
  async batch(integration: BitrixIntegration, commands: BatchCommands): Promise<BatchResult> {
    const out: BatchResult = { result: {}, errors: {}, total: {} };
    const entries = Object.entries(commands);
    for (let i = 0; i < entries.length; i += BATCH_LIMIT) {
      const cmd = Object.fromEntries(entries.slice(i, i + BATCH_LIMIT).map(([key, [method, params]]) => [key, `${method}?${stringify(params ?? {})}`]));
      const { result } = await this.call<BatchResponse>(integration, 'batch', { halt: 0, cmd });
      let errors = sections<RestFailure>(result.result_error);
      let results = sections(result.result);
      // A token that expired while the batch ran: refresh and run the refused commands once more.
      const refused = Object.keys(errors).filter((key) => REFRESH_ERRORS.has(errors[key].error));
      if (refused.length) {
        await this.refresh(integration, true);
        const again = await this.call<BatchResponse>(integration, 'batch', { halt: 0, cmd: Object.fromEntries(refused.map((key) => [key, cmd[key]])) });
        errors = { ...Object.fromEntries(Object.entries(errors).filter(([key]) => !refused.includes(key))), ...sections<RestFailure>(again.result.result_error) };
        results = { ...results, ...sections(again.result.result) };
      }
      Object.assign(out.result, results);
      Object.assign(out.errors, errors);
      Object.assign(out.total, sections(result.result_total));
    }
    return out;
  }

  /** Every row of a paged list method: the first page tells the total, the rest come in batches. */
  async listAll<T>(integration: BitrixIntegration, method: string, params: object = {}): Promise<T[]> {
    const first = await this.call<T[]>(integration, method, { ...params, start: 0 });
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

  /** Turns attempts into an interactive answer: waits for slots (bounded), retries transient failures a few times, throws coded errors. */
  private async interactive<T>(integration: BitrixIntegration, method: string, attempt: () => Promise<Outcome<T>>): Promise<T> {
    const deadline = Date.now() + INTERACTIVE_WAIT_MS;
    let transient = 0;
    for (;;) {
      const outcome = await attempt();
      switch (outcome.kind) {
        case 'done':
          return outcome.value;
        case 'not_connected':
          throw new AppError('INTEGRATION_NOT_CONNECTED', outcome.message);
        case 'reauth':
          throw new AppError('INTEGRATION_REAUTH_REQUIRED', outcome.message);
        case 'permanent':
          throw this.rejected(integration, method, 400, outcome.error);
        case 'retry': {
          const tooLong =
            Date.now() + outcome.afterMs > deadline ||
            (outcome.reason === 'operating_limit' && outcome.afterMs > INTERACTIVE_MAX_OPERATING_WAIT_MS) ||
            ((outcome.reason === 'transient' || outcome.reason === 'auth') && ++transient > INTERACTIVE_TRANSIENT_RETRIES);
          if (tooLong) throw this.unavailable(integration, method, outcome.message);
          await sleep(outcome.afterMs);
        }
      }
    }
  }

  /** One request (plus the refresh or redirect it may need on the way), classified. */
  private async send<T>(integration: BitrixIntegration, method: string, params: object, options: AttemptOptions): Promise<Outcome<RestSuccess<T>>> {
    const limit = this.limiter.limitFor(integration.licenseFamily);
    let refreshed = false;
    let announced = false;
    for (let redirects = 0; ; ) {
      const wait = await this.limiter.tryAcquire(integration.memberId, limit, options.lane ?? 'background');
      if (wait > 0) return { kind: 'retry', afterMs: wait, reason: 'rate_limit', message: `Bitrix24 portal ${integration.domain} is at its request rate limit`, sent: false };

      // The token is taken only now that the slot is ours: a wait in the queue cannot expire it.
      const token = await this.currentToken(integration);
      if (typeof token !== 'string') return token;

      const url = `${integration.domain}/rest/${method}`;
      if (!announced) await options.beforeSend?.();
      announced = true;
      let res: RawResponse;
      try {
        res = await this.post(url, { ...params, auth: token }, REST_TIMEOUT_MS, method, options.signal);
      } catch (err) {
        const cause = transportError(err);
        this.logger.warn({ memberId: integration.memberId, method, err: cause.message }, 'Bitrix24 did not answer');
        return { kind: 'retry', afterMs: jitter(2_000), reason: 'transient', message: `Bitrix24 portal ${integration.domain} did not answer (${method})`, sent: true };
      }

      if ([301, 302, 303, 307, 308].includes(res.status)) {
        if (++redirects > MAX_REDIRECTS) return this.permanent(integration, method, { error: 'REDIRECT_LOOP', error_description: 'the portal redirects in a loop' });
        const moved = await this.followRename(integration, url, res.location, method);
        if (!moved) return this.permanent(integration, method, { error: 'REDIRECT_REFUSED', error_description: integration.lastError ?? '' });
        continue;
      }
      const body = res.data;
      if (res.status < 300 && isObject(body) && 'result' in body && !('error' in body)) {
        const success = body as unknown as RestSuccess<T>;
        const resetAt = success.time?.operating_reset_at;
        if (typeof resetAt === 'number') this.operatingResetAt.set(`${integration.memberId}:${method.toLowerCase()}`, resetAt * 1000);
        return { kind: 'done', value: success };
      }

      const error: RestFailure =
        isObject(body) && typeof body.error === 'string'
          ? { error: body.error, error_description: typeof body.error_description === 'string' ? body.error_description : '' }
          : { error: `HTTP_${res.status}`, error_description: '' };
      this.errors.inc({ method, code: error.error || 'EMPTY' });

      if (REFRESH_ERRORS.has(error.error)) {
        // Refresh (or pick up the pair another process just rotated) and send once more.
        if (!refreshed) {
          refreshed = true;
          const outcome = await this.refreshOutcome(integration, true);
          if (outcome) return outcome;
          continue;
        }
        return { kind: 'retry', afterMs: jitter(1_000), reason: 'auth', message: `Bitrix24 refused a fresh access token (${error.error})`, sent: false };
      }
      if (error.error === 'QUERY_LIMIT_EXCEEDED') {
        await this.limiter.penalize(integration.memberId, limit, QUERY_LIMIT_PAUSE_MS);
        return { kind: 'retry', afterMs: jitter(QUERY_LIMIT_PAUSE_MS * 2), reason: 'rate_limit', message: `Bitrix24 portal ${integration.domain} answered QUERY_LIMIT_EXCEEDED`, sent: false };
      }
      if (error.error === 'OPERATION_TIME_LIMIT') {
        const until = this.operatingPauseEnd(integration, method);
        await this.limiter.pauseMethod(integration.memberId, method, until);
        return this.operatingRetry(method, until);
      }
      if (res.status >= 500 || retryableCommand(error) === 'transient') {
        return { kind: 'retry', afterMs: jitter(2_000), reason: 'transient', message: `Bitrix24 portal ${integration.domain} failed (${error.error || `HTTP ${res.status}`}, ${method})`, sent: true };
      }
      if (res.status === 401) {
        // NO_AUTH_FOUND and other refusals: not an expired token, so no refresh (SPEC §9); the tokens stay.
        await this.recordError(integration, `Bitrix24 refused the access token (${error.error}).`);
      }
      return this.permanent(integration, method, error, res.status);
    }
  }

  /** The usable access token (refreshed first when its stored expiry has passed), or the outcome that stops the request. */
  private async currentToken(integration: BitrixIntegration): Promise<string | Outcome<never>> {
    if (integration.status === 'connected' && integration.accessExpiresAt && integration.accessExpiresAt.getTime() <= Date.now()) {
      const outcome = await this.refreshOutcome(integration, false);
      if (outcome) return outcome;
    }
    if (integration.status === 'reauth_required') return { kind: 'reauth', message: 'Bitrix24 needs to be re-authorised: connect the portal again.' };
    if (integration.status !== 'connected' || !integration.accessToken) return { kind: 'not_connected', message: 'Bitrix24 is not connected.' };
    return this.secrets.decrypt(integration.accessToken);
  }

  /** Refreshes; null when the request may go on, else the outcome that ends it. */
  private async refreshOutcome(integration: BitrixIntegration, refusedByBitrix: boolean): Promise<Outcome<never> | null> {
    try {
      await this.refresh(integration, refusedByBitrix);
    } catch (err) {
      if (err instanceof AppError && err.code === 'BITRIX_NOT_CONFIGURED') throw err;
      return { kind: 'retry', afterMs: jitter(5_000), reason: 'auth', message: err instanceof AppError ? err.message : 'The Bitrix24 authorisation server failed.', sent: false };
    }
    if (integration.status === 'reauth_required') return { kind: 'reauth', message: 'Bitrix24 needs to be re-authorised: connect the portal again.' };
    if (integration.status !== 'connected') return { kind: 'not_connected', message: 'Bitrix24 is not connected.' };
    return null;
  }

  private async refreshQuietly(integration: BitrixIntegration): Promise<void> {
    try {
      await this.refresh(integration, true);
    } catch (err) {
      this.logger.warn({ memberId: integration.memberId, err: (err as Error).message }, 'Bitrix24 token refresh failed');
    }
  }

  /** Single-flight token refresh: one per portal in this process, and across processes by a lease on the row. */
  private async refresh(integration: BitrixIntegration, refusedByBitrix = false): Promise<void> {
    let pending = this.refreshing.get(integration.id);
    if (!pending) {
      pending = this.refreshSlots.run(() => this.refreshLeased(integration.id, integration.accessToken, refusedByBitrix)).finally(() => this.refreshing.delete(integration.id));
      this.refreshing.set(integration.id, pending);
    }
    Object.assign(integration, await pending);
  }

  /**
   * Refresh tokens are single use. Whoever holds the row's lease refreshes; the others wait for the
   * lease to go and re-read the row: if the pair was rotated meanwhile, it is used as is. The new
   * pair is committed before it is used. No transaction spans the OAuth request.
   */
  private async refreshLeased(id: number, usedToken: string | null, refusedByBitrix: boolean): Promise<BitrixIntegration> {
    const deadline = Date.now() + REFRESH_LEASE_MS + TOKEN_TIMEOUT_MS;
    for (;;) {
      const row = await this.integrations.findOneBy({ id });
      if (!row) throw new AppError('INTEGRATION_NOT_CONNECTED', 'Bitrix24 is not connected.');
      if (row.status !== 'connected' || !row.refreshToken) return row;
      const rotatedMeanwhile = row.accessToken !== usedToken;
      const stillValid = row.accessExpiresAt !== null && row.accessExpiresAt.getTime() > Date.now();
      if (rotatedMeanwhile && (stillValid || refusedByBitrix)) return row;

      const leased = await this.dataSource.query<unknown[]>(
        // (A CTE, because TypeORM answers a bare UPDATE … RETURNING with [rows, count].)
        `WITH leased AS (
           UPDATE bitrix_integrations SET refresh_lease_owner = $2, refresh_lease_until = clock_timestamp() + make_interval(secs => $3)
           WHERE id = $1 AND refresh_token = $4 AND (refresh_lease_until IS NULL OR refresh_lease_until < clock_timestamp())
           RETURNING id)
         SELECT id FROM leased`,
        [id, this.instanceId, REFRESH_LEASE_MS / 1000, row.refreshToken],
      );
      if (!leased.length) {
        if (Date.now() > deadline) throw new BitrixApiError('BITRIX_UNAVAILABLE', 'Another instance is still refreshing the Bitrix24 tokens.', { memberId: row.memberId, method: 'oauth.refresh_token' });
        await sleep(100);
        continue;
      }
      return this.refreshWithLease(row);
    }
  }

  private async refreshWithLease(row: BitrixIntegration): Promise<BitrixIntegration> {
    const release = { refreshLeaseOwner: null, refreshLeaseUntil: null };
    const mine = { id: row.id, refreshLeaseOwner: this.instanceId };
    let tokens: TokenResponse;
    try {
      tokens = await this.tokenRequest(row.oauthServer, { grant_type: 'refresh_token', refresh_token: this.secrets.decrypt(row.refreshToken as string) }, row.memberId);
    } catch (err) {
      if (err instanceof BitrixApiError && err.bitrixError === 'invalid_grant') {
        const reauth = { status: 'reauth_required' as const, accessToken: null, refreshToken: null, accessExpiresAt: null, lastError: 'Bitrix24 refused the refresh token (invalid_grant): reconnect the portal.' };
        await this.integrations.update(mine, { ...reauth, ...release });
        this.view.invalidate(row.companyId);
        this.logger.warn({ memberId: row.memberId }, 'Bitrix24 refresh token refused: the portal needs re-authorisation');
        return Object.assign(row, reauth);
      }
      await this.integrations.update(mine, release);
      if (err instanceof BitrixApiError && err.bitrixError === 'invalid_client') {
        // Our credentials, not the portal's tokens, are wrong: keep the tokens for when they are fixed.
        throw invalidClientError();
      }
      throw err;
    }
    const sealed = { ...this.sealTokens(tokens), lastError: null };
    await this.integrations.update(mine, { ...sealed, ...release });
    this.logger.log({ memberId: row.memberId }, 'Bitrix24 tokens refreshed');
    return Object.assign(row, sealed);
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

  /** A renamed portal answers 302 to its new address: follow it only to an allowed origin, and remember it. False when refused. */
  private async followRename(integration: BitrixIntegration, url: string, location: string | undefined, method: string): Promise<boolean> {
    let origin: string | null;
    try {
      origin = location ? new URL(location, url).origin : null;
    } catch {
      origin = null;
    }
    if (!origin || !this.config.allowedDomains.allows(origin)) {
      await this.recordError(integration, `Bitrix24 redirected ${method} to ${origin ?? 'an invalid address'}, which is not an allowed portal domain (BITRIX_ALLOWED_DOMAINS).`);
      return false;
    }
    this.logger.warn({ memberId: integration.memberId, from: integration.domain, to: origin }, 'Bitrix24 portal moved; following');
    integration.domain = origin;
    await this.integrations.update({ id: integration.id }, { domain: origin });
    return true;
  }

  /** Where a method's OPERATION_TIME_LIMIT pause ends: the last known budget reset if still ahead, else a minute from now. */
  private operatingPauseEnd(integration: BitrixIntegration, method: string): number {
    const known = this.operatingResetAt.get(`${integration.memberId}:${method.toLowerCase()}`) ?? 0;
    return known > Date.now() ? known : Date.now() + OPERATING_PAUSE_MS;
  }

  private operatingRetry(method: string, until: number): Outcome<never> {
    return { kind: 'retry', afterMs: Math.max(0, until - Date.now()), reason: 'operating_limit', message: `Bitrix24 limits ${method} until ${new Date(until).toISOString()} (OPERATION_TIME_LIMIT)`, sent: false };
  }

  private async post(url: string, body: object, timeout: number, method: string, signal?: AbortSignal): Promise<RawResponse> {
    const end = this.duration.startTimer({ method });
    try {
      const res = await firstValueFrom(
        this.http.post<unknown>(url, body, {
          timeout,
          signal,
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

  private permanent(integration: BitrixIntegration, method: string, error: RestFailure, status = 400): Outcome<never> {
    const description = error.error_description ? `: ${error.error_description}` : '';
    this.logger.warn({ memberId: integration.memberId, method, code: error.error, status }, 'Bitrix24 refused a request');
    return { kind: 'permanent', message: `Bitrix24 refused ${method} (${error.error || 'error'}${description}).`, error };
  }

  private unavailable(integration: BitrixIntegration, method: string, what: string): BitrixApiError {
    this.logger.warn({ memberId: integration.memberId, method }, what);
    return new BitrixApiError('BITRIX_UNAVAILABLE', `${what} (${method}).`, { memberId: integration.memberId, method });
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
