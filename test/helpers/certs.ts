import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCertificate {
  readonly dir: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  /** Deletes the folder. */
  remove(): void;
}

/** A self-signed RSA certificate for localhost and 127.0.0.1, made by openssl in a fresh temp folder. */
export async function selfSignedCertificate(prefix: string): Promise<TestCertificate> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  await new Promise<void>((resolve, reject) => {
    execFile('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1',
      '-keyout', keyFile, '-out', certFile,
    ], { timeout: 30_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`openssl failed: ${err.message} ${stderr}`)) : resolve()));
  });
  return {
    dir, certFile, keyFile,
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
