import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Ingest no longer bumps a per-company counter on every request (it serialised a company's
 * requests on one row): a claim consumes `due_at`, and work stored during a round sets it again.
 * `throttled_until` (the background lane has no room till then) keeps background work from
 * waking a portal that cannot send it. `ix_calls_live` finds calls whose end never came.
 */
export class CallSyncScheduling1765100000000 implements MigrationInterface {
  name = 'CallSyncScheduling1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE call_sync_portals DROP COLUMN wake_seq, ADD COLUMN throttled_until timestamptz`);
    // Calls still live (few rows: the index stays small): a portal's ringing calls before its backlog, and calls whose end never came.
    await q.query(`CREATE INDEX ix_calls_live ON calls (company_id, created_at) WHERE ended_at IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX ix_calls_live`);
    await q.query(`ALTER TABLE call_sync_portals DROP COLUMN throttled_until, ADD COLUMN wake_seq bigint NOT NULL DEFAULT 0`);
  }
}
