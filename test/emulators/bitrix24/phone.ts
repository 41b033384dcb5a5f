/**
 * CRM matching compares digits only, so `+998 90 123-45-67` and `998901234567` match, while the
 * national form `901234567` does not: clients must retry with it, as against the real portal.
 * An extension (`…;ext=12`, `… доб. 12`, `…#12`) is ignored.
 */
export function phoneDigits(phone: string): string {
  return phone.split(/;|#|ext|доб/i)[0].replace(/\D/g, '');
}

/** `telephony.externalcall.register` only strips letters from the number. */
export function stripLetters(phone: string): string {
  return phone.replace(/[^\d+#*]/g, '');
}
