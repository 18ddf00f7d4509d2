import type { AccessLogConfig } from '../observe/access-log.js';

/**
 * The runtime configuration model. Both front ends produce it: the quick-mode
 * flags (one site, one catch-all route, one upstream) and the config file.
 * Every default lives in DEFAULTS below and is documented in docs/config.md.
 */
export interface TlsFiles {
  /** The default PEM certificate chain (file contents, not the path). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** More certificates, chosen by SNI (exact names and *.wildcards). */
  readonly certificates?: readonly { readonly hosts: readonly string[]; readonly cert: string | Buffer; readonly key: string | Buffer }[];
  /** Default TLSv1.2. */
  readonly minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** The certificate and key files read (absolute), watched for renewals. */
  readonly files?: readonly string[];
  readonly ciphers?: string;
}

export interface ListenerConfig {
  readonly host: string;
  readonly port: number;
  readonly tls?: TlsFiles;
  /** Names of the sites served here; undefined: every site. */
  readonly sites?: readonly string[];
  /** Strict-Transport-Security value sent on every response of a TLS listener. */
  readonly hsts?: string;
  /** A plain listener that sends every request to https on this port. */
  readonly redirectToHttpsPort?: number;
  /** TLS: offer h2 in ALPN (default true). Plain: accept h2c with prior knowledge (default false). */
  readonly http2?: boolean;
  /** Advertise RFC 8441 extended CONNECT; default true. */
  readonly websocketOverHttp2?: boolean;
  /** Addresses/CIDR ranges whose PROXY protocol headers are accepted; undefined: off. */
  readonly proxyProtocolFrom?: readonly string[];
  /** Open client connections on this listener at most. */
  readonly maxConnections?: number;
}

export type StickyMode = 'none' | 'cookie' | 'ip';
export type BalancePolicy = 'round_robin' | 'least_conn' | 'random_two' | 'ip_hash' | 'hash' | 'first';

export interface ServerConfig {
  /** http, https, ws or wss (ws/wss name the same origin as http/https). */
  readonly url: string;
  readonly weight: number;
  /** Open tunnels plus in-flight requests at most; 0: no limit. */
  readonly maxConns?: number;
  /** Start drained (no new requests or tunnels). */
  readonly drain?: boolean;
}

export type HashKey = { readonly header: string } | { readonly cookie: string } | { readonly query: string };

export interface ActiveHealthConfig {
  readonly type: 'http' | 'websocket';
  readonly path: string;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Inclusive status range that passes. */
  readonly expectStatus: readonly [number, number];
  readonly expectBody: string | undefined;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly rise: number;
  readonly fall: number;
}

export type FailureKind = 'connect' | 'reset' | 'timeout' | '5xx';

export interface PassiveHealthConfig {
  readonly maxFails: number;
  readonly failOn: readonly FailureKind[];
  readonly maxEjectMs: number;
}

export interface UpstreamTlsConfig {
  readonly ca?: Buffer;
  readonly servername?: string;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly insecure: boolean;
}

export interface DiscoveryConfig {
  readonly intervalMs: number;
  /** HOST:PORT of a DNS server; undefined: the system resolver. */
  readonly resolver: string | undefined;
  readonly srv: boolean;
}

export interface UpstreamConfig {
  readonly name: string;
  readonly servers: readonly ServerConfig[];
  /** undefined: round robin for requests, least connections for upgrades. */
  readonly policy: BalancePolicy | undefined;
  readonly hashKey?: HashKey;
  readonly sticky: StickyMode;
  /** HMAC secret for the affinity cookie. */
  readonly stickySecret: string;
  readonly stickyCookieName: string;
  /** How long a failing server is ejected (passive health); doubles on repeat up to passive.maxEjectMs. */
  readonly failTimeoutMs: number;
  readonly activeHealth?: ActiveHealthConfig;
  readonly passiveHealth?: PassiveHealthConfig;
  /** Close the open tunnels of a server that goes down. */
  readonly closeTunnelsOnDown?: boolean;
  /** Other servers tried after a failure that is safe to retry. */
  readonly retries?: number;
  readonly retryDeadlineMs?: number;
  /** Requests that may wait for capacity, and for how long. */
  readonly queueSize?: number;
  readonly queueTimeoutMs?: number;
  readonly tls?: UpstreamTlsConfig;
  readonly discovery?: DiscoveryConfig;
  readonly drainTimeoutMs?: number;
  /** https servers: offer h2 in ALPN for requests. */
  readonly http2?: boolean;
  /** Connections to these servers start with a PROXY protocol header; undefined: off. */
  readonly sendProxyProtocol?: 'v1' | 'v2';
}

export const UPSTREAM_DEFAULTS = {
  passiveHealth: { maxFails: 1, failOn: ['connect', 'reset', 'timeout'], maxEjectMs: 300_000 } satisfies PassiveHealthConfig,
  retries: 2,
  retryDeadlineMs: 10_000,
  queueTimeoutMs: 5_000,
  drainTimeoutMs: 300_000,
} as const;

export interface TimeoutConfig {
  readonly connectMs: number;
  /** Time from request sent to response headers received (504 past it). */
  readonly responseMs: number;
  /** A tunnel with no bytes either way for this long is closed. */
  readonly tunnelIdleMs: number;
  /** A client must send its complete request headers within this. */
  readonly headerMs: number;
  /** Idle keep-alive connections from clients are closed after this. */
  readonly keepAliveMs: number;
  /** On shutdown, how long tunnels and in-flight requests may take. */
  readonly drainMs: number;
}

export type RouteTimeouts = Pick<TimeoutConfig, 'connectMs' | 'responseMs' | 'tunnelIdleMs'>;

export interface LimitConfig {
  readonly maxHeaderBytes: number;
  /** Request header fields at most (431). */
  readonly maxHeaderCount: number;
  /** Request body bytes at most (413); undefined: no limit. */
  readonly maxBodyBytes?: number;
  /** Open client connections, all listeners together (503). */
  readonly maxConnections?: number;
  /** Open connections per client address (429). */
  readonly maxConnectionsPerIp?: number;
  /** WebSocket handshakes per client address and second (429). */
  readonly handshakesPerIpPerSecond?: number;
}

export type Condition =
  | { readonly kind: 'present' }
  | { readonly kind: 'absent' }
  | { readonly kind: 'equals'; readonly value: string }
  | { readonly kind: 'regex'; readonly source: string };

export interface MatchConfig {
  readonly prefix?: string;
  readonly exact?: string;
  readonly regex?: string;
  readonly methods?: readonly string[];
  /** Lower-case header name → condition. */
  readonly headers?: ReadonlyMap<string, Condition>;
  readonly query?: ReadonlyMap<string, Condition>;
  readonly upgrade: 'websocket' | 'any' | 'none';
}

export interface HeaderActionsConfig {
  readonly set?: Record<string, string>;
  readonly add?: Record<string, string>;
  readonly remove?: readonly string[];
}

export type RouteAction =
  | {
    readonly kind: 'proxy';
    /** Name of the upstream (a URL given inline becomes an upstream named after it). */
    readonly upstream: string;
    readonly stripPrefix: boolean;
    readonly rewrite: string | undefined;
    readonly preserveHost: boolean;
    /** undefined: on when the route changes the path or the host. */
    readonly reverseRewrite: boolean | undefined;
    readonly requestHeaders: HeaderActionsConfig | undefined;
    readonly responseHeaders: HeaderActionsConfig | undefined;
  }
  | { readonly kind: 'redirect'; readonly status: number; readonly location: string }
  | { readonly kind: 'respond'; readonly status: number; readonly body: string; readonly contentType: string };

/** A route's WebSocket policies (`websocket:` in the file); undefined fields are off. */
export interface WebSocketPolicyConfig {
  readonly ping?: { readonly intervalMs: number; readonly timeoutMs: number; readonly client: boolean; readonly backend: boolean };
  readonly maxAgeMs?: number;
  /** 0–1: each tunnel's max age is shortened by up to this fraction. */
  readonly maxAgeJitter: number;
  readonly maxMessageBytes?: number;
  readonly maxMessagesPerSecond?: number;
  /** Lower-case origins: exact ("https://app.example.com") or with a "*" label ("https://*.example.com"). */
  readonly allowedOrigins?: readonly string[];
  readonly allowedSubprotocols?: readonly string[];
}

/** How open tunnels are closed on shutdown and server drain. */
export interface DrainConfig {
  /** Tunnels closed per second; 0: all at once. */
  readonly rate: number;
  /** 0–1: each close moves by up to this fraction of 1/rate. */
  readonly jitter: number;
}

export interface RouteConfig {
  /** Where it stands in the config, e.g. "sites[0].routes[2]", for messages. */
  readonly id: string;
  readonly name: string | undefined;
  readonly match: MatchConfig;
  readonly action: RouteAction;
  readonly timeouts: RouteTimeouts;
  /** false: WebSockets over HTTP/2 are refused on this route (421). Default true. */
  readonly websocketOverHttp2?: boolean;
  /** WebSocket policies; undefined: none (the tunnel is a plain byte pipe). */
  readonly websocket?: WebSocketPolicyConfig;
  /** Client addresses/CIDR ranges allowed on this route; undefined: everyone. */
  readonly allow?: readonly string[];
  /** Client addresses/CIDR ranges refused on this route. */
  readonly deny?: readonly string[];
  /** Open tunnels on this route at most (503). */
  readonly maxTunnels?: number;
}

export interface SiteConfig {
  readonly id: string;
  readonly name: string | undefined;
  /** Exact names, "*.example.com" wildcards, "*" for the default site. */
  readonly hosts: readonly string[];
  readonly routes: readonly RouteConfig[];
}

export interface AdminConfig {
  readonly host: string;
  readonly port: number;
  /** Bearer token the admin API requires; undefined: none. */
  readonly token?: string;
}

export interface SwitchyardConfig {
  readonly listeners: readonly ListenerConfig[];
  /** undefined: no access log. */
  readonly accessLog?: AccessLogConfig;
  /** undefined: no admin listener. */
  readonly admin?: AdminConfig;
  readonly sites: readonly SiteConfig[];
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  readonly timeouts: TimeoutConfig;
  readonly limits: LimitConfig;
  readonly workers: number;
  readonly drain: DrainConfig;
  /** Peers whose X-Forwarded-For is believed; undefined: none. */
  readonly trustedProxies?: readonly string[];
  /** The config file it came from, if any (reload reads it again). */
  readonly file?: string;
}

export const DEFAULTS = {
  timeouts: {
    connectMs: 1_000,
    responseMs: 60_000,
    tunnelIdleMs: 3_600_000,
    headerMs: 30_000,
    keepAliveMs: 75_000,
    drainMs: 30_000,
  } satisfies TimeoutConfig,
  limits: { maxHeaderBytes: 16 * 1024, maxHeaderCount: 100 } satisfies LimitConfig,
  drain: { rate: 500, jitter: 0.5 } satisfies DrainConfig,
  stickyCookieName: 'sy_affinity',
  failTimeoutMs: 10_000,
  workers: 1,
} as const;

/** Quick mode's shape: one listener set, one upstream, every request to it. */
export type SwitchyardConfigInput = {
  listeners: ListenerConfig[];
  accessLog?: AccessLogConfig;
  admin?: AdminConfig;
  upstream: { servers: readonly string[]; sticky?: StickyMode; stickySecret?: string; stickyCookieName?: string; failTimeoutMs?: number };
  timeouts?: Partial<TimeoutConfig>;
  limits?: Partial<LimitConfig>;
  workers?: number;
  drain?: Partial<DrainConfig>;
};

export const QUICK_UPSTREAM = 'default';

/** Builds the full model for quick mode, every omitted field at its default. */
export function withDefaults(input: SwitchyardConfigInput, randomSecret: () => string): SwitchyardConfig {
  const timeouts = { ...DEFAULTS.timeouts, ...input.timeouts };
  const upstream: UpstreamConfig = {
    name: QUICK_UPSTREAM,
    servers: input.upstream.servers.map((url) => ({ url, weight: 1 })),
    policy: undefined,
    sticky: input.upstream.sticky ?? 'none',
    stickySecret: input.upstream.stickySecret ?? randomSecret(),
    stickyCookieName: input.upstream.stickyCookieName ?? DEFAULTS.stickyCookieName,
    failTimeoutMs: input.upstream.failTimeoutMs ?? DEFAULTS.failTimeoutMs,
  };
  const route: RouteConfig = {
    id: 'sites[0].routes[0]',
    name: 'all',
    match: { upgrade: 'any' },
    action: {
      kind: 'proxy', upstream: QUICK_UPSTREAM, stripPrefix: false, rewrite: undefined, preserveHost: true,
      reverseRewrite: undefined, requestHeaders: undefined, responseHeaders: undefined,
    },
    timeouts: { connectMs: timeouts.connectMs, responseMs: timeouts.responseMs, tunnelIdleMs: timeouts.tunnelIdleMs },
  };
  return {
    listeners: input.listeners,
    sites: [{ id: 'sites[0]', name: 'default', hosts: ['*'], routes: [route] }],
    upstreams: new Map([[QUICK_UPSTREAM, upstream]]),
    timeouts,
    drain: { ...DEFAULTS.drain, ...input.drain },
    limits: { ...DEFAULTS.limits, ...input.limits },
    workers: input.workers ?? DEFAULTS.workers,
    ...(input.accessLog ? { accessLog: input.accessLog } : {}),
    ...(input.admin ? { admin: input.admin } : {}),
  };
}

/** The backends a config proxies to, for the start line. */
export function describeUpstreams(config: SwitchyardConfig): string {
  const urls = new Set<string>();
  for (const upstream of config.upstreams.values()) for (const server of upstream.servers) urls.add(server.url);
  return [...urls].join(', ');
}
