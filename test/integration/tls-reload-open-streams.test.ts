/**
 * TLS listener `ciphers`, and certificate reloads while streams are open.
 *
 * - `tls.ciphers` (TLS 1.2): a client forced to TLS 1.2 that offers only the
 *   configured cipher negotiates it; one offering only another cipher fails
 *   the handshake; the proxy keeps serving; a reload swaps the list for new
 *   handshakes only.
 * - `switchyard run -c FILE` with an HTTP/1.1 WebSocket over TLS and an HTTP/2
 *   RFC 8441 WebSocket open: the certificate is replaced (SIGHUP with the config
 *   naming new files; files overwritten in place + SIGHUP; files renamed over,
 *   no signal: the certificate file watch). A new TLS connection sees the new
 *   certificate (fingerprint256), while the old WebSockets keep exchanging
 *   messages both ways on their old connections (old certificate), and the old
 *   HTTP/2 session still opens new streams.
 * Real origins and clients on 127.0.0.1, port 0.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { after, afterEach, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { loadConfigFile } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { selfSignedCertificate, type TestCertificate } from '../helpers/certs.js';
import { cleanupsAfterEach, type CliProcess, spawnSwitchyard, stopSwitchyards, withTimeout } from '../helpers/cli.js';
import { closeSession, h2Connect, h2Get, openH2WebSocket, OP_CLOSE, type H2WebSocket } from '../helpers/h2-websocket.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { sleep, waitFor } from '../helpers/raw.js';
import { clientFrame } from '../helpers/websocket-frames.js';
import { pemFingerprint, tlsProbe } from '../helpers/tls-probe.js';

const SECRET = 'tls-reload-open-streams-secret-0123';
// The test certificates are RSA (test/helpers/certs.ts), so the TLS 1.2 suites are ECDHE-RSA-*.
const CIPHER_A = 'ECDHE-RSA-AES128-GCM-SHA256';
const CIPHER_B = 'ECDHE-RSA-AES256-GCM-SHA384';
const CIPHER_C = 'ECDHE-RSA-CHACHA20-POLY1305';

let first: TestCertificate;
let second: TestCertificate;
let firstFingerprint = '';
let secondFingerprint = '';
let origin: Origin;
/** The origin's side of each accepted WebSocket, by handshake path. */
const originSockets = new Map<string, import('ws').WebSocket>();

before(async () => {
  // Two certificates for the same names (localhost, 127.0.0.1), different keys.
  first = await selfSignedCertificate('switchyard-tls-reload-a-');
  second = await selfSignedCertificate('switchyard-tls-reload-b-');
  firstFingerprint = pemFingerprint(first.cert);
  secondFingerprint = pemFingerprint(second.cert);
  assert.notEqual(firstFingerprint, secondFingerprint);
  origin = await startOrigin({
    name: 'tls-origin',
    onWebSocket: (ws, req) => {
      originSockets.set(req.url ?? '', ws);
      ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo:${String(data)}`, { binary: isBinary }));
    },
  });
}, { timeout: 60_000 });

after(async () => {
  await origin?.close();
  first?.remove();
  second?.remove();
});

// ---------------------------------------------------------------- cleanup

/** Everything a test started, undone in reverse order after it (pass or fail); then any CLI still running. */
const cleanups = cleanupsAfterEach();
afterEach(stopSwitchyards);

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-tls-reload-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A config file: one TLS listener with these `tls` lines, everything proxied to the origin. */
function writeConfig(file: string, tlsLines: readonly string[], listenerLines: readonly string[] = []): void {
  writeFileSync(file, [
    'listeners:',
    '  - address: 127.0.0.1:0',
    '    tls:',
    ...tlsLines.map((line) => `      ${line}`),
    ...listenerLines.map((line) => `    ${line}`),
    'timeouts: { drain: 1s }',
    'access_log: false',
    'sites:',
    '  - routes:',
    `      - to: ${origin.url}`,
    '',
  ].join('\n'));
}

async function startInProcess(file: string): Promise<{ proxy: Switchyard; port: number }> {
  const proxy = await Switchyard.start(loadConfigFile(file, { defaultSecret: SECRET }).config, silentLogger());
  cleanups.push(() => proxy.shutdown(0));
  return { proxy, port: proxy.addresses[0]!.port };
}

/** One HTTPS GET over HTTP/1.1 on a fresh connection, with these TLS options. */
function httpsGet(port: number, path: string, tlsOptions: https.RequestOptions = {}): Promise<{ status: number; body: string; cipher: string; protocol: string | null }> {
  return withTimeout(new Promise((resolve, reject) => {
    const req = https.get({ host: '127.0.0.1', port, path, agent: false, rejectUnauthorized: false, ...tlsOptions }, (res) => {
      const socket = res.socket as TLSSocket;
      const cipher = socket.getCipher().name;
      const protocol = socket.getProtocol();
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cipher, protocol }));
      res.on('error', reject);
    });
    req.on('error', reject);
  }), 5_000, `GET ${path}`);
}

/** The handshake failure of a TLS client, as its error code (or message). */
async function handshakeError(port: number, options: Parameters<typeof tlsProbe>[1]): Promise<string> {
  try {
    const probe = await tlsProbe(port, options);
    return `no error: negotiated ${probe.protocol} ${probe.cipher}`;
  } catch (err) {
    return String((err as NodeJS.ErrnoException).code ?? (err as Error).message);
  }
}

// ================================================================ ciphers

describe('tls.ciphers', () => {
  test('a TLS 1.2 client offering only the configured cipher gets it; one offering only other ciphers fails the handshake; the proxy keeps serving', { timeout: 20_000 }, async () => {
    const dir = tempDir();
    const file = join(dir, 'ciphers.yaml');
    writeConfig(file, [`cert: ${first.certFile}`, `key: ${first.keyFile}`, `ciphers: ${CIPHER_A}`]);
    const { port } = await startInProcess(file);

    const good = await tlsProbe(port, { maxVersion: 'TLSv1.2', ciphers: CIPHER_A });
    assert.equal(good.protocol, 'TLSv1.2');
    assert.equal(good.cipher, CIPHER_A);
    assert.equal(good.fingerprint256, firstFingerprint);

    // A TLS 1.2 client offering Node's whole default list still ends up with the only cipher allowed.
    const defaults = await tlsProbe(port, { maxVersion: 'TLSv1.2' });
    assert.equal(defaults.cipher, CIPHER_A, 'the server picks from its own list only');

    // Only other ciphers: the server has nothing in common and aborts the handshake (alert 40).
    assert.equal(await handshakeError(port, { maxVersion: 'TLSv1.2', ciphers: CIPHER_B }), 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');
    assert.equal(await handshakeError(port, { maxVersion: 'TLSv1.2', ciphers: CIPHER_C }), 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');
    assert.equal(await handshakeError(port, { maxVersion: 'TLSv1.2', ciphers: CIPHER_B, ALPNProtocols: ['h2'] }), 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');

    // The proxy keeps serving after the failed handshakes: HTTP/1.1 and HTTP/2, over TLS 1.2 with the configured cipher.
    const h1 = await httpsGet(port, '/after-failures', { maxVersion: 'TLSv1.2', ciphers: CIPHER_A });
    assert.equal(h1.status, 200);
    assert.equal(h1.cipher, CIPHER_A);
    assert.equal(h1.protocol, 'TLSv1.2');
    assert.equal((JSON.parse(h1.body) as { url: string }).url, '/after-failures');
    const session = await h2Connect(port, { rejectUnauthorized: false, maxVersion: 'TLSv1.2', ciphers: CIPHER_A });
    cleanups.push(() => closeSession(session));
    assert.equal((session.socket as TLSSocket).getCipher().name, CIPHER_A);
    assert.equal(session.alpnProtocol, 'h2');
    const h2 = await h2Get(session, '/after-failures-h2', `localhost:${port}`);
    assert.equal(h2.status, 200);
    assert.equal((JSON.parse(h2.body) as { url: string }).url, '/after-failures-h2');

    // The list is documented as TLS 1.2's: a TLS 1.3 client still connects with a TLS 1.3 suite.
    const tls13 = await tlsProbe(port, {});
    assert.equal(tls13.protocol, 'TLSv1.3');
    assert.match(tls13.cipher, /^TLS_/);
  });

  test('a reload with another cipher list applies to new handshakes; a TLS 1.2 connection opened before keeps its cipher and keeps serving', { timeout: 20_000 }, async () => {
    const dir = tempDir();
    const file = join(dir, 'ciphers-reload.yaml');
    writeConfig(file, [`cert: ${first.certFile}`, `key: ${first.keyFile}`, `ciphers: ${CIPHER_A}`]);
    const { proxy, port } = await startInProcess(file);
    const session = await h2Connect(port, { rejectUnauthorized: false, maxVersion: 'TLSv1.2', ciphers: `${CIPHER_A}:${CIPHER_B}` });
    cleanups.push(() => closeSession(session));
    assert.equal((session.socket as TLSSocket).getCipher().name, CIPHER_A);
    assert.equal(await handshakeError(port, { maxVersion: 'TLSv1.2', ciphers: CIPHER_B }), 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');

    writeConfig(file, [`cert: ${first.certFile}`, `key: ${first.keyFile}`, `ciphers: ${CIPHER_B}`]);
    proxy.reload(loadConfigFile(file, { defaultSecret: SECRET }).config);

    const now = await tlsProbe(port, { maxVersion: 'TLSv1.2', ciphers: CIPHER_B });
    assert.equal(now.cipher, CIPHER_B, 'a new handshake uses the reloaded list');
    assert.equal(await handshakeError(port, { maxVersion: 'TLSv1.2', ciphers: CIPHER_A }), 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');
    const both = await tlsProbe(port, { maxVersion: 'TLSv1.2', ciphers: `${CIPHER_A}:${CIPHER_B}` });
    assert.equal(both.cipher, CIPHER_B);

    assert.equal((session.socket as TLSSocket).getCipher().name, CIPHER_A, 'the open connection keeps its cipher');
    const reply = await h2Get(session, '/old-session', `localhost:${port}`);
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body) as { url: string }).url, '/old-session');
  });
});

// ================================================================ websocket_over_http2 on reload

describe('listener websocket_over_http2 changed by a reload', () => {
  test('turned off: new HTTP/2 connections are not offered RFC 8441 and use HTTP/1.1 WebSockets; an RFC 8441 WebSocket opened before keeps working; turned on again: offered again', { timeout: 20_000 }, async (t) => {
    const dir = tempDir();
    const file = join(dir, 'h2ws.yaml');
    const tlsLines = [`cert: ${first.certFile}`, `key: ${first.keyFile}`];
    writeConfig(file, tlsLines);
    const { proxy, port } = await startInProcess(file);
    const authority = `localhost:${port}`;
    const reload = (on: boolean): void => {
      writeConfig(file, tlsLines, [`websocket_over_http2: ${on}`]);
      proxy.reload(loadConfigFile(file, { defaultSecret: SECRET }).config);
    };

    const old = await h2Connect(port, { rejectUnauthorized: false });
    cleanups.push(() => closeSession(old));
    assert.equal(old.remoteSettings.enableConnectProtocol, true);
    const oldWs = await openH2WebSocket(old, '/ws/h2ws-old', authority);
    assert.equal(oldWs.status, 200);
    assert.equal(await oldWs.echo('before'), 'echo:before');
    const countsBefore = { ...proxy.registry.counts };

    reload(false);
    const off = await h2Connect(port, { rejectUnauthorized: false });
    cleanups.push(() => closeSession(off));
    assert.equal(off.alpnProtocol, 'h2', 'HTTP/2 itself stays on');
    assert.notEqual(off.remoteSettings.enableConnectProtocol, true, 'a new connection is not offered RFC 8441');
    const page = await h2Get(off, '/page', authority);
    assert.equal(page.status, 200);
    const h1 = await openWss(`wss://127.0.0.1:${port}/ws/h2ws-h1`);
    h1.ws.send('over h1');
    assert.equal(await h1.next(), 'echo:over h1');
    assert.equal(proxy.registry.counts.http1WebSockets, countsBefore.http1WebSockets + 1);

    // The WebSocket opened before the reload is untouched.
    assert.equal(await oldWs.echo('after'), 'echo:after');
    originSockets.get('/ws/h2ws-old')!.send('push');
    assert.equal((await oldWs.frames.next()).data.toString(), 'push');
    // Its session was offered RFC 8441 in its SETTINGS: a new extended CONNECT on it
    // is either served or refused with 421 (the retry-elsewhere answer), never left hanging or reset.
    const another = await openH2WebSocket(old, '/ws/h2ws-old-2', authority);
    t.diagnostic(`a new extended CONNECT on the session opened before the reload: ${another.status} ${String(another.headers['x-switchyard-error'] ?? '')}`);
    if (another.status === 200) assert.equal(await another.echo('second'), 'echo:second');
    else assert.equal(`${another.status} ${String(another.headers['x-switchyard-error'])}`, '421 SY_HTTP2_WEBSOCKET_OFF');

    reload(true);
    const on = await h2Connect(port, { rejectUnauthorized: false });
    cleanups.push(() => closeSession(on));
    assert.equal(on.remoteSettings.enableConnectProtocol, true, 'offered again to new connections');
    const onWs = await openH2WebSocket(on, '/ws/h2ws-on', authority);
    assert.equal(onWs.status, 200);
    assert.equal(await onWs.echo('on again'), 'echo:on again');
    assert.equal(await oldWs.echo('still'), 'echo:still');
  });
});

// ================================================================ certificate reload with open streams

interface WssClient {
  readonly ws: WebSocket;
  /** The client's TLS connection (for its certificate). */
  readonly socket: TLSSocket;
  /** Messages received and not yet taken. */
  readonly received: string[];
  closed: { code: number } | undefined;
  next(ms?: number): Promise<string>;
}

/** A wss:// client over HTTP/1.1 (no ALPN, so HTTP/1.1 by definition), certificate not verified. */
async function openWss(url: string): Promise<WssClient> {
  const ws = new WebSocket(url, { rejectUnauthorized: false, perMessageDeflate: false, handshakeTimeout: 5_000 });
  const client: WssClient = {
    ws,
    socket: undefined as unknown as TLSSocket,
    received: [],
    closed: undefined,
    next: (ms = 3_000) => withTimeout((async () => {
      while (client.received.length === 0) {
        if (client.closed) throw new Error(`the WebSocket closed (${client.closed.code}) before the next message`);
        await sleep(5);
      }
      return client.received.shift()!;
    })(), ms, `a message on ${url}`),
  };
  ws.on('message', (data) => client.received.push(String(data)));
  ws.on('close', (code) => { client.closed = { code }; });
  ws.on('error', () => undefined);
  ws.on('upgrade', (res: IncomingMessage) => { Object.assign(client, { socket: res.socket as TLSSocket }); });
  cleanups.push(() => ws.terminate());
  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
  }), 5_000, `${url} to open`);
  return client;
}

const START_LINE = /listening on https:\/\/127\.0\.0\.1:(\d+)/;

async function startRun(file: string): Promise<{ cli: CliProcess; port: number }> {
  const cli = spawnSwitchyard(['run', '-c', file], {}, ['SWITCHYARD_LOG_LEVEL']);
  let match: RegExpExecArray | null = null;
  await waitFor(() => (match = START_LINE.exec(cli.stdout)) !== null || cli.exitedAt !== undefined, 15_000, `the start line (stdout ${cli.stdout})`);
  if (!match) throw new Error(`switchyard exited before its start line; stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
  return { cli, port: Number((match as RegExpExecArray)[1]) };
}

/** JSON log lines on stderr whose msg matches. */
function logLines(cli: CliProcess, pattern: RegExp): { msg: string; [key: string]: unknown }[] {
  const lines: { msg: string }[] = [];
  for (const line of cli.stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as { msg: string });
    } catch {
      // a line still being written
    }
  }
  return lines.filter((line) => pattern.test(line.msg));
}

const RELOADED = /^config reloaded/;
const REJECTED = /reload rejected/;

/** Polls new TLS connections until one presents `fingerprint`; resolves with the milliseconds it took. */
async function untilPresented(port: number, fingerprint: string, ms: number): Promise<number> {
  const started = Date.now();
  let last = '';
  while (Date.now() - started < ms) {
    last = (await tlsProbe(port)).fingerprint256;
    if (last === fingerprint) return Date.now() - started;
    await sleep(50);
  }
  throw new Error(`no new TLS connection got the new certificate within ${ms} ms (last seen ${last})`);
}

/** Sends a client close (1000) on an RFC 8441 stream and waits for the server's close frame. */
async function closeH2WebSocket(ws: H2WebSocket): Promise<number> {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(1000, 0);
  ws.stream.write(clientFrame(OP_CLOSE, payload));
  let reply = await ws.frames.next();
  while (reply.opcode !== OP_CLOSE) reply = await ws.frames.next();
  ws.stream.end();
  return reply.data.length >= 2 ? reply.data.readUInt16BE(0) : 1005;
}

interface Scenario {
  readonly dir: string;
  readonly file: string;
  readonly cli: CliProcess;
  readonly port: number;
}

/**
 * Starts `switchyard run` on live.pem/live.key (the first certificate), opens an
 * HTTP/1.1 WebSocket over TLS and an HTTP/2 session with an RFC 8441 WebSocket,
 * lets `replace` change the certificate, and checks that new connections get
 * the second certificate while the old streams carry on on their old connections.
 */
async function certificateSwapWithOpenStreams(tag: string, replace: (scenario: Scenario) => Promise<void>): Promise<Scenario> {
  const dir = tempDir();
  copyFileSync(first.certFile, join(dir, 'live.pem'));
  copyFileSync(first.keyFile, join(dir, 'live.key'));
  const file = join(dir, 'switchyard.yaml');
  writeConfig(file, ['cert: live.pem', 'key: live.key']);
  const { cli, port } = await startRun(file);
  const authority = `localhost:${port}`;
  const scenario = { dir, file, cli, port };

  assert.equal((await tlsProbe(port)).fingerprint256, firstFingerprint, 'the listener starts with the first certificate');

  // An HTTP/1.1 WebSocket over TLS.
  const h1Path = `/ws/h1-${tag}`;
  const h1 = await openWss(`wss://127.0.0.1:${port}${h1Path}`);
  assert.equal(h1.socket.alpnProtocol, false, 'no ALPN: HTTP/1.1');
  assert.equal(h1.socket.getPeerCertificate().fingerprint256, firstFingerprint);
  h1.ws.send('h1-before');
  assert.equal(await h1.next(), 'echo:h1-before');

  // An HTTP/2 session carrying an RFC 8441 WebSocket.
  const session = await h2Connect(port, { rejectUnauthorized: false });
  cleanups.push(() => closeSession(session));
  assert.equal(session.alpnProtocol, 'h2');
  assert.equal(session.remoteSettings.enableConnectProtocol, true, 'the listener offers RFC 8441');
  const sessionSocket = session.socket as TLSSocket;
  assert.equal(sessionSocket.getPeerCertificate().fingerprint256, firstFingerprint);
  const h2Path = `/ws/h2-${tag}`;
  const h2ws = await openH2WebSocket(session, h2Path, authority);
  assert.equal(h2ws.status, 200, `extended CONNECT answered ${h2ws.status} ${String(h2ws.headers['x-switchyard-error'] ?? '')}`);
  assert.equal(await h2ws.echo('h2-before'), 'echo:h2-before');
  await waitFor(() => originSockets.has(h1Path) && originSockets.has(h2Path), 3_000, 'the origin to hold both WebSockets');
  const h1Handshake = origin.handshakes.find((h) => h.url === h1Path);
  const h2Handshake = origin.handshakes.find((h) => h.url === h2Path);
  assert.equal(h1Handshake?.httpVersion, '1.1');
  assert.equal(h2Handshake?.httpVersion, '1.1', 'the RFC 8441 stream became an HTTP/1.1 handshake to the origin');
  const before = await h2Get(session, '/h2-before', authority);
  assert.equal(before.status, 200);

  await replace(scenario);
  const took = await untilPresented(port, secondFingerprint, 10_000);
  assert.ok(took < 10_000);
  assert.equal(logLines(cli, REJECTED).length, 0, `no reload was rejected: ${cli.stderr}`);
  assert.ok(logLines(cli, RELOADED).length >= 1, `a reload was logged: ${cli.stderr}`);

  // The old HTTP/1.1 WebSocket: still open, same connection (old certificate), messages both ways.
  assert.equal(h1.closed, undefined, 'the HTTP/1.1 WebSocket was not closed by the reload');
  assert.equal(h1.ws.readyState, WebSocket.OPEN);
  assert.equal(h1.socket.getPeerCertificate().fingerprint256, firstFingerprint, 'the old connection keeps the old certificate');
  h1.ws.send('h1-after');
  assert.equal(await h1.next(), 'echo:h1-after', 'client → origin → client after the reload');
  originSockets.get(h1Path)!.send('push-h1');
  assert.equal(await h1.next(), 'push-h1', 'origin → client after the reload');

  // The old RFC 8441 WebSocket on the old session: same, both ways.
  assert.equal(h2ws.stream.closed, false, 'the RFC 8441 stream was not closed by the reload');
  assert.equal(session.closed || session.destroyed, false, 'the old HTTP/2 session is open');
  assert.equal(sessionSocket.getPeerCertificate().fingerprint256, firstFingerprint, 'the old session keeps the old certificate');
  assert.equal(await h2ws.echo('h2-after'), 'echo:h2-after', 'client → origin → client after the reload');
  originSockets.get(h2Path)!.send('push-h2');
  const pushed = await h2ws.frames.next();
  assert.equal(pushed.data.toString(), 'push-h2', 'origin → client after the reload');
  assert.deepEqual(h2ws.frames.errors, []);

  // The old session still opens new streams: a request and another RFC 8441 WebSocket.
  const requestsBefore = origin.requests.length;
  const reply = await h2Get(session, `/h2-after-${tag}`, authority);
  assert.equal(reply.status, 200);
  assert.equal((JSON.parse(reply.body) as { url: string }).url, `/h2-after-${tag}`);
  assert.equal(origin.requests.length, requestsBefore + 1);
  const laterPath = `/ws/h2-later-${tag}`;
  const later = await openH2WebSocket(session, laterPath, authority);
  assert.equal(later.status, 200, `a new extended CONNECT on the old session answered ${later.status}`);
  assert.equal(await later.echo('later'), 'echo:later');
  assert.equal(sessionSocket.getPeerCertificate().fingerprint256, firstFingerprint, 'still the same old connection');

  // New connections get the new certificate, over HTTP/1.1 and HTTP/2, and work.
  const fresh = await openWss(`wss://127.0.0.1:${port}/ws/h1-fresh-${tag}`);
  assert.equal(fresh.socket.getPeerCertificate().fingerprint256, secondFingerprint);
  fresh.ws.send('fresh');
  assert.equal(await fresh.next(), 'echo:fresh');
  const freshSession = await h2Connect(port, { rejectUnauthorized: false });
  cleanups.push(() => closeSession(freshSession));
  assert.equal((freshSession.socket as TLSSocket).getPeerCertificate().fingerprint256, secondFingerprint);
  const freshWs = await openH2WebSocket(freshSession, `/ws/h2-fresh-${tag}`, authority);
  assert.equal(freshWs.status, 200);
  assert.equal(await freshWs.echo('fresh-h2'), 'echo:fresh-h2');

  // The old WebSockets still close cleanly.
  assert.equal(await closeH2WebSocket(h2ws), 1000);
  assert.equal(await closeH2WebSocket(later), 1000);
  h1.ws.close(1000);
  await waitFor(() => h1.closed !== undefined, 3_000, 'the HTTP/1.1 WebSocket to close');
  assert.equal((h1 as WssClient).closed?.code, 1000);
  assert.equal(cli.exitedAt, undefined, 'the process is still running');
  return scenario;
}

describe('certificate reload while WebSockets over HTTP/1.1 and HTTP/2 are open (switchyard run)', () => {
  test('SIGHUP after the config names new certificate files: new connections get them; old WebSockets and the old HTTP/2 session carry on', { timeout: 40_000 }, async () => {
    await certificateSwapWithOpenStreams('sighup-paths', async ({ dir, file, cli, port }) => {
      copyFileSync(second.certFile, join(dir, 'renewed.pem'));
      copyFileSync(second.keyFile, join(dir, 'renewed.key'));
      writeConfig(file, ['cert: renewed.pem', 'key: renewed.key']);
      // Neither the config file (no --watch) nor these new names are watched: nothing changes until the signal.
      await sleep(800);
      assert.equal((await tlsProbe(port)).fingerprint256, firstFingerprint, 'no reload before SIGHUP');
      assert.equal(logLines(cli, RELOADED).length, 0);
      process.kill(cli.pid, 'SIGHUP');
      await waitFor(() => logLines(cli, RELOADED).length === 1, 5_000, `"config reloaded" after SIGHUP (stderr ${cli.stderr})`);
    });
  });

  test('certificate and key overwritten in place, then SIGHUP: new connections get the new certificate; old WebSockets and the old HTTP/2 session carry on', { timeout: 40_000 }, async () => {
    // `run` always watches its certificate files, so the watch may reload too
    // (before or after the signal); either way no reload may be rejected and
    // the open streams must survive every one of them.
    await certificateSwapWithOpenStreams('sighup-in-place', async ({ dir, cli }) => {
      writeFileSync(join(dir, 'live.key'), second.key);
      writeFileSync(join(dir, 'live.pem'), second.cert);
      process.kill(cli.pid, 'SIGHUP');
      await waitFor(() => logLines(cli, RELOADED).length >= 1, 5_000, `"config reloaded" after SIGHUP (stderr ${cli.stderr})`);
    });
  });

  test('certificate files renamed over (no signal): the file watch reloads; old WebSockets and the old HTTP/2 session carry on', { timeout: 40_000 }, async () => {
    await certificateSwapWithOpenStreams('watch', async ({ dir }) => {
      // As certbot-style tools do: write new files, then rename them over the live names.
      copyFileSync(second.keyFile, join(dir, 'live.key.new'));
      copyFileSync(second.certFile, join(dir, 'live.pem.new'));
      renameSync(join(dir, 'live.key.new'), join(dir, 'live.key'));
      renameSync(join(dir, 'live.pem.new'), join(dir, 'live.pem'));
    });
  });
});
