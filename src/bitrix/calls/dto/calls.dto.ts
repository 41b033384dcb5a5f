import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsIn, IsInt, IsOptional, Max, Min } from 'class-validator';

export const SYNC_STATES = ['pending', 'synced', 'failed', 'paused'] as const;

export class ListCallsQueryDto {
  @ApiPropertyOptional({ enum: SYNC_STATES })
  @IsOptional() @IsIn(SYNC_STATES)
  sync_state?: (typeof SYNC_STATES)[number];

  @ApiPropertyOptional({ minimum: 1, default: 1 })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(1_000_000)
  page: number = 1;

  @ApiPropertyOptional({ minimum: 1, maximum: 100, default: 20 })
  @IsOptional() @Type(() => Number) @IsInt() @Min(1) @Max(100)
  per_page: number = 20;
}

export class CallItemDto {
  @ApiProperty({ description: "The service's id of the call (for retry)" }) id: number;
  @ApiProperty({ description: "The PBX's call id" }) call_id: string;
  @ApiProperty({ enum: ['inbound', 'outbound'] }) direction: string;
  @ApiProperty({ example: '+998901234567' }) phone_number: string;
  @ApiProperty({ enum: ['ringing', 'answered', 'no_answer', 'busy', 'failed', 'cancelled'], description: "The call's outcome so far" }) status: string;
  @ApiProperty({ enum: SYNC_STATES, description: 'How far it is mirrored into Bitrix24' }) sync_state: string;
  @ApiProperty() attempts: number;
  @ApiProperty({ type: String, nullable: true }) last_error: string | null;
  @ApiProperty({ type: String, nullable: true }) bitrix_call_id: string | null;
  @ApiProperty({ format: 'date-time' }) started_at: string;
  @ApiProperty({ format: 'date-time' }) updated_at: string;
}

export class CallPageDto {
  @ApiProperty({ type: [CallItemDto] }) items: CallItemDto[];
  @ApiProperty() page: number;
  @ApiProperty() per_page: number;
  @ApiProperty() total: number;
}

export class CheckItemDto {
  @ApiProperty({ example: 'connected' }) name: string;
  @ApiProperty() ok: boolean;
  @ApiProperty() message: string;
}

export class CheckDto {
  @ApiProperty() ok: boolean;
  @ApiProperty({ type: [CheckItemDto] }) checks: CheckItemDto[];
}
