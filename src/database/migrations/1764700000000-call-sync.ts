import type { MigrationInterface, QueryRunner } from 'typeorm';

export class CallSync1764700000000 implements MigrationInterface {
  name = 'CallSync1764700000000';

  async up(q: QueryRunner): Promise<void> {
    // One row per physical PBX call: its state so far and how far it is mirrored into Bitrix24.
    // The row is the outbox: the worker derives the next Bitrix24 steps from it.
    await q.query(`
      CREATE TABLE calls (
        id bigserial PRIMARY KEY,
        company_id int NOT NULL CONSTRAINT fk_calls_company REFERENCES companies (id) ON DELETE CASCADE,
        call_id varchar(128) NOT NULL,
        direction varchar(8) NOT NULL CONSTRAINT chk_calls_direction CHECK (direction IN ('inbound', 'outbound')),
        phone_number varchar(32) NOT NULL,
        phone_raw varchar(64) NOT NULL,
        line_number varchar(64),
        status varchar(16) NOT NULL CONSTRAINT chk_calls_status CHECK (status IN ('ringing', 'answered', 'no_answer', 'busy', 'failed', 'cancelled')),
        sync_state varchar(16) NOT NULL CONSTRAINT chk_calls_sync_state CHECK (sync_state IN ('pending', 'synced', 'failed', 'paused')),
        first_sip_phone varchar(40),
        rung text[] NOT NULL DEFAULT '{}',
        answered_by text[] NOT NULL DEFAULT '{}',
        handled_by varchar(40),
        started_at timestamptz NOT NULL,
        start_offset_min smallint NOT NULL DEFAULT 0,
        ringing_seen boolean NOT NULL DEFAULT false,
        answered_at timestamptz,
        ended_at timestamptz,
        duration int,
        recording_url text,
        bitrix_call_id varchar(100),
        click_to_call boolean NOT NULL DEFAULT false,
        member_id varchar(64),
        register_user_id int,
        crm_entity_type varchar(16),
        crm_entity_id int,
        deal_id int,
        shown_to int[] NOT NULL DEFAULT '{}',
        sent_steps text[] NOT NULL DEFAULT '{}',
        done_steps text[] NOT NULL DEFAULT '{}',
        task_id int,
        task_responsible_id int,
        facts_version int NOT NULL DEFAULT 0,
        attempts int NOT NULL DEFAULT 0,
        last_error text,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT uq_calls_company_call UNIQUE (company_id, call_id)
      )`);
    await q.query(`CREATE INDEX ix_calls_work ON calls (company_id, next_attempt_at) WHERE sync_state = 'pending'`);
    await q.query(`CREATE INDEX ix_calls_paused ON calls (company_id) WHERE sync_state = 'paused'`);
    await q.query(`CREATE INDEX ix_calls_listing ON calls (company_id, created_at DESC, id DESC)`);
    // Every accepted PBX event, deduplicated by its content: a duplicate delivery changes nothing.
    await q.query(`
      CREATE TABLE pbx_call_events (
        id bigserial PRIMARY KEY,
        company_id int NOT NULL CONSTRAINT fk_pbx_call_events_company REFERENCES companies (id) ON DELETE CASCADE,
        call_id varchar(128) NOT NULL,
        event varchar(16) NOT NULL,
        fingerprint varchar(64) NOT NULL,
        payload jsonb NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT uq_pbx_call_events_fingerprint UNIQUE (company_id, fingerprint)
      )`);
    // Per-portal scheduling: one sender at a time across instances (a lease), woken by ingest.
    await q.query(`
      CREATE TABLE call_sync_portals (
        company_id int PRIMARY KEY CONSTRAINT fk_call_sync_portals_company REFERENCES companies (id) ON DELETE CASCADE,
        due_at timestamptz,
        wake_seq bigint NOT NULL DEFAULT 0,
        lease_owner varchar(64),
        lease_until timestamptz
      )`);
    await q.query(`CREATE INDEX ix_call_sync_portals_due ON call_sync_portals (due_at) WHERE due_at IS NOT NULL`);
    // OPERATION_TIME_LIMIT pauses a method of a portal for every instance.
    await q.query(`
      CREATE TABLE bitrix_method_pauses (
        member_id varchar(64) NOT NULL,
        method varchar(100) NOT NULL,
        until timestamptz NOT NULL,
        CONSTRAINT pk_bitrix_method_pauses PRIMARY KEY (member_id, method)
      )`);
    // A token refresh takes a lease instead of a row lock, so no pooled connection waits on the OAuth server.
    await q.query(`ALTER TABLE bitrix_integrations ADD COLUMN refresh_lease_owner varchar(64), ADD COLUMN refresh_lease_until timestamptz`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE bitrix_integrations DROP COLUMN refresh_lease_owner, DROP COLUMN refresh_lease_until`);
    for (const table of ['bitrix_method_pauses', 'call_sync_portals', 'pbx_call_events', 'calls']) await q.query(`DROP TABLE ${table}`);
  }
}
