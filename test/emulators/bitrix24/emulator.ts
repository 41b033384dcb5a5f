import { createServer } from 'node:http';
import { Clock } from './clock';
import { Faults } from './faults';
import { closeServer, listen } from './http';
import { handleOAuth, type OAuthHost } from './oauth-server';
import { Portal, type PortalHost, type PortalOptions } from './portal';
import type { RateLimit } from './rate-limiter';
import { TokenStore } from './tokens';
import type { OAuthRecordedRequest } from './types';

export interface EmulatorOptions {
  clientId?: string;
  clientSecret?: string;
  /** Access-token lifetime; default 3600. */
  accessTokenTtlSec?: number;
  /** Authorization-code lifetime; default 30. */
  codeTtlSec?: number;
  /** Refresh-token lifetime; default 180 days. */
  refreshTokenTtlSec?: number;
  /** Every portal's bucket unless the portal sets its own; default by plan (2/50, Enterprise 5/250). */
  rateLimit?: RateLimit;
  /** Where `/oauth/authorize/` redirects; default `${oauthUrl}/app/callback` (shows the query as JSON). */
  appRedirectUri?: string;
  oauthPort?: number;
  host?: string;
}

/**
 * A Bitrix24 cloud in a box: one authorization server (oauth.bitrix.info) and any number of
 * portals, each on its own port, with one local app installed.
 */
export class Bitrix24Emulator implements PortalHost, OAuthHost {
  readonly clientId: string;
  readonly clientSecret: string;
  readonly clock = new Clock();
  readonly tokens: TokenStore;
  /** Faults of the authorization server (`failNext` keys are grant types). */
  readonly faults = new Faults();
  readonly oauthRequests: OAuthRecordedRequest[] = [];
  readonly portals: Portal[] = [];
  readonly bindHost: string;
  readonly defaultRateLimit: RateLimit | undefined;
  private readonly server = createServer((req, res) => void handleOAuth(this, req, res));
  private port = 0;
  private requests = 0;

  constructor(private readonly options: EmulatorOptions = {}) {
    this.clientId = options.clientId ?? 'local.emulator.app';
    this.clientSecret = options.clientSecret ?? 'Kx7vQ2mN9pL4rT8wZ1yB6cF3hJ5dS0aE2gU7iO9nM4';
    this.bindHost = options.host ?? '127.0.0.1';
    this.defaultRateLimit = options.rateLimit;
    this.tokens = new TokenStore(this.clock, {
      accessSec: options.accessTokenTtlSec ?? 3600,
      codeSec: options.codeTtlSec ?? 30,
      refreshSec: options.refreshTokenTtlSec ?? 180 * 24 * 3600,
    });
  }

  get oauthUrl(): string {
    return `http://${this.oauthDomain}`;
  }

  get oauthDomain(): string {
    return `${this.bindHost}:${this.port}`;
  }

  get appRedirectUri(): string {
    return this.options.appRedirectUri ?? `${this.oauthUrl}/app/callback`;
  }

  async start(): Promise<void> {
    this.port = await listen(this.server, this.options.oauthPort ?? 0, this.bindHost);
  }

  async addPortal(options: PortalOptions = {}): Promise<Portal> {
    const portal = new Portal(this, options);
    await portal.listen(options.port ?? 0);
    this.portals.push(portal);
    return portal;
  }

  /** HTTP requests received by any server of the emulator (for "nothing was called" assertions). */
  requestCount(): number {
    return this.requests;
  }

  countRequest(): void {
    this.requests += 1;
  }

  /** Moves emulator time forward: tokens, codes, the 30-minute rule and the operating window see it; the bucket drains. */
  advanceTime(seconds: number): void {
    this.clock.advance(seconds);
  }

  async stop(): Promise<void> {
    await Promise.all([closeServer(this.server), ...this.portals.map((portal) => portal.close())]);
  }
}
