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
  const invalid = () => AppError.validation(field, 'The domain must be a Bitrix24 portal address such as mycompany.bitrix24.uz.');
  const value = input.trim().toLowerCase();
  if (!DOMAIN_SHAPE.test(value)) throw invalid();
  let url: URL;
  try {
    url = new URL(value.includes('://') ? value : `https://${value}`);
  } catch {
    throw invalid();
  }
  // DNS limits: 253 characters, labels of 1 to 63.
  if (url.hostname.length > 253 || url.hostname.split('.').some((label) => label.length < 1 || label.length > 63)) throw invalid();
  // The URL parser drops a default port (`:443`); a port the admin typed must still match an entry exactly.
  const typedPort = /:(\d+)\/?$/.exec(value.replace(/^https?:\/\//, ''))?.[1];
  const origin = url.origin;
  const portDropped = typedPort !== undefined && !origin.endsWith(`:${typedPort}`);
  if (portDropped || !allowList.allows(origin)) {
    throw AppError.validation(field, `${portDropped ? `${origin}:${typedPort}` : origin} is not an allowed Bitrix24 portal domain.`);
  }
  return origin;
}
