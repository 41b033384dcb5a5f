import { ApiProperty } from '@nestjs/swagger';
import type { FieldErrors } from './app-error';

export interface SuccessEnvelope<T> {
  status: 'success';
  code: number;
  result: T;
  message: string;
}

export interface ErrorEnvelope {
  status: 'error';
  code: number;
  result: null;
  message: string;
  errors?: FieldErrors;
}

export function success<T>(code: number, result: T, message?: string): SuccessEnvelope<T> {
  return { status: 'success', code, result, message: message ?? (code === 202 ? 'Accepted' : 'Ok') };
}

export function failure(code: number, message: string, errors?: FieldErrors): ErrorEnvelope {
  return errors ? { status: 'error', code, result: null, message, errors } : { status: 'error', code, result: null, message };
}

/** Swagger schema of the error envelope. */
export class ErrorEnvelopeDto {
  @ApiProperty({ enum: ['error'] }) status: 'error';
  @ApiProperty({ example: 422 }) code: number;
  @ApiProperty({ type: Object, nullable: true, example: null, description: 'Always null on errors' }) result: null;
  @ApiProperty({ example: 'The given data was invalid.' }) message: string;
  @ApiProperty({
    required: false,
    description: 'Only on 422: field name (or element index) → messages',
    type: Object,
    additionalProperties: { type: 'array', items: { type: 'string' } },
    example: { domain: ['domain must be a Bitrix24 portal address'] },
  })
  errors?: FieldErrors;
}
