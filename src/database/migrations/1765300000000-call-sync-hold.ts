import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * `held_until`: not even the priority lane has room till then (the portal's rate limit is spent).
 * A ringing call stored meanwhile no longer wakes the portal at once only for the round to find
 * nothing can be sent: under steady ringing traffic that was a round per request.
 */
export class CallSyncHold1765300000000 implements MigrationInterface {
  name = 'CallSyncHold1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE call_sync_portals ADD COLUMN held_until timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE call_sync_portals DROP COLUMN held_until`);
  }
}
