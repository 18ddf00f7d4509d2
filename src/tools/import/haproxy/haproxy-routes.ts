import type { DraftRoute } from '../config-draft.js';

/** Two routes do the same thing (same target or same answer), whatever they match. */
export function sameAction(a: DraftRoute, b: DraftRoute): boolean {
  const action = (route: DraftRoute): string => JSON.stringify([route.to, route.redirect, route.respond, route.request_headers, route.response_headers, route.allow, route.deny]);
  return action(a) === action(b);
}
