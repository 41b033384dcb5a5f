import { createHmac, hkdfSync } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { HttpService } from '@nestjs/axios';
import { firstValueFrom } from 'rxjs';
import { AppError } from '../../common/app-error';
import type { OriginateRequest, PbxDriver } from './pbx-driver';

const TIMEOUT_MS = 5_000;
export const SIGNATURE_HEADER = 'x-utel-signature';
/** HKDF `info` of the signing key: a key for this one purpose, so APP_KEY itself never leaves the service. */
const HKDF_INFO = 'utel-bitrix24/pbx-originate-signature/v1';

/** The HMAC-SHA256 key the http driver signs with: HKDF-SHA256(APP_KEY, salt empty, info above), 32 bytes. */
export function originateSigningKey(appKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', appKey, Buffer.alloc(0), HKDF_INFO, 32));
}

/** `sha256=<hex HMAC-SHA256 of the exact body bytes>`. */
export function signBody(key: Buffer, body: string): string {
  return `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
}

/**
 * Originate by a signed HTTP POST to PBX_ORIGINATE_URL with `{sip_phone, phone_number,
 * bitrix_call_id, company_id}`: a 2xx means accepted; no answer, a timeout or a 5xx is 503
 * (unavailable), another status 502 (refused). No redirects are followed.
 */
export class HttpDriver implements PbxDriver {
  private readonly logger = new Logger(HttpDriver.name);
  private readonly key: Buffer;

  constructor(
    private readonly http: HttpService,
    private readonly url: string | null,
    appKey: Buffer,
  ) {
    this.key = originateSigningKey(appKey);
  }

  get unavailable(): AppError | null {
    return this.url === null ? notConfigured() : null;
  }

  async originate(request: OriginateRequest): Promise<void> {
    if (!this.url) throw notConfigured();
    const body = JSON.stringify({ sip_phone: request.sipPhone, phone_number: request.phoneNumber, bitrix_call_id: request.bitrixCallId, company_id: request.companyId });
    let status: number;
    try {
      const res = await firstValueFrom(
        this.http.post(this.url, body, {
          headers: { 'Content-Type': 'application/json', [SIGNATURE_HEADER]: signBody(this.key, body) },
          timeout: TIMEOUT_MS,
          maxRedirects: 0,
          validateStatus: () => true,
          transformRequest: [(data: unknown) => data],
        }),
      );
      status = res.status;
    } catch (err) {
      const { code } = err as { code?: string };
      this.logger.warn({ originateId: request.originateId, err: code ?? 'network error' }, 'The PBX originate URL did not answer');
      throw new AppError('PBX_UNAVAILABLE', 'The PBX cannot be reached right now: the call was not placed.');
    }
    if (status >= 200 && status < 300) return;
    this.logger.warn({ originateId: request.originateId, status }, 'The PBX originate URL refused the request');
    if (status >= 500) throw new AppError('PBX_UNAVAILABLE', 'The PBX cannot take calls right now: the call was not placed.');
    throw new AppError('PBX_REJECTED', 'The PBX refused to place the call.');
  }
}

const notConfigured = () => new AppError('PBX_UNAVAILABLE', 'The PBX is not configured on this server (PBX_ORIGINATE_URL).');
