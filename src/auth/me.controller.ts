import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProperty, ApiTags, ApiUnauthorizedResponse } from '@nestjs/swagger';
import { ApiEnvelope } from '../common/api-envelope.decorator';
import { ErrorEnvelopeDto } from '../common/envelope';
import { AccountsService, type Profile } from './accounts.service';
import { CurrentPrincipal, type Principal } from './principal';

class CompanyDto {
  @ApiProperty({ example: 1 }) id: number;
  @ApiProperty({ example: 'Acme Telecom' }) name: string;
}

class ProfileDto {
  @ApiProperty({ example: 1 }) id: number;
  @ApiProperty({ example: 'Ali Valiyev' }) name: string;
  @ApiProperty({ type: String, nullable: true, example: 'ali@acme.uz' }) email: string | null;
  @ApiProperty({ enum: ['admin', 'user'] }) role: string;
  @ApiProperty({ type: CompanyDto }) company: CompanyDto;
}

@ApiTags('account')
@ApiBearerAuth()
@Controller('me')
export class MeController {
  constructor(private readonly accounts: AccountsService) {}

  @Get()
  @ApiOperation({ summary: 'The user and company the bearer token belongs to' })
  @ApiEnvelope(ProfileDto)
  @ApiUnauthorizedResponse({ type: ErrorEnvelopeDto })
  me(@CurrentPrincipal() principal: Principal): Promise<Profile> {
    return this.accounts.profile(principal);
  }
}
