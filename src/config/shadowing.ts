import { anchoredLiteral, hasPathPrefix } from '../router/route-matcher.js';
import type { Condition, MatchConfig, RouteConfig, SiteConfig } from './model.js';

export interface Shadow {
  /** "sites[0]" */
  readonly site: string;
  readonly routeIndex: number;
  readonly message: string;
  /** true: provably never matches (refused); false: regexes make it undecidable (warned). */
  readonly certain: boolean;
}

type Coverage = 'covers' | 'maybe' | 'no';

/**
 * Routes that can never match because an earlier route of the same site matches
 * everything they would (the classic "ProxyPass / above the WebSocket rule").
 * Decided for prefixes, exact paths, identical conditions and regexes tested
 * against exact paths; other regex overlaps only warn.
 */
export function findShadowedRoutes(sites: readonly SiteConfig[]): Shadow[] {
  const shadows: Shadow[] = [];
  for (const site of sites) {
    site.routes.forEach((route, index) => {
      let maybe: number | undefined;
      for (let earlier = 0; earlier < index; earlier++) {
        const coverage = covers(site.routes[earlier] as RouteConfig, route);
        if (coverage === 'covers') {
          shadows.push({
            site: site.id, routeIndex: index, certain: true,
            message: `unreachable ${describe(route)}: routes[${earlier}] ${describe(site.routes[earlier] as RouteConfig)} matches every request it would, first; move it above routes[${earlier}]`,
          });
          return;
        }
        if (coverage === 'maybe') maybe ??= earlier;
      }
      if (maybe !== undefined) {
        shadows.push({
          site: site.id, routeIndex: index, certain: false,
          message: `may be unreachable ${describe(route)}: routes[${maybe}] ${describe(site.routes[maybe] as RouteConfig)} may match first (regexes make it undecidable); check the order`,
        });
      }
    });
  }
  return shadows;
}

function covers(first: RouteConfig, later: RouteConfig): Coverage {
  const a = first.match;
  const b = later.match;
  if (a.upgrade !== 'any' && a.upgrade !== b.upgrade) return 'no';
  // A WebSocket handshake is always a GET, whatever the route lists.
  const laterMethods = b.methods ?? (b.upgrade === 'websocket' ? ['GET'] : undefined);
  if (a.methods && (!laterMethods || !laterMethods.every((method) => a.methods!.includes(method)))) return 'no';
  if (!conditionsCover(a.headers, b.headers) || !conditionsCover(a.query, b.query)) return 'no';
  return pathCovers(a, b);
}

/** Every condition of the earlier route also stands, identically, in the later one. */
function conditionsCover(a: ReadonlyMap<string, Condition> | undefined, b: ReadonlyMap<string, Condition> | undefined): boolean {
  if (!a || a.size === 0) return true;
  if (!b) return false;
  for (const [name, condition] of a) {
    const other = b.get(name);
    if (!other || JSON.stringify(other) !== JSON.stringify(condition)) return false;
  }
  return true;
}

function pathCovers(a: MatchConfig, b: MatchConfig): Coverage {
  if (a.prefix === undefined && a.exact === undefined && a.regex === undefined) return 'covers';
  if (a.prefix !== undefined) {
    if (b.prefix !== undefined) return hasPathPrefix(b.prefix, a.prefix) ? 'covers' : 'no';
    if (b.exact !== undefined) return hasPathPrefix(b.exact, a.prefix) ? 'covers' : 'no';
    if (b.regex !== undefined) {
      if (a.prefix === '/') return 'covers';
      return literalPrefix(b.regex).startsWith(a.prefix) ? 'maybe' : 'no';
    }
    return 'no';
  }
  if (a.exact !== undefined) return b.exact === a.exact ? 'covers' : 'no';
  const regex = new RegExp(a.regex as string);
  if (b.exact !== undefined) return regex.test(b.exact) ? 'covers' : 'no';
  if (b.regex !== undefined) {
    if (b.regex === a.regex) return 'covers';
    const mine = literalPrefix(a.regex as string);
    const theirs = literalPrefix(b.regex);
    return mine.startsWith(theirs) || theirs.startsWith(mine) ? 'maybe' : 'no';
  }
  if (b.prefix !== undefined) return regex.test(b.prefix) ? 'maybe' : 'no';
  return 'no';
}

function literalPrefix(source: string): string {
  return anchoredLiteral(source) ?? '';
}

function describe(route: RouteConfig): string {
  const m = route.match;
  const parts: string[] = [];
  if (route.name) parts.push(`"${route.name}"`);
  if (m.prefix !== undefined) parts.push(`prefix ${m.prefix}`);
  else if (m.exact !== undefined) parts.push(`exact ${m.exact}`);
  else if (m.regex !== undefined) parts.push(`regex ${m.regex}`);
  else parts.push('every path');
  if (m.upgrade !== 'any') parts.push(`upgrade: ${m.upgrade}`);
  if (m.methods) parts.push(m.methods.join('|'));
  return `(${parts.join(', ')})`;
}
