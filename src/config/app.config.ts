import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { IsIn, IsInt, IsOptional, IsString, IsUrl, Matches, Max, Min } from 'class-validator';
import { Type } from 'class-transformer';
import { ConfigProblems, validateEnv, type Env } from './validate-env';

const BASE64_32_BYTES = /^[A-Za-z0-9+/]{43}=$/;

class AppEnv {
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(65535)
  PORT: number = 3000;

  @IsOptional() @IsString()
  DATA_DIR: string = '.data';

  @IsOptional() @IsIn(['development', 'production', 'test'])
  NODE_ENV: string = 'development';

  @IsOptional() @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  PUBLIC_URL?: string;

  @IsOptional() @Matches(BASE64_32_BYTES, { message: 'must be 32 bytes encoded as base64' })
  APP_KEY?: string;

  @IsOptional() @Matches(BASE64_32_BYTES, { message: 'must be 32 bytes encoded as base64' })
  APP_KEY_PREVIOUS?: string;

  @IsOptional() @Matches(/^[A-Z]{2}$/, { message: 'must be a two-letter ISO 3166 region code such as UZ' })
  DEFAULT_COUNTRY: string = 'UZ';

  @IsOptional() @IsIn(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  LOG_LEVEL: string = 'info';

  @IsOptional() @IsString()
  METRICS_TOKEN?: string;
}

export interface AppConfig {
  port: number;
  dataDir: string;
  production: boolean;
  publicUrl: string;
  /** 32-byte key for AES-256-GCM encryption of secrets at rest. */
  appKey: Buffer;
  /** The key before a rotation: still read, never written. */
  appKeyPrevious: Buffer | null;
  defaultCountry: string;
  logLevel: string;
  metricsToken: string | null;
}

export function appConfig(env: Env, problems: ConfigProblems): AppConfig {
  const v = validateEnv(AppEnv, env, problems);
  const dataDir = resolve(v.DATA_DIR);
  const production = v.NODE_ENV === 'production';
  // Bitrix24 calls the handler URLs built from it: a localhost default is never right in production.
  if (production && !v.PUBLIC_URL) problems.add('PUBLIC_URL', 'is required when NODE_ENV=production (the externally reachable https:// URL of this service)');
  return {
    port: v.PORT,
    dataDir,
    production,
    publicUrl: (v.PUBLIC_URL ?? `http://localhost:${v.PORT}`).replace(/\/+$/, ''),
    appKey: resolveAppKey(v.APP_KEY, production, dataDir, problems),
    appKeyPrevious: v.APP_KEY_PREVIOUS ? Buffer.from(v.APP_KEY_PREVIOUS, 'base64') : null,
    defaultCountry: v.DEFAULT_COUNTRY,
    logLevel: v.LOG_LEVEL,
    metricsToken: v.METRICS_TOKEN ?? null,
  };
}

/** Production must bring its own key; a development machine gets one generated once into DATA_DIR. */
function resolveAppKey(value: string | undefined, production: boolean, dataDir: string, problems: ConfigProblems): Buffer {
  if (value) return Buffer.from(value, 'base64');
  if (production) {
    problems.add('APP_KEY', 'is required when NODE_ENV=production (32 random bytes, base64)');
    return Buffer.alloc(0);
  }
  const file = join(dataDir, 'app.key');
  if (existsSync(file)) {
    const key = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (key.length !== 32) problems.add('APP_KEY', `the generated key in ${file} is not 32 bytes`);
    return key;
  }
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, key.toString('base64') + '\n', { mode: 0o600, flag: 'wx' });
  return key;
}
