import { Body, Controller, Get, HttpCode, Post } from '@nestjs/common';
import { IsIn, IsInt, IsString, Max, MaxLength, Min, ValidateNested, IsArray } from 'class-validator';
import { Type } from 'class-transformer';
import { Public } from '../../src/common/decorators';
import { createTestApp, type TestApp } from './support/app';

class ItemDto {
  @IsString() @MaxLength(10) sip_phone: string;
}

class ProbeDto {
  @IsString() @MaxLength(20) name: string;
  @IsInt() @Min(1) @Max(10) count: number;
  @IsIn(['a', 'b']) kind: string;
  @IsArray() @ValidateNested({ each: true }) @Type(() => ItemDto) items: ItemDto[];
}

@Public()
@Controller('probe')
class ProbeController {
  @Post()
  echo(@Body() body: ProbeDto): ProbeDto {
    return body;
  }

  @Post('accepted')
  @HttpCode(202)
  accept(): { accepted: number } {
    return { accepted: 1 };
  }

  @Get('boom')
  boom(): never {
    throw new Error('relation "secret_table" does not exist at /app/src/x.ts:10');
  }
}

const valid = { name: 'x', count: 2, kind: 'a', items: [{ sip_phone: '101' }] };

describe('response envelope', () => {
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await createTestApp({ controllers: [ProbeController] });
    token = (await t.login()).token;
  });
  afterAll(() => t.close());

  it('answers a POST with 200 (not 201) inside the success envelope', async () => {
    const res = await t.http().post('/probe').send(valid).expect(200);
    expect(res.body).toEqual({ status: 'success', code: 200, result: valid, message: 'Ok' });
  });

  it('keeps an explicit 202 and says Accepted', async () => {
    const res = await t.http().post('/probe/accepted').expect(202);
    expect(res.body).toEqual({ status: 'success', code: 202, result: { accepted: 1 }, message: 'Accepted' });
  });

  it('answers validation failures with 422 and errors keyed by field path', async () => {
    const res = await t
      .http()
      .post('/probe')
      .send({ name: 5, count: 99, kind: 'z', items: [{ sip_phone: 'x'.repeat(11) }], extra: true })
      .expect(422);
    expect(res.body).toMatchObject({ status: 'error', code: 422, result: null, message: 'The given data was invalid.' });
    expect(Object.keys(res.body.errors).sort()).toEqual(['count', 'extra', 'items.0.sip_phone', 'kind', 'name']);
    expect(res.body.errors.extra).toEqual(['this field is not allowed']);
  });

  it('answers malformed JSON with 400', async () => {
    const res = await t.http().post('/probe').set('Content-Type', 'application/json').send('{"name": ').expect(400);
    expect(res.body).toEqual({ status: 'error', code: 400, result: null, message: 'The request body is not valid JSON.' });
  });

  it('answers a body over 1 MiB with 413', async () => {
    const res = await t.http().post('/probe').set('Content-Type', 'application/json').send(JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10) })).expect(413);
    expect(res.body).toEqual({ status: 'error', code: 413, result: null, message: 'The request body is larger than 1 MiB.' });
  });

  it('answers an oversized form body with 413 as well', async () => {
    const res = await t.http().post('/probe').type('form').send(`name=${'x'.repeat(1024 * 1024 + 10)}`).expect(413);
    expect(res.body.code).toBe(413);
  });

  it.each([
    ['GET', '/nope'],
    ['POST', '/nope/deeper'],
    ['DELETE', '/probe'],
  ])('answers %s %s (no such route) with 404 in the envelope, even without a token', async (method, path) => {
    const res = await t.http()[method.toLowerCase() as 'get' | 'post' | 'delete'](path).expect(404);
    expect(res.body).toEqual({ status: 'error', code: 404, result: null, message: 'The requested resource was not found.' });
  });

  it('answers an unexpected failure with a generic 500 carrying the request id and no internals', async () => {
    const res = await t.http().get('/probe/boom').set('Authorization', `Bearer ${token}`).set('X-Request-Id', 'req-abc-123').expect(500);
    expect(res.body).toEqual({ status: 'error', code: 500, result: null, message: 'Internal server error. Request id: req-abc-123.' });
    expect(res.headers['x-request-id']).toBe('req-abc-123');
    expect(JSON.stringify(res.body)).not.toMatch(/secret_table|\.ts|at /);
  });

  it('mints a request id when the caller sends none or a hostile one', async () => {
    const res = await t.http().get('/probe/boom').set('X-Request-Id', 'bad id <script>').expect(500);
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.body.message).toContain(res.headers['x-request-id']);
  });
});
