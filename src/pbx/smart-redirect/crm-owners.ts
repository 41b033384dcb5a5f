import type { BatchCommands, BatchResult } from '../../bitrix/bitrix-api.service';
import type { PhoneNumber } from '../phone-number';

export type CrmEntityType = 'CONTACT' | 'COMPANY' | 'LEAD';

/** A CRM record found by phone and the Bitrix24 employee responsible for it. */
export interface CrmOwner {
  bitrixUserId: number;
  /** The owner's work day is open (`TIMEMAN_STATUS` OPENED); unknown, so false, on the fallback path. */
  working: boolean;
  entityType: CrmEntityType;
  entityId: number;
}

/** The fallback reads the first record of each type `findbycomm` names, in the core's own order of preference. */
const FALLBACK_GETS: [CrmEntityType, string][] = [
  ['CONTACT', 'crm.contact.get'],
  ['COMPANY', 'crm.company.get'],
  ['LEAD', 'crm.lead.get'],
];

interface SearchRow {
  CRM_ENTITY_TYPE?: unknown;
  CRM_ENTITY_ID?: unknown;
  ASSIGNED_BY_ID?: unknown;
  ASSIGNED_BY?: { TIMEMAN_STATUS?: unknown } | null;
}

/**
 * The whole lookup as one `batch` (one request against the portal's rate limit, one round trip
 * inside the deadline): `searchCrmEntities` for the E.164 number, and the fallback Bitrix24's
 * own lookup uses — `crm.duplicate.findbycomm` with the E.164 and national forms, then the
 * found records' `ASSIGNED_BY_ID` through `$result[…]` references. Whichever part finds nothing
 * leaves sub-errors (an unresolved reference) that `ownersFrom` ignores.
 */
export function ownerLookupCommands(phone: PhoneNumber): BatchCommands {
  const values = [...new Set([phone.e164, ...(phone.national ? [phone.national] : [])])];
  const commands: BatchCommands = {
    search: ['telephony.externalCall.searchCrmEntities', { PHONE_NUMBER: phone.e164 }],
    duplicates: ['crm.duplicate.findbycomm', { type: 'PHONE', values }],
  };
  for (const [type, method] of FALLBACK_GETS) commands[type] = [method, { id: `$result[duplicates][${type}][0]` }];
  return commands;
}

/**
 * The owners the batch found: `searchCrmEntities`' rows when it has any, else the fallback's
 * records. Throws when the search found nothing and the fallback itself failed (no CRM scope, a
 * portal error), so the caller can tell "nobody" from "could not ask".
 */
export function ownersFrom(batch: BatchResult): CrmOwner[] {
  const search = batch.result.search;
  if (Array.isArray(search)) {
    const owners = (search as SearchRow[]).flatMap((row) => {
      const owner = toOwner(row.CRM_ENTITY_TYPE, row.CRM_ENTITY_ID, row.ASSIGNED_BY_ID);
      return owner ? [{ ...owner, working: row.ASSIGNED_BY?.TIMEMAN_STATUS === 'OPENED' }] : [];
    });
    if (owners.length) return owners;
  }
  if (batch.result.duplicates === undefined) {
    const failure = batch.errors.duplicates;
    throw new Error(`Bitrix24 CRM lookup failed (${failure?.error || 'error'}${failure?.error_description ? `: ${failure.error_description}` : ''})`);
  }
  return FALLBACK_GETS.flatMap(([type]) => {
    const record = batch.result[type] as { ID?: unknown; ASSIGNED_BY_ID?: unknown } | undefined;
    const owner = record && toOwner(type, record.ID, record.ASSIGNED_BY_ID);
    return owner ? [{ ...owner, working: false }] : [];
  });
}

function toOwner(type: unknown, id: unknown, assignedBy: unknown): Omit<CrmOwner, 'working'> | null {
  const entityId = Number(id);
  const bitrixUserId = Number(assignedBy);
  if (type !== 'CONTACT' && type !== 'COMPANY' && type !== 'LEAD') return null;
  if (!Number.isSafeInteger(entityId) || entityId <= 0 || !Number.isSafeInteger(bitrixUserId) || bitrixUserId <= 0) return null;
  return { entityType: type, entityId, bitrixUserId };
}
