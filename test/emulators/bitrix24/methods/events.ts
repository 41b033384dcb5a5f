import { coreError, RestError, restErrors } from '../errors';
import { method, USER_SCOPES, type EventBinding, type MethodSpec } from '../types';

const crudEvents = (entity: string): string[] => ['ADD', 'UPDATE', 'DELETE'].map((op) => `ONCRM${entity}${op}`);

/** Events an app may bind, with the scopes that make them available (null = `basic`). */
const KNOWN_EVENTS: ReadonlyMap<string, readonly string[] | null> = new Map<string, readonly string[] | null>([
  ...['ONAPPINSTALL', 'ONAPPUNINSTALL', 'ONAPPUPDATE', 'ONAPPPAYMENT', 'ONAPPTEST', 'ONOFFLINEEVENT'].map(
    (event) => [event, null] as const,
  ),
  ...[
    'ONEXTERNALCALLSTART', 'ONEXTERNALCALLBACKSTART', 'ONVOXIMPLANTCALLINIT', 'ONVOXIMPLANTCALLSTART',
    'ONVOXIMPLANTCALLEND',
  ].map((event) => [event, ['telephony']] as const),
  ...['LEAD', 'CONTACT', 'COMPANY', 'DEAL', 'ACTIVITY'].flatMap(crudEvents).map((event) => [event, ['crm']] as const),
  ...['ONUSERADD'].map((event) => [event, USER_SCOPES] as const),
  ...['ONTASKADD', 'ONTASKUPDATE', 'ONTASKDELETE'].map((event) => [event, ['task']] as const),
]);

const eventNotFound = (): RestError => new RestError(400, 'ERROR_EVENT_NOT_FOUND', 'Event not found');

function available(event: string, scopes: ReadonlySet<string>): boolean {
  if (!KNOWN_EVENTS.has(event)) return false;
  const needed = KNOWN_EVENTS.get(event);
  return !needed || needed.some((scope) => scopes.has(scope));
}

let nextBindingId = 0;

export const eventMethods: Record<string, MethodSpec> = {
  'event.bind': method(null, ({ portal, args, user, scopes }) => {
    const event = (args.str('event') ?? '').toUpperCase();
    if (!available(event, scopes)) throw eventNotFound();
    const handler = args.str('handler');
    if (!handler) throw restErrors.argument('HANDLER');
    const offline = (args.str('event_type') ?? 'online').toLowerCase() === 'offline';
    let authType = args.int('auth_type') ?? 0;
    if (!user.ADMIN) {
      // Non-admins bind only online events, only for themselves.
      if (offline || (authType !== 0 && authType !== user.ID)) throw restErrors.accessDenied();
      authType = user.ID;
    }
    const duplicate = portal.eventBindings.some(
      (b) => b.event === event && b.handler === handler && b.auth_type === authType && b.offline === Number(offline),
    );
    if (duplicate) throw coreError('Handler already binded');
    const binding: EventBinding = {
      id: ++nextBindingId, event, handler, auth_type: authType, offline: offline ? 1 : 0, boundBy: user.ID,
    };
    portal.eventBindings.push(binding);
    return { result: true };
  }),

  'event.unbind': method(null, ({ portal, args, user }) => {
    const event = (args.str('event') ?? '').toUpperCase();
    const handler = args.str('handler');
    // An explicit auth_type selects those bindings; 0 or none, the ones acting for the caller.
    const authType = args.int('auth_type') ?? 0;
    const authMatches = (b: EventBinding): boolean =>
      authType !== 0 ? b.auth_type === authType : b.auth_type === 0 || b.auth_type === user.ID;
    const offline = (args.str('event_type') ?? 'online').toLowerCase() === 'offline' ? 1 : 0;
    const doomed = portal.eventBindings.filter(
      (b) => b.event === event && (!handler || b.handler === handler) && authMatches(b) && b.offline === offline,
    );
    portal.eventBindings.splice(0, portal.eventBindings.length, ...portal.eventBindings.filter((b) => !doomed.includes(b)));
    return { result: { count: doomed.length } };
  }),

  'event.get': method(null, ({ portal, user }) => ({
    result: portal.eventBindings
      .filter((b) => user.ADMIN || b.boundBy === user.ID)
      .map((b) => ({ event: b.event, handler: b.handler, auth_type: String(b.auth_type), offline: b.offline })),
  })),

  events: method(null, ({ scopes }) => ({ result: [...KNOWN_EVENTS.keys()].filter((e) => available(e, scopes)) })),
};
