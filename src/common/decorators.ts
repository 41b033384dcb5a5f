import { SetMetadata } from '@nestjs/common';

export const IS_PUBLIC = 'isPublic';
/** Opts a route out of bearer authentication. Public routes are listed in SPEC §3 and checked by a test. */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(IS_PUBLIC, true);

export const RAW_RESPONSE = 'rawResponse';
/** The route keeps its own ecosystem format (terminus health, Prometheus, Smart Redirect): no envelope. */
export const RawResponse = (): MethodDecorator & ClassDecorator => SetMetadata(RAW_RESPONSE, true);

export type Role = 'admin' | 'user';
export const ROLES = 'roles';
/** Restricts a route to the given roles of the authenticated user. */
export const Roles = (...roles: Role[]): MethodDecorator & ClassDecorator => SetMetadata(ROLES, roles);

export const RESPONSE_MESSAGE = 'responseMessage';
/** The envelope's `message` for this route's success (default "Ok"). */
export const ResponseMessage = (message: string): MethodDecorator => SetMetadata(RESPONSE_MESSAGE, message);
