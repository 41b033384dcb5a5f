import { asRecord, type Args } from '../args';
import { phonesOf, type CrmRecord, type CrmType, type MultiField } from '../crm-store';
import { plainError, RestError } from '../errors';
import { applyFilter, applyOrder, paginate, parseOrder } from '../list';
import { phoneDigits } from '../phone';
import { method, type MethodSpec } from '../types';

const CRM = ['crm'];
const MULTI_FIELDS = ['PHONE', 'EMAIL'];
const MAX_DUPLICATE_VALUES = 20;

/** List filters compare phones by digits, like the CRM's normalized phone index. */
function readField(row: CrmRecord, field: string): unknown {
  if (field === 'PHONE') return phonesOf(row);
  if (field === 'EMAIL') return Array.isArray(row.EMAIL) ? (row.EMAIL as MultiField[]).map((fm) => fm.VALUE) : [];
  return row[field];
}

function normalizeFilter(filter: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!filter) return undefined;
  return Object.fromEntries(
    Object.entries(filter).map(([key, value]) => {
      if (!/PHONE$/i.test(key)) return [key, value];
      const values = Array.isArray(value) ? value : [value];
      return [key, values.map((v) => phoneDigits(String(v)))];
    }),
  );
}

/** Without `select` (or with `*`) lists return the scalar fields; PHONE/EMAIL only when asked for. */
function project(row: CrmRecord, select: unknown[] | undefined): Record<string, unknown> {
  const wanted = (select ?? []).map((name) => String(name).toUpperCase());
  const all = wanted.length === 0 || wanted.includes('*');
  return Object.fromEntries(
    Object.entries(row).filter(([field]) =>
      field === 'ID' || wanted.includes(field) || (all && !MULTI_FIELDS.includes(field)),
    ),
  );
}

function idParam(args: Args): number {
  const id = args.int('id');
  if (id === undefined || id <= 0) throw plainError('ID is not defined or invalid.');
  return id;
}

/** add/get/list for one classic CRM entity. */
function entityMethods(type: CrmType, name: string): Record<string, MethodSpec> {
  return {
    [`crm.${name}.add`]: method(CRM, ({ portal, args, user }) => {
      const fields = args.obj('fields');
      if (!fields) throw plainError("The parameter 'fields' must be array.");
      return { result: Number(portal.crm.add(type, fields, user.ID).ID) };
    }),
    [`crm.${name}.get`]: method(CRM, ({ portal, args }) => {
      const row = portal.crm.get(type, idParam(args));
      if (!row) throw plainError('Not found');
      return { result: row };
    }),
    [`crm.${name}.list`]: method(CRM, ({ portal, args }) => {
      const rows = applyFilter(portal.crm.list(type), normalizeFilter(args.obj('filter')), readField);
      const page = paginate(applyOrder(rows, parseOrder(args.get('order')), readField), args.get('start'));
      const select = args.list('select');
      return { result: page.rows.map((row) => project(row, select)), total: page.total, next: page.next };
    }),
  };
}

export const crmMethods: Record<string, MethodSpec> = {
  ...entityMethods('LEAD', 'lead'),
  ...entityMethods('CONTACT', 'contact'),
  ...entityMethods('COMPANY', 'company'),
  ...entityMethods('DEAL', 'deal'),

  /** `{"CONTACT":[275],"LEAD":[…]}`; nothing found is an empty array `[]`, not an object. */
  'crm.duplicate.findbycomm': method(CRM, ({ portal, args }) => {
    const type = (args.str('type') ?? '').toUpperCase();
    if (!type) throw new RestError(400, 'Communication type is not defined', "Parameter 'type' is required.");
    if (type !== 'PHONE' && type !== 'EMAIL') {
      throw new RestError(400, `Communication type '${type}' is not supported in current context`, '');
    }
    const values = (args.list('values') ?? []).map(String).filter((v) => v !== '');
    if (values.length === 0) throw new RestError(400, 'Communication values is not defined', "Parameter 'values' is required.");
    if (values.length > MAX_DUPLICATE_VALUES) {
      throw new RestError(400, 'Communication values is too long', `Maximum number of values is ${MAX_DUPLICATE_VALUES}.`);
    }
    const entityType = args.str('entity_type')?.toUpperCase();
    const types = (['LEAD', 'CONTACT', 'COMPANY'] as const).filter((t) => !entityType || t === entityType);
    const wanted = new Set(values.map((v) => (type === 'PHONE' ? phoneDigits(v) : v.toLowerCase())));
    const found: Record<string, number[]> = {};
    for (const t of types) {
      const rows =
        type === 'PHONE'
          ? portal.crm.findByPhone(t, wanted)
          : portal.crm.list(t).filter((row) => (readField(row, 'EMAIL') as string[]).some((e) => wanted.has(e.toLowerCase())));
      if (rows.length > 0) found[t] = rows.map((row) => Number(row.ID));
      // With 20 or more matches of one type, the remaining types are not searched.
      if (rows.length >= MAX_DUPLICATE_VALUES) break;
    }
    return { result: Object.keys(found).length === 0 ? [] : found };
  }),

  /** Deal pipelines only (entityTypeId 2); the whole list in one reply, with `total`. */
  'crm.category.list': method(CRM, ({ portal, args }) => {
    if (args.int('entityTypeId') !== 2) {
      throw new RestError(400, 'NOT_SUPPORTED', 'Categories are supported only for deals (entityTypeId 2) here');
    }
    const categories = [...portal.crm.categories].sort((a, b) => a.sort - b.sort);
    return { result: { categories }, total: categories.length };
  }),

  'crm.status.list': method(CRM, ({ portal, args }) => {
    const order = parseOrder(args.get('order'));
    const rows = applyFilter(portal.crm.statuses(), asRecord(args.get('filter')), (row, field) => row[field as keyof typeof row]);
    const page = paginate(applyOrder(rows, order.length > 0 ? order : [['SORT', 'ASC']], (row, field) => row[field as keyof typeof row]), args.get('start'));
    return { result: page.rows, total: page.total, next: page.next };
  }),
};
