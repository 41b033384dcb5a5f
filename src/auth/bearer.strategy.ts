import { Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { Strategy } from 'passport-http-bearer';
import type { Principal } from './principal';
import { TokenCache } from './token-cache';

@Injectable()
export class BearerStrategy extends PassportStrategy(Strategy, 'bearer') {
  constructor(private readonly tokens: TokenCache) {
    super();
  }

  /** Returning false makes passport fail the request; the guard turns that into a 401. */
  async validate(token: unknown): Promise<Principal | false> {
    if (typeof token !== 'string' || token.length > 512) return false;
    return (await this.tokens.principal(token)) ?? false;
  }
}
