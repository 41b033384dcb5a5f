import { asRecord, scalarText } from './args';
import { parseQuery } from './http';
import { method, type CallContext, type MethodResult } from './types';

const MAX_COMMANDS = 50;
/** The real batch refuses itself and the file transfer endpoints, command by command. */
const NOT_IN_BATCH = new Set(['batch', 'upload', 'download']);
const REFERENCE = /\$(result|result_error|result_total|result_next)\[([^\]]*)\]((?:\[[^\]]*\])*)/g;

type Collected = Record<'result' | 'result_error' | 'result_total' | 'result_next' | 'result_time', [string, unknown][]>;

/**
 * `batch`, after `CRestProvider::methodsBatch`: `"method?query"` commands (object or array),
 * executed in order with the caller's auth; later commands may reference earlier results
 * (`$result[find][0][ID]`). The first 50 entries run; every later one gets
 * ERROR_BATCH_LENGTH_EXCEEDED in `result_error` (non-string entries count but are skipped).
 * Counts once against the rate limit. Always HTTP 200; empty maps are encoded as `[]` (PHP arrays).
 */
export const batchMethod = method(null, async (ctx: CallContext): Promise<MethodResult> => {
  const halt = phpBool(ctx.args.get('halt'));
  const out: Collected = { result: [], result_error: [], result_total: [], result_next: [], result_time: [] };
  for (const [index, [key, command]] of commandList(ctx.args.get('cmd')).entries()) {
    if (index >= MAX_COMMANDS) {
      out.result_error.push([key, { error: 'ERROR_BATCH_LENGTH_EXCEEDED', error_description: 'Max batch length exceeded' }]);
      if (halt) break;
      continue;
    }
    if (typeof command !== 'string') continue;
    const split = command.indexOf('?');
    const name = (split === -1 ? command : command.slice(0, split)).trim().toLowerCase().replace(/\.json$/, '');
    if (NOT_IN_BATCH.has(name)) {
      out.result_error.push([key, { error: 'ERROR_BATCH_METHOD_NOT_ALLOWED', error_description: 'Method is not allowed for batch usage' }]);
      if (halt) break;
      continue;
    }
    const params = parseQuery(split === -1 ? '' : command.slice(split + 1));
    delete params.auth; // commands run with the batch's own auth
    const outcome = await ctx.invoke(name, substitute(params, out) as Record<string, unknown>);
    if (!outcome.ok) {
      out.result_error.push([key, outcome.error.toJSON()]);
      if (halt) break;
      continue;
    }
    out.result.push([key, outcome.value.result]);
    if (outcome.value.total !== undefined) out.result_total.push([key, outcome.value.total]);
    if (outcome.value.next !== undefined) out.result_next.push([key, outcome.value.next]);
    out.result_time.push([key, outcome.time]);
  }
  return {
    result: Object.fromEntries(Object.entries(out).map(([field, entries]) => [field, phpArray(entries)])),
  };
});

function commandList(cmd: unknown): [string, unknown][] {
  return Array.isArray(cmd) ? cmd.map((value, i) => [String(i), value]) : Object.entries(asRecord(cmd) ?? {});
}

/** Replaces `$result[key][path…]` references; a reference that fills the whole value keeps its type. */
function substitute(value: unknown, out: Collected): unknown {
  if (Array.isArray(value)) return value.map((item) => substitute(item, out));
  const record = asRecord(value);
  if (record) return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, substitute(v, out)]));
  if (typeof value !== 'string') return value;
  const whole = new RegExp(`^${REFERENCE.source}$`).exec(value);
  if (whole) return resolve(out, whole[1], whole[2], whole[3]) ?? value;
  return value.replace(REFERENCE, (full: string, kind: string, key: string, path: string) => {
    const found = resolve(out, kind, key, path);
    return scalarText(found) ?? full;
  });
}

function resolve(out: Collected, kind: string, key: string, path: string): unknown {
  let current = out[kind as keyof Collected].find(([k]) => k === key)?.[1];
  for (const [, segment] of path.matchAll(/\[([^\]]*)\]/g)) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current === null ? undefined : current;
}

/** PHP `json_encode` of an array: a list when keys are 0..n-1 in order (so empty is `[]`), else an object. */
function phpArray(entries: [string, unknown][]): unknown {
  const isList = entries.every(([key], i) => key === String(i));
  return isList ? entries.map(([, value]) => value) : Object.fromEntries(entries);
}

/** PHP `(bool)`: only '', '0', 0, false and null are false (so the string 'false' halts). */
function phpBool(value: unknown): boolean {
  return !(value === undefined || value === null || value === false || value === 0 || value === '' || value === '0');
}
