import { parseArgs } from 'node:util';
import { SingleBar, Presets } from 'cli-progress';
import { generateTraffic, type CallKind } from './traffic';

/**
 * `npm run pbx:simulate -- --url http://localhost:3000 --token '<id>|<secret>' --calls 500`
 * Posts a realistic day of PBX call events to `POST /pbx/events` (answered, missed, busy, ring
 * groups, transfers, outbound, recordings, duplicates, reordering) and prints what it sent;
 * with `--wait`, waits until the service has mirrored every call and prints the sync states.
 */
const USAGE = `Usage: npm run pbx:simulate -- --url <service URL> --token <bearer token> [--calls 200]
  [--operators 101,102,103] [--batch 50] [--concurrency 4] [--recordings <base URL>] [--line +998712000000]
  [--seed 1] [--wait]`;

const print = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      calls: { type: 'string', default: '200' },
      operators: { type: 'string', default: '101,102,103,104,105' },
      batch: { type: 'string', default: '50' },
      concurrency: { type: 'string', default: '4' },
      recordings: { type: 'string' },
      line: { type: 'string' },
      seed: { type: 'string', default: String(Date.now() % 100_000) },
      wait: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  const calls = Number(values.calls);
  const batch = Number(values.batch);
  const concurrency = Number(values.concurrency);
  if (values.help || !values.url || !values.token || !(calls > 0) || !(batch > 0 && batch <= 500) || !(concurrency > 0)) {
    print(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  const url = values.url.replace(/\/+$/, '');
  const headers = { Authorization: `Bearer ${values.token}`, 'Content-Type': 'application/json' };
  const { calls: generated, events } = generateTraffic({
    calls,
    operators: values.operators.split(',').map((s) => s.trim()).filter(Boolean),
    recordings: values.recordings,
    lineNumber: values.line,
    seed: Number(values.seed),
  });

  const chunks: (typeof events)[] = [];
  for (let i = 0; i < events.length; i += batch) chunks.push(events.slice(i, i + batch));
  const bar = new SingleBar({ format: 'events {bar} {value}/{total} | {duration}s | failed requests {failed}' }, Presets.shades_classic);
  bar.start(events.length, 0, { failed: 0 });
  let failed = 0;
  let next = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, chunks.length) }, async () => {
      // Chunks go out in order per worker; a failed request is retried, as a PBX would.
      while (next < chunks.length) {
        const chunk = chunks[next++];
        for (let attempt = 0; ; attempt++) {
          const res = await fetch(`${url}/pbx/events`, { method: 'POST', headers, body: JSON.stringify(chunk) }).catch(() => null);
          if (res?.status === 202) break;
          failed++;
          bar.update({ failed });
          if (res && res.status < 500 && res.status !== 429) throw new Error(`the service refused a request: HTTP ${res.status} ${await res.text()}`);
          await new Promise((r) => setTimeout(r, Math.min(10_000, 200 * 2 ** attempt)));
        }
        bar.increment(chunk.length);
      }
    }),
  );
  bar.stop();
  const seconds = (Date.now() - started) / 1000;

  const kinds = new Map<CallKind, number>();
  for (const c of generated) kinds.set(c.kind, (kinds.get(c.kind) ?? 0) + 1);
  const unique = generated.reduce((n, c) => n + c.events.length, 0);
  print(`\nSent ${events.length} events (${unique} distinct, ${events.length - unique} duplicates) for ${calls} calls in ${chunks.length} requests, ${seconds.toFixed(1)} s (${Math.round(events.length / seconds)} events/s).`);
  for (const [kind, n] of kinds) print(`  ${kind.padEnd(20)} ${n}`);
  print(`  recordings           ${generated.filter((c) => c.events.some((e) => e.event === 'recording')).length}`);

  if (values.wait) {
    const count = async (state: string) => {
      const res = await fetch(`${url}/integration/bitrix/calls?sync_state=${state}&per_page=1`, { headers });
      return ((await res.json()) as { result: { total: number } }).result.total;
    };
    process.stdout.write('Waiting for the service to mirror the calls');
    while ((await count('pending')) > 0) {
      process.stdout.write('.');
      await new Promise((r) => setTimeout(r, 1000));
    }
    const states = await Promise.all(['synced', 'failed', 'paused'].map(async (s) => `${s} ${await count(s)}`));
    print(`\nSync states: ${states.join(', ')} (${((Date.now() - started) / 1000).toFixed(1)} s after the first event).`);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
