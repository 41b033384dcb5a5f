import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { AppModule } from './app.module';
import { configureApp, createHttpAdapter } from './app.setup';
import { loadConfig } from './config/config';
import { ConfigError } from './config/validate-env';
import { openDatabase } from './database/database';
import { bootLog } from './common/boot-log';

async function bootstrap(): Promise<void> {
  const config = loadConfig();
  const database = await openDatabase(config, bootLog);
  let app: NestFastifyApplication;
  try {
    app = await NestFactory.create<NestFastifyApplication>(AppModule.forRoot({ config, databaseUrl: database.url }), createHttpAdapter(), { bufferLogs: true, bodyParser: false });
    configureApp(app);
    // Every interface, as a container's port mapping needs (Fastify alone would listen on localhost only).
    await app.listen(config.app.port, '0.0.0.0');
  } catch (err) {
    await database.close();
    throw err;
  }
  bootLog('info', `Listening on http://localhost:${config.app.port} (Swagger UI at /docs)`);

  // We own the shutdown order: stop taking requests and close the pool, then stop PostgreSQL, then exit.
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    bootLog('info', `${signal} received, shutting down`);
    app
      .close()
      .then(() => database.close())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          bootLog('error', `Shutdown failed: ${String(err)}`);
          process.exit(1);
        },
      );
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, shutdown);
}

bootstrap().catch((err: unknown) => {
  bootLog('fatal', err instanceof ConfigError ? err.message : `Start-up failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
