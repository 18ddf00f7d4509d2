import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import tls from 'node:tls';
import { ConfigError, formatIssue } from '../../src/config/config-error.js';
import { loadConfigFile } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';

const SECRET = 'tls-sni-test-secret-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'switchyard-sni-'));

/** A self-signed certificate for these names, written as NAME.pem / NAME.key. */
function certificate(name: string, sans: string[]): void {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${sans[0]}`, '-addext', `subjectAltName=${sans.map((san) => `DNS:${san}`).join(',')}`,
    '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`),
  ], { stdio: 'ignore' });
}

/** The subject CN of the certificate the listener presents for `servername` (none: no SNI). */
function presented(port: number, servername: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername ? { servername } : {}) }, () => {
      const cn = socket.getPeerCertificate().subject?.CN;
      socket.destroy();
      resolve(String(cn));
    });
    socket.on('error', reject);
  });
}

function configFile(tlsBlock: string[]): string {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, [
    'listeners:',
    '  - address: 127.0.0.1:0',
    '    tls:',
    ...tlsBlock.map((line) => `      ${line}`),
    'sites:',
    '  - routes:',
    '      - respond: { body: ok }',
  ].join('\n'));
  return file;
}

before(() => {
  certificate('default', ['default.test']);
  certificate('exact', ['exact.test']);
  certificate('wild', ['*.wild.test']);
  certificate('deeper', ['*.deeper.wild.test']);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe('TLS listener certificates', () => {
  test('SNI picks an exact name, then the longest wildcard, then the default', { timeout: 20_000 }, async () => {
    const file = configFile([
      'cert: default.pem',
      'key: default.key',
      'certificates:',
      '  - { hosts: [exact.test], cert: exact.pem, key: exact.key }',
      '  - { hosts: ["*.wild.test"], cert: wild.pem, key: wild.key }',
      '  - { hosts: ["*.deeper.wild.test"], cert: deeper.pem, key: deeper.key }',
    ]);
    const proxy = await Switchyard.start(loadConfigFile(file, { defaultSecret: SECRET }).config, silentLogger());
    try {
      const port = proxy.addresses[0]!.port;
      assert.equal(await presented(port, 'exact.test'), 'exact.test');
      assert.equal(await presented(port, 'EXACT.test'), 'exact.test');
      assert.equal(await presented(port, 'a.wild.test'), '*.wild.test');
      assert.equal(await presented(port, 'x.deeper.wild.test'), '*.deeper.wild.test');
      assert.equal(await presented(port, 'other.test'), 'default.test');
      assert.equal(await presented(port, undefined), 'default.test');
    } finally {
      await proxy.shutdown(0);
    }
  });

  test('without cert/key the first of certificates is the default', { timeout: 20_000 }, async () => {
    const file = configFile(['certificates:', '  - { hosts: [exact.test], cert: exact.pem, key: exact.key }', '  - { hosts: ["*.wild.test"], cert: wild.pem, key: wild.key }']);
    const proxy = await Switchyard.start(loadConfigFile(file, { defaultSecret: SECRET }).config, silentLogger());
    try {
      const port = proxy.addresses[0]!.port;
      assert.equal(await presented(port, 'nobody.test'), 'exact.test');
      assert.equal(await presented(port, 'a.wild.test'), '*.wild.test');
    } finally {
      await proxy.shutdown(0);
    }
  });

  test('min_version TLSv1.3 refuses a TLS 1.2 client', { timeout: 20_000 }, async () => {
    const file = configFile(['cert: default.pem', 'key: default.key', 'min_version: TLSv1.3']);
    const proxy = await Switchyard.start(loadConfigFile(file, { defaultSecret: SECRET }).config, silentLogger());
    try {
      const port = proxy.addresses[0]!.port;
      await assert.rejects(new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, maxVersion: 'TLSv1.2' }, () => resolve(socket.destroy()));
        socket.on('error', reject);
      }));
      assert.equal(await presented(port, undefined), 'default.test');
    } finally {
      await proxy.shutdown(0);
    }
  });

  test('a key that is not the certificate\'s, or a file that is not PEM, is a config error naming the files', { timeout: 20_000 }, () => {
    writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
    const problems = (block: string[]): string[] => {
      try {
        loadConfigFile(configFile(block), { defaultSecret: SECRET });
        return [];
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.issues.map(formatIssue);
      }
    };
    const mismatch = problems(['cert: default.pem', 'key: exact.key']);
    assert.equal(mismatch.length, 1);
    assert.match(mismatch[0]!, /:4:7: listeners\[0\]\.tls: default\.pem and exact\.key are not a usable certificate and key: .*key values mismatch/);
    const garbage = problems(['certificates:', '  - { hosts: [a.test], cert: garbage.pem, key: exact.key }']);
    assert.equal(garbage.length, 1);
    assert.match(garbage[0]!, /listeners\[0\]\.tls\.certificates\[0\]: garbage\.pem and exact\.key are not a usable certificate and key/);
    assert.match(problems(['cert: default.pem'])[0]!, /listeners\[0\]\.tls: cert and key go together/);
    assert.match(problems(['min_version: TLSv1.2'])[0]!, /give cert and key, or certificates/);
  });
});
