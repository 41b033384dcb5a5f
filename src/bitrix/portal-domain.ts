import { AppError } from '../common/app-error';
import type { OriginAllowList } from '../common/origin-allow-list';

/** `mycompany.bitrix24.uz`, `https://MyCompany.Bitrix24.uz/`, `http://127.0.0.1:4010`: a host, optional scheme and port, optional trailing slash. */
const DOMAIN_SHAPE = /^(https?:\/\/)?[a-z0-9.-]+(:\d{1,5})?\/?$/;

/**
 * Turns what an admin typed into the portal origin (`https://mycompany.bitrix24.uz`) and checks it
 * against BITRIX_ALLOWED_DOMAINS. Anything with userinfo, a path, a query, odd characters or an
 * origin the allow-list does not name is refused before any request is made.
 */
export function normalizePortalDomain(input: string, allowList: OriginAllowList, field = 'domain'): string {
  const value = input.trim().toLowerCase();
  if (!DOMAIN_SHAPE.test(value)) throw AppError.validation(field, 'The domain must be a Bitrix24 portal address such as mycompany.bitrix24.uz.');
  let origin: string;
  try {
    origin = new URL(value.includes('://') ? value : `https://${value}`).origin;
  } catch {
    throw AppError.validation(field, 'The domain must be a Bitrix24 portal address such as mycompany.bitrix24.uz.');
  }
  if (!allowList.allows(origin)) throw AppError.validation(field, `${origin} is not an allowed Bitrix24 portal domain.`);
  return origin;
}
