import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Closable, ConnectionRegistry } from '../server/connection-registry.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { serverState } from '../upstream/server-state.js';
import type { RouteStats, StatsBook } from './route-stats.js';

/** What the metrics read at scrape time: nothing here runs per request or per chunk. */
export interface MetricsSources {
  readonly book: StatsBook;
  readonly registry: ConnectionRegistry;
  readonly pools: () => Iterable<UpstreamPool>;
  readonly rejections: ReadonlyMap<string, number>;
  readonly accessLogDropped: () => number;
}

/** The view of an open tunnel the metrics need. */
export interface TunnelView extends Closable {
  readonly stats: RouteStats;
  readonly upstreamName: string;
  readonly serverUrl: string;
  bytesFromClient: number;
  bytesFromUpstream: number;
  messagesFromClient(): number;
  messagesFromUpstream(): number;
}

const STATUS_CLASSES = ['other', '1xx', '2xx', '3xx', '4xx', '5xx'] as const;

/**
 * Prometheus metrics (prom-client). Counters that the request path bumps are
 * plain fields (RouteStats, pool and server counters) turned into samples on
 * scrape; only the two histograms are observed as events happen (once per
 * tunnel). Names are documented in docs/observability.md.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly handshakeSeconds: Histogram<'site' | 'route'>;
  readonly sessionSeconds: Histogram<'site' | 'route'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    const { book, registry } = sources;
    const liveTunnels = (): TunnelView[] => [...registry.tunnels] as unknown as TunnelView[];
    new Counter({
      name: 'switchyard_requests_total', help: 'HTTP requests finished, by route and status class (WebSocket handshakes that were refused included).',
      labelNames: ['site', 'route', 'status_class'], registers,
      collect() {
        this.reset();
        for (const stats of book.routes.values()) {
          stats.requests.forEach((count, index) => {
            if (count > 0) this.inc({ site: stats.site, route: stats.route, status_class: STATUS_CLASSES[index] }, count);
          });
        }
      },
    });
    new Gauge({
      name: 'switchyard_connections_active', help: 'Open client connections.', registers,
      collect() { this.set(registry.connections.size); },
    });
    new Gauge({
      name: 'switchyard_requests_in_flight', help: 'Requests and handshakes being proxied now.', registers,
      collect() { this.set(registry.inFlight); },
    });
    new Gauge({
      name: 'switchyard_tunnels_active', help: 'Open WebSocket tunnels by route and upstream server.',
      labelNames: ['site', 'route', 'upstream', 'server'], registers,
      collect() {
        this.reset();
        for (const tunnel of liveTunnels()) this.inc({ site: tunnel.stats.site, route: tunnel.stats.route, upstream: tunnel.upstreamName, server: tunnel.serverUrl });
      },
    });
    new Counter({
      name: 'switchyard_tunnels_total', help: 'WebSocket tunnels opened, by route.', labelNames: ['site', 'route'], registers,
      collect() {
        this.reset();
        for (const stats of book.routes.values()) if (stats.tunnelsOpened > 0) this.inc({ site: stats.site, route: stats.route }, stats.tunnelsOpened);
      },
    });
    new Counter({
      name: 'switchyard_bytes_total', help: 'Body and tunnel bytes by route and direction (in: from the client, out: to the client).',
      labelNames: ['site', 'route', 'direction'], registers,
      collect() {
        this.reset();
        const totals = perRoute(book, liveTunnels(), (stats) => [stats.bytesIn + stats.endedBytesFromClient, stats.bytesOut + stats.endedBytesFromBackend],
          (tunnel) => [tunnel.bytesFromClient, tunnel.bytesFromUpstream]);
        for (const [stats, [bytesIn, bytesOut]] of totals) {
          this.inc({ site: stats.site, route: stats.route, direction: 'in' }, bytesIn);
          this.inc({ site: stats.site, route: stats.route, direction: 'out' }, bytesOut);
        }
      },
    });
    new Counter({
      name: 'switchyard_websocket_messages_total', help: 'WebSocket messages by route and direction (in: from the client, out: from the backend).',
      labelNames: ['site', 'route', 'direction'], registers,
      collect() {
        this.reset();
        const totals = perRoute(book, liveTunnels(), (stats) => [stats.endedMessagesFromClient, stats.endedMessagesFromBackend],
          (tunnel) => [tunnel.messagesFromClient(), tunnel.messagesFromUpstream()]);
        for (const [stats, [fromClient, fromBackend]] of totals) {
          if (stats.tunnelsOpened === 0) continue;
          this.inc({ site: stats.site, route: stats.route, direction: 'in' }, fromClient);
          this.inc({ site: stats.site, route: stats.route, direction: 'out' }, fromBackend);
        }
      },
    });
    new Counter({
      name: 'switchyard_websocket_close_codes_total', help: 'Close codes of ended tunnels, by the side that sent the close frame.',
      labelNames: ['site', 'route', 'side', 'code'], registers,
      collect() {
        this.reset();
        for (const stats of book.routes.values()) {
          for (const [key, count] of stats.closeCodes) {
            const [side, code] = key.split(':');
            this.inc({ site: stats.site, route: stats.route, side: side ?? '', code: code ?? '' }, count);
          }
        }
      },
    });
    new Counter({
      name: 'switchyard_tunnel_ends_total', help: 'Ended tunnels by who closed them.', labelNames: ['site', 'route', 'closed_by'], registers,
      collect() {
        this.reset();
        for (const stats of book.routes.values()) {
          for (const [closedBy, count] of stats.closedBy) this.inc({ site: stats.site, route: stats.route, closed_by: closedBy }, count);
        }
      },
    });
    this.handshakeSeconds = new Histogram({
      name: 'switchyard_websocket_handshake_seconds', help: 'From the client\'s upgrade request to the 101 sent back.',
      labelNames: ['site', 'route'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers,
    });
    this.sessionSeconds = new Histogram({
      name: 'switchyard_websocket_session_seconds', help: 'How long tunnels lasted.',
      labelNames: ['site', 'route'], buckets: [1, 10, 60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600], registers,
    });
    new Gauge({
      name: 'switchyard_upstream_active', help: 'In-flight requests plus open tunnels, by route and upstream server.',
      labelNames: ['site', 'route', 'upstream', 'server'], registers,
      collect() {
        this.reset();
        for (const stats of book.routes.values()) {
          for (const [pool, servers] of stats.active) {
            for (const [server, count] of servers) this.set({ site: stats.site, route: stats.route, upstream: pool.config.name, server: server.url }, count);
          }
        }
      },
    });
    new Gauge({
      name: 'switchyard_upstream_server_state', help: '1 for the state each upstream server is in (up, down, ejected, draining).',
      labelNames: ['upstream', 'server', 'state'], registers,
      // With workers: 1 when any worker sees the server in that state (not a count of workers).
      aggregator: 'max',
      collect() {
        this.reset();
        const now = Date.now();
        for (const pool of sources.pools()) {
          for (const server of pool.servers) this.set({ upstream: pool.config.name, server: server.url, state: serverState(server, now) }, 1);
        }
      },
    });
    new Gauge({
      name: 'switchyard_upstream_server_active', help: 'Open tunnels plus in-flight requests per upstream server.',
      labelNames: ['upstream', 'server'], registers,
      collect() {
        this.reset();
        for (const pool of sources.pools()) for (const server of pool.servers) this.set({ upstream: pool.config.name, server: server.url }, server.active);
      },
    });
    new Counter({
      name: 'switchyard_upstream_retries_total', help: 'Requests and handshakes sent to another server after a failure.', labelNames: ['upstream'], registers,
      collect() {
        this.reset();
        for (const pool of sources.pools()) this.inc({ upstream: pool.config.name }, pool.retries);
      },
    });
    new Counter({
      name: 'switchyard_upstream_ejections_total', help: 'Passive-health ejections per server.', labelNames: ['upstream', 'server'], registers,
      collect() {
        this.reset();
        for (const pool of sources.pools()) for (const server of pool.servers) this.inc({ upstream: pool.config.name, server: server.url }, server.ejectionsTotal);
      },
    });
    new Counter({
      name: 'switchyard_rejections_total', help: 'Requests the proxy answered with an error, by reason (the SY_ code).', labelNames: ['reason'], registers,
      collect() {
        this.reset();
        for (const [reason, count] of sources.rejections) this.inc({ reason }, count);
      },
    });
    new Counter({
      name: 'switchyard_access_log_dropped_total', help: 'Access log lines dropped because the log could not be written.', registers,
      collect() {
        this.reset();
        this.inc(sources.accessLogDropped());
      },
    });
  }
}

/** Per route: the counters of ended work plus those of open tunnels. */
function perRoute(
  book: StatsBook,
  tunnels: readonly TunnelView[],
  ended: (stats: RouteStats) => [number, number],
  live: (tunnel: TunnelView) => [number, number],
): Map<RouteStats, [number, number]> {
  const totals = new Map<RouteStats, [number, number]>();
  for (const stats of book.routes.values()) totals.set(stats, ended(stats));
  for (const tunnel of tunnels) {
    const sum = totals.get(tunnel.stats);
    if (!sum) continue;
    const [a, b] = live(tunnel);
    sum[0] += a;
    sum[1] += b;
  }
  return totals;
}
