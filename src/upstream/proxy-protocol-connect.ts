import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { Client, type Dispatcher } from 'undici';
import { proxyHeaderV1, proxyHeaderV2, type ProxySource } from '../net/proxy-protocol.js';
import type { UpstreamServer } from './upstream-server.js';

export type ProxyProtocolVersion = 'v1' | 'v2';

/** The PROXY header naming `client` (and the address it reached) for a backend. */
export function proxyHeader(version: ProxyProtocolVersion, client: ProxySource, reached: ProxySource): Buffer {
  return version === 'v1' ? proxyHeaderV1(client, reached) : proxyHeaderV2(client, reached);
}

/**
 * Opens a connection to the server whose first bytes are the PROXY header,
 * before TLS when the server is https/wss. Calls back once the connection
 * (and TLS) is up, or with the error.
 */
export function connectWithProxyHeader(server: UpstreamServer, header: Buffer, connectMs: number, done: (err: Error | null, socket: Socket | null) => void): Socket {
  const raw = net.connect({ host: server.hostname, port: server.port, allowHalfOpen: !server.secure });
  let settled = false;
  const settle = (err: Error | null, socket: Socket | null): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    done(err, socket);
  };
  const timer = setTimeout(() => {
    const err = Object.assign(new Error(`no connection within ${connectMs} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' });
    raw.destroy(err);
    settle(err, null);
  }, connectMs);
  raw.once('error', (err) => settle(err, null));
  raw.once('connect', () => {
    raw.write(header);
    if (!server.secure) {
      settle(null, raw);
      return;
    }
    const secure = tls.connect({ ...server.tlsOptions, socket: raw });
    secure.once('error', (err) => settle(err, null));
    secure.once('secureConnect', () => settle(null, secure));
  });
  return raw;
}

const kClients = Symbol('switchyard.proxyProtocolClients');
/** Upstream connections of one client connection, by server and by the client they name. */
type ClientOwner = { [kClients]?: Map<string, Client>; once(event: 'close', listener: () => void): unknown };

/**
 * HTTP requests to a server that wants the PROXY protocol cannot share
 * keep-alive connections between clients (the header names one client): each
 * client connection gets its own upstream connection (as HAProxy does), kept
 * for its keep-alive requests and closed with it. Behind trusted proxies one
 * connection carries many clients: each of them gets its own.
 */
export function dispatcherForClient(owner: ClientOwner, server: UpstreamServer, version: ProxyProtocolVersion, client: ProxySource, reached: ProxySource, connectMs: number): Dispatcher {
  let clients = owner[kClients];
  if (!clients) {
    const created = new Map<string, Client>();
    clients = created;
    owner[kClients] = created;
    owner.once('close', () => {
      for (const dispatcher of created.values()) void dispatcher.close().catch(() => undefined);
      created.clear();
    });
  }
  const key = `${server.url} ${client.address} ${client.port}`;
  let dispatcher = clients.get(key);
  if (!dispatcher) {
    const header = proxyHeader(version, client, reached);
    dispatcher = new Client(server.origin, {
      connect: (_options, callback) => {
        connectWithProxyHeader(server, header, connectMs, (err, socket) => {
          (callback as (err: Error | null, socket: Socket | null) => void)(err, socket);
        });
      },
      keepAliveTimeout: 30_000,
    });
    clients.set(key, dispatcher);
  }
  return dispatcher;
}
