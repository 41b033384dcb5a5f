import type { Config } from '../config/config';
import { startEmbeddedPostgres, type EmbeddedPostgresOptions } from './embedded-postgres';

export interface Database {
  url: string;
  /** Stops the embedded PostgreSQL this process started; a no-op for an external server. */
  close(): Promise<void>;
}

/** DATABASE_URL when set; otherwise the embedded PostgreSQL under DATA_DIR (started, or reused if running). */
export async function openDatabase(config: Config, log: EmbeddedPostgresOptions['log']): Promise<Database> {
  if (config.database.url) return { url: config.database.url, close: () => Promise.resolve() };
  const pg = await startEmbeddedPostgres({ dataDir: config.app.dataDir, database: 'app', log });
  return { url: pg.url, close: () => pg.stop() };
}
