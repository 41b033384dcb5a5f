import { Command, CommandRunner, Option } from 'nest-commander';
import { AppError } from '../../common/app-error';
import { AccountsService } from '../accounts.service';

/** The answer of every command is its last line of stdout, so scripts can take it with `tail -n 1`. */
function answer(value: string | number): void {
  process.stdout.write(`${value}\n`);
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw AppError.validation(name, `--${name} must be a positive integer id.`);
  return n;
}

@Command({ name: 'company:create', arguments: '<name...>', description: 'Create a company; prints its id' })
export class CompanyCreateCommand extends CommandRunner {
  constructor(private readonly accounts: AccountsService) {
    super();
  }

  async run(params: string[]): Promise<void> {
    answer((await this.accounts.createCompany(params.join(' '))).id);
  }
}

interface UserCreateOptions {
  company: number;
  name: string;
  email?: string;
  role?: 'admin' | 'user';
}

@Command({ name: 'user:create', description: 'Create a user in a company; prints its id' })
export class UserCreateCommand extends CommandRunner {
  constructor(private readonly accounts: AccountsService) {
    super();
  }

  async run(_: string[], options: UserCreateOptions): Promise<void> {
    answer((await this.accounts.createUser({ companyId: options.company, name: options.name, email: options.email, role: options.role })).id);
  }

  @Option({ flags: '--company <id>', description: 'company id', required: true })
  parseCompany(value: string): number {
    return positiveInt('company', value);
  }

  @Option({ flags: '--name <name>', description: 'display name', required: true })
  parseName(value: string): string {
    return value;
  }

  @Option({ flags: '--email <email>', description: 'e-mail address' })
  parseEmail(value: string): string {
    if (!/^[^\s@]+@[^\s@]+$/.test(value)) throw AppError.validation('email', '--email must be an e-mail address.');
    return value;
  }

  @Option({ flags: '--role <role>', description: 'admin or user (default: user)' })
  parseRole(value: string): string {
    if (value !== 'admin' && value !== 'user') throw AppError.validation('role', '--role must be admin or user.');
    return value;
  }
}

interface TokenCreateOptions {
  user: number;
  name?: string;
  expiresAt?: Date;
}

@Command({ name: 'token:create', description: 'Issue a personal access token; prints the plaintext token as the last line' })
export class TokenCreateCommand extends CommandRunner {
  constructor(private readonly accounts: AccountsService) {
    super();
  }

  async run(_: string[], options: TokenCreateOptions): Promise<void> {
    const { token, plaintext } = await this.accounts.createToken({ userId: options.user, name: options.name, expiresAt: options.expiresAt });
    process.stderr.write(`Token ${token.id} created; it is shown once and cannot be recovered.\n`);
    answer(plaintext);
  }

  @Option({ flags: '--user <id>', description: 'user id', required: true })
  parseUser(value: string): number {
    return positiveInt('user', value);
  }

  @Option({ flags: '--name <label>', description: 'a label for the token' })
  parseName(value: string): string {
    return value;
  }

  @Option({ flags: '--expires-at <iso-date>', description: 'expiry, e.g. 2027-01-31T00:00:00Z (default: never)' })
  parseExpiresAt(value: string): Date {
    const date = new Date(value);
    if (Number.isNaN(date.getTime())) throw AppError.validation('expires-at', '--expires-at must be an ISO-8601 date.');
    return date;
  }
}

@Command({ name: 'token:revoke', arguments: '<id>', description: 'Revoke a personal access token by id; prints the id' })
export class TokenRevokeCommand extends CommandRunner {
  constructor(private readonly accounts: AccountsService) {
    super();
  }

  async run([id]: string[]): Promise<void> {
    const tokenId = positiveInt('id', id);
    await this.accounts.revokeToken(tokenId);
    answer(tokenId);
  }
}
