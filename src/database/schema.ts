import type { DataSourceOptions } from 'typeorm';
import { Company } from '../auth/company.entity';
import { PersonalAccessToken } from '../auth/personal-access-token.entity';
import { User } from '../auth/user.entity';
import { Accounts1764640000000 } from './migrations/1764640000000-accounts';

/** Every entity and migration, listed explicitly (TypeORM globs break under bundling and Jest). */
export const ENTITIES = [Company, User, PersonalAccessToken];
export const MIGRATIONS = [Accounts1764640000000];

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
    extra: { max: 10, application_name: 'utel-bitrix24' },
  };
}
