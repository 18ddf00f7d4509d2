import type { Switchyard } from '../server/switchyard.js';
import type { Tunnel } from '../proxy/tunnel.js';
import { serverState, type ServerState } from '../upstream/server-state.js';
import type { RecentError } from '../observe/observer.js';

/** Counters of one route; for open tunnels the live figures are included. */
export interface RouteSnapshot {
  site: string;
  route: string;
  requests: number;
  errors: number;
  tunnelsOpen: number;
  tunnelsTotal: number;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
}

export interface ServerSnapshot {
  url: string;
  state: ServerState;
  weight: number;
  active: number;
  tunnels: number;
  ejections: number;
}

export interface UpstreamSnapshot {
  name: string;
  servers: ServerSnapshot[];
}

export interface TunnelSnapshot {
  /** pid:number, unique across workers. */
  id: string;
  client: string;
  site: string;
  route: string;
  upstream: string;
  server: string;
  protocol: 'h1' | 'h2';
  ageSeconds: number;
  bytesFromClient: number;
  bytesFromBackend: number;
  messagesFromClient: number;
  messagesFromBackend: number;
}

/** What the dashboard and /api/stats show: one process's, or every worker's summed. */
export interface Snapshot {
  time: number;
  processes: number;
  connections: number;
  inFlight: number;
  routes: RouteSnapshot[];
  upstreams: UpstreamSnapshot[];
  recentErrors: RecentError[];
}

export function takeSnapshot(proxy: Switchyard): Snapshot {
  const tunnels = openTunnels(proxy);
  const routes = new Map<string, RouteSnapshot>();
  for (const stats of proxy.observer.book.routes.values()) {
    const requests = stats.requests.reduce((sum, count) => sum + count, 0);
    routes.set(`${stats.site}\u0000${stats.route}`, {
      site: stats.site, route: stats.route, requests, errors: stats.requests[5] ?? 0,
      tunnelsOpen: 0, tunnelsTotal: stats.tunnelsOpened,
      bytesIn: stats.bytesIn + stats.endedBytesFromClient, bytesOut: stats.bytesOut + stats.endedBytesFromBackend,
      messagesIn: stats.endedMessagesFromClient, messagesOut: stats.endedMessagesFromBackend,
    });
  }
  const tunnelsByServer = new Map<string, number>();
  for (const tunnel of tunnels) {
    const route = routes.get(`${tunnel.stats.site}\u0000${tunnel.stats.route}`);
    if (route) {
      route.tunnelsOpen++;
      route.bytesIn += tunnel.bytesFromClient;
      route.bytesOut += tunnel.bytesFromUpstream;
      route.messagesIn += tunnel.fromClient.messages;
      route.messagesOut += tunnel.fromUpstream.messages;
    }
    const key = `${tunnel.upstreamName}\u0000${tunnel.server.url}`;
    tunnelsByServer.set(key, (tunnelsByServer.get(key) ?? 0) + 1);
  }
  const now = Date.now();
  return {
    time: now,
    processes: 1,
    connections: proxy.registry.connections.size,
    inFlight: proxy.registry.inFlight,
    routes: [...routes.values()],
    upstreams: [...proxy.runtime.pools.entries()].map(([name, pool]) => ({
      name,
      servers: pool.servers.map((server) => ({
        url: server.url, state: serverState(server, now), weight: server.weight, active: server.active,
        tunnels: tunnelsByServer.get(`${name}\u0000${server.url}`) ?? 0, ejections: server.ejectionsTotal,
      })),
    })),
    recentErrors: [...proxy.observer.recentErrors],
  };
}

export function openTunnels(proxy: Switchyard): Tunnel[] {
  return [...proxy.registry.tunnels] as Tunnel[];
}

export function describeTunnels(proxy: Switchyard): TunnelSnapshot[] {
  const now = performance.now();
  return openTunnels(proxy).map((tunnel) => ({
    id: `${process.pid}:${tunnel.id}`,
    client: `${tunnel.origin.request.client}:${tunnel.origin.request.client_port}`,
    site: tunnel.stats.site,
    route: tunnel.stats.route,
    upstream: tunnel.upstreamName,
    server: tunnel.server.url,
    protocol: tunnel.origin.request.protocol,
    ageSeconds: Math.round((now - tunnel.openedAt) / 100) / 10,
    bytesFromClient: tunnel.bytesFromClient,
    bytesFromBackend: tunnel.bytesFromUpstream,
    messagesFromClient: tunnel.fromClient.messages,
    messagesFromBackend: tunnel.fromUpstream.messages,
  }));
}

/** Every worker's snapshot as one: counters summed, servers matched by upstream and URL. */
export function mergeSnapshots(snapshots: readonly Snapshot[]): Snapshot {
  const routes = new Map<string, RouteSnapshot>();
  const servers = new Map<string, ServerSnapshot>();
  const upstreams = new Map<string, UpstreamSnapshot>();
  for (const snapshot of snapshots) {
    for (const route of snapshot.routes) {
      const key = `${route.site}\u0000${route.route}`;
      const known = routes.get(key);
      if (!known) {
        routes.set(key, { ...route });
        continue;
      }
      for (const field of ['requests', 'errors', 'tunnelsOpen', 'tunnelsTotal', 'bytesIn', 'bytesOut', 'messagesIn', 'messagesOut'] as const) known[field] += route[field];
    }
    for (const upstream of snapshot.upstreams) {
      let merged = upstreams.get(upstream.name);
      if (!merged) upstreams.set(upstream.name, merged = { name: upstream.name, servers: [] });
      for (const server of upstream.servers) {
        const key = `${upstream.name}\u0000${server.url}`;
        const known = servers.get(key);
        if (!known) {
          const copy = { ...server };
          servers.set(key, copy);
          merged.servers.push(copy);
          continue;
        }
        known.active += server.active;
        known.tunnels += server.tunnels;
        known.ejections += server.ejections;
        // A server any worker sees as not up is shown in that state.
        if (known.state === 'up') known.state = server.state;
      }
    }
  }
  return {
    time: Date.now(),
    processes: snapshots.length,
    connections: snapshots.reduce((sum, snapshot) => sum + snapshot.connections, 0),
    inFlight: snapshots.reduce((sum, snapshot) => sum + snapshot.inFlight, 0),
    routes: [...routes.values()],
    upstreams: [...upstreams.values()],
    recentErrors: snapshots.flatMap((snapshot) => snapshot.recentErrors).sort((a, b) => a.time.localeCompare(b.time)).slice(-50),
  };
}
