import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every instance keeps the principals of recently used bearer tokens in memory (TokenCache).
 * Triggers announce on `auth_changed` whatever could change what a token resolves to: a token
 * revoked or altered (`t:<id>`), a user deleted or moved to another role or company (`u:<id>`), a
 * table truncated (`*`). A trigger, not each writer: a Laravel application sharing the Sanctum
 * table, the CLI and manual fixes are covered too. New tokens and `last_used_at` need no notice.
 */
export class AuthChanges1765200000000 implements MigrationInterface {
  name = 'AuthChanges1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION notify_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          PERFORM pg_notify('auth_changed', '*');
        ELSE
          PERFORM pg_notify('auth_changed', TG_ARGV[0] || OLD.id::text);
        END IF;
        RETURN NULL;
      END $$`);
    const watched: [table: string, prefix: string, columns: string[]][] = [
      ['personal_access_tokens', 't:', ['id', 'token', 'tokenable_type', 'tokenable_id', 'expires_at']],
      ['users', 'u:', ['id', 'company_id', 'role']],
    ];
    for (const [table, prefix, columns] of watched) {
      const changed = columns.map((c) => `OLD.${c} IS DISTINCT FROM NEW.${c}`).join(' OR ');
      await q.query(`CREATE TRIGGER ${table}_auth_deleted AFTER DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION notify_auth_changed('${prefix}')`);
      await q.query(`CREATE TRIGGER ${table}_auth_updated AFTER UPDATE ON ${table} FOR EACH ROW WHEN (${changed}) EXECUTE FUNCTION notify_auth_changed('${prefix}')`);
      await q.query(`CREATE TRIGGER ${table}_auth_truncated AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION notify_auth_changed()`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ['personal_access_tokens', 'users']) {
      for (const suffix of ['deleted', 'updated', 'truncated']) await q.query(`DROP TRIGGER ${table}_auth_${suffix} ON ${table}`);
    }
    await q.query(`DROP FUNCTION notify_auth_changed()`);
  }
}
