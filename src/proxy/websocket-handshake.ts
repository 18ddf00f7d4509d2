import { createHash, randomBytes } from 'node:crypto';
import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { ProxyError, upstreamError } from '../errors.js';
import type { RouteDecision } from '../router/router.js';
import type { RequestFacts } from '../router/route-matcher.js';
import type { SelectionInput } from '../upstream/upstream-pool.js';
import type { UpstreamServer } from '../upstream/upstream-server.js';
import { normaliseAddress, type ForwardContext } from './headers.js';
import { connectWithProxyHeader, proxyHeader } from '../upstream/proxy-protocol-connect.js';
import type { ProxyContext } from './proxy-context.js';
import type { HandshakeClient } from './handshake-client.js';
import { responseHeadersFor } from './response-headers.js';
import { Tunnel } from './tunnel.js';
import { failureKind, UpstreamAttempt } from './upstream-attempt.js';
import { UpstreamRequestHeaders } from './upstream-request-headers.js';
import { requestRecord, type RequestStart } from '../observe/request-record.js';

type OwnedSocket = Socket & { _httpMessage?: unknown };

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * One WebSocket opening handshake: sends the client's handshake to a server
 * (UpstreamAttempt picks, queues and retries), relays a 101 with every header and
 * starts a Tunnel, or relays any other answer and closes both connections. The
 * client is an HTTP/1.1 connection or, for a WebSocket over HTTP/2 (RFC 8441),
 * an extended-CONNECT stream: then the proxy makes the Sec-WebSocket-Key of the
 * HTTP/1.1 handshake and checks the backend's Sec-WebSocket-Accept itself.
 */
export class WebSocketHandshake extends UpstreamAttempt {
  private request: ClientRequest | undefined;
  private connected = false;
  private connectTimer: NodeJS.Timeout | undefined;
  private readonly headers: UpstreamRequestHeaders;
  private readonly req: IncomingMessage;
  /** The key the proxy made (HTTP/2 clients send none); undefined when the client's own passes. */
  private readonly key: string | undefined;
  // What the access log gets for a handshake that does not become a tunnel.
  private status = 0;
  private holdsSlot = false;
  private errorCode: string | undefined;
  private connectedAt: number | undefined;
  private headersAt: number | undefined;

  constructor(
    private readonly context: ProxyContext,
    private readonly decision: RouteDecision,
    private readonly facts: RequestFacts,
    private readonly client: HandshakeClient,
    private readonly clientHead: Buffer,
    private readonly forward: ForwardContext,
    private readonly arrival: RequestStart,
  ) {
    super(decision.route.pool!, context.log, context.observer.statsFor(decision.route));
    this.req = facts.req;
    this.key = facts.req.headers['sec-websocket-key'] === undefined ? randomBytes(16).toString('base64') : undefined;
    this.headers = new UpstreamRequestHeaders(facts.req, forward, decision.route, true, this.key);
    context.registry.requestStarted();
    client.stream.on('close', this.onClientClose);
    client.stream.on('end', this.onClientEnd);
  }

  start(): void {
    this.pick();
  }

  protected selectionInput(tried: readonly UpstreamServer[] | undefined): SelectionInput {
    return {
      kind: 'upgrade', clientAddress: this.forward.clientAddress, cookieHeader: this.req.headers.cookie, secure: this.forward.secure,
      tried, headers: this.facts.headers, query: this.facts.query,
    };
  }

  protected begin(server: UpstreamServer): void {
    const { route, captures } = this.decision;
    this.connected = false;
    const timeouts = route.config.timeouts;
    const request = http.request({
      method: 'GET',
      path: route.upstreamTarget(this.facts, captures, server, this.req.headers.host ?? '', this.forward.secure ? 'https' : 'http'),
      headers: this.headers.forServer(server),
      setHost: false,
      createConnection: (_options, created) => this.connect(server, created as (err: Error | null, socket: Socket | null) => void),
    });
    this.request = request;
    request.setTimeout(timeouts.responseMs, this.onResponseTimeout);
    request.on('upgrade', this.onUpgrade);
    request.on('response', this.onResponse);
    request.on('error', this.onRequestError);
    request.end();
  }

  private connect(server: UpstreamServer, created: (err: Error | null, socket: Socket | null) => void): Socket | undefined {
    const version = this.pool.config.sendProxyProtocol;
    if (version !== undefined) {
      // The header goes first, before TLS: the request waits for the connection.
      const local = this.req.socket;
      const header = proxyHeader(version, { address: this.forward.clientAddress, port: this.forward.clientPort },
        { address: normaliseAddress(local.localAddress), port: local.localPort ?? 0 });
      connectWithProxyHeader(server, header, this.decision.route.config.timeouts.connectMs, (err, socket) => {
        if (socket) this.onConnected();
        created(err, socket);
      });
      return undefined;
    }
    const socket = server.secure
      ? tls.connect({ host: server.hostname, port: server.port, ...server.tlsOptions })
      : net.connect({ host: server.hostname, port: server.port, allowHalfOpen: true });
    this.connectTimer = setTimeout(this.onConnectTimeout, this.decision.route.config.timeouts.connectMs, socket);
    socket.once(server.secure ? 'secureConnect' : 'connect', this.onConnected);
    return socket;
  }

  private readonly onConnected = (): void => {
    this.connected = true;
    this.connectedAt = performance.now();
    clearTimeout(this.connectTimer);
  };

  private readonly onConnectTimeout = (socket: Socket): void => {
    const err = Object.assign(new Error(`no connection within ${this.decision.route.config.timeouts.connectMs} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' });
    socket.destroy(err);
  };

  private readonly onResponseTimeout = (): void => {
    this.request?.destroy(Object.assign(new Error('no handshake response in time'), { code: 'UND_ERR_HEADERS_TIMEOUT' }));
  };

  private readonly onUpgrade = (res: IncomingMessage, upstream: Socket, upstreamHead: Buffer): void => {
    const server = this.server;
    this.headersAt = performance.now();
    if (this.done || !server || res.statusCode !== 101) {
      upstream.destroy();
      if (!this.done) this.fail(new ProxyError('SY_UPSTREAM_BAD_RESPONSE', `upgrade answered ${res.statusCode}`));
      return;
    }
    if (this.key !== undefined && res.headers['sec-websocket-accept'] !== acceptFor(this.key)) {
      upstream.destroy();
      this.attemptFailed(new ProxyError('SY_UPSTREAM_BAD_RESPONSE', 'wrong Sec-WebSocket-Accept in the 101'), 'reset', false);
      return;
    }
    this.pool.recordSuccess(server);
    const client = this.client.stream;
    // Node leaves the ClientRequest hanging off the socket; drop it so an idle
    // tunnel keeps nothing of the handshake.
    (upstream as OwnedSocket)._httpMessage = null;
    upstream.removeAllListeners('timeout');
    upstream.setTimeout(0);
    this.client.accept(res.statusMessage ?? '', responseHeadersFor(res.rawHeaders, true, this.decision.route, server, this.clientView(), this.setCookie));
    // The tunnel takes over the server's count from here.
    this.server = undefined;
    this.status = 101;
    this.complete();
    const route = this.decision.route;
    const observer = this.context.observer;
    const stats = observer.statsFor(route);
    const { type: _request, bytes_in: _in, bytes_out: _out, ...request } = this.record();
    observer.tunnelOpened(stats, (performance.now() - this.arrival.t0) / 1000);
    const tunnel = new Tunnel(client, upstream, server, this.pool, this.context.registry, route.config.timeouts.tunnelIdleMs, {
      request, stats, upstreamName: this.pool.config.name, observer, policy: route.config.websocket,
    });
    tunnel.sendEarly(upstreamHead, this.clientHead);
  };

  private record(): ReturnType<typeof requestRecord> {
    return requestRecord(this.arrival, {
      requestId: this.headers.requestId, route: this.decision.route, status: this.status, bytesIn: 0, bytesOut: 0,
      connectedAt: this.connectedAt, headersAt: this.headersAt, upstream: this.lastServer?.url, retries: this.retries, error: this.errorCode,
    });
  }

  private clientView(): { scheme: 'http' | 'https'; host: string } {
    return { scheme: this.forward.secure ? 'https' : 'http', host: this.req.headers.host ?? '' };
  }

  /** The backend refused the upgrade: relay its answer and close both sides. */
  private readonly onResponse = (res: IncomingMessage): void => {
    const server = this.server;
    if (this.done || !server) {
      res.destroy();
      return;
    }
    if ((res.statusCode ?? 0) >= 500) this.pool.recordFailure(server, '5xx', Date.now());
    else this.pool.recordSuccess(server);
    this.request?.setTimeout(0);
    this.headersAt = performance.now();
    this.status = res.statusCode ?? 502;
    const headers = responseHeadersFor(res.rawHeaders, false, this.decision.route, server, this.clientView(), this.setCookie);
    res.on('end', () => this.request?.destroy());
    this.client.refuse(res.statusCode ?? 502, res.statusMessage ?? '', headers, res);
    this.complete();
  };

  private readonly onRequestError = (err: Error): void => {
    if (this.done || !this.server) return;
    clearTimeout(this.connectTimer);
    const error = upstreamError(err, this.connected ? 'response' : 'connect');
    // A handshake is a GET without a body: a reset before any answer may go to
    // another server as safely as a refused connection.
    const retryable = error.retryable || error.code === 'SY_UPSTREAM_RESET';
    this.attemptFailed(error, failureKind(error, this.connected), retryable);
  };

  /**
   * A client has no reason to half-close before the 101, and a reset racing the
   * handshake often arrives as a plain EOF: either way, give up at once instead of
   * holding both connections until the response timeout.
   */
  private readonly onClientEnd = (): void => {
    if (!this.done) this.client.stream.destroy();
  };

  private readonly onClientClose = (): void => {
    if (this.done) return;
    this.request?.destroy();
    this.status = 499;
    this.errorCode = 'SY_CLIENT_CLOSED';
    this.complete();
  };

  protected fail(error: ProxyError): void {
    this.status = error.status;
    this.errorCode = error.code;
    this.client.fail(error);
    this.complete();
  }

  /** The route's max_tunnels counts this handshake until it ends (a burst cannot pass the limit). */
  holdTunnelSlot(): void {
    this.holdsSlot = true;
    this.stats.tunnelsPending++;
  }

  private complete(): void {
    if (this.done) return;
    this.done = true;
    if (this.holdsSlot) {
      this.holdsSlot = false;
      this.stats.tunnelsPending--;
    }
    clearTimeout(this.connectTimer);
    this.stopWaiting();
    this.releaseServer();
    this.client.stream.off('close', this.onClientClose);
    this.client.stream.off('end', this.onClientEnd);
    this.context.registry.requestFinished();
    // A tunnel reports when it ends; a handshake that did not become one, now.
    if (this.status !== 101) this.context.observer.requestEnded(this.record(), this.context.observer.statsFor(this.decision.route));
  }
}

/** Sec-WebSocket-Accept for a key (RFC 6455 §4.2.2). */
function acceptFor(key: string): string {
  return createHash('sha1').update(key + WEBSOCKET_GUID).digest('base64');
}
