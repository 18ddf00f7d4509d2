/**
 * The runtime configuration model. Quick mode (`switchyard proxy ...`) produces it
 * from flags; the config file (a later issue) will produce the same shape.
 * Every default lives in DEFAULTS below and is documented in docs/config.md.
 */
export interface TlsFiles {
  /** PEM certificate chain (file contents, not the path). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
}

export interface ListenerConfig {
  readonly host: string;
  readonly port: number;
  readonly tls?: TlsFiles;
}

export type StickyMode = 'none' | 'cookie' | 'ip';

export interface UpstreamConfig {
  /** Backend URLs: http, https, ws or wss (ws/wss name the same origin as http/https). */
  readonly servers: readonly string[];
  readonly sticky: StickyMode;
  /** HMAC secret for the affinity cookie. */
  readonly stickySecret: string;
  readonly stickyCookieName: string;
  /** How long a server that refused a connection is skipped (passive health). */
  readonly failTimeoutMs: number;
}

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

export interface LimitConfig {
  readonly maxHeaderBytes: number;
}

export interface SwitchyardConfig {
  readonly listeners: readonly ListenerConfig[];
  readonly upstream: UpstreamConfig;
  readonly timeouts: TimeoutConfig;
  readonly limits: LimitConfig;
  readonly workers: number;
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
  limits: { maxHeaderBytes: 16 * 1024 } satisfies LimitConfig,
  stickyCookieName: 'sy_affinity',
  failTimeoutMs: 10_000,
  workers: 1,
} as const;

export type SwitchyardConfigInput = {
  listeners: ListenerConfig[];
  upstream: Partial<UpstreamConfig> & { servers: readonly string[] };
  timeouts?: Partial<TimeoutConfig>;
  limits?: Partial<LimitConfig>;
  workers?: number;
};

/** Fills every omitted field with its default. */
export function withDefaults(input: SwitchyardConfigInput, randomSecret: () => string): SwitchyardConfig {
  return {
    listeners: input.listeners,
    upstream: {
      servers: input.upstream.servers,
      sticky: input.upstream.sticky ?? 'none',
      stickySecret: input.upstream.stickySecret ?? randomSecret(),
      stickyCookieName: input.upstream.stickyCookieName ?? DEFAULTS.stickyCookieName,
      failTimeoutMs: input.upstream.failTimeoutMs ?? DEFAULTS.failTimeoutMs,
    },
    timeouts: { ...DEFAULTS.timeouts, ...input.timeouts },
    limits: { ...DEFAULTS.limits, ...input.limits },
    workers: input.workers ?? DEFAULTS.workers,
  };
}
