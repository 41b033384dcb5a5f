import { RequestMethod } from '@nestjs/common';
import type { Params } from 'nestjs-pino';
import pino from 'pino';

/** Secret-bearing keys anywhere in a logged object, and headers that carry credentials. */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  ...['access_token', 'refresh_token', 'application_token', 'client_secret', 'auth', 'key', 'token', 'secret', 'password'].flatMap((k) => [k, `*.${k}`]),
];

/** Query parameters and path segments that carry credentials (handler keys, OAuth codes, Smart Redirect keys). */
function redactUrl(url: string): string {
  return url
    .replace(/([?&](?:key|code|auth|access_token|refresh_token|token|client_secret|application_token)=)[^&#]*/gi, '$1[redacted]')
    .replace(/(\/smart-redirect\/)[^/?#]+/i, '$1[redacted]');
}

/**
 * Errors are logged as name, message, code and stack (and the same of their cause) only: HTTP
 * client errors carry the request they failed on, body and credentials included.
 */
function serializeError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return err;
  const { code } = err as { code?: unknown };
  return {
    type: err.name,
    message: err.message,
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
    stack: err.stack,
    ...(err.cause !== undefined && depth < 3 ? { cause: serializeError(err.cause, depth + 1) } : {}),
  };
}

/**
 * Structured JSON logs with the request id (Fastify's, see createHttpAdapter, which pino-http takes
 * from the request), to stdout unless a destination is given (tests capture it).
 */
export function loggerOptions(level: string, destination: pino.DestinationStream = pino.destination({ fd: 1 })): Params {
  return {
    // Every path, `/` included. nestjs-pino's default (`{/*splat}`) gets a second leading slash from
    // @fastify/middie's prefix join and then matches no request.
    forRoutes: [{ path: '/{*path}', method: RequestMethod.ALL }],
    pinoHttp: {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      serializers: {
        err: serializeError,
        req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, url: redactUrl(req.url) }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      stream: destination,
    },
  };
}
