import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';

/** One AMI message: its header lines in order (keys as sent, repeated keys kept). */
export type AmiHeaders = [key: string, value: string][];

export interface ReceivedAction {
  action: string;
  headers: AmiHeaders;
  /** First value of a header, case-insensitive (as Asterisk reads them). */
  get(key: string): string | undefined;
  /** Every value of a repeated header (`Variable`). */
  all(key: string): string[];
}

export interface FakeAmiOptions {
  username?: string;
  secret?: string;
  version?: string;
  host?: string;
}

const EOL = '\r\n';

/**
 * A fake Asterisk Manager Interface over real TCP, following the AMI wire protocol
 * (docs.asterisk.org, "AMI: Asterisk Manager Interface"): the `Asterisk Call Manager/<version>`
 * banner, `Key: Value` lines ending in CRLF, a blank line ending each message, `ActionID`
 * echoed on responses and on the events an action causes. Understood actions: Login (plain
 * secret), Logoff, Ping, Originate (`Async: true` answers `Response: Success` "Originate
 * successfully queued", then an `OriginateResponse` event). Anything else is `Response: Error`
 * "Invalid/unknown command", and every action but Login before a login is `Permission denied`.
 *
 * Knobs for tests: `refuseLogin`, `failOriginate` (the OriginateResponse reports `Response:
 * Failure`), `originateDelayMs`, `dropConnections()`, `actions` (everything received).
 */
export class FakeAmiServer {
  readonly actions: ReceivedAction[] = [];
  refuseLogin = false;
  /** When set, originates fail with this `Reason` (Asterisk's dial states: 0 failure, 1 hangup, 3 ringing timeout, 5 busy, 8 congestion; 4 is answered). */
  failOriginate: number | null = null;
  originateDelayMs = 0;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly username: string;
  private readonly secret: string;
  private readonly version: string;
  private readonly host: string;
  port = 0;

  constructor(options: FakeAmiOptions = {}) {
    this.username = options.username ?? 'utel';
    this.secret = options.secret ?? 'secret';
    this.version = options.version ?? '9.0.0';
    this.host = options.host ?? '127.0.0.1';
  }

  /** Originate actions received from logged-in sessions. */
  get originates(): ReceivedAction[] {
    return this.actions.filter((a) => a.action.toLowerCase() === 'originate');
  }

  get connections(): number {
    return this.sockets.size;
  }

  async start(port = 0): Promise<void> {
    const server = createServer((socket) => this.onConnection(socket));
    server.listen(port, this.host);
    await once(server, 'listening');
    this.server = server;
    this.port = (server.address() as { port: number }).port;
  }

  /** Destroys every open connection without a goodbye (a PBX restart or a network cut). */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    this.dropConnections();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const session = { loggedIn: false };
    let buffer = '';
    socket.write(`Asterisk Call Manager/${this.version}${EOL}`);
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      let end: number;
      while ((end = buffer.indexOf(EOL + EOL)) >= 0) {
        const raw = buffer.slice(0, end);
        buffer = buffer.slice(end + 4);
        if (raw.trim() !== '') this.onAction(socket, session, parse(raw));
      }
    });
  }

  private onAction(socket: Socket, session: { loggedIn: boolean }, headers: AmiHeaders): void {
    const action = received(headers);
    const id = action.get('ActionID');
    const reply = (lines: AmiHeaders) => write(socket, id === undefined ? lines : [...lines, ['ActionID', id]]);
    const name = action.action.toLowerCase();
    if (name !== 'login' && !session.loggedIn) return reply([['Response', 'Error'], ['Message', 'Permission denied']]);
    this.actions.push(action);
    switch (name) {
      case 'login': {
        const ok = !this.refuseLogin && action.get('Username') === this.username && action.get('Secret') === this.secret;
        if (!ok) {
          reply([['Response', 'Error'], ['Message', 'Authentication failed']]);
          // Asterisk closes the session after a failed login.
          socket.end();
          return;
        }
        session.loggedIn = true;
        return reply([['Response', 'Success'], ['Message', 'Authentication accepted']]);
      }
      case 'logoff':
        reply([['Response', 'Goodbye'], ['Message', 'Thanks for all the fish.']]);
        socket.end();
        return;
      case 'ping':
        return reply([['Response', 'Success'], ['Ping', 'Pong'], ['Timestamp', (Date.now() / 1000).toFixed(6)]]);
      case 'originate':
        return this.originate(socket, action, reply);
      default:
        return reply([['Response', 'Error'], ['Message', 'Invalid/unknown command']]);
    }
  }

  private originate(socket: Socket, action: ReceivedAction, reply: (lines: AmiHeaders) => void): void {
    const channel = action.get('Channel');
    if (!channel) return reply([['Response', 'Error'], ['Message', 'Channel not specified']]);
    const failed = this.failOriginate;
    const event = (): AmiHeaders => {
      const lines: AmiHeaders = [
        ['Event', 'OriginateResponse'],
        ['Privilege', 'call,all'],
        ['Response', failed === null ? 'Success' : 'Failure'],
        ['Channel', channel],
        ['Context', action.get('Context') ?? ''],
        ['Exten', action.get('Exten') ?? ''],
        ['Reason', failed === null ? '4' : String(failed)],
        ['Uniqueid', failed === null ? `${Math.floor(Date.now() / 1000)}.${this.actions.length}` : '<null>'],
        ['CallerIDNum', action.get('CallerID')?.replace(/^.*<|>.*$/g, '') ?? '<unknown>'],
      ];
      const id = action.get('ActionID');
      return id === undefined ? lines : [...lines, ['ActionID', id]];
    };
    const async = /^(true|yes|1|on)$/i.test(action.get('Async') ?? '');
    const later = (fn: () => void) => (this.originateDelayMs > 0 ? setTimeout(fn, this.originateDelayMs) : setImmediate(fn));
    if (async) {
      reply([['Response', 'Success'], ['Message', 'Originate successfully queued']]);
      later(() => write(socket, event()));
      return;
    }
    // Synchronous originate: the response comes only when the call was answered or failed.
    later(() => reply(failed === null ? [['Response', 'Success'], ['Message', 'Originate successfully queued']] : [['Response', 'Error'], ['Message', 'Originate failed']]));
  }
}

function parse(raw: string): AmiHeaders {
  return raw
    .split(EOL)
    .map((line): [string, string] | null => {
      const colon = line.indexOf(':');
      return colon <= 0 ? null : [line.slice(0, colon).trim(), line.slice(colon + 1).trim()];
    })
    .filter((pair): pair is [string, string] => pair !== null);
}

function received(headers: AmiHeaders): ReceivedAction {
  const all = (key: string) => headers.filter(([k]) => k.toLowerCase() === key.toLowerCase()).map(([, v]) => v);
  return { action: all('Action')[0] ?? '', headers, get: (key) => all(key)[0], all };
}

function write(socket: Socket, lines: AmiHeaders): void {
  if (!socket.writable) return;
  socket.write(lines.map(([k, v]) => `${k}: ${v}${EOL}`).join('') + EOL);
}
