import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';

/** An AMI message as `key (lower case) → value`; repeated keys keep their last value. */
export type AmiMessage = Record<string, string>;
/** An action: header lines in order; an array value repeats the header (`Variable`). */
export type AmiAction = Record<string, string | string[]>;

export interface AmiConnectionOptions {
  host: string;
  port: number;
  user: string;
  secret: string;
  /** AMI event classes this session asks for (`Events:` of Login). */
  events: string;
  connectTimeoutMs?: number;
  actionTimeoutMs?: number;
  pingIntervalMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export class AmiUnavailableError extends Error {
  override readonly name = 'AmiUnavailableError';
}

const EOL = '\r\n';
const BANNER = /^Asterisk Call Manager\/\S+/;

interface Pending {
  resolve: (message: AmiMessage) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * One Asterisk Manager session, kept open: connect, read the banner, `Login`, `Ping` to notice a
 * dead link, and on any loss reconnect with exponential backoff (jittered, capped) — also after a
 * refused login, since the PBX's credentials may be fixed without restarting us. An action is sent
 * only while logged in: otherwise `send` rejects at once and nothing is queued, so nothing is ever
 * dialled late when the PBX comes back. Emits `event` (AmiMessage), `ready`, `down` (reason).
 */
export class AmiConnection extends EventEmitter {
  private socket: Socket | undefined;
  private loggedIn = false;
  private stopped = true;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly idPrefix = `${process.pid}-${Date.now().toString(36)}-`;
  /** Why the connection is not logged in, for the 503 message and logs. */
  lastError = 'not connected yet';

  constructor(private readonly options: AmiConnectionOptions) {
    super();
  }

  get ready(): boolean {
    return this.loggedIn;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.open();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const socket = this.socket;
    if (socket && !socket.destroyed) {
      if (this.loggedIn) await this.send({ Action: 'Logoff' }).catch(() => undefined);
      socket.destroy();
    }
    this.teardown('stopped');
  }

  /**
   * Sends one action and resolves with its response (any `Response`); rejects when not logged in,
   * on loss, or on timeout. A given `ActionID` is kept (the events it causes carry it).
   */
  send(action: AmiAction): Promise<AmiMessage> {
    const socket = this.socket;
    const isLogin = action.Action === 'Login';
    if (!socket || socket.destroyed || (!this.loggedIn && !isLogin)) return Promise.reject(new AmiUnavailableError(this.lastError));
    const id = typeof action.ActionID === 'string' ? action.ActionID : this.actionId();
    return new Promise<AmiMessage>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AmiUnavailableError('the PBX did not answer in time'));
        // A session that stops answering is dead to us: start over.
        socket.destroy();
      }, this.options.actionTimeoutMs ?? 5_000);
      // Registered before the write: the answer cannot overtake its own bookkeeping.
      this.pending.set(id, { resolve, reject, timer });
      socket.write(serialize({ ...action, ActionID: id }));
    });
  }

  /** A fresh ActionID, unique for this process and connection object. */
  actionId(): string {
    return `${this.idPrefix}${this.nextId++}`;
  }

  private open(): void {
    const socket = connect({ host: this.options.host, port: this.options.port });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
    socket.setTimeout(this.options.connectTimeoutMs ?? 5_000, () => socket.destroy(new Error('connect timeout')));
    let buffer = '';
    let greeted = false;
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      if (!greeted) {
        const eol = buffer.indexOf(EOL);
        if (eol < 0) return;
        const banner = buffer.slice(0, eol);
        buffer = buffer.slice(eol + 2);
        if (!BANNER.test(banner)) {
          socket.destroy(new Error('not an Asterisk Manager Interface'));
          return;
        }
        greeted = true;
        socket.setTimeout(0);
        void this.login();
      }
      let end: number;
      while ((end = buffer.indexOf(EOL + EOL)) >= 0) {
        const raw = buffer.slice(0, end);
        buffer = buffer.slice(end + 4);
        if (raw.trim() !== '') this.dispatch(parse(raw));
      }
    });
    socket.on('error', (err) => {
      this.lastError = `PBX connection failed (${(err as NodeJS.ErrnoException).code ?? err.message})`;
    });
    socket.on('close', () => {
      if (this.socket !== socket) return;
      this.teardown(this.lastError);
      this.scheduleReconnect();
    });
  }

  private async login(): Promise<void> {
    try {
      const answer = await this.send({ Action: 'Login', Username: this.options.user, Secret: this.options.secret, Events: this.options.events });
      if (answer.response?.toLowerCase() !== 'success') {
        this.lastError = `the PBX refused the AMI login (${answer.message ?? 'no reason given'})`;
        this.socket?.destroy();
        return;
      }
    } catch {
      return; // the close handler reconnects
    }
    this.loggedIn = true;
    this.attempt = 0;
    this.lastError = '';
    this.pingTimer = setInterval(() => void this.send({ Action: 'Ping' }).catch(() => undefined), this.options.pingIntervalMs ?? 20_000);
    this.pingTimer.unref();
    this.emit('ready');
  }

  private dispatch(message: AmiMessage): void {
    if (message.event) {
      this.emit('event', message);
      return;
    }
    const pending = message.actionid ? this.pending.get(message.actionid) : undefined;
    if (!pending) return;
    this.pending.delete(message.actionid);
    clearTimeout(pending.timer);
    pending.resolve(message);
  }

  private teardown(reason: string): void {
    const wasReady = this.loggedIn;
    this.loggedIn = false;
    clearInterval(this.pingTimer);
    for (const [id, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new AmiUnavailableError(reason || 'PBX connection lost'));
      this.pending.delete(id);
    }
    if (wasReady) this.emit('down', reason || 'PBX connection lost');
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const min = this.options.minBackoffMs ?? 250;
    const max = this.options.maxBackoffMs ?? 30_000;
    const delay = Math.min(max, min * 2 ** Math.min(this.attempt++, 16));
    this.reconnectTimer = setTimeout(() => this.open(), Math.round(delay * (0.5 + Math.random() * 0.5)));
    this.reconnectTimer.unref();
  }
}

function serialize(action: AmiAction): string {
  let out = '';
  for (const [key, value] of Object.entries(action)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      // A CR or LF inside a value would start a new header: never let input forge one.
      out += `${key}: ${v.replace(/[\r\n]/g, ' ')}${EOL}`;
    }
  }
  return out + EOL;
}

function parse(raw: string): AmiMessage {
  const message: AmiMessage = {};
  for (const line of raw.split(EOL)) {
    const colon = line.indexOf(':');
    if (colon > 0) message[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return message;
}
