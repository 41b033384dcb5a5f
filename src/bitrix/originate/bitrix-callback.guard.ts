import { createParamDecorator, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import { CallbackAuthService, type CallbackCaller } from './callback-auth.service';

type CallbackRequest = FastifyRequest<{ Querystring: Record<string, unknown> }> & { bitrixCaller?: CallbackCaller };

/**
 * The check of the public Bitrix24 callbacks (they are @Public() for bearer auth): the handler
 * key, the application_token, or a Bitrix24 user's token (SPEC §7). Reads the raw body, before
 * any pipe, and leaves the proven caller on the request.
 */
@Injectable()
export class BitrixCallbackGuard implements CanActivate {
  constructor(private readonly auth: CallbackAuthService) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<CallbackRequest>();
    const body: Record<string, unknown> = isRecord(request.body) ? request.body : {};
    const key = typeof request.query.key === 'string' ? request.query.key : typeof body.key === 'string' ? body.key : undefined;
    request.bitrixCaller = await this.auth.authenticate({ key, isEvent: body.event !== undefined, auth: isRecord(body.auth) ? body.auth : undefined });
    return true;
  }
}

/** The caller BitrixCallbackGuard proved. */
export const Caller = createParamDecorator((_: unknown, context: ExecutionContext): CallbackCaller => {
  const caller = context.switchToHttp().getRequest<CallbackRequest>().bitrixCaller;
  if (!caller) throw new Error('BitrixCallbackGuard did not run');
  return caller;
});

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
