import { Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { Client, type ClientConfig } from 'pg';
import { DataSource, type DataSourceOptions } from 'typeorm';

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 15_000;
const CONNECT_TIMEOUT_MS = 5_000;

type PostgresOptions = Extract<DataSourceOptions, { type: 'postgres' }>;

/**
 * What listens to a channel (NOTIFY is sent at commit, never for a rolled-back write): an
 * in-process copy of database facts kept true by what triggers announce, which may serve entries
 * only between `resume` and `suspend`, or a worker woken by announced work, which polls outside
 * that window. Outside it announcements can be missed.
 */
export interface ChangeFeed {
  readonly channel: string;
  changed(payload: string): void;
  /** Announcements flow from now on: serve entries, starting empty (some may have been missed). */
  resume(): void;
  /** Announcements may be missed: read the database every time until `resume`. */
  suspend(): void;
}

/**
 * One dedicated PostgreSQL connection LISTENing on the channels of every registered feed, for
 * changes written by any instance, a CLI or a manual fix. On loss every feed is suspended; on each
 * (re)connect every feed resumes afresh. Reconnects with exponential backoff; closed with the
 * application. Feeds register in their constructors, before the first connect.
 */
@Injectable()
export class ChangeListener implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(ChangeListener.name);
  private readonly feeds = new Map<string, ChangeFeed>();
  private client: Client | null = null;
  private retry: NodeJS.Timeout | null = null;
  private failures = 0;
  private closed = false;

  constructor(private readonly dataSource: DataSource) {}

  register(feed: ChangeFeed): void {
    if (this.feeds.has(feed.channel)) throw new Error(`Two feeds on channel ${feed.channel}`);
    this.feeds.set(feed.channel, feed);
  }

  /** Waits for the first attempt, so the feeds are live when the first request comes; a failure only schedules a retry. */
  onApplicationBootstrap(): Promise<void> {
    return this.connect();
  }

  async onModuleDestroy(): Promise<void> {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    for (const feed of this.feeds.values()) feed.suspend();
    const client = this.client;
    this.client = null;
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new Client(listenerConfig(this.dataSource.options as PostgresOptions));
    this.client = client;
    client.on('notification', ({ channel, payload }) => this.feeds.get(channel)?.changed(payload ?? ''));
    client.on('error', (err) => this.lost(client, err));
    client.on('end', () => this.lost(client, new Error('Connection ended')));
    try {
      await client.connect();
      // Channel names are our own constants, never input.
      await client.query([...this.feeds.keys()].map((channel) => `LISTEN ${channel}`).join('; '));
    } catch (err) {
      this.lost(client, err as Error);
      return;
    }
    if (this.client !== client) return;
    if (this.failures) this.logger.log({ after: this.failures }, 'Listening for database changes again; in-process copies start afresh');
    this.failures = 0;
    for (const feed of this.feeds.values()) feed.resume();
  }

  /** Once per connection: suspend the feeds, drop the connection, try again later. */
  private lost(client: Client, err: Error): void {
    if (this.client !== client) return;
    this.client = null;
    for (const feed of this.feeds.values()) feed.suspend();
    client.removeAllListeners();
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    if (this.closed) return;
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** this.failures) * (0.8 + Math.random() * 0.4);
    this.failures++;
    this.logger.warn({ err: err.message, retryInMs: Math.round(delay), failures: this.failures }, 'Not listening for database changes; in-process copies read the database until reconnected');
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.connect();
    }, delay);
    this.retry.unref();
  }
}

/** The connection the TypeORM pool would open (PostgresDriver.createPool), as a single plain client. */
function listenerConfig(options: PostgresOptions): ClientConfig {
  const { max: _max, pipeline: _pipeline, Client: _client, ...extra } = (options.extra ?? {}) as Record<string, unknown>;
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
