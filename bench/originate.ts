/**
 * Originate latency: POST /integration/bitrix/originate (Bitrix24's form-encoded
 * ONEXTERNALCALLSTART, key + application_token checked, binding looked up, row written, AMI
 * Originate answered by the fake AMI over TCP) measured from the client, sequentially and with
 * 10 in flight. Needs a PostgreSQL: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres,
 * a scratch database is created and dropped). Run with `npm run bench:originate`; it rewrites its
 * section of BENCHMARKS.md.
 */
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { FakeAmiServer } from '../test/emulators/ami/ami-server';
import { Bitrix24Emulator } from '../test/emulators/bitrix24/emulator';
import { createTestApp } from '../test/e2e/support/app';
import { bitrixEnv, connectPortal } from '../test/e2e/support/bitrix';
import { writeSection } from './support';

const SEQUENTIAL = 300;
const CONCURRENT = 600;
const IN_FLIGHT = 10;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

async function main(): Promise<void> {
  const admin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `bench_originate_${randomBytes(4).toString('hex')}`;
  const adminClient = new Client({ connectionString: admin });
  await adminClient.connect();
  await adminClient.query(`CREATE DATABASE "${name}"`);
  const url = new URL(admin);
  url.pathname = `/${name}`;

  const emu = new Bitrix24Emulator();
  await emu.start();
  const portal = await emu.addPortal({ users: 5 });
  const ami = new FakeAmiServer();
  await ami.start();
  const t = await createTestApp({
    databaseUrl: url.toString(),
    env: { ...bitrixEnv(emu, [portal]), PBX_DRIVER: 'ami', AMI_HOST: '127.0.0.1', AMI_PORT: String(ami.port), AMI_USER: 'utel', AMI_SECRET: 'secret' },
  });
  try {
    const { token } = await t.login('admin');
    await connectPortal(t, token, portal);
    await t.http().post('/integration/bitrix/settings').set('Authorization', `Bearer ${token}`).send({ bindings: [{ sip_phone: '101', bitrix_user_id: 1 }] }).expect(200);
    const key = new URL(portal.eventBindings[0].handler).searchParams.get('key') as string;
    const { port } = t.app.getHttpServer().address() as { port: number };
    const target = `http://127.0.0.1:${port}/integration/bitrix/originate?key=${encodeURIComponent(key)}`;
    let n = 0;
    const once = async (): Promise<number> => {
      n += 1;
      const body = new URLSearchParams({
        event: 'ONEXTERNALCALLSTART', event_handler_id: '1', ts: String(Math.floor(Date.now() / 1000)),
        'data[USER_ID]': '1', 'data[PHONE_NUMBER]': `+99890${String(1000000 + n).slice(-7)}`, 'data[PHONE_NUMBER_INTERNATIONAL]': `+99890${String(1000000 + n).slice(-7)}`,
        'data[CALL_ID]': `externalCall.${randomBytes(16).toString('hex')}.${Math.floor(Date.now() / 1000)}`, 'data[LINE_NUMBER]': '', 'data[CRM_ENTITY_TYPE]': 'CONTACT', 'data[CRM_ENTITY_ID]': '1',
        'auth[member_id]': portal.memberId, 'auth[application_token]': portal.applicationToken, 'auth[domain]': portal.domain,
      }).toString();
      const started = performance.now();
      const res = await fetch(target, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body });
      await res.text();
      if (res.status !== 200) throw new Error(`originate answered ${res.status}`);
      return performance.now() - started;
    };
    for (let i = 0; i < 30; i++) await once(); // warm-up
    const sequential: number[] = [];
    for (let i = 0; i < SEQUENTIAL; i++) sequential.push(await once());
    const concurrent: number[] = [];
    const startedAll = performance.now();
    let left = CONCURRENT;
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (left-- > 0) concurrent.push(await once());
    }));
    const seconds = (performance.now() - startedAll) / 1000;
    const originates = ami.originates.length;
    const fmt = (ms: number) => `${ms.toFixed(1)} ms`;
    const s = [...sequential].sort((a, b) => a - b);
    const c = [...concurrent].sort((a, b) => a - b);
    const section = `<!-- bench:originate -->
## Originate request latency

Command: \`npm run bench:originate\` (in-process service on PostgreSQL \`BENCH_DATABASE_URL\`, the Bitrix24 emulator, the fake AMI over TCP;
each request is a form-encoded ONEXTERNALCALLSTART: key and application_token checked, binding looked up, \`pbx_originates\` row written,
AMI \`Originate\` answered). Measured ${new Date().toISOString().slice(0, 10)} on this project's 2-core machine:

| what | p50 | p99 | max |
|---|---|---|---|
| sequential, ${SEQUENTIAL} requests | ${fmt(percentile(s, 50))} | ${fmt(percentile(s, 99))} | ${fmt(s[s.length - 1])} |
| ${IN_FLIGHT} in flight, ${CONCURRENT} requests (${(CONCURRENT / seconds).toFixed(0)} req/s) | ${fmt(percentile(c, 50))} | ${fmt(percentile(c, 99))} | ${fmt(c[c.length - 1])} |

Originate actions the fake AMI received: ${originates} of ${SEQUENTIAL + CONCURRENT + 30} requests.
<!-- /bench:originate -->`;
    process.stdout.write(`${section}\n`);
    writeSection('originate', section);
  } finally {
    await t.app.close();
    await ami.stop();
    await emu.stop();
    await adminClient.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await adminClient.end();
  }
}

void main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
