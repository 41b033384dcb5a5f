import type { DataSourceOptions } from 'typeorm';
import { Company } from '../auth/company.entity';
import { PersonalAccessToken } from '../auth/personal-access-token.entity';
import { User } from '../auth/user.entity';
import { BitrixIntegration } from '../bitrix/bitrix-integration.entity';
import { OAuthState } from '../bitrix/oauth/oauth-state.entity';
import { Binding } from '../bitrix/settings/binding.entity';
import { BitrixSettings } from '../bitrix/settings/bitrix-settings.entity';
import { KnownExtension } from '../bitrix/settings/known-extension.entity';
import { Originate } from '../bitrix/originate/originate.entity';
import { Call } from '../bitrix/calls/call.entity';
import { Accounts1764640000000 } from './migrations/1764640000000-accounts';
import { BitrixConnection1764650000000 } from './migrations/1764650000000-bitrix-connection';
import { Originates1764660000000 } from './migrations/1764660000000-originates';
import { CallSync1764700000000 } from './migrations/1764700000000-call-sync';
import { CompanyChanges1764710000000 } from './migrations/1764710000000-company-changes';
import { CallSyncScheduling1765100000000 } from './migrations/1765100000000-call-sync-scheduling';
import { AuthChanges1765200000000 } from './migrations/1765200000000-auth-changes';
import { CallSyncHold1765300000000 } from './migrations/1765300000000-call-sync-hold';
import { CoalescingClient } from './coalescing-client';

/** Every entity and migration, listed explicitly (TypeORM globs break under bundling and Jest). */
const ENTITIES = [Company, User, PersonalAccessToken, BitrixIntegration, OAuthState, BitrixSettings, Binding, KnownExtension, Originate, Call];
const MIGRATIONS = [
  Accounts1764640000000,
  BitrixConnection1764650000000,
  Originates1764660000000,
  CallSync1764700000000,
  CompanyChanges1764710000000,
  CallSyncScheduling1765100000000,
  AuthChanges1765200000000,
  CallSyncHold1765300000000,
];

/** The one set of TypeORM options, shared by the app, the CLI data source and the tests. */
export function dataSourceOptions(url: string): DataSourceOptions {
  return {
    type: 'postgres',
    url,
    entities: ENTITIES,
    migrations: MIGRATIONS,
    migrationsRun: true,
    migrationsTransactionMode: 'each',
    synchronize: false,
    // Hot statements are prepared once per connection (src/database/prepared.ts); each execution is
    // still planned for the table as it is now. A generic plan cached while a table was nearly empty
    // (a fresh install, a company's first minute) would keep scanning it whole once it has grown.
    // Pipeline mode: statements queued on a connection are sent at once, not one round trip each
    // (inTransaction relies on it); code that awaits each statement works as before. The
    // coalescing client sends the statements queued in one tick in one write.
    extra: { max: 20, application_name: 'utel-bitrix24', options: '-c plan_cache_mode=force_custom_plan', pipeline: true, Client: CoalescingClient },
  };
}
