import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './config';

const dataDir = () => mkdtempSync(join(tmpdir(), 'utel-config-'));

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
