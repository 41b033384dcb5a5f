import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { Role } from '../common/decorators';

/** Who is calling: resolved from the bearer token; every query is scoped by `companyId`. */
export interface Principal {
  userId: number;
  companyId: number;
  role: Role;
  tokenId: number;
}

export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  return ctx.switchToHttp().getRequest<{ user: Principal }>().user;
});
