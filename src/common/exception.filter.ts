import { ArgumentsHost, Catch, ExceptionFilter, HttpException, HttpStatus, Logger } from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type FieldErrors } from './app-error';
import { MAX_BODY_DEPTH, MAX_BODY_VALUES, type BodyError } from './body-parsers';
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

/** Messages for the body parsers' errors a client can cause, by their `type`. */
const PARSER_MESSAGES: Record<BodyError['type'], string> = {
  'entity.parse.failed': 'The request body is not valid JSON.',
  'parameters.too.many': 'The request has too many form fields.',
  'entity.too.deep': `The request body is nested deeper than ${MAX_BODY_DEPTH} levels.`,
  // qs refusing a form nested past its `depth`.
  'querystring.parse.rangeError': `The request body is nested deeper than ${MAX_BODY_DEPTH} levels.`,
  'entity.too.many.values': `The request body has more than ${MAX_BODY_VALUES} values.`,
};

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
    // The request's id, as its X-Request-Id header and its log lines carry it (createHttpAdapter).
    const reqId = http.getRequest<FastifyRequest>().id;
    const response = http.getResponse<FastifyReply>();
    const { httpAdapter } = this.adapterHost;

    if (exception instanceof HttpException && this.isRawRoute(host)) {
      httpAdapter.reply(response, exception.getResponse(), exception.getStatus());
      return;
    }
    const { status, message, errors } = this.describe(exception, reqId);
    httpAdapter.reply(response, failure(status, message, errors), status);
  }

  private describe(exception: unknown, reqId: string): { status: number; message: string; errors?: FieldErrors } {
    if (exception instanceof AppError) {
      if (exception.status >= HttpStatus.INTERNAL_SERVER_ERROR) this.logger.warn({ code: exception.code, err: exception, reqId }, exception.message);
      return { status: exception.status, message: exception.message, errors: exception.errors };
    }
    // The body parsers' errors reach us as they are; Fastify's own (too large, unsupported type) as HttpExceptions.
    if (isBodyError(exception)) return { status: exception.status, message: PARSER_MESSAGES[exception.type] };
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      return { status, message: DEFAULT_MESSAGES[status] ?? (status >= 500 ? 'Internal server error.' : 'The request could not be processed.') };
    }
    this.logger.error({ err: exception, reqId }, 'Unhandled error');
    return { status: HttpStatus.INTERNAL_SERVER_ERROR, message: `Internal server error. Request id: ${reqId}.` };
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

function isBodyError(err: unknown): err is BodyError {
  return err instanceof Error && typeof (err as BodyError).type === 'string' && Object.hasOwn(PARSER_MESSAGES, (err as BodyError).type);
}
