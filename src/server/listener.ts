import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { ListenerConfig, SwitchyardConfig } from '../config/model.js';
import { ProxyError, type ErrorCode } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { ProxyPipeline } from '../proxy/pipeline.js';
import { writeRawResponse } from '../proxy/raw-response.js';
import type { ConnectionRegistry } from './connection-registry.js';
import { requestHeadWithoutUpgrade } from './replay.js';

type HttpServer = http.Server | https.Server;

/** Creates the HTTP(S) server of one listener and wires it to the pipeline. */
export function createListenerServer(
  listener: ListenerConfig,
  config: SwitchyardConfig,
  pipeline: ProxyPipeline,
  registry: ConnectionRegistry,
  log: Logger,
): HttpServer {
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
  const server: HttpServer = listener.tls
    ? https.createServer({ ...options, cert: listener.tls.cert, key: listener.tls.key, ALPNProtocols: ['http/1.1'] })
    : http.createServer(options);
  const connectionEvent = listener.tls ? 'secureConnection' : 'connection';

  server.on(connectionEvent, (socket: Socket) => registry.addConnection(socket));
  server.on('request', (req, res) => pipeline.handleRequest(req, res));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    pipeline.handleUpgrade(req, socket, head, (plainReq, plainSocket, rest) => {
      // Re-parse the request without its upgrade headers as an ordinary request,
      // so it takes the regular HTTP path (keep-alive included).
      plainSocket.unshift(Buffer.concat([requestHeadWithoutUpgrade(plainReq), rest]));
      server.emit(connectionEvent, plainSocket);
    });
  });
  server.on('connect', (_req: IncomingMessage, socket: Socket) => {
    socket.on('error', ignoreError);
    const error = new ProxyError('SY_CLIENT_METHOD_NOT_ALLOWED', 'CONNECT is not supported');
    writeRawResponse(socket, error.status, `${error.status} ${error.message}`, ['Allow', 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS']);
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
