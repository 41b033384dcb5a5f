import { HttpStatus } from '@nestjs/common';

/**
 * Domain error codes and the HTTP status each maps to. Services throw `AppError` with a code;
 * the exception filter turns it into the envelope. The code is logged, the message is shown.
 */
export const ERROR_STATUS = {
  VALIDATION_FAILED: HttpStatus.UNPROCESSABLE_ENTITY,
  NOT_FOUND: HttpStatus.NOT_FOUND,
  CONFLICT: HttpStatus.CONFLICT,
  FORBIDDEN: HttpStatus.FORBIDDEN,
  UNAUTHENTICATED: HttpStatus.UNAUTHORIZED,
  INTEGRATION_NOT_CONNECTED: HttpStatus.CONFLICT,
  INTEGRATION_REAUTH_REQUIRED: HttpStatus.CONFLICT,
  BITRIX_NOT_CONFIGURED: HttpStatus.SERVICE_UNAVAILABLE,
  BITRIX_UNAVAILABLE: HttpStatus.BAD_GATEWAY,
  BITRIX_REJECTED: HttpStatus.BAD_GATEWAY,
  PBX_UNAVAILABLE: HttpStatus.SERVICE_UNAVAILABLE,
  PBX_REJECTED: HttpStatus.BAD_GATEWAY,
} as const satisfies Record<string, HttpStatus>;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** Field errors of a 422: field (or element index) → messages. */
export type FieldErrors = Record<string, string[]>;

export class AppError extends Error {
  override readonly name = 'AppError';

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly errors?: FieldErrors,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  get status(): HttpStatus {
    return ERROR_STATUS[this.code];
  }

  static validation(field: string, message: string): AppError {
    return new AppError('VALIDATION_FAILED', 'The given data was invalid.', { [field]: [message] });
  }
}
