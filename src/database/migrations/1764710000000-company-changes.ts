import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Every instance keeps an in-process view of each company's Smart Redirect facts (CompanyViewService).
 * Triggers announce a change to those facts on the `bitrix_company_changed` channel, with the
 * company id as payload (`*`: a TRUNCATE, everything changed). A trigger, not each writer, so no
 * write is missed — a manual fix, the CLI or code added later; NOTIFY is delivered at commit,
 * never for a rolled-back write, and identical payloads of one transaction arrive once.
 * Updates notify only when a column the view holds changes (keep in step with the view).
 */
export class CompanyChanges1764710000000 implements MigrationInterface {
  name = 'CompanyChanges1764710000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION notify_bitrix_company_changed() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          PERFORM pg_notify('bitrix_company_changed', '*');
          RETURN NULL;
        END IF;
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
          PERFORM pg_notify('bitrix_company_changed', OLD.company_id::text);
        END IF;
        IF TG_OP IN ('UPDATE', 'INSERT') THEN
          PERFORM pg_notify('bitrix_company_changed', NEW.company_id::text);
        END IF;
        RETURN NULL;
      END $$`);
    const watched: [table: string, columns: string[]][] = [
      ['bitrix_settings', ['company_id', 'smart_redirect', 'smart_redirect_key_hash']],
      ['bitrix_integrations', ['company_id', 'status', 'member_id']],
      ['bitrix_bindings', ['company_id', 'sip_phone', 'bitrix_user_id']],
    ];
    for (const [table, columns] of watched) {
      const changed = columns.map((c) => `OLD.${c} IS DISTINCT FROM NEW.${c}`).join(' OR ');
      await q.query(`CREATE TRIGGER ${table}_changed AFTER INSERT OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION notify_bitrix_company_changed()`);
      await q.query(`CREATE TRIGGER ${table}_updated AFTER UPDATE ON ${table} FOR EACH ROW WHEN (${changed}) EXECUTE FUNCTION notify_bitrix_company_changed()`);
      await q.query(`CREATE TRIGGER ${table}_truncated AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION notify_bitrix_company_changed()`);
    }
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ['bitrix_settings', 'bitrix_integrations', 'bitrix_bindings']) {
      for (const suffix of ['changed', 'updated', 'truncated']) await q.query(`DROP TRIGGER ${table}_${suffix} ON ${table}`);
    }
    await q.query(`DROP FUNCTION notify_bitrix_company_changed()`);
  }
}
