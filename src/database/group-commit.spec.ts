import { GroupCommit } from './group-commit';

/** A write the spec finishes by hand, recording what each write held. */
function fakeWrites() {
  const writes: { key: number; items: string[]; finish: (err?: Error) => void }[] = [];
  const write = (key: number, items: string[]) =>
    new Promise<void>((resolve, reject) => writes.push({ key, items, finish: (err) => (err ? reject(err) : resolve()) }));
  return { writes, write };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('GroupCommit', () => {
  it('writes a lone request at once, and answers it when its write is done', async () => {
    const { writes, write } = fakeWrites();
    const group = new GroupCommit(write, 2, 10);
    let answered = false;
    const done = group.add(1, ['a']).then(() => (answered = true));
    expect(writes.map((w) => w.items)).toEqual([['a']]);
    await tick();
    expect(answered).toBe(false);
    writes[0].finish();
    await done;
    expect(answered).toBe(true);
  });

  it('writes the requests that arrive while the writes of a key run together, in order, up to maxItems a write', async () => {
    const { writes, write } = fakeWrites();
    const group = new GroupCommit(write, 2, 4);
    const requests = [['a'], ['b'], ['c', 'd'], ['e'], ['f'], ['g', 'h', 'i']].map((items) => group.add(1, items));
    // Two run; the others wait.
    expect(writes.map((w) => w.items)).toEqual([['a'], ['b']]);
    writes[0].finish();
    await tick();
    expect(writes.map((w) => w.items)).toEqual([['a'], ['b'], ['c', 'd', 'e', 'f']]);
    writes[1].finish();
    await tick();
    expect(writes.map((w) => w.items)).toEqual([['a'], ['b'], ['c', 'd', 'e', 'f'], ['g', 'h', 'i']]);
    for (const w of writes.slice(2)) w.finish();
    await Promise.all(requests);
  });

  it('keeps keys apart: another company never waits for this one', () => {
    const { writes, write } = fakeWrites();
    const group = new GroupCommit(write, 1, 10);
    void group.add(1, ['a']);
    void group.add(1, ['b']);
    void group.add(2, ['x']);
    expect(writes.map((w) => [w.key, w.items])).toEqual([
      [1, ['a']],
      [2, ['x']],
    ]);
  });

  it('writes a request larger than maxItems alone', async () => {
    const { writes, write } = fakeWrites();
    const group = new GroupCommit(write, 1, 2);
    const requests = [group.add(1, ['a']), group.add(1, ['b', 'c', 'd']), group.add(1, ['e'])];
    writes[0].finish();
    await tick();
    writes[1].finish();
    await tick();
    writes[2].finish();
    await Promise.all(requests);
    expect(writes.map((w) => w.items)).toEqual([['a'], ['b', 'c', 'd'], ['e']]);
  });

  it('writes each request of a failed group alone, so that only the one that fails gets the error', async () => {
    const { writes, write } = fakeWrites();
    const group = new GroupCommit(write, 1, 10);
    const first = group.add(1, ['a']);
    const results = [group.add(1, ['b']), group.add(1, ['bad']), group.add(1, ['c'])].map((p) => p.then(() => 'written', (err: Error) => err.message));
    writes[0].finish();
    await first;
    await tick();
    expect(writes[1].items).toEqual(['b', 'bad', 'c']);
    writes[1].finish(new Error('group failed'));
    await tick();
    expect(writes.slice(2).map((w) => w.items)).toEqual([['b'], ['bad'], ['c']]);
    for (const w of writes.slice(2)) w.finish(w.items[0] === 'bad' ? new Error('bad row') : undefined);
    expect(await Promise.all(results)).toEqual(['written', 'bad row', 'written']);
  });

  it('answers a lone request that fails with its error, and goes on with the next', async () => {
    const { writes, write } = fakeWrites();
    const group = new GroupCommit(write, 1, 10);
    const failed = group.add(1, ['a']).catch((err: Error) => err.message);
    const next = group.add(1, ['b']);
    writes[0].finish(new Error('down'));
    expect(await failed).toBe('down');
    await tick();
    writes[1].finish();
    await next;
    expect(writes.map((w) => w.items)).toEqual([['a'], ['b']]);
  });
});
