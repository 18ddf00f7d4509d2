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
  /** Totals of tunnels that ended; open ones are added at read time. */
  endedBytesFromClient = 0;
  endedBytesFromBackend = 0;
  endedMessagesFromClient = 0;
  endedMessagesFromBackend = 0;
  /** Close codes seen, by side: "client:1000" → count. */
  readonly closeCodes = new Map<string, number>();
  /** Tunnel ends by who closed. */
  readonly closedBy = new Map<string, number>();

  constructor(readonly route: string, readonly site: string) {}

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
