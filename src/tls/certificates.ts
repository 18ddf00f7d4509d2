import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { TlsFiles } from '../config/model.js';
import { HostMap } from '../router/host-map.js';

/**
 * A TLS listener's certificates: the default one, and more chosen by the name
 * the client asks for (SNI), with the same exact > wildcard > default order as
 * sites. Contexts are built once; the callback only looks one up.
 */
export function tlsServerOptions(tls: TlsFiles): SecureContextOptions & { SNICallback?: (name: string, done: (err: Error | null, context?: SecureContext) => void) => void } {
  const common = { minVersion: tls.minVersion ?? 'TLSv1.2', ...(tls.ciphers !== undefined ? { ciphers: tls.ciphers } : {}) } as const;
  const options = { ...common, cert: tls.cert, key: tls.key };
  if (!tls.certificates || tls.certificates.length === 0) return options;
  const byName = new HostMap<SecureContext>();
  for (const entry of tls.certificates) {
    const context = createSecureContext({ ...common, cert: entry.cert, key: entry.key });
    for (const host of entry.hosts) byName.add(host, context);
  }
  const fallback = createSecureContext(options);
  return {
    ...options,
    SNICallback: (name, done) => done(null, byName.find(name) ?? fallback),
  };
}
