import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Ingest no longer bumps a per-company counter on every request (it serialised a company's
 * requests on one row): a claim consumes `due_at`, and work stored during a round sets it again.
 */
export class PortalDueWithoutWakeSeq1765100000000 implements MigrationInterface {
  name = 'PortalDueWithoutWakeSeq1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE call_sync_portals DROP COLUMN wake_seq`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE call_sync_portals ADD COLUMN wake_seq bigint NOT NULL DEFAULT 0`);
  }
}
