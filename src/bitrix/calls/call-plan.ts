import type { Call, CallStep } from './call.entity';

/** What the worker needs to know about a company to mirror its calls. */
export interface SyncContext {
  showCard: 'never' | 'ringing' | 'answered';
  crmCreate: 'none' | 'inbound' | 'outbound' | 'all';
  crmSource: string | null;
  pipelineId: number | null;
  attachRecords: boolean;
  missedCallTask: boolean;
  defaultBitrixUserId: number | null;
  ownerBitrixUserId: number | null;
  /** sip_phone → Bitrix24 user id. */
  bindings: Map<string, number>;
}

export type CommandKind = 'dedupe' | 'addContact' | 'addDeal' | 'findContact' | 'findDeal' | 'register' | 'show' | 'hide' | 'finish' | 'lookup' | 'search' | 'task' | 'findTask';

export interface PlannedCommand {
  key: string;
  kind: CommandKind;
  method: string;
  params: Record<string, unknown>;
  /** For show/hide: the users the card goes to or leaves. */
  users?: number[];
}

export interface CallPlan {
  commands: PlannedCommand[];
  /** Steps whose outcome is unknown once the batch is sent (checked before any resend). */
  sending: CallStep[];
  /** A ringing card or a live call's registration: the priority lane. */
  live: boolean;
  /** The recording is due (uploaded outside `batch`). */
  record: boolean;
  /** Nothing more to send until the PBX reports more (or everything is mirrored: `complete`). */
  idle: boolean;
  complete: boolean;
  /** A reason the call cannot be mirrored at all. */
  impossible: string | null;
}

/** Bitrix24's UF_CRM_TASK prefixes per CRM entity type. */
const CRM_PREFIX: Record<string, string> = { CONTACT: 'C', LEAD: 'L', COMPANY: 'CO', DEAL: 'D' };

/** The marker written into what the service creates, to find it again if a create's outcome is unknown. */
export const marker = (call: Pick<Call, 'callId'>) => `[utel:${call.callId}]`;
/** ORIGINATOR_ID of the contacts and deals the service creates (their ORIGIN_ID is the PBX call id). */
export const ORIGINATOR = 'utel-pbx';

/** `CALL_START_DATE`: the start in the offset the PBX reported it in (ISO 8601, like PHP's DATE_ATOM). */
export function startDate(call: Pick<Call, 'startedAt' | 'startOffsetMin'>): string {
  const local = new Date(call.startedAt.getTime() + call.startOffsetMin * 60_000);
  const sign = call.startOffsetMin < 0 ? '-' : '+';
  const abs = Math.abs(call.startOffsetMin);
  const offset = `${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${local.toISOString().slice(0, 19)}${offset}`;
}

/** SPEC §6 finish codes. */
export function statusCode(call: Pick<Call, 'status' | 'direction'>): string {
  switch (call.status) {
    case 'answered':
      return '200';
    case 'busy':
      return '486';
    case 'failed':
      return '503';
    case 'cancelled':
      return call.direction === 'inbound' ? '304' : '603-S';
    case 'no_answer':
    case 'ringing':
      return '304';
  }
}

export function registerUser(call: Call, ctx: SyncContext): number | null {
  return call.registerUserId ?? (call.firstSipPhone ? ctx.bindings.get(call.firstSipPhone) : undefined) ?? ctx.defaultBitrixUserId ?? ctx.ownerBitrixUserId;
}

/** Who handled the call: `ended`'s operator, else the last who answered, else the registration's user. */
export function finishUser(call: Call, ctx: SyncContext): number | null {
  const bound = (sip: string | null | undefined) => (sip ? ctx.bindings.get(sip) : undefined);
  return bound(call.handledBy) ?? bound(call.answeredBy.at(-1)) ?? registerUser(call, ctx);
}

/** Who should see the card now (SPEC §6 "cards"): nobody once the call ended. */
export function desiredCards(call: Call, ctx: SyncContext): number[] {
  if (call.endedAt || call.clickToCall || ctx.showCard === 'never') return [];
  const bound = (sip: string) => ctx.bindings.get(sip);
  const holder = call.answeredBy.at(-1);
  const users = holder ? [bound(holder)] : ctx.showCard === 'ringing' ? call.rung.map(bound) : [];
  return [...new Set(users.filter((u): u is number => u !== undefined))];
}

const covers = (call: Call, ctx: SyncContext) => ctx.crmCreate === 'all' || ctx.crmCreate === call.direction;

/** Leads by Bitrix24 itself (register's CRM_CREATE) unless a pipeline is set. */
function crmCreate(call: Call, ctx: SyncContext): boolean {
  return covers(call, ctx) && ctx.pipelineId === null;
}

/** With a pipeline: an unknown number gets a contact and a deal in it, made by the service before the register. */
export function needsDeal(call: Call, ctx: SyncContext): boolean {
  return covers(call, ctx) && ctx.pipelineId !== null && !call.clickToCall;
}

export function needsTask(call: Call, ctx: SyncContext): boolean {
  return ctx.missedCallTask && call.direction === 'inbound' && (call.status === 'no_answer' || call.status === 'cancelled');
}

export function needsRecord(call: Call, ctx: SyncContext): boolean {
  return ctx.attachRecords && call.recordingUrl !== null;
}

/**
 * The Bitrix24 commands a call needs next, derived from its row alone, so a retry after any
 * failure re-plans from what is known. Steps of one call keep their order inside one batch
 * (register → show/hide → finish share the batch through `$result` references); the task and the
 * recording follow once the finish is confirmed.
 */
export function planCall(call: Call, ctx: SyncContext): CallPlan {
  const plan: CallPlan = { commands: [], sending: [], live: false, record: false, idle: false, complete: false, impossible: null };
  const id = call.id;
  const done = (step: CallStep) => call.doneSteps.includes(step);
  const inDoubt = (step: CallStep) => call.sentSteps.includes(step);
  const ended = call.endedAt !== null;
  let callRef = call.bitrixCallId;

  let entity: { type: string; id: number | string } | null = call.crmEntityType && call.crmEntityId ? { type: call.crmEntityType, id: call.crmEntityId } : null;
  if (!callRef) {
    const user = registerUser(call, ctx);
    if (user === null) {
      plan.impossible = 'No Bitrix24 user to register the call for: bind the operator, set default_bitrix_user_id, or reconnect so the owner is known.';
      return plan;
    }
    if (needsDeal(call, ctx) && !(done('contact') && done('deal'))) {
      const created = planDeal(call, ctx, user, plan);
      if (created === 'wait') return plan;
      entity = created;
    }
    if (inDoubt('register') && inDoubt('finish')) {
      // Register and finish went out together and their outcome is unknown: a second register of a
      // finished call would create a new one, so look for the first in the statistics.
      plan.commands.push({ key: `q${id}`, kind: 'lookup', method: 'voximplant.statistic.get', params: { FILTER: { EXTERNAL_CALL_ID: call.callId } } });
      return plan;
    }
    plan.live = !ended;
    const params: Record<string, unknown> = {
      USER_ID: user,
      PHONE_NUMBER: call.phoneNumber,
      TYPE: call.direction === 'inbound' ? 2 : 1,
      CALL_START_DATE: startDate(call),
      SHOW: 0,
      EXTERNAL_CALL_ID: call.callId,
      // A resend after a lost answer never creates a lead: the first register may have, and the new one finds it by the number.
      CRM_CREATE: crmCreate(call, ctx) && !inDoubt('register') ? 1 : 0,
    };
    if (call.lineNumber) params.LINE_NUMBER = call.lineNumber;
    if (entity) Object.assign(params, { CRM_ENTITY_TYPE: entity.type, CRM_ENTITY_ID: entity.id });
    if (params.CRM_CREATE === 1 && ctx.crmSource) params.CRM_SOURCE = ctx.crmSource;
    // Re-sending a register whose outcome is unknown is safe: the same EXTERNAL_CALL_ID of an
    // unfinished call gets the same CALL_ID back (the 30-minute rule, counted from CALL_START_DATE;
    // past it a stray live call may remain, but no activity: activities are made by finish).
    plan.commands.push({ key: `r${id}`, kind: 'register', method: 'telephony.externalcall.register', params });
    plan.sending.push('register');
    callRef = `$result[r${id}][CALL_ID]`;
  }

  const want = desiredCards(call, ctx);
  const show = want.filter((u) => !call.shownTo.includes(u));
  const hide = ended ? [] : call.shownTo.filter((u) => !want.includes(u));
  if (show.length) plan.commands.push({ key: `s${id}`, kind: 'show', method: 'telephony.externalcall.show', params: { CALL_ID: callRef, USER_ID: show }, users: show });
  if (hide.length) plan.commands.push({ key: `h${id}`, kind: 'hide', method: 'telephony.externalcall.hide', params: { CALL_ID: callRef, USER_ID: hide }, users: hide });
  if (show.length || hide.length) plan.live = true;

  if (!ended) {
    plan.idle = plan.commands.length === 0;
    return plan;
  }
  if (!done('finish')) {
    const user = finishUser(call, ctx);
    plan.commands.push({
      key: `f${id}`,
      kind: 'finish',
      method: 'telephony.externalcall.finish',
      params: { CALL_ID: callRef, USER_ID: user, DURATION: call.status === 'answered' ? (call.duration ?? 0) : 0, STATUS_CODE: statusCode(call) },
    });
    plan.sending.push('finish');
    return plan;
  }

  if (needsTask(call, ctx) && !done('task')) {
    if (!done('lookup')) {
      // The CRM record's responsible gets the task.
      plan.commands.push({ key: `e${id}`, kind: 'search', method: 'telephony.externalCall.searchCrmEntities', params: { PHONE_NUMBER: call.phoneNumber } });
    } else if (inDoubt('task')) {
      plan.commands.push({ key: `k${id}`, kind: 'findTask', method: 'tasks.task.list', params: { filter: { '%TITLE': marker(call) }, select: ['ID'] } });
    } else {
      const fields: Record<string, unknown> = {
        TITLE: `Missed call from ${call.phoneNumber} ${marker(call)}`,
        RESPONSIBLE_ID: call.taskResponsibleId ?? finishUser(call, ctx),
        DESCRIPTION: `Missed ${call.status === 'cancelled' ? 'call (the caller hung up)' : 'call (nobody answered)'} on ${startDate(call)}.`,
      };
      const prefix = call.crmEntityType ? CRM_PREFIX[call.crmEntityType] : undefined;
      const links = [...(prefix && call.crmEntityId ? [`${prefix}_${call.crmEntityId}`] : []), ...(call.dealId ? [`D_${call.dealId}`] : [])];
      if (links.length) fields.UF_CRM_TASK = links;
      plan.commands.push({ key: `t${id}`, kind: 'task', method: 'tasks.task.add', params: { fields } });
      plan.sending.push('task');
    }
    return plan;
  }

  if (needsRecord(call, ctx) && !done('record')) {
    plan.record = true;
    return plan;
  }
  plan.complete = true;
  return plan;
}

/**
 * The contact and deal of an unknown number (SPEC §6, `pipeline_id`), created at most once: the
 * number is first looked up in the CRM; a create whose answer was lost is looked for by its
 * ORIGINATOR_ID/ORIGIN_ID before it is sent again. Returns the entity the register binds to, or
 * 'wait' while a lookup must come first (the plan then holds the lookup).
 */
function planDeal(call: Call, ctx: SyncContext, user: number, plan: CallPlan): { type: string; id: number | string } | null | 'wait' {
  const id = call.id;
  const done = (step: CallStep) => call.doneSteps.includes(step);
  const origin = { ORIGINATOR_ID: ORIGINATOR, ORIGIN_ID: call.callId };
  if (!done('dedupe')) {
    plan.live = !call.endedAt;
    plan.commands.push({ key: `u${id}`, kind: 'dedupe', method: 'crm.duplicate.findbycomm', params: { type: 'PHONE', values: [call.phoneNumber] } });
    return 'wait';
  }
  if (call.sentSteps.includes('contact') || call.sentSteps.includes('deal')) {
    plan.commands.push({ key: `x${id}`, kind: 'findContact', method: 'crm.contact.list', params: { filter: origin, select: ['ID'] } });
    plan.commands.push({ key: `y${id}`, kind: 'findDeal', method: 'crm.deal.list', params: { filter: origin, select: ['ID'] } });
    return 'wait';
  }
  plan.live = !call.endedAt;
  const source = ctx.crmSource ?? 'CALL';
  let contact: number | string | null = call.crmEntityType === 'CONTACT' ? call.crmEntityId : null;
  if (!done('contact')) {
    plan.commands.push({
      key: `c${id}`,
      kind: 'addContact',
      method: 'crm.contact.add',
      params: { fields: { NAME: call.phoneNumber, PHONE: [{ VALUE: call.phoneNumber, VALUE_TYPE: 'WORK' }], SOURCE_ID: source, ASSIGNED_BY_ID: user, ...origin } },
    });
    plan.sending.push('contact');
    contact = `$result[c${id}]`;
  }
  if (!done('deal')) {
    const title = `${call.direction === 'inbound' ? 'Incoming' : 'Outgoing'} call ${call.phoneNumber}`;
    plan.commands.push({
      key: `d${id}`,
      kind: 'addDeal',
      method: 'crm.deal.add',
      params: { fields: { TITLE: title, CATEGORY_ID: ctx.pipelineId, CONTACT_ID: contact, SOURCE_ID: source, ASSIGNED_BY_ID: user, ...origin } },
    });
    plan.sending.push('deal');
  }
  return contact === null ? null : { type: 'CONTACT', id: contact };
}
