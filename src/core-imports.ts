import type { DynamicModule } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { Config } from './config/config';
import { MigratingDataSource } from './database/migrating-data-source';
import { dataSourceOptions } from './database/schema';

/** Validated configuration and the database: what the HTTP application and the account CLI share. */
export function coreImports(config: Config, databaseUrl: string): (DynamicModule | Promise<DynamicModule>)[] {
  return [
    ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, skipProcessEnv: true, load: [() => ({ ...config })] }),
    TypeOrmModule.forRootAsync({
      useFactory: () => dataSourceOptions(databaseUrl),
      dataSourceFactory: (options) => Promise.resolve(new MigratingDataSource(options!)),
    }),
  ];
}
