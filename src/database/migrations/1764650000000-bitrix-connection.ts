import type { MigrationInterface, QueryRunner } from 'typeorm';

export class BitrixConnection1764650000000 implements MigrationInterface {
  name = 'BitrixConnection1764650000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE bitrix_integrations (
        id serial PRIMARY KEY,
        company_id int NOT NULL CONSTRAINT fk_bitrix_integrations_company REFERENCES companies (id) ON DELETE CASCADE,
        member_id varchar(64) NOT NULL,
        domain varchar(255) NOT NULL,
        status varchar(24) NOT NULL CONSTRAINT chk_bitrix_integrations_status CHECK (status IN ('disconnected', 'connected', 'reauth_required')),
        oauth_server varchar(255) NOT NULL,
        access_token text,
        refresh_token text,
        access_expires_at timestamptz,
        scope varchar(1000) NOT NULL DEFAULT '',
        owner_bitrix_user_id int,
        application_token text,
        handler_key text NOT NULL,
        handler_key_hash varchar(64) NOT NULL,
        license_family varchar(32),
        connected_at timestamptz,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT uq_bitrix_integrations_company UNIQUE (company_id),
        CONSTRAINT uq_bitrix_integrations_handler_key_hash UNIQUE (handler_key_hash)
      )`);
    // A portal belongs to at most one company at a time (while it is not disconnected).
    await q.query(`CREATE UNIQUE INDEX uq_bitrix_integrations_member ON bitrix_integrations (member_id) WHERE status <> 'disconnected'`);
    await q.query(`
      CREATE TABLE bitrix_oauth_states (
        id serial PRIMARY KEY,
        company_id int NOT NULL CONSTRAINT fk_bitrix_oauth_states_company REFERENCES companies (id) ON DELETE CASCADE,
        state_hash varchar(64) NOT NULL CONSTRAINT uq_bitrix_oauth_states_hash UNIQUE,
        domain varchar(255) NOT NULL,
        expires_at timestamptz NOT NULL,
        used_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE bitrix_settings (
        company_id int PRIMARY KEY CONSTRAINT fk_bitrix_settings_company REFERENCES companies (id) ON DELETE CASCADE,
        pipeline_id int,
        crm_create varchar(16) NOT NULL CONSTRAINT chk_bitrix_settings_crm_create CHECK (crm_create IN ('none', 'inbound', 'outbound', 'all')),
        crm_source varchar(100),
        show_card varchar(16) NOT NULL CONSTRAINT chk_bitrix_settings_show_card CHECK (show_card IN ('never', 'ringing', 'answered')),
        attach_records boolean NOT NULL,
        missed_call_task boolean NOT NULL,
        smart_redirect boolean NOT NULL,
        default_bitrix_user_id int,
        smart_redirect_key text NOT NULL,
        smart_redirect_key_hash varchar(64) NOT NULL CONSTRAINT uq_bitrix_settings_smart_redirect_key_hash UNIQUE,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE bitrix_bindings (
        company_id int NOT NULL CONSTRAINT fk_bitrix_bindings_company REFERENCES companies (id) ON DELETE CASCADE,
        sip_phone varchar(40) NOT NULL,
        bitrix_user_id int NOT NULL,
        CONSTRAINT pk_bitrix_bindings PRIMARY KEY (company_id, sip_phone),
        CONSTRAINT uq_bitrix_bindings_user UNIQUE (company_id, bitrix_user_id)
      )`);
    await q.query(`
      CREATE TABLE pbx_known_extensions (
        company_id int NOT NULL CONSTRAINT fk_pbx_known_extensions_company REFERENCES companies (id) ON DELETE CASCADE,
        sip_phone varchar(40) NOT NULL,
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT pk_pbx_known_extensions PRIMARY KEY (company_id, sip_phone)
      )`);
    await q.query(`
      CREATE TABLE bitrix_rate_buckets (
        member_id varchar(64) PRIMARY KEY,
        level double precision NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
        blocked_until timestamptz
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const table of ['bitrix_rate_buckets', 'pbx_known_extensions', 'bitrix_bindings', 'bitrix_settings', 'bitrix_oauth_states', 'bitrix_integrations']) {
      await q.query(`DROP TABLE ${table}`);
    }
  }
}
