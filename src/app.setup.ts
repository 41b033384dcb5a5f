import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Logger } from 'nestjs-pino';
import { createValidationPipe } from './common/validation.pipe';
import { limitBodyShape } from './common/body-shape';
import { ErrorEnvelopeDto } from './common/envelope';

/** Body size cap of SPEC §4: a larger body is answered 413 in the envelope. */
const BODY_LIMIT = '1mb';

/** Everything main.ts and the tests must configure identically on the application. */
export function configureApp(app: NestExpressApplication): void {
  app.useLogger(app.get(Logger));
  app.disable('x-powered-by');
  app.useBodyParser('json', { limit: BODY_LIMIT, type: ['application/json', 'application/*+json'] });
  // Bitrix24 posts PHP-style bracketed forms (`data[CALL_ID]=…`): `extended` parses them into objects
  // (body-parser refuses forms nested past 32 levels itself, the same cap limitBodyShape applies).
  app.useBodyParser('urlencoded', { limit: BODY_LIMIT, extended: true, parameterLimit: 2000 });
  app.use(limitBodyShape);
  app.useGlobalPipes(createValidationPipe());
  setupSwagger(app);
}

function setupSwagger(app: NestExpressApplication): void {
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
