import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsNotEmpty, IsObject, IsString, Matches, MaxLength, ValidateNested } from 'class-validator';
import { Present } from '../../../common/validators';

/**
 * The `auth` block: of a Bitrix24 event delivery (`auth[member_id]`, `auth[application_token]`,
 * …) or of a Bitrix24 user calling the documented form (`{member_id, access_token}`). The guard
 * checks it; only the keys named here are kept.
 */
export class CallbackAuthDto {
  @ApiPropertyOptional({ description: 'The portal (`member_id`)' })
  @Present() @IsString() @MaxLength(64)
  member_id?: string;

  @ApiPropertyOptional({ description: 'A Bitrix24 user\'s access token (documented form): verified with `user.current` on that portal' })
  @Present() @IsString() @MaxLength(512)
  access_token?: string;

  @ApiPropertyOptional({ description: 'Sent by Bitrix24 inside events only' })
  @Present() @IsString() @MaxLength(256)
  application_token?: string;

  @ApiPropertyOptional() @Present() @IsString() @MaxLength(255)
  domain?: string;
}

/** `data` of ONEXTERNALCALLSTART (bitrix24-api.md §4.6): strings on the wire. */
export class CallStartDataDto {
  @ApiProperty({ example: '12', description: 'The employee who clicked' })
  @IsString() @Matches(/^\d{1,10}$/, { message: 'USER_ID must be a Bitrix24 user id' })
  USER_ID: string;

  @ApiProperty({ example: '+998901234567' })
  @IsString() @MaxLength(64)
  PHONE_NUMBER: string;

  @ApiPropertyOptional({ example: '+998901234567' })
  @Present() @IsString() @MaxLength(64)
  PHONE_NUMBER_INTERNATIONAL?: string;

  @ApiProperty({ example: 'externalCall.8b1a9953c4611296a827abf8c47804d7.1767225600', description: 'The call Bitrix24 already registered' })
  @IsString() @IsNotEmpty() @MaxLength(100)
  CALL_ID: string;

  @ApiPropertyOptional({ example: 'CONTACT' }) @Present() @IsString() @MaxLength(32) CRM_ENTITY_TYPE?: string;
  @ApiPropertyOptional({ example: '55' }) @Present() @IsString() @MaxLength(20) CRM_ENTITY_ID?: string;
  @ApiPropertyOptional({ example: '' }) @Present() @IsString() @MaxLength(64) LINE_NUMBER?: string;
}

/**
 * Either Bitrix24's form-encoded ONEXTERNALCALLSTART delivery (`event`, `data[…]`, `auth[…]`) or
 * the documented `{sip_phone, phone_number}` with `key` (query or body) or `auth`.
 */
export class OriginateBodyDto {
  @ApiPropertyOptional({ enum: ['ONEXTERNALCALLSTART'], description: 'Bitrix24 deliveries only' })
  @Present() @IsString() @IsIn(['ONEXTERNALCALLSTART'], { message: 'event must be ONEXTERNALCALLSTART on this route' })
  event?: string;

  @ApiPropertyOptional({ type: CallStartDataDto })
  @Present() @IsObject() @ValidateNested() @Type(() => CallStartDataDto)
  data?: CallStartDataDto;

  @ApiPropertyOptional({ type: CallbackAuthDto })
  @Present() @IsObject() @ValidateNested() @Type(() => CallbackAuthDto)
  auth?: CallbackAuthDto;

  @ApiPropertyOptional({ example: '101', description: 'Documented form: the operator\'s extension' })
  @Present() @IsString() @IsNotEmpty() @MaxLength(40)
  sip_phone?: string;

  @ApiPropertyOptional({ example: '+998901234567', description: 'Documented form: the number to dial, any common format' })
  @Present() @IsString() @IsNotEmpty() @MaxLength(64)
  phone_number?: string;

  @ApiPropertyOptional({ description: 'Documented form: the integration\'s handler key, when not in the query' })
  @Present() @IsString() @MaxLength(128)
  key?: string;
}

/** `data` of ONEXTERNALCALLBACKSTART (bitrix24-api.md §4.7). */
export class CallbackStartDataDto {
  @ApiProperty({ example: '+998901234567', description: 'The visitor\'s number' })
  @IsString() @MaxLength(64)
  PHONE_NUMBER: string;

  @ApiPropertyOptional() @Present() @IsString() @MaxLength(2000) TEXT?: string;
  @ApiPropertyOptional() @Present() @IsString() @MaxLength(64) VOICE?: string;
  @ApiPropertyOptional({ example: 'LEAD' }) @Present() @IsString() @MaxLength(32) CRM_ENTITY_TYPE?: string;
  @ApiPropertyOptional({ example: '7' }) @Present() @IsString() @MaxLength(20) CRM_ENTITY_ID?: string;
  @ApiPropertyOptional({ example: '' }) @Present() @IsString() @MaxLength(64) LINE_NUMBER?: string;
}

/** A Bitrix24 event delivery to `/integration/bitrix/events`; `data` is read per event. */
export class EventBodyDto {
  @ApiProperty({ enum: ['ONAPPUNINSTALL', 'ONEXTERNALCALLBACKSTART'] })
  @IsString() @IsIn(['ONAPPUNINSTALL', 'ONEXTERNALCALLBACKSTART'], { message: 'event must be ONAPPUNINSTALL or ONEXTERNALCALLBACKSTART' })
  event: string;

  @ApiPropertyOptional({ type: 'object', additionalProperties: true, description: 'The event\'s data, as Bitrix24 sends it' })
  @Present() @IsObject()
  data?: Record<string, unknown>;

  @ApiPropertyOptional({ type: CallbackAuthDto })
  @Present() @IsObject() @ValidateNested() @Type(() => CallbackAuthDto)
  auth?: CallbackAuthDto;
}

export class OriginateResultDto {
  @ApiProperty({ example: 42, description: 'The service\'s id for this originate' })
  call_id: number;
}

export class EventResultDto {
  @ApiPropertyOptional({ example: 42, description: 'ONEXTERNALCALLBACKSTART: the service\'s id for the originate' })
  call_id?: number;
}
