import type { ConnectionOptions } from 'node:tls';
import type { Socket } from 'node:net';
import { buildConnector, Pool } from 'undici';
import type { UpstreamTlsConfig } from '../config/model.js';
import { ProxyError } from '../errors.js';
import type { Closable } from '../server/connection-registry.js';
import { fnv1a } from './balancer/hashing.js';

export interface ServerTimeouts {
  readonly connectMs: number;
  readonly responseMs: number;
  readonly bodyIdleMs: number;
}

export interface ServerOptions {
  readonly weight?: number;
  /** 0: no limit. */
  readonly maxConns?: number;
  readonly tls?: UpstreamTlsConfig;
  /** Host name the server was found under by discovery (SNI, certificate check). */
  readonly hostname?: string;
  /** Requests over HTTP/2: offered in ALPN (https), or by prior knowledge (http, h2c). */
  readonly http2?: boolean;
}

/** Concurrent requests on one HTTP/2 connection (Node's servers allow 100). */
const HTTP2_STREAMS_PER_CONNECTION = 100;
type UndiciClient = { pipelining: number };

const UPSTREAM_KEEPALIVE_MS = 30_000;

/**
 * One backend: its address, its keep-alive connection pools, and what the pool
 * knows of it: load (`active`), health (active checks), ejection (passive
 * health), draining, and its open tunnels.
 */
export class UpstreamServer {
  readonly url: string;
  readonly secure: boolean;
  readonly hostname: string;
  readonly port: number;
  /** http(s)://host:port, the key of the keep-alive pool. */
  readonly origin: string;
  /** Path prefix of the URL ('' for '/'); prepended to every forwarded path. */
  readonly basePath: string;
  /** host[:port] as the server names itself (default port omitted). */
  readonly authority: string;
  readonly weight: number;
  /** Open tunnels plus in-flight requests at most; 0: no limit. */
  readonly maxConns: number;
  /** Stable per URL: consistent hashing scores keys against it. */
  readonly seed: number;
  /** Options for TLS connections (https/wss): SNI, CA, client certificate. */
  readonly tlsOptions: ConnectionOptions | undefined;
  readonly http2: boolean;
  /** Keep-alive pools by connect timeout (routes may set their own). */
  private readonly dispatchers = new Map<number, Pool>();
  /** Open tunnels plus in-flight requests. */
  active = 0;
  /** Active health checks' verdict. */
  healthy = true;
  /** Passive health: ejected until this time (ms since epoch). */
  ejectedUntil = 0;
  consecutiveFailures = 0;
  /** Ejections in a row, without a success in between: the period doubles each time. */
  ejections = 0;
  /** Every ejection since start (metrics). */
  ejectionsTotal = 0;
  /** No new requests or tunnels; open ones stay until they end or the deadline. */
  draining = false;
  readonly tunnels = new Set<Closable>();

  constructor(rawUrl: string, private readonly timeouts: ServerTimeouts, options: ServerOptions = {}) {
    const parsed = parseServerUrl(rawUrl);
    this.url = rawUrl;
    this.weight = options.weight ?? 1;
    this.maxConns = options.maxConns ?? 0;
    this.seed = fnv1a(rawUrl);
    // A server discovery found by name keeps the name as its authority (Host when
    // preserve_host is off), not the address it resolved to.
    this.authority = options.hostname === undefined ? parsed.authority : withPort(options.hostname.toLowerCase(), parsed.port, parsed.secure);
    this.secure = parsed.secure;
    this.hostname = parsed.hostname;
    this.port = parsed.port;
    this.origin = parsed.origin;
    this.basePath = parsed.basePath;
    this.tlsOptions = parsed.secure ? tlsConnectOptions(options.tls, options.hostname ?? parsed.servername) : undefined;
    this.http2 = options.http2 ?? false;
  }

  /** Healthy, not ejected, not draining: may be chosen for new work. */
  isAvailable(now: number): boolean {
    return this.healthy && this.ejectedUntil <= now && !this.draining;
  }

  hasCapacity(): boolean {
    return this.maxConns === 0 || this.active < this.maxConns;
  }

  dispatcherFor(connectMs: number): Pool {
    let pool = this.dispatchers.get(connectMs);
    if (!pool) {
      const offerHttp2 = this.http2 && this.secure;
      const connect = this.secure
        ? keepTlsErrors(buildConnector({ timeout: connectMs, ...this.tlsOptions, allowH2: offerHttp2 }))
        : { timeout: connectMs, ...(this.http2 ? { useH2c: true } : {}) };
      pool = new Pool(this.origin, {
        connect,
        headersTimeout: this.timeouts.responseMs,
        bodyTimeout: this.timeouts.bodyIdleMs,
        keepAliveTimeout: UPSTREAM_KEEPALIVE_MS,
        // HTTP/1.1: one request per connection at a time (the proxy decides
        // retries itself); HTTP/2: many streams on one connection.
        pipelining: this.http2 && !this.secure ? HTTP2_STREAMS_PER_CONNECTION : 1,
        ...(this.http2 ? { allowH2: true } : {}),
      });
      // With ALPN the server decides per connection whether it speaks h2.
      if (offerHttp2) pool.on('connect', onNegotiated);
      this.dispatchers.set(connectMs, pool);
    }
    return pool;
  }

  /** Passive health: eject for `baseMs`, doubled per ejection in a row, up to `maxMs`. */
  eject(now: number, baseMs: number, maxMs: number): void {
    this.ejectedUntil = now + Math.min(baseMs * 2 ** Math.min(this.ejections, 20), Math.max(baseMs, maxMs));
    this.ejections++;
    this.ejectionsTotal++;
    this.consecutiveFailures = 0;
  }

  /** A request or check went well: the failure streak and ejection history end. */
  succeeded(): void {
    this.consecutiveFailures = 0;
    this.ejections = 0;
  }

  async close(): Promise<void> {
    await Promise.all([...this.dispatchers.values()].map((pool) => pool.destroy()));
    this.dispatchers.clear();
  }
}

/**
 * In TLS 1.3 a server that refuses the client (no or a wrong client certificate)
 * sends its alert after the handshake; undici then sees the socket end and
 * reports "other side closed", losing the TLS error. Destroying the socket with
 * the TLS error first keeps it, so the client gets SY_UPSTREAM_TLS, not a reset.
 */
function keepTlsErrors(connect: buildConnector.connector): buildConnector.connector {
  // undici names the server after each request's Host; an empty name makes it use
  // the connector's own (tls.servername, else the URL's host; none for an IP
  // address, whose certificate is then checked against the address), as documented.
  return (options, callback) => connect({ ...options, servername: '' }, (err, socket) => {
    if (socket) (socket as Socket).prependListener('error', destroyOnTlsError);
    // undici's callback type is a union of (err, null) and (null, socket).
    (callback as (err: Error | null, socket: Socket | null) => void)(err, socket as Socket | null);
  });
}

/**
 * A connection the server took as HTTP/2 carries many requests at once; an
 * HTTP/1.1 one a single request. undici decides per connection but keeps one
 * `pipelining` per client, so it is set here from the protocol the connection
 * speaks. undici exposes that only on its internal "http context" (checked by
 * the upstream HTTP/2 tests); if it ever moves, clients stay at 1, which is
 * correct, only without multiplexing.
 */
function onNegotiated(_origin: URL, targets: readonly unknown[]): void {
  const client = targets[targets.length - 1] as UndiciClient | undefined;
  if (!client) return;
  const context = Object.getOwnPropertySymbols(client).find((symbol) => symbol.description === 'http context');
  const version = context && (client as unknown as Record<symbol, { version?: string } | undefined>)[context]?.version;
  const streams = version === 'h2' ? HTTP2_STREAMS_PER_CONNECTION : 1;
  if (client.pipelining !== streams) client.pipelining = streams;
}

function destroyOnTlsError(this: Socket, err: NodeJS.ErrnoException): void {
  if (err.code !== undefined && /^ERR_(SSL|TLS)/.test(err.code) && !this.destroyed) this.destroy(err);
}

function withPort(host: string, port: number, secure: boolean): string {
  return port === (secure ? 443 : 80) ? host : `${host}:${port}`;
}

function tlsConnectOptions(tls: UpstreamTlsConfig | undefined, servername: string | undefined): ConnectionOptions {
  const name = tls?.servername ?? servername;
  return {
    ...(name !== undefined ? { servername: name } : {}),
    ...(tls?.ca ? { ca: tls.ca } : {}),
    ...(tls?.cert ? { cert: tls.cert } : {}),
    ...(tls?.key ? { key: tls.key } : {}),
    rejectUnauthorized: !(tls?.insecure ?? false),
    ALPNProtocols: ['http/1.1'],
  };
}

interface ParsedServerUrl {
  secure: boolean;
  hostname: string;
  servername: string | undefined;
  port: number;
  origin: string;
  basePath: string;
  authority: string;
}

const SCHEMES: Record<string, { secure: boolean; port: number }> = {
  'http:': { secure: false, port: 80 },
  'ws:': { secure: false, port: 80 },
  'https:': { secure: true, port: 443 },
  'wss:': { secure: true, port: 443 },
};

export function parseServerUrl(rawUrl: string): ParsedServerUrl {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new ProxyError('SY_CONFIG_INVALID', `"${rawUrl}" is not a URL (expected e.g. http://127.0.0.1:3000)`);
  }
  const scheme = SCHEMES[url.protocol];
  if (!scheme) throw new ProxyError('SY_CONFIG_INVALID', `"${rawUrl}": expected a URL with scheme http, https, ws or wss`);
  if (url.search || url.hash) throw new ProxyError('SY_CONFIG_INVALID', `"${rawUrl}": a backend URL takes no query or fragment`);
  if (url.username || url.password) throw new ProxyError('SY_CONFIG_INVALID', `"${rawUrl}": a backend URL takes no credentials`);
  const port = url.port ? Number(url.port) : scheme.port;
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const httpScheme = scheme.secure ? 'https' : 'http';
  const isIp = /^[\d.]+$/.test(hostname) || hostname.includes(':');
  return {
    secure: scheme.secure,
    hostname,
    servername: scheme.secure && !isIp ? hostname : undefined,
    port,
    origin: `${httpScheme}://${url.host}`,
    authority: url.host.toLowerCase(),
    basePath: url.pathname === '/' ? '' : url.pathname.replace(/\/$/, ''),
  };
}
