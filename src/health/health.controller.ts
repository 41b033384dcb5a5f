import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import { HealthCheck, HealthCheckService, TypeOrmHealthIndicator, type HealthCheckResult } from '@nestjs/terminus';
import { Public, RawResponse } from '../common/decorators';

@ApiTags('health')
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly db: TypeOrmHealthIndicator,
  ) {}

  @Get()
  @Public()
  @RawResponse()
  @HealthCheck()
  @ApiOperation({ summary: 'Liveness and database check (terminus format, not the envelope)' })
  @ApiOkResponse({ description: '`{"status":"ok","info":{"database":{"status":"up"}},…}`' })
  @ApiServiceUnavailableResponse({ description: 'The database is unreachable' })
  check(): Promise<HealthCheckResult> {
    return this.health.check([() => this.db.pingCheck('database', { timeout: 1500 })]);
  }
}
