import { Module, type DynamicModule } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AccountsModule } from './auth/accounts.module';
import { CompanyCreateCommand, TokenCreateCommand, TokenRevokeCommand, UserCreateCommand } from './auth/cli/account.commands';
import type { AppModuleOptions } from './app.module';
import { dataSourceOptions } from './database/schema';

/** The account CLI: the same configuration and database as the service, no HTTP. */
@Module({})
export class CliModule {
  static forRoot({ config, databaseUrl }: AppModuleOptions): DynamicModule {
    return {
      module: CliModule,
      imports: [
        ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true, skipProcessEnv: true, load: [() => ({ ...config })] }),
        TypeOrmModule.forRoot(dataSourceOptions(databaseUrl)),
        AccountsModule,
      ],
      providers: [CompanyCreateCommand, UserCreateCommand, TokenCreateCommand, TokenRevokeCommand],
    };
  }
}
