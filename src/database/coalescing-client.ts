import { Client, type ClientConfig } from 'pg';

/**
 * A node-postgres client that sends every statement queued in one turn of the event loop in one
 * socket write. node-postgres writes each statement on its own; a transaction that queues BEGIN
 * with its first statement, or its last statements with COMMIT (inTransaction), then cost three to
 * four writes where one does. Each write on a local connection runs the kernel's receive path
 * and wakes the server's backend: in the ingest benchmark those writes were a fifth of the
 * service's CPU. The statements are held until the current tick's promise jobs have run
 * (process.nextTick), which adds no waiting: nothing else could have been sent before then.
 */
export class CoalescingClient extends Client {
  private flushPending = false;

  constructor(config?: string | ClientConfig) {
    super(config);
    this.query = ((...args: Parameters<Client['query']>) => {
      this.holdWrites();
      return super.query(...args);
    }) as Client['query'];
  }

  private holdWrites(): void {
    if (this.flushPending) return;
    // Looked up each time: a TLS upgrade replaces the socket after connecting.
    const stream = this.connection.stream;
    stream.cork();
    this.flushPending = true;
    process.nextTick(() => {
      this.flushPending = false;
      stream.uncork();
    });
  }
}
