/** A request's items, waiting to be written. */
interface Waiting<T> {
  items: T[];
  written: () => void;
  failed: (err: unknown) => void;
}

interface KeyState<T> {
  running: number;
  waiting: Waiting<T>[];
}

/**
 * Group commit: at most `concurrency` writes run per key (a company) at a time, and the requests
 * that arrive meanwhile are written together by the next one, up to `maxItems` items a write.
 * Under a flood of small requests this turns a transaction each into a few large ones; when
 * requests are few, each is written at once. A request is answered when the write holding it has
 * committed. If a write of several requests fails, each is written again alone, so that a failure
 * is only its own request's.
 */
export class GroupCommit<T> {
  private readonly keys = new Map<number, KeyState<T>>();

  constructor(
    private readonly write: (key: number, items: T[]) => Promise<void>,
    private readonly concurrency: number,
    private readonly maxItems: number,
  ) {}

  add(key: number, items: T[]): Promise<void> {
    return new Promise<void>((written, failed) => {
      let state = this.keys.get(key);
      if (!state) {
        state = { running: 0, waiting: [] };
        this.keys.set(key, state);
      }
      state.waiting.push({ items, written, failed });
      this.start(key, state);
    });
  }

  private start(key: number, state: KeyState<T>): void {
    while (state.running < this.concurrency && state.waiting.length) {
      const group: Waiting<T>[] = [];
      let count = 0;
      while (state.waiting.length && (!group.length || count + state.waiting[0].items.length <= this.maxItems)) {
        const next = state.waiting.shift() as Waiting<T>;
        group.push(next);
        count += next.items.length;
      }
      state.running++;
      void this.writeGroup(key, group).finally(() => {
        state.running--;
        if (state.running || state.waiting.length) this.start(key, state);
        else this.keys.delete(key);
      });
    }
  }

  private async writeGroup(key: number, group: Waiting<T>[]): Promise<void> {
    try {
      await this.write(key, group.length === 1 ? group[0].items : group.flatMap((r) => r.items));
      for (const request of group) request.written();
    } catch (err) {
      if (group.length === 1) return group[0].failed(err);
      await Promise.all(group.map((request) => this.write(key, request.items).then(request.written, request.failed)));
    }
  }
}
