import { ExecutionContext, Injectable, type CanActivate } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { Passport } from 'passport';
import { AppError } from '../common/app-error';
import { IS_PUBLIC, ROLES, type Role } from '../common/decorators';
import { BearerStrategy } from './bearer.strategy';
import type { Principal } from './principal';

/**
 * Deny by default: every route needs a bearer token unless it is marked @Public(). The guard keeps
 * its own Passport with this application's strategy instead of passport's process-wide registry, so
 * two application instances in one process (tests, workers) never share a strategy. Passport clones
 * a named strategy per request, which keeps concurrent requests apart.
 */
@Injectable()
export class BearerAuthGuard implements CanActivate {
  private readonly passport = new Passport();

  constructor(
    private readonly reflector: Reflector,
    strategy: BearerStrategy,
  ) {
    this.passport.use('bearer', strategy);
  }

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()])) return true;
    const http = context.switchToHttp();
    const request = http.getRequest<FastifyRequest & { user?: Principal }>();
    // Only the Authorization header carries a token: passport-http-bearer would also take one from
    // the query string or the body, which leaks tokens into URLs and logs.
    const credentials = { headers: { authorization: request.headers.authorization } };
    const principal = await new Promise<Principal | false>((resolve, reject) => {
      const fail = (err: unknown) => reject(err instanceof Error ? err : new Error('Authentication failed'));
      const authenticate = this.passport.authenticate('bearer', { session: false }, (err: unknown, user: Principal | false) =>
        err ? fail(err) : resolve(user),
      ) as (req: unknown, res: unknown, next: (err?: unknown) => void) => void;
      // With a callback, passport answers through it and never writes to the response.
      authenticate(credentials, http.getResponse(), fail);
    });
    if (!principal) throw new AppError('UNAUTHENTICATED', 'Unauthenticated.');
    request.user = principal;
    return true;
  }
}

/** Runs after authentication: routes marked @Roles('admin') refuse other roles with 403. */
@Injectable()
export class RolesGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}

  canActivate(context: ExecutionContext): boolean {
    const roles = this.reflector.getAllAndOverride<Role[] | undefined>(ROLES, [context.getHandler(), context.getClass()]);
    if (!roles?.length) return true;
    const principal = context.switchToHttp().getRequest<{ user?: Principal }>().user;
    if (principal && roles.includes(principal.role)) return true;
    throw new AppError('FORBIDDEN', `This action requires the ${roles.join(' or ')} role.`);
  }
}
