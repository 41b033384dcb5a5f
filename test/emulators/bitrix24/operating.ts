const WINDOW_MS = 10 * 60_000;

/**
 * Per-method "operating" seconds over the last 10 minutes. Bitrix24 reports them in every `time`
 * block (`operating`, `operating_reset_at`) so clients can back off before OPERATION_TIME_LIMIT.
 */
export class OperatingMeter {
  private readonly spent = new Map<string, { at: number; sec: number }[]>();

  record(method: string, at: number, sec: number): void {
    const list = this.spent.get(method) ?? [];
    list.push({ at, sec });
    this.spent.set(method, list);
  }

  report(method: string, now: number): { operating_reset_at: number; operating: number } {
    const list = (this.spent.get(method) ?? []).filter((entry) => entry.at > now - WINDOW_MS);
    this.spent.set(method, list);
    const oldest = list[0]?.at ?? now;
    return {
      operating_reset_at: Math.floor((oldest + WINDOW_MS) / 1000),
      operating: list.reduce((sum, entry) => sum + entry.sec, 0),
    };
  }
}
