import 'reflect-metadata';
import type { DataSource } from 'typeorm';
import { bootLog } from './src/common/boot-log';
import { loadConfig } from './src/config/config';
import { openDatabase } from './src/database/database';
import { MigratingDataSource } from './src/database/migrating-data-source';
import { dataSourceOptions } from './src/database/schema';

/**
 * The TypeORM CLI data source (`npm run typeorm -- migration:show|run|revert`), with the app's own
 * options. Without DATABASE_URL it reuses the embedded PostgreSQL of a running service, or starts
 * it for the command (stopped when the command exits).
 */
export default (async (): Promise<DataSource> => {
  const config = loadConfig();
  const database = await openDatabase(config, bootLog);
  // Migrating: `migration:run` and `migration:revert` take the same lock as a starting service.
  return new MigratingDataSource({ ...dataSourceOptions(database.url), migrationsRun: false });
})();
