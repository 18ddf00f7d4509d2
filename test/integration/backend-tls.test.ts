import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { loadConfigText } from '../../src/config/load.js';
import type { ConfigIssue } from '../../src/config/config-error.js';
import type { Logger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { waitFor } from '../helpers/raw.js';

// ---------------------------------------------------------------------------
// https/wss backends: a private CA made with openssl, SNI and name checks,
// client certificates (mTLS) and `insecure`, through a real Switchyard.
// ---------------------------------------------------------------------------

interface Pki {
  readonly dir: string;
  /** File paths. */
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly selfCert: string;
  readonly selfKey: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * A private CA; a server certificate for DNS:localhost and IP:127.0.0.1 and a
 * client certificate (CN switchyard-proxy), both signed by it; and a self-signed
 * server certificate no CA vouches for.
 */
function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-tls-'));
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Switchyard Test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n');
  for (const [name, subject] of [['server', '/CN=localhost'], ['client', '/CN=switchyard-proxy']] as const) {
    openssl(dir, ['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject]);
    openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`]);
  }
  openssl(dir, ['req', '-x509', ...ec, '-keyout', 'self.key', '-out', 'self.pem', '-days', '2', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1']);
  return {
    dir,
    caCert: join(dir, 'ca.pem'),
    serverCert: join(dir, 'server.pem'),
    serverKey: join(dir, 'server.key'),
    clientCert: join(dir, 'client.pem'),
    clientKey: join(dir, 'client.key'),
    selfCert: join(dir, 'self.pem'),
    selfKey: join(dir, 'self.key'),
  };
}

interface TlsOrigin {
  readonly port: number;
  /** HTTP requests received, with the client certificate's CN (if any). */
  readonly requests: { url: string; clientCn: string | undefined }[];
  /** WebSocket handshakes accepted, with the client certificate's CN (if any). */
  readonly handshakes: { url: string; clientCn: string | undefined }[];
  /** The SNI name of each TLS connection (undefined: none sent). */
  readonly servernames: (string | undefined)[];
  close(): Promise<void>;
}

interface TlsOriginOptions {
  readonly cert: string;
  readonly key: string;
  /** Require a client certificate signed by this CA. */
  readonly clientCa?: string;
}

function peerCn(socket: Socket): string | undefined {
  const cert = (socket as TLSSocket).getPeerCertificate?.();
  const cn = cert?.subject?.CN;
  return typeof cn === 'string' && cn !== '' ? cn : undefined;
}

/** An https + wss origin on 127.0.0.1: echoes requests as JSON; WebSockets echo every message. */
async function startTlsOrigin(options: TlsOriginOptions): Promise<TlsOrigin> {
  const requests: TlsOrigin['requests'] = [];
  const handshakes: TlsOrigin['handshakes'] = [];
  const servernames: (string | undefined)[] = [];
  const server = https.createServer({
    cert: readFileSync(options.cert),
    key: readFileSync(options.key),
    ...(options.clientCa ? { ca: readFileSync(options.clientCa), requestCert: true, rejectUnauthorized: true } : {}),
  }, (req, res) => {
    req.resume();
    req.on('end', () => {
      const clientCn = peerCn(req.socket);
      requests.push({ url: req.url ?? '', clientCn });
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Origin': 'tls-origin' });
      res.end(JSON.stringify({ url: req.url, clientCn: clientCn ?? null, encrypted: (req.socket as TLSSocket).encrypted === true }));
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => undefined);
    wss.handleUpgrade(req, socket, head, (ws) => {
      handshakes.push({ url: req.url ?? '', clientCn: peerCn(socket) });
      ws.on('error', () => ws.terminate());
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  server.on('tlsClientError', () => undefined);
  server.on('secureConnection', (socket: TLSSocket) => {
    servernames.push((socket as TLSSocket & { servername?: string | false }).servername || undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    requests,
    handshakes,
    servernames,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly code?: string;
  readonly err?: unknown;
  readonly [key: string]: unknown;
}

/** A pino logger (debug) whose JSON lines the test reads. */
function capturingLogger(): { log: Logger; lines(): LogLine[] } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      text += String(chunk);
      callback();
    },
  });
  return {
    log: pino({ level: 'debug' }, stream),
    lines: () => text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as LogLine),
  };
}

interface Running {
  readonly port: number;
  readonly warnings: readonly ConfigIssue[];
  close(): Promise<void>;
}

/** Switchyard with one catch-all route to upstream "app" (the given YAML lines). */
async function startProxy(upstreamBody: string, log: Logger = capturingLogger().log): Promise<Running> {
  const body = upstreamBody.replace(/^\n/, '').replace(/\n\s*$/, '').split('\n');
  const indent = Math.min(...body.filter((line) => line.trim() !== '').map((line) => /^ */.exec(line)![0].length));
  const yaml = `listeners:\n  - address: 127.0.0.1:0\nsites:\n  - routes:\n      - to: app\nupstreams:\n  app:\n${body.map((line) => `    ${line.slice(indent)}`).join('\n')}\n`;
  const { config, warnings } = loadConfigText(yaml, join(tmpdir(), 'backend-tls.test.yaml'), { env: {}, defaultSecret: 'backend-tls-test-secret-0123456789' });
  const proxy = await Switchyard.start(config, log);
  return { port: proxy.addresses[0]!.port, warnings, close: () => proxy.shutdown(0) };
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** GET 127.0.0.1:`port``path`, with the given Host header when `host` is set. */
function get(port: number, path: string, host?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, ...(host !== undefined ? { headers: { Host: host } } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

function describeReply(reply: Reply): string {
  return `${reply.status} ${String(reply.headers['x-switchyard-error'] ?? '')} ${reply.body.slice(0, 300)}`;
}

type Handshake = { readonly opened: true; readonly ws: WebSocket } | { readonly opened: false; readonly status: number; readonly headers: IncomingHttpHeaders };

function handshake(port: number, path: string): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
    ws.on('error', reject);
    ws.once('open', () => resolve({ opened: true, ws }));
    ws.once('unexpected-response', (req, res) => {
      resolve({ opened: false, status: res.statusCode ?? 0, headers: res.headers });
      res.resume();
      req.destroy();
    });
  });
}

/** Opens a WebSocket through the proxy, checks an echo round trip, closes it. */
async function assertTunnelEchoes(port: number, path: string): Promise<void> {
  const result = await handshake(port, path);
  assert.equal(result.opened, true, result.opened ? '' : `handshake answered ${result.status} ${String(result.headers['x-switchyard-error'] ?? '')}`);
  if (!result.opened) return;
  const { ws } = result;
  try {
    const echoed = new Promise<string>((resolve, reject) => {
      ws.once('message', (data) => resolve(String(data)));
      ws.once('close', () => reject(new Error('closed before the echo')));
    });
    ws.send(`over tls ${path}`);
    assert.equal(await echoed, `over tls ${path}`);
  } finally {
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.terminate();
    await closed;
  }
}

async function assertHandshakeRefused(port: number, path: string, code?: string): Promise<void> {
  const result = await handshake(port, path);
  if (result.opened) {
    result.ws.terminate();
    assert.fail('the handshake went through');
  }
  assert.equal(result.status, 502);
  if (code !== undefined) assert.equal(result.headers['x-switchyard-error'], code);
}

function tlsFailureLines(lines: readonly LogLine[]): LogLine[] {
  return lines.filter((line) => line.code === 'SY_UPSTREAM_TLS' && line.level === 40);
}

// ---------------------------------------------------------------------------

let pki: Pki;
before(() => {
  pki = makePki();
});
after(() => {
  rmSync(pki.dir, { recursive: true, force: true });
});

describe('backends behind TLS', () => {
  test('with tls.ca: HTTPS requests and wss tunnels work, to https://127.0.0.1 (IP SAN) and wss://localhost (DNS SAN)', { timeout: 20_000 }, async () => {
    const origin = await startTlsOrigin({ cert: pki.serverCert, key: pki.serverKey });
    const byIp = await startProxy(`
      servers: [https://127.0.0.1:${origin.port}]
      tls: { ca: ${pki.caCert} }
    `);
    const byName = await startProxy(`
      servers: [wss://localhost:${origin.port}]
      tls: { ca: ${pki.caCert} }
    `);
    try {
      for (const proxy of [byIp, byName]) {
        const reply = await get(proxy.port, '/secure?x=1');
        assert.equal(reply.status, 200, describeReply(reply));
        assert.equal(reply.headers['x-origin'], 'tls-origin');
        assert.deepEqual(JSON.parse(reply.body), { url: '/secure?x=1', clientCn: null, encrypted: true });
        await assertTunnelEchoes(proxy.port, '/ws/secure');
      }
      assert.equal(origin.requests.length, 2);
      assert.deepEqual(origin.handshakes.map((entry) => entry.url), ['/ws/secure', '/ws/secure']);
    } finally {
      await Promise.all([byIp.close(), byName.close()]);
      await origin.close();
    }
  });

  test('https://IP: the certificate is checked against the URL\'s address, not the client\'s Host, for requests and handshakes alike (regression)', { timeout: 20_000 }, async () => {
    const origin = await startTlsOrigin({ cert: pki.serverCert, key: pki.serverKey });
    const proxy = await startProxy(`
      servers: [https://127.0.0.1:${origin.port}]
      tls: { ca: ${pki.caCert} }
    `);
    try {
      // The client names a public host; the backend's certificate names 127.0.0.1 only.
      const reply = await get(proxy.port, '/by-ip', 'app.example.com');
      assert.equal(reply.status, 200, describeReply(reply));
      const ws = new WebSocket(`ws://127.0.0.1:${proxy.port}/ws/by-ip`, { headers: { Host: 'app.example.com' } });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode ?? 0}`)));
      });
      ws.terminate();
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('https://NAME: SNI and the certificate check use the URL\'s name, not the client\'s Host (regression)', { timeout: 20_000 }, async () => {
    const origin = await startTlsOrigin({ cert: pki.serverCert, key: pki.serverKey });
    const proxy = await startProxy(`
      servers: [https://localhost:${origin.port}]
      tls: { ca: ${pki.caCert} }
    `);
    try {
      const reply = await get(proxy.port, '/by-name', 'public.example.test');
      assert.equal(reply.status, 200, describeReply(reply));
      assert.equal(origin.servernames.at(-1), 'localhost');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('without tls.ca (the system store): 502 SY_UPSTREAM_TLS for requests and handshakes', { timeout: 20_000 }, async () => {
    const origin = await startTlsOrigin({ cert: pki.serverCert, key: pki.serverKey });
    const capture = capturingLogger();
    const proxy = await startProxy(`
      servers: [https://localhost:${origin.port}]
    `, capture.log);
    try {
      const reply = await get(proxy.port, '/untrusted');
      assert.equal(reply.status, 502, describeReply(reply));
      assert.equal(reply.headers['x-switchyard-error'], 'SY_UPSTREAM_TLS');
      await assertHandshakeRefused(proxy.port, '/ws/untrusted', 'SY_UPSTREAM_TLS');
      assert.deepEqual(origin.requests, [], 'a request got through an unverified connection');
      assert.deepEqual(origin.handshakes, []);
      const failures = tlsFailureLines(capture.lines());
      assert.ok(failures.length >= 2, `no warn line with SY_UPSTREAM_TLS for each failure: ${JSON.stringify(capture.lines())}`);
      assert.match(JSON.stringify(failures[0]), /certificate/i);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('tls.servername not in the certificate: 502 SY_UPSTREAM_TLS and a warn log line naming the mismatch', { timeout: 20_000 }, async () => {
    const origin = await startTlsOrigin({ cert: pki.serverCert, key: pki.serverKey });
    const capture = capturingLogger();
    const wrong = await startProxy(`
      servers: [https://127.0.0.1:${origin.port}]
      tls: { ca: ${pki.caCert}, servername: wrong.test }
    `, capture.log);
    const right = await startProxy(`
      servers: [https://127.0.0.1:${origin.port}]
      tls: { ca: ${pki.caCert}, servername: localhost }
    `);
    try {
      const reply = await get(wrong.port, '/wrong-name');
      assert.equal(reply.status, 502, describeReply(reply));
      assert.equal(reply.headers['x-switchyard-error'], 'SY_UPSTREAM_TLS');
      await assertHandshakeRefused(wrong.port, '/ws/wrong-name', 'SY_UPSTREAM_TLS');
      assert.deepEqual(origin.requests, []);
      assert.deepEqual(origin.handshakes, []);

      await waitFor(() => tlsFailureLines(capture.lines()).length >= 2, 2_000, 'a warn line per TLS failure');
      for (const line of tlsFailureLines(capture.lines())) {
        const text = `${line.msg} ${typeof line.err === 'string' ? line.err : JSON.stringify(line.err)}`;
        assert.match(text, /wrong\.test/, `the log line does not name the requested name: ${JSON.stringify(line)}`);
        assert.match(text, /altnames|certificate/i, `the log line does not say the certificate does not match: ${JSON.stringify(line)}`);
        assert.match(JSON.stringify(line), new RegExp(`127\\.0\\.0\\.1:${origin.port}`), `the log line does not name the server: ${JSON.stringify(line)}`);
      }

      // The name the certificate does carry, sent as SNI to an IP URL, works.
      const ok = await get(right.port, '/right-name');
      assert.equal(ok.status, 200, describeReply(ok));
      await assertTunnelEchoes(right.port, '/ws/right-name');
    } finally {
      await Promise.all([wrong.close(), right.close()]);
      await origin.close();
    }
  });

  test('mTLS: a backend requiring a client certificate refuses the proxy without tls.cert/key (502) and accepts it with them', { timeout: 20_000 }, async () => {
    const origin = await startTlsOrigin({ cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert });
    const anonymous = await startProxy(`
      servers: [https://localhost:${origin.port}]
      tls: { ca: ${pki.caCert} }
    `);
    const identified = await startProxy(`
      servers: [https://localhost:${origin.port}]
      tls: { ca: ${pki.caCert}, cert: ${pki.clientCert}, key: ${pki.clientKey} }
    `);
    try {
      const refused = await get(anonymous.port, '/no-client-cert');
      assert.equal(refused.status, 502, describeReply(refused));
      await assertHandshakeRefused(anonymous.port, '/ws/no-client-cert');
      assert.deepEqual(origin.requests, [], 'the backend answered a client without a certificate');
      assert.deepEqual(origin.handshakes, []);

      const reply = await get(identified.port, '/client-cert');
      assert.equal(reply.status, 200, describeReply(reply));
      assert.deepEqual(JSON.parse(reply.body), { url: '/client-cert', clientCn: 'switchyard-proxy', encrypted: true });
      await assertTunnelEchoes(identified.port, '/ws/client-cert');
      assert.deepEqual(origin.handshakes, [{ url: '/ws/client-cert', clientCn: 'switchyard-proxy' }]);
    } finally {
      await Promise.all([anonymous.close(), identified.close()]);
      await origin.close();
    }
  });

  test('mTLS: a backend refusing the proxy for want of a client certificate is a TLS failure (SY_UPSTREAM_TLS), for requests as for handshakes', { timeout: 20_000 }, async () => {
    const origin = await startTlsOrigin({ cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert });
    const capture = capturingLogger();
    const anonymous = await startProxy(`
      servers: [https://localhost:${origin.port}]
      tls: { ca: ${pki.caCert} }
      retries: 0
    `, capture.log);
    try {
      await assertHandshakeRefused(anonymous.port, '/ws/no-client-cert', 'SY_UPSTREAM_TLS');
      const refused = await get(anonymous.port, '/no-client-cert');
      assert.equal(refused.status, 502, describeReply(refused));
      // With TLS 1.3 the backend's "certificate required" alert comes after the
      // handshake; it is still TLS failing, not the backend closing before answering.
      assert.equal(refused.headers['x-switchyard-error'], 'SY_UPSTREAM_TLS', `a refused client certificate reported as ${describeReply(refused)}`);
      const failures = tlsFailureLines(capture.lines());
      assert.equal(failures.length, 2, `expected a warn line with SY_UPSTREAM_TLS per failure: ${JSON.stringify(capture.lines())}`);
      for (const line of failures) assert.match(String(line.err), /certificate/i, `the log line does not name the certificate: ${JSON.stringify(line)}`);
    } finally {
      await anonymous.close();
      await origin.close();
    }
  });

  test('insecure: true reaches a self-signed backend, and loading the config warns about it', { timeout: 20_000 }, async () => {
    const origin = await startTlsOrigin({ cert: pki.selfCert, key: pki.selfKey });
    const strict = await startProxy(`
      servers: [https://localhost:${origin.port}]
    `);
    const capture = capturingLogger();
    const insecure = await startProxy(`
      servers: [https://localhost:${origin.port}]
      tls: { insecure: true }
    `, capture.log);
    try {
      assert.deepEqual(strict.warnings, []);
      const warning = insecure.warnings.find((issue) => issue.path.includes('insecure'));
      assert.ok(warning, `no warning about insecure: ${JSON.stringify(insecure.warnings)}`);
      assert.equal(warning.severity, 'warning');
      assert.match(warning.message, /verif/i);
      assert.ok(warning.line > 0, 'the warning has no line');
      // Start-up says so too, naming the upstream.
      const startWarning = capture.lines().find((line) => line.level === 40 && /insecure|verification/i.test(line.msg));
      assert.ok(startWarning, `no start-up warning about tls.insecure: ${JSON.stringify(capture.lines())}`);
      assert.equal(startWarning.upstream, 'app');

      const refused = await get(strict.port, '/self-signed');
      assert.equal(refused.status, 502, describeReply(refused));
      assert.equal(refused.headers['x-switchyard-error'], 'SY_UPSTREAM_TLS');

      const reply = await get(insecure.port, '/self-signed');
      assert.equal(reply.status, 200, describeReply(reply));
      assert.equal(JSON.parse(reply.body).encrypted, true);
      await assertTunnelEchoes(insecure.port, '/ws/self-signed');
    } finally {
      await Promise.all([strict.close(), insecure.close()]);
      await origin.close();
    }
  });
});
