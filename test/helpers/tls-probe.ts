import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import { withTimeout } from './cli.js';

export interface TlsProbe {
  /** SHA-256 fingerprint of the certificate the server presented (AA:BB:... form). */
  readonly fingerprint256: string;
  readonly protocol: string | null;
  readonly cipher: string;
  readonly alpn: string | false | null;
}

/**
 * One new TLS connection to 127.0.0.1:PORT (certificate not verified: the
 * caller compares fingerprints): what was negotiated, then closed. Rejects
 * when the handshake fails.
 */
export function tlsProbe(port: number, options: tls.ConnectionOptions = {}, ms = 5_000): Promise<TlsProbe> {
  return withTimeout(new Promise<TlsProbe>((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options }, () => {
      const probe: TlsProbe = {
        fingerprint256: socket.getPeerCertificate().fingerprint256,
        protocol: socket.getProtocol(),
        cipher: socket.getCipher().name,
        alpn: socket.alpnProtocol,
      };
      socket.destroy();
      resolve(probe);
    });
    socket.once('error', (err) => {
      socket.destroy();
      reject(err);
    });
  }), ms, `a TLS handshake with 127.0.0.1:${port}`);
}

/** SHA-256 fingerprint of a PEM certificate, in the form getPeerCertificate() reports. */
export function pemFingerprint(pem: string | Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}
