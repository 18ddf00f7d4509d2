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
