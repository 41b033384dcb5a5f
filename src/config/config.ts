import { appConfig, type AppConfig } from './app.config';
import { bitrixConfig, type BitrixConfig } from './bitrix.config';
import { databaseConfig, type DatabaseConfig } from './database.config';
import { pbxConfig, type PbxConfig } from './pbx.config';
import { ConfigProblems, type Env } from './validate-env';

export interface Config {
  app: AppConfig;
  database: DatabaseConfig;
  bitrix: BitrixConfig;
  pbx: PbxConfig;
}

/** The one place that reads the process environment. */
function processEnv(): Env {
  return process.env;
}

/** Validates every namespace and reports all problems at once. */
export function loadConfig(env: Env = processEnv()): Config {
  const problems = new ConfigProblems();
  const config = { app: appConfig(env, problems), database: databaseConfig(env, problems), bitrix: bitrixConfig(env, problems), pbx: pbxConfig(env, problems) };
  problems.throwIfAny();
  return config;
}
