import 'reflect-metadata';
import { CommandFactory } from 'nest-commander';
import { CliModule } from './cli.module';
import { AppError } from './common/app-error';
import { bootLog } from './common/boot-log';
import { loadConfig } from './config/config';
import { ConfigError } from './config/validate-env';
import { openDatabase } from './database/database';

/** Errors for people: the message (and field errors), never a stack; exit code 1. */
function fail(err: unknown): void {
  const details = err instanceof AppError && err.errors ? ' ' + Object.values(err.errors).flat().join(' ') : '';
  const message = err instanceof AppError || err instanceof ConfigError ? err.message + details : `Unexpected error: ${String(err)}`;
  process.stderr.write(`Error: ${message}\n`);
  process.exitCode = 1;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const quietLog = (level: 'debug' | 'info' | 'warn' | 'error', message: string): void => {
    if (level === 'warn' || level === 'error') bootLog(level, message);
  };
  const database = await openDatabase(config, quietLog);
  try {
    await CommandFactory.run(CliModule.forRoot({ config, databaseUrl: database.url }), {
      logger: false,
      cliName: 'npm run cli --',
      serviceErrorHandler: fail,
      errorHandler: (err) => {
        // commander has printed its own usage message; `--help` is not a failure.
        const code = (err as { exitCode?: number }).exitCode ?? 2;
        process.exitCode = code === 0 ? 0 : 2;
      },
    });
  } finally {
    await database.close();
  }
}

main().catch((err: unknown) => {
  fail(err);
});
