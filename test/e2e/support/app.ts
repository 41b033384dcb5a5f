import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Module, type Type } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { AppModule } from '../../../src/app.module';
import { configureApp, createHttpAdapter } from '../../../src/app.setup';
import { AccountsService } from '../../../src/auth/accounts.service';
import type { Role } from '../../../src/common/decorators';
import { loadConfig } from '../../../src/config/config';
import type { Env } from '../../../src/config/validate-env';
import { createTestDatabase } from './database';

/** A fixed key so specs can decrypt what the app stored; production keys come from APP_KEY. */
export const TEST_APP_KEY = Buffer.alloc(32, 7).toString('base64');

export interface TestApp {
  app: NestFastifyApplication;
  /** Every log line the app wrote (only with `captureLogs`). */
  logs: string[];
  http: () => ReturnType<typeof request>;
  databaseUrl: string;
  /** Creates a company with a user of the given role and returns a working token. */
  login(role?: Role, companyId?: number): Promise<{ token: string; companyId: number; userId: number; tokenId: number }>;
  close(): Promise<void>;
}

/**
 * The real application (real pipes, guards, filter, migrations) on its own database copy.
 * `controllers` lets a spec mount extra routes to exercise shared mechanisms (guards, envelope).
 */
export async function createTestApp(options: { env?: Env; controllers?: Type[]; databaseUrl?: string; captureLogs?: boolean } = {}): Promise<TestApp> {
  // A second instance on the same database (as two service replicas would be) neither creates nor drops it.
  const database = options.databaseUrl ? { url: options.databaseUrl, drop: () => Promise.resolve() } : await createTestDatabase();
  const config = loadConfig({
    DATA_DIR: mkdtempSync(join(tmpdir(), 'utel-bitrix24-data-')),
    APP_KEY: TEST_APP_KEY,
    LOG_LEVEL: options.captureLogs ? 'debug' : 'silent',
    ...options.env,
  });
  const logs: string[] = [];
  @Module({ imports: [DiscoveryModule], controllers: options.controllers ?? [] })
  class ExtraRoutesModule {}

  const moduleRef = await Test.createTestingModule({
    imports: [AppModule.forRoot({ config, databaseUrl: database.url, logDestination: { write: (line: string) => logs.push(line) } }), ExtraRoutesModule],
  }).compile();
  const app = moduleRef.createNestApplication<NestFastifyApplication>(createHttpAdapter(), { bodyParser: false });
  configureApp(app);
  // Listening for real: supertest then reuses this socket server instead of calling listen() once
  // per request (concurrent requests against an unbound server would race for it).
  await app.listen(0, '127.0.0.1');

  const accounts = app.get(AccountsService);
  return {
    app,
    logs,
    databaseUrl: database.url,
    http: () => request(app.getHttpServer()),
    async login(role: Role = 'admin', companyId?: number) {
      const company = companyId ?? (await accounts.createCompany(`Company ${Math.random().toString(36).slice(2, 8)}`)).id;
      const user = await accounts.createUser({ companyId: company, name: `${role} user`, role });
      const { token, plaintext } = await accounts.createToken({ userId: user.id });
      return { token: plaintext, companyId: company, userId: user.id, tokenId: token.id };
    },
    async close() {
      await app.close();
      await database.drop();
    },
  };
}
