import pino from 'pino';

// stderr: the account CLI uses stdout for its answers only.
const logger = pino({ name: 'boot' }, pino.destination({ fd: 2, sync: true }));

/** Logs before Nest's logger exists (configuration, database start) and after it is gone (shutdown). */
export function bootLog(level: 'debug' | 'info' | 'warn' | 'error' | 'fatal', message: string): void {
  logger[level](message);
}
