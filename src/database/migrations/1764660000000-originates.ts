import type { MigrationInterface, QueryRunner } from 'typeorm';

export class Originates1764660000000 implements MigrationInterface {
  name = 'Originates1764660000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE pbx_originates (
        id serial PRIMARY KEY,
        company_id int NOT NULL CONSTRAINT fk_pbx_originates_company REFERENCES companies (id) ON DELETE CASCADE,
        sip_phone varchar(40) NOT NULL,
        phone_number varchar(32) NOT NULL,
        bitrix_call_id varchar(100),
        bitrix_user_id int,
        source varchar(16) NOT NULL CONSTRAINT chk_pbx_originates_source CHECK (source IN ('bitrix', 'api', 'callback')),
        status varchar(16) NOT NULL CONSTRAINT chk_pbx_originates_status CHECK (status IN ('dialing', 'failed')),
        error text,
        matched_call_id bigint,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    // The 2-minute match of SPEC §6 looks for the oldest unmatched originate of an operator and number.
    await q.query(`CREATE INDEX ix_pbx_originates_match ON pbx_originates (company_id, sip_phone, phone_number, created_at) WHERE matched_call_id IS NULL`);
    await q.query(`CREATE INDEX ix_pbx_originates_bitrix_call ON pbx_originates (company_id, bitrix_call_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE pbx_originates');
  }
}
