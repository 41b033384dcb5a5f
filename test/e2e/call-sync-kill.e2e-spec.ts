import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { createTestApp, TEST_APP_KEY } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal, freePort } from './support/bitrix';
import { answeredCall, pbxCallId, until } from './support/calls';
import { createTestDatabase } from './support/database';

jest.setTimeout(240_000);

const ROOT = join(__dirname, '..', '..');

/** The service as a real process, killed with SIGKILL mid-load and started again. */
describe('call sync across a SIGKILL', () => {
  let emu: Bitrix24Emulator;
  let db: { url: string; drop(): Promise<void> };
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    db = await createTestDatabase();
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await emu.stop();
    await db.drop();
  });

  it('loses and duplicates nothing', async () => {
    const portal = await emu.addPortal({ users: [{ ID: 1, ADMIN: true, UF_PHONE_INNER: '101' }], rateLimit: { rate: 2, burst: 50 } });
    const env = bitrixEnv(emu, [portal]);
    // Accounts and the connection through the API, then the in-process app goes away.
    const setup = await createTestApp({ env, databaseUrl: db.url });
    const admin = await setup.login('admin');
    expect((await connectPortal(setup, admin.token, portal)).res.status).toBe(200);
    await setup.close();

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const start = async () => {
      const proc = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', join(ROOT, 'src/main.ts')], {
        cwd: ROOT,
        env: { ...process.env, ...env, DATABASE_URL: db.url, PORT: String(port), APP_KEY: TEST_APP_KEY, LOG_LEVEL: 'silent', DATA_DIR: mkdtempSync(join(tmpdir(), 'utel-kill-')) },
        stdio: 'ignore',
      });
      await until(() => fetch(`${base}/health`).then((r) => r.status, () => 0), (s) => s === 200, 60_000);
      return proc;
    };
    const post = async (events: unknown[]) => {
      // A PBX re-sends a request that got no answer.
      for (;;) {
        const res = await fetch(`${base}/pbx/events`, { method: 'POST', headers: { Authorization: `Bearer ${admin.token}`, 'Content-Type': 'application/json' }, body: JSON.stringify(events) }).catch(() => null);
        if (res?.status === 202) return;
        await new Promise((r) => setTimeout(r, 200));
      }
    };

    child = await start();
    const ids = Array.from({ length: 400 }, () => pbxCallId());
    const sending = (async () => {
      for (let i = 0; i < ids.length; i += 20) await post(ids.slice(i, i + 20).flatMap((id) => answeredCall(id)));
    })();
    // Kill it once Bitrix24 has seen part of the load, then start it again while the PBX keeps sending.
    await until(() => portal.telephony.statistics.length, (n) => n >= 50, 60_000);
    child.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    child = await start();
    await sending;

    const pg = new Client({ connectionString: db.url });
    await pg.connect();
    try {
      await until(
        () => pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM calls WHERE sync_state = 'synced'`).then((r) => r.rows[0].n),
        (n) => n === ids.length,
        150_000,
      );
      const { rows } = await pg.query<{ sync_state: string; n: number }>(`SELECT sync_state, count(*)::int AS n FROM calls GROUP BY 1`);
      expect(rows).toEqual([{ sync_state: 'synced', n: ids.length }]);
    } finally {
      await pg.end();
    }
    for (const id of ids) {
      const calls = portal.telephony.calls.filter((c) => c.EXTERNAL_CALL_ID === id);
      expect([id, calls.length]).toEqual([id, 1]);
      expect([id, portal.telephony.statistics.filter((s) => s.CALL_ID === calls[0].CALL_ID).length]).toEqual([id, 1]);
    }
    expect(portal.stats.queryLimitExceeded).toBe(0);
  });
});
