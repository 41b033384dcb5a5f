import { OriginAllowList } from '../common/origin-allow-list';
import { normalizePortalDomain } from './portal-domain';

describe('normalizePortalDomain', () => {
  const allow = OriginAllowList.parse('*.bitrix24.uz,http://127.0.0.1:4010');

  it.each([
    ['mycompany.bitrix24.uz', 'https://mycompany.bitrix24.uz'],
    ['https://mycompany.bitrix24.uz/', 'https://mycompany.bitrix24.uz'],
    ['  HTTPS://MyCompany.Bitrix24.UZ  ', 'https://mycompany.bitrix24.uz'],
    ['http://127.0.0.1:4010', 'http://127.0.0.1:4010'],
  ])('turns %j into %s', (input, origin) => expect(normalizePortalDomain(input, allow)).toBe(origin));

  it.each(['127.0.0.1:4010', 'http://127.0.0.1:4011', 'mycompany.bitrix24.uz:443x', 'my_company.bitrix24.uz', 'мойпортал.bitrix24.uz'])(
    'refuses %j with a 422 on domain',
    (input) => {
      expect(() => normalizePortalDomain(input, allow)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED', errors: { domain: [expect.any(String)] } }));
    },
  );
});
