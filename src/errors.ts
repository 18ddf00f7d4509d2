/**
 * Every error Switchyard reports carries a stable code (documented in docs/errors.md),
 * where it came from, the HTTP status it maps to, and whether retrying on another
 * server is safe.
 */
export type ErrorSource = 'client' | 'upstream' | 'config' | 'internal';

interface ErrorSpec {
  readonly status: number;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  readonly message: string;
}

export const ERROR_CODES = {
  SY_UPSTREAM_CONNECT_REFUSED: { status: 502, source: 'upstream', retryable: true, message: 'upstream refused the connection' },
  SY_UPSTREAM_CONNECT_TIMEOUT: { status: 502, source: 'upstream', retryable: true, message: 'upstream did not accept the connection in time' },
  SY_UPSTREAM_UNREACHABLE: { status: 502, source: 'upstream', retryable: true, message: 'upstream could not be reached' },
  SY_UPSTREAM_RESET: { status: 502, source: 'upstream', retryable: false, message: 'upstream closed the connection before answering' },
  SY_UPSTREAM_TLS: { status: 502, source: 'upstream', retryable: false, message: 'TLS with the upstream failed' },
  SY_UPSTREAM_TIMEOUT: { status: 504, source: 'upstream', retryable: false, message: 'upstream did not answer in time' },
  SY_UPSTREAM_BAD_RESPONSE: { status: 502, source: 'upstream', retryable: false, message: 'upstream sent an invalid response' },
  SY_NO_SITE: { status: 421, source: 'client', retryable: false, message: 'no site is configured for this host' },
  SY_NO_ROUTE: { status: 404, source: 'client', retryable: false, message: 'no route matches this request' },
  SY_UPSTREAM_BUSY: { status: 503, source: 'upstream', retryable: false, message: 'every server is at its connection limit' },
  SY_NO_UPSTREAM: { status: 503, source: 'internal', retryable: false, message: 'no upstream server is available' },
  SY_CLIENT_BAD_REQUEST: { status: 400, source: 'client', retryable: false, message: 'malformed request' },
  SY_CLIENT_HEADERS_TOO_LARGE: { status: 431, source: 'client', retryable: false, message: 'request headers too large' },
  SY_CLIENT_HEADER_TIMEOUT: { status: 408, source: 'client', retryable: false, message: 'request headers not received in time' },
  SY_CLIENT_UNSUPPORTED_TRANSFER_ENCODING: { status: 501, source: 'client', retryable: false, message: 'unsupported transfer coding' },
  SY_CLIENT_METHOD_NOT_ALLOWED: { status: 405, source: 'client', retryable: false, message: 'method not allowed' },
  SY_CLIENT_HTTP_VERSION: { status: 505, source: 'client', retryable: false, message: 'HTTP version not supported' },
  SY_CLIENT_MISDIRECTED: { status: 400, source: 'client', retryable: false, message: 'request target names another host' },
  SY_HTTP2_WEBSOCKET_OFF: { status: 421, source: 'client', retryable: false, message: 'WebSockets over HTTP/2 are off for this route; use HTTP/1.1' },
  SY_WEBSOCKET_ORIGIN_DENIED: { status: 403, source: 'client', retryable: false, message: 'this Origin may not open WebSockets here' },
  SY_WEBSOCKET_SUBPROTOCOL_DENIED: { status: 403, source: 'client', retryable: false, message: 'none of the requested subprotocols is allowed here' },
  SY_CLIENT_IP_DENIED: { status: 403, source: 'client', retryable: false, message: 'this client address may not use this route' },
  SY_CLIENT_CONNECTION_LIMIT: { status: 429, source: 'client', retryable: false, message: 'too many connections from this address' },
  SY_CLIENT_HANDSHAKE_RATE: { status: 429, source: 'client', retryable: false, message: 'too many WebSocket handshakes from this address' },
  SY_CLIENT_BODY_TOO_LARGE: { status: 413, source: 'client', retryable: false, message: 'request body too large' },
  SY_CLIENT_TOO_MANY_HEADERS: { status: 431, source: 'client', retryable: false, message: 'too many request header fields' },
  SY_PROXY_CONNECTION_LIMIT: { status: 503, source: 'internal', retryable: false, message: 'the proxy is at its connection limit' },
  SY_ROUTE_TUNNEL_LIMIT: { status: 503, source: 'internal', retryable: false, message: 'this route is at its tunnel limit' },
  SY_PROXY_PROTOCOL_INVALID: { status: 400, source: 'client', retryable: false, message: 'malformed PROXY protocol header' },
  SY_PROXY_PROTOCOL_MISSING: { status: 400, source: 'client', retryable: false, message: 'a trusted source sent no PROXY protocol header' },
  SY_PROXY_PROTOCOL_UNTRUSTED: { status: 400, source: 'client', retryable: false, message: 'PROXY protocol header from an untrusted source' },
  SY_CLIENT_CLOSED: { status: 499, source: 'client', retryable: false, message: 'client closed the connection' },
  SY_INTERNAL: { status: 500, source: 'internal', retryable: false, message: 'internal error' },
  SY_CONFIG_INVALID: { status: 0, source: 'config', retryable: false, message: 'invalid configuration' },
  SY_USAGE: { status: 0, source: 'config', retryable: false, message: 'invalid command-line usage' },
  SY_IMPORT_INVALID: { status: 0, source: 'config', retryable: false, message: 'the file to import is not a readable config of that format' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_CODES;

export class ProxyError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly source: ErrorSource;
  readonly retryable: boolean;
  /** Seconds for a Retry-After header (503 when busy). */
  retryAfter: number | undefined;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const spec: ErrorSpec = ERROR_CODES[code];
    super(detail ? `${spec.message}: ${detail}` : spec.message, options);
    this.name = 'ProxyError';
    this.code = code;
    this.status = spec.status;
    this.source = spec.source;
    this.retryable = spec.retryable;
  }
}

/** Maps a socket/undici error met while talking to an upstream to a ProxyError. */
export function upstreamError(err: unknown, phase: 'connect' | 'response'): ProxyError {
  if (err instanceof ProxyError) return err;
  const code = (err as { code?: string } | null)?.code ?? '';
  const detail = (err as Error | null)?.message ?? String(err);
  switch (code) {
    case 'ECONNREFUSED':
      return new ProxyError('SY_UPSTREAM_CONNECT_REFUSED', detail, { cause: err });
    case 'UND_ERR_CONNECT_TIMEOUT':
    case 'ETIMEDOUT':
      return new ProxyError(phase === 'connect' ? 'SY_UPSTREAM_CONNECT_TIMEOUT' : 'SY_UPSTREAM_TIMEOUT', detail, { cause: err });
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return new ProxyError('SY_UPSTREAM_TIMEOUT', detail, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return new ProxyError('SY_UPSTREAM_UNREACHABLE', detail, { cause: err });
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'UND_ERR_INFO':
      return new ProxyError('SY_UPSTREAM_BAD_RESPONSE', detail, { cause: err });
    default:
      if (code.startsWith('ERR_TLS') || code.startsWith('CERT_') || code.includes('SELF_SIGNED') || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || code.startsWith('ERR_SSL')) {
        return new ProxyError('SY_UPSTREAM_TLS', detail, { cause: err });
      }
      if (code.startsWith('HPE_')) return new ProxyError('SY_UPSTREAM_BAD_RESPONSE', detail, { cause: err });
      return new ProxyError(phase === 'connect' ? 'SY_UPSTREAM_UNREACHABLE' : 'SY_UPSTREAM_RESET', detail, { cause: err });
  }
}
