import type { MigrationInterface, QueryRunner } from 'typeorm';

export class Accounts1764640000000 implements MigrationInterface {
  name = 'Accounts1764640000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE companies (
        id serial PRIMARY KEY,
        name varchar(255) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE users (
        id serial PRIMARY KEY,
        company_id int NOT NULL CONSTRAINT fk_users_company REFERENCES companies (id) ON DELETE CASCADE,
        name varchar(255) NOT NULL,
        email varchar(255),
        role varchar(16) NOT NULL CONSTRAINT chk_users_role CHECK (role IN ('admin', 'user')),
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX idx_users_company ON users (company_id)`);
    await q.query(`CREATE UNIQUE INDEX uq_users_company_email ON users (company_id, lower(email)) WHERE email IS NOT NULL`);
    await q.query(`
      CREATE TABLE personal_access_tokens (
        id serial PRIMARY KEY,
        tokenable_type varchar(255) NOT NULL DEFAULT 'user',
        tokenable_id int NOT NULL CONSTRAINT fk_personal_access_tokens_user REFERENCES users (id) ON DELETE CASCADE,
        name varchar(255) NOT NULL,
        token varchar(64) NOT NULL CONSTRAINT uq_personal_access_tokens_token UNIQUE,
        abilities text,
        last_used_at timestamptz,
        expires_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX idx_personal_access_tokens_tokenable ON personal_access_tokens (tokenable_type, tokenable_id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE personal_access_tokens`);
    await q.query(`DROP TABLE users`);
    await q.query(`DROP TABLE companies`);
  }
}
