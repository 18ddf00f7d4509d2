import type { Server } from 'node:net';
import type { Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import type { AddressList } from '../net/address-list.js';
import { parseProxyHeader, type ProxySource } from '../net/proxy-protocol.js';
import { normaliseAddress } from '../proxy/headers.js';

const kProxySource = Symbol('switchyard.proxySource');
const kWaiting = Symbol('switchyard.waitingForProxyHeader');
type WaitingServer = Server & { [kWaiting]?: Set<Socket> };
const kProxyChecked = Symbol('switchyard.proxyChecked');
type ProxiedSocket = Socket & { [kProxySource]?: ProxySource; [kProxyChecked]?: true; _parent?: ProxiedSocket };

/** The client a PROXY header named for this connection (TLS sockets look at their TCP socket). */
export function proxySourceOf(socket: Socket): ProxySource | undefined {
  const proxied = socket as ProxiedSocket;
  return proxied[kProxySource] ?? proxied._parent?.[kProxySource];
}

/**
 * Shutdown: connections still waiting for their PROXY header carry no request
 * yet and are not in the connection registry; close them now, or the
 * listener's close would wait for their header timeout.
 */
export function closeWaitingForProxyHeader(server: Server): void {
  const waiting = (server as WaitingServer)[kWaiting];
  if (!waiting) return;
  for (const socket of waiting) socket.destroy();
  waiting.clear();
}

/**
 * PROXY protocol (v1 and v2) on a listener: a connection from a trusted
 * source (the L4 balancer) must start with a header, which names the client;
 * a connection from anyone else that sends one is refused (a client cannot
 * claim another address). Plain connections from untrusted sources are served
 * as direct clients. Runs before every other connection listener (TLS, HTTP,
 * the h2c sniff), which then see the bytes after the header.
 */
export function acceptProxyProtocol(server: Server, trusted: AddressList, headerMs: number, log: Logger, refused: (code: string) => void): void {
  const listeners = server.listeners('connection') as ((this: Server, socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const waiting = new Set<Socket>();
  (server as WaitingServer)[kWaiting] = waiting;
  const handOver = (socket: Socket): void => {
    for (const listener of listeners) listener.call(server, socket);
  };
  server.on('connection', (socket: Socket) => {
    const proxied = socket as ProxiedSocket;
    // A replayed connection (an upgrade re-read as plain HTTP) was checked already.
    if (proxied[kProxyChecked]) {
      handOver(socket);
      return;
    }
    proxied[kProxyChecked] = true;
    const fromTrusted = trusted.has(normaliseAddress(socket.remoteAddress));
    waiting.add(socket);
    const forget = (): void => void waiting.delete(socket);
    socket.once('close', forget);
    readHeader(socket, headerMs, (outcome, rest) => {
      waiting.delete(socket);
      socket.removeListener('close', forget);
      const peer = normaliseAddress(socket.remoteAddress);
      if (outcome.kind === 'header' && fromTrusted) {
        if (outcome.source) proxied[kProxySource] = { address: normaliseAddress(outcome.source.address), port: outcome.source.port };
      } else if (outcome.kind === 'none' && !fromTrusted) {
        // An ordinary client.
      } else {
        const code = outcome.kind === 'invalid' ? 'SY_PROXY_PROTOCOL_INVALID' : outcome.kind === 'none' ? 'SY_PROXY_PROTOCOL_MISSING' : 'SY_PROXY_PROTOCOL_UNTRUSTED';
        log.warn({ code, peer, reason: outcome.kind === 'invalid' ? outcome.reason : undefined }, 'PROXY protocol: connection refused');
        refused(code);
        socket.destroy();
        return;
      }
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
      handOver(socket);
      // The HTTP/1.1 parser (and the h2c sniff) read with 'data' listeners: let
      // the stream flow again. TLS reads the bytes put back itself, then the
      // native handle: flowing would hand those bytes to nobody.
      if (socket.listenerCount('data') > 0) socket.resume();
    });
  });
}

type HeaderOutcome = ReturnType<typeof parseProxyHeader> & { kind: 'none' | 'invalid' | 'header' };

/** Reads until the first bytes are a whole PROXY header, something else, or broken. */
function readHeader(socket: Socket, headerMs: number, done: (outcome: HeaderOutcome, rest: Buffer) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const onTimeout = (): void => void socket.destroy();
  const onError = (): void => {
    // Resets before the header are ordinary; 'close' cleans up.
  };
  socket.setTimeout(headerMs, onTimeout);
  socket.on('error', onError);
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const outcome = parseProxyHeader(seen);
    if (outcome.kind === 'incomplete') return;
    socket.removeListener('data', onData);
    socket.removeListener('error', onError);
    socket.removeListener('timeout', onTimeout);
    socket.setTimeout(0);
    done(outcome, outcome.kind === 'header' ? seen.subarray(outcome.length) : seen);
  };
  socket.on('data', onData);
}
