/**
 * Start-up benchmark: time from `node dist/src/main.js` to the first 200 on /health, cold (new
 * DATA_DIR: initdb + migrations) and warm (same DATA_DIR), the service's RSS when ready, and the
 * SIGTERM shutdown time. Run with `npm run bench:startup`; it rewrites its section of BENCHMARKS.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, rssMb, serviceNodeArgs, SERVICE_COMMAND, writeSection } from './support';

const ROOT = join(__dirname, '..');
const WARM_RUNS = 5;



async function run(dataDir: string): Promise<{ readyMs: number; rss: number; stopMs: number }> {
  const port = await freePort();
  const started = performance.now();
  const child: ChildProcess = spawn(process.execPath, [...serviceNodeArgs(), join(ROOT, 'dist/src/main.js')], {
    env: { ...process.env, PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn', DATABASE_URL: '' },
    stdio: 'ignore',
  });
  const deadline = started + 60_000;
  for (;;) {
    if (performance.now() > deadline) throw new Error('the service did not become healthy within 60 s');
    try {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  const readyMs = performance.now() - started;
  const rss = rssMb(child.pid!);
  const stopping = performance.now();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const code = await exited;
  if (code !== 0) throw new Error(`the service exited with ${code} on SIGTERM`);
  return { readyMs, rss, stopMs: performance.now() - stopping };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'utel-bench-'));
  try {
    const cold = await run(dataDir);
    const warm = [];
    for (let i = 0; i < WARM_RUNS; i++) warm.push(await run(dataDir));
    const rows = [
      `| cold start (initdb + migrations) to first /health 200 | ${Math.round(cold.readyMs)} ms |`,
      `| warm start to first /health 200 (median of ${WARM_RUNS}) | ${Math.round(median(warm.map((w) => w.readyMs)))} ms (max ${Math.round(Math.max(...warm.map((w) => w.readyMs)))} ms) |`,
      `| service RSS when ready (warm, median) | ${median(warm.map((w) => w.rss))} MB |`,
      `| SIGTERM to exit 0, PostgreSQL stopped (median) | ${Math.round(median(warm.map((w) => w.stopMs)))} ms |`,
    ];
    const section = [
      '<!-- bench:startup -->',
      '## Start-up and shutdown',
      '',
      `Command: \`npm run bench:startup\` (builds, then starts \`${SERVICE_COMMAND}\` with the embedded PostgreSQL in a new DATA_DIR).`,
      `Target: warm start to first 200 on /health under 10 s. Measured ${new Date().toISOString().slice(0, 10)} on this project's 2-core machine:`,
      '',
      '| what | result |',
      '|---|---|',
      ...rows,
      '<!-- /bench:startup -->',
    ].join('\n');
    writeSection('startup', section);
    process.stdout.write(`${section}\n`);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
