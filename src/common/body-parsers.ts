import type { FastifyInstance, FastifyRequest } from 'fastify';
import qs from 'qs';

/** Body size cap of SPEC §4: a larger body is answered 413 in the envelope (Fastify's own check). */
export const BODY_LIMIT = 1024 * 1024;
/** Deeper than any body this service takes (a Bitrix24 form nests 4 levels); qs's own default. */
export const MAX_BODY_DEPTH = 32;
/** Values (object entries and array elements) in one body: 500 PBX events fit with room to spare. */
export const MAX_BODY_VALUES = 20_000;
/** Fields in one form body: a Bitrix24 event delivery has a few dozen. */
const MAX_FORM_FIELDS = 2000;

/** A body the service refuses before any route sees it; the exception filter words it by `type`. */
export interface BodyError extends Error {
  status: number;
  type: 'entity.parse.failed' | 'parameters.too.many' | 'querystring.parse.rangeError' | 'entity.too.deep' | 'entity.too.many.values';
}

function bodyError(status: number, type: BodyError['type']): BodyError {
  return Object.assign(new Error(type), { status, type });
}

type Done = (err: Error | null, body?: unknown) => void;

/**
 * The only bodies the service reads: JSON (`application/json` and `application/*+json`) and the
 * PHP-style bracketed forms Bitrix24 posts (`data[CALL_ID]=…`, parsed into objects by qs). Any
 * other content type is answered 415. Every parsed body has its shape checked here, before any
 * guard, pipe or validator walks it (their recursion is what a 2,000-deep array of a few kilobytes
 * turns into a 500).
 */
export function registerBodyParsers(instance: FastifyInstance): void {
  instance.removeAllContentTypeParsers();
  // `__proto__` and `constructor.prototype` keys are dropped: class-transformer would otherwise assign them.
  const parseJson = instance.getDefaultJsonParser('remove', 'remove');
  const json = (req: FastifyRequest, body: string, done: Done): void => {
    // An empty JSON body is an empty object, as it always was here.
    if (body.length === 0) return done(null, {});
    void parseJson(req, body, (err: Error | null, value?: unknown) => {
      // Only objects and arrays, as a strict JSON body parser takes them.
      if (err || typeof value !== 'object' || value === null) return done(bodyError(400, 'entity.parse.failed'));
      done(checkShape(value) ?? null, value);
    });
  };
  instance.addContentTypeParser('application/json', { parseAs: 'string' }, json as never);
  instance.addContentTypeParser(/^application\/[\w.+-]+\+json(?:\s*;|$)/i, { parseAs: 'string' }, json as never);
  instance.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, ((_req: FastifyRequest, body: string, done: Done) => {
    const fields = body.length ? body.split('&').length : 0;
    if (fields > MAX_FORM_FIELDS) return done(bodyError(413, 'parameters.too.many'));
    let value: unknown;
    try {
      value = qs.parse(body, { depth: MAX_BODY_DEPTH, strictDepth: true, parameterLimit: MAX_FORM_FIELDS, arrayLimit: Math.max(100, fields), allowPrototypes: true });
    } catch {
      // qs refuses a form nested past the depth.
      return done(bodyError(400, 'querystring.parse.rangeError'));
    }
    done(checkShape(value) ?? null, value);
  }) as never);
}

/** Iterative, so the check itself has no recursion to exhaust. */
function checkShape(body: unknown): BodyError | undefined {
  const stack: [value: unknown, depth: number][] = [[body, 0]];
  let values = 0;
  while (stack.length) {
    const [value, depth] = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= MAX_BODY_DEPTH) return bodyError(400, 'entity.too.deep');
    const children = Array.isArray(value) ? (value as unknown[]) : Object.values(value);
    values += children.length;
    if (values > MAX_BODY_VALUES) return bodyError(413, 'entity.too.many.values');
    for (const child of children) stack.push([child, depth + 1]);
  }
  return undefined;
}
