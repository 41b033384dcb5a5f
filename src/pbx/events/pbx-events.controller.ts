import { Body, Controller, HttpCode, HttpStatus, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiExtraModels, ApiOperation, ApiTags, ApiUnprocessableEntityResponse, getSchemaPath } from '@nestjs/swagger';
import { CurrentPrincipal, type Principal } from '../../auth/principal';
import { ApiEnvelope } from '../../common/api-envelope.decorator';
import { ResponseMessage } from '../../common/decorators';
import { ErrorEnvelopeDto } from '../../common/envelope';
import { CallIngestService, MAX_EVENTS_PER_REQUEST } from './call-ingest.service';
import { AcceptedDto, PbxEventDto } from './dto/pbx-event.dto';

@ApiTags('pbx')
@ApiBearerAuth()
@ApiExtraModels(PbxEventDto)
@Controller('pbx/events')
export class PbxEventsController {
  constructor(private readonly ingest: CallIngestService) {}

  @Post()
  @HttpCode(HttpStatus.ACCEPTED)
  @ResponseMessage('Accepted')
  @ApiOperation({
    summary: 'Report call events (one event or an array of up to 500)',
    description:
      'Answers 202 once the events are stored durably with the calls\' state, before any Bitrix24 request; the calls are mirrored in the background. ' +
      'Duplicates and out-of-order events are harmless. A bad element makes the whole request 422 (errors keyed by the element\'s index) and nothing is stored. ' +
      'Events of a company whose Bitrix24 is not connected are stored too; their calls wait (paused) for the connection.',
  })
  @ApiBody({ schema: { oneOf: [{ $ref: getSchemaPath(PbxEventDto) }, { type: 'array', maxItems: MAX_EVENTS_PER_REQUEST, items: { $ref: getSchemaPath(PbxEventDto) } }] } })
  @ApiEnvelope(AcceptedDto, { description: 'Accepted: stored, to be mirrored', message: 'Accepted', status: 202 })
  @ApiUnprocessableEntityResponse({ type: ErrorEnvelopeDto })
  accept(@CurrentPrincipal() principal: Principal, @Body() body: unknown): Promise<AcceptedDto> {
    return this.ingest.ingest(principal.companyId, body);
  }
}
