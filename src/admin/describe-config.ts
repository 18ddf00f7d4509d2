import type { SwitchyardConfig } from '../config/model.js';

/**
 * The running config as JSON for the admin API: maps become objects, and
 * secrets (sticky secrets, the admin token, TLS keys and certificates) are
 * left out.
 */
export function describeConfig(config: SwitchyardConfig): unknown {
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
    accessLog: config.accessLog,
    admin: config.admin ? { host: config.admin.host, port: config.admin.port, token: config.admin.token !== undefined } : undefined,
  };
}
