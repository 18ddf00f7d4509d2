/**
 * `switchyard probe` (the real CLI) over HTTP/2 extended CONNECT (RFC 8441),
 * against real servers: Switchyard on TLS listeners in front of a `ws` echo
 * origin (WebSockets over HTTP/2 on, off with `websocket_over_http2: false`,
 * HTTP/2 off with `http2: false`, a certificate for another name), and a
 * node:http2 server that offers RFC 8441 but refuses the CONNECT (403, 421,
 * RST_STREAM).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { selfSignedCertificate, type TestCertificate } from '../helpers/certs.js';
import { stopSwitchyards } from '../helpers/cli.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { probe, type ProbeJson, type ProbeVariant } from '../helpers/probe-cli.js';
import { waitFor } from '../helpers/raw.js';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { AccessLog } from '../../src/observe/access-log.js';
import { Switchyard } from '../../src/server/switchyard.js';

function http2Variant(json: ProbeJson | undefined): ProbeVariant {
  const variant = json?.variants.find((candidate) => candidate.form === 'http2');
  assert.ok(variant, `no http2 variant in ${JSON.stringify(json)}`);
  return variant;
}

/** A self-signed certificate for other.example only (not localhost, not 127.0.0.1). */
async function otherNameCertificate(dir: string): Promise<{ certFile: string; keyFile: string }> {
  const certFile = join(dir, 'other-cert.pem');
  const keyFile = join(dir, 'other-key.pem');
  await new Promise<void>((resolve, reject) => {
    execFile('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=other.example',
      '-addext', 'subjectAltName=DNS:other.example', '-days', '1', '-keyout', keyFile, '-out', certFile,
    ], { timeout: 30_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`openssl failed: ${err.message} ${stderr}`)) : resolve()));
  });
  return { certFile, keyFile };
}

const H1_FORMS = ['chromium', 'firefox', 'keep-alive-upgrade', 'safari', 'minimal'];

let origin: Origin;
let cert: TestCertificate;
let dir: string;
let other: { certFile: string; keyFile: string };
let proxy: Switchyard;
let accessLogFile: string;
let accessLog: AccessLog | undefined;

/** Listeners: 0 default TLS, 1 websocket_over_http2: false, 2 http2: false, 3 a certificate for other.example. */
const port = (index: number): number => proxy.addresses[index]!.port;

before(async () => {
  origin = await startOrigin({ name: 'echo' });
  cert = await selfSignedCertificate('switchyard-probe-h2-');
  dir = mkdtempSync(join(tmpdir(), 'switchyard-probe-h2-'));
  other = await otherNameCertificate(dir);
  accessLogFile = join(dir, 'access.log');
  const tls = `tls: { cert: ${cert.certFile}, key: ${cert.keyFile} }`;
  const { config } = loadConfigText(`
access_log: { path: ${accessLogFile}, format: json }
listeners:
  - address: 127.0.0.1:0
    ${tls}
  - address: 127.0.0.1:0
    ${tls}
    websocket_over_http2: false
  - address: 127.0.0.1:0
    ${tls}
    http2: false
  - address: 127.0.0.1:0
    tls: { cert: ${other.certFile}, key: ${other.keyFile} }
sites:
  - routes:
      - to: ${origin.url}
`, join(dir, 'probe.yaml'), { env: {}, defaultSecret: 'probe-secret-0123456789abcdef' });
  // As `switchyard run` does: the access log is the caller's.
  accessLog = new AccessLog(config.accessLog || { path: accessLogFile, format: 'json' }, silentLogger());
  proxy = await Switchyard.start(config, silentLogger(), { accessLog });
}, { timeout: 30_000 });

after(async () => {
  await stopSwitchyards();
  await proxy?.shutdown(0);
  accessLog?.close();
  await origin?.close();
  cert?.remove();
  rmSync(dir, { recursive: true, force: true });
}, { timeout: 15_000 });

describe('probe over HTTP/2 through Switchyard', () => {
  test('a TLS listener: the five HTTP/1.1 forms and then http2 pass; http2 echoes over an RFC 8441 stream (the access log says h2) with its timings', { timeout: 30_000 }, async () => {
    const { code, json, stdout } = await probe([`wss://localhost:${port(0)}/chat?room=1`, '--json', '--ca', cert.certFile, '--protocol', 'chat']);
    assert.equal(code, 0, stdout);
    assert.equal(json?.ok, true);
    assert.deepEqual(json!.variants.map((variant) => variant.form), [...H1_FORMS, 'http2']);
    assert.ok(json!.variants.filter((variant) => variant.form !== 'http2').every((variant) => variant.transport === 'http/1.1' && variant.applicable));
    const h2 = http2Variant(json);
    assert.equal(h2.transport, 'h2');
    assert.equal(h2.applicable, true);
    assert.equal(h2.ok, true);
    assert.equal(h2.alpn, 'h2');
    assert.equal(h2.status, 200);
    assert.equal(h2.echo, 'echoed');
    assert.equal(h2.closeCode, 1000);
    assert.equal(h2.subprotocol, 'chat');
    assert.match(h2.diagnosis, /^upgraded over HTTP\/2; text and binary messages echoed, clean close \(1000\)$/);
    for (const timing of ['dnsMs', 'tcpMs', 'tlsMs', 'handshakeMs', 'echoMs']) assert.equal(typeof h2.timings[timing], 'number', timing);
    assert.equal(json!.comparison, undefined);

    // The origin saw the http2 variant's handshake (Switchyard bridges RFC 8441 to HTTP/1.1): the last one, Chromium's UA, the Origin.
    const handshake = origin.handshakes.at(-1)!;
    assert.equal(handshake.url, '/chat?room=1');
    assert.equal(handshake.headers.origin, `https://localhost:${port(0)}`);
    assert.match(handshake.headers['user-agent'] ?? '', /Chrome\/131/);
    // Switchyard logged the tunnels: five over HTTP/1.1, one over HTTP/2.
    const tunnels = (): { protocol: string; path: string }[] => readFileSync(accessLogFile, 'utf8').split('\n').filter((line) => line.includes('"type":"tunnel"'))
      .map((line) => JSON.parse(line) as { protocol: string; path: string }).filter((record) => record.path === '/chat?room=1');
    await waitFor(() => {
      accessLog!.flush();
      try {
        return tunnels().length >= 6;
      } catch {
        return false;
      }
    }, 5_000, 'six tunnel lines in the access log');
    assert.deepEqual(tunnels().map((record) => record.protocol).sort(), ['h1', 'h1', 'h1', 'h1', 'h1', 'h2']);
  });

  test('websocket_over_http2: false: http2 is not applicable ("does not offer WebSockets over it"), the rest pass, exit 0', { timeout: 30_000 }, async () => {
    const { code, json, stdout } = await probe([`wss://localhost:${port(1)}/`, '--json', '--ca', cert.certFile]);
    assert.equal(code, 0, stdout);
    assert.equal(json!.ok, true);
    const h2 = http2Variant(json);
    assert.equal(h2.applicable, false);
    assert.equal(h2.ok, true);
    assert.equal(h2.alpn, 'h2');
    assert.equal(h2.status, undefined);
    assert.equal(h2.diagnosis, 'the server speaks HTTP/2 but does not offer WebSockets over it (no SETTINGS_ENABLE_CONNECT_PROTOCOL): browsers will use HTTP/1.1');
    assert.ok(json!.variants.filter((variant) => variant.form !== 'http2').every((variant) => variant.ok && variant.echo === 'echoed'));
    assert.equal(json!.comparison, undefined);
  });

  test('http2: false (the server speaks only HTTP/1.1): http2 is skipped ("ALPN chose http/1.1"), exit 0; the text output says SKIP', { timeout: 30_000 }, async () => {
    const { code, json, stdout } = await probe([`https://localhost:${port(2)}/`, '--json', '--ca', cert.certFile]);
    assert.equal(code, 0, stdout);
    const h2 = http2Variant(json);
    assert.equal(h2.applicable, false);
    assert.equal(h2.alpn, 'http/1.1');
    assert.equal(h2.diagnosis, 'the server does not speak HTTP/2 (ALPN chose http/1.1)');
    assert.equal(typeof h2.timings.tlsMs, 'number');
    const text = await probe([`wss://localhost:${port(2)}/`, '--ca', cert.certFile, '--form', 'minimal', '--form', 'http2']);
    assert.equal(text.code, 0, text.stdout);
    assert.match(text.stdout, /minimal +PASS 101 upgraded;/);
    assert.match(text.stdout, /http2 +SKIP --- the server does not speak HTTP\/2 \(ALPN chose http\/1\.1\)/);
  });

  test('a certificate for another name: http2 names the certificate problem (exit 1); --insecure applies to http2 too', { timeout: 30_000 }, async () => {
    const wrong = await probe([`wss://localhost:${port(3)}/`, '--json', '--ca', other.certFile]);
    assert.equal(wrong.code, 1);
    const h2 = http2Variant(wrong.json);
    assert.equal(h2.applicable, true);
    assert.equal(h2.ok, false);
    assert.equal(h2.diagnosis, 'certificate not valid for localhost');
    assert.match(h2.error ?? '', /ERR_TLS_CERT_ALTNAME_INVALID/);
    const untrusted = await probe([`wss://localhost:${port(3)}/`, '--json', '--form', 'http2']);
    assert.equal(untrusted.code, 1);
    assert.match(http2Variant(untrusted.json).diagnosis, /self-signed/);
    const insecure = await probe([`wss://localhost:${port(3)}/`, '--json', '--form', 'http2', '--insecure']);
    assert.equal(insecure.code, 0, insecure.stdout);
    assert.equal(http2Variant(insecure.json).echo, 'echoed');
  });

  test('--form http2 alone: one variant, text output, the idle hold over an HTTP/2 stream; usage errors', { timeout: 30_000 }, async () => {
    const text = await probe([`wss://localhost:${port(0)}/`, '--form', 'http2', '--ca', cert.certFile]);
    assert.equal(text.code, 0, text.stdout);
    assert.match(text.stdout, /http2 +PASS 200 upgraded over HTTP\/2; text and binary messages echoed, clean close \(1000\)/);
    assert.match(text.stdout, /dns [\d.]+ms tcp [\d.]+ms tls [\d.]+ms handshake [\d.]+ms echo [\d.]+ms/);
    assert.doesNotMatch(text.stdout, /chromium|minimal/);
    const idle = await probe([`wss://localhost:${port(0)}/`, '--form', 'http2', '--ca', cert.certFile, '--json', '--idle', '1s']);
    assert.equal(idle.code, 0, idle.stdout);
    assert.deepEqual(idle.json!.variants.map((variant) => variant.form), ['http2']);
    assert.equal(idle.json!.idle?.endedAfterMs, undefined);
    assert.match(idle.json!.idle!.diagnosis, /still open after 1\.0 s idle/);
    const noHttp2 = await probe([`wss://localhost:${port(0)}/`, '--json', '--ca', cert.certFile, '--no-http2']);
    assert.equal(noHttp2.code, 0, noHttp2.stdout);
    assert.deepEqual(noHttp2.json!.variants.map((variant) => variant.form), H1_FORMS);
    for (const args of [['ws://127.0.0.1:1/', '--form', 'http2'], ['wss://127.0.0.1:1/', '--form', 'http2', '--no-http2']]) {
      const bad = await probe(args);
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    }
  });
});

describe('probe against an HTTP/2 server that offers RFC 8441 and refuses the CONNECT', () => {
  let server: http2.Http2SecureServer;
  let h2Port = 0;
  before(async () => {
    server = http2.createSecureServer({ cert: cert.cert, key: cert.key, settings: { enableConnectProtocol: true } });
    server.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      const path = headers[':path'];
      if (path === '/forbidden') stream.respond({ ':status': 403 }, { endStream: true });
      else if (path === '/misdirected') stream.respond({ ':status': 421 }, { endStream: true });
      else stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    h2Port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
  });

  test('403 fails the http2 variant with its diagnosis, exit 1; 421 and RST_STREAM are named', { timeout: 30_000 }, async () => {
    const forbidden = await probe([`wss://localhost:${h2Port}/forbidden`, '--json', '--form', 'http2', '--ca', cert.certFile]);
    assert.equal(forbidden.code, 1);
    const refused = http2Variant(forbidden.json);
    assert.equal(refused.applicable, true);
    assert.equal(refused.ok, false);
    assert.equal(refused.status, 403);
    assert.match(refused.diagnosis, /^403: refused by access control or an Origin policy/);
    assert.equal(typeof refused.timings.handshakeMs, 'number');

    const misdirected = await probe([`wss://localhost:${h2Port}/misdirected`, '--json', '--form', 'http2', '--ca', cert.certFile]);
    assert.equal(misdirected.code, 1);
    assert.equal(http2Variant(misdirected.json).diagnosis, 'the hop refuses WebSockets over HTTP/2 for this name (421): clients retry over HTTP/1.1');

    const reset = await probe([`wss://localhost:${h2Port}/reset`, '--form', 'http2', '--ca', cert.certFile]);
    assert.equal(reset.code, 1);
    assert.match(reset.stdout, /http2 +FAIL --- the server refused the stream \(RST_STREAM REFUSED_STREAM\)/);
  });
});
