import { Body, Controller, HttpCode, Post, UseGuards } from '@nestjs/common';
import {
  ApiBadGatewayResponse,
  ApiBody,
  ApiConsumes,
  ApiForbiddenResponse,
  ApiOperation,
  ApiQuery,
  ApiServiceUnavailableResponse,
  ApiTags,
  ApiUnauthorizedResponse,
  ApiUnprocessableEntityResponse,
} from '@nestjs/swagger';
import { ApiEnvelope } from '../../common/api-envelope.decorator';
import { Public } from '../../common/decorators';
import { ErrorEnvelopeDto } from '../../common/envelope';
import { BitrixCallbackGuard, Caller } from './bitrix-callback.guard';
import { BitrixEventsService } from './bitrix-events.service';
import type { CallbackCaller } from './callback-auth.service';
import { EventBodyDto, EventResultDto, OriginateBodyDto, OriginateResultDto } from './dto/originate.dto';
import { LenientBodyPipe } from './lenient-body.pipe';
import { OriginateService } from './originate.service';

const KEY_QUERY = { name: 'key', required: false, description: 'The integration\'s secret from the bound handler URL' } as const;

/** The public Bitrix24 callbacks: public for bearer auth, guarded by their own check (SPEC §7). */
@ApiTags('bitrix24 callbacks')
@Public()
@UseGuards(BitrixCallbackGuard)
@Controller('integration/bitrix')
export class OriginateController {
  constructor(
    private readonly originates: OriginateService,
    private readonly events: BitrixEventsService,
  ) {}

  @Post('originate')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Click-to-call: Bitrix24\'s ONEXTERNALCALLSTART delivery, or `{sip_phone, phone_number}` with `key` or a Bitrix24 user\'s `auth`',
    description: 'Dials through the PBX and answers at once. Unknown keys are ignored. 503 when the PBX cannot be reached (the Bitrix24 call is then finished as failed).',
  })
  @ApiConsumes('application/x-www-form-urlencoded', 'application/json')
  @ApiQuery(KEY_QUERY)
  @ApiBody({ type: OriginateBodyDto })
  @ApiEnvelope(OriginateResultDto)
  @ApiUnauthorizedResponse({ type: ErrorEnvelopeDto })
  @ApiForbiddenResponse({ type: ErrorEnvelopeDto, description: 'A user may only call from their own extension' })
  @ApiUnprocessableEntityResponse({ type: ErrorEnvelopeDto, description: 'Unknown employee or extension, invalid number' })
  @ApiServiceUnavailableResponse({ type: ErrorEnvelopeDto, description: 'The PBX cannot be reached' })
  @ApiBadGatewayResponse({ type: ErrorEnvelopeDto, description: 'The PBX (or Bitrix24) refused' })
  originate(@Caller() caller: CallbackCaller, @Body(new LenientBodyPipe(OriginateBodyDto)) body: Record<string, unknown>): Promise<OriginateResultDto> {
    return this.originates.originate(caller, body);
  }

  @Post('events')
  @HttpCode(200)
  @ApiOperation({ summary: 'Bitrix24 event deliveries: ONAPPUNINSTALL, ONEXTERNALCALLBACKSTART (other events 422)' })
  @ApiConsumes('application/x-www-form-urlencoded', 'application/json')
  @ApiQuery(KEY_QUERY)
  @ApiBody({ type: EventBodyDto })
  @ApiEnvelope(EventResultDto)
  @ApiUnauthorizedResponse({ type: ErrorEnvelopeDto })
  @ApiUnprocessableEntityResponse({ type: ErrorEnvelopeDto })
  @ApiServiceUnavailableResponse({ type: ErrorEnvelopeDto, description: 'The PBX cannot be reached' })
  event(@Caller() caller: CallbackCaller, @Body(new LenientBodyPipe(EventBodyDto)) body: Record<string, unknown>): Promise<EventResultDto> {
    return this.events.handle(caller, body as unknown as EventBodyDto);
  }
}
