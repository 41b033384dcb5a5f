import { Controller, Get, Param, Query, UseFilters } from '@nestjs/common';
import { ApiInternalServerErrorResponse, ApiNotFoundResponse, ApiOkResponse, ApiOperation, ApiParam, ApiQuery, ApiTags, ApiUnprocessableEntityResponse } from '@nestjs/swagger';
import { Public, RawResponse } from '../../common/decorators';
import { SmartRedirectExceptionFilter } from './smart-redirect.filter';
import { SmartRedirectService, type SmartRedirectAnswer } from './smart-redirect.service';

const EMPTY = { type: 'object', additionalProperties: false, example: {} } as const;

@ApiTags('pbx')
@Controller('pbx/smart-redirect')
@UseFilters(SmartRedirectExceptionFilter)
export class SmartRedirectController {
  constructor(private readonly smartRedirect: SmartRedirectService) {}

  @Get(':key')
  @Public()
  @RawResponse()
  @ApiOperation({
    summary: "Utel Smart Redirect `request` source: the extension of the caller's responsible operator",
    description:
      'Public; authenticated by the secret key in `smart_redirect_url` (GET /integration/bitrix/settings). Answers exactly ' +
      '`{"extension":"101"}`, or `{}` when nobody is responsible, `smart_redirect` is off, Bitrix24 is not connected or ' +
      'did not answer within `SMART_REDIRECT_TIMEOUT_MS`. Never the envelope: every error is `{}` with its status.',
    // Public: no bearer token (overrides the document-wide requirement).
    security: [],
  })
  @ApiParam({ name: 'key', description: 'The secret key from `smart_redirect_url`' })
  @ApiQuery({ name: 'phone', type: String, required: true, example: '+998901234567', description: "The caller's number in any common format" })
  @ApiOkResponse({
    description: '`{"extension":"101"}` or `{}`',
    schema: { type: 'object', additionalProperties: false, properties: { extension: { type: 'string', example: '101' } } },
  })
  @ApiNotFoundResponse({ description: 'Unknown key: `{}`', schema: EMPTY })
  @ApiUnprocessableEntityResponse({ description: '`phone` missing or not a phone number: `{}`', schema: EMPTY })
  @ApiInternalServerErrorResponse({ description: 'The service failed: `{}`', schema: EMPTY })
  answer(@Param('key') key: string, @Query('phone') phone: unknown): Promise<SmartRedirectAnswer> {
    return this.smartRedirect.answer(key, phone);
  }
}
