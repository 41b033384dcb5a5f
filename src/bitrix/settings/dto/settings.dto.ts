import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { Allow, ArrayMaxSize, IsArray, IsBoolean, IsIn, IsInt, IsString, Matches, MaxLength, Min, ValidateNested } from 'class-validator';
import { Given, Present } from '../../../common/validators';
import type { CrmCreate, ShowCard } from '../bitrix-settings.entity';

const CRM_CREATE = ['none', 'inbound', 'outbound', 'all'] as const;
const SHOW_CARD = ['never', 'ringing', 'answered'] as const;

export class BindingDto {
  @ApiProperty({ example: '101', description: 'PBX operator extension' })
  @IsString() @Matches(/^[A-Za-z0-9_.*#+-]{1,40}$/, { message: 'sip_phone must be 1–40 letters, digits or _.*#+-' })
  sip_phone: string;

  @ApiProperty({ example: 7, description: 'Bitrix24 employee id' })
  @IsInt() @Min(1)
  bitrix_user_id: number;
}

/** POST body: any subset of the settings; `bindings`, when sent, replaces the whole list. */
export class SaveSettingsDto {
  @ApiPropertyOptional({ type: Number, nullable: true, description: 'Deal pipeline for new numbers; null = leads' })
  @Given() @IsInt() @Min(0)
  pipeline_id?: number | null;

  @ApiPropertyOptional({ enum: CRM_CREATE })
  @Present() @IsIn(CRM_CREATE)
  crm_create?: CrmCreate;

  @ApiPropertyOptional({ type: String, nullable: true, example: 'CALL', description: 'Lead SOURCE_ID' })
  @Given() @IsString() @MaxLength(100)
  crm_source?: string | null;

  @ApiPropertyOptional({ enum: SHOW_CARD })
  @Present() @IsIn(SHOW_CARD)
  show_card?: ShowCard;

  @ApiPropertyOptional() @Present() @IsBoolean()
  attach_records?: boolean;

  @ApiPropertyOptional() @Present() @IsBoolean()
  missed_call_task?: boolean;

  @ApiPropertyOptional() @Present() @IsBoolean()
  smart_redirect?: boolean;

  @ApiPropertyOptional({ type: Number, nullable: true, description: 'Responsible when no binding matches' })
  @Given() @IsInt() @Min(1)
  default_bitrix_user_id?: number | null;

  @ApiPropertyOptional({ type: BindingDto, isArray: true })
  @Present() @IsArray() @ArrayMaxSize(2000) @ValidateNested({ each: true }) @Type(() => BindingDto)
  bindings?: BindingDto[];

  /** Read-only: accepted so the SPA can send back what it got, and ignored. */
  @ApiPropertyOptional({ readOnly: true }) @Allow()
  suggested_bindings?: unknown;

  /** Read-only: accepted and ignored. */
  @ApiPropertyOptional({ readOnly: true }) @Allow()
  smart_redirect_url?: unknown;
}

export class SettingsDto {
  @ApiProperty({ type: Number, nullable: true }) pipeline_id: number | null;
  @ApiProperty({ enum: CRM_CREATE }) crm_create: CrmCreate;
  @ApiProperty({ type: String, nullable: true }) crm_source: string | null;
  @ApiProperty({ enum: SHOW_CARD }) show_card: ShowCard;
  @ApiProperty() attach_records: boolean;
  @ApiProperty() missed_call_task: boolean;
  @ApiProperty() smart_redirect: boolean;
  @ApiProperty({ type: Number, nullable: true }) default_bitrix_user_id: number | null;
  @ApiProperty({ type: BindingDto, isArray: true }) bindings: BindingDto[];
  @ApiProperty({ type: BindingDto, isArray: true, readOnly: true, description: 'Active employees whose UF_PHONE_INNER equals an unbound extension seen in calls or settings' })
  suggested_bindings: BindingDto[];
  @ApiProperty({ readOnly: true, example: 'https://bitrix.example.uz/pbx/smart-redirect/k3y', description: 'URL for Utel Smart Redirect (carries a secret key)' })
  smart_redirect_url: string;
}
