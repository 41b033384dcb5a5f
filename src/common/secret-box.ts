import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { ConfigService } from '@nestjs/config';
import type { Config } from '../config/config';
import { AppError } from './app-error';

/** `v2.<key id>.<iv>.<tag>.<ciphertext>`; `v1.<iv>.<tag>.<ciphertext>` was written before key ids. */
const VERSION = 'v2';
const LEGACY_VERSION = 'v1';

/**
 * A stored secret no configured key can open: APP_KEY was changed without the old key as
 * APP_KEY_PREVIOUS (or the ciphertext was tampered with). Coded as a re-authorisation so that,
 * wherever it surfaces, the caller sees a 409 rather than a 500.
 */
export class SecretUnreadable extends AppError {
  constructor() {
    super('INTEGRATION_REAUTH_REQUIRED', 'A stored secret cannot be decrypted with APP_KEY: Bitrix24 needs to be re-authorised.');
  }
}

interface Key {
  id: string;
  key: Buffer;
}

/**
 * AES-256-GCM encryption of secrets at rest (Bitrix24 tokens, handler keys) with APP_KEY, so a
 * database dump holds no usable credential. Each ciphertext names the key that sealed it (a hash
 * of the key, not the key), so APP_KEY can be rotated: APP_KEY_PREVIOUS is still read, and callers
 * re-seal what `isCurrent` says an older key sealed.
 */
@Injectable()
export class SecretBox {
  private readonly current: Key;
  private readonly keys: Key[];

  constructor(config: ConfigService<Config, true>) {
    const { appKey, appKeyPrevious } = config.get('app', { infer: true });
    this.current = { id: keyId(appKey), key: appKey };
    this.keys = appKeyPrevious ? [this.current, { id: keyId(appKeyPrevious), key: appKeyPrevious }] : [this.current];
  }

  encrypt(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, this.current.id, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), data.toString('base64url')].join('.');
  }

  /** The plaintext; SecretUnreadable when no configured key opens it. */
  decrypt(sealed: string): string {
    const parts = sealed.split('.');
    if (parts[0] === VERSION && parts.length === 5) {
      const key = this.keys.find((k) => k.id === parts[1]);
      const plaintext = key ? open(key.key, parts[2], parts[3], parts[4]) : null;
      if (plaintext !== null) return plaintext;
    } else if (parts[0] === LEGACY_VERSION && parts.length === 4) {
      // No key id: whichever key authenticates it sealed it.
      for (const { key } of this.keys) {
        const plaintext = open(key, parts[1], parts[2], parts[3]);
        if (plaintext !== null) return plaintext;
      }
    }
    throw new SecretUnreadable();
  }

  isReadable(sealed: string): boolean {
    try {
      this.decrypt(sealed);
      return true;
    } catch (err) {
      if (err instanceof SecretUnreadable) return false;
      throw err;
    }
  }

  /** Whether APP_KEY sealed it (else it is due for re-sealing with `encrypt(decrypt(sealed))`). */
  isCurrent(sealed: string): boolean {
    return sealed.startsWith(`${VERSION}.${this.current.id}.`);
  }
}

/** A key's public name in ciphertexts: 8 characters of its SHA-256, which reveal nothing of it. */
function keyId(key: Buffer): string {
  return createHash('sha256').update('utel-secret-box-key-id').update(key).digest().subarray(0, 6).toString('base64url');
}

/** GCM decryption; null when the key does not authenticate the ciphertext. */
function open(key: Buffer, iv: string, tag: string, data: string): string | null {
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    return null;
  }
}

/** A random secret for URLs (handler keys, OAuth state, Smart Redirect keys). */
export function randomSecret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256 hex: how secrets that must be looked up are stored beside their encrypted form. */
export function sha256Hex(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Constant-time comparison of two strings of any length. */
export function safeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}
