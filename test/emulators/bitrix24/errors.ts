/**
 * A REST error as Bitrix24 sends it: `{error, error_description}` with an HTTP status.
 * The code may be an empty string; several telephony and CRM errors really arrive that way.
 */
export class RestError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly description: string,
  ) {
    super(`${code || '(empty code)'}: ${description}`);
  }

  toJSON(): { error: string; error_description: string } {
    return { error: this.code, error_description: this.description };
  }
}

/** `ERROR_CORE` (400): the generic business error of telephony, tasks and event methods. */
export const coreError = (description: string): RestError => new RestError(400, 'ERROR_CORE', description);

/**
 * An error with an empty code (400): what the core's `new RestException($message)` becomes, e.g.
 * CRM "Not found" and every telephony business error ("Call is not found …", "Unknown TYPE").
 */
export const plainError = (description: string): RestError => new RestError(400, '', description);

export const restErrors = {
  noAuth: () => new RestError(401, 'NO_AUTH_FOUND', 'Wrong authorization data'),
  invalidToken: () => new RestError(401, 'invalid_token', 'Unable to get application by token'),
  expiredToken: () => new RestError(401, 'expired_token', 'The access token provided has expired.'),
  insufficientScope: () =>
    new RestError(403, 'insufficient_scope', 'The request requires higher privileges than provided by the access token'),
  accessDenied: (description = 'Access denied') => new RestError(403, 'ACCESS_DENIED', description),
  methodNotFound: () => new RestError(404, 'ERROR_METHOD_NOT_FOUND', 'Method not found!'),
  queryLimit: () => new RestError(503, 'QUERY_LIMIT_EXCEEDED', 'Too many requests'),
  operationTimeLimit: () => new RestError(429, 'OPERATION_TIME_LIMIT', 'Method is blocked due to operation time limit.'),
  internal: () => new RestError(500, 'INTERNAL_SERVER_ERROR', 'Internal server error'),
  argument: (name: string) => new RestError(400, 'ERROR_ARGUMENT', `Argument '${name}' is null or empty`),
};
