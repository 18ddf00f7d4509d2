import type { SwitchyardConfig } from '../config/model.js';

const REDACTED = '[redacted]';

/**
 * The running config as JSON for the admin API: maps become objects, and
 * secrets (sticky secrets, the admin token, TLS keys and certificates) are
 * left out. Header values (added or set on requests, sent by health checks,
 * matched on) are redacted too: they often carry API keys.
 */
export function describeConfig(config: SwitchyardConfig): unknown {
  return JSON.parse(JSON.stringify(describeShape(config), redactingReplacer)) as unknown;
}

function redactingReplacer(key: string, value: unknown): unknown {
  const plain = value instanceof Map ? Object.fromEntries(value) as Record<string, unknown> : value;
  if (plain === null || typeof plain !== 'object' || Array.isArray(plain)) return plain;
  if (key === 'headers') return redactValues(plain as Record<string, unknown>);
  if (key === 'requestHeaders' || key === 'responseHeaders') {
    const actions = plain as Record<string, unknown>;
    return { ...actions, ...(actions.set ? { set: redactValues(actions.set as Record<string, unknown>) } : {}), ...(actions.add ? { add: redactValues(actions.add as Record<string, unknown>) } : {}) };
  }
  return plain;
}

function redactValues(record: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.keys(record).map((name) => [name, REDACTED]));
}

function describeShape(config: SwitchyardConfig): unknown {
  return {
    ...(config.file !== undefined ? { file: config.file } : {}),
    workers: config.workers,
    listeners: config.listeners.map(({ tls, ...listener }) => ({ ...listener, tls: tls ? { files: tls.files ?? [], minVersion: tls.minVersion ?? 'TLSv1.2' } : undefined })),
    sites: config.sites,
    upstreams: Object.fromEntries([...config.upstreams].map(([name, upstream]) => {
      const { stickySecret: _secret, tls, ...rest } = upstream;
      return [name, { ...rest, tls: tls ? { servername: tls.servername, insecure: tls.insecure, ca: tls.ca !== undefined, clientCertificate: tls.cert !== undefined } : undefined }];
    })),
    timeouts: config.timeouts,
    limits: config.limits,
    drain: config.drain,
    trustedProxies: config.trustedProxies,
    accessLog: config.accessLog,
    admin: config.admin ? { host: config.admin.host, port: config.admin.port, token: config.admin.token !== undefined } : undefined,
  };
}
