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

describe('normalizePortalDomain limits', () => {
  const allow = OriginAllowList.parse('*.bitrix24.uz');

  it('refuses hosts beyond the DNS limits instead of failing later', () => {
    expect(() => normalizePortalDomain(`${'a'.repeat(64)}.bitrix24.uz`, allow)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
    expect(() => normalizePortalDomain(`${'a'.repeat(63)}.bitrix24.uz`, allow)).not.toThrow();
  });

  it('refuses an explicit port, even the default one, unless an entry names it', () => {
    expect(() => normalizePortalDomain('mycompany.bitrix24.uz:443', allow)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
    expect(() => normalizePortalDomain('https://mycompany.bitrix24.uz:443/', allow)).toThrow(expect.objectContaining({ code: 'VALIDATION_FAILED' }));
  });
});
