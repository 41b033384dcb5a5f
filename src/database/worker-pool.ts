import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Pool } from 'pg';
import { DataSource } from 'typeorm';

/** The worker runs up to 32 portal rounds at once; each waits on one statement at a time, mostly on Bitrix24. */
const WORKER_CONNECTIONS = 10;

/**
 * Connections of their own for the call-sync worker and the Bitrix24 rate limiter it consults
 * before every send. Under a flood of PBX events every connection of the request pool is taken,
 * and a worker whose statements queued behind the requests' fell minutes behind; its own pool also
 * keeps the worker from taking connections the requests need. Same server and session settings as
 * TypeORM's pool; closed after the worker has stopped (it stops before shutdown).
 */
@Injectable()
export class WorkerPool implements OnApplicationShutdown {
  private readonly logger = new Logger(WorkerPool.name);
  readonly pool: Pool;

  constructor(dataSource: DataSource) {
    const options = dataSource.options as { url?: string; extra?: Record<string, unknown> };
    const extra = options.extra ?? {};
    this.pool = new Pool({ ...extra, connectionString: options.url, max: WORKER_CONNECTIONS, application_name: `${String(extra.application_name)} worker` });
    // An idle connection the server closed (a restart, a terminated backend) must not crash the process: the pool replaces it.
    this.pool.on('error', (err) => this.logger.warn({ err }, 'A worker database connection was closed'));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end();
  }
}
