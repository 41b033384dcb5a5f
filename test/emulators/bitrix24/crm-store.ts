import { asRecord, scalarText } from './args';
import { atom, type Clock } from './clock';
import { phoneDigits } from './phone';

export type CrmType = 'LEAD' | 'CONTACT' | 'COMPANY' | 'DEAL';

/** A CRM item as served: upper-case fields, ids and money as strings, `null` for unset. */
export type CrmRecord = Record<string, unknown> & { ID: string };

export interface MultiField {
  ID: string;
  VALUE_TYPE: string;
  VALUE: string;
  TYPE_ID: 'PHONE' | 'EMAIL';
}

/** A deal pipeline as `crm.category.list` serves it (camelCase, integer ids, default id 0). */
export interface Category {
  id: number;
  name: string;
  sort: number;
  entityTypeId: 2;
  isDefault: 'Y' | 'N';
  originId: string;
  originatorId: string;
}

export interface CrmStatus {
  ID: string;
  ENTITY_ID: string;
  STATUS_ID: string;
  NAME: string;
  NAME_INIT: string;
  SORT: string;
  SYSTEM: 'Y' | 'N';
  CATEGORY_ID: string | null;
  SEMANTICS: 'S' | 'F' | null;
}

/** The call activity `finish` writes (ORIGIN_ID `VI_<CALL_ID>`). */
export interface CallActivity {
  ID: number;
  OWNER_TYPE: CrmType;
  OWNER_ID: number;
  PROVIDER_ID: 'VOXIMPLANT_CALL';
  DIRECTION: 'INCOMING' | 'OUTGOING';
  SUBJECT: string;
  ORIGIN_ID: string;
  RESPONSIBLE_ID: number;
  DURATION: number;
  STATUS_CODE: string;
  MISSED: boolean;
  START_TIME: string;
  RECORD_FILE_ID: number | null;
}

const TEMPLATES: Record<CrmType, Record<string, unknown>> = {
  LEAD: {
    TITLE: null, NAME: null, SECOND_NAME: null, LAST_NAME: null, COMPANY_TITLE: null,
    STATUS_ID: 'NEW', STATUS_SEMANTIC_ID: 'P', SOURCE_ID: null, SOURCE_DESCRIPTION: null,
    CURRENCY_ID: 'UZS', OPPORTUNITY: '0.00', CONTACT_ID: null, COMPANY_ID: null, COMMENTS: null,
    OPENED: 'Y', ORIGINATOR_ID: null, ORIGIN_ID: null,
  },
  CONTACT: {
    NAME: null, SECOND_NAME: null, LAST_NAME: null, TYPE_ID: 'CLIENT', SOURCE_ID: null, POST: null,
    COMMENTS: null, COMPANY_ID: null, LEAD_ID: null, OPENED: 'Y', EXPORT: 'Y', ORIGINATOR_ID: null, ORIGIN_ID: null,
  },
  COMPANY: {
    TITLE: null, COMPANY_TYPE: 'CUSTOMER', INDUSTRY: null, COMMENTS: null, LEAD_ID: null, OPENED: 'Y',
    ORIGINATOR_ID: null, ORIGIN_ID: null,
  },
  DEAL: {
    TITLE: null, TYPE_ID: 'SALE', CATEGORY_ID: '0', STAGE_ID: null, STAGE_SEMANTIC_ID: 'P', IS_NEW: 'Y',
    CLOSED: 'N', OPPORTUNITY: '0.00', CURRENCY_ID: 'UZS', CONTACT_ID: null, COMPANY_ID: null, LEAD_ID: null,
    SOURCE_ID: null, COMMENTS: null, OPENED: 'Y', ORIGINATOR_ID: null, ORIGIN_ID: null,
  },
};

const DEFAULT_SOURCES: [string, string][] = [
  ['CALL', 'Call'], ['EMAIL', 'E-Mail'], ['WEB', 'Website'], ['ADVERTISING', 'Advertising'],
  ['PARTNER', 'Existing client'], ['RECOMMENDATION', 'By recommendation'], ['TRADE_SHOW', 'Show/Exhibition'],
  ['WEBFORM', 'CRM form'], ['CALLBACK', 'Callback'], ['RC_GENERATOR', 'Sales boost'], ['STORE', 'Online Store'],
  ['OTHER', 'Other'],
];
const LEAD_STATUSES: [string, string, CrmStatus['SEMANTICS']][] = [
  ['NEW', 'Unassigned', null], ['IN_PROCESS', 'In progress', null], ['PROCESSED', 'Processed', null],
  ['JUNK', 'Junk lead', 'F'], ['CONVERTED', 'Good lead', 'S'],
];
const DEAL_STAGES: [string, string, CrmStatus['SEMANTICS']][] = [
  ['NEW', 'New', null], ['PREPARATION', 'Document preparation', null], ['EXECUTING', 'In progress', null],
  ['WON', 'Deal won', 'S'], ['LOSE', 'Deal lost', 'F'],
];

/** Leads, contacts, companies, deals, pipelines, sources and call activities of one portal. */
export class CrmStore {
  readonly leads: CrmRecord[] = [];
  readonly contacts: CrmRecord[] = [];
  readonly companies: CrmRecord[] = [];
  readonly deals: CrmRecord[] = [];
  readonly activities: CallActivity[] = [];
  readonly categories: Category[] = [
    { id: 0, name: 'General', sort: 100, entityTypeId: 2, isDefault: 'Y', originId: '', originatorId: '' },
    { id: 1, name: 'Corporate sales', sort: 200, entityTypeId: 2, isDefault: 'N', originId: '', originatorId: '' },
  ];
  readonly sources: CrmStatus[] = DEFAULT_SOURCES.map(([id, name], i) => status('SOURCE', id, name, (i + 1) * 10));
  private readonly seq: Record<CrmType | 'FM' | 'ACTIVITY', number> = {
    LEAD: 0, CONTACT: 0, COMPANY: 0, DEAL: 0, FM: 0, ACTIVITY: 0,
  };

  constructor(private readonly clock: Clock) {}

  list(type: CrmType): CrmRecord[] {
    return { LEAD: this.leads, CONTACT: this.contacts, COMPANY: this.companies, DEAL: this.deals }[type];
  }

  get(type: CrmType, id: number | string): CrmRecord | undefined {
    return this.list(type).find((row) => row.ID === String(id));
  }

  /** Creates an item from `fields` (any key case); PHONE/EMAIL become multi-fields. */
  add(type: CrmType, fields: Record<string, unknown>, actingUserId: number): CrmRecord {
    const id = String(++this.seq[type]);
    const now = atom(this.clock.now());
    const input = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k.toUpperCase(), v]));
    const record: CrmRecord = { ID: id, ...TEMPLATES[type] };
    for (const [key, value] of Object.entries(input)) {
      if (key === 'PHONE' || key === 'EMAIL') record[key] = this.multiFields(key, value);
      else if (key !== 'ID') record[key] = typeof value === 'number' ? String(value) : value;
    }
    record.ASSIGNED_BY_ID = scalarText(record.ASSIGNED_BY_ID) ?? String(actingUserId);
    record.CREATED_BY_ID = record.MODIFY_BY_ID = String(actingUserId);
    record.DATE_CREATE = record.DATE_MODIFY = now;
    record.HAS_PHONE = Array.isArray(record.PHONE) && record.PHONE.length > 0 ? 'Y' : 'N';
    record.HAS_EMAIL = Array.isArray(record.EMAIL) && record.EMAIL.length > 0 ? 'Y' : 'N';
    if (type === 'LEAD' || type === 'DEAL' || type === 'COMPANY') record.TITLE ??= `${titleCase(type)} #${id}`;
    if (type === 'DEAL') {
      const category = Number(record.CATEGORY_ID ?? 0);
      record.CATEGORY_ID = String(category);
      record.STAGE_ID ??= category === 0 ? 'NEW' : `C${category}:NEW`;
      record.BEGINDATE = now;
    }
    this.list(type).push(record);
    return record;
  }

  findByPhone(type: CrmType, digits: ReadonlySet<string>): CrmRecord[] {
    return this.list(type).filter((row) => phonesOf(row).some((phone) => digits.has(phone)));
  }

  addActivity(activity: Omit<CallActivity, 'ID'>): CallActivity {
    const saved = { ID: ++this.seq.ACTIVITY, ...activity };
    this.activities.push(saved);
    return saved;
  }

  /** Every status list `crm.status.list` knows: sources, lead statuses, deal stages per pipeline. */
  statuses(): CrmStatus[] {
    const leadStatuses = LEAD_STATUSES.map(([id, name, sem], i) => status('STATUS', id, name, (i + 1) * 10, sem));
    const stages = this.categories.flatMap((category) =>
      DEAL_STAGES.map(([id, name, sem], i) =>
        status(
          category.id === 0 ? 'DEAL_STAGE' : `DEAL_STAGE_${category.id}`,
          category.id === 0 ? id : `C${category.id}:${id}`,
          name,
          (i + 1) * 10,
          sem,
          String(category.id),
        ),
      ),
    );
    return [...this.sources, ...leadStatuses, ...stages].map((row, i) => ({ ...row, ID: String(i + 1) }));
  }

  private multiFields(typeId: 'PHONE' | 'EMAIL', value: unknown): MultiField[] {
    const items = Array.isArray(value) ? value : Object.values(asRecord(value) ?? {});
    return items
      .map((item): Record<string, unknown> => asRecord(item) ?? { VALUE: item })
      .filter((item) => typeof item.VALUE === 'string' && item.VALUE !== '')
      .map((item) => ({
        ID: String(++this.seq.FM),
        VALUE_TYPE: typeof item.VALUE_TYPE === 'string' ? item.VALUE_TYPE : 'WORK',
        VALUE: item.VALUE as string,
        TYPE_ID: typeId,
      }));
  }
}

/** Normalized phones of a CRM item. */
export function phonesOf(row: CrmRecord): string[] {
  return Array.isArray(row.PHONE) ? (row.PHONE as MultiField[]).map((fm) => phoneDigits(fm.VALUE)) : [];
}

/** The name a call card or `searchCrmEntities` shows. */
export function displayName(type: CrmType, row: CrmRecord): string {
  const person = [row.NAME, row.LAST_NAME].filter((part) => typeof part === 'string' && part !== '').join(' ');
  return type === 'CONTACT' ? person : (scalarText(row.TITLE) ?? person);
}

function status(
  entityId: string,
  statusId: string,
  name: string,
  sort: number,
  semantics: CrmStatus['SEMANTICS'] = null,
  categoryId: string | null = null,
): CrmStatus {
  return {
    ID: '0', ENTITY_ID: entityId, STATUS_ID: statusId, NAME: name, NAME_INIT: name, SORT: String(sort),
    SYSTEM: 'Y', CATEGORY_ID: categoryId, SEMANTICS: semantics,
  };
}

const titleCase = (type: CrmType): string => type.charAt(0) + type.slice(1).toLowerCase();
