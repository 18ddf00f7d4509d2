import type { CompiledRoute } from '../router/compiled-route.js';
import type { ConnectionRegistry } from '../server/connection-registry.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { AccessLog } from './access-log.js';
import type { Logger } from '../log/logger.js';
import { Metrics } from './metrics.js';
import type { RequestRecord, TunnelRecord } from './records.js';
import { StatsBook, type RouteStats } from './route-stats.js';

export interface RecentError {
  readonly time: string;
  readonly code: string;
  readonly status: number;
  readonly route: string | undefined;
  readonly upstream: string | undefined;
  readonly path: string;
}

const RECENT_ERRORS = 50;

/**
 * Where finished requests and tunnels are reported: the access log, the
 * per-route counters that metrics and the admin API read, and the list of
 * recent errors the dashboard shows. One per proxy; it outlives reloads.
 */
export class Observer {
  readonly book = new StatsBook();
  readonly rejections = new Map<string, number>();
  readonly recentErrors: RecentError[] = [];
  readonly metrics: Metrics;

  constructor(
    registry: ConnectionRegistry,
    pools: () => Iterable<UpstreamPool>,
    readonly accessLog: AccessLog | undefined,
    private readonly log: Logger,
  ) {
    this.metrics = new Metrics({
      book: this.book, registry, pools, rejections: this.rejections, accessLogDropped: () => accessLog?.dropped ?? 0,
    });
  }

  /** The route's counters (looked up once per compiled route). */
  statsFor(route: CompiledRoute): RouteStats {
    return route.stats ??= this.book.forRoute(route.name, route.site);
  }

  /** Requests no route took (no site, no route, refused before routing): route and site "-". */
  private readonly unrouted = this.book.forRoute('-', '-');

  requestEnded(record: RequestRecord, routeStats: RouteStats | undefined): void {
    const stats = routeStats ?? this.unrouted;
    stats.countRequest(record.status);
    stats.bytesIn += record.bytes_in;
    stats.bytesOut += record.bytes_out;
    if (record.error !== undefined) this.errorSeen(record);
    this.accessLog?.write(record);
  }

  /** A connection refused before any request (PROXY protocol): a rejection by its code. */
  connectionRefused(code: string): void {
    increment(this.rejections, code);
  }

  tunnelOpened(stats: RouteStats, handshakeSeconds: number): void {
    stats.tunnelsOpened++;
    stats.tunnelsOpen++;
    stats.countRequest(101);
    this.metrics.handshakeSeconds.observe({ site: stats.site, route: stats.route }, handshakeSeconds);
  }

  tunnelEnded(record: TunnelRecord, stats: RouteStats): void {
    stats.tunnelsOpen--;
    stats.endedBytesFromClient += record.bytes_from_client;
    stats.endedBytesFromBackend += record.bytes_from_backend;
    stats.endedMessagesFromClient += record.messages_from_client;
    stats.endedMessagesFromBackend += record.messages_from_backend;
    if (record.client_close) increment(stats.closeCodes, `client:${closeCodeLabel(record.client_close.code)}`);
    if (record.backend_close) increment(stats.closeCodes, `backend:${closeCodeLabel(record.backend_close.code)}`);
    increment(stats.closedBy, record.closed_by);
    this.metrics.sessionSeconds.observe({ site: stats.site, route: stats.route }, record.session_ms / 1000);
    if (record.malformed !== undefined) {
      // The bytes went through unchanged; the operator should still hear of it.
      this.log.warn({ request_id: record.request_id, route: record.route, upstream: record.upstream, malformed: record.malformed, malformed_from: record.malformed_from }, 'a tunnel carried a malformed WebSocket stream');
    }
    if (record.closed_by === 'error') this.errorSeen({ ...record, status: 101, error: record.error ?? 'SY_TUNNEL_ERROR' });
    this.accessLog?.write(record);
  }

  private errorSeen(record: Pick<RequestRecord, 'time' | 'error' | 'status' | 'route' | 'upstream' | 'path'>): void {
    const code = record.error ?? 'SY_INTERNAL';
    increment(this.rejections, code);
    this.recentErrors.push({ time: record.time, code, status: record.status, route: record.route, upstream: record.upstream, path: record.path });
    if (this.recentErrors.length > RECENT_ERRORS) this.recentErrors.shift();
  }
}

/**
 * The close code as a metric label. Peers choose codes freely, so only the
 * protocol's own range keeps its number (RFC 6455 §7.4); the registered and
 * private ranges collapse to one label each, anything else is "invalid".
 */
export function closeCodeLabel(code: number | undefined): string {
  if (code === undefined) return 'none';
  if (code >= 1000 && code <= 1015) return String(code);
  if (code >= 3000 && code <= 3999) return '3xxx';
  if (code >= 4000 && code <= 4999) return '4xxx';
  return 'invalid';
}

function increment(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
