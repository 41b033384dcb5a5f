import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './config';
import { ConfigError, type Env } from './validate-env';

const dataDir = () => mkdtempSync(join(tmpdir(), 'utel-config-'));

/** The message of the ConfigError the environment raises ('' when it loads). */
function configError(env: Env): string {
  try {
    loadConfig(env);
    return '';
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.message;
  }
}

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const dir = dataDir();
    const config = loadConfig({ DATA_DIR: dir });
    expect(config.app).toMatchObject({ port: 3000, publicUrl: 'http://localhost:3000', defaultCountry: 'UZ', logLevel: 'info', metricsToken: null, production: false });
    expect(config.database.url).toBeNull();
    expect(config.bitrix).toMatchObject({ credentials: null, oauthUrl: 'https://oauth.bitrix.info', rateLimit: null });
    expect(config.bitrix.allowedDomains.allows('https://acme.bitrix24.kz')).toBe(true);
    expect(config.bitrix.allowedDomains.allows('https://acme.bitrix24.com.br')).toBe(true);
    expect(config.bitrix.recordingAllowedHosts.allowsUrl('https://rec.utel.uz/a.mp3')).toBe(true);
    expect(config.pbx).toMatchObject({ driver: 'ami', ami: null, smartRedirectTimeoutMs: 1500 });
  });

  it('generates the development key once into DATA_DIR and reuses it', () => {
    const dir = dataDir();
    const first = loadConfig({ DATA_DIR: dir }).app.appKey;
    expect(first).toHaveLength(32);
    expect(Buffer.from(readFileSync(join(dir, 'app.key'), 'utf8').trim(), 'base64').equals(first)).toBe(true);
    expect(loadConfig({ DATA_DIR: dir }).app.appKey.equals(first)).toBe(true);
  });

  it('requires APP_KEY in production', () => {
    expect(() => loadConfig({ DATA_DIR: dataDir(), NODE_ENV: 'production' })).toThrow(/APP_KEY: is required when NODE_ENV=production/);
  });

  it('names every bad variable at once', () => {
    let message = '';
    try {
      loadConfig({ DATA_DIR: dataDir(), PORT: 'eighty', APP_KEY: 'short', BITRIX_RATE_LIMIT: 'fast', PBX_DRIVER: 'sip', DATABASE_URL: 'mysql://x', DEFAULT_COUNTRY: 'uzb' });
    } catch (err) {
      message = (err as Error).message;
    }
    for (const name of ['PORT', 'APP_KEY', 'BITRIX_RATE_LIMIT', 'PBX_DRIVER', 'DATABASE_URL', 'DEFAULT_COUNTRY']) expect(message).toContain(`${name}:`);
  });

  it('takes DATABASE_URL for a host or a Unix socket, as node-postgres connects', () => {
    for (const url of [
      'postgres://postgres@127.0.0.1:5432/test',
      'postgresql://app:secret@db.internal/utel?sslmode=require',
      'postgres://app@[::1]:5432/utel',
      'postgres://app@%2Fvar%2Frun%2Fpostgresql/utel',
      'postgres:///utel?host=/var/run/postgresql',
    ]) {
      expect(loadConfig({ DATA_DIR: dataDir(), DATABASE_URL: url }).database.url).toBe(url);
    }
    for (const url of ['mysql://db/utel', 'postgres://', 'postgres:///utel', 'postgres:///utel?host=db', 'db.internal:5432', 'postgres://app@db:99999/utel']) {
      expect(configError({ DATA_DIR: dataDir(), DATABASE_URL: url })).toContain('DATABASE_URL: must be a postgres:// URL');
    }
  });

  it('names every bad variable, also those checked after their format (lists, pairs, production rules)', () => {
    const message = configError({
      DATA_DIR: dataDir(),
      NODE_ENV: 'production',
      PORT: 'eighty',
      BITRIX_ALLOWED_DOMAINS: 'http://host/path',
      RECORDING_ALLOWED_HOSTS: 'ftp://x',
      BITRIX_RATE_LIMIT: '0/0',
      APP_KEY_PREVIOUS: 'short',
    });
    for (const name of ['PORT', 'BITRIX_ALLOWED_DOMAINS', 'RECORDING_ALLOWED_HOSTS', 'BITRIX_RATE_LIMIT', 'APP_KEY', 'APP_KEY_PREVIOUS', 'PUBLIC_URL']) expect(message).toContain(`  ${name}:`);
    expect(message.match(/BITRIX_RATE_LIMIT:/g)).toHaveLength(1);
  });

  it('requires PUBLIC_URL in production: handler URLs on localhost never reach the service', () => {
    const base = { DATA_DIR: dataDir(), NODE_ENV: 'production', APP_KEY: Buffer.alloc(32, 3).toString('base64') };
    expect(configError(base)).toMatch(/PUBLIC_URL: is required when NODE_ENV=production/);
    expect(loadConfig({ ...base, PUBLIC_URL: 'https://bitrix.utel.uz' }).app.publicUrl).toBe('https://bitrix.utel.uz');
  });

  it('stops when only one of the Bitrix24 credentials is set, naming the missing one', () => {
    expect(configError({ DATA_DIR: dataDir(), BITRIX_CLIENT_ID: 'app.1' })).toMatch(/^ {2}BITRIX_CLIENT_SECRET: is required when BITRIX_CLIENT_ID is set$/m);
    expect(configError({ DATA_DIR: dataDir(), BITRIX_CLIENT_SECRET: 's' })).toMatch(/^ {2}BITRIX_CLIENT_ID: is required when BITRIX_CLIENT_SECRET is set$/m);
  });

  it('reads APP_KEY_PREVIOUS for a key rotation', () => {
    const previous = Buffer.alloc(32, 4);
    expect(loadConfig({ DATA_DIR: dataDir(), APP_KEY_PREVIOUS: previous.toString('base64') }).app.appKeyPrevious?.equals(previous)).toBe(true);
    expect(loadConfig({ DATA_DIR: dataDir() }).app.appKeyPrevious).toBeNull();
  });

  it('parses the Bitrix24 options', () => {
    const config = loadConfig({
      DATA_DIR: dataDir(),
      BITRIX_CLIENT_ID: 'app.1',
      BITRIX_CLIENT_SECRET: 's',
      BITRIX_RATE_LIMIT: '5/250',
      BITRIX_ALLOWED_DOMAINS: 'crm.example.com,http://127.0.0.1:4010',
      PUBLIC_URL: 'https://bitrix.utel.uz/',
    });
    expect(config.bitrix.credentials).toEqual({ clientId: 'app.1', clientSecret: 's' });
    expect(config.bitrix.rateLimit).toEqual({ rate: 5, burst: 250 });
    expect(config.bitrix.allowedDomains.allows('https://acme.bitrix24.uz')).toBe(false);
    expect(config.bitrix.allowedDomains.allows('http://127.0.0.1:4010')).toBe(true);
    expect(config.app.publicUrl).toBe('https://bitrix.utel.uz');
    expect(() => loadConfig({ DATA_DIR: dataDir(), BITRIX_ALLOWED_DOMAINS: 'http://host/path' })).toThrow(/BITRIX_ALLOWED_DOMAINS/);
  });
});
