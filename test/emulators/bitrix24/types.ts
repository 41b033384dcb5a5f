import type { Args } from './args';
import type { RestError } from './errors';
import type { Portal } from './portal';

/** An employee. `ID` is a number here and a string on the wire; `ADMIN` is served only by `profile`. */
export interface User {
  ID: number;
  ACTIVE: boolean;
  ADMIN: boolean;
  NAME: string;
  LAST_NAME: string;
  SECOND_NAME: string;
  EMAIL: string;
  PERSONAL_GENDER: 'M' | 'F' | '';
  PERSONAL_MOBILE: string;
  PERSONAL_PHONE: string;
  WORK_PHONE: string;
  WORK_POSITION: string;
  UF_PHONE_INNER: string;
  UF_DEPARTMENT: number[];
  USER_TYPE: 'employee' | 'extranet';
  TIME_ZONE: string;
  IS_ONLINE: boolean;
  /** Work-day state reported by `searchCrmEntities` (OPENED = working). */
  TIMEMAN_STATUS: 'OPENED' | 'CLOSED' | 'PAUSED' | 'EXPIRED' | 'UNAVAILABLE' | 'NOT_INSTALLED';
  DATE_REGISTER: string;
}

export interface RecordedRequest {
  /** Lower-case REST method (`user.get`), or `oauth/authorize`, `upload`. */
  method: string;
  /** Parameters without `auth`. */
  params: Record<string, unknown>;
  auth?: string;
  httpMethod: string;
  path: string;
  at: Date;
  status: number;
  /** Error code of a failed call ('' for the empty-code errors). */
  error?: string;
  /** A command executed inside a `batch` request (not an HTTP request of its own). */
  inBatch?: boolean;
}

export interface OAuthRecordedRequest {
  grantType: string;
  params: Record<string, unknown>;
  status: number;
  at: Date;
  error?: string;
}

export interface EventBinding {
  id: number;
  event: string;
  handler: string;
  /** User whose token the handler receives; 0 = the user who caused the event. */
  auth_type: number;
  offline: 0 | 1;
  /** Who bound it (non-admins see only their own). */
  boundBy: number;
}

export interface Task {
  id: number;
  fields: Record<string, unknown>;
  createdBy: number;
  createdAt: Date;
}

export interface TimeBlock {
  start: number;
  finish: number;
  duration: number;
  processing: number;
  date_start: string;
  date_finish: string;
  operating_reset_at: number;
  operating: number;
}

export interface MethodResult {
  result: unknown;
  total?: number;
  next?: number;
}

export type Outcome = { ok: true; value: MethodResult; time: TimeBlock } | { ok: false; error: RestError };

export interface CallContext {
  portal: Portal;
  args: Args;
  /** The token owner. */
  user: User;
  scopes: ReadonlySet<string>;
  accessToken: string;
  /** Runs another method with the same auth (used by batch). */
  invoke(method: string, params: Record<string, unknown>): Promise<Outcome>;
}

export interface MethodSpec {
  /** Any of these scopes grants the method; null = `basic`, always granted. */
  scope: readonly string[] | null;
  handler(ctx: CallContext): MethodResult | Promise<MethodResult>;
}

export const USER_SCOPES = ['user', 'user_basic', 'user_brief'] as const;

export function method(scope: readonly string[] | null, handler: MethodSpec['handler']): MethodSpec {
  return { scope, handler };
}
