import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiConflictResponse, ApiOperation, ApiProperty, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, type Principal } from '../../auth/principal';
import { ApiEnvelope } from '../../common/api-envelope.decorator';
import { ErrorEnvelopeDto } from '../../common/envelope';
import { IntegrationService } from '../oauth/integration.service';
import { BitrixUsersService, type Employee } from './bitrix-users.service';

class EmployeeDto {
  @ApiProperty({ example: 7 }) id: number;
  @ApiProperty({ example: 'Dilnoza Karimova' }) name: string;
  @ApiProperty({ type: String, nullable: true }) email: string | null;
  @ApiProperty({ type: String, nullable: true, example: '101', description: 'UF_PHONE_INNER' }) inner_phone: string | null;
}

@ApiTags('bitrix24 connection')
@ApiBearerAuth()
@Controller('integration/bitrix')
export class UsersController {
  constructor(
    private readonly integrations: IntegrationService,
    private readonly users: BitrixUsersService,
  ) {}

  @Get('bitrix-users')
  @ApiOperation({ summary: 'Active employees of the connected portal (all pages)' })
  @ApiEnvelope(EmployeeDto, { isArray: true })
  @ApiConflictResponse({ type: ErrorEnvelopeDto, description: 'Not connected, or re-authorisation needed' })
  async list(@CurrentPrincipal() principal: Principal): Promise<Employee[]> {
    return this.users.activeEmployees(await this.integrations.requireConnected(principal.companyId));
  }
}
