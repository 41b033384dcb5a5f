import { Controller, Get, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiConflictResponse, ApiForbiddenResponse, ApiNotFoundResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, type Principal } from '../../auth/principal';
import { ApiEnvelope } from '../../common/api-envelope.decorator';
import { Roles } from '../../common/decorators';
import { ErrorEnvelopeDto } from '../../common/envelope';
import { CallsService } from './calls.service';
import { CheckService } from './check.service';
import { CallItemDto, CallPageDto, CheckDto, ListCallsQueryDto } from './dto/calls.dto';

@ApiTags('bitrix24 calls')
@ApiBearerAuth()
@Controller('integration/bitrix')
export class CallsController {
  constructor(
    private readonly calls: CallsService,
    private readonly checks: CheckService,
  ) {}

  @Get('calls')
  @ApiOperation({ summary: "The company's calls, newest first, with how far each is mirrored into Bitrix24" })
  @ApiEnvelope(CallPageDto)
  list(@CurrentPrincipal() principal: Principal, @Query() query: ListCallsQueryDto): Promise<CallPageDto> {
    return this.calls.list(principal.companyId, query);
  }

  @Post('calls/:id/retry')
  @Roles('admin')
  @ApiOperation({ summary: 'Re-queue a failed call (it waits, paused, while Bitrix24 is not connected)' })
  @ApiEnvelope(CallItemDto)
  @ApiNotFoundResponse({ type: ErrorEnvelopeDto })
  @ApiConflictResponse({ type: ErrorEnvelopeDto, description: 'The call is not failed' })
  @ApiForbiddenResponse({ type: ErrorEnvelopeDto })
  retry(@CurrentPrincipal() principal: Principal, @Param('id') id: string): Promise<CallItemDto> {
    return this.calls.retry(principal.companyId, id);
  }

  @Get('check')
  @ApiOperation({ summary: 'Live diagnosis: token, scopes, events, rate-limit headroom, the default-line reminder (ok:false when not connected)' })
  @ApiEnvelope(CheckDto)
  check(@CurrentPrincipal() principal: Principal): Promise<CheckDto> {
    return this.checks.check(principal.companyId);
  }
}
