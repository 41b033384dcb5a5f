import { execFileSync, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createTestApp, TEST_APP_KEY, type TestApp } from './support/app.js';

const ROOT = join(__dirname, '..', '..');

/** The account CLI as an operator runs it: the built entry point, a real process, our database. */
describe('account CLI', () => {
  let t: TestApp;
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [join(ROOT, 'dist/src/cli.js'), ...args], {
      env: { ...process.env, DATABASE_URL: t.databaseUrl, APP_KEY: TEST_APP_KEY, LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 30_000,
    });
  const lastLine = (out: string) => out.trim().split('\n').pop() ?? '';

  beforeAll(async () => {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/@nestjs/cli/bin/nest.js'), 'build'], { cwd: ROOT, stdio: 'pipe' });
    t = await createTestApp();
  }, 120_000);
  afterAll(() => t.close());

  it('creates a company, an admin and a token that authenticates, then revokes it', async () => {
    const company = cli('company:create', 'Acme', 'Telecom');
    expect(company.status).toBe(0);
    const companyId = lastLine(company.stdout);
    expect(companyId).toMatch(/^\d+$/);

    const user = cli('user:create', '--company', companyId, '--name', 'Ali Valiyev', '--email', 'ali@acme.uz', '--role', 'admin');
    expect(user.status).toBe(0);
    const userId = lastLine(user.stdout);
    expect(userId).toMatch(/^\d+$/);

    const issued = cli('token:create', '--user', userId, '--name', 'laptop');
    expect(issued.status).toBe(0);
    const token = lastLine(issued.stdout);
    expect(token).toMatch(/^\d+\|[A-Za-z0-9]{40}$/);

    const me = await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    expect(me.body.result).toEqual({ id: Number(userId), name: 'Ali Valiyev', email: 'ali@acme.uz', role: 'admin', company: { id: Number(companyId), name: 'Acme Telecom' } });

    const revoked = cli('token:revoke', token.split('|')[0]);
    expect(revoked.status).toBe(0);
    expect(lastLine(revoked.stdout)).toBe(token.split('|')[0]);
    const after = await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(401);
    expect(after.body).toEqual({ status: 'error', code: 401, result: null, message: 'Unauthenticated.' });
  });

  it('defaults the role to user', async () => {
    const companyId = lastLine(cli('company:create', 'Beta').stdout);
    const userId = lastLine(cli('user:create', '--company', companyId, '--name', 'Operator').stdout);
    const token = lastLine(cli('token:create', '--user', userId).stdout);
    const me = await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    expect(me.body.result.role).toBe('user');
  });

  it.each([
    [['user:create', '--company', '999999', '--name', 'x'], /Company 999999 does not exist/],
    [['user:create', '--company', 'abc', '--name', 'x'], /--company must be a positive integer/],
    [['user:create', '--name', 'x'], /required option '--company <id>'/],
    [['user:create', '--company', '1', '--name', 'x', '--role', 'root'], /--role must be admin or user/],
    [['token:create', '--user', '999999'], /User 999999 does not exist/],
    [['token:create', '--user', '1', '--expires-at', 'tomorrow'], /--expires-at must be an ISO-8601 date/],
    [['token:revoke', '999999'], /Token 999999 does not exist/],
    [['no:such-command'], /unknown command/],
  ])('fails clearly with a non-zero exit: %j', (args, message) => {
    const run = cli(...args);
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(message);
    expect(run.stdout.trim()).toBe('');
  });
});
