import { FakeAmiServer } from '../../../test/emulators/ami/ami-server';
import { AmiConnection, AmiUnavailableError } from './ami-connection';

const waitFor = async (check: () => boolean, ms = 5_000) => {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

/** The AMI session against the fake AMI over TCP: login, refusal, loss, reconnect, timeouts. */
describe('AmiConnection', () => {
  let server: FakeAmiServer;
  let connection: AmiConnection;
  const open = (options: Partial<ConstructorParameters<typeof AmiConnection>[0]> = {}) => {
    connection = new AmiConnection({ host: '127.0.0.1', port: server.port, user: 'u', secret: 'p', events: 'call', minBackoffMs: 20, maxBackoffMs: 100, ...options });
    connection.start();
    return connection;
  };

  beforeEach(async () => {
    server = new FakeAmiServer({ username: 'u', secret: 'p' });
    await server.start();
  });
  afterEach(async () => {
    await connection.stop();
    await server.stop();
  });

  it('logs in with the configured secret and event classes, and pings', async () => {
    open({ pingIntervalMs: 30 });
    await waitFor(() => connection.ready);
    const login = server.actions.find((a) => a.action === 'Login');
    expect([login?.get('Username'), login?.get('Secret'), login?.get('Events')]).toEqual(['u', 'p', 'call']);
    await waitFor(() => server.actions.some((a) => a.action === 'Ping'));
    await expect(connection.send({ Action: 'Ping' })).resolves.toMatchObject({ response: 'Success', ping: 'Pong' });
  });

  it('rejects actions at once while logged out and never sends them later', async () => {
    server.refuseLogin = true;
    open();
    await waitFor(() => server.actions.filter((a) => a.action === 'Login').length >= 2); // refused, and retried with backoff
    expect(connection.ready).toBe(false);
    expect(connection.lastError).toContain('refused the AMI login');
    await expect(connection.send({ Action: 'Originate', Channel: 'PJSIP/101' })).rejects.toBeInstanceOf(AmiUnavailableError);
    server.refuseLogin = false;
    await waitFor(() => connection.ready);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.originates).toHaveLength(0);
  });

  it('reconnects after the PBX drops the connection, and fails the actions in flight', async () => {
    open();
    await waitFor(() => connection.ready);
    server.originateDelayMs = 1_000;
    const inFlight = connection.send({ Action: 'Originate', Channel: 'PJSIP/101', Exten: '1' });
    await waitFor(() => server.originates.length === 1);
    server.dropConnections();
    await expect(inFlight).rejects.toBeInstanceOf(AmiUnavailableError);
    await waitFor(() => connection.ready);
    expect(server.actions.filter((a) => a.action === 'Login')).toHaveLength(2);
  });

  it('gives up on an action the PBX does not answer and starts a new session', async () => {
    open({ actionTimeoutMs: 100 });
    await waitFor(() => connection.ready);
    server.originateDelayMs = 1_000;
    await expect(connection.send({ Action: 'Originate', Channel: 'PJSIP/101', Exten: '1' })).rejects.toThrow('did not answer in time');
    await waitFor(() => server.actions.filter((a) => a.action === 'Login').length === 2 && connection.ready);
  });

  it('keeps a value from forging extra header lines', async () => {
    open();
    await waitFor(() => connection.ready);
    await connection.send({ Action: 'Originate', Channel: 'PJSIP/101\r\nApplication: System', Exten: '1', Async: 'true' });
    expect(server.originates[0].all('Application')).toEqual([]);
    expect(server.originates[0].get('Channel')).toBe('PJSIP/101  Application: System');
  });
});
