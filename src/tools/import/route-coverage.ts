import { hasPathPrefix } from '../../router/route-matcher.js';
import type { DraftRoute } from './config-draft.js';

type DraftMatch = NonNullable<DraftRoute['match']>;

/**
 * Whether `earlier` matches every request `later` would (so `later` can
 * never be reached): the same rules as `check`'s shadowing test
 * (src/config/shadowing.ts), for the match forms the translations write and
 * the cases it decides. Header names compare without case, query names with.
 */
export function covers(earlier: DraftMatch | undefined, later: DraftMatch | undefined): boolean {
  const a = earlier ?? {};
  const b = later ?? {};
  const upgradeA = a.upgrade ?? 'any';
  const upgradeB = b.upgrade ?? 'any';
  if (upgradeA !== 'any' && upgradeA !== upgradeB) return false;
  // A WebSocket handshake is always a GET, whatever the route lists.
  const laterMethods = b.methods ?? (upgradeB === 'websocket' ? ['GET'] : undefined);
  if (a.methods && (!laterMethods || !laterMethods.every((method) => a.methods!.includes(method)))) return false;
  if (!conditionsCover(a.headers, b.headers, true) || !conditionsCover(a.query, b.query, false)) return false;
  if (a.prefix === undefined && a.exact === undefined && a.regex === undefined) return true;
  if (a.prefix !== undefined) {
    if (b.prefix !== undefined) return hasPathPrefix(b.prefix, a.prefix);
    if (b.exact !== undefined) return hasPathPrefix(b.exact, a.prefix);
    return b.regex !== undefined && a.prefix === '/';
  }
  if (a.exact !== undefined) return b.exact === a.exact;
  if (b.exact !== undefined) {
    try {
      return new RegExp(a.regex!).test(b.exact);
    } catch {
      return false;
    }
  }
  return b.regex !== undefined && b.regex === a.regex;
}

/** Every condition of the earlier match also stands, identically, in the later one. */
function conditionsCover(a: Record<string, unknown> | undefined, b: Record<string, unknown> | undefined, caseless: boolean): boolean {
  if (!a || Object.keys(a).length === 0) return true;
  if (!b) return false;
  const key = (name: string): string => (caseless ? name.toLowerCase() : name);
  const later = new Map(Object.entries(b).map(([name, value]) => [key(name), JSON.stringify(value)]));
  return Object.entries(a).every(([name, value]) => later.get(key(name)) === JSON.stringify(value));
}
