import { IsOptional, IsUrl } from 'class-validator';
import { validateEnv, type ConfigProblems, type Env } from './validate-env';

class DatabaseEnv {
  @IsOptional() @IsUrl({ protocols: ['postgres', 'postgresql'], require_tld: false, require_protocol: true }, { message: 'must be a postgres:// URL' })
  DATABASE_URL?: string;
}

export interface DatabaseConfig {
  /** External PostgreSQL; null starts the embedded one under DATA_DIR. */
  url: string | null;
}

export function databaseConfig(env: Env, problems: ConfigProblems): DatabaseConfig {
  return { url: validateEnv(DatabaseEnv, env, problems).DATABASE_URL ?? null };
}
