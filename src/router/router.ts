import type { SwitchyardConfig } from '../config/model.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { CompiledRoute, type Captures } from './compiled-route.js';
import { HostMap } from './host-map.js';
import { PathIndex } from './path-index.js';
import type { RequestFacts } from './route-matcher.js';

export interface RouteDecision {
  readonly route: CompiledRoute;
  readonly captures: Captures;
}

/** No site for the Host (421), or a site but no route (404). */
export type RouteMiss = 'no-site' | 'no-route';

/**
 * The `route` phase: the listener's sites by Host, then the site's routes in the
 * order written; the first match wins.
 */
export class Router {
  private readonly sitesByListener: HostMap<PathIndex>[];
  /** Sites (by their route index) with a route that takes WebSockets over HTTP/2. */
  private readonly http2WebSocketSites = new Set<PathIndex>();
  readonly routes: readonly CompiledRoute[];

  constructor(config: SwitchyardConfig, pools: ReadonlyMap<string, UpstreamPool>) {
    const routes: CompiledRoute[] = [];
    const compiled = config.sites.map((site) => {
      const siteRoutes = site.routes.map((route) => new CompiledRoute(route, pools, site.name ?? site.id));
      routes.push(...siteRoutes);
      const index = new PathIndex(siteRoutes);
      if (site.routes.some((route) => route.websocketOverHttp2 !== false && route.match.upgrade !== 'none')) this.http2WebSocketSites.add(index);
      return { site, compiled: index };
    });
    this.routes = routes;
    this.sitesByListener = config.listeners.map((listener) => {
      const map = new HostMap<PathIndex>();
      for (const { site, compiled: compiledSite } of compiled) {
        if (listener.sites && !(site.name !== undefined && listener.sites.includes(site.name))) continue;
        for (const host of site.hosts) map.add(host, compiledSite);
      }
      return map;
    });
  }

  /**
   * Whether a connection for this TLS name (SNI; undefined without one) may be
   * offered WebSockets over HTTP/2: its site has a route taking them. A name with
   * no site gets the offer (its requests are refused anyway).
   */
  offersWebSocketsOverHttp2(listenerIndex: number, servername: string | undefined): boolean {
    const site = servername ? this.sitesByListener[listenerIndex]?.find(servername) : undefined;
    if (site) return this.http2WebSocketSites.has(site);
    return this.http2WebSocketSites.size > 0;
  }

  route(listenerIndex: number, host: string | undefined, facts: RequestFacts): RouteDecision | RouteMiss {
    const site = this.sitesByListener[listenerIndex]?.find(host);
    if (!site) return 'no-site';
    for (const route of site.candidates(facts.path)) {
      const captures = route.matcher.test(facts);
      if (captures !== null) return { route, captures };
    }
    return 'no-route';
  }
}
