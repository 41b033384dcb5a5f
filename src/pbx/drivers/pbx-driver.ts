/** What the PBX needs to place a click-to-call: ring `sipPhone`, then dial `phoneNumber`. */
export interface OriginateRequest {
  /** `pbx_originates.id`: tags the call so its PBX events and failures find the row. */
  originateId: number;
  companyId: number;
  sipPhone: string;
  /** E.164. */
  phoneNumber: string;
  /** The Bitrix24 call the PBX's events will finish (passed through as a channel variable). */
  bitrixCallId: string | null;
}

/** A failure the PBX reports after it accepted the originate (AMI `OriginateResponse: Failure`). */
export interface LateFailure {
  reason: string;
  /** Bitrix24 finish STATUS_CODE for it: 486 busy, 480 not answered, 503 otherwise. */
  statusCode: '486' | '480' | '503';
}

import type { AppError } from '../../common/app-error';

/**
 * How originate reaches the PBX (`PBX_DRIVER`). `originate` resolves once the PBX has accepted the
 * request and throws `AppError` PBX_UNAVAILABLE (503: not reachable, not logged in, not configured)
 * or PBX_REJECTED (502: it refused this request); nothing is queued or retried, so a request that
 * failed is never dialled later. `onLateFailure` hears of failures reported after acceptance.
 */
export interface PbxDriver {
  originate(request: OriginateRequest, onLateFailure: (failure: LateFailure) => void): Promise<void>;
  /** The 503 to answer while the PBX is known to be unreachable or not configured (null when it can take calls): callers check it before writing anything. */
  readonly unavailable: AppError | null;
}

export const PBX_DRIVER = Symbol('PBX_DRIVER');
