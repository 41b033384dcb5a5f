export interface InjectedError {
  status: number;
  error: string;
  error_description: string;
}

/**
 * Fault injection for one server (a portal, or the OAuth server).
 *
 * - `outage`: every request answers 500 `INTERNAL_SERVER_ERROR` (JSON), as a portal whose PHP
 *   backend fails does; nothing is executed and the rate limiter is not charged.
 * - `resetConnections`: the socket is destroyed without any answer (a network failure).
 * - `delayMs`: every answer is delayed, before anything is executed.
 * - `failNext(method, error, times)`: the next `times` calls of a REST method (lower-case name,
 *   or `*` for any) fail with `error` after auth and scope checks; inside a batch the error lands
 *   in `result_error`. On the OAuth server the "method" is the grant type. `times` may be Infinity.
 * - `leadCreationError`: register answers 200 with `LEAD_CREATION_ERROR` instead of creating a lead.
 */
export class Faults {
  outage = false;
  resetConnections = false;
  delayMs = 0;
  leadCreationError: string | null = null;
  private readonly queued = new Map<string, { error: InjectedError; left: number }[]>();

  failNext(method: string, error: InjectedError, times = 1): void {
    const key = method.toLowerCase();
    const list = this.queued.get(key) ?? [];
    list.push({ error, left: times });
    this.queued.set(key, list);
  }

  /** Consumes and returns the next injected error for `method`, if any. */
  take(method: string): InjectedError | undefined {
    for (const key of [method.toLowerCase(), '*']) {
      const list = this.queued.get(key);
      const head = list?.[0];
      if (!list || !head) continue;
      head.left -= 1;
      if (head.left <= 0) list.shift();
      return head.error;
    }
    return undefined;
  }

  reset(): void {
    this.outage = false;
    this.resetConnections = false;
    this.delayMs = 0;
    this.leadCreationError = null;
    this.queued.clear();
  }
}
