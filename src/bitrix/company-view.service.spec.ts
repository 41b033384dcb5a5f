import type { DataSource } from 'typeorm';
import type { ChangeListener } from '../database/change-listener';
import { CompanyViewService } from './company-view.service';

/** A database whose answers the spec releases one by one, counting the reads. */
function fakeDatabase() {
  const rows = new Map<number, { smart_redirect: boolean; smart_redirect_key_hash: string; status: string; member_id: string; bindings: [number, string][] }>();
  const pending: (() => void)[] = [];
  let reads = 0;
  let held = false;
  const query = (sql: string, [arg]: [number | string]) => {
    reads++;
    const answer = () =>
      sql.includes('WHERE smart_redirect_key_hash')
        ? [...rows.entries()].filter(([, r]) => r.smart_redirect_key_hash === arg).map(([id]) => ({ company_id: id }))
        : [structuredClone(rows.get(arg as number) ?? { smart_redirect: null, smart_redirect_key_hash: null, status: null, member_id: null, bindings: [] })];
    if (!held) return Promise.resolve(answer());
    // Answers what the row held when asked, as a query's snapshot would, however late it arrives.
    const snapshot = answer();
    return new Promise((resolve) => pending.push(() => resolve(snapshot)));
  };
  return {
    dataSource: { query } as unknown as DataSource,
    rows,
    reads: () => reads,
    hold: () => (held = true),
    releaseAll: async () => {
      held = false;
      for (const release of pending.splice(0)) release();
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

const row = (sip: string, overrides: object = {}) => ({ smart_redirect: true, smart_redirect_key_hash: 'hash-1', status: 'connected', member_id: 'm1', bindings: [[2, sip]] as [number, string][], ...overrides });

describe('CompanyViewService', () => {
  let db: ReturnType<typeof fakeDatabase>;
  let view: CompanyViewService;

  beforeEach(() => {
    db = fakeDatabase();
    db.rows.set(7, row('102'));
    view = new CompanyViewService(db.dataSource, { register: () => undefined } as unknown as ChangeListener);
    view.resume();
  });

  it('answers from memory once read, by company and by key hash', async () => {
    const facts = await view.company(7);
    expect(facts).toEqual({ companyId: 7, smartRedirect: true, smartRedirectKeyHash: 'hash-1', integration: { status: 'connected', memberId: 'm1' }, extensions: new Map([[2, '102']]) });
    const reads = db.reads();
    expect(await view.byKey('hash-1')).toBe(facts);
    expect(await view.company(7)).toBe(facts);
    expect(db.reads()).toBe(reads);
  });

  it('reads again after an invalidation; an old key hash no longer finds the company', async () => {
    await view.byKey('hash-1');
    db.rows.set(7, row('222', { smart_redirect_key_hash: 'hash-2' }));
    view.invalidate(7);
    expect(await view.byKey('hash-1')).toBeNull();
    expect((await view.byKey('hash-2'))?.extensions.get(2)).toBe('222');
  });

  it('does not keep what a read in flight saw when the company is invalidated meanwhile', async () => {
    db.hold();
    const before = view.company(7);
    db.rows.set(7, row('222'));
    view.invalidate(7);
    await db.releaseAll();
    // The caller that asked before the change may get the old facts; nobody after it does.
    expect((await before).extensions.get(2)).toBe('102');
    expect((await view.company(7)).extensions.get(2)).toBe('222');
  });

  it('shares one read between concurrent callers', async () => {
    db.hold();
    const answers = Promise.all([view.company(7), view.company(7), view.company(7)]);
    await db.releaseAll();
    expect(new Set(await answers).size).toBe(1);
    expect(db.reads()).toBe(1);
  });

  it('reads the database every time while suspended, and starts empty when resumed', async () => {
    await view.company(7);
    view.suspend();
    db.rows.set(7, row('222'));
    const reads = db.reads();
    expect((await view.company(7)).extensions.get(2)).toBe('222');
    expect((await view.company(7)).extensions.get(2)).toBe('222');
    expect(db.reads()).toBe(reads + 2);

    db.hold();
    const duringSuspension = view.company(7);
    view.resume();
    db.rows.set(7, row('333'));
    await db.releaseAll();
    await duringSuspension;
    expect((await view.company(7)).extensions.get(2)).toBe('333');
  });

  it('drops everything on invalidateAll, including reads in flight', async () => {
    await view.company(7);
    db.hold();
    db.rows.set(7, row('222'));
    view.invalidateAll();
    const during = view.company(7);
    view.invalidateAll();
    db.rows.set(7, row('333'));
    await db.releaseAll();
    expect((await during).extensions.get(2)).toBe('222');
    expect((await view.company(7)).extensions.get(2)).toBe('333');
  });

  it('expires entries after the backstop TTL', async () => {
    jest.useFakeTimers({ now: Date.now(), doNotFake: ['setImmediate', 'nextTick'] });
    try {
      await view.company(7);
      db.rows.set(7, row('222'));
      jest.setSystemTime(Date.now() + 59_000);
      expect((await view.company(7)).extensions.get(2)).toBe('102');
      jest.setSystemTime(Date.now() + 2_000);
      expect((await view.company(7)).extensions.get(2)).toBe('222');
    } finally {
      jest.useRealTimers();
    }
  });

  it('describes a company without settings or integration', async () => {
    expect(await view.company(99)).toEqual({ companyId: 99, smartRedirect: false, smartRedirectKeyHash: null, integration: null, extensions: new Map() });
    expect(await view.byKey('unknown')).toBeNull();
  });
});
