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
