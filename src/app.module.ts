import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_INTERCEPTOR } from '@nestjs/core';
import { LoggerModule } from 'nestjs-pino';
import type { DestinationStream } from 'pino';
import { AuthModule } from './auth/auth.module';
import { BitrixModule } from './bitrix/bitrix.module';
import { CommonModule } from './common/common.module';
import { EnvelopeInterceptor } from './common/envelope.interceptor';
import { AllExceptionsFilter } from './common/exception.filter';
import { loggerOptions } from './common/logger.options';
import type { Config } from './config/config';
import { coreImports } from './core-imports';
import { ChangeListenerModule } from './database/change-listener.module';
import { HealthModule } from './health/health.module';
import { MetricsModule } from './metrics/metrics.module';
import { PbxEventsModule } from './pbx/events/pbx-events.module';
import { SmartRedirectModule } from './pbx/smart-redirect/smart-redirect.module';

export interface AppModuleOptions {
  /** Validated configuration (loaded once by the caller: main.ts or a test). */
  config: Config;
  /** The database to use: DATABASE_URL or the embedded PostgreSQL the caller started. */
  databaseUrl: string;
  /** Where logs go (default stdout); tests pass a stream to inspect them. */
  logDestination?: DestinationStream;
}

@Module({})
export class AppModule {
  static forRoot({ config, databaseUrl, logDestination }: AppModuleOptions): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ...coreImports(config, databaseUrl),
        LoggerModule.forRoot(loggerOptions(config.app.logLevel, logDestination)),
        CommonModule,
        ChangeListenerModule,
        AuthModule,
        BitrixModule,
        PbxEventsModule,
        SmartRedirectModule,
        HealthModule,
        MetricsModule,
      ],
      providers: [
        { provide: APP_INTERCEPTOR, useClass: EnvelopeInterceptor },
        { provide: APP_FILTER, useClass: AllExceptionsFilter },
      ],
    };
  }
}
