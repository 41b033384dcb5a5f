import { randomInt, timingSafeEqual } from 'node:crypto';
import { Injectable } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Repository } from 'typeorm';
import { AppError } from '../common/app-error';
import { sha256Hex } from '../common/secret-box';
import { pgPool, prepared, run } from '../database/prepared';
import type { Role } from '../common/decorators';
import { Company } from './company.entity';
import { PersonalAccessToken } from './personal-access-token.entity';
import type { Principal } from './principal';
import { User } from './user.entity';

const USER_TOKENABLE = 'user';
/**
 * The `tokenable_type` values that mean "a user": ours, and the model class Laravel writes when
 * Sanctum issues the token (`App\Models\User`), so tokens of either side authenticate here.
 */
const USER_TOKENABLES = [USER_TOKENABLE, 'App\\Models\\User'];
const TOKEN_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Writing last_used_at on every request would turn each read into a write; a minute is precise enough. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** Sanctum tables can hold tokens of other model types; only user tokens authenticate here. */
const tokenQuery = (name: string, key: string) =>
  prepared(
    name,
    `SELECT t.id, t.token, t.expires_at, t.last_used_at, u.id AS user_id, u.company_id, u.role
       FROM personal_access_tokens t JOIN users u ON u.id = t.tokenable_id
      WHERE ${key} = $1 AND t.tokenable_type = ANY($2::text[])`,
  );
const TOKEN_BY_ID = tokenQuery('auth_token_by_id', 't.id');
const TOKEN_BY_HASH = tokenQuery('auth_token_by_hash', 't.token');

interface TokenRow {
  id: number;
  token: string;
  expires_at: Date | null;
  last_used_at: Date | null;
  user_id: number;
  company_id: number;
  role: Role;
}

export interface Profile {
  id: number;
  name: string;
  email: string | null;
  role: Role;
  company: { id: number; name: string };
}


/** Companies, their users and their personal access tokens. */
@Injectable()
export class AccountsService {
  constructor(
    @InjectRepository(Company) private readonly companies: Repository<Company>,
    @InjectRepository(User) private readonly users: Repository<User>,
    @InjectRepository(PersonalAccessToken) private readonly tokens: Repository<PersonalAccessToken>,
  ) {}

  async createCompany(name: string): Promise<Company> {
    if (!name.trim()) throw AppError.validation('name', 'The company name must not be empty.');
    return this.companies.save(this.companies.create({ name: name.trim() }));
  }

  async createUser(input: { companyId: number; name: string; email?: string | null; role?: Role }): Promise<User> {
    if (!(await this.companies.existsBy({ id: input.companyId }))) throw new AppError('NOT_FOUND', `Company ${input.companyId} does not exist.`);
    if (!input.name.trim()) throw AppError.validation('name', 'The user name must not be empty.');
    if (input.role !== undefined && input.role !== 'admin' && input.role !== 'user') throw AppError.validation('role', 'The role must be admin or user.');
    return this.users.save(
      this.users.create({ companyId: input.companyId, name: input.name.trim(), email: input.email?.trim() || null, role: input.role ?? 'user' }),
    );
  }

  /** Issues a token and returns its plaintext, which is never stored and cannot be shown again. */
  async createToken(input: { userId: number; name?: string; expiresAt?: Date | null }): Promise<{ token: PersonalAccessToken; plaintext: string }> {
    if (!(await this.users.existsBy({ id: input.userId }))) throw new AppError('NOT_FOUND', `User ${input.userId} does not exist.`);
    const secret = Array.from({ length: 40 }, () => TOKEN_ALPHABET[randomInt(TOKEN_ALPHABET.length)]).join('');
    const token = await this.tokens.save(
      this.tokens.create({ tokenableType: USER_TOKENABLE, tokenableId: input.userId, name: input.name ?? 'api', token: sha256Hex(secret), expiresAt: input.expiresAt ?? null }),
    );
    return { token, plaintext: `${token.id}|${secret}` };
  }

  async revokeToken(id: number): Promise<void> {
    const { affected } = await this.tokens.delete({ id });
    if (!affected) throw new AppError('NOT_FOUND', `Token ${id} does not exist.`);
  }

  async profile(principal: Principal): Promise<Profile> {
    const user = await this.users.findOneOrFail({ where: { id: principal.userId, companyId: principal.companyId }, relations: { company: true } });
    return { id: user.id, name: user.name, email: user.email, role: user.role, company: { id: user.companyId, name: user.company?.name ?? '' } };
  }

  /** Resolves `<id>|<secret>` (or a bare secret, as Sanctum allows) to its principal and the token's expiry, or null. */
  async authenticate(plaintext: string): Promise<{ principal: Principal; expiresAt: Date | null } | null> {
    const separator = plaintext.indexOf('|');
    const id = separator === -1 ? null : Number(plaintext.slice(0, separator));
    const secret = separator === -1 ? plaintext : plaintext.slice(separator + 1);
    if (!secret || (id !== null && !(Number.isSafeInteger(id) && id > 0 && id <= 2 ** 31 - 1))) return null;

    const hash = sha256Hex(secret);
    // Every authenticated request runs this: one prepared statement, not the ORM's entity machinery.
    const [token] = await run<TokenRow>(pgPool(this.tokens.manager.dataSource), id === null ? TOKEN_BY_HASH : TOKEN_BY_ID, [id ?? hash, USER_TOKENABLES]);
    if (!token || !timingSafeEqual(Buffer.from(token.token), Buffer.from(hash))) return null;
    if (token.expires_at && token.expires_at.getTime() <= Date.now()) return null;

    if (!token.last_used_at || Date.now() - token.last_used_at.getTime() > LAST_USED_RESOLUTION_MS) {
      await this.tokens.update({ id: token.id }, { lastUsedAt: new Date() });
    }
    return { principal: { userId: token.user_id, companyId: token.company_id, role: token.role, tokenId: token.id }, expiresAt: token.expires_at };
  }
}
