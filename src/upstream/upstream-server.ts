import { Pool } from 'undici';
import { ProxyError } from '../errors.js';

export interface ServerTimeouts {
  readonly connectMs: number;
  readonly responseMs: number;
  readonly bodyIdleMs: number;
}

const UPSTREAM_KEEPALIVE_MS = 30_000;

/** One backend: its address, its keep-alive connection pool and its load and health state. */
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
  /** TLS server name (SNI) for https/wss servers given by name. */
  readonly servername: string | undefined;
  /** Keep-alive pools by connect timeout (routes may set their own). */
  private readonly dispatchers = new Map<number, Pool>();
  /** Open tunnels plus in-flight requests. */
  active = 0;
  /** Passive health: not chosen before this time (ms since epoch). */
  downUntil = 0;

  constructor(rawUrl: string, private readonly timeouts: ServerTimeouts, weight = 1) {
    const parsed = parseServerUrl(rawUrl);
    this.url = rawUrl;
    this.weight = weight;
    this.authority = parsed.authority;
    this.servername = parsed.servername;
    this.secure = parsed.secure;
    this.hostname = parsed.hostname;
    this.port = parsed.port;
    this.origin = parsed.origin;
    this.basePath = parsed.basePath;
  }

  get dispatcher(): Pool {
    return this.dispatcherFor(this.timeouts.connectMs);
  }

  dispatcherFor(connectMs: number): Pool {
    let pool = this.dispatchers.get(connectMs);
    if (!pool) {
      pool = new Pool(this.origin, {
        connect: { timeout: connectMs, servername: this.servername },
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

  isAvailable(now: number): boolean {
    return this.downUntil <= now;
  }

  markFailed(now: number, failTimeoutMs: number): void {
    this.downUntil = now + failTimeoutMs;
  }

  markHealthy(): void {
    this.downUntil = 0;
  }

  async close(): Promise<void> {
    await Promise.all([...this.dispatchers.values()].map((pool) => pool.destroy()));
    this.dispatchers.clear();
  }
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
