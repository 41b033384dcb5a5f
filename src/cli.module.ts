import { Module, type DynamicModule } from '@nestjs/common';
import { AccountsModule } from './auth/accounts.module';
import { CompanyCreateCommand, TokenCreateCommand, TokenRevokeCommand, UserCreateCommand } from './auth/cli/account.commands';
import type { AppModuleOptions } from './app.module';
import { coreImports } from './core-imports';

/** The account CLI: the same configuration and database as the service, no HTTP. */
@Module({})
export class CliModule {
  static forRoot({ config, databaseUrl }: AppModuleOptions): DynamicModule {
    return {
      module: CliModule,
      imports: [
        ...coreImports(config, databaseUrl),
        AccountsModule,
      ],
      providers: [CompanyCreateCommand, UserCreateCommand, TokenCreateCommand, TokenRevokeCommand],
    };
  }
}
