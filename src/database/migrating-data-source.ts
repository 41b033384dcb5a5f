import { DataSource, type Migration } from 'typeorm';

/** The session-level advisory lock held while migrations run or are reverted. */
const MIGRATION_LOCK = 4_242_000;

type MigrationOptions = Parameters<DataSource['runMigrations']>[0];

/**
 * The service's DataSource: migrations run under a PostgreSQL advisory lock, so instances starting
 * together on one database apply each migration once. The first runs them; the others wait, then
 * find nothing pending. It covers both paths, since `initialize()` with `migrationsRun` and the
 * TypeORM CLI's `migration:run`/`migration:revert` all go through these methods.
 */
export class MigratingDataSource extends DataSource {
  override runMigrations(options?: MigrationOptions): Promise<Migration[]> {
    return this.locked(() => super.runMigrations(options));
  }

  override undoLastMigration(options?: Parameters<DataSource['undoLastMigration']>[0]): Promise<void> {
    return this.locked(() => super.undoLastMigration(options));
  }

  /** The lock lives on a connection of its own for the whole run (a session lock ends with its session). */
  private async locked<T>(work: () => Promise<T>): Promise<T> {
    const runner = this.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
      try {
        return await work();
      } finally {
        await runner.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
      }
    } finally {
      await runner.release();
    }
  }
}
