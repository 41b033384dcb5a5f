import type { BatchResult } from '../../bitrix/bitrix-api.service';
import { normalizePhone } from '../phone-number';
import { ownerLookupCommands, ownersFrom } from './crm-owners';

const batch = (result: Record<string, unknown>, errors: BatchResult['errors'] = {}): BatchResult => ({ result, errors, total: {} });
const unresolved = { error: '', error_description: 'ID is not defined or invalid.' };

describe('ownerLookupCommands', () => {
  it('searches the E.164 number and falls back to findbycomm with both forms, feeding the record reads by reference', () => {
    const commands = ownerLookupCommands(normalizePhone('90 123 45 67', 'UZ')!);
    expect(commands).toEqual({
      search: ['telephony.externalCall.searchCrmEntities', { PHONE_NUMBER: '+998901234567' }],
      duplicates: ['crm.duplicate.findbycomm', { type: 'PHONE', values: ['+998901234567', '901234567'] }],
      CONTACT: ['crm.contact.get', { id: '$result[duplicates][CONTACT][0]' }],
      COMPANY: ['crm.company.get', { id: '$result[duplicates][COMPANY][0]' }],
      LEAD: ['crm.lead.get', { id: '$result[duplicates][LEAD][0]' }],
    });
  });

  it('sends a number without a national form once', () => {
    expect(ownerLookupCommands(normalizePhone('1050', 'UZ')!).duplicates).toEqual(['crm.duplicate.findbycomm', { type: 'PHONE', values: ['1050'] }]);
  });
});

describe('ownersFrom', () => {
  it("takes searchCrmEntities' rows with their owners' work status, skipping malformed ones", () => {
    const owners = ownersFrom(
      batch({
        search: [
          { CRM_ENTITY_TYPE: 'LEAD', CRM_ENTITY_ID: 5, ASSIGNED_BY_ID: 3, ASSIGNED_BY: { TIMEMAN_STATUS: 'CLOSED' } },
          { CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: '7', ASSIGNED_BY_ID: '2', ASSIGNED_BY: { TIMEMAN_STATUS: 'OPENED' } },
          { CRM_ENTITY_TYPE: 'DEAL', CRM_ENTITY_ID: 8, ASSIGNED_BY_ID: 2 },
          { CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: 9, ASSIGNED_BY_ID: null },
        ],
        duplicates: { CONTACT: [99] },
        CONTACT: { ID: '99', ASSIGNED_BY_ID: '4' },
      }),
    );
    expect(owners).toEqual([
      { entityType: 'LEAD', entityId: 5, bitrixUserId: 3, working: false },
      { entityType: 'CONTACT', entityId: 7, bitrixUserId: 2, working: true },
    ]);
  });

  it('falls back to the records findbycomm found when the search finds nothing or fails', () => {
    const found = { duplicates: { LEAD: [12], COMPANY: [4] }, COMPANY: { ID: '4', ASSIGNED_BY_ID: '6' }, LEAD: { ID: '12', ASSIGNED_BY_ID: '1' } };
    const expected = [
      { entityType: 'COMPANY', entityId: 4, bitrixUserId: 6, working: false },
      { entityType: 'LEAD', entityId: 12, bitrixUserId: 1, working: false },
    ];
    expect(ownersFrom(batch({ search: [], ...found }, { CONTACT: unresolved }))).toEqual(expected);
    expect(ownersFrom(batch(found, { search: { error: 'ERROR_CORE', error_description: '' }, CONTACT: unresolved }))).toEqual(expected);
  });

  it('finds nobody when findbycomm answers [] (nothing found)', () => {
    expect(ownersFrom(batch({ search: [], duplicates: [] }, { CONTACT: unresolved, COMPANY: unresolved, LEAD: unresolved }))).toEqual([]);
  });

  it('throws when the search found nothing and the fallback could not ask', () => {
    expect(() => ownersFrom(batch({ search: [] }, { duplicates: { error: 'insufficient_scope', error_description: '' } }))).toThrow('Bitrix24 CRM lookup failed (insufficient_scope)');
  });
});
