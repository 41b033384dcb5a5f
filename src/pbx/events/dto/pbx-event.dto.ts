import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsIn, IsInt, IsString, IsUrl, Matches, Max, MaxLength, Min, MinLength, ValidateIf } from 'class-validator';
import { Given } from '../../../common/validators';

export const EVENT_TYPES = ['ringing', 'answered', 'ended', 'recording'] as const;
export const DIRECTIONS = ['inbound', 'outbound'] as const;
export const END_STATUSES = ['answered', 'no_answer', 'busy', 'failed', 'cancelled'] as const;
/** ISO 8601 date-time with an explicit offset: the call's start is sent to Bitrix24 in the PBX's own offset. */
export const ISO_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;

/** One call event reported by the PBX (SPEC §6). Unknown keys are ignored. */
export class PbxEventDto {
  @ApiProperty({ description: 'The PBX id of one physical call; all its events share it', example: '1764640000.1542', maxLength: 128 })
  @IsString() @MinLength(1) @MaxLength(128)
  call_id: string;

  @ApiProperty({ enum: EVENT_TYPES })
  @IsIn(EVENT_TYPES)
  event: (typeof EVENT_TYPES)[number];

  @ApiProperty({ enum: DIRECTIONS })
  @IsIn(DIRECTIONS)
  direction: (typeof DIRECTIONS)[number];

  @ApiProperty({ description: 'The external party, in any common format; normalised to E.164 (DEFAULT_COUNTRY)', example: '+998901234567' })
  @IsString() @MaxLength(64) @Matches(/\d/, { message: 'phone_number must contain digits' })
  phone_number: string;

  @ApiPropertyOptional({
    type: [String],
    description: 'ringing: operators being rung; answered: the one who answered; outbound: the caller; ended: who handled it (or was rung last)',
    example: ['101', '102'],
  })
  @Given() @IsArray() @ArrayMaxSize(100) @IsString({ each: true }) @MinLength(1, { each: true }) @MaxLength(40, { each: true })
  sip_phones?: string[] | null;

  @ApiPropertyOptional({ description: "The company's external number", example: '+998712000000' })
  @Given() @IsString() @MaxLength(64)
  line_number?: string | null;

  @ApiPropertyOptional({ description: 'Echoed by the PBX for a call started by click-to-call (the Bitrix24 CALL_ID)' })
  @Given() @IsString() @MinLength(1) @MaxLength(100)
  bitrix_call_id?: string | null;

  @ApiProperty({ description: 'ISO 8601 with its offset', example: '2026-11-24T10:00:00+05:00' })
  @IsString() @Matches(ISO_WITH_OFFSET, { message: 'occurred_at must be an ISO 8601 date-time with an offset, like 2026-11-24T10:00:00+05:00' })
  occurred_at: string;

  @ApiPropertyOptional({ description: 'ended: talk seconds', example: 42 })
  @Given() @IsInt() @Min(0) @Max(86_400)
  duration?: number | null;

  @ApiPropertyOptional({ enum: END_STATUSES, description: 'Required for ended' })
  @ValidateIf((o: PbxEventDto) => o.event === 'ended' || (o.status !== undefined && o.status !== null)) @IsIn(END_STATUSES)
  status?: (typeof END_STATUSES)[number] | null;

  @ApiPropertyOptional({ description: 'Required for recording: where the PBX serves the file (RECORDING_ALLOWED_HOSTS)' })
  @ValidateIf((o: PbxEventDto) => o.event === 'recording' || (o.recording_url !== undefined && o.recording_url !== null))
  @IsString() @MaxLength(2000) @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false })
  recording_url?: string | null;
}

export class AcceptedDto {
  @ApiProperty({ description: 'How many events were accepted (duplicates included)', example: 3 })
  accepted: number;
}
