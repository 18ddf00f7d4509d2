import type { IncomingMessage } from 'node:http';

/** Headers that belong to one hop and never travel through a proxy (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  // Node answers "Expect: 100-continue" itself before the request reaches the proxy.
  'expect',
]);
/** Set by the proxy itself; a client's values are dropped. */
const PROXY_SET = new Set(['x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port']);

/** Does a comma-separated header value hold this token (any case, any spacing)? */
export function hasToken(value: string | undefined, token: string): boolean {
  if (!value) return false;
  const lower = value.toLowerCase();
  let from = 0;
  while (true) {
    const at = lower.indexOf(token, from);
    if (at < 0) return false;
    const end = at + token.length;
    if (isTokenEdge(lower, at - 1, -1) && isTokenEdge(lower, end, 1)) return true;
    from = end;
  }
}

function isTokenEdge(text: string, index: number, direction: 1 | -1): boolean {
  for (let i = index; i >= 0 && i < text.length; i += direction) {
    const code = text.charCodeAt(i);
    if (code === 0x2c) return true; // ','
    if (code !== 0x20 && code !== 0x09) return false;
  }
  return true;
}

/**
 * A WebSocket upgrade: Connection holds the token "upgrade" (Node's parser flags
 * that as req.upgrade, for any list form such as "keep-alive, Upgrade") and Upgrade
 * names "websocket", any case. RFC 6455 requires GET.
 */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  return req.method === 'GET' && hasToken(req.headers.connection, 'upgrade') && hasToken(req.headers.upgrade, 'websocket');
}

/** A request that came over HTTP/2 (Node's compatibility API gives it a stream). */
export function isHttp2(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 2 && 'stream' in req;
}

/** Names listed in Connection beyond the standard hop-by-hop ones, or undefined. */
function connectionListed(connection: string | undefined): Set<string> | undefined {
  if (!connection) return undefined;
  let listed: Set<string> | undefined;
  for (const part of connection.split(',')) {
    const name = part.trim().toLowerCase();
    if (name && !HOP_BY_HOP.has(name) && name !== 'close') (listed ??= new Set()).add(name);
  }
  return listed;
}

export interface ForwardContext {
  /** The client as logs, balancing, limits and allow/deny see it (behind trusted proxies: from X-Forwarded-For). */
  readonly clientAddress: string;
  /** The connection's own peer (or the client a PROXY header named): appended to X-Forwarded-For. */
  readonly peerAddress: string;
  readonly secure: boolean;
  /** The listener's port, as X-Forwarded-Port sends it. */
  readonly localPort: string;
  /** Strict-Transport-Security for responses on this listener, if configured. */
  readonly hsts?: string;
  readonly clientPort: number;
  /** The listener's address as the logs name it. */
  readonly listener: string;
}

/**
 * The request headers to send upstream, as a flat [name, value, ...] list in the
 * client's order and case: hop-by-hop and Connection-listed headers removed,
 * X-Forwarded-For appended to, X-Forwarded-Proto/Host/Port set, Via added, Host
 * passed through unchanged. For a WebSocket handshake, Upgrade and Connection are
 * normalised to "websocket" / "Upgrade".
 */
export function upstreamRequestHeaders(req: IncomingMessage, context: ForwardContext, webSocket: boolean): string[] {
  const raw = req.rawHeaders;
  const listed = connectionListed(req.headers.connection);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let via: string | undefined;
  let host: string | undefined;
  let cookie: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    // HTTP/2 pseudo-headers (:method, :path, :authority, :scheme) are not headers.
    if (name.charCodeAt(0) === 0x3a) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || PROXY_SET.has(lower) || listed?.has(lower)) continue;
    if (lower === 'cookie') {
      // HTTP/2 sends one cookie per field; HTTP/1.1 wants them in one line (RFC 9113 §8.2.3).
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    if (lower === 'x-forwarded-for') {
      forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
      continue;
    }
    if (lower === 'via') {
      via = via === undefined ? value : `${via}, ${value}`;
      continue;
    }
    if (lower === 'host') host = value;
    out.push(name, value);
  }
  if (cookie !== undefined) out.push('Cookie', cookie);
  // HTTP/2 carries the host in :authority only.
  if (host === undefined && req.headers.host !== undefined) {
    host = req.headers.host;
    out.push('Host', host);
  }
  const peerAddress = context.peerAddress;
  out.push(
    'X-Forwarded-For', forwardedFor === undefined ? peerAddress : `${forwardedFor}, ${peerAddress}`,
    'X-Forwarded-Proto', context.secure ? 'https' : 'http',
    'X-Forwarded-Port', context.localPort,
    'Via', `${via === undefined ? '' : `${via}, `}${req.httpVersionMajor === 2 ? '2' : req.httpVersion} switchyard`,
  );
  if (host !== undefined) out.push('X-Forwarded-Host', host);
  if (webSocket) out.push('Connection', 'Upgrade', 'Upgrade', 'websocket');
  return out;
}

/**
 * Response headers to relay to the client: hop-by-hop and Connection-listed ones
 * removed, repeated headers (Set-Cookie) kept as separate lines. Accepts the raw
 * [name, value, ...] list as undici (Buffers) or node:http (strings) gives it.
 */
export function clientResponseHeaders(raw: readonly (Buffer | string)[], keepUpgrade: boolean): string[] {
  const out: string[] = [];
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as Buffer | string).length === 10 && raw[i]!.toString().toLowerCase() === 'connection') {
      listed = connectionListed(raw[i + 1]!.toString());
    }
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString();
    const lower = name.toLowerCase();
    if (listed?.has(lower)) continue;
    if (HOP_BY_HOP.has(lower) && !(keepUpgrade && (lower === 'upgrade' || lower === 'connection'))) continue;
    out.push(name, raw[i + 1]!.toString('latin1'));
  }
  return out;
}

/** The client address as logs and X-Forwarded-For show it (IPv4-mapped IPv6 unwrapped). */
export function normaliseAddress(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
