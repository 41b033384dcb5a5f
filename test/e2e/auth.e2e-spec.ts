import { Controller, Get, Post } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { DataSource } from 'typeorm';
import { Roles } from '../../src/common/decorators';
import { createTestApp, type TestApp } from './support/app';

/** A route guarded by role, to exercise the roles guard through HTTP with real tokens. */
@Controller('test-admin')
class AdminOnlyController {
  @Post()
  @Roles('admin')
  change(): { changed: boolean } {
    return { changed: true };
  }

  @Get()
  read(): { read: boolean } {
    return { read: true };
  }
}

const unauthenticated = { status: 'error', code: 401, result: null, message: 'Unauthenticated.' };

describe('bearer authentication', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ controllers: [AdminOnlyController] });
  });
  afterAll(() => t.close());

  it('answers a valid token with the caller and their company, in the envelope', async () => {
    const { token, companyId, userId } = await t.login('user');
    const res = await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    expect(res.body).toEqual({
      status: 'success',
      code: 200,
      message: 'Ok',
      result: { id: userId, name: 'user user', email: null, role: 'user', company: { id: companyId, name: expect.any(String) } },
    });
  });

  it.each([
    ['no header', undefined],
    ['another scheme', 'Basic dXNlcjpwYXNz'],
    ['an empty bearer', 'Bearer '],
    ['a token without id', 'Bearer abcdefghijklmnopqrstuvwxyz0123456789ABCD'],
    ['a non-numeric id', 'Bearer x|abcdefghijklmnopqrstuvwxyz0123456789ABCD'],
    ['an id beyond int range', 'Bearer 99999999999|abcdefghijklmnopqrstuvwxyz0123456789ABCD'],
    ['an unknown id', 'Bearer 424242|abcdefghijklmnopqrstuvwxyz0123456789ABCD'],
    ['a huge header', `Bearer 1|${'a'.repeat(8000)}`],
  ])('refuses %s with 401 in the envelope', async (_, header) => {
    const req = t.http().get('/me');
    if (header !== undefined) req.set('Authorization', header);
    const res = await req.expect(401);
    expect(res.body).toEqual(unauthenticated);
  });

  it('takes the token only from the Authorization header, never from the URL or the body', async () => {
    const { token } = await t.login();
    expect((await t.http().get(`/me?access_token=${encodeURIComponent(token)}`).expect(401)).body).toEqual(unauthenticated);
    expect((await t.http().post('/test-admin').send({ access_token: token }).expect(401)).body).toEqual(unauthenticated);
  });

  it.each([
    ['an array in the query', (r: ReturnType<TestApp['http']>) => r.get('/me?access_token=a&access_token=b')],
    ['an object in the body', (r: ReturnType<TestApp['http']>) => r.post('/test-admin').send({ access_token: {} })],
    ['an array in the form body', (r: ReturnType<TestApp['http']>) => r.post('/test-admin').type('form').send('access_token[]=a&access_token[]=b')],
  ])('answers a hostile token in %s with 401, not 500', async (_, send) => {
    expect((await send(t.http()).expect(401)).body).toEqual(unauthenticated);
  });

  it('refuses a known id with the wrong secret', async () => {
    const { tokenId } = await t.login();
    const res = await t.http().get('/me').set('Authorization', `Bearer ${tokenId}|wrongsecretwrongsecretwrongsecretwrongse`).expect(401);
    expect(res.body).toEqual(unauthenticated);
  });

  /**
   * The status `path` answers `token` once a change has had a moment to be announced: tokens in use
   * are served from memory, and a change written by anyone reaches every instance through NOTIFY.
   */
  const statusSoon = async (token: string, wanted: number, method: 'get' | 'post' = 'get', path = '/me') => {
    let status = 0;
    for (let i = 0; i < 50 && status !== wanted; i++) {
      if (i) await new Promise((resolve) => setTimeout(resolve, 50));
      status = (await t.http()[method](path).set('Authorization', `Bearer ${token}`)).status;
    }
    return status;
  };

  it('refuses a revoked token, also one in use', async () => {
    const { token, tokenId } = await t.login();
    await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    await t.app.get(DataSource).query('DELETE FROM personal_access_tokens WHERE id = $1', [tokenId]);
    expect(await statusSoon(token, 401)).toBe(401);
    expect((await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(401)).body).toEqual(unauthenticated);
  });

  it('refuses an expired token, also one that expires while in use', async () => {
    const { token, tokenId } = await t.login();
    await t.app.get(DataSource).query(`UPDATE personal_access_tokens SET expires_at = now() - interval '1 second' WHERE id = $1`, [tokenId]);
    expect((await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(401)).body).toEqual(unauthenticated);

    const soon = await t.login();
    await t.app.get(DataSource).query(`UPDATE personal_access_tokens SET expires_at = now() + interval '3 seconds' WHERE id = $1`, [soon.tokenId]);
    const [{ expires_at: expiresAt }] = await t.app.get(DataSource).query('SELECT expires_at FROM personal_access_tokens WHERE id = $1', [soon.tokenId]);
    await t.http().get('/me').set('Authorization', `Bearer ${soon.token}`).expect(200);
    await new Promise((resolve) => setTimeout(resolve, new Date(expiresAt).getTime() - Date.now() + 100));
    await t.http().get('/me').set('Authorization', `Bearer ${soon.token}`).expect(401);
  });

  it('follows a user deleted, demoted or moved to another company while their token is in use', async () => {
    const db = t.app.get(DataSource);
    const admin = await t.login('admin');
    await t.http().post('/test-admin').set('Authorization', `Bearer ${admin.token}`).expect(200);
    const { userId } = admin;
    await db.query(`UPDATE users SET role = 'user' WHERE id = $1`, [userId]);
    expect(await statusSoon(admin.token, 403, 'post', '/test-admin')).toBe(403);

    const other = await t.login('admin');
    await db.query('UPDATE users SET company_id = $2 WHERE id = $1', [userId, other.companyId]);
    let companyId = 0;
    for (let i = 0; i < 50 && companyId !== other.companyId; i++) {
      if (i) await new Promise((resolve) => setTimeout(resolve, 50));
      companyId = (await t.http().get('/me').set('Authorization', `Bearer ${admin.token}`).expect(200)).body.result.company.id;
    }
    expect(companyId).toBe(other.companyId);

    await db.query('DELETE FROM users WHERE id = $1', [userId]);
    expect(await statusSoon(admin.token, 401)).toBe(401);
  });

  it('refuses a token revoked while the change announcements were cut off', async () => {
    const db = t.app.get(DataSource);
    const listening = () => db.query(`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %auth_changed%'`);
    const { token, tokenId } = await t.login();
    await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    expect(await listening()).toHaveLength(1);
    await db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %auth_changed%'`);
    await db.query('DELETE FROM personal_access_tokens WHERE id = $1', [tokenId]);
    expect(await statusSoon(token, 401)).toBe(401);
    // Listening again, and announcements reach the cache again.
    for (let i = 0; i < 100 && (await listening()).length < 1; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await listening()).toHaveLength(1);
    const again = await t.login();
    await t.http().get('/me').set('Authorization', `Bearer ${again.token}`).expect(200);
    await db.query('DELETE FROM personal_access_tokens WHERE id = $1', [again.tokenId]);
    expect(await statusSoon(again.token, 401)).toBe(401);
  });

  it('stores only the SHA-256 of the secret and records last use', async () => {
    const { token, tokenId } = await t.login();
    await t.http().get('/me').set('Authorization', `Bearer ${token}`).expect(200);
    const [row] = await t.app.get(DataSource).query('SELECT token, last_used_at FROM personal_access_tokens WHERE id = $1', [tokenId]);
    const secret = token.split('|')[1];
    expect(secret).toMatch(/^[A-Za-z0-9]{40}$/);
    expect(row.token).toBe(require('node:crypto').createHash('sha256').update(secret).digest('hex'));
    expect(row.last_used_at).not.toBeNull();
  });

  it('authenticates a token Laravel Sanctum wrote (tokenable_type App\\Models\\User), with or without its id', async () => {
    const { userId } = await t.login('user');
    const db = t.app.get(DataSource);
    const insert = async (tokenableType: string, secret: string): Promise<number> => {
      const hash = createHash('sha256').update(secret).digest('hex');
      const [row] = await db.query(
        `INSERT INTO personal_access_tokens (tokenable_type, tokenable_id, name, token, abilities) VALUES ($1, $2, 'laravel', $3, '["*"]') RETURNING id`,
        [tokenableType, userId, hash],
      );
      return row.id as number;
    };
    const laravelSecret = 'L'.repeat(20) + 'aravelSanctumToken40';
    const laravelId = await insert('App\\Models\\User', laravelSecret);
    for (const header of [`Bearer ${laravelId}|${laravelSecret}`, `Bearer ${laravelSecret}`]) {
      expect((await t.http().get('/me').set('Authorization', header).expect(200)).body.result).toMatchObject({ id: userId, role: 'user' });
    }
    // Another model's token (a device, say) is not a user's.
    const deviceSecret = 'D'.repeat(20) + 'eviceSanctumToken400';
    const deviceId = await insert('App\\Models\\Device', deviceSecret);
    await t.http().get('/me').set('Authorization', `Bearer ${deviceId}|${deviceSecret}`).expect(401);
    await t.http().get('/me').set('Authorization', `Bearer ${deviceSecret}`).expect(401);
  });

  it("resolves each token to its own company: another company's token sees only its own", async () => {
    const a = await t.login('admin');
    const b = await t.login('admin');
    const resA = await t.http().get('/me').set('Authorization', `Bearer ${a.token}`).expect(200);
    const resB = await t.http().get('/me').set('Authorization', `Bearer ${b.token}`).expect(200);
    expect(resA.body.result.company.id).toBe(a.companyId);
    expect(resB.body.result.company.id).toBe(b.companyId);
    expect(a.companyId).not.toBe(b.companyId);
  });

  it('keeps concurrent requests apart: each resolves to its own token, and bad ones fail alone', async () => {
    const logins = await Promise.all(Array.from({ length: 8 }, (_, i) => t.login(i % 2 ? 'user' : 'admin')));
    const results = await Promise.all(
      logins.flatMap((l) => [
        t.http().get('/me').set('Authorization', `Bearer ${l.token}`),
        t.http().get('/me').set('Authorization', `Bearer ${l.tokenId}|wrongsecretwrongsecretwrongsecretwrongse`),
      ]),
    );
    logins.forEach((l, i) => {
      expect(results[2 * i].status).toBe(200);
      expect(results[2 * i].body.result.id).toBe(l.userId);
      expect(results[2 * i + 1].status).toBe(401);
    });
  });

  it('lets an admin use an admin-only route and refuses a user with 403', async () => {
    const admin = await t.login('admin');
    const user = await t.login('user', admin.companyId);
    const ok = await t.http().post('/test-admin').set('Authorization', `Bearer ${admin.token}`).expect(200);
    expect(ok.body).toEqual({ status: 'success', code: 200, result: { changed: true }, message: 'Ok' });
    const denied = await t.http().post('/test-admin').set('Authorization', `Bearer ${user.token}`).expect(403);
    expect(denied.body).toEqual({ status: 'error', code: 403, result: null, message: 'This action requires the admin role.' });
    await t.http().get('/test-admin').set('Authorization', `Bearer ${user.token}`).expect(200);
  });

  it('authenticates before checking roles: no token on an admin route is 401, not 403', async () => {
    expect((await t.http().post('/test-admin').expect(401)).body).toEqual(unauthenticated);
  });
});
