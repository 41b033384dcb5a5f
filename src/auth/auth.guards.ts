import { ExecutionContext, Injectable, type CanActivate } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { AuthGuard } from '@nestjs/passport';
import { AppError } from '../common/app-error';
import { IS_PUBLIC, ROLES, type Role } from '../common/decorators';
import type { Principal } from './principal';

/** Deny by default: every route needs a bearer token unless it is marked @Public(). */
@Injectable()
export class BearerAuthGuard extends AuthGuard('bearer') {
  constructor(private readonly reflector: Reflector) {
    super({ session: false });
  }

  override canActivate(context: ExecutionContext): ReturnType<CanActivate['canActivate']> {
    if (this.reflector.getAllAndOverride<boolean>(IS_PUBLIC, [context.getHandler(), context.getClass()])) return true;
    return super.canActivate(context);
  }

  override handleRequest<T = Principal>(err: unknown, user: T | false): T {
    if (err || !user) throw new AppError('UNAUTHENTICATED', 'Unauthenticated.');
    return user;
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
