import { AppError, type ErrorCode } from '../common/app-error';

/**
 * A failed Bitrix24 request. It carries the portal and method for logs and the on-call engineer;
 * its HTTP mapping (502 by default) comes from AppError's code.
 */
export class BitrixApiError extends AppError {
  constructor(
    code: ErrorCode,
    message: string,
    readonly details: { memberId: string | null; method: string; bitrixError?: string; httpStatus?: number },
    options?: { cause?: unknown },
  ) {
    super(code, message, undefined, options);
  }

  /** Bitrix24's own error code (`ACCESS_DENIED`, `ERROR_CORE`, …), or '' when it sent none. */
  get bitrixError(): string | undefined {
    return this.details.bitrixError;
  }
}

/**
 * The OAuth server refused this server's own credentials: the same 503 whether it happens on a
 * code exchange or a refresh, since only the operator can fix it (the portal's tokens are fine).
 */
export function invalidClientError(): AppError {
  return new AppError('BITRIX_NOT_CONFIGURED', 'Bitrix24 refused this server\'s application credentials (invalid_client): check BITRIX_CLIENT_ID and BITRIX_CLIENT_SECRET.');
}
