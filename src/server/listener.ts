import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { ListenerConfig, SwitchyardConfig, TlsFiles } from '../config/model.js';
import { ProxyError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ProxyPipeline } from '../proxy/pipeline.js';
import { writeRawResponse } from '../proxy/raw-response.js';
import type { ConnectionRegistry } from './connection-registry.js';
import { hasToken } from '../proxy/headers.js';
import { ListenerCertificates } from '../tls/certificates.js';
import { requestHeadWithoutUpgrade } from './replay.js';
import { acceptProxyProtocol } from './proxy-protocol-listener.js';
import { AddressList } from '../net/address-list.js';

/**
 * Plain listeners speak HTTP/1.1 (and, with http2, HTTP/2 by prior knowledge);
 * TLS listeners HTTP/2 and HTTP/1.1, chosen by ALPN (HTTP/1.1 only with http2 off).
 */
export type ListenerServer = http.Server | https.Server | http2.Http2SecureServer | http2.Http2Server;

const kCertificates = Symbol('switchyard.certificates');
type TlsListenerServer = (http2.Http2SecureServer | https.Server) & { [kCertificates]?: ListenerCertificates };

/**
 * New certificate files for a TLS listener (reload): new handshakes use them,
 * open connections keep theirs. Returns true when something changed.
 */
export function updateCertificates(server: ListenerServer, tls: TlsFiles): boolean {
  const tlsServer = server as TlsListenerServer;
  const certificates = tlsServer[kCertificates];
  if (!certificates) return false;
  return certificates.update(tls, (options) => tlsServer.setSecureContext(options));
}

/**
 * Idle HTTP/1.1 keep-alive connections close (a TLS HTTP/2 server with
 * allowHTTP1 has this too, its types do not say so; a plain HTTP/2 server, h2c,
 * has not: its idle connections are cut at the drain deadline).
 */
export function closeIdleConnections(server: ListenerServer): void {
  const http1 = server as Partial<Pick<http.Server, 'closeIdleConnections'>>;
  if (typeof http1.closeIdleConnections === 'function') http1.closeIdleConnections.call(server);
}

/** Creates the HTTP(S) server of one listener and wires it to the pipeline. */
export function createListenerServer(
  listener: ListenerConfig,
  config: SwitchyardConfig,
  pipeline: ProxyPipeline,
  registry: ConnectionRegistry,
  log: Logger,
): ListenerServer {
  const options: http.ServerOptions = {
    maxHeaderSize: config.limits.maxHeaderBytes,
    headersTimeout: config.timeouts.headerMs,
    // A whole-request deadline would cut long uploads and streams; the header
    // timeout and the upstream's own timeouts bound what matters.
    requestTimeout: 0,
    keepAliveTimeout: config.timeouts.keepAliveMs,
    // How often Node checks the header timeout; the default (30 s) would let a
    // slow client hold a connection up to twice the configured timeout.
    connectionsCheckingInterval: Math.min(1_000, config.timeouts.headerMs),
    noDelay: true,
    requireHostHeader: true,
  };
  let server: ListenerServer;
  const certificates = listener.tls && new ListenerCertificates(listener.tls);
  if (listener.http2 !== false && (certificates || listener.http2 === true)) {
    const http2Options = {
      // HTTP/1.1 clients (and every WebSocket over HTTP/1.1) share the port.
      allowHTTP1: true,
      settings: { maxHeaderListSize: config.limits.maxHeaderBytes, enableConnectProtocol: false },
    };
    server = certificates ? http2.createSecureServer({ ...certificates.serverOptions(), ...http2Options }) : http2.createServer(http2Options);
    // The HTTP/1.1 side of an HTTP/2 server reads these from the server object.
    Object.assign(server, { ...options, timeout: 0 });
    offerConnectProtocolPerConnection(server, certificates ? 'secureConnection' : 'connection', pipeline, config.timeouts.headerMs);
    server.on('session', (session: http2.ServerHttp2Session) => {
      registry.addSession(session);
      // An idle session closes like an idle keep-alive connection; so does one
      // left open after a protocol error (Node sends GOAWAY but keeps the socket).
      // Quiet WebSockets on it are not idleness: the tunnel's own timer rules them.
      session.setTimeout(config.timeouts.keepAliveMs, () => {
        if (!registry.hasTunnelOn(session)) session.close();
      });
    });
  } else if (certificates) {
    server = https.createServer({ ...certificates.serverOptions(), ...options });
  } else {
    server = http.createServer(options);
  }
  if (certificates) (server as TlsListenerServer)[kCertificates] = certificates;
  const connectionEvent = listener.tls ? 'secureConnection' : 'connection';

  server.on(connectionEvent, (socket: Socket) => {
    // A replayed upgrade re-announces its socket: count it once.
    if (registry.connections.has(socket)) return;
    registry.addConnection(socket);
    pipeline.connectionOpened(socket);
  });
  // Header count is a limit of ours (431); Node's own would drop extra headers silently.
  (server as { maxHeadersCount?: number | null }).maxHeadersCount = 0;
  // HTTP/2 requests arrive through Node's compatibility API, whose request and
  // response objects offer what the pipeline uses of IncomingMessage and
  // ServerResponse (headers, rawHeaders, url, streams, writeHead, events).
  server.on('request', (req: IncomingMessage, res: ServerResponse) => pipeline.handleRequest(req, res));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    pipeline.handleUpgrade(req, socket, head, (plainReq, plainSocket, rest) => {
      // Re-parse the request without its upgrade headers as an ordinary request,
      // so it takes the regular HTTP path (keep-alive included).
      plainSocket.unshift(Buffer.concat([requestHeadWithoutUpgrade(plainReq), rest]));
      server.emit(connectionEvent, plainSocket);
    });
  });
  server.on('connect', (req: IncomingMessage, socketOrResponse: Socket | http2.Http2ServerResponse) => {
    const error = new ProxyError('SY_CLIENT_METHOD_NOT_ALLOWED', 'CONNECT is not supported');
    if (socketOrResponse instanceof http2.Http2ServerResponse) {
      if (hasToken(req.headers[':protocol'] as string | undefined, 'websocket')) {
        pipeline.handleExtendedConnect(req, socketOrResponse);
        return;
      }
      // HTTP/2 CONNECT (the compatibility API hands a response, not a socket).
      socketOrResponse.writeHead(error.status, { 'x-switchyard-error': error.code });
      socketOrResponse.end();
      return;
    }
    socketOrResponse.on('error', ignoreError);
    writeRawResponse(socketOrResponse, error.status, `${error.status} ${error.message}`, ['Allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS']);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    socket.on('error', ignoreError);
    const code = clientErrorCode(err);
    if (!code || (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    const error = new ProxyError(code, err.code);
    log.debug({ code, parser: err.code, reason: (err as { reason?: string }).reason }, 'rejected a malformed request');
    pipeline.connectionRefused(code);
    writeRawResponse(socket, error.status, `${error.status} ${error.message}`, ['X-Switchyard-Error', code]);
  });
  server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
  if (listener.proxyProtocolFrom) {
    acceptProxyProtocol(server, new AddressList(listener.proxyProtocolFrom), config.timeouts.headerMs, log, (code) => pipeline.connectionRefused(code as ErrorCode));
  }
  return server;
}

/**
 * RFC 8441 is offered in a connection's first SETTINGS, so the decision is made
 * per connection (the TLS name picks the site) just before Node creates the
 * HTTP/2 session: Node's own connection listener runs after ours, with the
 * server's settings updated for this connection. On a plain listener the
 * first bytes tell HTTP/2's connection preface from an HTTP/1.1 request.
 */
function offerConnectProtocolPerConnection(
  server: http2.Http2SecureServer | http2.Http2Server,
  event: 'secureConnection' | 'connection',
  pipeline: ProxyPipeline,
  headerMs: number,
): void {
  const nodeListener = server.listeners(event)[0] as ((this: typeof server, socket: Socket) => void) | undefined;
  if (!nodeListener) throw new Error(`HTTP/2 server has no ${event} listener`);
  server.removeListener(event, nodeListener);
  const startSession = (socket: Socket): void => {
    server.updateSettings({ enableConnectProtocol: pipeline.offersWebSocketsOverHttp2((socket as Socket & { servername?: string | false }).servername || undefined) });
    nodeListener.call(server, socket);
  };
  if (event === 'secureConnection') {
    server.on(event, startSession);
    return;
  }
  server.on(event, (socket: Socket) => sniffPreface(socket, headerMs, (isHttp2) => {
    // Node's HTTP/2 server hands a connection to its HTTP/1.1 side when ALPN chose
    // no protocol; on a plain socket that is how an HTTP/1.1 client is marked.
    if (!isHttp2) (socket as Socket & { alpnProtocol?: string | false }).alpnProtocol = false;
    startSession(socket);
    // Node's HTTP/1.1 parser reads the connection directly from here on; the
    // bytes read while sniffing wait in the stream and reach it as 'data' once
    // the stream flows again (before any later read: resume flushes first).
    if (!isHttp2) socket.resume();
  }));
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/**
 * The whole preface is awaited (under the header timeout), so a client that
 * stops inside it is closed like one that stops inside its request headers;
 * the first differing byte decides HTTP/1.1 at once.
 */
const PREFACE_DECIDES_AFTER = PREFACE.length;

/** Reads until the first bytes say HTTP/2 (the preface) or not, puts them back, and decides. */
function sniffPreface(socket: Socket, headerMs: number, decide: (isHttp2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const onTimeout = (): void => void socket.destroy();
  socket.setTimeout(headerMs, onTimeout);
  socket.on('error', ignoreError);
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const compared = Math.min(seen.length, PREFACE_DECIDES_AFTER);
    const isHttp2 = seen.compare(PREFACE, 0, compared, 0, compared) === 0;
    if (isHttp2 && seen.length < PREFACE_DECIDES_AFTER) return;
    socket.removeListener('data', onData);
    socket.removeListener('error', ignoreError);
    socket.pause();
    socket.unshift(seen);
    // The server that takes the socket sets its own timeouts; ours must not fire then.
    socket.setTimeout(0);
    socket.removeListener('timeout', onTimeout);
    decide(isHttp2);
  };
  socket.on('data', onData);
}

/** The answer for a request Node's parser refused; undefined for a peer that just left. */
function clientErrorCode(err: NodeJS.ErrnoException): ErrorCode | undefined {
  switch (err.code) {
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ERR_STREAM_DESTROYED':
      return undefined;
    case 'HPE_HEADER_OVERFLOW':
      return 'SY_CLIENT_HEADERS_TOO_LARGE';
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'HPE_HEADER_TIMEOUT':
      return 'SY_CLIENT_HEADER_TIMEOUT';
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return 'SY_CLIENT_BAD_REQUEST';
    default:
      return 'SY_CLIENT_BAD_REQUEST';
  }
}

function ignoreError(): void {
  // Socket errors from clients are traffic, not faults; 'close' cleans up.
}
