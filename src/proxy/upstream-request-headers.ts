import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { CompiledRoute } from '../router/compiled-route.js';
import type { UpstreamServer } from '../upstream/upstream-server.js';
import { applyHeaderActions } from './header-actions.js';
import { upstreamRequestHeaders, type ForwardContext } from './headers.js';

/**
 * The `upstreamRequest` phase for headers, built once per request and reused for
 * every server tried: forwarding headers, the route's header actions, and the
 * Host (the client's, or the server's own when preserve_host is off).
 */
export class UpstreamRequestHeaders {
  /** The client's X-Request-Id, or one made here and sent upstream. */
  readonly requestId: string;
  private readonly headers: string[];
  /** Index of the Host value when it must follow the chosen server, else -1. */
  private readonly hostValueAt: number;

  constructor(req: IncomingMessage, forward: ForwardContext, route: CompiledRoute, webSocket: boolean, webSocketKey?: string) {
    let headers = upstreamRequestHeaders(req, forward, webSocket);
    // A WebSocket over HTTP/2 has no key or (perhaps) version: the HTTP/1.1 handshake needs both.
    if (webSocketKey !== undefined) {
      headers.push('Sec-WebSocket-Key', webSocketKey);
      if (req.headers['sec-websocket-version'] === undefined) headers.push('Sec-WebSocket-Version', '13');
    }
    if (route.requestHeaders) headers = applyHeaderActions(headers, route.requestHeaders);
    this.requestId = requestIdOf(headers);
    const action = route.config.action;
    let hostValueAt = -1;
    if (action.kind === 'proxy' && !action.preserveHost) {
      for (let i = 0; i < headers.length; i += 2) {
        if ((headers[i] as string).length === 4 && (headers[i] as string).toLowerCase() === 'host') {
          hostValueAt = i + 1;
          break;
        }
      }
      if (hostValueAt < 0) {
        headers.push('Host', '');
        hostValueAt = headers.length - 1;
      }
    }
    this.headers = headers;
    this.hostValueAt = hostValueAt;
  }

  forServer(server: UpstreamServer): string[] {
    if (this.hostValueAt >= 0) this.headers[this.hostValueAt] = server.authority;
    return this.headers;
  }
}

const REQUEST_ID = /^[\x21-\x7e]{1,200}$/;

/**
 * The request id the backend and the access log see: the client's (or an
 * earlier proxy's) X-Request-Id when it is a sane token, else a new UUID, which
 * replaces an unusable one.
 */
function requestIdOf(headers: string[]): string {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    if (name.length !== 12 || name.toLowerCase() !== 'x-request-id') continue;
    const value = headers[i + 1] as string;
    if (REQUEST_ID.test(value)) return value;
    const id = randomUUID();
    headers[i + 1] = id;
    return id;
  }
  const id = randomUUID();
  headers.push('X-Request-Id', id);
  return id;
}
