import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiTags, ApiUnauthorizedResponse } from '@nestjs/swagger';
import { ErrorEnvelopeDto } from '../common/envelope';
import { AccountsService, type Profile } from './accounts.service';
import { CurrentPrincipal, type Principal } from './principal';

@ApiTags('account')
@ApiBearerAuth()
@Controller('me')
export class MeController {
  constructor(private readonly accounts: AccountsService) {}

  @Get()
  @ApiOperation({ summary: 'The user and company the bearer token belongs to' })
  @ApiOkResponse({ description: '`result`: `{id, name, email, role, company: {id, name}}`' })
  @ApiUnauthorizedResponse({ type: ErrorEnvelopeDto })
  me(@CurrentPrincipal() principal: Principal): Promise<Profile> {
    return this.accounts.profile(principal);
  }
}
