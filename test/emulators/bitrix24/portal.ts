import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { TelephonyState, type CallRecording, type CallStatistic, type CardEvent, type ExternalCall } from './calls';
import { atom, type Clock } from './clock';
import { handleControl } from './control';
import { CrmStore, type CrmType } from './crm-store';
import { restErrors, type RestError } from './errors';
import { deliverEvent, type EventDelivery, type EventOptions } from './event-delivery';
import { Faults } from './faults';
import { seedCrm, seedUsers, type CrmSeed } from './fixtures';
import { closeServer, escapeHtml, listen, parseRequest, readBody, redirect, sendHtml, sendJson, sleep } from './http';
import { OperatingMeter, type OperatingOptions } from './operating';
import { phoneDigits, stripLetters } from './phone';
import { ENTERPRISE_LIMIT, LeakyBucket, STANDARD_LIMIT, type RateLimit } from './rate-limiter';
import { handleRest, handleUpload, type RestReply } from './rest';
import type { TokenStore } from './tokens';
import type { EventBinding, RecordedRequest, Task, User } from './types';

/** What a portal needs from the emulator that hosts it. */
export interface PortalHost {
  readonly clientId: string;
  readonly tokens: TokenStore;
  readonly clock: Clock;
  readonly bindHost: string;
  readonly oauthUrl: string;
  /** Host of the OAuth server, as `server_domain` carries it. */
  readonly oauthDomain: string;
  readonly appRedirectUri: string;
  readonly defaultRateLimit: RateLimit | undefined;
  countRequest(): void;
}

export interface PortalOptions {
  port?: number;
  memberId?: string;
  /** `app.info` LICENSE_FAMILY; 'ent' selects the Enterprise bucket (5/s, 250). Default 'project'. */
  licenseFamily?: string;
  /** N realistic active employees (user 1 is an admin), or explicit users (missing fields filled). */
  users?: number | Partial<User>[];
  scopes?: string[];
  rateLimit?: RateLimit;
  /** The per-method operating budget (default 480 s per 10 min) and emulated per-call costs. */
  operating?: OperatingOptions;
  /** 'simple' = leadless CRM: auto-creation makes a contact and a deal instead of a lead. */
  crmMode?: 'classic' | 'simple';
  crm?: CrmSeed;
}

export interface AuthorizeRedirect {
  code: string;
  state: string;
  domain: string;
  member_id: string;
  scope: string;
  server_domain: string;
}

export interface ClickToCallOptions {
  userId: number;
  phoneNumber: string;
  lineNumber?: string;
  crmEntityType?: CrmType;
  crmEntityId?: number;
  callListId?: number;
  isMobile?: boolean;
}

const DEFAULT_SCOPES = ['crm', 'telephony', 'user_basic', 'placement'];
const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

/** One Bitrix24 portal with the app installed: its state and its own HTTP server. */
export class Portal {
  readonly memberId: string;
  readonly licenseFamily: string;
  readonly scopes: readonly string[];
  readonly crmMode: 'classic' | 'simple';
  readonly users: User[];
  readonly requests: RecordedRequest[] = [];
  readonly faults = new Faults();
  readonly limiter: LeakyBucket;
  readonly operating: OperatingMeter;
  readonly crm: CrmStore;
  readonly telephony: TelephonyState;
  readonly eventBindings: EventBinding[] = [];
  readonly eventDeliveries: EventDelivery[] = [];
  readonly tasks: Task[] = [];
  /** Exceptions that became 500 INTERNAL_SERVER_ERROR: emulator bugs, kept for debugging. */
  readonly internalErrors: unknown[] = [];
  /** The app's secret, sent only inside events. */
  applicationToken = hex(16);
  installed = true;
  origin = '';
  domain = '';
  queryLimitExceeded = 0;
  private httpRequests = 0;
  private server: Server | undefined;
  private readonly retired: Server[] = [];

  constructor(
    readonly host: PortalHost,
    options: PortalOptions = {},
  ) {
    this.memberId = options.memberId ?? hex(16);
    this.licenseFamily = options.licenseFamily ?? 'project';
    this.scopes = options.scopes ?? DEFAULT_SCOPES;
    this.crmMode = options.crmMode ?? 'classic';
    this.users = seedUsers(options.users ?? 10);
    // Explicit per-portal limit, else the emulator-wide one, else the plan's (Enterprise 5/250).
    const limit =
      options.rateLimit ?? host.defaultRateLimit ?? (this.licenseFamily === 'ent' ? ENTERPRISE_LIMIT : STANDARD_LIMIT);
    this.limiter = new LeakyBucket({ ...limit }, host.clock);
    this.operating = new OperatingMeter(options.operating);
    this.crm = new CrmStore(host.clock);
    this.telephony = new TelephonyState(this);
    if (options.crm) seedCrm(this.crm, options.crm, this.users);
  }

  get clock(): Clock {
    return this.host.clock;
  }

  get externalCalls(): ExternalCall[] {
    return this.telephony.calls;
  }

  get callStatistics(): CallStatistic[] {
    return this.telephony.statistics;
  }

  get callRecordings(): CallRecording[] {
    return this.telephony.recordings;
  }

  /** Card show/hide log (register SHOW, show, hide, and the automatic hide on finish). */
  get shownCards(): CardEvent[] {
    return this.telephony.cards;
  }

  get stats(): { queryLimitExceeded: number; maxBucketLevel: number; requests: number } {
    return { queryLimitExceeded: this.queryLimitExceeded, maxBucketLevel: this.limiter.maxLevel, requests: this.httpRequests };
  }

  async listen(port = 0): Promise<void> {
    const server = createServer((req, res) => void this.onRequest(server, req, res));
    const bound = await listen(server, port, this.host.bindHost);
    this.server = server;
    this.domain = `${this.host.bindHost}:${bound}`;
    this.origin = `http://${this.domain}`;
  }

  /** What the user's approval on `/oauth/authorize/` redirects with; issues a 30-second code. */
  authorize(options: { userId?: number; state?: string } = {}): AuthorizeRedirect {
    if (!this.installed) throw new Error('The application is not installed on this portal');
    const userId = options.userId ?? 1;
    if (!this.users.some((user) => user.ID === userId && user.ACTIVE)) throw new Error(`No active user ${userId}`);
    return {
      code: this.host.tokens.issueCode({ memberId: this.memberId, userId, scope: this.scopes }),
      state: options.state ?? '',
      domain: this.domain,
      member_id: this.memberId,
      scope: this.scopes.join(','),
      server_domain: this.host.oauthDomain,
    };
  }

  expireAccessTokens(): void {
    this.host.tokens.expireAccess(this.memberId);
  }

  /**
   * Makes `count` employees active: new ones join with the next IDs and free extensions, or the
   * last active ones are dismissed (ACTIVE false, as Bitrix24 keeps dismissed users).
   */
  setEmployeeCount(count: number): void {
    if (!Number.isInteger(count) || count < 1) throw new Error('The employee count must be a positive integer');
    const active = this.users.filter((user) => user.ACTIVE);
    for (const user of active.slice(count)) user.ACTIVE = false;
    const missing = count - active.length;
    if (missing <= 0) return;
    const seeded = seedUsers([...this.users, ...Array.from({ length: missing }, () => ({}))]);
    this.users.push(...seeded.slice(this.users.length));
  }

  /** The app is uninstalled: every token dies and the bindings go (REST 401, refresh invalid_grant). */
  revokeApp(): void {
    this.installed = false;
    this.host.tokens.revoke(this.memberId);
    this.eventBindings.length = 0;
  }

  /** Uninstall as Bitrix24 does it: ONAPPUNINSTALL to the bound handlers first, then revoke. */
  async uninstallApp(options: { clean?: boolean } = {}): Promise<EventDelivery[]> {
    const deliveries = await this.sendEvent('ONAPPUNINSTALL', { LANGUAGE_ID: 'ru', CLEAN: options.clean ? 1 : 0 });
    this.revokeApp();
    return deliveries;
  }

  /** Installs the app again (after revokeApp); a reinstall gets a new application_token. */
  reinstallApp(): void {
    this.installed = true;
    this.applicationToken = hex(16);
  }

  /** Moves the portal to a new origin; the old one answers 302 to the same path on the new one. */
  async rename(port = 0): Promise<string> {
    const previous = this.server;
    await this.listen(port);
    if (previous) this.retired.push(previous);
    return this.origin;
  }

  /** Delivers `event` to every online binding for it; returns each handler's answer. */
  async sendEvent(event: string, data: Record<string, unknown>, options: EventOptions = {}): Promise<EventDelivery[]> {
    const name = event.toUpperCase();
    const targets = this.eventBindings.filter(
      (b) => b.event === name && b.offline === 0 && (!options.handler || b.handler === options.handler),
    );
    return Promise.all(targets.map((b) => this.deliver(b.handler, name, data, b.id, b.auth_type, options)));
  }

  /** Posts an event-shaped body to any URL (an install callback or an outgoing webhook). */
  postEvent(url: string, event: string, data: Record<string, unknown>, options: EventOptions = {}): Promise<EventDelivery> {
    return this.deliver(url, event.toUpperCase(), data, 0, 0, options);
  }

  /**
   * A user clicks a number in the CRM: Bitrix24 registers an outgoing call itself (TYPE 1, CRM
   * auto-creation per the line) and then sends ONEXTERNALCALLSTART carrying its CALL_ID.
   */
  async clickToCall(options: ClickToCallOptions): Promise<{ callId: string; deliveries: EventDelivery[] }> {
    const user = this.users.find((candidate) => candidate.ID === options.userId && candidate.ACTIVE);
    if (!user) throw new Error(`No active user ${options.userId}`);
    const now = this.clock.now();
    const line = this.telephony.lines.find((candidate) => candidate.NUMBER === options.lineNumber);
    const crmEntity =
      options.crmEntityType && options.crmEntityId ? { type: options.crmEntityType, id: options.crmEntityId } : undefined;
    const registered = this.telephony.register({
      user,
      phone: stripLetters(options.phoneNumber),
      type: 1,
      startedAt: now,
      startDate: atom(now),
      crmCreate: line?.CRM_AUTO_CREATE !== 'N',
      crmEntity,
      show: true,
      lineNumber: options.lineNumber,
      callListId: options.callListId,
    });
    const deliveries = await this.sendEvent(
      'ONEXTERNALCALLSTART',
      {
        PHONE_NUMBER: options.phoneNumber,
        PHONE_NUMBER_INTERNATIONAL: `+${phoneDigits(options.phoneNumber)}`,
        EXTENSION: '',
        USER_ID: user.ID,
        CALL_LIST_ID: options.callListId ?? 0,
        LINE_NUMBER: options.lineNumber ?? '',
        IS_MOBILE: options.isMobile ? 1 : 0,
        CALL_ID: registered.CALL_ID,
        CRM_ENTITY_TYPE: registered.CRM_ENTITY_TYPE || 'LEAD',
        CRM_ENTITY_ID: registered.CRM_ENTITY_ID ?? 0,
      },
      { userId: user.ID },
    );
    return { callId: registered.CALL_ID, deliveries };
  }

  internalError(error: unknown): RestError {
    this.internalErrors.push(error);
    return restErrors.internal();
  }

  async close(): Promise<void> {
    const servers = this.server ? [this.server, ...this.retired] : this.retired;
    await Promise.all(servers.map(closeServer));
  }

  private async deliver(
    url: string,
    event: string,
    data: Record<string, unknown>,
    bindingId: number,
    authType: number,
    options: EventOptions,
  ): Promise<EventDelivery> {
    const delivery = await deliverEvent(this, url, event, data, bindingId, authType, options);
    this.eventDeliveries.push(delivery);
    return delivery;
  }

  private async onRequest(server: Server, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://portal');
    // The web server merges repeated slashes (nginx `merge_slashes`): `/rest//profile` is `profile`,
    // which is what b24jssdk sends for a client_endpoint ending in `/rest/`.
    url.pathname = url.pathname.replace(/\/{2,}/g, '/');
    try {
      // The standalone's control API is not Bitrix24: no faults, no counting, no recording.
      if (url.pathname.startsWith('/_emulator/') && server === this.server) {
        const { params } = parseRequest(url.search, req.headers['content-type'], await readBody(req));
        return await handleControl(this, url.pathname, params, res);
      }
      this.host.countRequest();
      this.httpRequests += 1;
      if (server !== this.server) return redirect(res, `${this.origin}${url.pathname}${url.search}`);
      if (this.faults.resetConnections) {
        req.socket.destroy();
        return;
      }
      if (this.faults.delayMs > 0) await sleep(this.faults.delayMs);
      const body = await readBody(req);
      const at = new Date(this.clock.now());
      const record = (reply: Pick<RestReply, 'method' | 'params' | 'auth' | 'status' | 'error'>): void => {
        this.requests.push({ ...reply, httpMethod: req.method ?? 'GET', path: url.pathname, at });
      };
      const rest = /^\/rest\/(.+?)(?:\.json)?\/?$/i.exec(url.pathname);
      if (this.faults.outage) {
        const error = restErrors.internal();
        sendJson(res, error.status, error.toJSON());
        return record({ method: rest?.[1]?.toLowerCase() ?? url.pathname, params: {}, status: 500, error: error.code });
      }
      if (/^\/oauth\/authorize\/?$/.test(url.pathname)) return record(this.authorizePage(url, res));
      if (!rest) return sendHtml(res, 404, '<h1>404 Not Found</h1>');
      const { params, files } = parseRequest(url.search, req.headers['content-type'], body);
      const method = rest[1].toLowerCase();
      // `/rest/<user>/<code>/<method>` is an incoming webhook; the emulator knows none.
      const reply =
        method === 'upload'
          ? handleUpload(this, params, files)
          : method.includes('/')
            ? { method, params, status: 401, body: restErrors.noAuth().toJSON(), error: 'NO_AUTH_FOUND' }
            : await handleRest(this, method, params);
      sendJson(res, reply.status, reply.body);
      record(reply);
    } catch (error) {
      const failure = this.internalError(error);
      if (!res.headersSent) sendJson(res, failure.status, failure.toJSON());
    }
  }

  /** The consent step: redirect to the app with a code, or an error page and no redirect. */
  private authorizePage(url: URL, res: ServerResponse): Pick<RestReply, 'method' | 'params' | 'status'> {
    const params = Object.fromEntries(url.searchParams);
    const fail = (message: string) => {
      sendHtml(res, 400, `<html><body><h1>Authorization error</h1><p>${escapeHtml(message)}</p></body></html>`);
      return { method: 'oauth/authorize', params, status: 400 };
    };
    if (params.client_id !== this.host.clientId) return fail('Application not found');
    if (!this.installed) return fail('Application is not installed');
    const userId = Number(params.user_id ?? 1);
    if (!this.users.some((user) => user.ID === userId && user.ACTIVE)) return fail('User is not active');
    const target = new URL(this.host.appRedirectUri);
    for (const [key, value] of Object.entries(this.authorize({ userId, state: params.state }))) {
      target.searchParams.set(key, value);
    }
    redirect(res, target.toString());
    return { method: 'oauth/authorize', params, status: 302 };
  }
}
