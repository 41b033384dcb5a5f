import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
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

/** Accept a caller's request id if it is sane, so logs correlate across services; otherwise mint one. */
function requestId(req: IncomingMessage, res: ServerResponse): string {
  const incoming = req.headers['x-request-id'];
  const id = typeof incoming === 'string' && /^[A-Za-z0-9._-]{1,100}$/.test(incoming) ? incoming : randomUUID();
  res.setHeader('X-Request-Id', id);
  return id;
}

/** Structured JSON logs with a request id, to stdout unless a destination is given (tests capture it). */
export function loggerOptions(level: string, destination: pino.DestinationStream = pino.destination({ fd: 1 })): Params {
  return {
    pinoHttp: {
      level,
      genReqId: requestId,
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
