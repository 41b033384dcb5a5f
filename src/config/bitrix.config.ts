import { IsOptional, IsString, IsUrl, Matches } from 'class-validator';
import { OriginAllowList } from '../common/origin-allow-list';
import { validateEnv, type ConfigProblems, type Env } from './validate-env';

/** The Bitrix24 cloud zones a portal may live in unless BITRIX_ALLOWED_DOMAINS says otherwise. */
const CLOUD_ZONES = ['ru', 'com', 'uz', 'kz', 'by', 'de', 'eu', 'es', 'fr', 'it', 'pl', 'ua', 'com.br', 'in', 'id', 'vn', 'jp', 'com.tr', 'cn', 'co', 'mx', 'uk'];

class BitrixEnv {
  @IsOptional() @IsString()
  BITRIX_CLIENT_ID?: string;

  @IsOptional() @IsString()
  BITRIX_CLIENT_SECRET?: string;

  @IsOptional() @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  BITRIX_OAUTH_URL: string = 'https://oauth.bitrix.info';

  @IsOptional() @IsString()
  BITRIX_ALLOWED_DOMAINS?: string;

  @IsOptional() @Matches(/^\d+(\.\d+)?\/\d+$/, { message: 'must look like 2/50 (requests per second / burst)' })
  BITRIX_RATE_LIMIT?: string;

  @IsOptional() @IsString()
  RECORDING_ALLOWED_HOSTS: string = '*.utel.uz';
}

export interface RateLimit {
  /** Requests per second the bucket drains. */
  rate: number;
  burst: number;
}

export interface BitrixConfig {
  /** Null until the application's credentials are configured: connect endpoints answer 503. */
  credentials: { clientId: string; clientSecret: string } | null;
  oauthUrl: string;
  allowedDomains: OriginAllowList;
  /** Null: chosen per portal from its licence (2/50, Enterprise 5/250). */
  rateLimit: RateLimit | null;
  recordingAllowedHosts: OriginAllowList;
}

export function bitrixConfig(env: Env, problems: ConfigProblems): BitrixConfig {
  const v = validateEnv(BitrixEnv, env, problems);
  // Credentials come as a pair: one without the other is a typo, not "not configured".
  if (v.BITRIX_CLIENT_ID && !v.BITRIX_CLIENT_SECRET) problems.add('BITRIX_CLIENT_SECRET', 'is required when BITRIX_CLIENT_ID is set');
  if (v.BITRIX_CLIENT_SECRET && !v.BITRIX_CLIENT_ID) problems.add('BITRIX_CLIENT_ID', 'is required when BITRIX_CLIENT_SECRET is set');
  const domains = v.BITRIX_ALLOWED_DOMAINS ?? CLOUD_ZONES.map((z) => `*.bitrix24.${z}`).join(',');
  return {
    credentials: v.BITRIX_CLIENT_ID && v.BITRIX_CLIENT_SECRET ? { clientId: v.BITRIX_CLIENT_ID, clientSecret: v.BITRIX_CLIENT_SECRET } : null,
    oauthUrl: v.BITRIX_OAUTH_URL.replace(/\/+$/, ''),
    allowedDomains: problems.parse('BITRIX_ALLOWED_DOMAINS', domains, OriginAllowList.parse)!,
    rateLimit: v.BITRIX_RATE_LIMIT ? (problems.parse('BITRIX_RATE_LIMIT', v.BITRIX_RATE_LIMIT, parseRateLimit) ?? null) : null,
    recordingAllowedHosts: problems.parse('RECORDING_ALLOWED_HOSTS', v.RECORDING_ALLOWED_HOSTS, OriginAllowList.parse)!,
  };
}

function parseRateLimit(value: string): RateLimit {
  const [rate, burst] = value.split('/').map(Number);
  if (!(rate > 0) || !(burst >= 1)) throw new Error('rate and burst must be positive');
  return { rate, burst };
}
