import { scalarText, toInt, type Args } from '../args';
import { atom } from '../clock';
import { displayName, type CrmType } from '../crm-store';
import { plainError, RestError } from '../errors';
import { phoneDigits, stripLetters } from '../phone';
import type { Portal } from '../portal';
import { method, type MethodSpec, type User } from '../types';

const TELEPHONY = ['telephony'];
const CRM_TYPES: readonly CrmType[] = ['CONTACT', 'COMPANY', 'LEAD'];
/** ISO-8601 with a mandatory offset, e.g. 2026-03-07T10:20:30+03:00 (PHP DATE_ATOM and friends). */
const ISO_WITH_OFFSET = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})$/;
const RECORD_DOWNLOAD_TIMEOUT_MS = 50_000;

/**
 * The employee of register and finish, as `vi_rest.php` resolves it: USER_ID, else the active
 * user whose UF_PHONE_INNER is USER_PHONE_INNER; neither → "should be set". Telephony errors are
 * `new RestException($message)` in the core: HTTP 400 with an EMPTY error code.
 */
function employeeId(portal: Portal, args: Args): number {
  const id = args.int('USER_ID');
  if (id) return id;
  const inner = args.str('USER_PHONE_INNER');
  const user = inner ? portal.users.find((u) => u.ACTIVE && u.UF_PHONE_INNER === inner) : undefined;
  if (!user) throw plainError('USER_ID or USER_PHONE_INNER should be set');
  return user.ID;
}

function activeUser(portal: Portal, id: number): User {
  const user = portal.users.find((u) => u.ACTIVE && u.ID === id);
  if (!user) throw plainError('User is not found or is not active');
  return user;
}

function startDate(portal: Portal, args: Args): { startedAt: number; startDate: string } {
  const raw = args.str('CALL_START_DATE');
  if (raw === undefined || raw === '') {
    const now = portal.clock.now();
    return { startedAt: now, startDate: atom(now) };
  }
  const match = ISO_WITH_OFFSET.exec(raw.trim());
  const offset = match?.[2]?.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
  const startedAt = match ? Date.parse(`${match[1]}${offset}`) : Number.NaN;
  if (Number.isNaN(startedAt)) throw plainError('CALL_START_DATE should be in the ISO-8601 format');
  return { startedAt, startDate: raw.trim() };
}

function userIds(args: Args): number[] | undefined {
  const list = args.list('USER_ID') ?? (args.has('USER_ID') ? [args.get('USER_ID')] : undefined);
  return list?.map(toInt).filter((id): id is number => id !== undefined);
}

function callId(args: Args): string {
  const value = args.get('CALL_ID');
  if (typeof value !== 'string') throw new RestError(400, 'INVALID_ARGUMENT', 'CALL_ID must be a string');
  return value;
}

async function download(url: string): Promise<Buffer> {
  let response: Response;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(RECORD_DOWNLOAD_TIMEOUT_MS) });
  } catch {
    throw plainError('Server returns HTTP error code 0');
  }
  if (response.status !== 200) throw plainError(`Server returns HTTP error code ${response.status}`);
  return Buffer.from(await response.arrayBuffer());
}

function base64Content(value: string): Buffer {
  const compact = value.replace(/\s+/g, '');
  if (compact === '') throw plainError('File content is empty.');
  if (compact.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(compact)) {
    throw plainError('File content is not properly encoded. Base64 encoding is expected.');
  }
  return Buffer.from(compact, 'base64');
}

export const telephonyMethods: Record<string, MethodSpec> = {
  'telephony.externalCall.register': method(TELEPHONY, ({ portal, args }) => {
    const userId = employeeId(portal, args);
    const type = args.int('TYPE');
    if (type === undefined || type < 1 || type > 5) throw plainError('Unknown TYPE');
    const start = startDate(portal, args);
    const phone = stripLetters(args.str('PHONE_NUMBER') ?? '');
    if (!/\d/.test(phone)) throw plainError('Unsupported phone number format');
    const user = activeUser(portal, userId);
    const entityType = args.str('CRM_ENTITY_TYPE')?.toUpperCase() as CrmType | undefined;
    const entityId = args.int('CRM_ENTITY_ID');
    const crmEntity =
      entityType && CRM_TYPES.includes(entityType) && entityId && entityId > 0 ? { type: entityType, id: entityId } : undefined;
    const result = portal.telephony.register({
      user,
      phone,
      type,
      ...start,
      crmCreate: args.flag('CRM_CREATE', args.flag('CRM', false)),
      crmSource: args.str('CRM_SOURCE') || undefined,
      crmEntity,
      show: args.flag('SHOW', true),
      lineNumber: args.str('LINE_NUMBER') || undefined,
      externalCallId: args.str('EXTERNAL_CALL_ID') || undefined,
      callListId: args.int('CALL_LIST_ID'),
    });
    return { result };
  }),

  'telephony.externalCall.finish': method(TELEPHONY, ({ portal, args }) => {
    const userId = employeeId(portal, args);
    const id = callId(args);
    portal.telephony.requireLive(id);
    const user = activeUser(portal, userId);
    const vote = args.int('VOTE') ?? 0;
    const row = portal.telephony.finish({
      callId: id,
      user,
      duration: Math.max(0, args.int('DURATION') ?? 0),
      statusCode: args.str('STATUS_CODE') || undefined,
      cost: Number(args.str('COST') ?? 0) || 0,
      costCurrency: args.str('COST_CURRENCY') ?? '',
      failedReason: args.str('FAILED_REASON') ?? '',
      vote: vote >= 1 && vote <= 5 ? vote : 0,
    });
    return { result: { ...row } };
  }),

  'telephony.externalCall.show': method(TELEPHONY, ({ portal, args }) => ({
    result: portal.telephony.showCard(callId(args), userIds(args), 'show'),
  })),

  'telephony.externalCall.hide': method(TELEPHONY, ({ portal, args }) => ({
    result: portal.telephony.showCard(callId(args), userIds(args), 'hide'),
  })),

  /** Three modes: RECORD_URL (downloaded now), FILENAME + FILE_CONTENT (base64), FILENAME alone (uploadUrl). */
  'telephony.externalCall.attachRecord': method(TELEPHONY, async ({ portal, args, accessToken }) => {
    const id = callId(args);
    const url = args.str('RECORD_URL');
    const filename = args.str('FILENAME');
    if (!url && filename === undefined) {
      throw plainError('Required parameters are not set. Request should contain or URL or FILENAME parameter');
    }
    const telephony = portal.telephony;
    telephony.requireFinished(id);
    if (url) {
      const name = filename || decodeURIComponent(new URL(url, portal.origin).pathname.split('/').pop() ?? '');
      return { result: telephony.attach(id, name, await download(url), 'url') };
    }
    const content = args.get('FILE_CONTENT');
    if (content !== undefined) {
      return { result: telephony.attach(id, filename ?? '', base64Content(scalarText(content) ?? ''), 'base64') };
    }
    const token = telephony.issueUpload(id, filename ?? '');
    const query = new URLSearchParams({ auth: accessToken, token });
    return { result: { uploadUrl: `${portal.origin}/rest/upload.json?${query.toString()}`, fieldName: 'file' } };
  }),

  'telephony.externalCall.searchCrmEntities': method(TELEPHONY, ({ portal, args }) => {
    const phone = args.str('PHONE_NUMBER') ?? '';
    if (phone === '') throw plainError('PHONE_NUMBER is empty');
    const digits = new Set([phoneDigits(phone)]);
    const result = CRM_TYPES.flatMap((type) =>
      portal.crm.findByPhone(type, digits).map((row) => {
        const owner = portal.users.find((u) => u.ID === Number(row.ASSIGNED_BY_ID));
        return {
          CRM_ENTITY_TYPE: type,
          CRM_ENTITY_ID: Number(row.ID),
          ASSIGNED_BY_ID: Number(row.ASSIGNED_BY_ID),
          NAME: displayName(type, row),
          ASSIGNED_BY: owner && {
            ID: String(owner.ID),
            TIMEMAN_STATUS: owner.TIMEMAN_STATUS,
            USER_PHONE_INNER: owner.UF_PHONE_INNER || null,
            WORK_PHONE: owner.WORK_PHONE || null,
            PERSONAL_PHONE: owner.PERSONAL_PHONE || null,
            PERSONAL_MOBILE: owner.PERSONAL_MOBILE || null,
          },
        };
      }),
    );
    return { result };
  }),

  'telephony.externalLine.add': method(TELEPHONY, ({ portal, args }) => {
    const number = args.str('NUMBER');
    if (!number) throw plainError('NUMBER should not be empty');
    if (portal.telephony.lines.some((line) => line.NUMBER === number)) throw plainError('Line already exists');
    const autoCreate = args.flag('CRM_AUTO_CREATE', true) ? 'Y' : 'N';
    const line = portal.telephony.ensureLine(number, args.str('NAME') ?? number, autoCreate);
    return { result: { ID: line.ID } };
  }),

  'telephony.externalLine.update': method(TELEPHONY, ({ portal, args }) => {
    const number = args.str('NUMBER') ?? '';
    if (!args.has('NAME') && !args.has('CRM_AUTO_CREATE')) throw plainError('There are no fields to update');
    const line = portal.telephony.lines.find((candidate) => candidate.NUMBER === number);
    if (!line) throw plainError(`Could not find line with number ${number}`);
    if (args.has('NAME')) line.NAME = args.str('NAME') ?? line.NAME;
    if (args.has('CRM_AUTO_CREATE')) line.CRM_AUTO_CREATE = args.flag('CRM_AUTO_CREATE', true) ? 'Y' : 'N';
    return { result: { ID: String(line.ID) } };
  }),

  'telephony.externalLine.get': method(TELEPHONY, ({ portal }) => ({
    result: portal.telephony.lines.map(({ NUMBER, NAME, CRM_AUTO_CREATE }) => ({ NUMBER, NAME, CRM_AUTO_CREATE })),
  })),

  'telephony.externalLine.delete': method(TELEPHONY, ({ portal, args }) => {
    const lines = portal.telephony.lines;
    const index = lines.findIndex((line) => line.NUMBER === args.str('NUMBER'));
    if (index !== -1) lines.splice(index, 1);
    return { result: [] };
  }),
};
