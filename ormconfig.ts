import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { bootLog } from './src/common/boot-log';
import { loadConfig } from './src/config/config';
import { openDatabase } from './src/database/database';
import { dataSourceOptions } from './src/database/schema';

/**
 * The TypeORM CLI data source (`npm run typeorm -- migration:show|run|revert`), with the app's own
 * options. Without DATABASE_URL it reuses the embedded PostgreSQL of a running service, or starts
 * it for the command (stopped when the command exits).
 */
export default (async (): Promise<DataSource> => {
  const config = loadConfig();
  const database = await openDatabase(config, bootLog);
  return new DataSource({ ...dataSourceOptions(database.url), migrationsRun: false });
})();
