import { appConfig, type AppConfig } from './app.config';
import { bitrixConfig, type BitrixConfig } from './bitrix.config';
import { databaseConfig, type DatabaseConfig } from './database.config';
import { pbxConfig, type PbxConfig } from './pbx.config';
import { ConfigError, type Env } from './validate-env';

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
  const problems: string[] = [];
  const attempt = <T>(load: (env: Env) => T): T | undefined => {
    try {
      return load(env);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.message.split('\n').slice(1));
      return undefined;
    }
  };
  const config = { app: attempt(appConfig), database: attempt(databaseConfig), bitrix: attempt(bitrixConfig), pbx: attempt(pbxConfig) };
  if (problems.length) throw new ConfigError(`Invalid configuration:\n${problems.join('\n')}`);
  return config as Config;
}
