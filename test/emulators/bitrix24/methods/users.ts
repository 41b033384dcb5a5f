import { asRecord } from '../args';
import { applyFilter, applyOrder, paginate, parseOrder } from '../list';
import { method, USER_SCOPES, type MethodSpec, type User } from '../types';

/** `user_brief` fields; `user_basic`/`user` add the contact fields. */
const BRIEF_FIELDS = [
  'ID', 'ACTIVE', 'NAME', 'LAST_NAME', 'SECOND_NAME', 'PERSONAL_GENDER', 'WORK_POSITION', 'TIME_ZONE',
  'IS_ONLINE', 'USER_TYPE', 'DATE_REGISTER', 'UF_DEPARTMENT', 'UF_PHONE_INNER',
];
const CONTACT_FIELDS = ['EMAIL', 'PERSONAL_MOBILE', 'PERSONAL_PHONE', 'WORK_PHONE'];
const RESERVED_PARAMS = new Set(['SORT', 'ORDER', 'SELECT', 'START', 'ADMIN_MODE', 'FILTER', 'IMAGE_RESIZE']);

/** A user's value as served: ID a string, ACTIVE a boolean, an empty extension `null`. */
function served(user: User, field: string): unknown {
  switch (field) {
    case 'ID':
      return String(user.ID);
    case 'IS_ONLINE':
      return user.IS_ONLINE ? 'Y' : 'N';
    case 'UF_PHONE_INNER':
      return user.UF_PHONE_INNER === '' ? null : user.UF_PHONE_INNER;
    default:
      return (user as unknown as Record<string, unknown>)[field];
  }
}

function visibleFields(scopes: ReadonlySet<string>): string[] {
  const contacts = scopes.has('user') || scopes.has('user_basic');
  return contacts ? [...BRIEF_FIELDS, ...CONTACT_FIELDS] : BRIEF_FIELDS;
}

/** Fields outside the granted scopes are silently dropped from `select`; ID is always there. */
export function userRow(user: User, scopes: ReadonlySet<string>, select?: unknown[]): Record<string, unknown> {
  const visible = visibleFields(scopes);
  const wanted = select?.map((name) => String(name).toUpperCase());
  const fields =
    !wanted || wanted.length === 0 || wanted.includes('*')
      ? visible
      : visible.filter((f) => f === 'ID' || wanted.includes(f) || (wanted.includes('UF_*') && f.startsWith('UF_')));
  return Object.fromEntries(fields.map((field) => [field, served(user, field)]));
}

export const userMethods: Record<string, MethodSpec> = {
  /**
   * Filter in `FILTER` (or, legacy, at the top level), with Bitrix prefixes; `sort` + `order`;
   * `select`; pages of 50 via `start`.
   */
  'user.get': method(USER_SCOPES, ({ portal, args, scopes }) => {
    const conditions = {
      ...(args.obj('FILTER') ??
        Object.fromEntries(Object.entries(args.raw).filter(([key]) => !RESERVED_PARAMS.has(key.toUpperCase())))),
    };
    const searchKey = Object.keys(conditions).find((key) => key.toUpperCase() === 'NAME_SEARCH');
    const search = searchKey === undefined ? undefined : conditions[searchKey];
    if (searchKey !== undefined) delete conditions[searchKey];
    const read = (user: User, field: string): unknown => (field === 'ID' ? user.ID : served(user, field));
    let rows = applyFilter(portal.users, conditions, read);
    if (typeof search === 'string' && search !== '') {
      const needle = search.toLowerCase();
      rows = rows.filter((user) =>
        [user.NAME, user.LAST_NAME, user.SECOND_NAME, user.EMAIL].some((part) => part.toLowerCase().includes(needle)),
      );
    }
    const orderParam = args.get('order');
    const order = asRecord(orderParam)
      ? parseOrder(orderParam)
      : [[(args.str('sort') ?? 'ID').toUpperCase(), (args.str('order') ?? 'ASC').toUpperCase() === 'DESC' ? 'DESC' : 'ASC'] as [string, 'ASC' | 'DESC']];
    const page = paginate(applyOrder(rows, order, read), args.get('start'));
    return { result: page.rows.map((user) => userRow(user, scopes, args.list('select'))), total: page.total, next: page.next };
  }),

  'user.current': method(null, ({ user, scopes }) => ({ result: userRow(user, scopes) })),
};
