import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import { ProxyError, type ErrorCode } from '../errors.js';
import type { LimitConfig } from '../config/model.js';
import { connectionRefusal, type ListenerCount } from '../server/client-limits.js';
import { proxySourceOf } from '../server/proxy-protocol-listener.js';
import { clientBehindProxies } from './client-address.js';
import { normaliseHost } from '../router/host-map.js';
import { requestFacts } from '../router/request-facts.js';
import type { RequestFacts } from '../router/route-matcher.js';
import type { RouteDecision } from '../router/router.js';
import type { CompiledRoute } from '../router/compiled-route.js';
import { requestRecord, requestStart, type RequestStart } from '../observe/request-record.js';
import { isHttp2, isWebSocketUpgrade, normaliseAddress, type ForwardContext } from './headers.js';
import { HttpExchange } from './http-exchange.js';
import type { ProxyContext } from './proxy-context.js';
import { errorHeaders, respondWithError, writeRawAnswer, writeRawResponse } from './raw-response.js';
import { Http1HandshakeClient, Http2HandshakeClient } from './handshake-client.js';
import { WebSocketHandshake } from './websocket-handshake.js';
import { checkWebSocketHandshake } from './websocket-policy.js';

/** Where a request goes next: refused with an error, answered locally, or proxied. */
type LocalAnswer = { readonly status: number; readonly headers: string[]; readonly body: string; readonly answeredBy?: CompiledRoute };
type Disposition = ProxyError | LocalAnswer | RouteDecision;

/**
 * The request lifecycle in one place (see docs/lifecycle.md): admit the request,
 * route it, answer it locally (redirect, respond) or hand it to the HTTP exchange
 * or the WebSocket handshake, which select an upstream, forward, and stream or
 * tunnel.
 */
export class ProxyPipeline {
  /** Open connections of this listener (its max_connections). */
  private readonly listenerCount: ListenerCount;

  constructor(private readonly context: ProxyContext, private readonly secure: boolean, private readonly listenerIndex: number) {
    this.listenerCount = { open: 0, max: context.runtime.config.listeners[listenerIndex]?.maxConnections };
  }

  handleRequest(req: IncomingMessage, res: ServerResponse): void {
    // HTTP/2 names the host in :authority; the rest of the pipeline reads Host.
    if (isHttp2(req)) {
      req.headers.host ??= req.headers[':authority'] as string | undefined;
      this.context.registry.counts.http2Requests++;
    } else {
      this.context.registry.counts.http1Requests++;
    }
    const facts = requestFacts(req, false);
    const forward = this.clientForward(req, this.forwardContext(req.socket));
    const arrival = requestStart(req, facts.method, req.url ?? facts.path, forward);
    const next = this.dispose(req, facts, forward);
    if (next instanceof ProxyError) {
      respondWithError(res, next);
      this.answeredLocally(arrival, next.status, undefined, next);
    } else if ('route' in next) {
      new HttpExchange(this.context, next, facts, res, forward, arrival).start();
    } else {
      res.writeHead(next.status, next.headers);
      res.end(next.body);
      this.answeredLocally(arrival, next.status, next.answeredBy, undefined, Buffer.byteLength(next.body));
    }
  }

  /** The access log line and counters of a request the proxy answered itself. */
  private answeredLocally(arrival: RequestStart, status: number, route: CompiledRoute | undefined, error: ProxyError | undefined, bytesOut = 0): void {
    const observer = this.context.observer;
    observer.requestEnded(requestRecord(arrival, {
      requestId: undefined, route, status, bytesIn: 0, bytesOut, connectedAt: undefined, headersAt: undefined,
      upstream: undefined, retries: 0, error: error?.code,
    }), route && observer.statsFor(route));
  }

  /**
   * Node hands over every request whose Connection lists "upgrade". Only a
   * WebSocket upgrade is tunneled; any other protocol (h2c, ...) is forwarded as
   * plain HTTP without its upgrade headers, through the regular request path.
   */
  handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, replay: (req: IncomingMessage, socket: Socket, head: Buffer) => void): void {
    socket.on('error', ignoreSocketError);
    if (!isWebSocketUpgrade(req)) {
      replay(req, socket, head);
      return;
    }
    this.context.registry.counts.http1WebSockets++;
    const facts = requestFacts(req, true);
    const forward = this.clientForward(req, this.forwardContext(socket));
    const arrival = requestStart(req, facts.method, req.url ?? facts.path, forward);
    let next = this.dispose(req, facts, forward);
    const route = 'route' in next ? next.route : undefined;
    if (route) next = this.admitWebSocket(route, req, forward) ?? next;
    if (next instanceof ProxyError) {
      writeRawResponse(socket, next.status, `${next.status} ${next.message}`, errorHeaders(next));
      this.answeredLocally(arrival, next.status, route, next);
    } else if ('route' in next) {
      this.startHandshake(new WebSocketHandshake(this.context, next, facts, new Http1HandshakeClient(socket), head, forward, arrival), next.route);
    } else {
      writeRawAnswer(socket, next.status, next.headers, next.body);
      this.answeredLocally(arrival, next.status, next.answeredBy, undefined, Buffer.byteLength(next.body));
    }
  }

  /**
   * A WebSocket over HTTP/2 (RFC 8441): an extended CONNECT with
   * :protocol websocket. It is routed like an HTTP/1.1 upgrade (a GET that
   * upgrades), bridged to an ordinary HTTP/1.1 handshake with the backend, and
   * the stream then carries the frames.
   */
  handleExtendedConnect(req: IncomingMessage, res: Http2ServerResponse): void {
    req.headers.host ??= req.headers[':authority'] as string | undefined;
    this.context.registry.counts.http2WebSockets++;
    const facts = { ...requestFacts(req, true), method: 'GET' };
    const forward = this.clientForward(req, this.forwardContext(req.socket));
    const arrival = requestStart(req, 'CONNECT', req.url ?? facts.path, forward);
    let next = this.dispose(req, facts, forward);
    const client = new Http2HandshakeClient(res);
    client.stream.on('error', ignoreSocketError);
    const route = 'route' in next ? next.route : undefined;
    if (route && route.config.websocketOverHttp2 === false) next = new ProxyError('SY_HTTP2_WEBSOCKET_OFF', route.label);
    else if (route) next = this.admitWebSocket(route, req, forward) ?? next;
    if (next instanceof ProxyError) {
      client.fail(next);
      this.answeredLocally(arrival, next.status, route, next);
    } else if ('route' in next) {
      this.startHandshake(new WebSocketHandshake(this.context, next, facts, client, EMPTY, forward, arrival), next.route);
    } else {
      res.writeHead(next.status, Object.fromEntries(pairs(next.headers)));
      res.end(next.body);
      this.answeredLocally(arrival, next.status, next.answeredBy, undefined, Buffer.byteLength(next.body));
    }
  }

  /**
   * Whether a new HTTP/2 connection is offered RFC 8441 in its first SETTINGS:
   * the listener allows it and the site of the TLS name has a route taking it.
   */
  offersWebSocketsOverHttp2(servername: string | undefined): boolean {
    const runtime = this.context.runtime;
    if (runtime.config.listeners[this.listenerIndex]?.websocketOverHttp2 === false) return false;
    return runtime.router.offersWebSocketsOverHttp2(this.listenerIndex, servername);
  }

  /** The `admit` and `route` phases, and local answers (redirect, respond). */
  private dispose(req: IncomingMessage, facts: RequestFacts, forward: ForwardContext): Disposition {
    const refusal = admit(req, this.context.runtime.config.limits);
    if (refusal) return refusal;
    const listener = this.context.runtime.config.listeners[this.listenerIndex];
    if (listener?.redirectToHttpsPort !== undefined) return redirectToHttps(req, facts, listener.redirectToHttpsPort);
    const decision = this.context.runtime.router.route(this.listenerIndex, req.headers.host, facts);
    if (decision === 'no-site') return new ProxyError('SY_NO_SITE', req.headers.host ?? '(no Host)');
    if (decision === 'no-route') return new ProxyError('SY_NO_ROUTE', `${facts.method} ${facts.path}`);
    if (!decision.route.admitsClient(forward.clientAddress)) return new ProxyError('SY_CLIENT_IP_DENIED', forward.clientAddress);
    const action = decision.route.config.action;
    if (action.kind === 'proxy') return decision;
    if (action.kind === 'respond') {
      const headers = ['Content-Type', action.contentType, 'Content-Length', String(Buffer.byteLength(action.body))];
      if (listener?.hsts !== undefined) headers.push('Strict-Transport-Security', listener.hsts);
      return { status: action.status, headers, body: action.body, answeredBy: decision.route };
    }
    const template = decision.route.redirectLocation!;
    let location = template.expand({
      captures: decision.captures, path: facts.path, query: facts.query, host: req.headers.host ?? '', scheme: this.secure ? 'https' : 'http',
    });
    // Like a rewrite, a redirect keeps the query unless the template places it.
    if (!location.includes('?')) location += facts.query;
    // A path of "//evil.example" (or "/\evil.example": browsers read \ as /) must
    // not turn "$path..." into a link to another host.
    if (LEADING_SLASHES.test(location) && !LEADING_SLASHES.test(template.source)) location = location.replace(LEADING_SLASHES, '/');
    return { ...redirect(action.status, location, listener?.hsts), answeredBy: decision.route };
  }

  /**
   * Behind trusted proxies (`trusted_proxies`) the client is read from
   * X-Forwarded-For; otherwise the connection's context stands as it is.
   */
  private clientForward(req: IncomingMessage, connection: ForwardContext): ForwardContext {
    const trusted = this.context.runtime.trustedProxies;
    if (!trusted) return connection;
    const header: string | string[] | undefined = req.headers['x-forwarded-for'];
    const client = clientBehindProxies(connection.peerAddress, Array.isArray(header) ? header.join(', ') : header, trusted);
    return client === connection.clientAddress ? connection : { ...connection, clientAddress: client };
  }

  /** Limits and policies of a WebSocket handshake on this route, or undefined when it may go on. */
  private admitWebSocket(route: CompiledRoute, req: IncomingMessage, forward: ForwardContext): ProxyError | undefined {
    const limits = this.context.runtime.config.limits;
    if (!this.context.limits.handshakeAllowed(forward.clientAddress, limits.handshakesPerIpPerSecond)) {
      const error = new ProxyError('SY_CLIENT_HANDSHAKE_RATE', forward.clientAddress);
      error.retryAfter = 1;
      return error;
    }
    const maxTunnels = route.config.maxTunnels;
    if (maxTunnels !== undefined) {
      const stats = this.context.observer.statsFor(route);
      if (stats.tunnelsOpen + stats.tunnelsPending >= maxTunnels) return new ProxyError('SY_ROUTE_TUNNEL_LIMIT', `${route.label}: ${maxTunnels}`);
    }
    return checkWebSocketHandshake(route.config.websocket, req);
  }

  private startHandshake(handshake: WebSocketHandshake, route: CompiledRoute): void {
    if (route.config.maxTunnels !== undefined) handshake.holdTunnelSlot();
    handshake.start();
  }

  /** A new client connection (after TLS, after its PROXY header): counted against the limits. */
  connectionOpened(socket: Socket): void {
    // The connection's context is made here once and kept for its requests.
    this.context.limits.connectionOpened(socket, this.forwardContext(socket).peerAddress, this.listenerCount, this.context.runtime.config.limits);
  }

  /** A connection refused before HTTP (PROXY protocol): counted as a rejection. */
  connectionRefused(code: ErrorCode): void {
    this.context.observer.connectionRefused(code);
  }

  /** Computed once per connection: keep-alive requests reuse it. */
  private forwardContext(socket: Socket): ForwardContext {
    const known = (socket as ForwardingSocket)[kForward];
    if (known) return known;
    const hsts = this.context.runtime.config.listeners[this.listenerIndex]?.hsts;
    const listener = this.context.runtime.config.listeners[this.listenerIndex];
    const proxied = proxySourceOf(socket);
    const peer = proxied?.address ?? normaliseAddress(socket.remoteAddress);
    const context = {
      clientAddress: peer, peerAddress: peer, clientPort: proxied?.port ?? socket.remotePort ?? 0, secure: this.secure, localPort: String(socket.localPort ?? 0),
      listener: listener ? `${listener.host.includes(':') ? `[${listener.host}]` : listener.host}:${socket.localPort ?? listener.port}` : String(this.listenerIndex),
      ...(hsts !== undefined ? { hsts } : {}),
    };
    (socket as ForwardingSocket)[kForward] = context;
    return context;
  }
}

const LEADING_SLASHES = /^[/\\]{2,}/;
const EMPTY = Buffer.alloc(0);

function pairs(flat: readonly string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([(flat[i] as string).toLowerCase(), flat[i + 1] as string]);
  return out;
}

const kForward = Symbol('switchyard.forward');
type ForwardingSocket = Socket & { [kForward]?: ForwardContext };

function redirect(status: number, location: string, hsts: string | undefined): LocalAnswer {
  const body = `Redirecting to ${location}\n`;
  const headers = ['Location', location, 'Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(Buffer.byteLength(body))];
  if (hsts !== undefined) headers.push('Strict-Transport-Security', hsts);
  return { status, headers, body };
}

/** A plain listener set to redirect_to_https: the same URL over https, 308 (methods and bodies kept). */
function redirectToHttps(req: IncomingMessage, facts: RequestFacts, port: number): Disposition {
  const host = req.headers.host;
  if (!host) return new ProxyError('SY_CLIENT_BAD_REQUEST', 'no Host to redirect to');
  const name = normaliseHost(host);
  return redirect(308, `https://${name}${port === 443 ? '' : `:${port}`}${facts.path}${facts.query}`, undefined);
}

/** Refuses what must never reach a backend; undefined when the request may pass. */
function admit(req: IncomingMessage, limits: LimitConfig): ProxyError | undefined {
  const refusal = connectionRefusal(req.socket);
  if (refusal) return new ProxyError(refusal);
  if (req.rawHeaders.length > limits.maxHeaderCount * 2) return new ProxyError('SY_CLIENT_TOO_MANY_HEADERS', `more than ${limits.maxHeaderCount}`);
  const declared = req.headers['content-length'];
  if (limits.maxBodyBytes !== undefined && declared !== undefined && Number(declared) > limits.maxBodyBytes) {
    return new ProxyError('SY_CLIENT_BODY_TOO_LARGE', `${declared} bytes, the limit is ${limits.maxBodyBytes}`);
  }
  // Node's parser also takes "GET /" (HTTP/0.9) and "HTTP/2.0" request lines;
  // HTTP/2 itself arrives framed, through the HTTP/2 server.
  if (req.httpVersionMajor !== 1 && !isHttp2(req)) return new ProxyError('SY_CLIENT_HTTP_VERSION', `HTTP/${req.httpVersion}`);
  const target = req.url ?? '';
  if (target.charCodeAt(0) !== 0x2f) {
    // Absolute form (GET http://host/path): allowed only when it names the Host it
    // carries, since the path alone is forwarded to the chosen server.
    const authority = absoluteFormAuthority(target);
    if (authority === undefined) return new ProxyError('SY_CLIENT_BAD_REQUEST', 'request target must be a path');
    if (authority.toLowerCase() !== (req.headers.host ?? '').toLowerCase()) {
      return new ProxyError('SY_CLIENT_MISDIRECTED', `target names ${authority}, Host is ${req.headers.host ?? '(none)'}`);
    }
  }
  return undefined;
}

function absoluteFormAuthority(target: string): string | undefined {
  const match = /^https?:\/\/([^/?#]*)/i.exec(target);
  return match ? match[1] : undefined;
}

function ignoreSocketError(): void {
  // Resets from clients are ordinary traffic; 'close' does the cleanup.
}
