import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
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

/** Plain listeners speak HTTP/1.1; TLS listeners HTTP/2 and HTTP/1.1, chosen by ALPN. */
export type ListenerServer = http.Server | http2.Http2SecureServer;

const kCertificates = Symbol('switchyard.certificates');
type TlsListenerServer = http2.Http2SecureServer & { [kCertificates]?: ListenerCertificates };

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

/** Idle HTTP/1.1 keep-alive connections close (an HTTP/2 server with allowHTTP1 has this too; its types do not say so). */
export function closeIdleConnections(server: ListenerServer): void {
  (server as http.Server).closeIdleConnections();
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
  if (listener.tls) {
    const certificates = new ListenerCertificates(listener.tls);
    server = http2.createSecureServer({
      ...certificates.serverOptions(),
      // HTTP/1.1 clients (and every WebSocket over HTTP/1.1) share the port.
      allowHTTP1: true,
      // RFC 8441: clients may open WebSockets as extended CONNECT streams.
      settings: { maxHeaderListSize: config.limits.maxHeaderBytes, enableConnectProtocol: true },
    });
    // The HTTP/1.1 side of an HTTP/2 server reads these from the server object.
    Object.assign(server, { ...options, timeout: 0 });
    server.on('session', (session: http2.ServerHttp2Session) => {
      registry.addSession(session);
      // An idle session closes like an idle keep-alive connection; so does one
      // left open after a protocol error (Node sends GOAWAY but keeps the socket).
      // Quiet WebSockets on it are not idleness: the tunnel's own timer rules them.
      session.setTimeout(config.timeouts.keepAliveMs, () => {
        if (!registry.hasTunnelOn(session)) session.close();
      });
    });
    (server as TlsListenerServer)[kCertificates] = certificates;
  } else {
    server = http.createServer(options);
  }
  const connectionEvent = listener.tls ? 'secureConnection' : 'connection';

  server.on(connectionEvent, (socket: Socket) => registry.addConnection(socket));
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
    writeRawResponse(socket, error.status, `${error.status} ${error.message}`, ['X-Switchyard-Error', code]);
  });
  server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());
  return server;
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
