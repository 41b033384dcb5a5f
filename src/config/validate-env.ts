// class-transformer's @Type reads design-time metadata; whoever loads configuration needs the polyfill.
import 'reflect-metadata';
import { plainToInstance, type ClassConstructor } from 'class-transformer';
import { validateSync } from 'class-validator';

export type Env = Record<string, string | undefined>;

/** Thrown at boot when configuration is missing or malformed; the message names each variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Every configuration problem of one start, so the error names each bad variable, not the first. */
export class ConfigProblems {
  private readonly lines: string[] = [];
  private readonly names = new Set<string>();

  add(name: string, message: string): void {
    this.names.add(name);
    this.lines.push(`  ${name}: ${message}`);
  }

  /** Runs a parser on a value that passed its format check; a failure is recorded against the variable. */
  parse<T>(name: string, value: string, parse: (v: string) => T): T | undefined {
    if (this.names.has(name)) return undefined;
    try {
      return parse(value);
    } catch (err) {
      this.add(name, (err as Error).message);
      return undefined;
    }
  }

  throwIfAny(): void {
    if (this.lines.length) throw new ConfigError(`Invalid configuration:\n${this.lines.join('\n')}`);
  }
}

/**
 * Validates the variables a namespace declares (empty strings count as unset) and records each
 * malformed one. The instance is returned either way; it is only used once no problem was recorded.
 */
export function validateEnv<T extends object>(cls: ClassConstructor<T>, env: Env, problems: ConfigProblems): T {
  const cleaned: Env = {};
  for (const [key, value] of Object.entries(env)) if (value !== undefined && value.trim() !== '') cleaned[key] = value.trim();
  const instance = plainToInstance(cls, cleaned, { excludeExtraneousValues: false });
  for (const e of validateSync(instance, { skipMissingProperties: false, forbidUnknownValues: false })) {
    problems.add(e.property, Object.values(e.constraints ?? {}).join('; '));
  }
  return instance;
}
