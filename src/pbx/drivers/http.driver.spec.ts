import { createHmac, hkdfSync } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { HttpService } from '@nestjs/axios';
import { Logger } from '@nestjs/common';
import { AppError } from '../../common/app-error';
import { HttpDriver, SIGNATURE_HEADER } from './http.driver';

/** The http driver against a real local server: the body, its signature, and the status mapping. */
describe('HttpDriver', () => {
  const appKey = Buffer.alloc(32, 3);
  let server: Server;
  let url: string;
  let status = 200;
  let received: { body: string; headers: IncomingMessage['headers'] }[] = [];
  const request = { originateId: 1, companyId: 7, sipPhone: '101', phoneNumber: '+998901234567', bitrixCallId: 'externalCall.x.1' };
  const driver = () => new HttpDriver(new HttpService(), url, appKey);

  beforeAll(async () => {
    Logger.overrideLogger(false);
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ body, headers: req.headers });
        res.statusCode = status;
        res.end('{}');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    url = `http://127.0.0.1:${(server.address() as { port: number }).port}/originate`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    received = [];
    status = 200;
  });

  it('posts the documented body signed with HMAC-SHA256 under an HKDF key derived from APP_KEY', async () => {
    await driver().originate(request);
    expect(received).toHaveLength(1);
    const { body, headers } = received[0];
    expect(JSON.parse(body)).toEqual({ sip_phone: '101', phone_number: '+998901234567', bitrix_call_id: 'externalCall.x.1', company_id: 7 });
    const key = Buffer.from(hkdfSync('sha256', appKey, Buffer.alloc(0), 'utel-bitrix24/pbx-originate-signature/v1', 32));
    expect(headers[SIGNATURE_HEADER]).toBe(`sha256=${createHmac('sha256', key).update(body).digest('hex')}`);
    expect(headers[SIGNATURE_HEADER]).not.toBe(`sha256=${createHmac('sha256', appKey).update(body).digest('hex')}`);
  });

  it('maps a 5xx to 503 and another refusal to 502', async () => {
    status = 500;
    await expect(driver().originate(request)).rejects.toMatchObject({ code: 'PBX_UNAVAILABLE' });
    status = 403;
    await expect(driver().originate(request)).rejects.toMatchObject({ code: 'PBX_REJECTED' });
  });

  it('answers 503 when nothing listens or no URL is configured', async () => {
    const down = new HttpDriver(new HttpService(), 'http://127.0.0.1:1/originate', appKey);
    await expect(down.originate(request)).rejects.toBeInstanceOf(AppError);
    await expect(down.originate(request)).rejects.toMatchObject({ code: 'PBX_UNAVAILABLE' });
    const unset = new HttpDriver(new HttpService(), null, appKey);
    expect(unset.unavailable?.message).toBe('The PBX is not configured on this server (PBX_ORIGINATE_URL).');
    await expect(unset.originate(request)).rejects.toMatchObject({ code: 'PBX_UNAVAILABLE' });
  });
});
