import { createHash, randomBytes } from 'node:crypto';
import type { CrmType } from './crm-store';
import { plainError } from './errors';
import { phoneDigits } from './phone';
import type { Portal } from './portal';
import type { User } from './types';

const DEDUPE_WINDOW_MS = 30 * 60_000;

/** A call registered with `telephony.externalcall.register` (or by click-to-call). */
export interface ExternalCall {
  CALL_ID: string;
  EXTERNAL_CALL_ID: string | null;
  USER_ID: number;
  PHONE_NUMBER: string;
  TYPE: number;
  LINE_NUMBER: string | null;
  CALL_START_DATE: string;
  CRM_ENTITY_TYPE: CrmType | '';
  CRM_ENTITY_ID: number | null;
  CRM_CREATED_ENTITIES: { ENTITY_TYPE: CrmType; ENTITY_ID: number }[];
  CRM_SOURCE: string | null;
  CALL_LIST_ID: number | null;
  /** Start used by the 30-minute rule (the supplied CALL_START_DATE), ms. */
  startedAt: number;
  finishedAt: number | null;
  /** Users whose card is currently shown. */
  shownTo: number[];
}

/** A telephony statistics row, exactly as `finish` returns it. */
export interface CallStatistic {
  ID: number;
  CALL_ID: string;
  EXTERNAL_CALL_ID: string | null;
  PORTAL_USER_ID: number;
  PHONE_NUMBER: string;
  PORTAL_NUMBER: string;
  INCOMING: string;
  CALL_DURATION: number;
  /** A serialized PHP DateTime: really `{}`. */
  CALL_START_DATE: Record<string, never>;
  CALL_STATUS: number;
  CALL_VOTE: number;
  COST: number;
  COST_CURRENCY: string;
  CALL_FAILED_CODE: string;
  CALL_FAILED_REASON: string;
  REST_APP_ID: string;
  REST_APP_NAME: string;
  CRM_ACTIVITY_ID: number | null;
  COMMENT: string | null;
  /** Present only when the call is bound to a CRM entity (the core sets them only then). */
  CRM_ENTITY_TYPE?: CrmType;
  CRM_ENTITY_ID?: number;
  ERRORS?: Record<string, string>;
}

export interface CardEvent {
  action: 'show' | 'hide';
  CALL_ID: string;
  userIds: number[];
  via: 'register' | 'show' | 'hide' | 'finish';
  at: Date;
}

export interface ExternalLine {
  ID: number;
  NUMBER: string;
  NAME: string;
  CRM_AUTO_CREATE: 'Y' | 'N';
}

export interface CallRecording {
  FILE_ID: number;
  CALL_ID: string;
  FILENAME: string;
  content: Buffer;
  via: 'url' | 'base64' | 'upload';
}

export interface RegisterInput {
  user: User;
  phone: string;
  type: number;
  startedAt: number;
  startDate: string;
  crmCreate: boolean;
  crmSource?: string;
  crmEntity?: { type: CrmType; id: number };
  show: boolean;
  lineNumber?: string;
  externalCallId?: string;
  callListId?: number;
}

export interface RegisterResult {
  CALL_ID: string;
  CRM_CREATED_LEAD: number | null;
  CRM_CREATED_ENTITIES: { ENTITY_TYPE: CrmType; ENTITY_ID: number }[];
  CRM_ENTITY_TYPE: string;
  CRM_ENTITY_ID: number | null;
  LEAD_CREATION_ERROR?: string;
}

export interface FinishInput {
  callId: string;
  user: User;
  duration: number;
  statusCode?: string;
  cost: number;
  costCurrency: string;
  failedReason: string;
  vote: number;
}

interface Binding {
  type: CrmType | '';
  id: number | null;
  created: { ENTITY_TYPE: CrmType; ENTITY_ID: number }[];
  error?: string;
}

const NONE: Binding = { type: '', id: null, created: [] };
/** The app as the portal knows it (REST_APP_ID / REST_APP_NAME of statistics rows). */
const APP = { id: '3', name: 'Utel PBX (emulated)' };

/** Live calls, statistics, cards, lines and recordings: the voximplant module of one portal. */
export class TelephonyState {
  readonly calls: ExternalCall[] = [];
  readonly statistics: CallStatistic[] = [];
  readonly cards: CardEvent[] = [];
  readonly lines: ExternalLine[] = [];
  readonly recordings: CallRecording[] = [];
  private readonly uploads = new Map<string, { callId: string; filename: string }>();
  private seq = { stat: 0, file: 0, line: 0 };

  constructor(private readonly portal: Portal) {}

  register(input: RegisterInput): RegisterResult {
    const now = this.portal.clock.now();
    const digits = phoneDigits(input.phone);
    // The 30-minute rule: an unfinished call with the same key gets its CALL_ID back.
    const existing = this.calls.find(
      (call) =>
        call.finishedAt === null &&
        call.TYPE === input.type &&
        call.USER_ID === input.user.ID &&
        phoneDigits(call.PHONE_NUMBER) === digits &&
        (input.lineNumber === undefined || call.LINE_NUMBER === input.lineNumber) &&
        (input.externalCallId === undefined || call.EXTERNAL_CALL_ID === input.externalCallId) &&
        call.startedAt > now - DEDUPE_WINDOW_MS,
    );
    if (existing) {
      // The core answers with the live call as it stands: the lead it created the first time too.
      if (input.show) this.card(existing, 'show', [existing.USER_ID], 'register');
      return {
        CALL_ID: existing.CALL_ID,
        CRM_CREATED_LEAD: createdLead(existing.CRM_CREATED_ENTITIES),
        CRM_CREATED_ENTITIES: existing.CRM_CREATED_ENTITIES.map((entity) => ({ ...entity })),
        CRM_ENTITY_TYPE: existing.CRM_ENTITY_TYPE,
        CRM_ENTITY_ID: existing.CRM_ENTITY_ID,
      };
    }
    const line = input.lineNumber === undefined ? undefined : this.ensureLine(input.lineNumber);
    const binding = this.bindCrm(input, line);
    const call: ExternalCall = {
      CALL_ID: `externalCall.${createHash('md5').update(randomBytes(16)).digest('hex')}.${Math.floor(now / 1000)}`,
      EXTERNAL_CALL_ID: input.externalCallId ?? null,
      USER_ID: input.user.ID,
      PHONE_NUMBER: input.phone,
      TYPE: input.type,
      LINE_NUMBER: input.lineNumber ?? null,
      CALL_START_DATE: input.startDate,
      CRM_ENTITY_TYPE: binding.type,
      CRM_ENTITY_ID: binding.id,
      CRM_CREATED_ENTITIES: binding.created,
      CRM_SOURCE: input.crmSource ?? null,
      CALL_LIST_ID: input.callListId ?? null,
      startedAt: input.startedAt,
      finishedAt: null,
      shownTo: [],
    };
    this.calls.push(call);
    if (input.show) this.card(call, 'show', [input.user.ID], 'register');
    return {
      CALL_ID: call.CALL_ID,
      CRM_CREATED_LEAD: createdLead(binding.created),
      CRM_CREATED_ENTITIES: binding.created.map((entity) => ({ ...entity })),
      CRM_ENTITY_TYPE: binding.type,
      CRM_ENTITY_ID: binding.id,
      ...(binding.error === undefined ? {} : { LEAD_CREATION_ERROR: binding.error }),
    };
  }

  /** Shows or hides the card of a live call; false when the call is unknown or finished. */
  showCard(callId: string, userIds: number[] | undefined, action: 'show' | 'hide'): boolean {
    const call = this.live(callId);
    if (!call) return false;
    this.card(call, action, userIds ?? [call.USER_ID], action);
    return true;
  }

  /** The live call `finish` closes; the core looks it up before it checks the user. */
  requireLive(callId: string): ExternalCall {
    const call = this.live(callId);
    if (!call) throw plainError('Call is not found (call should be registered prior to finishing');
    return call;
  }

  finish(input: FinishInput): CallStatistic {
    const call = this.requireLive(input.callId);
    call.finishedAt = this.portal.clock.now();
    if (call.shownTo.length > 0) this.card(call, 'hide', [...call.shownTo], 'finish');
    const crm = this.portal.crm;
    // Entities auto-created for the call now belong to whoever handled it.
    for (const entity of call.CRM_CREATED_ENTITIES) {
      const row = crm.get(entity.ENTITY_TYPE, entity.ENTITY_ID);
      if (row) row.ASSIGNED_BY_ID = String(input.user.ID);
    }
    const code = input.statusCode ?? (input.duration > 0 ? '200' : '304');
    const incoming = call.TYPE !== 1;
    // The statistics row names the CRM entity only when the call is bound to one.
    const bound =
      call.CRM_ENTITY_TYPE === '' || call.CRM_ENTITY_ID === null
        ? undefined
        : { CRM_ENTITY_TYPE: call.CRM_ENTITY_TYPE, CRM_ENTITY_ID: call.CRM_ENTITY_ID };
    const activity =
      bound === undefined
        ? undefined
        : crm.addActivity({
            OWNER_TYPE: bound.CRM_ENTITY_TYPE,
            OWNER_ID: bound.CRM_ENTITY_ID,
            PROVIDER_ID: 'VOXIMPLANT_CALL',
            DIRECTION: incoming ? 'INCOMING' : 'OUTGOING',
            SUBJECT: `${incoming ? 'Incoming' : 'Outgoing'} call ${call.PHONE_NUMBER}`,
            ORIGIN_ID: `VI_${call.CALL_ID}`,
            RESPONSIBLE_ID: input.user.ID,
            DURATION: input.duration,
            STATUS_CODE: code,
            MISSED: incoming && code === '304',
            START_TIME: call.CALL_START_DATE,
            RECORD_FILE_ID: null,
          });
    const row: CallStatistic = {
      ID: ++this.seq.stat,
      CALL_ID: call.CALL_ID,
      EXTERNAL_CALL_ID: call.EXTERNAL_CALL_ID,
      PORTAL_USER_ID: input.user.ID,
      PHONE_NUMBER: phoneDigits(call.PHONE_NUMBER),
      PORTAL_NUMBER: call.LINE_NUMBER ?? '',
      INCOMING: String(call.TYPE),
      CALL_DURATION: input.duration,
      CALL_START_DATE: {},
      CALL_STATUS: input.duration > 0 ? 1 : 0,
      CALL_VOTE: input.vote,
      COST: input.cost,
      COST_CURRENCY: input.costCurrency,
      CALL_FAILED_CODE: code,
      CALL_FAILED_REASON: input.failedReason,
      REST_APP_ID: APP.id,
      REST_APP_NAME: APP.name,
      CRM_ACTIVITY_ID: activity?.ID ?? null,
      COMMENT: null,
      ...bound,
    };
    if (!activity) row.ERRORS = { ACTIVITY_CREATION: 'Could not find associated crm entity for the current call' };
    this.statistics.push(row);
    return row;
  }

  /** attachRecord works only on finished calls (rows of the statistics table). */
  requireFinished(callId: string): CallStatistic {
    const row = this.statistics.find((stat) => stat.CALL_ID === callId);
    if (!row) throw plainError('Call is not found in the statistic table. Looks like it is not finished yet.');
    return row;
  }

  /** Stores a recording; a second one for the same call replaces the first. */
  attach(callId: string, filename: string, content: Buffer, via: CallRecording['via']): { FILE_ID: number } {
    this.requireFinished(callId);
    checkExtension(filename);
    const recording: CallRecording = { FILE_ID: ++this.seq.file, CALL_ID: callId, FILENAME: filename, content, via };
    const index = this.recordings.findIndex((rec) => rec.CALL_ID === callId);
    if (index === -1) this.recordings.push(recording);
    else this.recordings[index] = recording;
    const activity = this.portal.crm.activities.find((act) => act.ORIGIN_ID === `VI_${callId}`);
    if (activity) activity.RECORD_FILE_ID = recording.FILE_ID;
    return { FILE_ID: recording.FILE_ID };
  }

  /** Mode 3 of attachRecord: a signed token for `upload.json`. */
  issueUpload(callId: string, filename: string): string {
    this.requireFinished(callId);
    checkExtension(filename);
    const payload = Buffer.from(`callId=${callId}&filename=${filename}`).toString('base64');
    const token = `telephony|${payload}|${randomBytes(24).toString('base64')}`;
    this.uploads.set(token, { callId, filename });
    return token;
  }

  completeUpload(token: string, content: Buffer): { FILE_ID: number } {
    const upload = this.uploads.get(token);
    if (!upload) throw plainError('Wrong upload token');
    return this.attach(upload.callId, upload.filename, content, 'upload');
  }

  ensureLine(number: string, name = number, crmAutoCreate: 'Y' | 'N' = 'Y'): ExternalLine {
    const found = this.lines.find((line) => line.NUMBER === number);
    if (found) return found;
    const line: ExternalLine = { ID: ++this.seq.line, NUMBER: number, NAME: name, CRM_AUTO_CREATE: crmAutoCreate };
    this.lines.push(line);
    return line;
  }

  private live(callId: string): ExternalCall | undefined {
    return this.calls.find((call) => call.CALL_ID === callId && call.finishedAt === null);
  }

  private card(call: ExternalCall, action: 'show' | 'hide', userIds: number[], via: CardEvent['via']): void {
    this.cards.push({ action, CALL_ID: call.CALL_ID, userIds, via, at: new Date(this.portal.clock.now()) });
    call.shownTo =
      action === 'show'
        ? [...new Set([...call.shownTo, ...userIds])]
        : call.shownTo.filter((id) => !userIds.includes(id));
  }

  private bindCrm(input: RegisterInput, line: ExternalLine | undefined): Binding {
    if (input.crmEntity) return { type: input.crmEntity.type, id: input.crmEntity.id, created: [] };
    const digits = phoneDigits(input.phone);
    // A call to or from an employee's extension is internal: no CRM at all.
    if (this.portal.users.some((user) => user.UF_PHONE_INNER !== '' && phoneDigits(user.UF_PHONE_INNER) === digits)) {
      return NONE;
    }
    const crm = this.portal.crm;
    for (const type of ['CONTACT', 'COMPANY', 'LEAD'] as const) {
      const match = crm.findByPhone(type, new Set([digits]))[0];
      if (match) return { type, id: Number(match.ID), created: [] };
    }
    const lineAllows = !(input.type === 1 && line?.CRM_AUTO_CREATE === 'N');
    if (!input.crmCreate || !lineAllows) return NONE;
    const error = this.portal.faults.leadCreationError;
    if (error !== null) return { ...NONE, error };
    const fields = {
      PHONE: [{ VALUE: input.phone, VALUE_TYPE: 'WORK' }],
      SOURCE_ID: input.crmSource ?? 'CALL',
      ASSIGNED_BY_ID: input.user.ID,
    };
    const title = `${input.type === 1 ? 'Outgoing call to' : 'Incoming call from'} ${input.phone}`;
    if (this.portal.crmMode === 'simple') {
      // Leadless CRM: a contact plus a deal in the default pipeline.
      const contact = crm.add('CONTACT', { ...fields, NAME: input.phone }, input.user.ID);
      const deal = crm.add('DEAL', { TITLE: title, CONTACT_ID: contact.ID, SOURCE_ID: fields.SOURCE_ID, ASSIGNED_BY_ID: input.user.ID }, input.user.ID);
      return {
        type: 'CONTACT',
        id: Number(contact.ID),
        created: [
          { ENTITY_TYPE: 'CONTACT', ENTITY_ID: Number(contact.ID) },
          { ENTITY_TYPE: 'DEAL', ENTITY_ID: Number(deal.ID) },
        ],
      };
    }
    const lead = crm.add('LEAD', { ...fields, TITLE: title }, input.user.ID);
    return { type: 'LEAD', id: Number(lead.ID), created: [{ ENTITY_TYPE: 'LEAD', ENTITY_ID: Number(lead.ID) }] };
  }
}

function checkExtension(filename: string): void {
  if (filename === '') throw plainError('File name is empty');
  if (!/\.(wav|mp3)$/i.test(filename)) throw plainError('Wrong file extension. Only wav and mp3 are allowed');
}

/** `CRM_CREATED_LEAD`: the lead among the entities created for the call, else null. */
function createdLead(created: { ENTITY_TYPE: CrmType; ENTITY_ID: number }[]): number | null {
  return created.find((entity) => entity.ENTITY_TYPE === 'LEAD')?.ENTITY_ID ?? null;
}
