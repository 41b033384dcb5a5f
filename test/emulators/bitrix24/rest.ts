import { Args } from './args';
import { batchMethod } from './batch';
import { atom } from './clock';
import { plainError, RestError, restErrors } from './errors';
import { appMethods } from './methods/app';
import { crmMethods } from './methods/crm';
import { eventMethods } from './methods/events';
import { taskMethods } from './methods/tasks';
import { telephonyMethods } from './methods/telephony';
import { userMethods } from './methods/users';
import { voximplantMethods } from './methods/voximplant';
import type { UploadedFile } from './multipart';
import type { Portal } from './portal';
import type { CallContext, MethodSpec, Outcome, TimeBlock, User } from './types';

/** Every REST method the emulator knows, by lower-case name (names are case-insensitive). */
const METHODS: ReadonlyMap<string, MethodSpec> = new Map(
  Object.entries({
    ...appMethods,
    ...userMethods,
    ...eventMethods,
    ...telephonyMethods,
    ...crmMethods,
    ...taskMethods,
    ...voximplantMethods,
    batch: batchMethod,
  }).map(([name, spec]) => [name.toLowerCase(), spec]),
);

/** What the portal answers and records for one HTTP request. */
export interface RestReply {
  status: number;
  body: unknown;
  method: string;
  params: Record<string, unknown>;
  auth?: string;
  error?: string;
}

interface Session {
  user: User;
  token: string;
  scopes: ReadonlySet<string>;
}

/**
 * One REST call over HTTP: the rate limit first (a request that will fail auth still counts),
 * then auth, method, scope, the method's operating budget and injected faults, then the handler.
 * The answer is the success envelope or `{error, error_description}` with the real status.
 */
export async function handleRest(portal: Portal, method: string, params: Record<string, unknown>): Promise<RestReply> {
  const started = portal.clock.now();
  const { auth, ...rest } = params;
  const reply = replier(method, rest, auth);
  try {
    chargeRateLimit(portal);
    const session = authenticate(portal, typeof auth === 'string' ? auth : undefined);
    const outcome = await execute(portal, session, method, rest, started);
    if (!outcome.ok) return reply(outcome.error);
    const { result, total, next } = outcome.value;
    return reply({ result, ...(next === undefined ? {} : { next }), ...(total === undefined ? {} : { total }), time: outcome.time });
  } catch (error) {
    return reply(error instanceof RestError ? error : portal.internalError(error));
  }
}

/** `POST /rest/upload.json?auth=…&token=…` with the multipart field `file` (attachRecord's third mode). */
export function handleUpload(portal: Portal, params: Record<string, unknown>, files: UploadedFile[]): RestReply {
  const started = portal.clock.now();
  const { auth, ...rest } = params;
  const reply = replier('upload', rest, auth);
  try {
    chargeRateLimit(portal);
    authenticate(portal, typeof auth === 'string' ? auth : undefined);
    const file = files.find((candidate) => candidate.field === 'file');
    if (!file || file.content.length === 0) throw plainError('File is not found');
    const result = portal.telephony.completeUpload(typeof rest.token === 'string' ? rest.token : '', file.content);
    return reply({ result, time: timeBlock(portal, 'upload', started, 0) });
  } catch (error) {
    return reply(error instanceof RestError ? error : portal.internalError(error));
  }
}

function replier(method: string, params: Record<string, unknown>, auth: unknown): (outcome: RestError | object) => RestReply {
  const base = { method, params, ...(typeof auth === 'string' ? { auth } : {}) };
  return (outcome) =>
    outcome instanceof RestError
      ? { ...base, status: outcome.status, body: outcome.toJSON(), error: outcome.code }
      : { ...base, status: 200, body: outcome };
}

function chargeRateLimit(portal: Portal): void {
  if (portal.limiter.tryTake()) return;
  portal.queryLimitExceeded += 1;
  throw restErrors.queryLimit();
}

function authenticate(portal: Portal, token: string | undefined): Session {
  if (!token) throw restErrors.noAuth();
  const found = portal.host.tokens.checkAccess(token);
  if (!found || found.grant.memberId !== portal.memberId) throw restErrors.invalidToken();
  if (found.expired) throw restErrors.expiredToken();
  const user = portal.users.find((candidate) => candidate.ID === found.grant.userId && candidate.ACTIVE);
  if (!user) throw restErrors.invalidToken();
  return { user, token, scopes: new Set([...found.grant.scope, 'basic']) };
}

/** A command inside `batch`: same auth, no rate-limit charge, recorded with `inBatch`. */
async function executeInBatch(
  portal: Portal,
  session: Session,
  method: string,
  params: Record<string, unknown>,
): Promise<Outcome> {
  const started = portal.clock.now();
  const outcome = await execute(portal, session, method, params, started);
  portal.requests.push({
    method, params, auth: session.token, httpMethod: 'POST', path: '/rest/batch', at: new Date(started),
    status: outcome.ok ? 200 : outcome.error.status, inBatch: true,
    ...(outcome.ok ? {} : { error: outcome.error.code }),
  });
  return outcome;
}

async function execute(
  portal: Portal,
  session: Session,
  method: string,
  params: Record<string, unknown>,
  started: number,
): Promise<Outcome> {
  try {
    const spec = METHODS.get(method);
    if (!spec) throw restErrors.methodNotFound();
    if (spec.scope && !spec.scope.some((scope) => session.scopes.has(scope))) throw restErrors.insufficientScope();
    portal.operating.check(method, started);
    const injected = portal.faults.take(method);
    if (injected) throw new RestError(injected.status, injected.error, injected.error_description);
    const ctx: CallContext = {
      portal,
      args: new Args(params),
      user: session.user,
      scopes: session.scopes,
      accessToken: session.token,
      invoke: (inner, innerParams) => executeInBatch(portal, session, inner, innerParams),
    };
    const cpu = process.hrtime.bigint();
    const value = await spec.handler(ctx);
    const processing = portal.operating.charge(method, Number(process.hrtime.bigint() - cpu) / 1e9);
    portal.operating.record(method, started, processing);
    return { ok: true, value, time: timeBlock(portal, method, started, processing) };
  } catch (error) {
    return { ok: false, error: error instanceof RestError ? error : portal.internalError(error) };
  }
}

function timeBlock(portal: Portal, method: string, started: number, processing: number): TimeBlock {
  const finished = portal.clock.now();
  return {
    start: started / 1000,
    finish: finished / 1000,
    duration: (finished - started) / 1000,
    processing,
    date_start: atom(started),
    date_finish: atom(finished),
    ...portal.operating.report(method, started, finished),
  };
}
