/**
 * The Bitrix24 emulator as a standalone process (`npm run emulator:bitrix24`): an OAuth server
 * and one portal with employees and some CRM data, for running the service by hand.
 *
 * Environment: EMULATOR_HOST (127.0.0.1), EMULATOR_OAUTH_PORT (4000), EMULATOR_PORTAL_PORT (4010),
 * EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, EMULATOR_APP_REDIRECT_URI (where consent redirects).
 */
import { Bitrix24Emulator } from './emulator';

function port(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 0 || value > 65_535) throw new Error(`${name} must be a port number`);
  return value;
}

async function main(): Promise<void> {
  const emulator = new Bitrix24Emulator({
    host: process.env.EMULATOR_HOST ?? '127.0.0.1',
    oauthPort: port('EMULATOR_OAUTH_PORT', 4000),
    ...(process.env.EMULATOR_CLIENT_ID ? { clientId: process.env.EMULATOR_CLIENT_ID } : {}),
    ...(process.env.EMULATOR_CLIENT_SECRET ? { clientSecret: process.env.EMULATOR_CLIENT_SECRET } : {}),
    ...(process.env.EMULATOR_APP_REDIRECT_URI ? { appRedirectUri: process.env.EMULATOR_APP_REDIRECT_URI } : {}),
  });
  await emulator.start();
  const portal = await emulator.addPortal({
    port: port('EMULATOR_PORTAL_PORT', 4010),
    users: 25,
    crm: { companies: 5, contacts: 20, leads: 10, deals: 8 },
  });

  process.stdout.write(`Bitrix24 emulator
  OAuth server   ${emulator.oauthUrl}  (POST|GET /oauth/token/)
  client id      ${emulator.clientId}
  client secret  ${emulator.clientSecret}
  portal         ${portal.origin}  (domain ${portal.domain}, member_id ${portal.memberId})
  employees      ${portal.users.length} (user 1 "${portal.users[0].NAME} ${portal.users[0].LAST_NAME}" is the admin; extensions 101-${100 + portal.users.length})

Service environment:
  BITRIX_CLIENT_ID=${emulator.clientId}
  BITRIX_CLIENT_SECRET=${emulator.clientSecret}
  BITRIX_OAUTH_URL=${emulator.oauthUrl}
  BITRIX_ALLOWED_DOMAINS=${portal.origin}

Connect:
  1. POST /integration/bitrix/oauth/credentials {"domain":"${portal.origin}"} and open the auth_url
     (${portal.origin}/oauth/authorize/?client_id=${emulator.clientId}&state=…; add &user_id=N to approve as user N).
  2. The consent redirects to ${emulator.appRedirectUri} with code, domain, member_id;
     POST /integration/bitrix/oauth {"domain":"${portal.origin}","code":"…"} within 30 seconds.

Drive it:
  click-to-call   curl -X POST '${portal.origin}/_emulator/click-to-call?user_id=2&phone=%2B998901234567'
  any event       curl -X POST '${portal.origin}/_emulator/event' -d 'event=ONAPPUNINSTALL&data[CLEAN]=0'
  expire tokens   curl -X POST '${portal.origin}/_emulator/expire-tokens'
  rate limit      curl -X POST '${portal.origin}/_emulator/rate-limit' -d 'rate=2&burst=50'
  latency         curl -X POST '${portal.origin}/_emulator/latency' -d 'ms=1500'
  inject error    curl -X POST '${portal.origin}/_emulator/fail' -d 'method=user.get&error=QUERY_LIMIT_EXCEEDED&status=503'
  employees       curl -X POST '${portal.origin}/_emulator/employees' -d 'count=200'
  state           curl '${portal.origin}/_emulator/state'
  (all endpoints: test/emulators/bitrix24/README.md)

`);

  const shutdown = (signal: string): void => {
    process.stdout.write(`${signal}: stopping the emulator\n`);
    emulator.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', () => shutdown('SIGINT'));
  process.once('SIGTERM', () => shutdown('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
