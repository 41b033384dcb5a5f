import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DataSource } from 'typeorm';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/database/embedded-postgres';
import { dataSourceOptions } from '../../src/database/schema';
import { databaseUrl, withAdminClient } from './support/database';

declare global {
  var __EMBEDDED_PG__: EmbeddedPostgres | undefined;
}

/**
 * One PostgreSQL for the whole e2e run: the server in DATABASE_URL when set (CI runs the suite a
 * second time against the machine's own server), else an embedded one. The real migrations build a
 * template database; each app instance in a spec gets a copy of it.
 */
export default async function globalSetup(): Promise<void> {
  let adminUrl = process.env.DATABASE_URL;
  if (!adminUrl) {
    const dataDir = join(tmpdir(), `utel-bitrix24-jest-${process.getuid?.() ?? 'user'}`);
    mkdirSync(dataDir, { recursive: true });
    const pg = await startEmbeddedPostgres({ dataDir, database: 'postgres', log: () => undefined });
    globalThis.__EMBEDDED_PG__ = pg;
    adminUrl = pg.url;
  }
  process.env.TEST_DATABASE_ADMIN_URL = adminUrl;
  const template = `utel_test_template_${process.pid}`;
  process.env.TEST_DATABASE_TEMPLATE = template;

  await withAdminClient(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`);
    await c.query(`CREATE DATABASE "${template}"`);
  });
  const dataSource = new DataSource({ ...dataSourceOptions(databaseUrl(template)), migrationsRun: false });
  await dataSource.initialize();
  try {
    await dataSource.runMigrations({ transaction: 'each' });
  } finally {
    await dataSource.destroy();
  }
}
