import { createServer } from 'node:net';
import { Bitrix24Emulator } from '../../emulators/bitrix24/emulator';
import type { Portal } from '../../emulators/bitrix24/portal';
import type { Env } from '../../../src/config/validate-env';
import type { TestApp } from './app';

/** The service's Bitrix24 configuration pointing at the emulator; `extraOrigins` joins the allow-list. */
export function bitrixEnv(emu: Bitrix24Emulator, portals: Portal[], extraOrigins: string[] = []): Env {
  return {
    BITRIX_CLIENT_ID: emu.clientId,
    BITRIX_CLIENT_SECRET: emu.clientSecret,
    BITRIX_OAUTH_URL: emu.oauthUrl,
    BITRIX_ALLOWED_DOMAINS: [...portals.map((p) => p.origin), ...extraOrigins, '*.bitrix24.uz'].join(','),
    PUBLIC_URL: 'https://bitrix.utel.example',
  };
}

/** A TCP port that is free right now (for a portal that will move there later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * What an admin does in the SPA: ask for the authorisation URL, follow it on the portal (the
 * user approves), and post the code and state from the redirect back to the service.
 */
export async function connectPortal(t: TestApp, token: string, portal: Portal, options: { userId?: number } = {}) {
  const credentials = await t.http().post('/integration/bitrix/oauth/credentials').set('Authorization', `Bearer ${token}`).send({ domain: portal.origin }).expect(200);
  const authUrl = new URL(credentials.body.result.auth_url as string);
  if (options.userId) authUrl.searchParams.set('user_id', String(options.userId));
  const approval = await fetch(authUrl, { redirect: 'manual' });
  const redirect = new URL(approval.headers.get('location') ?? '');
  const q = Object.fromEntries(redirect.searchParams);
  const res = await t
    .http()
    .post('/integration/bitrix/oauth')
    .set('Authorization', `Bearer ${token}`)
    .send({ domain: portal.origin, code: q.code, state: q.state, server_domain: q.server_domain });
  return { res, redirect: q, authUrl };
}

export { Bitrix24Emulator };
