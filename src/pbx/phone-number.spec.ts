import { normalizePhone } from './phone-number';

describe('normalizePhone', () => {
  it.each([
    ['+998 90 123 45 67'],
    ['998901234567'],
    ['901234567'],
    ['8 90 123 45 67'],
    ['(90) 123-45-67'],
    ['+998-90-123-45-67'],
    ['00998901234567'],
  ])('%s is +998901234567 in UZ', (raw) => {
    expect(normalizePhone(raw, 'UZ')).toEqual({ e164: '+998901234567', national: '901234567', valid: true });
  });

  it('keeps foreign numbers in their own country', () => {
    expect(normalizePhone('+49 30 123456', 'UZ')).toMatchObject({ e164: '+4930123456', valid: true });
  });

  it('reads national numbers of the configured country', () => {
    expect(normalizePhone('8 (912) 345-67-89', 'RU')).toMatchObject({ e164: '+79123456789', national: '9123456789' });
  });

  it('keeps the digits of numbers it cannot place', () => {
    expect(normalizePhone('1050', 'UZ')).toEqual({ e164: '1050', national: null, valid: false });
    expect(normalizePhone('+1 23', 'UZ')).toEqual({ e164: '+123', national: null, valid: false });
  });

  it('is null without digits', () => {
    expect(normalizePhone('anonymous', 'UZ')).toBeNull();
    expect(normalizePhone('', 'UZ')).toBeNull();
  });
});
