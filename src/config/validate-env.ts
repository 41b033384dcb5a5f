// class-transformer's @Type reads design-time metadata; whoever loads configuration needs the polyfill.
import 'reflect-metadata';
import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync } from 'class-validator';

export type Env = Record<string, string | undefined>;

/** Thrown at boot when configuration is missing or malformed; the message names each variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Validates the variables a namespace declares; empty strings count as unset. */
export function validateEnv<T extends object>(cls: ClassConstructor<T>, env: Env): T {
  const cleaned: Env = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value.trim() !== '') cleaned[key] = value.trim();
  const instance = plainToInstance(cls, cleaned, { excludeExtraneousValues: false });
  const errors = validateSync(instance, { skipMissingProperties: false, forbidUnknownValues: false });
  if (errors.length) {
    const lines = errors.map((e) => `${e.property}: ${Object.values(e.constraints ?? {}).join('; ')}`);
    throw new ConfigError(`Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return instance;
}

/** Runs a parser and reports its failure against the variable that held the value. */
export function parseVariable<T>(name: string, value: string, parse: (v: string) => T): T {
  try {
    return parse(value);
  } catch (err) {
    throw new ConfigError(`Invalid configuration:\n  ${name}: ${(err as Error).message}`);
  }
}
