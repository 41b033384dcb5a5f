import { ValidationPipe, type ValidationError } from '@nestjs/common';
import { AppError, type FieldErrors } from './app-error';

/**
 * The global pipe: whitelisted DTOs, unknown fields rejected, failures as 422 with per-field
 * messages keyed by their dotted path (`bindings.0.sip_phone`). `ignoreUnknown` strips unknown
 * fields instead: for the public Bitrix24 callbacks, whose payloads grow new keys (SPEC §7).
 */
export function createValidationPipe(options: { ignoreUnknown?: boolean } = {}): ValidationPipe {
  return new ValidationPipe({
    whitelist: true,
    forbidNonWhitelisted: !options.ignoreUnknown,
    transform: true,
    stopAtFirstError: false,
    exceptionFactory: (errors) => new AppError('VALIDATION_FAILED', 'The given data was invalid.', flattenValidationErrors(errors)),
  });
}

function flattenValidationErrors(errors: ValidationError[], prefix = ''): FieldErrors {
  const out: FieldErrors = {};
  for (const error of errors) {
    const path = prefix ? `${prefix}.${error.property}` : error.property;
    if (error.constraints) out[path] = Object.values(error.constraints).map((m) => m.replace(/^property (\S+) should not exist$/, 'this field is not allowed'));
    if (error.children?.length) Object.assign(out, flattenValidationErrors(error.children, path));
  }
  return out;
}
