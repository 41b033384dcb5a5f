import { ApiProperty } from '@nestjs/swagger';
import { IsString, Matches, MaxLength } from 'class-validator';
import type { CrmEntityType } from '../crm-owners';
import type { Responsible } from '../responsible.service';

/** A phone number as people and PBXs write it: digits with an optional `+`, spaces, dashes, dots and brackets. */
export const PHONE_FORMAT = /^\+?[\d\s().-]*\d[\d\s().-]*$/;
export const PHONE_MAX_LENGTH = 40;

export class ResponsibleQueryDto {
  @ApiProperty({ example: '+998901234567', description: "The caller's number in any common format (`+998 90 123 45 67`, `998901234567`, `90 123 45 67`)" })
  @IsString()
  @MaxLength(PHONE_MAX_LENGTH)
  @Matches(PHONE_FORMAT, { message: 'phone_number must be a phone number (digits, optionally with +, spaces, dashes or brackets)' })
  phone_number: string;
}

export class ResponsibleDto implements Responsible {
  @ApiProperty({ type: String, nullable: true, example: '101', description: 'Extension bound to the responsible employee; null when nobody is responsible, the responsible has no binding, Bitrix24 is not connected or did not answer in time' })
  sip_phone: string | null;

  @ApiProperty({ type: Number, nullable: true, example: 7, description: 'The CRM record\'s responsible (`ASSIGNED_BY_ID`)' })
  bitrix_user_id: number | null;

  @ApiProperty({ type: String, nullable: true, enum: ['CONTACT', 'COMPANY', 'LEAD'], example: 'CONTACT' })
  crm_entity_type: CrmEntityType | null;

  @ApiProperty({ type: Number, nullable: true, example: 55 })
  crm_entity_id: number | null;
}
