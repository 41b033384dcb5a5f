/**
 * Method parameters. Bitrix24 handlers upper-case top-level keys (`array_change_key_case`), so
 * `filter`/`FILTER` and `id`/`ID` are the same parameter; values arrive as strings from forms and
 * as typed JSON otherwise, so the accessors coerce.
 */
export class Args {
  private readonly byUpper = new Map<string, unknown>();

  constructor(readonly raw: Record<string, unknown>) {
    for (const [key, value] of Object.entries(raw)) this.byUpper.set(key.toUpperCase(), value);
  }

  has(name: string): boolean {
    const value = this.get(name);
    return value !== undefined && value !== null && value !== '';
  }

  get(name: string): unknown {
    return this.byUpper.get(name.toUpperCase());
  }

  str(name: string): string | undefined {
    const value = this.get(name);
    return typeof value === 'boolean' ? undefined : scalarText(value);
  }

  int(name: string): number | undefined {
    return toInt(this.get(name));
  }

  /** PHP-ish truthiness for 0/1, Y/N, true/false flags; `fallback` when absent. */
  flag(name: string, fallback: boolean): boolean {
    const value = this.get(name);
    return value === undefined || value === null || value === '' ? fallback : toBool(value);
  }

  obj(name: string): Record<string, unknown> | undefined {
    return asRecord(this.get(name));
  }

  /** An array, or the values of a PHP-style indexed object (`values[0]=…`). */
  list(name: string): unknown[] | undefined {
    const value = this.get(name);
    if (Array.isArray(value)) return value;
    const rec = asRecord(value);
    return rec ? Object.values(rec) : undefined;
  }
}

export function asRecord(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/** A scalar as PHP would print it; undefined for arrays, objects, null. */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  return undefined;
}

export function toInt(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? value : Math.trunc(value);
  if (typeof value === 'string' && /^\s*-?\d+\s*$/.test(value)) return Number.parseInt(value, 10);
  return undefined;
}

export function toBool(value: unknown): boolean {
  if (typeof value === 'string') return ['1', 'Y', 'TRUE'].includes(value.trim().toUpperCase());
  return value === true || value === 1;
}
