/**
 * The fake AMI as a standalone process (`npm run emulator:ami`), for running the service by hand.
 * Environment: AMI_EMULATOR_HOST (127.0.0.1), AMI_EMULATOR_PORT (5038), AMI_EMULATOR_USER (utel),
 * AMI_EMULATOR_SECRET (secret). Every action received is printed.
 */
import { FakeAmiServer } from './ami-server';

async function main(): Promise<void> {
  const port = Number(process.env.AMI_EMULATOR_PORT ?? 5038);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new Error('AMI_EMULATOR_PORT must be a port number');
  const host = process.env.AMI_EMULATOR_HOST ?? '127.0.0.1';
  const username = process.env.AMI_EMULATOR_USER ?? 'utel';
  const secret = process.env.AMI_EMULATOR_SECRET ?? 'secret';
  const server = new FakeAmiServer({ host, username, secret });
  await server.start(port);
  const seen = server.actions;
  const push = seen.push.bind(seen);
  seen.push = (...items) => {
    for (const item of items) process.stdout.write(`${new Date().toISOString()} ${item.headers.filter(([k]) => k.toLowerCase() !== 'secret').map(([k, v]) => `${k}=${v}`).join(' ')}\n`);
    return push(...items);
  };
  process.stdout.write(`Fake AMI listening on ${host}:${server.port}

Service environment:
  PBX_DRIVER=ami
  AMI_HOST=${host}
  AMI_PORT=${server.port}
  AMI_USER=${username}
  AMI_SECRET=${secret}
`);
  const stop = () => void server.stop().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

void main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
