import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { TlsFiles } from '../config/model.js';
import { HostMap } from '../router/host-map.js';

type SniCallback = (name: string, done: (err: Error | null, context?: SecureContext) => void) => void;

/**
 * A TLS listener's certificates: the default one, and more chosen by the name
 * the client asks for (SNI), with the same exact > wildcard > default order as
 * sites. Contexts are built once per version of the files; update() swaps them
 * for new handshakes while open connections keep theirs.
 */
export class ListenerCertificates {
  private byName = new HostMap<SecureContext>();
  private fallback: SecureContext | undefined;
  private current: TlsFiles;

  constructor(tls: TlsFiles) {
    this.current = tls;
    this.build(tls);
  }

  /** Options for the server: the default certificate, and SNI when there are more. */
  serverOptions(): SecureContextOptions & { SNICallback: SniCallback } {
    return { ...baseOptions(this.current), SNICallback: this.sni };
  }

  /** New files (a reload): true when anything changed, with `apply` given the new default options. */
  update(tls: TlsFiles, apply: (options: SecureContextOptions) => void): boolean {
    if (sameFiles(this.current, tls)) return false;
    this.build(tls);
    this.current = tls;
    apply(baseOptions(tls));
    return true;
  }

  private readonly sni: SniCallback = (name, done) => done(null, this.byName.find(name) ?? this.fallback);

  private build(tls: TlsFiles): void {
    const byName = new HostMap<SecureContext>();
    for (const entry of tls.certificates ?? []) {
      const context = createSecureContext({ ...common(tls), cert: entry.cert, key: entry.key });
      for (const host of entry.hosts) byName.add(host, context);
    }
    this.fallback = createSecureContext(baseOptions(tls));
    this.byName = byName;
  }
}

function common(tls: TlsFiles): SecureContextOptions {
  return { minVersion: tls.minVersion ?? 'TLSv1.2', ...(tls.ciphers !== undefined ? { ciphers: tls.ciphers } : {}) };
}

function baseOptions(tls: TlsFiles): SecureContextOptions {
  return { ...common(tls), cert: tls.cert, key: tls.key };
}

function sameFiles(a: TlsFiles, b: TlsFiles): boolean {
  const key = (tls: TlsFiles): string => JSON.stringify([String(tls.cert), String(tls.key), tls.minVersion, tls.ciphers, tls.files,
    (tls.certificates ?? []).map((entry) => [entry.hosts, String(entry.cert), String(entry.key)])]);
  return key(a) === key(b);
}
