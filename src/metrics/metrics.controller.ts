import { timingSafeEqual, createHash } from 'node:crypto';
import { Controller, Get, Header, Headers } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { AppError } from '../common/app-error';
import { Public, RawResponse } from '../common/decorators';
import type { Config } from '../config/config';
import { MetricsService } from './metrics.service';

@ApiTags('health')
@Controller('metrics')
export class MetricsController {
  private readonly tokenDigest: Buffer | null;

  constructor(
    private readonly metrics: MetricsService,
    config: ConfigService<Config, true>,
  ) {
    const token = config.get('app', { infer: true }).metricsToken;
    this.tokenDigest = token ? digest(token) : null;
  }

  /** Public for bearer auth; when METRICS_TOKEN is set, it is the only credential accepted. */
  @Get()
  @Public()
  @RawResponse()
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  @ApiOperation({ summary: 'Prometheus metrics (text exposition format); needs `Bearer <METRICS_TOKEN>` when that is set' })
  @ApiOkResponse({ description: 'Prometheus text format' })
  render(@Headers('authorization') authorization?: string): Promise<string> {
    if (this.tokenDigest) {
      const presented = /^Bearer (.+)$/i.exec(authorization ?? '')?.[1];
      if (!presented || !timingSafeEqual(digest(presented), this.tokenDigest)) throw new AppError('UNAUTHENTICATED', 'Unauthenticated.');
    }
    return this.metrics.render();
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}
