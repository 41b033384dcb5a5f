import { asRecord } from '../args';
import { applyFilter, applyOrder, filterField, paginate, parseOrder } from '../list';
import { method, USER_SCOPES, type MethodSpec, type User } from '../types';

/** `user_brief` fields; `user_basic`/`user` add the contact fields. */
const BRIEF_FIELDS = [
  'ID', 'ACTIVE', 'NAME', 'LAST_NAME', 'SECOND_NAME', 'PERSONAL_GENDER', 'WORK_POSITION', 'TIME_ZONE',
  'IS_ONLINE', 'USER_TYPE', 'DATE_REGISTER', 'UF_DEPARTMENT', 'UF_PHONE_INNER',
];
const CONTACT_FIELDS = ['EMAIL', 'PERSONAL_MOBILE', 'PERSONAL_PHONE', 'WORK_PHONE'];
/**
 * The keys `user.get` filters on (`Bitrix\Rest\Api\User::$allowedUserFields` plus IS_ONLINE,
 * NAME_SEARCH, EXTERNAL_AUTH_ID, USER_TYPE); `prepareUserData` drops every other key, so
 * `bx24_request_id`, `auth_connector` or `start` never filter.
 */
const FILTERABLE = new Set([
  'ID', 'ACTIVE', 'EMAIL', 'NAME', 'LAST_NAME', 'SECOND_NAME', 'PERSONAL_GENDER', 'PERSONAL_PROFESSION',
  'PERSONAL_WWW', 'PERSONAL_BIRTHDAY', 'PERSONAL_PHOTO', 'PERSONAL_ICQ', 'PERSONAL_PHONE', 'PERSONAL_FAX',
  'PERSONAL_MOBILE', 'PERSONAL_PAGER', 'PERSONAL_STREET', 'PERSONAL_CITY', 'PERSONAL_STATE', 'PERSONAL_ZIP',
  'PERSONAL_COUNTRY', 'WORK_COMPANY', 'WORK_POSITION', 'WORK_PHONE', 'UF_DEPARTMENT', 'UF_INTERESTS',
  'UF_SKILLS', 'UF_WEB_SITES', 'UF_XING', 'UF_LINKEDIN', 'UF_FACEBOOK', 'UF_TWITTER', 'UF_SKYPE',
  'UF_DISTRICT', 'UF_PHONE_INNER', 'USER_TYPE', 'IS_ONLINE', 'NAME_SEARCH', 'EXTERNAL_AUTH_ID',
]);

/**
 * A user's value as served: ID a string, IS_ONLINE Y/N. A field never set (an empty extension) is
 * NULL in the database and left out of the row, as in the docs' user.get sample.
 */
function served(user: User, field: string): unknown {
  switch (field) {
    case 'ID':
      return String(user.ID);
    case 'IS_ONLINE':
      return user.IS_ONLINE ? 'Y' : 'N';
    case 'UF_PHONE_INNER':
      return user.UF_PHONE_INNER === '' ? undefined : user.UF_PHONE_INNER;
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
  return Object.fromEntries(fields.map((field) => [field, served(user, field)]).filter(([, value]) => value !== undefined));
}

export const userMethods: Record<string, MethodSpec> = {
  /**
   * Filter in `FILTER` (or, legacy, the top-level keys), with Bitrix prefixes, on user fields only;
   * `sort` + `order`; `select`; pages of 50 via `start`.
   */
  'user.get': method(USER_SCOPES, ({ portal, args, scopes }) => {
    const conditions = Object.fromEntries(
      Object.entries(args.obj('FILTER') ?? args.raw).filter(([key]) => FILTERABLE.has(filterField(key))),
    );
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
