import { OriginAllowList } from './origin-allow-list';

describe('OriginAllowList', () => {
  const list = OriginAllowList.parse('*.bitrix24.uz, crm.example.com, http://127.0.0.1:4010');

  it.each([
    'https://mycompany.bitrix24.uz',
    'https://MyCompany.Bitrix24.UZ',
    'https://mycompany.bitrix24.uz/',
    'https://crm.example.com',
    'https://crm.example.com:443',
    'http://127.0.0.1:4010',
  ])('allows %s', (origin) => expect(list.allows(origin)).toBe(true));

  it.each([
    'http://mycompany.bitrix24.uz',
    'https://mycompany.bitrix24.uz:8443',
    'https://bitrix24.uz',
    'https://a.b.bitrix24.uz',
    'https://mycompany.bitrix24.uz.evil.com',
    'https://evilbitrix24.uz',
    'https://user@mycompany.bitrix24.uz',
    'https://mycompany.bitrix24.uz/path',
    'https://mycompany.bitrix24.uz?x=1',
    'https://mycompany.bitrix24.uz.',
    'http://127.0.0.1:4011',
    'https://127.0.0.1:4010',
    'http://127.0.0.1',
    'https://x.crm.example.com',
    'ftp://crm.example.com',
    'not a url',
  ])('refuses %s', (origin) => expect(list.allows(origin)).toBe(false));

  it('checks the origin of a full URL and refuses credentials in it', () => {
    expect(list.allowsUrl('https://rec.bitrix24.uz/files/1.mp3?sig=x')).toBe(true);
    expect(list.allowsUrl('https://u:p@rec.bitrix24.uz/files/1.mp3')).toBe(false);
    expect(list.allowsUrl('https://rec.bitrix24.uz.evil.com/1.mp3')).toBe(false);
  });

  it.each(['*.*.bitrix24.uz', 'bitrix24.*', 'http://host/path', 'a b', 'https://'])('rejects the malformed entry %s', (entry) => {
    expect(() => OriginAllowList.parse(entry)).toThrow();
  });
});
