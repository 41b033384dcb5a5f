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

/** `work` inside one transaction on one pooled connection: committed when it resolves, rolled back when it throws. */
export async function inTransaction<T>(dataSource: DataSource, work: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pgPool(dataSource).connect();
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackFailed: unknown) => {
      // The connection is unusable: the pool must not hand it out again.
      broken = rollbackFailed instanceof Error ? rollbackFailed : new Error('ROLLBACK failed');
    });
    throw err;
  } finally {
    client.release(broken);
  }
}
