/** Shapes of Bitrix24 answers this service reads (see shared/bitrix24-api.md). */

export interface RestTime {
  operating_reset_at?: number;
  operating?: number;
}

export interface RestSuccess<T> {
  result: T;
  total?: number;
  next?: number;
  time?: RestTime;
}

export interface RestFailure {
  error: string;
  error_description?: string;
}

export interface TokenResponse {
  access_token: string;
  refresh_token: string;
  expires?: number;
  expires_in?: number;
  scope?: string;
  domain?: string;
  server_endpoint?: string;
  client_endpoint?: string;
  member_id: string;
  user_id?: number | string;
  status?: string;
}

/** `profile`: who a token belongs to (scope `basic`). */
export interface BitrixProfile {
  ID?: string | number;
  ADMIN?: boolean;
}

/** Batch sections are `[]` when empty and objects keyed by command when not. */
export interface BatchResponse {
  result: Record<string, unknown> | unknown[];
  result_error: Record<string, RestFailure> | unknown[];
  result_total: Record<string, number> | unknown[];
  result_next: Record<string, number> | unknown[];
}

export interface BitrixUserRow {
  ID: string;
  ACTIVE?: boolean;
  NAME?: string | null;
  LAST_NAME?: string | null;
  EMAIL?: string | null;
  UF_PHONE_INNER?: string | null;
}
