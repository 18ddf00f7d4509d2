import type { IncomingMessage } from 'node:http';
import type { ForwardContext } from '../proxy/headers.js';
import type { CompiledRoute } from '../router/compiled-route.js';
import type { RequestRecord } from './records.js';

/** When and what arrived: taken when a request starts, turned into its log record when it ends. */
export interface RequestStart {
  /** Date.now() at arrival. */
  readonly startedAt: number;
  /** performance.now() at arrival, for durations. */
  readonly t0: number;
  readonly req: IncomingMessage;
  readonly method: string;
  readonly path: string;
  readonly forward: ForwardContext;
}

export function requestStart(req: IncomingMessage, method: string, path: string, forward: ForwardContext): RequestStart {
  return { startedAt: Date.now(), t0: performance.now(), req, method, path, forward };
}

export interface RequestOutcome {
  readonly requestId: string | undefined;
  readonly route: CompiledRoute | undefined;
  readonly status: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  /** performance.now() values; undefined when that point was never reached. */
  readonly connectedAt: number | undefined;
  readonly headersAt: number | undefined;
  readonly upstream: string | undefined;
  readonly retries: number;
  readonly error: string | undefined;
}

export function requestRecord(start: RequestStart, outcome: RequestOutcome): RequestRecord {
  const { req, forward, t0 } = start;
  const headers = req.headers;
  return {
    type: 'request',
    time: new Date(start.startedAt).toISOString(),
    request_id: outcome.requestId ?? headerValue(headers['x-request-id']) ?? '-',
    client: forward.clientAddress,
    client_port: forward.clientPort,
    listener: forward.listener,
    site: outcome.route?.site,
    route: outcome.route?.name,
    method: start.method,
    host: headers.host ?? '',
    path: start.path,
    protocol: req.httpVersionMajor === 2 ? 'h2' : 'h1',
    status: outcome.status,
    bytes_in: outcome.bytesIn,
    bytes_out: outcome.bytesOut,
    duration_ms: millis(performance.now() - t0),
    upstream_connect_ms: outcome.connectedAt === undefined ? undefined : millis(outcome.connectedAt - t0),
    upstream_ttfb_ms: outcome.headersAt === undefined ? undefined : millis(outcome.headersAt - t0),
    upstream: outcome.upstream,
    retries: outcome.retries,
    error: outcome.error,
    referer: headerValue(headers.referer),
    user_agent: headerValue(headers['user-agent']),
  };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function millis(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
