/**
 * What the access log writes and the metrics count: one record per HTTP
 * request (also refused or answered locally) and one per WebSocket tunnel when
 * it ends. Field names are the log's (docs/observability.md).
 */
export interface RequestRecord {
  type: 'request';
  /** ISO time the request arrived. */
  time: string;
  request_id: string;
  client: string;
  client_port: number;
  listener: string;
  site: string | undefined;
  route: string | undefined;
  method: string;
  host: string;
  path: string;
  protocol: 'h1' | 'h2';
  status: number;
  /** Request body bytes received from the client. */
  bytes_in: number;
  /** Response body bytes sent to the client. */
  bytes_out: number;
  duration_ms: number;
  /** Until the request was on a connection to the upstream server. */
  upstream_connect_ms: number | undefined;
  /** Until the upstream's response headers arrived. */
  upstream_ttfb_ms: number | undefined;
  upstream: string | undefined;
  retries: number;
  /** SY_... code when the proxy answered with an error or cut the response. */
  error: string | undefined;
  referer: string | undefined;
  user_agent: string | undefined;
}

/** Who ended a tunnel. */
export type ClosedBy = 'client' | 'backend' | 'idle_timeout' | 'drain' | 'shutdown' | 'server_down' | 'error' | 'admin' | 'max_age' | 'ping_timeout' | 'policy';

export interface CloseInfo {
  /** 1005 when the close frame carried no code. */
  code: number;
  reason: string | undefined;
}

export interface TunnelRecord extends Omit<RequestRecord, 'type' | 'bytes_in' | 'bytes_out'> {
  type: 'tunnel';
  /** Time from the 101 (or :status 200) to the end. */
  session_ms: number;
  bytes_from_client: number;
  bytes_from_backend: number;
  messages_from_client: number;
  messages_from_backend: number;
  /** Absent when that side sent no close frame. */
  client_close: CloseInfo | undefined;
  backend_close: CloseInfo | undefined;
  closed_by: ClosedBy;
  /** With closed_by error: the side whose connection failed. */
  error_from: 'client' | 'backend' | undefined;
  /** The first protocol violation seen in either direction (still passed through). */
  malformed: string | undefined;
  /** The side that sent it. */
  malformed_from: 'client' | 'backend' | undefined;
}
