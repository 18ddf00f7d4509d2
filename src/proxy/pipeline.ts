import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ProxyError } from '../errors.js';
import { isWebSocketUpgrade, normaliseAddress, type ForwardContext } from './headers.js';
import { HttpExchange } from './http-exchange.js';
import type { ProxyContext } from './proxy-context.js';
import { respondWithError, writeRawResponse } from './raw-response.js';
import { WebSocketHandshake } from './websocket-handshake.js';

/**
 * The request lifecycle in one place (see docs/lifecycle.md): admit the request,
 * then hand it to the HTTP exchange or the WebSocket handshake, which select an
 * upstream, forward, and stream or tunnel.
 */
export class ProxyPipeline {
  constructor(private readonly context: ProxyContext, private readonly secure: boolean) {}

  handleRequest(req: IncomingMessage, res: ServerResponse): void {
    const refusal = admit(req);
    if (refusal) {
      respondWithError(res, refusal);
      return;
    }
    new HttpExchange(this.context, req, res, this.forwardContext(req.socket)).start();
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
    const refusal = admit(req);
    if (refusal) {
      writeRawResponse(socket, refusal.status, `${refusal.status} ${refusal.message}`, ['X-Switchyard-Error', refusal.code]);
      return;
    }
    new WebSocketHandshake(this.context, req, socket, head, this.forwardContext(socket)).start();
  }

  /** Computed once per connection: keep-alive requests reuse it. */
  private forwardContext(socket: Socket): ForwardContext {
    const known = (socket as ForwardingSocket)[kForward];
    if (known) return known;
    const context = { clientAddress: normaliseAddress(socket.remoteAddress), secure: this.secure, localPort: String(socket.localPort ?? 0) };
    (socket as ForwardingSocket)[kForward] = context;
    return context;
  }
}

const kForward = Symbol('switchyard.forward');
type ForwardingSocket = Socket & { [kForward]?: ForwardContext };

/** Refuses what must never reach a backend; undefined when the request may pass. */
function admit(req: IncomingMessage): ProxyError | undefined {
  // Node's parser also takes "GET /" (HTTP/0.9) and "HTTP/2.0" request lines.
  if (req.httpVersionMajor !== 1) return new ProxyError('SY_CLIENT_HTTP_VERSION', `HTTP/${req.httpVersion}`);
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
