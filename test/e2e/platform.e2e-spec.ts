import SwaggerParser from '@apidevtools/swagger-parser';
import { createTestApp, type TestApp } from './support/app';
import { listRoutes } from './support/routes';

/**
 * SPEC §3: the public routes are exactly these (the ones not built yet join as they are built).
 * `/docs` and `/docs-json` are served by Swagger outside the controllers and checked over HTTP below.
 */
const PUBLIC_ROUTES = ['GET /health', 'GET /metrics', 'POST /integration/bitrix/originate', 'POST /integration/bitrix/events', 'GET /pbx/smart-redirect/:key'];

describe('platform routes', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('exempts from bearer auth exactly the public routes of the contract', () => {
    const routes = listRoutes(t.app);
    expect(routes.length).toBeGreaterThan(PUBLIC_ROUTES.length);
    const publicRoutes = routes.filter((r) => r.isPublic).map((r) => `${r.method} ${r.path}`);
    expect(publicRoutes.sort()).toEqual([...PUBLIC_ROUTES].sort());
  });

  it('refuses every non-public route without a token', async () => {
    for (const route of listRoutes(t.app).filter((r) => !r.isPublic)) {
      const path = route.path.replace(/:(\w+)/g, '1');
      const res = await t.http()[route.method.toLowerCase() as 'get'](path);
      expect({ route: `${route.method} ${route.path}`, status: res.status }).toEqual({ route: `${route.method} ${route.path}`, status: 401 });
    }
  });

  it('reports health in the terminus format with the database up', async () => {
    const res = await t.http().get('/health').expect(200);
    expect(res.body).toMatchObject({ status: 'ok', info: { database: { status: 'up' } }, error: {}, details: { database: { status: 'up' } } });
  });

  it('routes a path with a trailing slash like the path without it, and names every answer with its request id', async () => {
    const res = await t.http().get('/health/').set('X-Request-Id', 'probe-1').expect(200);
    expect(res.body.status).toBe('ok');
    expect(res.headers['x-request-id']).toBe('probe-1');
  });

  it('serves no other documentation route (the public set is exact)', async () => {
    await t.http().get('/docs-yaml').expect(404);
  });

  it('serves Swagger UI at /docs without a token', async () => {
    const res = await t.http().get('/docs').redirects(1).expect(200);
    expect(res.text).toContain('swagger-ui');
  });

  it('serves a valid OpenAPI 3 document with bearer auth and the envelope schema', async () => {
    const res = await t.http().get('/docs-json').expect(200);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\./);
    expect(doc.info.title).toBeTruthy();
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.components.schemas.ErrorEnvelopeDto).toBeDefined();
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/health', '/metrics', '/me', '/pbx/responsible', '/pbx/smart-redirect/{key}']));
    // Schema-valid OpenAPI 3 with every $ref resolving (validate() throws otherwise).
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toBeDefined();
    // Success answers are documented inside the envelope.
    const info = doc.paths['/integration/bitrix/info'].get.responses['200'].content['application/json'].schema;
    expect(info.properties).toMatchObject({ status: { enum: ['success'] }, result: { $ref: '#/components/schemas/IntegrationInfoDto' } });
  });

  it('exposes Prometheus metrics publicly when no METRICS_TOKEN is set', async () => {
    const res = await t.http().get('/metrics').expect(200);
    expect(res.headers['content-type']).toContain('text/plain');
    expect(res.text).toContain('process_cpu_user_seconds_total');
  });
});

describe('metrics behind METRICS_TOKEN', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ env: { METRICS_TOKEN: 'scrape-secret' } });
  });
  afterAll(() => t.close());

  it('needs exactly that bearer token', async () => {
    await t.http().get('/metrics').expect(401);
    await t.http().get('/metrics').set('Authorization', 'Bearer wrong').expect(401);
    const { token } = await t.login();
    await t.http().get('/metrics').set('Authorization', `Bearer ${token}`).expect(401);
    const res = await t.http().get('/metrics').set('Authorization', 'Bearer scrape-secret').expect(200);
    expect(res.text).toContain('nodejs_');
  });
});
