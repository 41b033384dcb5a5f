import { Body, Controller, Delete, Get, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiConflictResponse, ApiForbiddenResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags, ApiUnprocessableEntityResponse } from '@nestjs/swagger';
import { CurrentPrincipal, type Principal } from '../../auth/principal';
import { ResponseMessage, Roles } from '../../common/decorators';
import { ApiEnvelope } from '../../common/api-envelope.decorator';
import { ErrorEnvelopeDto } from '../../common/envelope';
import { AuthUrlDto, ConnectDto, CredentialsDto, IntegrationInfoDto } from './dto/oauth.dto';
import { IntegrationService } from './integration.service';

@ApiTags('bitrix24 connection')
@ApiBearerAuth()
@Controller('integration/bitrix')
export class OAuthController {
  constructor(private readonly integrations: IntegrationService) {}

  @Get('info')
  @ApiOperation({ summary: 'Connection status of the company\'s Bitrix24 portal' })
  @ApiEnvelope(IntegrationInfoDto)
  info(@CurrentPrincipal() principal: Principal): Promise<IntegrationInfoDto> {
    return this.integrations.info(principal.companyId);
  }

  @Post('oauth/credentials')
  @Roles('admin')
  @ApiOperation({ summary: 'Start connecting: the portal\'s authorisation URL with a single-use state (10 minutes)' })
  @ApiEnvelope(AuthUrlDto)
  @ApiUnprocessableEntityResponse({ type: ErrorEnvelopeDto, description: 'The domain is not an allowed Bitrix24 portal' })
  @ApiServiceUnavailableResponse({ type: ErrorEnvelopeDto, description: 'BITRIX_CLIENT_ID/SECRET are not configured' })
  @ApiForbiddenResponse({ type: ErrorEnvelopeDto })
  credentials(@CurrentPrincipal() principal: Principal, @Body() dto: CredentialsDto): Promise<{ auth_url: string }> {
    return this.integrations.authUrl(principal.companyId, dto.domain);
  }

  @Post('oauth')
  @Roles('admin')
  @ApiOperation({ summary: 'Finish connecting: exchange the authorization code and bind the Bitrix24 events' })
  @ApiEnvelope(IntegrationInfoDto)
  @ApiUnprocessableEntityResponse({
    type: ErrorEnvelopeDto,
    description:
      'Bad domain, code, state or server_domain; the code belongs to another portal; the portal is connected to another company; or the approving Bitrix24 user is not a portal administrator. Nothing about the current connection changes.',
  })
  @ApiServiceUnavailableResponse({
    type: ErrorEnvelopeDto,
    description: 'BITRIX_CLIENT_ID/SECRET are not configured, or Bitrix24 refused them (invalid_client, the same answer as on a token refresh)',
  })
  @ApiForbiddenResponse({ type: ErrorEnvelopeDto })
  connect(@CurrentPrincipal() principal: Principal, @Body() dto: ConnectDto): Promise<IntegrationInfoDto> {
    return this.integrations.connect(principal, dto);
  }

  @Delete('disconnect')
  @Roles('admin')
  @ResponseMessage('Successfully disconnected from Bitrix24')
  @ApiOperation({ summary: 'Unbind the events (best effort) and delete every Bitrix24 token' })
  @ApiEnvelope(IntegrationInfoDto, { message: 'Successfully disconnected from Bitrix24' })
  @ApiConflictResponse({ type: ErrorEnvelopeDto, description: 'Not connected' })
  @ApiForbiddenResponse({ type: ErrorEnvelopeDto })
  disconnect(@CurrentPrincipal() principal: Principal): Promise<IntegrationInfoDto> {
    return this.integrations.disconnect(principal.companyId);
  }
}
