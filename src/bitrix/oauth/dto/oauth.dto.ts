import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsNotEmpty, IsString, MaxLength } from 'class-validator';
import { Present } from '../../../common/validators';

export class CredentialsDto {
  /** The portal: `mycompany.bitrix24.uz` or `https://mycompany.bitrix24.uz/` (any case). */
  @ApiProperty({ example: 'mycompany.bitrix24.uz' })
  @IsString() @IsNotEmpty() @MaxLength(255)
  domain: string;
}

export class ConnectDto {
  @ApiProperty({ example: 'mycompany.bitrix24.uz', description: 'The portal the code was issued by' })
  @IsString() @IsNotEmpty() @MaxLength(255)
  domain: string;

  @ApiProperty({ description: 'The authorization code from the redirect (it lives 30 seconds)' })
  @IsString() @IsNotEmpty() @MaxLength(512)
  code: string;

  @ApiPropertyOptional({ description: 'The `state` returned with the code; when present it must be one this company was issued, unexpired and unused' })
  @Present() @IsString() @MaxLength(256)
  state?: string;

  @ApiPropertyOptional({ example: 'oauth.bitrix.info', description: 'The redirect\'s `server_domain`: `oauth.bitrix.info` or `oauth.bitrix24.tech`' })
  @Present() @IsString() @MaxLength(255)
  server_domain?: string;
}

export class IntegrationInfoDto {
  @ApiProperty({ description: 'True only while connected' }) enabled: boolean;
  @ApiProperty({ type: String, nullable: true, example: 'https://mycompany.bitrix24.uz' }) domain: string | null;
  @ApiProperty({ enum: ['disconnected', 'connected', 'reauth_required'] }) status: string;
  @ApiProperty({ type: String, nullable: true, example: '0f1e2d3c4b5a69788796a5b4c3d2e1f0' }) member_id: string | null;
  @ApiProperty({ type: String, nullable: true, format: 'date-time' }) connected_at: string | null;
  @ApiProperty({ type: String, nullable: true, description: 'Why the last Bitrix24 operation failed, if it did' }) last_error: string | null;
}

export class AuthUrlDto {
  @ApiProperty({ example: 'https://mycompany.bitrix24.uz/oauth/authorize/?client_id=app.123&state=…' }) auth_url: string;
}
