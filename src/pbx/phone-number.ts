import { parsePhoneNumberFromString, type CountryCode } from 'libphonenumber-js';
import { LRUCache } from 'lru-cache';

export interface PhoneNumber {
  /** E.164 (`+998901234567`) when the number is valid; otherwise its digits as given (`1050`). */
  e164: string;
  /** The national form Bitrix24's own CRM lookup also tries (`901234567`), or null when unknown. */
  national: string | null;
  valid: boolean;
}

/** Old trunk prefixes still dialled from habit (`8 90 123 45 67`, `0 90 …`) that current numbering plans dropped. */
const TRUNK_PREFIX = /^[80](?=\d{7,})/;

/**
 * Parsing is the costliest step of ingesting an event, and a call's events, a caller's calls and
 * every Smart Redirect lookup repeat the same few numbers: results are kept (they never change).
 */
const normalized = new LRUCache<string, { phone: PhoneNumber | null }>({ max: 20_000 });

/**
 * Normalises a phone number in any common format (`+998 90 123 45 67`, `998901234567`,
 * `901234567`, `8 90 123 45 67`, `(90) 123-45-67`) to E.164 for `country`. Null when the input
 * holds no digits at all; short or unknown numbers keep their digits so nothing is lost.
 */
export function normalizePhone(raw: string, country: string): PhoneNumber | null {
  const key = `${country}:${raw}`;
  let entry = normalized.get(key);
  if (!entry) {
    entry = { phone: parse(raw, country) };
    normalized.set(key, entry);
  }
  // A copy: callers own what they get.
  return entry.phone && { ...entry.phone };
}

function parse(raw: string, country: string): PhoneNumber | null {
  const digits = raw.replace(/\D/g, '');
  if (digits === '') return null;
  const region = country as CountryCode;
  const parse = (input: string) => {
    const parsed = parsePhoneNumberFromString(input, region);
    return parsed?.isValid() ? parsed : undefined;
  };
  const number = parse(raw) ?? (raw.trim().startsWith('+') ? undefined : parse(digits.replace(TRUNK_PREFIX, '')));
  if (number) return { e164: number.number, national: number.nationalNumber, valid: true };
  return { e164: raw.trim().startsWith('+') ? `+${digits}` : digits, national: null, valid: false };
}
