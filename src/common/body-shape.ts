import type { NextFunction, Request, Response } from 'express';

/** Deeper than any body this service takes (a Bitrix24 form nests 4 levels); qs's own default. */
export const MAX_BODY_DEPTH = 32;
/** Values (object entries and array elements) in one body: 500 PBX events fit with room to spare. */
export const MAX_BODY_VALUES = 20_000;

/** Shaped like body-parser's own errors, so the exception filter words them by `type` the same way. */
export interface BodyShapeError extends Error {
  status: number;
  type: 'entity.too.deep' | 'entity.too.many.values';
}

function shapeError(status: number, type: BodyShapeError['type']): BodyShapeError {
  return Object.assign(new Error(type), { status, type });
}

/**
 * Refuses a parsed body that nests deeper than MAX_BODY_DEPTH or holds more than MAX_BODY_VALUES
 * values, before any guard, pipe or validator walks it (their recursion is what a 2,000-deep
 * array of a few kilobytes turns into a 500). Runs after the body parsers, on every route.
 */
export function limitBodyShape(req: Request, _res: Response, next: NextFunction): void {
  next(checkShape(req.body as unknown));
}

/** Iterative, so the check itself has no recursion to exhaust. */
function checkShape(body: unknown): BodyShapeError | undefined {
  const stack: [value: unknown, depth: number][] = [[body, 0]];
  let values = 0;
  while (stack.length) {
    const [value, depth] = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= MAX_BODY_DEPTH) return shapeError(400, 'entity.too.deep');
    const children = Array.isArray(value) ? (value as unknown[]) : Object.values(value);
    values += children.length;
    if (values > MAX_BODY_VALUES) return shapeError(413, 'entity.too.many.values');
    for (const child of children) stack.push([child, depth + 1]);
  }
  return undefined;
}
