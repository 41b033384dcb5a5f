import { Body, Controller, Get, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiConflictResponse, ApiForbiddenResponse, ApiOperation, ApiTags, ApiUnprocessableEntityResponse } from '@nestjs/swagger';
import { CurrentPrincipal, type Principal } from '../../auth/principal';
import { Roles } from '../../common/decorators';
import { ApiEnvelope } from '../../common/api-envelope.decorator';
import { ErrorEnvelopeDto } from '../../common/envelope';
import { SaveSettingsDto, SettingsDto } from './dto/settings.dto';
import { SettingsService } from './settings.service';

@ApiTags('bitrix24 settings')
@ApiBearerAuth()
@Controller('integration/bitrix/settings')
export class SettingsController {
  constructor(private readonly settings: SettingsService) {}

  @Get()
  @ApiOperation({ summary: 'Call-mirroring settings, operator bindings, suggestions and the Smart Redirect URL' })
  @ApiEnvelope(SettingsDto)
  get(@CurrentPrincipal() principal: Principal): Promise<SettingsDto> {
    return this.settings.get(principal.companyId);
  }

  @Post()
  @Roles('admin')
  @ApiOperation({ summary: 'Save settings (any subset; `bindings` replaces the list). Checked against the portal; nothing is saved on a 422' })
  @ApiEnvelope(SettingsDto)
  @ApiUnprocessableEntityResponse({ type: ErrorEnvelopeDto })
  @ApiConflictResponse({ type: ErrorEnvelopeDto, description: 'Not connected' })
  @ApiForbiddenResponse({ type: ErrorEnvelopeDto })
  save(@CurrentPrincipal() principal: Principal, @Body() dto: SaveSettingsDto): Promise<SettingsDto> {
    return this.settings.save(principal.companyId, dto);
  }
}
