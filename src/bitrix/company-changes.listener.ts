import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { Client, type ClientConfig } from 'pg';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { CompanyViewService } from './company-view.service';

/** Announced by the triggers of migration CompanyChanges1764710000000: a company id, or `*` for all. */
export const COMPANY_CHANGES_CHANNEL = 'bitrix_company_changed';

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 15_000;
const CONNECT_TIMEOUT_MS = 5_000;

type PostgresOptions = Extract<DataSourceOptions, { type: 'postgres' }>;

/**
 * Keeps one dedicated PostgreSQL connection LISTENing for changes to the companies' Smart Redirect
 * facts, written by any instance, and drops them from this process's CompanyViewService. The view
 * serves entries only while this connection listens: on loss it falls back to the database, and on
 * every (re)connect it starts empty, since notifications may have been missed in between.
 * Reconnects with exponential backoff; closed with the application.
 */
@Injectable()
export class CompanyChangesListener implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(CompanyChangesListener.name);
  private client: Client | null = null;
  private retry: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly view: CompanyViewService,
  ) {}

  /** Waits for the first attempt, so the view is live when the first request comes; a failure only schedules a retry. */
  onApplicationBootstrap(): Promise<void> {
    return this.connect();
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.view.suspend();
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new Client(listenerConfig(this.dataSource.options as PostgresOptions));
    this.client = client;
    client.on('notification', ({ payload }) => this.changed(payload));
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('Connection ended')));
    try {
      await client.connect();
      await client.query(`LISTEN ${COMPANY_CHANGES_CHANNEL}`);
    } catch (err) {
      this.lost(client, err as Error);
      return;
    }
    if (this.client !== client) return;
    if (this.failures) this.logger.log({ after: this.failures }, 'Listening for company changes again; the company view starts afresh');
    this.failures = 0;
    this.view.resume();
  }

  private changed(payload: string | undefined): void {
    const companyId = Number(payload);
    if (Number.isSafeInteger(companyId) && companyId > 0) this.view.invalidate(companyId);
    else this.view.invalidateAll();
  }

  /** Once per connection: stop serving the view, drop the connection, try again later. */
  private lost(client: Client, err: Error): void {
    if (this.client !== client) return;
    this.client = null;
    this.view.suspend();
    client.removeAllListeners();
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    if (this.closed) return;
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.failures) * (0.8 + Math.random() * 0.4);
    this.failures++;
    this.logger.warn({ err: err.message, retryInMs: Math.round(delay), failures: this.failures }, 'Not listening for company changes; the company view reads the database until reconnected');
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.connect();
    }, delay);
    this.retry.unref();
  }
}

/** The connection the TypeORM pool would open (PostgresDriver.createPool), as a single client. */
function listenerConfig(options: PostgresOptions): ClientConfig {
  const { max: _max, ...extra } = (options.extra ?? {}) as Record<string, unknown>;
  return {
    connectionString: options.url,
    host: options.host,
    port: options.port,
    user: options.username,
    password: options.password,
    database: options.database,
    ssl: options.ssl as ClientConfig['ssl'],
    connectionTimeoutMillis: options.connectTimeoutMS ?? CONNECT_TIMEOUT_MS,
    application_name: options.applicationName,
    ...extra,
    keepAlive: true,
  };
}
