import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags, ApiUnprocessableEntityResponse } from '@nestjs/swagger';
import { CurrentPrincipal, type Principal } from '../../auth/principal';
import { ApiEnvelope } from '../../common/api-envelope.decorator';
import { ErrorEnvelopeDto } from '../../common/envelope';
import { ResponsibleDto, ResponsibleQueryDto } from './dto/responsible.dto';
import { ResponsibleService, type Responsible } from './responsible.service';

@ApiTags('pbx')
@ApiBearerAuth()
@Controller('pbx')
export class ResponsibleController {
  constructor(private readonly responsible: ResponsibleService) {}

  @Get('responsible')
  @ApiOperation({
    summary: "The operator responsible for a caller: the CRM record's responsible mapped through the bindings",
    description:
      'Finds the CRM record by phone (`telephony.externalCall.searchCrmEntities`, else `crm.duplicate.findbycomm` with the E.164 and national forms) ' +
      'and maps its `ASSIGNED_BY_ID` through the bindings. Always answers within `SMART_REDIRECT_TIMEOUT_MS`: on timeout, error or ' +
      'a portal that is not connected, `sip_phone` is null. Answers are cached per number for a few minutes.',
  })
  @ApiEnvelope(ResponsibleDto)
  @ApiUnprocessableEntityResponse({ type: ErrorEnvelopeDto, description: 'phone_number missing or not a phone number' })
  find(@CurrentPrincipal() principal: Principal, @Query() query: ResponsibleQueryDto): Promise<Responsible> {
    return this.responsible.lookup(principal.companyId, query.phone_number);
  }
}
