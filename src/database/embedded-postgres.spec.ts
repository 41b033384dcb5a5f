/**
 * What is under test is process behaviour (shutdown order, orphans, reuse across processes,
 * concurrent starts), and the platform package is an ES module that Jest's sandbox cannot load
 * (STACK-NOTES gotcha 10). So the module is transpiled the way `nest build` emits it (module
 * nodenext → CommonJS keeping the native `import()`) into a temp dir, and driven from child node
 * processes.
 */
import { execFileSync, fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import * as ts from 'typescript';

jest.setTimeout(90_000);

const repoRoot = path.resolve(__dirname, '..', '..');
const isRoot = process.getuid?.() === 0;

interface StartResult {
  url: string;
  port: number;
  owned: boolean;
}
interface LogEntry {
  level: string;
  message: string;
}

const DRIVER = `
const { startEmbeddedPostgres } = require('./embedded-postgres.cjs');
const { Client } = require('pg');
let handle;
const logs = [];
const log = (level, message) => logs.push({ level, message });
const run = {
  async start({ dataDir, database }) {
    handle = await startEmbeddedPostgres({ dataDir, database, log });
    return { url: handle.url, port: handle.port, owned: handle.owned };
  },
  // What src/main.ts does: on SIGTERM, finish its own work (here: a query), then stop postgres, then exit 0.
  async shutdownOnSigterm() {
    process.once('SIGTERM', async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const client = new Client({ connectionString: handle.url });
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      await handle.stop();
      process.exit(0);
    });
  },
  async stop() { await handle.stop(); },
  async stopTwice() { await Promise.all([handle.stop(), handle.stop()]); await handle.stop(); },
  async logs() { return logs; },
};
process.on('message', async ({ id, cmd, args }) => {
  try {
    process.send({ id, result: await run[cmd](args) });
  } catch (error) {
    process.send({ id, error: String(error && error.message), logs });
  }
});
process.send({ ready: true });
`;

const ONE_SHOT = `
const { Client } = require('pg');
(async () => {
  const [dataDir, mode, modulePath = './embedded-postgres.cjs'] = process.argv.slice(2);
  const { startEmbeddedPostgres } = require(modulePath);
  const handle = await startEmbeddedPostgres({ dataDir, database: 'app', log: () => {} });
  const client = new Client({ connectionString: handle.url });
  await client.connect();
  await client.query('SELECT 1');
  await client.end();
  if (mode === 'stop') await handle.stop();
  process.stdout.write(JSON.stringify({ owned: handle.owned, port: handle.port }) + '\\n');
})().catch((error) => { console.error(error); process.exitCode = 1; });
`;

let tmpRoot: string;
const drivers = new Set<Driver>();

class Driver {
  private readonly child: ChildProcess;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  private nextId = 1;
  readonly ready: Promise<void>;

  constructor() {
    this.child = fork(path.join(tmpRoot, 'driver.cjs'), [], { cwd: tmpRoot, execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    drivers.add(this);
    this.ready = new Promise((resolve, reject) => {
      this.child.once('error', reject);
      this.child.once('exit', (code, signal) => {
        const error = new Error(`driver exited (${code ?? signal})`);
        reject(error);
        for (const { reject: rejectPending } of this.pending.values()) rejectPending(error);
      });
      this.child.on('message', (message: { ready?: boolean; id?: number; result?: unknown; error?: string; logs?: LogEntry[] }) => {
        if (message.ready) return resolve();
        const waiter = this.pending.get(message.id!);
        this.pending.delete(message.id!);
        if (message.error !== undefined) {
          const detail = (message.logs ?? []).map((entry) => `  [${entry.level}] ${entry.message}`).join('\n');
          waiter?.reject(new Error(`${message.error}\n${detail}`));
        } else waiter?.resolve(message.result);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  async call<T>(cmd: string, args?: unknown): Promise<T> {
    await this.ready;
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.child.send({ id, cmd, args });
    });
  }

  start(dataDir: string, database = 'app'): Promise<StartResult> {
    return this.call<StartResult>('start', { dataDir, database });
  }

  logs(): Promise<LogEntry[]> {
    return this.call<LogEntry[]>('logs');
  }

  /** Resolves with the exit code (or signal). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | string | null> {
    drivers.delete(this);
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode ?? this.child.signalCode;
    const exited = new Promise<number | string | null>((resolve) => this.child.once('exit', (code, signalCode) => resolve(code ?? signalCode)));
    this.child.kill(signal);
    return exited;
  }
}

async function query<T extends Record<string, unknown>>(url: string, sql: string): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

function pidAlive(pid: number): boolean {
  // Zombies count as dead: /proc/<pid>/stat state Z.
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function postmasterPid(dataDir: string): number | undefined {
  try {
    return Number.parseInt(fs.readFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), 'utf8').split('\n')[0], 10);
  } catch {
    return undefined;
  }
}

function leftovers(): string[] {
  const result = spawnSync('pgrep', ['-af', tmpRoot], { encoding: 'utf8' });
  return result.stdout
    .split('\n')
    .filter(Boolean)
    .filter((line) => !line.startsWith(`${process.pid} `));
}

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const child = spawnSync('true');
  return child.pid;
}

beforeAll(() => {
  // mkdtemp creates a 0700 directory: as root this also exercises the o+x fix for the postgres user.
  tmpRoot = fs.mkdtempSync('/tmp/embedded-postgres-spec-');
  fs.symlinkSync(path.join(repoRoot, 'node_modules'), path.join(tmpRoot, 'node_modules'));
  const source = fs.readFileSync(path.join(__dirname, 'embedded-postgres.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: { module: ts.ModuleKind.NodeNext, target: ts.ScriptTarget.ES2023, esModuleInterop: true },
    fileName: 'embedded-postgres.cts',
  });
  expect(outputText).toContain('await import(name)'); // the native dynamic import survives
  fs.writeFileSync(path.join(tmpRoot, 'embedded-postgres.cjs'), outputText);
  // What Jest's globalSetup runs: the project's transformer (module CommonJS, so `import()` becomes
  // require(esm), whose namespace gets wrapped once more: the default.default interop case).
  const transform = require(path.join(repoRoot, 'test', 'jest-transform.js')) as { process(code: string, file: string): { code: string } };
  const commonjs = transform.process(source, path.join(__dirname, 'embedded-postgres.ts')).code;
  expect(commonjs).toContain('require(s)');
  fs.writeFileSync(path.join(tmpRoot, 'embedded-postgres.commonjs.cjs'), commonjs);
  fs.writeFileSync(path.join(tmpRoot, 'driver.cjs'), DRIVER);
  fs.writeFileSync(path.join(tmpRoot, 'one-shot.cjs'), ONE_SHOT);
});

afterAll(async () => {
  if (!tmpRoot) return;
  for (const driver of [...drivers]) await driver.kill();
  // Anything still running from the temp dir (postgres included) is a leak: report it, then clean up.
  const left = leftovers();
  for (const line of left) {
    try {
      process.kill(Number.parseInt(line, 10), 'SIGQUIT');
    } catch {
      // gone
    }
  }
  const deadline = Date.now() + 10_000;
  while (leftovers().length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  fs.rmSync(tmpRoot, { recursive: true, force: true });
  expect(left).toEqual([]);
});

describe('startEmbeddedPostgres', () => {
  let dataDir: string;
  let owner: Driver;
  let first: StartResult;

  beforeAll(() => {
    dataDir = path.join(tmpRoot, 'data');
  });

  it('cold start: creates the cluster, the password file and the database; a pg query works', async () => {
    owner = new Driver();
    first = await owner.start(dataDir);

    expect(first.owned).toBe(true);
    expect(first.url).toMatch(new RegExp(`^postgres://postgres:[0-9a-f]{48}@127\\.0\\.0\\.1:${first.port}/app$`));
    expect(fs.existsSync(path.join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true);
    expect(fs.statSync(path.join(dataDir, 'postgres.password')).mode & 0o777).toBe(0o600);

    const [row] = await query<{ db: string; encoding: string; listen: string; collate: string }>(
      first.url,
      `SELECT current_database() AS db, current_setting('server_encoding') AS encoding,
              current_setting('listen_addresses') AS listen, datcollate AS collate
         FROM pg_database WHERE datname = current_database()`,
    );
    expect(row).toEqual({ db: 'app', encoding: 'UTF8', listen: '127.0.0.1', collate: 'C' });

    if (isRoot) {
      const postgresUid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
      expect(fs.statSync(path.join(dataDir, 'postgres')).uid).toBe(postgresUid);
      const logs = await owner.logs();
      expect(logs).toContainEqual({ level: 'warn', message: expect.stringContaining(`to ${tmpRoot} so the "postgres" user`) });
    }
  });

  it('a second start on the same data dir while the first runs reuses it (owned=false, same port)', async () => {
    const second = new Driver();
    const result = await second.start(dataDir);
    expect(result).toMatchObject({ owned: false, port: first.port, url: first.url });

    await second.call('stop'); // not owned: a no-op
    await second.kill();
    await query(first.url, 'CREATE TABLE persisted (id int PRIMARY KEY, note text)');
    await query(first.url, "INSERT INTO persisted VALUES (1, 'survives a restart')");
  });

  it('stop() is idempotent and resolves once postgres has exited', async () => {
    const pid = postmasterPid(dataDir)!;
    expect(pidAlive(pid)).toBe(true);
    await owner.call('stopTwice');
    expect(pidAlive(pid)).toBe(false);
    expect(fs.existsSync(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false);
    await expect(query(first.url, 'SELECT 1')).rejects.toThrow(/ECONNREFUSED/);
    await owner.kill();
  });

  it('a second start reuses the data and the password', async () => {
    const pgVersion = fs.statSync(path.join(dataDir, 'postgres', 'PG_VERSION'));
    owner = new Driver();
    const result = await owner.start(dataDir);
    expect(result.owned).toBe(true);
    expect(result.url.replace(/:\d+\//, ':PORT/')).toBe(first.url.replace(/:\d+\//, ':PORT/'));
    expect(fs.statSync(path.join(dataDir, 'postgres', 'PG_VERSION')).mtimeMs).toBe(pgVersion.mtimeMs);
    expect(await query(result.url, 'SELECT note FROM persisted')).toEqual([{ note: 'survives a restart' }]);
    expect((await owner.logs()).map((entry) => entry.message)).not.toContainEqual(expect.stringContaining('initialising'));
    await owner.call('stop');
    await owner.kill();
  });

  it('leaves the shutdown order to the caller: postgres serves until its SIGTERM handler stops it, exit 0', async () => {
    owner = new Driver();
    await owner.start(dataDir);
    const pid = postmasterPid(dataDir)!;
    await owner.call('shutdownOnSigterm');
    expect(await owner.kill('SIGTERM')).toBe(0);
    expect(pidAlive(pid)).toBe(false);
    expect(postmasterPid(dataDir)).toBeUndefined();
  });

  it('stop() resolves when the server is already gone', async () => {
    owner = new Driver();
    await owner.start(dataDir);
    const pid = postmasterPid(dataDir)!;
    process.kill(pid, 'SIGINT');
    while (pidAlive(pid)) await new Promise((resolve) => setTimeout(resolve, 50));
    await owner.call('stop');
    await owner.kill();
  });

  it('removes a stale postmaster.pid (dead pid) and starts', async () => {
    const pidFile = path.join(dataDir, 'postgres', 'postmaster.pid');
    const dead = deadPid();
    fs.writeFileSync(pidFile, `${dead}\n${path.join(dataDir, 'postgres')}\n1700000000\n5432\n\n127.0.0.1\n  5432001    123\nready   \n`);

    owner = new Driver();
    const result = await owner.start(dataDir);
    expect(result.owned).toBe(true);
    expect(await owner.logs()).toContainEqual({ level: 'warn', message: expect.stringContaining(`process ${dead} is not running`) });
    expect(await query(result.url, 'SELECT count(*)::int AS n FROM persisted')).toEqual([{ n: 1 }]);
    await owner.call('stop');
    await owner.kill();
  });

  it('does not mistake the postmaster of another data dir (recycled pid) for its own', async () => {
    const otherDir = path.join(tmpRoot, 'other');
    const other = new Driver();
    const otherResult = await other.start(otherDir);
    const otherPid = postmasterPid(otherDir)!;
    // As if, after a reboot, our stale postmaster.pid named a pid now used by another cluster.
    const pidFile = path.join(dataDir, 'postgres', 'postmaster.pid');
    fs.writeFileSync(pidFile, fs.readFileSync(path.join(otherDir, 'postgres', 'postmaster.pid')));

    owner = new Driver();
    const result = await owner.start(dataDir);
    expect(result.owned).toBe(true);
    expect(result.port).not.toBe(otherResult.port);
    expect(await owner.logs()).toContainEqual({ level: 'warn', message: expect.stringContaining('is not a postgres serving this data directory') });
    expect(pidAlive(otherPid)).toBe(true);
    expect(await query(result.url, 'SELECT count(*)::int AS n FROM persisted')).toEqual([{ n: 1 }]);
    await owner.call('stop');
    await owner.kill();
    await other.call('stop');
    await other.kill();
  });

  it('removes a postmaster.pid naming a zombie (it passes kill(pid, 0)) and starts', async () => {
    // sh forks `sleep 0`, then becomes `sleep 30`, which never reaps it: a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const [chunk] = (await once(parent.stdout, 'data')) as [Buffer];
    const zombie = Number.parseInt(chunk.toString(), 10);
    while (pidAlive(zombie)) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(() => process.kill(zombie, 0)).not.toThrow();
    fs.writeFileSync(path.join(dataDir, 'postgres', 'postmaster.pid'), `${zombie}\n${path.join(dataDir, 'postgres')}\n1700000000\n5432\n\n127.0.0.1\n  5432001    123\nready   \n`);

    owner = new Driver();
    expect((await owner.start(dataDir)).owned).toBe(true);
    expect(await owner.logs()).toContainEqual({ level: 'warn', message: expect.stringContaining(`process ${zombie} is not running`) });
    await owner.call('stop');
    await owner.kill();
    parent.kill();
  });

  it('shuts down an orphan left by a SIGKILLed owner, then starts afresh', async () => {
    const victim = new Driver();
    const orphaned = await victim.start(dataDir);
    expect(orphaned.owned).toBe(true);
    const orphanPid = postmasterPid(dataDir)!;
    await victim.kill('SIGKILL');
    expect(pidAlive(orphanPid)).toBe(true); // postgres outlives its node

    owner = new Driver();
    const result = await owner.start(dataDir);
    expect(result.owned).toBe(true);
    expect(pidAlive(orphanPid)).toBe(false);
    expect(postmasterPid(dataDir)).not.toBe(orphanPid);
    expect(await owner.logs()).toContainEqual({ level: 'warn', message: expect.stringContaining(`orphaned PostgreSQL (pid ${orphanPid}`) });
    expect(await query(result.url, 'SELECT count(*)::int AS n FROM persisted')).toEqual([{ n: 1 }]);
    await owner.call('stop');
    await owner.kill();
  });

  it('treats a server whose recorded owner pid now belongs to another program as an orphan', async () => {
    const victim = new Driver();
    await victim.start(dataDir);
    const orphanPid = postmasterPid(dataDir)!;
    await victim.kill('SIGKILL');
    const impostor = spawn('sleep', ['30'], { stdio: 'ignore' });
    fs.writeFileSync(path.join(dataDir, 'postgres.owner'), `${impostor.pid}\n`);

    owner = new Driver();
    expect((await owner.start(dataDir)).owned).toBe(true);
    expect(pidAlive(orphanPid)).toBe(false);
    impostor.kill();
    await owner.call('stop');
    await owner.kill();
  });

  it('one-shot (CLI) mode: the process exits by itself; postgres is stopped with it or by stop()', async () => {
    for (const mode of ['stop', 'forget-to-stop']) {
      const run = spawnSync(process.execPath, [path.join(tmpRoot, 'one-shot.cjs'), dataDir, mode], {
        cwd: tmpRoot,
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect({ mode, status: run.status, signal: run.signal, stderr: run.stderr }).toEqual({ mode, status: 0, signal: null, stderr: '' });
      expect(JSON.parse(run.stdout)).toMatchObject({ owned: true });
      // Without stop(), the exit listener asked postgres for a fast shutdown: it finishes on its own.
      const deadline = Date.now() + 15_000;
      while (postmasterPid(dataDir) !== undefined && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
      expect(postmasterPid(dataDir)).toBeUndefined();
    }
  });

  it('also works as transpiled by the Jest transformer (globalSetup path)', () => {
    const run = spawnSync(process.execPath, [path.join(tmpRoot, 'one-shot.cjs'), dataDir, 'stop', './embedded-postgres.commonjs.cjs'], {
      cwd: tmpRoot,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    expect(JSON.parse(run.stdout)).toMatchObject({ owned: true });
    expect(postmasterPid(dataDir)).toBeUndefined();
  });

  it('one-shot (CLI) mode reuses the postgres of a running app', async () => {
    owner = new Driver();
    const app = await owner.start(dataDir);
    const run = spawnSync(process.execPath, [path.join(tmpRoot, 'one-shot.cjs'), dataDir, 'stop'], { cwd: tmpRoot, encoding: 'utf8', timeout: 60_000 });
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ owned: false, port: app.port });
    expect(await query(app.url, 'SELECT 1 AS ok')).toEqual([{ ok: 1 }]); // the CLI's stop() left it running
    await owner.call('stop');
    await owner.kill();
  });
});

describe('startEmbeddedPostgres, concurrent cold starts', () => {
  it('serialises them: one owner, the others reuse it; another database is created on demand', async () => {
    const dataDir = path.join(tmpRoot, 'concurrent');
    const [a, b, c] = [new Driver(), new Driver(), new Driver()];
    const results = await Promise.all([a.start(dataDir), b.start(dataDir), c.start(dataDir, 'other')]);
    expect(results.filter((result) => result.owned)).toHaveLength(1);
    expect(new Set(results.map((result) => result.port)).size).toBe(1);
    expect(await query(results[2].url, 'SELECT current_database() AS db')).toEqual([{ db: 'other' }]);

    const ownerIndex = results.findIndex((result) => result.owned);
    const all = [a, b, c];
    await all[ownerIndex].call('stop');
    for (const driver of all) await driver.kill();
    expect(postmasterPid(dataDir)).toBeUndefined();
    expect(fs.existsSync(path.join(dataDir, 'postgres.lock'))).toBe(false);
  });

  it('takes over a start lock left by a process that died holding it', async () => {
    const dataDir = path.join(tmpRoot, 'stale-lock');
    const lock = path.join(dataDir, 'postgres.lock');
    fs.mkdirSync(lock, { recursive: true });
    const longAgo = new Date(Date.now() - 60_000); // a live holder refreshes its lock every few seconds
    fs.utimesSync(lock, longAgo, longAgo);
    const driver = new Driver();
    expect((await driver.start(dataDir)).owned).toBe(true);
    expect(fs.existsSync(lock)).toBe(false);
    await driver.call('stop');
    await driver.kill();
  });

  it('waits for a start lock that is held and fresh', async () => {
    const dataDir = path.join(tmpRoot, 'stale-lock'); // initialised by the test above: a start takes well under 2 s
    const lock = path.join(dataDir, 'postgres.lock');
    fs.mkdirSync(lock);
    const driver = new Driver();
    let started = false;
    const starting = driver.start(dataDir).then((result) => ((started = true), result));
    await new Promise((resolve) => setTimeout(resolve, 2_500));
    expect(started).toBe(false);
    fs.rmdirSync(lock);
    expect((await starting).owned).toBe(true);
    await driver.call('stop');
    await driver.kill();
  });
});
