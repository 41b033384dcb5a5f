import { IsOptional, Validate, ValidatorConstraint, type ValidatorConstraintInterface } from 'class-validator';
import { validateEnv, type ConfigProblems, type Env } from './validate-env';

/**
 * A URL node-postgres can connect with: `postgres://` or `postgresql://` naming a host, or a
 * Unix-socket directory, either percent-encoded as the host (`postgres://app@%2Fvar%2Frun%2Fpostgresql/db`)
 * or as libpq's `host` parameter (`postgres:///db?host=/var/run/postgresql`).
 */
@ValidatorConstraint({ name: 'postgresUrl' })
class PostgresUrl implements ValidatorConstraintInterface {
  validate(value: unknown): boolean {
    if (typeof value !== 'string' || !URL.canParse(value)) return false;
    const url = new URL(value);
    if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') return false;
    return url.hostname !== '' || url.searchParams.get('host')?.startsWith('/') === true;
  }

  defaultMessage(): string {
    return 'must be a postgres:// URL with a host or a socket directory';
  }
}

class DatabaseEnv {
  @IsOptional() @Validate(PostgresUrl)
  DATABASE_URL?: string;
}

export interface DatabaseConfig {
  /** External PostgreSQL; null starts the embedded one under DATA_DIR. */
  url: string | null;
}

export function databaseConfig(env: Env, problems: ConfigProblems): DatabaseConfig {
  return { url: validateEnv(DatabaseEnv, env, problems).DATABASE_URL ?? null };
}
