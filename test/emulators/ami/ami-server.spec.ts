import { connect, type Socket } from 'node:net';
import { FakeAmiServer } from './ami-server';

/**
 * The fake AMI speaks the wire protocol of docs.asterisk.org ("AMI: Asterisk Manager Interface"):
 * checked here with a raw TCP client, byte for byte, independent of the service's own client.
 */
describe('FakeAmiServer', () => {
  let server: FakeAmiServer;
  let socket: Socket;
  let received: string;

  const open = async () => {
    socket = connect(server.port, '127.0.0.1');
    received = '';
    socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
    await waitFor(() => received.includes('\r\n'));
  };
  const send = (lines: string[]) => socket.write(lines.map((l) => `${l}\r\n`).join('') + '\r\n');
  const waitFor = async (check: () => boolean) => {
    const until = Date.now() + 2_000;
    while (!check()) {
      if (Date.now() > until) throw new Error(`timed out; received so far:\n${received}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  /** The messages received so far (blank-line separated), without the banner. */
  const messages = () => received.split('\r\n').slice(1).join('\r\n').split('\r\n\r\n').filter(Boolean);

  beforeEach(async () => {
    server = new FakeAmiServer({ username: 'u', secret: 'p', version: '9.0.0' });
    await server.start();
    await open();
  });
  afterEach(async () => {
    socket.destroy();
    await server.stop();
  });

  it('greets with the banner and accepts a login, echoing the ActionID', async () => {
    expect(received).toBe('Asterisk Call Manager/9.0.0\r\n');
    send(['Action: Login', 'Username: u', 'Secret: p', 'ActionID: 7']);
    await waitFor(() => messages().length === 1);
    expect(messages()[0]).toBe('Response: Success\r\nMessage: Authentication accepted\r\nActionID: 7');
  });

  it('refuses a wrong secret (and with refuseLogin), then closes the session', async () => {
    send(['Action: Login', 'Username: u', 'Secret: nope', 'ActionID: 1']);
    await waitFor(() => socket.readyState !== 'open' || socket.destroyed || received.includes('Authentication failed'));
    expect(messages()[0]).toBe('Response: Error\r\nMessage: Authentication failed\r\nActionID: 1');
    await waitFor(() => server.connections === 0);
    server.refuseLogin = true;
    await open();
    send(['Action: Login', 'Username: u', 'Secret: p', 'ActionID: 2']);
    await waitFor(() => messages().length === 1);
    expect(messages()[0]).toContain('Response: Error');
  });

  it('denies actions before login', async () => {
    send(['Action: Ping', 'ActionID: 3']);
    await waitFor(() => messages().length === 1);
    expect(messages()[0]).toBe('Response: Error\r\nMessage: Permission denied\r\nActionID: 3');
    expect(server.actions).toHaveLength(0);
  });

  it('answers Ping with Pong, an async Originate with Success then an OriginateResponse event, and records the actions', async () => {
    send(['Action: Login', 'Username: u', 'Secret: p']);
    send(['Action: Ping', 'ActionID: p1']);
    send(['Action: Originate', 'ActionID: o1', 'Channel: PJSIP/101', 'Context: out', 'Exten: +998901234567', 'Priority: 1', 'Async: true', 'Variable: A=1', 'Variable: B=2']);
    await waitFor(() => messages().length === 4);
    const [, pong, queued, event] = messages();
    expect(pong).toMatch(/^Response: Success\r\nPing: Pong\r\nTimestamp: [\d.]+\r\nActionID: p1$/);
    expect(queued).toBe('Response: Success\r\nMessage: Originate successfully queued\r\nActionID: o1');
    expect(event).toMatch(/^Event: OriginateResponse\r\n/);
    expect(event).toContain('Response: Success');
    expect(event).toContain('Channel: PJSIP/101');
    expect(event).toContain('Reason: 4');
    expect(event).toMatch(/ActionID: o1$/);
    expect(server.originates).toHaveLength(1);
    expect(server.originates[0].all('Variable')).toEqual(['A=1', 'B=2']);
  });

  it('fails originates on request and drops connections', async () => {
    server.failOriginate = 5;
    send(['Action: Login', 'Username: u', 'Secret: p']);
    send(['Action: Originate', 'ActionID: o2', 'Channel: PJSIP/101', 'Exten: 1', 'Async: yes']);
    await waitFor(() => messages().length === 3);
    expect(messages()[2]).toContain('Response: Failure');
    expect(messages()[2]).toContain('Reason: 5');
    server.dropConnections();
    await waitFor(() => socket.destroyed || socket.readyState === 'closed');
    expect(server.connections).toBe(0);
  });

  it('answers unknown actions with an error', async () => {
    send(['Action: Login', 'Username: u', 'Secret: p']);
    send(['Action: CoreShowChannels', 'ActionID: x']);
    await waitFor(() => messages().length === 2);
    expect(messages()[1]).toBe('Response: Error\r\nMessage: Invalid/unknown command\r\nActionID: x');
  });
});
