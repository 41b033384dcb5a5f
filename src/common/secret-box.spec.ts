import { createCipheriv, randomBytes } from 'node:crypto';
import type { ConfigService } from '@nestjs/config';
import type { Config } from '../config/config';
import { safeEqual, SecretBox, SecretUnreadable } from './secret-box';

const box = (appKey: Buffer, appKeyPrevious: Buffer | null = null) =>
  new SecretBox({ get: () => ({ appKey, appKeyPrevious }) } as unknown as ConfigService<Config, true>);

/** A ciphertext as the service wrote it before key ids (`v1.<iv>.<tag>.<data>`). */
function legacySeal(key: Buffer, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), data.toString('base64url')].join('.');
}

describe('SecretBox', () => {
  const k1 = Buffer.alloc(32, 1);
  const k2 = Buffer.alloc(32, 2);
  const a = box(k1);

  it('round-trips and never repeats a ciphertext', () => {
    const sealed1 = a.encrypt('refresh-token-value');
    const sealed2 = a.encrypt('refresh-token-value');
    expect(sealed1).not.toBe(sealed2);
    expect(sealed1).not.toContain('refresh-token-value');
    expect(a.decrypt(sealed1)).toBe('refresh-token-value');
  });

  it('names the sealing key by an id that reveals nothing of the key', () => {
    const [version, id] = a.encrypt('x').split('.');
    expect(version).toBe('v2');
    expect(id).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(id).not.toBe(box(k2).encrypt('x').split('.')[1]);
    expect(k1.toString('base64url')).not.toContain(id);
  });

  it('refuses a tampered ciphertext, another key and garbage with SecretUnreadable (a 409, never a 500)', () => {
    const sealed = a.encrypt('secret');
    const parts = sealed.split('.');
    parts[4] = Buffer.from('other!').toString('base64url');
    for (const attempt of [() => a.decrypt(parts.join('.')), () => box(k2).decrypt(sealed), () => a.decrypt('plain-text'), () => a.decrypt('v2.x.y')]) {
      expect(attempt).toThrow(SecretUnreadable);
    }
    expect(new SecretUnreadable().status).toBe(409);
  });

  it('reads what the previous key sealed during a rotation, and says it is due for re-sealing', () => {
    const old = a.encrypt('token');
    const rotated = box(k2, k1);
    expect(rotated.decrypt(old)).toBe('token');
    expect(rotated.isCurrent(old)).toBe(false);
    const resealed = rotated.encrypt(rotated.decrypt(old));
    expect(rotated.isCurrent(resealed)).toBe(true);
    // Once re-sealed, the previous key is no longer needed.
    expect(box(k2).decrypt(resealed)).toBe('token');
    expect(() => box(k2).decrypt(old)).toThrow(SecretUnreadable);
  });

  it('still reads ciphertexts written before key ids, with either key, and re-seals them', () => {
    const legacy = legacySeal(k1, 'legacy-token');
    expect(a.decrypt(legacy)).toBe('legacy-token');
    expect(a.isCurrent(legacy)).toBe(false);
    expect(box(k2, k1).decrypt(legacy)).toBe('legacy-token');
    expect(() => box(k2).decrypt(legacy)).toThrow(SecretUnreadable);
  });

  it('compares secrets of any length', () => {
    expect(safeEqual('abc', 'abc')).toBe(true);
    expect(safeEqual('abc', 'abcd')).toBe(false);
    expect(safeEqual('', 'x')).toBe(false);
  });
});
