import { IsIn, IsInt, IsOptional, IsString, IsUrl, Max, Min } from 'class-validator';
import { Type } from 'class-transformer';
import { validateEnv, type ConfigProblems, type Env } from './validate-env';

class PbxEnv {
  @IsOptional() @IsIn(['ami', 'http'])
  PBX_DRIVER: 'ami' | 'http' = 'ami';

  @IsOptional() @IsString()
  AMI_HOST?: string;

  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(65535)
  AMI_PORT: number = 5038;

  @IsOptional() @IsString()
  AMI_USER?: string;

  @IsOptional() @IsString()
  AMI_SECRET?: string;

  @IsOptional() @IsString()
  AMI_CONTEXT: string = 'from-internal';

  @IsOptional() @IsString()
  AMI_CHANNEL: string = 'PJSIP/{sip_phone}';

  @IsOptional() @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  PBX_ORIGINATE_URL?: string;

  @IsOptional() @Type(() => Number) @IsInt() @Min(100) @Max(60000)
  SMART_REDIRECT_TIMEOUT_MS: number = 1500;
}

export interface AmiConfig {
  host: string;
  port: number;
  user: string;
  secret: string;
  context: string;
  channelTemplate: string;
}

export interface PbxConfig {
  driver: 'ami' | 'http';
  /** Null until AMI_HOST, AMI_USER and AMI_SECRET are set: originate answers 503. */
  ami: AmiConfig | null;
  originateUrl: string | null;
  smartRedirectTimeoutMs: number;
}

export function pbxConfig(env: Env, problems: ConfigProblems): PbxConfig {
  const v = validateEnv(PbxEnv, env, problems);
  return {
    driver: v.PBX_DRIVER,
    ami:
      v.AMI_HOST && v.AMI_USER && v.AMI_SECRET
        ? { host: v.AMI_HOST, port: v.AMI_PORT, user: v.AMI_USER, secret: v.AMI_SECRET, context: v.AMI_CONTEXT, channelTemplate: v.AMI_CHANNEL }
        : null,
    originateUrl: v.PBX_ORIGINATE_URL ?? null,
    smartRedirectTimeoutMs: v.SMART_REDIRECT_TIMEOUT_MS,
  };
}
