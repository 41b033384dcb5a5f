import type { ConfigService } from '@nestjs/config';
import type { Config } from '../config/config';
import { safeEqual, SecretBox } from './secret-box';

const box = (key: Buffer) => new SecretBox({ get: () => ({ appKey: key }) } as unknown as ConfigService<Config, true>);

describe('SecretBox', () => {
  const a = box(Buffer.alloc(32, 1));

  it('round-trips and never repeats a ciphertext', () => {
    const sealed1 = a.encrypt('refresh-token-value');
    const sealed2 = a.encrypt('refresh-token-value');
    expect(sealed1).not.toBe(sealed2);
    expect(sealed1).not.toContain('refresh-token-value');
    expect(a.decrypt(sealed1)).toBe('refresh-token-value');
  });

  it('refuses a tampered ciphertext and another key', () => {
    const sealed = a.encrypt('secret');
    const parts = sealed.split('.');
    parts[3] = Buffer.from('other!').toString('base64url');
    expect(() => a.decrypt(parts.join('.'))).toThrow();
    expect(() => box(Buffer.alloc(32, 2)).decrypt(sealed)).toThrow();
    expect(() => a.decrypt('plain-text')).toThrow('Unrecognised secret format');
  });

  it('compares secrets of any length', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('', 'x')).toBe(false);
  });
});
