import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { DataSource } from 'typeorm';
import { MigratingDataSource } from '../../src/database/migrating-data-source';
import { dataSourceOptions } from '../../src/database/schema';
import { createTestApp, type TestApp } from './support/app';
import { databaseUrl, withAdminClient } from './support/database';

jest.setTimeout(60_000);

/** SPEC §9: several instances starting at once on one fresh database apply the migrations once, and none fails. */
describe('migrations on start-up', () => {
  const name = `utel_migrations_${randomBytes(6).toString('hex')}`;
  const url = databaseUrl(name);
  const started: DataSource[] = [];
  const apps: TestApp[] = [];

  beforeAll(() => withAdminClient((c) => c.query(`CREATE DATABASE "${name}"`)));
  afterAll(async () => {
    for (const app of apps) await app.app.close();
    for (const ds of started) if (ds.isInitialized) await ds.destroy();
    await withAdminClient((c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`));
  });

  /** The TypeORM CLI's data source (ormconfig.ts), as `migration:run` uses it, on the fresh database. */
  async function cliDataSource(): Promise<DataSource> {
    const saved = { ...process.env };
    Object.assign(process.env, { DATABASE_URL: url, DATA_DIR: mkdtempSync(join(tmpdir(), 'utel-cli-')), LOG_LEVEL: 'silent' });
    try {
      // Loaded only now, with this environment (it reads its configuration on import). Typed by hand:
      // the CommonJS interop of a dynamic import hides its default export from the type checker.
      const { default: pending } = (await import('../../ormconfig.js')) as unknown as { default: Promise<DataSource> };
      return await pending;
    } finally {
      process.env = saved;
    }
  }

  it('lets app instances, data sources and the CLI start together: each migration applied once, none fails', async () => {
    const cli = await cliDataSource();
    started.push(cli);
    const sources = Array.from({ length: 3 }, () => new MigratingDataSource(dataSourceOptions(url)));
    started.push(...sources);
    const results = await Promise.allSettled([
      ...sources.map((ds) => ds.initialize()),
      cli.initialize().then(() => cli.runMigrations({ transaction: 'each' })),
      ...Array.from({ length: 2 }, () => createTestApp({ databaseUrl: url }).then((app) => apps.push(app))),
    ]);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);

    const applied: { name: string }[] = await sources[0].query('SELECT name FROM migrations ORDER BY id');
    const expected = sources[0].migrations.map((m) => m.name);
    expect(applied.map((m) => m.name)).toEqual(expected);
    expect(expected.length).toBeGreaterThan(0);
    // And the app instances serve on the migrated schema.
    for (const app of apps) await app.http().get('/health').expect(200);
  });
});
