/** The Bitrix24 events this service binds, and the public route that receives each. */
export const BOUND_EVENTS = {
  ONEXTERNALCALLSTART: '/integration/bitrix/originate',
  ONEXTERNALCALLBACKSTART: '/integration/bitrix/events',
  ONAPPUNINSTALL: '/integration/bitrix/events',
} as const;

export type BoundEvent = keyof typeof BOUND_EVENTS;

/** The handler URL for an event: the route plus the integration's secret key (SPEC §7). */
export function handlerUrl(publicUrl: string, event: BoundEvent, key: string): string {
  return `${publicUrl}${BOUND_EVENTS[event]}?key=${encodeURIComponent(key)}`;
}

/** True for a handler of ours (any key), so stale bindings from an earlier key can be removed. */
export function isOurHandler(publicUrl: string, handler: string): boolean {
  return Object.values(BOUND_EVENTS).some((path) => handler.startsWith(`${publicUrl}${path}?key=`));
}
