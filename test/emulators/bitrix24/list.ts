import { asRecord, scalarText, toBool, toInt } from './args';

export const PAGE_SIZE = 50;

/** Reads a field of a row by its upper-case name; arrays mean "any element". */
export type FieldReader<T> = (row: T, field: string) => unknown;

/** Longest prefixes first, so `>=ID` is not read as `>` + `=ID`. */
const OPERATORS = ['!=%', '>=', '<=', '=%', '%=', '!%', '!@', '!=', '>', '<', '@', '%', '=', '!'] as const;
type Operator = (typeof OPERATORS)[number] | '';

interface Condition {
  op: Operator;
  field: string;
  target: unknown;
}

/** Bitrix list filters: `{">ID": 5, "ACTIVE": true, "@ID": [1,2], "%NAME": "Ali", "!UF_PHONE_INNER": ""}`. */
export function applyFilter<T>(rows: T[], filter: unknown, read: FieldReader<T>): T[] {
  const record = asRecord(filter);
  if (!record) return rows;
  const conditions = Object.entries(record).map(([key, target]): Condition => {
    const op = operator(key);
    return { op, field: key.slice(op.length).toUpperCase(), target };
  });
  return rows.filter((row) => conditions.every((c) => test(read(row, c.field), c)));
}

function operator(key: string): Operator {
  return OPERATORS.find((prefix) => key.startsWith(prefix)) ?? '';
}

/** The upper-case field a filter key names, without its operator prefix (`>=ID` → `ID`). */
export function filterField(key: string): string {
  return key.slice(operator(key).length).toUpperCase();
}

function test(value: unknown, { op, target }: Condition): boolean {
  const values = Array.isArray(value) ? value : [value];
  const record = asRecord(target);
  const targets = Array.isArray(target) ? target : record ? Object.values(record) : [target];
  const any = (predicate: (v: unknown, t: unknown) => boolean): boolean =>
    values.some((v) => targets.some((t) => predicate(v, t)));
  switch (op) {
    case '':
    case '=':
    case '@':
      return any(equals);
    case '!':
    case '!=':
    case '!@':
      return !any(equals);
    case '>':
      return any((v, t) => compare(v, t) > 0);
    case '>=':
      return any((v, t) => compare(v, t) >= 0);
    case '<':
      return any((v, t) => compare(v, t) < 0);
    case '<=':
      return any((v, t) => compare(v, t) <= 0);
    case '%':
      return any((v, t) => text(v).includes(text(t)));
    case '!%':
      return !any((v, t) => text(v).includes(text(t)));
    case '=%':
    case '%=':
      return any((v, t) => like(text(t)).test(text(v)));
    case '!=%':
      return !any((v, t) => like(text(t)).test(text(v)));
  }
}

function equals(value: unknown, target: unknown): boolean {
  if (typeof value === 'boolean') return value === toBool(target);
  if (value === null || value === undefined || value === '') return target === '' || target === null || target === false;
  return compare(value, target) === 0;
}

function compare(a: unknown, b: unknown): number {
  const x = numeric(a);
  const y = numeric(b);
  if (x !== undefined && y !== undefined) return x - y;
  return text(a).localeCompare(text(b));
}

function numeric(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return undefined;
}

const text = (value: unknown): string => (scalarText(value) ?? '').toLowerCase();

function like(pattern: string): RegExp {
  const body = pattern
    .split('%')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(`^${body}$`, 'i');
}

/** `order: {ID: "DESC"}` (CRM) or `sort: "ID", order: "DESC"` (user.get); ID ascending by default. */
export function applyOrder<T>(rows: T[], order: [string, 'ASC' | 'DESC'][], read: FieldReader<T>): T[] {
  const keys: [string, 'ASC' | 'DESC'][] = order.length > 0 ? order : [['ID', 'ASC']];
  return [...rows].sort((a, b) => {
    for (const [field, dir] of keys) {
      const diff = compare(read(a, field), read(b, field));
      if (diff !== 0) return dir === 'DESC' ? -diff : diff;
    }
    return 0;
  });
}

export function parseOrder(order: unknown): [string, 'ASC' | 'DESC'][] {
  const record = asRecord(order);
  if (!record) return [];
  return Object.entries(record).map(([field, dir]) => [
    field.toUpperCase(),
    String(dir).toUpperCase() === 'DESC' ? 'DESC' : 'ASC',
  ]);
}

export interface Page<T> {
  rows: T[];
  total?: number;
  next?: number;
}

/** Fixed pages of 50. `start=-1` skips the count: no `total`, no `next` (the fast-scan mode). */
export function paginate<T>(rows: T[], start: unknown): Page<T> {
  const from = toInt(start) ?? 0;
  if (from === -1) return { rows: rows.slice(0, PAGE_SIZE) };
  const offset = Math.max(0, from);
  const page: Page<T> = { rows: rows.slice(offset, offset + PAGE_SIZE), total: rows.length };
  if (offset + PAGE_SIZE < rows.length) page.next = offset + PAGE_SIZE;
  return page;
}
