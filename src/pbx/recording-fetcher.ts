import { HttpService } from '@nestjs/axios';
import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { firstValueFrom } from 'rxjs';
import type { OriginAllowList } from '../common/origin-allow-list';
import type { Config } from '../config/config';

/** Recordings larger than this are refused: Bitrix24 must take the upload within its 60 s request limit. */
export const MAX_RECORDING_BYTES = 50 * 1024 * 1024;
const DOWNLOAD_TIMEOUT_MS = 30_000;

export type Recording =
  | { kind: 'file'; content: Buffer; extension: 'wav' | 'mp3' }
  | { kind: 'retry'; reason: string }
  | { kind: 'refused'; reason: string };

/** WAV (`RIFF….WAVE`) or MP3 (an ID3 tag or an MPEG audio frame sync), read from the bytes, not the name. */
export function audioType(content: Buffer): 'wav' | 'mp3' | null {
  if (content.length >= 12 && content.toString('ascii', 0, 4) === 'RIFF' && content.toString('ascii', 8, 12) === 'WAVE') return 'wav';
  if (content.length >= 3 && content.toString('ascii', 0, 3) === 'ID3') return 'mp3';
  if (content.length >= 2 && content[0] === 0xff && (content[1] & 0xe0) === 0xe0) return 'mp3';
  return null;
}

/** Downloads call recordings from the PBX, only from RECORDING_ALLOWED_HOSTS, size-capped, wav/mp3 only. */
@Injectable()
export class RecordingFetcher {
  private readonly allowed: OriginAllowList;

  constructor(
    private readonly http: HttpService,
    config: ConfigService<Config, true>,
  ) {
    this.allowed = config.get('bitrix', { infer: true }).recordingAllowedHosts;
  }

  async fetch(url: string, signal?: AbortSignal): Promise<Recording> {
    if (!this.allowed.allowsUrl(url)) return { kind: 'refused', reason: 'the recording URL is not on an allowed host (RECORDING_ALLOWED_HOSTS)' };
    let status: number;
    let data: Buffer;
    try {
      const res = await firstValueFrom(
        this.http.get<ArrayBuffer>(url, {
          responseType: 'arraybuffer',
          timeout: DOWNLOAD_TIMEOUT_MS,
          signal,
          // A redirect could leave the allowed hosts.
          maxRedirects: 0,
          maxContentLength: MAX_RECORDING_BYTES,
          validateStatus: () => true,
        }),
      );
      status = res.status;
      data = Buffer.from(res.data);
    } catch (err) {
      const { code, message } = err as { code?: string; message?: string };
      if (code === 'ERR_BAD_RESPONSE' && /maxContentLength/.test(message ?? '')) return { kind: 'refused', reason: `the recording is larger than ${MAX_RECORDING_BYTES / 1024 / 1024} MiB` };
      return { kind: 'retry', reason: `the recording could not be downloaded (${code ?? 'network error'})` };
    }
    if (status >= 500 || status === 429 || status === 408) return { kind: 'retry', reason: `the recording server answered HTTP ${status}` };
    if (status !== 200) return { kind: 'refused', reason: `the recording server answered HTTP ${status}` };
    const extension = audioType(data);
    if (!extension) return { kind: 'refused', reason: 'the recording is not a wav or mp3 file (Bitrix24 accepts no other)' };
    return { kind: 'file', content: data, extension };
  }
}
