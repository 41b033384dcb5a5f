import { Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import { AppError } from '../../common/app-error';
import type { AmiConfig } from '../../config/pbx.config';
import { AmiConnection, AmiUnavailableError, type AmiMessage } from './ami-connection';
import type { LateFailure, OriginateRequest, PbxDriver } from './pbx-driver';

/** How long the operator's phone rings before the PBX gives up (ms, AMI `Timeout`). */
const RING_TIMEOUT_MS = 30_000;
/** A late OriginateResponse is awaited this long after the ring timeout, then forgotten. */
const LATE_RESULT_GRACE_MS = 30_000;

/**
 * Originate through the Asterisk Manager Interface: `Originate` with `Async: true` on one kept
 * session; the answer comes back at once and the call's outcome later as an `OriginateResponse`
 * event carrying our ActionID.
 */
export class AmiDriver implements PbxDriver, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(AmiDriver.name);
  private readonly connection: AmiConnection | null;
  private readonly waiting = new Map<string, { onLateFailure: (failure: LateFailure) => void; timer: NodeJS.Timeout; originateId: number }>();

  constructor(private readonly config: AmiConfig | null) {
    this.connection = config
      ? new AmiConnection({ host: config.host, port: config.port, user: config.user, secret: config.secret, events: 'call' })
      : null;
    this.connection?.on('event', (event: AmiMessage) => this.onEvent(event));
    this.connection?.on('ready', () => this.logger.log({ host: config?.host, port: config?.port }, 'AMI session logged in'));
    this.connection?.on('down', (reason: string) => this.logger.warn({ reason }, 'AMI session lost; reconnecting'));
  }

  get unavailable(): AppError | null {
    if (!this.connection) return notConfigured();
    return this.connection.ready ? null : unreachable();
  }

  onApplicationBootstrap(): void {
    this.connection?.start();
  }

  async onModuleDestroy(): Promise<void> {
    for (const entry of this.waiting.values()) clearTimeout(entry.timer);
    this.waiting.clear();
    await this.connection?.stop();
  }

  async originate(request: OriginateRequest, onLateFailure: (failure: LateFailure) => void): Promise<void> {
    const { connection, config } = this;
    if (!connection || !config) throw notConfigured();
    const actionId = connection.actionId();
    const variables = [`BITRIX_CALL_ID=${request.bitrixCallId ?? ''}`, `UTEL_COMPANY_ID=${request.companyId}`, `UTEL_ORIGINATE_ID=${request.originateId}`];
    // Registered before sending: the OriginateResponse can arrive in the same read as the response.
    const timer = setTimeout(() => this.waiting.delete(actionId), RING_TIMEOUT_MS + LATE_RESULT_GRACE_MS);
    timer.unref();
    this.waiting.set(actionId, { onLateFailure, timer, originateId: request.originateId });
    const forget = () => {
      clearTimeout(timer);
      this.waiting.delete(actionId);
    };
    let answer: AmiMessage;
    try {
      answer = await connection.send({
        Action: 'Originate',
        ActionID: actionId,
        Channel: config.channelTemplate.replaceAll('{sip_phone}', request.sipPhone),
        Context: config.context,
        Exten: request.phoneNumber,
        Priority: '1',
        CallerID: `"${request.phoneNumber}" <${request.phoneNumber}>`,
        Timeout: String(RING_TIMEOUT_MS),
        Async: 'true',
        Variable: variables,
      });
    } catch (err) {
      forget();
      if (err instanceof AmiUnavailableError) throw unreachable(err);
      throw err;
    }
    if (answer.response?.toLowerCase() !== 'success') {
      forget();
      this.logger.warn({ originateId: request.originateId, message: answer.message }, 'The PBX refused the Originate');
      throw new AppError('PBX_REJECTED', 'The PBX refused to place the call.');
    }
  }

  private onEvent(event: AmiMessage): void {
    if (event.event?.toLowerCase() !== 'originateresponse' || !event.actionid) return;
    const entry = this.waiting.get(event.actionid);
    if (!entry) return;
    this.waiting.delete(event.actionid);
    clearTimeout(entry.timer);
    if (event.response?.toLowerCase() === 'success') return;
    const failure = lateFailure(event.reason);
    this.logger.warn({ originateId: entry.originateId, reason: event.reason }, 'The PBX could not place an originated call');
    entry.onLateFailure(failure);
  }
}

/** Asterisk's dial state in OriginateResponse `Reason`: 1 hung up, 3 ringing timed out, 5 busy, 8 congestion, 0 failure. */
function lateFailure(reason: string | undefined): LateFailure {
  if (reason === '5') return { reason: 'the operator is busy', statusCode: '486' };
  if (reason === '1' || reason === '3') return { reason: 'the operator did not answer', statusCode: '480' };
  return { reason: `the PBX could not place the call (reason ${reason ?? 'unknown'})`, statusCode: '503' };
}

const notConfigured = () => new AppError('PBX_UNAVAILABLE', 'The PBX is not configured on this server (AMI_HOST, AMI_USER, AMI_SECRET).');
const unreachable = (cause?: Error) => new AppError('PBX_UNAVAILABLE', 'The PBX cannot be reached right now: the call was not placed.', undefined, { cause });
