import type { DraftRoute } from '../config-draft.js';
import type { DraftMatch } from './haproxy-condition.js';

/**
 * Whether `earlier` matches every request `later` would (so `later` can
 * never be reached): the same rules as `check`'s shadowing test, for the
 * match forms the translation writes.
 */
export function covers(earlier: DraftMatch | undefined, later: DraftMatch | undefined): boolean {
  const a = earlier ?? {};
  const b = later ?? {};
  const upgradeA = a.upgrade ?? 'any';
  const upgradeB = b.upgrade ?? 'any';
  if (upgradeA !== 'any' && upgradeA !== upgradeB) return false;
  const laterMethods = b.methods ?? (upgradeB === 'websocket' ? ['GET'] : undefined);
  if (a.methods && (!laterMethods || !laterMethods.every((method) => a.methods!.includes(method)))) return false;
  if (!conditionsCover(a.headers, b.headers, true) || !conditionsCover(a.query, b.query, false)) return false;
  if (a.prefix === undefined && a.exact === undefined && a.regex === undefined) return true;
  if (a.prefix !== undefined) {
    if (b.prefix !== undefined) return hasPathPrefix(b.prefix, a.prefix);
    if (b.exact !== undefined) return hasPathPrefix(b.exact, a.prefix);
    if (b.regex !== undefined) return a.prefix === '/';
    return false;
  }
  if (a.exact !== undefined) return b.exact === a.exact;
  if (b.regex !== undefined) return b.regex === a.regex;
  if (b.exact !== undefined) {
    try {
      return new RegExp(a.regex!).test(b.exact);
    } catch {
      return false;
    }
  }
  return false;
}

function conditionsCover(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined, caseless: boolean): boolean {
  if (!a || Object.keys(a).length === 0) return true;
  if (!b) return false;
  const key = (name: string): string => (caseless ? name.toLowerCase() : name);
  const later = new Map(Object.entries(b).map(([name, value]) => [key(name), JSON.stringify(value)]));
  return Object.entries(a).every(([name, value]) => later.get(key(name)) === JSON.stringify(value));
}

function hasPathPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  if (path.length === prefix.length || prefix.endsWith('/')) return true;
  return path.charCodeAt(prefix.length) === 0x2f;
}

/** Two routes do the same thing (same target or same answer), whatever they match. */
export function sameAction(a: DraftRoute, b: DraftRoute): boolean {
  const action = (route: DraftRoute): string => JSON.stringify([route.to, route.redirect, route.respond, route.request_headers, route.response_headers, route.allow, route.deny]);
  return action(a) === action(b);
}
