import { Body, Controller, Post } from '@nestjs/common';
import { Public } from '../../src/common/decorators';
import { createTestApp, type TestApp } from './support/app';
import { Bitrix24Emulator, bitrixEnv, connectPortal } from './support/bitrix';

/** A public route taking any body, as Bitrix24's callbacks do: it echoes what the parsers made of it. */
@Public()
@Controller('shape-probe')
class ShapeProbeController {
  @Post()
  echo(@Body() body: unknown): unknown {
    return body;
  }
}

const auth = (token: string) => ({ Authorization: `Bearer ${token}` });
const nestedArrays = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);
const nestedObjects = (depth: number) => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);

/** Bodies that are small but deep or wide are refused before any pipe, validator or handler sees them. */
describe('request body shape limits', () => {
  let emu: Bitrix24Emulator;
  let t: TestApp;
  let admin: { token: string };

  beforeAll(async () => {
    emu = new Bitrix24Emulator();
    await emu.start();
    const portal = await emu.addPortal({ users: 2 });
    t = await createTestApp({ env: bitrixEnv(emu, [portal]), controllers: [ShapeProbeController] });
    admin = await t.login('admin');
    expect((await connectPortal(t, admin.token, portal)).res.status).toBe(200);
  });
  afterAll(async () => {
    await t.close();
    await emu.stop();
  });

  const tooDeep = { status: 'error', code: 400, result: null, message: 'The request body is nested deeper than 32 levels.' };

  it.each([
    ['POST', '/integration/bitrix/settings'],
    ['POST', '/integration/bitrix/oauth/credentials'],
    ['POST', '/integration/bitrix/oauth'],
    ['POST', '/shape-probe'],
  ])('answers 2,000-deep JSON arrays and objects on %s %s with 400 in the envelope', async (_, path) => {
    for (const body of [nestedArrays(2000), nestedObjects(2000), `{"bindings":${nestedArrays(2000)}}`]) {
      expect(body.length).toBeLessThan(1024 * 1024);
      const res = await t.http().post(path).set(auth(admin.token)).set('Content-Type', 'application/json').send(body);
      expect(res.body).toEqual(tooDeep);
    }
  });

  it('refuses a deep body even on a route that needs no token, and before authentication', async () => {
    const res = await t.http().post('/integration/bitrix/settings').set('Content-Type', 'application/json').send(nestedArrays(5000));
    expect([res.status, res.body.message]).toEqual([400, tooDeep.message]);
  });

  it('answers a deep PHP-style form with 400 in the envelope', async () => {
    const key = 'data' + '[a]'.repeat(200);
    const res = await t.http().post('/shape-probe').type('form').send(`${key}=1`);
    expect(res.body).toEqual({ status: 'error', code: 400, result: null, message: 'The request body is nested deeper than 32 levels.' });
  });

  it('answers a JSON body with more than 20,000 values with 413 in the envelope', async () => {
    const wide = JSON.stringify(Array.from({ length: 30_000 }, () => 0));
    const res = await t.http().post('/integration/bitrix/settings').set(auth(admin.token)).set('Content-Type', 'application/json').send(wide);
    expect(res.body).toEqual({ status: 'error', code: 413, result: null, message: 'The request body has more than 20000 values.' });
    const keys = JSON.stringify(Object.fromEntries(Array.from({ length: 25_000 }, (_, i) => [`k${i}`, i])));
    expect((await t.http().post('/shape-probe').set('Content-Type', 'application/json').send(keys)).status).toBe(413);
  });

  it('still parses the bracketed forms Bitrix24 posts, and JSON at realistic depth', async () => {
    const delivery = new URLSearchParams({
      event: 'ONEXTERNALCALLSTART',
      'data[USER_ID]': '1',
      'data[PHONE_NUMBER]': '+998901234567',
      'data[CALL_ID]': 'externalCall.abc',
      'data[CRM_ENTITY_TYPE]': 'CONTACT',
      'data[CRM_ENTITY_ID]': '7',
      'data[FIELDS][PHONE][0][VALUE]': '+998901234567',
      'auth[member_id]': 'm1',
      'auth[domain]': 'acme.bitrix24.uz',
      'auth[application_token]': 't',
      ts: '1764670000',
    });
    const res = await t.http().post('/shape-probe').type('form').send(delivery.toString()).expect(200);
    expect(res.body.result).toEqual({
      event: 'ONEXTERNALCALLSTART',
      data: { USER_ID: '1', PHONE_NUMBER: '+998901234567', CALL_ID: 'externalCall.abc', CRM_ENTITY_TYPE: 'CONTACT', CRM_ENTITY_ID: '7', FIELDS: { PHONE: [{ VALUE: '+998901234567' }] } },
      auth: { member_id: 'm1', domain: 'acme.bitrix24.uz', application_token: 't' },
      ts: '1764670000',
    });
    expect((await t.http().post('/shape-probe').set('Content-Type', 'application/json').send(nestedObjects(30)).expect(200)).body.code).toBe(200);
    const events = Array.from({ length: 500 }, (_, i) => ({ call_id: `c${i}`, event: 'ringing', sip_phones: ['101', '102'], phone_number: '+998901234567' }));
    await t.http().post('/shape-probe').send(events).expect(200);
  });

  it('reads JSON under any application/*+json type, and an empty JSON body as an empty object', async () => {
    expect((await t.http().post('/shape-probe').set('Content-Type', 'application/vnd.utel+json; charset=utf-8').send('{"a":1}').expect(200)).body.result).toEqual({ a: 1 });
    expect((await t.http().post('/shape-probe').set('Content-Type', 'application/json').send('').expect(200)).body.result).toEqual({});
  });

  it('answers a JSON body that is not an object or an array with 400', async () => {
    for (const body of ['5', '"text"', 'null']) {
      const res = await t.http().post('/shape-probe').set('Content-Type', 'application/json').send(body);
      expect(res.body).toEqual({ status: 'error', code: 400, result: null, message: 'The request body is not valid JSON.' });
    }
  });

  it('drops __proto__ and constructor.prototype keys from JSON bodies', async () => {
    const res = await t.http().post('/shape-probe').set('Content-Type', 'application/json').send('{"a":1,"__proto__":{"admin":true},"constructor":{"prototype":{"admin":true}}}').expect(200);
    expect(res.body.result).toEqual({ a: 1 });
    expect(({} as { admin?: boolean }).admin).toBeUndefined();
  });

  it('answers a form with more than 2,000 fields with 413, and a content type it does not read with 415', async () => {
    const many = Array.from({ length: 2001 }, (_, i) => `f${i}=1`).join('&');
    expect((await t.http().post('/shape-probe').type('form').send(many)).body).toEqual({ status: 'error', code: 413, result: null, message: 'The request has too many form fields.' });
    const res = await t.http().post('/shape-probe').set('Content-Type', 'text/plain').send('hello');
    expect(res.body).toEqual({ status: 'error', code: 415, result: null, message: 'The request content type is not supported.' });
  });
});
