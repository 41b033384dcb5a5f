import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { createValidationPipe } from './common/validation.pipe';
import { BODY_LIMIT, registerBodyParsers } from './common/body-parsers';
import { ErrorEnvelopeDto } from './common/envelope';

/**
 * The HTTP platform: Fastify, whose request handling costs a fraction of Express's (the ingest
 * benchmark's single events at 500 req/s spent most of the service's CPU in the framework).
 * Nest's own body parsers stay off (`bodyParser: false` where the application is created):
 * registerBodyParsers installs the only ones.
 */
export function createHttpAdapter(): FastifyAdapter {
  return new FastifyAdapter({
    bodyLimit: BODY_LIMIT,
    genReqId: requestId,
    // Node's own limit on receiving a whole request, which Fastify turns off by default.
    requestTimeout: 300_000,
    // A trailing slash names the same route.
    routerOptions: { ignoreTrailingSlash: true },
  });
}

/** Accept a caller's request id if it is sane, so logs correlate across services; otherwise mint one. */
function requestId(req: IncomingMessage): string {
  const incoming = req.headers['x-request-id'];
  return typeof incoming === 'string' && /^[A-Za-z0-9._-]{1,100}$/.test(incoming) ? incoming : randomUUID();
}

/** Everything main.ts and the tests must configure identically on the application. */
export function configureApp(app: NestFastifyApplication): void {
  app.useLogger(app.get(Logger));
  const fastify = app.getHttpAdapter().getInstance();
  fastify.addHook('onRequest', (request, reply, done) => {
    reply.header('X-Request-Id', request.id);
    done();
  });
  registerBodyParsers(fastify);
  app.useGlobalPipes(createValidationPipe());
  setupSwagger(app);
}

function setupSwagger(app: NestFastifyApplication): void {
  const document = SwaggerModule.createDocument(
    app,
    new DocumentBuilder()
      .setTitle('Utel ↔ Bitrix24 integration')
      .setDescription(
        'Connects a company\'s Utel PBX to its Bitrix24 portal. Every JSON answer is wrapped in the envelope ' +
          '`{"status":"success","code":200,"result":…,"message":"Ok"}`; errors are `{"status":"error","code":<http>,"result":null,"message":"…"}` ' +
          'and 422s add `errors` keyed by field. Authenticate with a personal access token (`<id>|<secret>`, from `npm run cli -- token:create`).',
      )
      .setVersion('1')
      .addBearerAuth({ type: 'http', scheme: 'bearer', description: 'Personal access token `<id>|<secret>`' })
      .addSecurityRequirements('bearer')
      .build(),
    { extraModels: [ErrorEnvelopeDto] },
  );
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs-json', raw: ['json'], swaggerOptions: { persistAuthorization: true } });
}
