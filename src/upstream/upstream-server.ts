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
}

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
      pool = new Pool(this.origin, {
        connect: this.secure ? keepTlsErrors(buildConnector({ timeout: connectMs, ...this.tlsOptions })) : { timeout: connectMs },
        headersTimeout: this.timeouts.responseMs,
        bodyTimeout: this.timeouts.bodyIdleMs,
        keepAliveTimeout: UPSTREAM_KEEPALIVE_MS,
        // One request per connection at a time: the proxy decides retries itself.
        pipelining: 1,
      });
      this.dispatchers.set(connectMs, pool);
    }
    return pool;
  }

  /** Passive health: eject for `baseMs`, doubled per ejection in a row, up to `maxMs`. */
  eject(now: number, baseMs: number, maxMs: number): void {
    this.ejectedUntil = now + Math.min(baseMs * 2 ** Math.min(this.ejections, 20), Math.max(baseMs, maxMs));
    this.ejections++;
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
  return (options, callback) => connect(options, (err, socket) => {
    if (socket) (socket as Socket).prependListener('error', destroyOnTlsError);
    // undici's callback type is a union of (err, null) and (null, socket).
    (callback as (err: Error | null, socket: Socket | null) => void)(err, socket as Socket | null);
  });
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
