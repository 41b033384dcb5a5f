import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { AppError, type FieldErrors } from './app-error';
import { MAX_BODY_DEPTH, MAX_BODY_VALUES } from './body-shape';
import { RAW_RESPONSE } from './decorators';
import { failure } from './envelope';

/** Messages for the HttpExceptions the framework raises (our own errors are AppErrors); its texts name internals. */
const DEFAULT_MESSAGES: Partial<Record<number, string>> = {
  400: 'The request is malformed.',
  401: 'Unauthenticated.',
  403: 'This action is unauthorized.',
  404: 'The requested resource was not found.',
  405: 'The method is not allowed for this resource.',
  413: 'The request body is larger than 1 MiB.',
  415: 'The request content type is not supported.',
  422: 'The given data was invalid.',
  429: 'Too many requests.',
};

/** Messages for the body-parser (and limitBodyShape) errors a client can cause, by their `type`. */
const PARSER_MESSAGES: Partial<Record<string, string>> = {
  'entity.parse.failed': 'The request body is not valid JSON.',
  'parameters.too.many': 'The request has too many form fields.',
  'entity.too.deep': `The request body is nested deeper than ${MAX_BODY_DEPTH} levels.`,
  // qs refusing a form nested past body-parser's `depth`.
  'querystring.parse.rangeError': `The request body is nested deeper than ${MAX_BODY_DEPTH} levels.`,
  'entity.too.many.values': `The request body has more than ${MAX_BODY_VALUES} values.`,
};

/** Errors body-parser raises before any route runs: they carry `type` and `status`. */
interface BodyParserError {
  type: string;
  status: number;
}

/** Maps every error to the envelope: coded domain errors, HTTP errors, and a generic 500 with the request id. */
@Catch()
export class AllExceptionsFilter implements ExceptionFilter {
  private readonly logger = new Logger('Exceptions');

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly reflector: Reflector,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<Request & { id?: string }>();
    const response = http.getResponse<Response>();
    const { httpAdapter } = this.adapterHost;

    if (exception instanceof HttpException && this.isRawRoute(host)) {
      httpAdapter.reply(response, exception.getResponse(), exception.getStatus());
      return;
    }
    const { status, message, errors } = this.describe(exception, request);
    httpAdapter.reply(response, failure(status, message, errors), status);
  }

  private describe(exception: unknown, request: Request & { id?: string }): { status: number; message: string; errors?: FieldErrors } {
    if (exception instanceof AppError) {
      if (exception.status >= HttpStatus.INTERNAL_SERVER_ERROR) this.logger.warn({ code: exception.code, err: exception, reqId: request.id }, exception.message);
      return { status: exception.status, message: exception.message, errors: exception.errors };
    }
    // The express adapter wraps body-parser's errors (bad JSON, too large) in an HttpException;
    // limitBodyShape's reach us as they are.
    const parserError = isBodyParserError(exception) ? exception : exception instanceof HttpException && isBodyParserError(exception.cause) ? exception.cause : null;
    if (parserError) return { status: parserError.status, message: PARSER_MESSAGES[parserError.type] ?? DEFAULT_MESSAGES[parserError.status] ?? 'The request is malformed.' };
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      return { status, message: DEFAULT_MESSAGES[status] ?? (status >= 500 ? 'Internal server error.' : 'The request could not be processed.') };
    }
    this.logger.error({ err: exception, reqId: request.id }, 'Unhandled error');
    return { status: HttpStatus.INTERNAL_SERVER_ERROR, message: `Internal server error. Request id: ${request.id ?? 'unknown'}.` };
  }

  private isRawRoute(host: ArgumentsHost): boolean {
    const ctx = host as ArgumentsHost & { getHandler?: () => unknown; getClass?: () => unknown };
    if (!ctx.getHandler || !ctx.getClass) return false;
    const handler = ctx.getHandler() as object | undefined;
    const cls = ctx.getClass() as object | undefined;
    if (!handler || !cls) return false;
    return this.reflector.getAllAndOverride<boolean>(RAW_RESPONSE, [handler as () => void, cls as new () => unknown]) ?? false;
  }
}

function isBodyParserError(err: unknown): err is BodyParserError {
  return typeof err === 'object' && err !== null && typeof (err as BodyParserError).type === 'string' && typeof (err as BodyParserError).status === 'number' && (err as BodyParserError).status < 500;
}
