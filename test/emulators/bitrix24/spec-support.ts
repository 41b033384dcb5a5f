import type { Bitrix24Emulator } from './emulator';
import type { Portal } from './portal';

/** What the emulator specs read from an answer. */
export interface Answer {
  status: number;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- REST answers are inspected freely
  body: any;
}

/** The token answer of brief §1.4. */
export interface TokenAnswer {
  access_token: string;
  refresh_token: string;
  expires: number;
  expires_in: number;
  domain: string;
  server_endpoint: string;
  client_endpoint: string;
  member_id: string;
  user_id: number;
  scope: string;
  status: string;
}

/** `/oauth/token/` with the emulator's client, as a form POST (or GET with a query). */
export async function tokenRequest(emu: Bitrix24Emulator, params: Record<string, string>, method: 'GET' | 'POST' = 'POST'): Promise<Answer> {
  const query = new URLSearchParams({ client_id: emu.clientId, client_secret: emu.clientSecret, ...params });
  const response =
    method === 'GET'
      ? await fetch(`${emu.oauthUrl}/oauth/token/?${query.toString()}`)
      : await fetch(`${emu.oauthUrl}/oauth/token/`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: query.toString(),
        });
  return { status: response.status, body: await response.json() };
}

/** Approves the app as `userId` and exchanges the code: the §1.4 token answer. */
export async function connectApp(emu: Bitrix24Emulator, portal: Portal, userId = 1): Promise<TokenAnswer> {
  const { code } = portal.authorize({ userId });
  const answer = await tokenRequest(emu, { grant_type: 'authorization_code', code });
  if (answer.status !== 200) throw new Error(`code exchange answered ${answer.status}`);
  return answer.body as TokenAnswer;
}

/** One REST call as a JSON POST to `/rest/<method>.json` with `auth` in the body. */
export async function restCall(portal: Portal, auth: string, method: string, params: Record<string, unknown> = {}): Promise<Answer> {
  const response = await fetch(`${portal.origin}/rest/${method}.json`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...params, auth }),
  });
  return { status: response.status, body: await response.json() };
}
