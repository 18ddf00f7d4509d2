import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { UpstreamServer } from '../upstream/upstream-server.js';

/**
 * Plain counters of one route, bumped on the request path (a field increment,
 * nothing allocated) and read when metrics are scraped or the dashboard asks.
 * The object outlives reloads: the route of the same name gets it again.
 */
export class RouteStats {
  /** Finished requests by status class: index 1 = 1xx ... 5 = 5xx, 0 = other. */
  readonly requests = [0, 0, 0, 0, 0, 0];
  bytesIn = 0;
  bytesOut = 0;
  tunnelsOpened = 0;
  /** Tunnels open now (a route's max_tunnels). */
  tunnelsOpen = 0;
  /** Handshakes in progress on a route with max_tunnels. */
  tunnelsPending = 0;
  /** Totals of tunnels that ended; open ones are added at read time. */
  endedBytesFromClient = 0;
  endedBytesFromBackend = 0;
  endedMessagesFromClient = 0;
  endedMessagesFromBackend = 0;
  /** Close codes seen, by side: "client:1000" → count. */
  readonly closeCodes = new Map<string, number>();
  /** Tunnel ends by who closed. */
  readonly closedBy = new Map<string, number>();

  /** In-flight requests plus open tunnels of this route, by pool and server (entries leave at 0). */
  readonly active = new Map<UpstreamPool, Map<UpstreamServer, number>>();

  constructor(readonly route: string, readonly site: string) {}

  serverAcquired(pool: UpstreamPool, server: UpstreamServer): void {
    let servers = this.active.get(pool);
    if (!servers) {
      servers = new Map();
      this.active.set(pool, servers);
    }
    servers.set(server, (servers.get(server) ?? 0) + 1);
  }

  serverReleased(pool: UpstreamPool, server: UpstreamServer): void {
    const servers = this.active.get(pool);
    const count = servers?.get(server);
    if (!servers || count === undefined) return;
    if (count > 1) servers.set(server, count - 1);
    else if (servers.delete(server) && servers.size === 0) this.active.delete(pool);
  }

  countRequest(status: number): void {
    const statusClass = (status / 100) | 0;
    this.requests[statusClass >= 1 && statusClass <= 5 ? statusClass : 0]! += 1;
  }
}

/** Every route's stats by name, kept by the proxy across reloads. */
export class StatsBook {
  readonly routes = new Map<string, RouteStats>();

  forRoute(route: string, site: string): RouteStats {
    const key = `${site}\u0000${route}`;
    let stats = this.routes.get(key);
    if (!stats) {
      stats = new RouteStats(route, site);
      this.routes.set(key, stats);
    }
    return stats;
  }
}
