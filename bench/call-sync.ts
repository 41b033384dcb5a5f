/**
 * Call-sync benchmarks (issue 7): the built service (`node dist/src/main.js`, embedded PostgreSQL
 * in a new DATA_DIR, or DATABASE_URL) against the in-process Bitrix24 emulator over sockets, every
 * portal at 2 req/s, burst 50, its bucket full at the start.
 * - sync throughput: 2,000 realistic calls (show_card never: register + finish each) for one
 *   portal, next to the ceiling and a naive one-request-per-step client on a second portal;
 * - ringing latency: a backlog of 5,000 finishes for one portal, then ringing calls one at a time,
 *   from the 202 to the emulator executing the `show` of the card;
 * - ingest: `POST /pbx/events` in batches of 100, and single events at a fixed 500 req/s;
 * - the service's RSS throughout.
 * Run with `npm run bench:call-sync`; it rewrites its section of BENCHMARKS.md. Cases can be run
 * alone while working on one of them (`npm run bench:call-sync -- ingest ringing`): the rows are
 * printed and BENCHMARKS.md is left as it is.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import autocannon from 'autocannon';
import { Bitrix24Emulator } from '../test/emulators/bitrix24/emulator';
import type { Portal } from '../test/emulators/bitrix24/portal';
import { connectApp, restCall } from '../test/emulators/bitrix24/spec-support';
import { generateTraffic, type PbxEventBody, type SimulatedCall } from '../test/emulators/pbx/traffic';
import { apiCall, connectPortal, cpuMs, emulatorEnv, freePort, percentile, rssMb, serviceNodeArgs, SERVICE_COMMAND, sleep, until, waitHealthy, writeSection } from './support';

const ROOT = join(__dirname, '..');
const LIMIT = { rate: 2, burst: 50 };
const BATCH_COMMANDS = 50;
const CEILING = (LIMIT.rate * BATCH_COMMANDS) / 2;
const SYNC_CALLS = 2_000;
const NAIVE_CALLS = 40;
const BACKLOG = 5_000;
const RINGING_SAMPLES = 120;
const INGEST_BATCHES = 400;
const INGEST_BATCH = 100;
const SINGLE_RATE = 500;
const SINGLE_SECONDS = 20;
const SINGLE_WARMUP_SECONDS = 3;
const OPERATORS = 10;
const users = Array.from({ length: OPERATORS }, (_, i) => ({ ID: i + 1, ADMIN: i === 0, UF_PHONE_INNER: String(101 + i), TIMEMAN_STATUS: 'OPENED' as const }));
const extensions = users.map((u) => u.UF_PHONE_INNER);
const bindings = users.map((u) => ({ sip_phone: u.UF_PHONE_INNER, bitrix_user_id: u.ID }));

const CASES = ['sync', 'ringing', 'ingest'] as const;

/** Not execFileSync: a blocked event loop misses the service closing idle keep-alive sockets, and the next fetch fails on one. */
async function cli(env: NodeJS.ProcessEnv, ...args: string[]): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [join(ROOT, 'dist/src/cli.js'), ...args], { env, encoding: 'utf8' });
  return stdout.trim().split('\n').pop() ?? '';
}

class Service {
  constructor(
    readonly base: string,
    readonly env: NodeJS.ProcessEnv,
    readonly child: ChildProcess,
  ) {}

  api(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; result: Record<string, unknown> }> {
    return apiCall(this.base, token, method, path, body);
  }

  /** A company with an admin and a token, connected to `portal` the way the SPA does it, with these settings. */
  async company(name: string, portal: Portal, settings: Record<string, unknown>): Promise<string> {
    const companyId = await cli(this.env, 'company:create', name);
    const userId = await cli(this.env, 'user:create', '--company', companyId, '--name', `${name} admin`, '--role', 'admin');
    const token = await cli(this.env, 'token:create', '--user', userId);
    await connectPortal(this.base, token, portal, settings);
    return token;
  }

  async post(token: string, events: PbxEventBody | PbxEventBody[]): Promise<void> {
    const { status } = await this.api(token, 'POST', '/pbx/events', events);
    if (status !== 202) throw new Error(`POST /pbx/events answered ${status}`);
  }

  async syncedTotal(token: string): Promise<number> {
    return Number((await this.api(token, 'GET', '/integration/bitrix/calls?sync_state=synced&per_page=1')).result.total);
  }
}

const chunks = <T>(list: T[], size: number): T[][] => Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

/** Portal calls (register + statistics row) of these PBX call ids: how many, and whether any came twice. */
function mirrored(portal: Portal, ids: Set<string>): { registered: number; finished: number; duplicates: number } {
  const registered = portal.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID !== null && ids.has(c.EXTERNAL_CALL_ID));
  const finished = portal.telephony.statistics.filter((s) => s.EXTERNAL_CALL_ID !== null && ids.has(s.EXTERNAL_CALL_ID));
  const unique = new Set(registered.map((c) => c.EXTERNAL_CALL_ID)).size;
  return { registered: registered.length, finished: finished.length, duplicates: registered.length - unique + (finished.length - new Set(finished.map((s) => s.EXTERNAL_CALL_ID)).size) };
}

/**
 * What peers do: one REST request per step (register, then finish), paced at the portal's drain
 * rate so the full bucket never refuses it, a refused request retried after a second.
 */
async function naiveClient(emu: Bitrix24Emulator, portal: Portal, calls: SimulatedCall[]): Promise<{ calls: number; seconds: number; refused: number }> {
  const { access_token: auth } = await connectApp(emu, portal, 1);
  portal.limiter.fill();
  let refused = 0;
  let nextSlot = Date.now() + 1000 / LIMIT.rate;
  const send = async (method: string, params: Record<string, unknown>) => {
    for (;;) {
      await sleep(Math.max(0, nextSlot - Date.now()));
      nextSlot = Math.max(Date.now(), nextSlot) + 1000 / LIMIT.rate;
      const answer = await restCall(portal, auth, method, params);
      if (answer.status === 200) return answer.body.result as Record<string, unknown>;
      if (answer.body.error !== 'QUERY_LIMIT_EXCEEDED') throw new Error(`naive ${method}: ${answer.status} ${JSON.stringify(answer.body)}`);
      refused += 1;
      nextSlot = Date.now() + 1000;
    }
  };
  const started = performance.now();
  for (const call of calls) {
    const ended = call.events.find((e) => e.event === 'ended') as PbxEventBody;
    const first = call.events[0];
    const registered = await send('telephony.externalcall.register', {
      USER_ID: 1,
      PHONE_NUMBER: first.phone_number,
      TYPE: first.direction === 'outbound' ? 1 : 2,
      CALL_START_DATE: first.occurred_at,
      SHOW: 0,
      EXTERNAL_CALL_ID: call.callId,
    });
    await send('telephony.externalcall.finish', { CALL_ID: registered.CALL_ID, USER_ID: 1, DURATION: ended.duration ?? 0, STATUS_CODE: ended.status === 'answered' ? '200' : '304' });
  }
  return { calls: calls.length, seconds: (performance.now() - started) / 1000, refused };
}

interface Row {
  what: string;
  result: string;
  target: string;
  met: boolean | null;
}

/** One POST on the agent's kept-alive connections; resolves with the status once the answer has been read. */
function post(url: string, headers: Record<string, string>, body: string, agent: Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent, headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Single events at a fixed rate: request i leaves at start + i / rate whatever the answers before it
 * (an open loop), and its latency counts from that time, so a slow answer cannot hide the requests
 * that should have left meanwhile. The first `warmupSeconds` run at the same rate but are reported
 * apart: right after the batch phase the database is still writing out its burst.
 */
async function pacedPosts(url: string, headers: Record<string, string>, bodies: string[], rate: number, seconds: number, warmupSeconds: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: 200 });
  const warmupCount = rate * warmupSeconds;
  const count = warmupCount + rate * seconds;
  const latencies: number[] = [];
  const warmup: number[] = [];
  const tally = { accepted: 0, other: 0, errors: 0 };
  const answers: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; i < count; ) {
    for (; i < count && started + (i * 1000) / rate <= performance.now(); i++) {
      const due = started + (i * 1000) / rate;
      const into = i < warmupCount ? warmup : latencies;
      answers.push(
        post(url, headers, bodies[i % bodies.length], agent).then(
          (status) => {
            into.push(performance.now() - due);
            if (status === 202) tally.accepted++;
            else tally.other++;
          },
          () => void tally.errors++,
        ),
      );
    }
    await sleep(1);
  }
  await Promise.all(answers);
  agent.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  const warmSorted = warmup.sort((a, b) => a - b);
  return { ...tally, sent: count, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1], warmupP99: percentile(warmSorted, 99) };
}

async function main(): Promise<void> {
  const asked = process.argv.slice(2);
  const unknown = asked.filter((c) => !(CASES as readonly string[]).includes(c));
  if (unknown.length) throw new Error(`unknown case ${unknown.join(', ')}; the cases are ${CASES.join(', ')}`);
  const run = new Set(asked.length ? asked : CASES);
  const emu = new Bitrix24Emulator({ rateLimit: LIMIT });
  await emu.start();
  const syncPortal = await emu.addPortal({ users });
  const naivePortal = await emu.addPortal({ users });
  const ringPortal = await emu.addPortal({ users });
  const ingestPortal = await emu.addPortal({ users });
  const portals = [syncPortal, naivePortal, ringPortal, ingestPortal];

  const dataDir = mkdtempSync(join(tmpdir(), 'utel-bench-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    DATA_DIR: dataDir,
    ...emulatorEnv(emu, portals),
  };
  const child: ChildProcess = spawn(process.execPath, [...serviceNodeArgs(), join(ROOT, 'dist/src/main.js')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const rss: { phase: string; mb: number }[] = [];
  let phase = 'idle';
  let exited = false;
  let stopping = false;
  child.on('exit', (code, signal) => {
    exited = true;
    if (!stopping) process.stderr.write(`the service exited on its own (${code ?? signal})\n`);
  });
  const sampler = setInterval(() => {
    if (!exited) rss.push({ phase, mb: rssMb(child.pid as number) });
  }, 250);
  const rows: Row[] = [];
  const loads: string[] = [];
  const load = (label: string) => loads.push(`${label} ${loadavg()[0].toFixed(1)}`);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const service = new Service(base, env, child);
    await waitHealthy(base);
    const syncToken = await service.company('Bench sync', syncPortal, { show_card: 'never', bindings });
    const ringToken = await service.company('Bench ringing', ringPortal, { show_card: 'ringing', bindings });
    const ingestToken = await service.company('Bench ingest', ingestPortal, { show_card: 'ringing', bindings });
    load('start');

    // 1. Sync throughput, with the naive client on its own portal at the same time.
    if (run.has('sync')) {
      phase = 'sync';
      log(`sync throughput: ${SYNC_CALLS} calls …`);
      const traffic = generateTraffic({ calls: SYNC_CALLS, operators: extensions, prefix: 'bench-sync', seed: 1 });
      const syncIds = new Set(traffic.calls.map((c) => c.callId));
      const naiveTraffic = generateTraffic({ calls: NAIVE_CALLS, operators: extensions, prefix: 'bench-naive', seed: 2 });
      const naive = naiveClient(emu, naivePortal, naiveTraffic.calls);
      syncPortal.limiter.fill();
      const requestsBefore = syncPortal.stats.requests;
      const refusedBefore = syncPortal.stats.queryLimitExceeded;
      let firstAccepted = 0;
      for (const batch of chunks(traffic.events, INGEST_BATCH)) {
        await service.post(syncToken, batch);
        firstAccepted ||= performance.now();
    }
    const postedAt = performance.now();
    const bitrixDone = await until('every call finished in the emulator', 600_000, () => (mirrored(syncPortal, syncIds).finished >= SYNC_CALLS ? performance.now() : undefined), 50);
    const serviceDone = await until('every call synced in GET /calls', 120_000, async () => ((await service.syncedTotal(syncToken)) >= SYNC_CALLS ? performance.now() : undefined), 50);
    const syncCheck = mirrored(syncPortal, syncIds);
    const syncRequests = syncPortal.stats.requests - requestsBefore;
    const syncRefused = syncPortal.stats.queryLimitExceeded - refusedBefore;
    // The steady state: from the first accepted batch to the last, the calls finished by the later ones.
    const batches = syncPortal.requests.filter((r) => r.method === 'batch' && !r.inBatch && r.status === 200 && JSON.stringify(r.params.cmd ?? {}).includes('telephony.externalcall'));
    const finishesPerBatch = batches.map((b) => Object.values((b.params.cmd ?? {}) as Record<string, string>).filter((c) => c.startsWith('telephony.externalcall.finish')).length);
    const steadySeconds = (batches[batches.length - 1].at.getTime() - batches[0].at.getTime()) / 1000;
    const steadyRate = (finishesPerBatch.reduce((a, b) => a + b, 0) - finishesPerBatch[0]) / steadySeconds;
    const commandsPerBatch = batches.reduce((n, b) => n + Object.keys((b.params.cmd ?? {})).length, 0) / batches.length;
    const naiveResult = await naive;
    load('after sync');
    const rate = SYNC_CALLS / ((bitrixDone - firstAccepted) / 1000);
    const rateService = SYNC_CALLS / ((serviceDone - firstAccepted) / 1000);
    const naiveRate = naiveResult.calls / naiveResult.seconds;
    rows.push(
      { what: `sync throughput: ${SYNC_CALLS} calls (${traffic.events.length} events posted in ${((postedAt - firstAccepted) / 1000).toFixed(1)} s), first 202 → last finish in the emulator`, result: `${rate.toFixed(1)} calls/s (${((bitrixDone - firstAccepted) / 1000).toFixed(1)} s)`, target: `≥ 45 calls/s (ceiling ${CEILING})`, met: rate >= 45 },
      { what: '… → last call `synced` in `GET /integration/bitrix/calls`', result: `${rateService.toFixed(1)} calls/s`, target: '', met: null },
      { what: `… steady state: first to last accepted \`batch\` (${batches.length} batches, ${commandsPerBatch.toFixed(1)} commands each on average, ${steadySeconds.toFixed(1)} s)`, result: `${steadyRate.toFixed(1)} calls/s`, target: `ceiling ${CEILING}`, met: null },
      { what: '… Bitrix24 HTTP requests / QUERY_LIMIT_EXCEEDED / calls registered, finished, duplicated', result: `${syncRequests} / ${syncRefused} / ${syncCheck.registered}, ${syncCheck.finished}, ${syncCheck.duplicates}`, target: `${SYNC_CALLS}, ${SYNC_CALLS}, 0`, met: syncCheck.registered === SYNC_CALLS && syncCheck.finished === SYNC_CALLS && syncCheck.duplicates === 0 },
      { what: `naive client, one request per step (${naiveResult.calls} calls, second portal, same limit)`, result: `${naiveRate.toFixed(2)} calls/s (refused ${naiveResult.refused})`, target: `service ${(rate / naiveRate).toFixed(0)}× faster`, met: null },
    );
    log(JSON.stringify(rows.slice(-4)));
    }

    // 2. Ringing latency behind a backlog of finishes.
    if (run.has('ringing')) {
      phase = 'ringing';
      log(`ringing latency: backlog of ${BACKLOG} finishes, ${RINGING_SAMPLES} ringing calls …`);
      const backlog = generateTraffic({ calls: BACKLOG, operators: extensions, prefix: 'bench-backlog', seed: 3, duplicates: 0, reorder: 0 });
      const backlogIds = new Set(backlog.calls.map((c) => c.callId));
      ringPortal.limiter.fill();
      for (const batch of chunks(
        backlog.events.filter((e) => e.event === 'ended'),
        500,
      ))
        await service.post(ringToken, batch);
      // Sampling starts once the backlog flows: finishes arriving for 3 s with no QUERY_LIMIT_EXCEEDED
      // in the last 3 s. The portal starts with a full bucket, and its first refusal (before the
      // first batch or a batch or two after it) stops every request for a couple of seconds, cards
      // included: that start is the throughput case's, not this one's.
      let refusals = 0;
      let lastRefusal = 0;
      let firstFinish = 0;
      await until('the backlog flowing', 60_000, () => {
        if (ringPortal.stats.queryLimitExceeded !== refusals) [refusals, lastRefusal] = [ringPortal.stats.queryLimitExceeded, Date.now()];
        if (!firstFinish && mirrored(ringPortal, backlogIds).finished > 0) firstFinish = Date.now();
        return firstFinish && Date.now() - firstFinish > 3_000 && Date.now() - lastRefusal > 3_000 ? true : undefined;
      });
      const latencies: number[] = [];
      const ringIds = new Set<string>();
      for (let i = 0; i < RINGING_SAMPLES; i++) {
        const callId = `bench-ring.${i + 1}`;
        ringIds.add(callId);
        const event: PbxEventBody = { call_id: callId, event: 'ringing', direction: 'inbound', phone_number: `+99890${String(1_000_000 + i).slice(1)}1`, sip_phones: [extensions[i % OPERATORS]], occurred_at: new Date().toISOString() };
        await service.post(ringToken, event);
        const accepted = Date.now();
        const shownAt = await until(`the card of ${callId}`, 60_000, () => {
          const call = ringPortal.telephony.calls.find((c) => c.EXTERNAL_CALL_ID === callId);
          return call && ringPortal.telephony.cards.find((card) => card.CALL_ID === call.CALL_ID && card.action === 'show')?.at.getTime();
        });
        latencies.push(shownAt - accepted);
        await sleep(200 + Math.random() * 600);
    }
    const backlogLeft = BACKLOG - mirrored(ringPortal, backlogIds).finished;
    log(`ringing latencies (ms, in order): ${latencies.join(' ')}`);
    load('after ringing');
    const sorted = [...latencies].sort((a, b) => a - b);
    const p99 = percentile(sorted, 99);
    rows.push({
      what: `ringing latency: 202 → emulator executes the card's \`show\` (${latencies.length} calls, one at a time; backlog of ${BACKLOG} ended calls posted first, sampling once it flows: finishes arriving for 3 s, no QUERY_LIMIT_EXCEEDED in the last 3 s; ${backlogLeft} still unfinished after the last sample)`,
      result: `p50 ${percentile(sorted, 50)} ms, p99 ${p99} ms, max ${sorted[sorted.length - 1]} ms`,
      target: 'p99 ≤ 1000 ms',
      met: p99 <= 1000 && backlogLeft > 0,
    });
    log(JSON.stringify(rows.slice(-1)));
    }

    // 3. Ingest, the worker running (it keeps working on the portals above and on this one).
    if (run.has('ingest')) {
      phase = 'ingest';
      log('ingest …');
      const ingest = generateTraffic({ calls: Math.ceil((INGEST_BATCHES * INGEST_BATCH) / 3), operators: extensions, prefix: 'bench-ingest', seed: 4 });
      const bodies = chunks(ingest.events, INGEST_BATCH)
        .slice(0, INGEST_BATCHES)
        .map((b) => JSON.stringify(b));
      const headers = { Authorization: `Bearer ${ingestToken}`, 'Content-Type': 'application/json' };
      let next = 0;
      // Timed from the start to the last answer: autocannon notices that `amount` is done only at its
      // next one-second tick, so its own duration is whole seconds late by up to one.
      const startedAt = performance.now();
      let lastAnswerAt = startedAt;
      const batched = await autocannon({
        url: `${base}/pbx/events`,
        connections: 8,
        amount: bodies.length,
        requests: [
          {
            method: 'POST',
            headers,
            setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length] }),
            onResponse: () => {
              lastAnswerAt = performance.now();
            },
          },
        ],
      });
      const events = bodies.length * INGEST_BATCH;
      const eventsPerSec = (batched['2xx'] * INGEST_BATCH) / ((lastAnswerAt - startedAt) / 1000);
      rows.push({
        what: `ingest: \`POST /pbx/events\`, ${bodies.length} batches of ${INGEST_BATCH} (${events} events, 8 connections)`,
        result: `${Math.round(eventsPerSec)} events/s durable (${batched['2xx']} × 202, ${batched.non2xx} other, ${batched.errors} errors; batch p50 ${batched.latency.p50} ms, p99 ${batched.latency.p99} ms)`,
        target: '≥ 5000 events/s',
        met: eventsPerSec >= 5000 && batched.non2xx === 0 && batched.errors === 0,
      });
      const singles = generateTraffic({ calls: Math.ceil((SINGLE_RATE * (SINGLE_WARMUP_SECONDS + SINGLE_SECONDS)) / 2), operators: extensions, prefix: 'bench-single', seed: 5 }).events.map((e) => JSON.stringify(e));
      // The service's own CPU per request (the worker's included): what the tail grows from once the
      // machine is busy, and steadier from run to run than the tail itself.
      const cpuBefore = cpuMs(child.pid as number);
      const paced = await pacedPosts(`${base}/pbx/events`, headers, singles, SINGLE_RATE, SINGLE_SECONDS, SINGLE_WARMUP_SECONDS);
      const cpuPerRequest = (cpuMs(child.pid as number) - cpuBefore) / paced.sent;
      rows.push({
        what: `ingest: single events at a fixed ${SINGLE_RATE} req/s for ${SINGLE_SECONDS} s, after ${SINGLE_WARMUP_SECONDS} s at the same rate as warm-up (one every ${1000 / SINGLE_RATE} ms, node:http on kept-alive connections, latency from each request's due time)`,
        result: `${paced.sent} sent, ${paced.accepted} × 202, ${paced.other} other, ${paced.errors} errors; p50 ${paced.p50.toFixed(1)} ms, p99 ${paced.p99.toFixed(1)} ms, max ${paced.max.toFixed(1)} ms (warm-up p99 ${paced.warmupP99.toFixed(1)} ms); service CPU ${cpuPerRequest.toFixed(2)} ms per request`,
        target: 'p99 ≤ 25 ms',
        met: paced.p99 <= 25 && paced.accepted === paced.sent,
      });
      // New calls again: events already stored would cost the service less.
      const burstSingles = generateTraffic({ calls: Math.ceil((SINGLE_RATE * SINGLE_SECONDS) / 2), operators: extensions, prefix: 'bench-burst', seed: 6 }).events.map((e) => JSON.stringify(e));
      let nextSingle = 0;
      const single = await autocannon({
        url: `${base}/pbx/events`,
        connections: 20,
        overallRate: SINGLE_RATE,
        duration: SINGLE_SECONDS,
        requests: [{ method: 'POST', headers, setupRequest: (req) => ({ ...req, body: burstSingles[nextSingle++ % burstSingles.length] }) }],
      });
      rows.push({
        what:
          `… the same through autocannon (\`overallRate\` ${SINGLE_RATE}, 20 connections): each connection sends its share of a second ` +
          `back to back from the second's start, so this is 20 requests in flight at once each second rather than a fixed rate`,
        result: `${Math.round(single.requests.average)} req/s sent, ${single['2xx']} × 202, ${single.non2xx} other; p50 ${single.latency.p50} ms, p99 ${single.latency.p99} ms, max ${single.latency.max} ms`,
        target: 'p99 ≤ 25 ms',
        met: single.latency.p99 <= 25 && single.non2xx === 0 && single.errors === 0,
      });
      log(JSON.stringify(rows.slice(-3)));
      load('after ingest');
    }
    phase = 'after';
    await sleep(2000);

    // 4. RSS of the service process.
    const peak = (p?: string) => Math.max(...rss.filter((s) => !p || s.phase === p).map((s) => s.mb));
    const peakAll = peak();
    const measured = CASES.filter((c) => run.has(c));
    rows.push({
      what: `service RSS (VmRSS every 250 ms): peak during ${measured.join(' / ')}; 2 s after`,
      result: `${measured.map((c) => peak(c)).join(' / ')} MB; ${rss[rss.length - 1].mb} MB`,
      target: '≤ 250 MB',
      met: peakAll <= 250,
    });

    const mark = (met: boolean | null) => (met === null ? '' : met ? 'met' : '**NOT met**');
    const section = [
      '<!-- bench:call-sync -->',
      '## Call sync',
      '',
      `Command: \`npm run bench:call-sync\` (builds, starts \`${SERVICE_COMMAND}\` as \`npm start\` does, with the embedded PostgreSQL in a new DATA_DIR, or DATABASE_URL, ` +
        `against the in-process Bitrix24 emulator over sockets: one portal per case, each at ${LIMIT.rate} req/s, burst ${LIMIT.burst}, its bucket full at the start; ` +
        'traffic from `test/emulators/pbx/traffic.ts`, 3 % duplicated and 5 % reordered events).',
      `Measured ${new Date().toISOString().slice(0, 10)} on this project's 2-core machine, shared with other work: load average ${loads.join(', ')}.`,
      '',
      '| what | result | target | |',
      '|---|---|---|---|',
      ...rows.map((r) => `| ${r.what} | ${r.result} | ${r.target} | ${mark(r.met)} |`),
      '',
      'The 200-portal case and two instances on one database: `npm run bench:call-sync-portals`, below.',
      '<!-- /bench:call-sync -->',
    ].join('\n');
    if (run.size === CASES.length) writeSection('call-sync', section);
    log(section);
    if (rows.some((r) => r.met === false)) process.exitCode = 1;
  } finally {
    clearInterval(sampler);
    if (!exited) {
      const stopped = new Promise((resolve) => child.on('exit', resolve));
      stopping = true;
      child.kill('SIGTERM');
      await stopped;
    }
    await emu.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
