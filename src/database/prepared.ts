import type { Pool, PoolClient, QueryResultRow } from 'pg';
import type { DataSource } from 'typeorm';

/**
 * A statement on a hot path (every PBX event, every authenticated request), run as a named
 * prepared statement: PostgreSQL parses and plans it once per connection instead of on every
 * call, which was most of its work per ingested event. Its text must be constant.
 */
export interface Prepared {
  name: string;
  text: string;
}

export const prepared = (name: string, text: string): Prepared => ({ name, text });

/** What a prepared statement runs on: the pool, or a client inside a transaction. */
export type Queryable = Pick<Pool, 'query'> | Pick<PoolClient, 'query'>;

/** node-postgres's pool under TypeORM's data source (the same connections, the same limits). */
export function pgPool(dataSource: DataSource): Pool {
  return (dataSource.driver as unknown as { master: Pool }).master;
}

export async function run<T extends QueryResultRow>(db: Queryable, statement: Prepared, values: unknown[]): Promise<T[]> {
  const result = await db.query<T>({ name: statement.name, text: statement.text, values });
  return result.rows;
}

/**
 * Inside a transaction: `statement` with a generic plan, made on its first run on a connection and
 * reused, while the transaction's other statements keep the session's custom plans (schema.ts).
 * Only for statements whose every lookup is by a unique key, so that no plan can suit a small table
 * and then scan the grown one (PostgreSQL plans again when ANALYZE changes a table's statistics).
 * Planning the ingest's statements for every event was a fifth of PostgreSQL's CPU under a flood
 * of single events. The plan mode is switched around it in the same write, not awaited apart.
 */
export async function runGeneric<T extends QueryResultRow>(client: PoolClient, statement: Prepared, values: unknown[]): Promise<T[]> {
  const [, rows] = await Promise.all([
    client.query('SET LOCAL plan_cache_mode = force_generic_plan'),
    run<T>(client, statement, values),
    client.query('SET LOCAL plan_cache_mode TO DEFAULT'),
  ]);
  return rows;
}

/** What a transaction's work leaves for `inTransaction` to finish: its result, and its last statements, sent but not awaited. */
export interface TransactionWork<T> {
  result: T;
  queued: Promise<unknown>[];
}

/**
 * `work` inside one transaction on one pooled connection: committed when it and its queued
 * statements succeed, rolled back otherwise.
 *
 * Statements are queued on the connection rather than awaited one by one where nothing depends on
 * their answers: in pipeline mode (src/database/schema.ts) node-postgres sends them together, while
 * every await costs a round trip and a turn of the event loop, and under load that turn, not
 * PostgreSQL, is what holds a pooled connection. So BEGIN goes ahead of the work's first statement,
 * and COMMIT right behind the statements the work queued last. A queued statement that
 * fails aborts the transaction, and PostgreSQL then ends it at that COMMIT with a rollback.
 */
export async function inTransaction<T>(pool: Pool, work: (client: PoolClient) => Promise<TransactionWork<T>>): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    const begun = client.query('BEGIN');
    let done: TransactionWork<T>;
    try {
      [done] = await Promise.all([work(client), begun]);
    } catch (err) {
      await begun.catch(() => undefined);
      await client.query('ROLLBACK').catch((rollbackFailed: unknown) => {
        // The connection is unusable: the pool must not hand it out again.
        broken = rollbackFailed instanceof Error ? rollbackFailed : new Error('ROLLBACK failed');
      });
      throw err;
    }
    const settled = await Promise.allSettled([...done.queued, client.query('COMMIT')]);
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      // A failed COMMIT leaves the connection in doubt; a failed statement before it was rolled back by it.
      if (settled[done.queued.length].status === 'rejected') broken = failed.reason instanceof Error ? failed.reason : new Error('COMMIT failed');
      throw failed.reason;
    }
    return done.result;
  } finally {
    client.release(broken);
  }
}
