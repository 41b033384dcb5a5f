/**
 * An allow-list of origins, shared by everything that sends requests to an address that came
 * from outside (Bitrix24 portals, recording downloads). Entries are either host patterns
 * (`*.bitrix24.uz`, `crm.example.com` — https on the default port, `*` standing for exactly one
 * label) or exact origins with scheme and port (`http://127.0.0.1:4010`). Nothing else matches.
 */
export class OriginAllowList {
  private readonly hostPatterns: string[][] = [];
  private readonly exactOrigins = new Set<string>();

  constructor(readonly entries: readonly string[]) {
    for (const raw of entries) {
      const entry = raw.trim().toLowerCase();
      if (entry.includes('://')) {
        const url = parseStrictOrigin(entry);
        if (!url) throw new Error(`"${raw}" is not an origin (scheme://host[:port])`);
        this.exactOrigins.add(url.origin);
      } else {
        if (!/^(\*\.)?([a-z0-9-]+\.)*[a-z0-9-]+$/.test(entry)) throw new Error(`"${raw}" is not a host pattern`);
        this.hostPatterns.push(entry.split('.'));
      }
    }
  }

  static parse(this: void, csv: string): OriginAllowList {
    return new OriginAllowList(csv.split(',').map((s) => s.trim()).filter(Boolean));
  }

  /** True when `origin` (a bare origin: no userinfo, path, query or fragment) is allowed. */
  allows(origin: string): boolean {
    const url = parseStrictOrigin(origin);
    if (!url) return false;
    if (this.exactOrigins.has(url.origin)) return true;
    if (url.protocol !== 'https:' || url.port !== '') return false;
    const labels = url.hostname.split('.');
    return this.hostPatterns.some(
      (pattern) => pattern.length === labels.length && pattern.every((p, i) => p === labels[i] || (i === 0 && p === '*' && labels[i] !== '')),
    );
  }

  /** True when the URL's origin is allowed (used for URLs with a path, such as recordings). */
  allowsUrl(value: string): boolean {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return false;
    }
    if (url.username || url.password) return false;
    return this.allows(url.origin);
  }
}

/** Parses `scheme://host[:port]` with nothing after it (a single trailing slash is tolerated). */
function parseStrictOrigin(value: string): URL | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return null;
  if (url.username || url.password || url.search || url.hash || url.pathname !== '/') return null;
  if (/[@?#]/.test(value.slice(value.indexOf('://') + 3).replace(/\/$/, ''))) return null;
  return url;
}
