import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Bitrix24Emulator } from '../test/emulators/bitrix24/emulator';
import type { Portal } from '../test/emulators/bitrix24/portal';

/** Small helpers every benchmark uses. */

/** A TCP port that is free right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Nearest-rank percentile of an ascending list. */
export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** The resident set of a process, MB. */
export function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Math.round(Number(line?.replace(/\D/g, '') ?? 0) / 1024);
}

/** CPU time a process has used so far (user + system, all its threads), ms. */
export function cpuMs(pid: number): number {
  // The fields after the command name, which may hold spaces: utime and stime are the 12th and 13th.
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** Rewrites this benchmark's own section of BENCHMARKS.md (between `<!-- bench:NAME -->` markers), or appends it. */
export function writeSection(name: string, section: string): void {
  const file = join(__dirname, '..', 'BENCHMARKS.md');
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\nEach section is rewritten by the command it names.\n';
  const pattern = new RegExp(`<!-- bench:${name} -->[\\s\\S]*<!-- /bench:${name} -->`);
  writeFileSync(file, pattern.test(current) ? current.replace(pattern, () => section) : `${current.trimEnd()}\n\n${section}\n`);
}

/** The node flags of package.json's `start:prod`: the benchmarks run the service as production does. */
const START_FLAGS = (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts['start:prod']
  .split(' ')
  .filter((arg) => arg.startsWith('--'));

/**
 * The service's node flags: those of package.json's `start:prod` (as `npm start` and the image run
 * it), then any from BENCH_NODE_ARGS, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to see where its
 * time goes.
 */
export function serviceNodeArgs(): string[] {
  return [...START_FLAGS, ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];
}

/** How the benchmarks start the service, for their reports. */
export const SERVICE_COMMAND = `node ${START_FLAGS.join(' ')} dist/src/main.js`;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function waitHealthy(base: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error('the service did not become healthy within 60 s');
    try {
      if ((await fetch(`${base}/health`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
}

export async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** One request to the service's API; anything but a success throws. */
export async function apiCall(base: string, token: string, method: string, path: string, body?: unknown): Promise<{ status: number; result: Record<string, unknown> }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await res.json()) as { result: Record<string, unknown> };
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return { status: res.status, result: json.result };
}

/** Connects the token's company to `portal` the way the SPA does it (OAuth approval by the portal's admin), then saves these settings; returns them as saved. */
export async function connectPortal(base: string, token: string, portal: Portal, settings: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { result } = await apiCall(base, token, 'POST', '/integration/bitrix/oauth/credentials', { domain: portal.origin });
  const approval = await fetch(result.auth_url as string, { redirect: 'manual' });
  const q = Object.fromEntries(new URL(approval.headers.get('location') ?? '').searchParams);
  await apiCall(base, token, 'POST', '/integration/bitrix/oauth', { domain: portal.origin, code: q.code, state: q.state, server_domain: q.server_domain });
  return (await apiCall(base, token, 'POST', '/integration/bitrix/settings', settings)).result;
}

/** The service's variables for the emulator's OAuth server and these portals, its logs quiet. */
export function emulatorEnv(emu: Bitrix24Emulator, portals: Portal[]): NodeJS.ProcessEnv {
  return {
    LOG_LEVEL: 'warn',
    BITRIX_CLIENT_ID: emu.clientId,
    BITRIX_CLIENT_SECRET: emu.clientSecret,
    BITRIX_OAUTH_URL: emu.oauthUrl,
    BITRIX_ALLOWED_DOMAINS: portals.map((p) => p.origin).join(','),
  };
}
