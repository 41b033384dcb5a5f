/** Emulator time: real time plus an offset that tests advance, so expiry rules need no sleeping. */
export class Clock {
  private offsetMs = 0;

  now(): number {
    return Date.now() + this.offsetMs;
  }

  nowSec(): number {
    return Math.floor(this.now() / 1000);
  }

  advance(seconds: number): void {
    this.offsetMs += seconds * 1000;
  }
}

/** Bitrix24 prints datetimes as PHP `DATE_ATOM`: ISO-8601 with the server's offset, no milliseconds. */
export function atom(ms: number): string {
  const offsetMin = -new Date(ms).getTimezoneOffset();
  const local = new Date(ms + offsetMin * 60_000).toISOString().slice(0, 19);
  const abs = Math.abs(offsetMin);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${local}${offsetMin >= 0 ? '+' : '-'}${hh}:${mm}`;
}
