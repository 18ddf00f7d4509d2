import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfigFile } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { handshakeRequest } from '../helpers/websocket-frames.js';
import { rawExchange } from '../helpers/raw.js';

const SECRET = 'tls-options-test-secret-012345';
const dir = mkdtempSync(join(tmpdir(), 'switchyard-tls-options-'));
let origin: Origin;

function certificate(name: string): void {
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', `/CN=${name}`, '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.pem`),
  ], { stdio: 'ignore' });
}

function writeConfig(file: string, listener: string[], certName = 'first'): string {
  const path = join(dir, file);
  writeFileSync(path, [
    'listeners:',
    '  - address: 127.0.0.1:0',
    ...listener.map((line) => `    ${line.replaceAll('CERT', certName)}`),
    'sites:',
    '  - routes:',
    '      - match: { exact: /local }',
    '        respond: { body: local }',
    `      - to: ${origin.url}`,
  ].join('\n'));
  return path;
}

async function start(path: string): Promise<{ proxy: Switchyard; port: number }> {
  const proxy = await Switchyard.start(loadConfigFile(path, { defaultSecret: SECRET }).config, silentLogger());
  return { proxy, port: proxy.addresses[0]!.port };
}

function get(port: number, path: string, agent?: https.Agent): Promise<{ status: number; headers: Record<string, unknown>; cn: string }> {
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path, rejectUnauthorized: false, ...(agent ? { agent } : { agent: false }) }, (res) => {
      const cn = String((res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN);
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, cn }));
    }).on('error', reject);
  });
}

before(async () => {
  certificate('first');
  certificate('second');
  origin = await startOrigin({ name: 'origin' });
});
after(async () => {
  await origin.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('HSTS', () => {
  test('every response of a TLS listener carries Strict-Transport-Security, over HTTP/1.1 and HTTP/2', { timeout: 20_000 }, async () => {
    const { proxy, port } = await start(writeConfig('hsts.yaml', ['tls: { cert: CERT.pem, key: CERT.key }', 'hsts: { max_age: 1h, include_subdomains: true }']));
    try {
      const proxied = await get(port, '/x');
      assert.equal(proxied.headers['strict-transport-security'], 'max-age=3600; includeSubDomains');
      assert.equal((await get(port, '/local')).headers['strict-transport-security'], 'max-age=3600; includeSubDomains');
      const session = http2.connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
      const stream = session.request({ ':path': '/x' });
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      stream.resume();
      assert.equal(headers['strict-transport-security'], 'max-age=3600; includeSubDomains');
      session.close();
    } finally {
      await proxy.shutdown(0);
    }
  });

  test('hsts on a plain listener is a config error', { timeout: 10_000 }, () => {
    assert.throws(() => loadConfigFile(writeConfig('hsts-plain.yaml', ['hsts: true']), { defaultSecret: SECRET }), /hsts: HSTS is for TLS listeners/);
  });
});

describe('redirect_to_https', () => {
  test('a plain listener answers requests and handshakes with 308 to the same URL over https', { timeout: 20_000 }, async () => {
    const { proxy, port } = await start(writeConfig('redirect.yaml', ['redirect_to_https: { port: 8443 }']));
    try {
      const plain = await rawExchange(port, 'POST /form?a=1 HTTP/1.1\r\nHost: Example.test:8080\r\nContent-Length: 0\r\n\r\n');
      assert.match(plain.response, /^HTTP\/1\.1 308 /);
      assert.match(plain.response, /\r\nLocation: https:\/\/example\.test:8443\/form\?a=1\r\n/);
      const upgrade = await rawExchange(port, handshakeRequest('/ws?room=2', 'example.test'));
      assert.match(upgrade.response, /^HTTP\/1\.1 308 /);
      assert.match(upgrade.response, /\r\nLocation: https:\/\/example\.test:8443\/ws\?room=2\r\n/);
      assert.equal(origin.requests.filter((request) => request.url.startsWith('/form')).length, 0);
    } finally {
      await proxy.shutdown(0);
    }
  });
});

describe('certificate reload', () => {
  test('a reload with new certificate files serves them to new connections; an open connection keeps working', { timeout: 20_000 }, async () => {
    const path = writeConfig('reload.yaml', ['tls: { cert: CERT.pem, key: CERT.key }'], 'first');
    const { proxy, port } = await start(path);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    try {
      assert.equal((await get(port, '/a', agent)).cn, 'first');
      writeConfig('reload.yaml', ['tls: { cert: CERT.pem, key: CERT.key }'], 'second');
      proxy.reload(loadConfigFile(path, { defaultSecret: SECRET }).config);
      const fresh = await get(port, '/b');
      assert.equal(fresh.cn, 'second', 'a new connection gets the new certificate');
      const reused = await get(port, '/c', agent);
      assert.equal(reused.status, 200, 'the connection opened before the reload still serves');
      assert.equal(reused.cn, 'first', 'and it is the same connection, with the old certificate');
    } finally {
      agent.destroy();
      await proxy.shutdown(0);
    }
  });
});

describe('certificate files watched', () => {
  test('switchyard run serves renewed certificate files to new connections without a signal', { timeout: 30_000 }, async () => {
    // The listener reads live.pem/live.key; renewing them is a copy over those names.
    execFileSync('cp', [join(dir, 'first.pem'), join(dir, 'live.pem')]);
    execFileSync('cp', [join(dir, 'first.key'), join(dir, 'live.key')]);
    const path = writeConfig('watched.yaml', ['tls: { cert: CERT.pem, key: CERT.key }'], 'live');
    const bin = new URL('../../../bin/switchyard.js', import.meta.url).pathname;
    const child = spawn(process.execPath, [bin, 'run', '-c', path], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout!.on('data', (chunk) => {
          out += String(chunk);
          const match = /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (match) resolve(Number(match[1]));
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${out}`)));
      });
      assert.equal((await get(port, '/a')).cn, 'first');
      execFileSync('cp', [join(dir, 'second.key'), join(dir, 'live.key')]);
      execFileSync('cp', [join(dir, 'second.pem'), join(dir, 'live.pem')]);
      const deadline = Date.now() + 5_000;
      let cn = '';
      while (Date.now() < deadline) {
        cn = (await get(port, '/b')).cn;
        if (cn === 'second') break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(cn, 'second', 'a new connection gets the renewed certificate');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
