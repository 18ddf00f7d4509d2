import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { WebSocketServer } from 'ws';
import type { ActiveHealthConfig, UpstreamConfig } from '../../src/config/model.js';
import type { Closable } from '../../src/server/connection-registry.js';
import { ActiveHealthCheck, MAX_BODY_BYTES } from '../../src/upstream/health/active-check.js';
import { UpstreamPool } from '../../src/upstream/upstream-pool.js';
import type { UpstreamServer } from '../../src/upstream/upstream-server.js';
import { closedPort, startOrigin } from '../helpers/origins.js';
import { openFdCount, sleep, waitFor } from '../helpers/raw.js';

// ---------------------------------------------------------------- harness

const TIMEOUTS = { connectMs: 1_000, responseMs: 1_000, bodyIdleMs: 1_000 };

function upstreamConfig(urls: readonly string[], extra: Partial<UpstreamConfig> = {}): UpstreamConfig {
  return {
    name: 'backend',
    servers: urls.map((url) => ({ url, weight: 1 })),
    policy: undefined,
    sticky: 'none',
    stickySecret: 'test-secret-test-secret',
    stickyCookieName: 'sy_affinity',
    failTimeoutMs: 10_000,
    ...extra,
  };
}

function healthConfig(overrides: Partial<ActiveHealthConfig> = {}): ActiveHealthConfig {
  return {
    type: 'http',
    path: '/health',
    method: 'GET',
    headers: {},
    expectStatus: [200, 399],
    expectBody: undefined,
    intervalMs: 100,
    timeoutMs: 500,
    rise: 2,
    fall: 3,
    ...overrides,
  };
}

interface LogLine {
  level: number;
  msg: string;
  upstream?: string;
  server?: string;
  reason?: string;
  [key: string]: unknown;
}

const WARN = 40;
const INFO = 30;
const DEBUG = 20;

interface Harness {
  readonly pool: UpstreamPool;
  readonly checker: ActiveHealthCheck;
  readonly server: UpstreamServer;
  readonly logs: LogLine[];
  /** Servers passed to pool.serverWentDown, in order. */
  readonly wentDown: UpstreamServer[];
  close(): Promise<void>;
}

/** A pool of the given servers, a checker over it with a capturing logger (not started). */
function harness(urls: readonly string[], health: Partial<ActiveHealthConfig>, extra: Partial<UpstreamConfig> = {}): Harness {
  const config = healthConfig(health);
  const pool = new UpstreamPool(upstreamConfig(urls, { ...extra, activeHealth: config }), TIMEOUTS);
  const logs: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as LogLine);
      callback();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  const wentDown: UpstreamServer[] = [];
  const original = pool.serverWentDown.bind(pool);
  pool.serverWentDown = (server: UpstreamServer): void => {
    wentDown.push(server);
    original(server);
  };
  const checker = new ActiveHealthCheck(pool, config, log);
  return {
    pool,
    checker,
    server: pool.servers[0]!,
    logs,
    wentDown,
    close: async () => {
      checker.stop();
      await pool.close();
    },
  };
}

function warnings(logs: readonly LogLine[]): LogLine[] {
  return logs.filter((line) => line.level === WARN);
}

/**
 * Probes of one server never overlap, so once `count()` (requests the origin
 * received) has grown by two, at least one probe sent after this call has been
 * judged and counted.
 */
async function probesJudged(count: () => number, what = 'probes'): Promise<void> {
  const target = count() + 2;
  await waitFor(() => count() >= target, 5_000, what);
}

type StatusOrigin = Awaited<ReturnType<typeof startOrigin>> & {
  /** What the origin answers from now on. */
  status: number;
  /** Answers sent, by status. */
  readonly served: Map<number, number>;
};

/** An origin answering every request with `status` (changeable) and `body`. */
async function statusOrigin(initial: number, body = 'ok'): Promise<StatusOrigin> {
  const served = new Map<number, number>();
  let status = initial;
  const origin = await startOrigin({
    handler: (_req, res) => {
      served.set(status, (served.get(status) ?? 0) + 1);
      res.writeHead(status, { 'Content-Type': 'text/plain' });
      res.end(body);
    },
  });
  Object.defineProperty(origin, 'status', { get: () => status, set: (value: number) => void (status = value) });
  Object.defineProperty(origin, 'served', { value: served });
  return origin as StatusOrigin;
}

// ---------------------------------------------------------------- certificate (https, wss)

let certDir = '';
let cert: Buffer = Buffer.alloc(0);
let key: Buffer = Buffer.alloc(0);

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'switchyard-health-'));
  const certFile = join(certDir, 'cert.pem');
  const keyFile = join(certDir, 'key.pem');
  await new Promise<void>((resolve, reject) => {
    execFile('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-days', '1',
      '-keyout', keyFile, '-out', certFile,
    ], { timeout: 30_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`openssl failed: ${err.message} ${stderr}`)) : resolve()));
  });
  cert = readFileSync(certFile);
  key = readFileSync(keyFile);
});

after(() => {
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- http checks

describe('active health checks over HTTP', () => {
  test('fall 3 at 100 ms: down after the third failure in a row (not the first or second); rise 2: up after two passes', { timeout: 15_000 }, async () => {
    const origin = await statusOrigin(200);
    const h = harness([origin.url], { intervalMs: 100, fall: 3, rise: 2 });
    try {
      h.checker.start();
      await waitFor(() => (origin.served.get(200) ?? 0) >= 2, 3_000, 'passing probes');
      assert.equal(h.server.healthy, true);

      origin.status = 500;
      const failingSince = Date.now();
      await waitFor(() => !h.server.healthy, 3_000, 'the server to go down');
      const downAfter = Date.now() - failingSince;
      // The origin counts an answer before the checker reads it, and the next
      // probe only comes an interval later: this is the failure that did it.
      assert.equal(origin.served.get(500), 3, 'down after the wrong number of failures');
      assert.ok(downAfter >= 150, `down after ${downAfter} ms: sooner than 3 probes 100 ms apart allow`);
      assert.ok(downAfter < 1_500, `down only after ${downAfter} ms`);
      assert.deepEqual(h.wentDown, [h.server]);
      const warned = warnings(h.logs);
      assert.equal(warned.length, 1, JSON.stringify(warned));
      assert.equal(warned[0]!.upstream, 'backend');
      assert.equal(warned[0]!.server, origin.url);
      assert.match(String(warned[0]!.reason), /500/);

      // It stays down (and is not reported down again) while it keeps failing.
      await probesJudged(() => origin.requests.length);
      assert.equal(h.server.healthy, false);
      assert.equal(h.wentDown.length, 1);

      const passesBefore = origin.served.get(200) ?? 0;
      origin.status = 200;
      const passingSince = Date.now();
      await waitFor(() => h.server.healthy, 3_000, 'the server to come back');
      assert.equal((origin.served.get(200) ?? 0) - passesBefore, 2, 'up after the wrong number of passes');
      assert.ok(Date.now() - passingSince >= 50, 'up sooner than two probes allow');
      const infos = h.logs.filter((line) => line.level === INFO);
      assert.equal(infos.length, 1, JSON.stringify(infos));
      assert.equal(infos[0]!.server, origin.url);
      assert.equal(infos[0]!.upstream, 'backend');
      assert.equal(h.wentDown.length, 1);
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('a server that comes back resets passive-health state (succeeded())', { timeout: 10_000 }, async () => {
    const origin = await statusOrigin(200);
    const h = harness([origin.url], { intervalMs: 50, fall: 1, rise: 1 });
    try {
      h.server.healthy = false;
      h.server.consecutiveFailures = 4;
      h.server.ejections = 3;
      h.checker.start();
      await waitFor(() => h.server.healthy, 3_000, 'the server to come up');
      assert.equal(h.server.consecutiveFailures, 0);
      assert.equal(h.server.ejections, 0);
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('expect_status is an inclusive range: both ends pass, one past either end fails', { timeout: 15_000 }, async () => {
    const origin = await statusOrigin(204);
    const h = harness([origin.url], { intervalMs: 40, fall: 1, rise: 1, expectStatus: [204, 302] });
    try {
      const judged = (): Promise<void> => probesJudged(() => origin.requests.length);
      h.checker.start();
      await judged();
      assert.equal(h.server.healthy, true, '204 (low end) failed');
      origin.status = 303;
      await judged();
      assert.equal(h.server.healthy, false, '303 passed');
      assert.match(String(warnings(h.logs)[0]?.reason), /303.*204-302/);
      origin.status = 302;
      await judged();
      assert.equal(h.server.healthy, true, '302 (high end) failed');
      origin.status = 203;
      await judged();
      assert.equal(h.server.healthy, false, '203 passed');
      origin.status = 250;
      await judged();
      assert.equal(h.server.healthy, true, '250 failed');
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('method, path under the server URL base path, headers and Host; a new connection for every probe', { timeout: 10_000 }, async () => {
    const origin = await statusOrigin(200);
    const h = harness([`${origin.url}/base/`], { intervalMs: 40, method: 'OPTIONS', path: '/healthz', headers: { 'X-Check': 'switchyard' } });
    const custom = harness([`${origin.url}/base`], { intervalMs: 40, headers: { host: 'svc.internal:8080' } });
    try {
      h.checker.start();
      await waitFor(() => origin.requests.length >= 3, 3_000, 'three probes');
      h.checker.stop();
      for (const request of origin.requests) {
        assert.equal(request.method, 'OPTIONS');
        assert.equal(request.url, '/base/healthz');
        assert.equal(request.headers['x-check'], 'switchyard');
        assert.equal(request.headers.host, `127.0.0.1:${origin.port}`);
      }
      // agent: false: never a reused keep-alive connection.
      assert.equal(origin.connectionCount, origin.requests.length);

      const before = origin.requests.length;
      custom.checker.start();
      await waitFor(() => origin.requests.length >= before + 1, 3_000, 'a probe with a custom Host');
      const request = origin.requests[before]!;
      assert.equal(request.headers.host, 'svc.internal:8080');
      assert.equal(request.url, '/base/health');
      assert.equal(request.method, 'GET');
      assert.equal(request.rawHeaders.filter((name) => name.toLowerCase() === 'host').length, 1);
    } finally {
      await h.close();
      await custom.close();
      await origin.close();
    }
  });

  test('expect_body: found (even split over chunks) passes; missing, or only past 64 KiB, fails', { timeout: 15_000 }, async () => {
    let mode: 'split' | 'dead' | 'late' | 'error-with-text' = 'split';
    const origin = await startOrigin({
      handler: (_req, res) => {
        if (mode === 'error-with-text') {
          res.writeHead(500).end('ALIVE');
          return;
        }
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        if (mode === 'dead') res.end('status: DEAD');
        else if (mode === 'late') res.end(`${'x'.repeat(MAX_BODY_BYTES)}ALIVE`);
        else {
          res.write('status: AL');
          setTimeout(() => res.end('IVE and well'), 20);
        }
      },
    });
    const h = harness([origin.url], { intervalMs: 40, fall: 1, rise: 1, expectBody: 'ALIVE' });
    try {
      const judged = (): Promise<void> => probesJudged(() => origin.requests.length);
      h.server.healthy = false;
      h.checker.start();
      await judged();
      assert.equal(h.server.healthy, true, 'a body with the text split over two chunks failed');
      mode = 'dead';
      await judged();
      assert.equal(h.server.healthy, false, 'a body without the text passed');
      assert.match(String(warnings(h.logs)[0]?.reason), /ALIVE/);
      mode = 'split';
      await judged();
      assert.equal(h.server.healthy, true);
      mode = 'late';
      await judged();
      assert.equal(h.server.healthy, false, 'text past the first 64 KiB was found');
      mode = 'split';
      await judged();
      assert.equal(h.server.healthy, true);
      mode = 'error-with-text';
      await judged();
      assert.equal(h.server.healthy, false, 'a 500 passed because its body had the text');
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('no answer within timeout fails; probes of a server never overlap; the hanging connection is closed', { timeout: 15_000 }, async () => {
    const held: ServerResponse[] = [];
    const origin = await startOrigin({ handler: (_req, res) => void held.push(res) });
    let open = 0;
    origin.server.on('connection', (socket: Socket) => {
      open++;
      socket.on('close', () => open--);
    });
    const h = harness([origin.url], { intervalMs: 50, timeoutMs: 300, fall: 2, rise: 1 });
    try {
      const started = Date.now();
      h.checker.start();
      await waitFor(() => !h.server.healthy, 5_000, 'the server to go down');
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 550, `down after ${elapsed} ms, before two 300 ms timeouts`);
      assert.match(String(warnings(h.logs)[0]?.reason), /no answer within 300 ms/);
      // Two probes, each up to its timeout, one after the other; overlapping
      // probes would have started one every 50 ms.
      assert.ok(origin.connectionCount <= 3, `${origin.connectionCount} probes in ${elapsed} ms: they overlapped`);
      h.checker.stop();
      await waitFor(() => open === 0, 2_000, 'the in-flight probe to be closed by stop()');
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('a closed port fails (connection refused); fall 2 needs two rounds', { timeout: 10_000 }, async () => {
    const port = await closedPort();
    const h = harness([`http://127.0.0.1:${port}`], { intervalMs: 100, fall: 2 });
    try {
      const started = Date.now();
      h.checker.start();
      await waitFor(() => !h.server.healthy, 3_000, 'the server to go down');
      assert.ok(Date.now() - started >= 80, 'down before a second round');
      const failures = h.logs.filter((line) => line.level === DEBUG && line.msg === 'active health check failed');
      assert.equal(failures.length, 2);
      assert.match(String(warnings(h.logs)[0]?.reason), /ECONNREFUSED/);
      assert.deepEqual(h.wentDown, [h.server]);
    } finally {
      await h.close();
    }
  });

  test('a request that cannot be sent (bad header value) fails the check instead of throwing', { timeout: 10_000 }, async () => {
    const origin = await statusOrigin(200);
    const h = harness([origin.url], { intervalMs: 40, fall: 1, headers: { 'X-Bad': 'a\r\nInjected: 1' } });
    try {
      h.checker.start();
      await waitFor(() => !h.server.healthy, 3_000, 'the server to go down');
      assert.match(String(warnings(h.logs)[0]?.reason), /request not sent/);
      assert.equal(origin.requests.length, 0);
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('https: probes over TLS with the upstream CA; an untrusted certificate fails', { timeout: 15_000 }, async () => {
    const hosts: string[] = [];
    const server = https.createServer({ cert, key }, (req, res) => {
      hosts.push(req.headers.host ?? '');
      res.end('ok');
    });
    server.on('tlsClientError', () => undefined);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const trusted = harness([url], { intervalMs: 40, fall: 1, rise: 1 }, { tls: { ca: cert, insecure: false } });
    const untrusted = harness([url], { intervalMs: 40, fall: 1, rise: 1 });
    try {
      trusted.server.healthy = false;
      trusted.checker.start();
      untrusted.checker.start();
      await waitFor(() => trusted.server.healthy, 3_000, 'the trusted server to come up');
      await waitFor(() => !untrusted.server.healthy, 3_000, 'the untrusted server to go down');
      assert.match(String(warnings(untrusted.logs)[0]?.reason), /self[- ]signed|certificate/i);
      assert.ok(hosts.length >= 1 && hosts.every((host) => host === url.slice('https://'.length)), hosts.join());
    } finally {
      await trusted.close();
      await untrusted.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

// ---------------------------------------------------------------- websocket checks

describe('active health checks with a WebSocket handshake', () => {
  test('a real ws origin passes; the check closes with a masked close frame, code 1000, and a clean TCP end', { timeout: 15_000 }, async () => {
    const closeCodes: number[] = [];
    let wsErrors = 0;
    let socketErrors = 0;
    const origin = await startOrigin({
      onWebSocket: (ws) => {
        ws.on('close', (code) => closeCodes.push(code));
        ws.on('error', () => wsErrors++);
      },
    });
    origin.server.on('upgrade', (_req: IncomingMessage, socket: Socket) => socket.on('error', () => socketErrors++));
    const h = harness([`${origin.wsUrl}/ws-base`], { type: 'websocket', path: '/live', intervalMs: 50, fall: 1, rise: 2 });
    try {
      h.server.healthy = false;
      h.checker.start();
      await waitFor(() => h.server.healthy, 3_000, 'the server to come up');
      await waitFor(() => closeCodes.length >= 3, 3_000, 'three closed WebSockets');
      h.checker.stop();
      await waitFor(() => origin.sockets.size === 0, 2_000, 'the origin WebSockets to close');
      assert.ok(closeCodes.every((code) => code === 1000), `close codes: ${closeCodes.join()}`);
      assert.equal(wsErrors, 0, 'the origin saw a WebSocket protocol error (unmasked or bad frame?)');
      assert.equal(socketErrors, 0, 'the origin saw a socket error (reset?)');
      const keys = new Set<string>();
      for (const handshake of origin.handshakes) {
        assert.equal(handshake.method, 'GET');
        assert.equal(handshake.url, '/ws-base/live');
        assert.equal(handshake.headers.host, `127.0.0.1:${origin.port}`);
        assert.equal(handshake.headers['sec-websocket-version'], '13');
        keys.add(String(handshake.headers['sec-websocket-key']));
      }
      assert.equal(keys.size, origin.handshakes.length, 'a Sec-WebSocket-Key was reused');
      assert.equal(origin.requests.length, 0, 'the origin saw plain HTTP requests');
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('an HTTP-only origin fails (it answers the handshake with 200)', { timeout: 10_000 }, async () => {
    const seen: IncomingMessage[] = [];
    const server = http.createServer((req, res) => {
      seen.push(req);
      res.end('plain http only');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const h = harness([`ws://127.0.0.1:${(server.address() as AddressInfo).port}`], { type: 'websocket', path: '/', intervalMs: 40, fall: 2 });
    try {
      h.checker.start();
      await waitFor(() => !h.server.healthy, 3_000, 'the server to go down');
      assert.match(String(warnings(h.logs)[0]?.reason), /200/);
      assert.equal(seen[0]!.headers.upgrade, 'websocket');
    } finally {
      await h.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test('a 101 with a wrong Sec-WebSocket-Accept fails (and its connection is closed); a right one passes', { timeout: 10_000 }, async () => {
    let wrong = true;
    let open = 0;
    const origin = await startOrigin({
      onUpgrade: (req, socket, _head, accept) => {
        if (!wrong) {
          accept();
          return;
        }
        open++;
        socket.on('close', () => open--);
        // Read on, so the checker's FIN (or reset) is seen and this end closes too.
        socket.on('end', () => socket.destroy());
        socket.resume();
        // The accept value of some other key: well-formed, but not the answer to this one.
        const other = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}x258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
        socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${other}\r\n\r\n`);
      },
    });
    const h = harness([origin.wsUrl], { type: 'websocket', path: '/', intervalMs: 40, fall: 1, rise: 1 });
    try {
      h.checker.start();
      await waitFor(() => !h.server.healthy, 3_000, 'the server to go down');
      assert.match(String(warnings(h.logs)[0]?.reason), /Sec-WebSocket-Accept/);
      await waitFor(() => open === 0, 2_000, 'the checker to close the bad connection');
      wrong = false;
      await waitFor(() => h.server.healthy, 3_000, 'the server to come back with a right answer');
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('wss: the handshake over TLS with the upstream CA passes', { timeout: 10_000 }, async () => {
    const server = https.createServer({ cert, key }, (_req, res) => res.end('not a websocket'));
    const wss = new WebSocketServer({ server });
    const codes: number[] = [];
    wss.on('connection', (ws) => {
      ws.on('close', (code) => codes.push(code));
      ws.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const h = harness([`wss://127.0.0.1:${(server.address() as AddressInfo).port}`], { type: 'websocket', path: '/', intervalMs: 40, fall: 1, rise: 1 }, { tls: { ca: cert, insecure: false } });
    try {
      h.server.healthy = false;
      h.checker.start();
      await waitFor(() => h.server.healthy, 3_000, 'the server to come up');
      await waitFor(() => codes.length >= 1, 2_000, 'a closed WebSocket');
      assert.equal(codes[0], 1000);
    } finally {
      await h.close();
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

// ---------------------------------------------------------------- pool integration

describe('active health checks and the pool', () => {
  // The issue: an ejected server "returns through the active check or after the period".
  test('a passing check ends a passive ejection at once', { timeout: 10_000 }, async () => {
    const origin = await statusOrigin(200);
    const h = harness([origin.url], { intervalMs: 50, rise: 2, fall: 2 });
    try {
      h.server.eject(Date.now(), 60_000, 60_000);
      assert.ok(!h.server.isAvailable(Date.now()), 'ejected for a minute');
      h.checker.start();
      await waitFor(() => h.server.isAvailable(Date.now()), 2_000, 'the ejection to end');
      assert.equal(h.server.ejections, 0, 'the ejection history is cleared too');
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('a failing check does not end a passive ejection', { timeout: 10_000 }, async () => {
    const origin = await statusOrigin(500);
    const h = harness([origin.url], { intervalMs: 50, rise: 2, fall: 100 });
    try {
      const until = Date.now() + 60_000;
      h.server.eject(Date.now(), 60_000, 60_000);
      h.checker.start();
      await sleep(300);
      assert.ok(h.server.ejectedUntil >= until - 1_000, 'still ejected');
    } finally {
      await h.close();
      await origin.close();
    }
  });

  test('on_down close: serverWentDown closes the server tunnels; on_down keep leaves them', { timeout: 10_000 }, async () => {
    const origin = await statusOrigin(500);
    const closing = harness([origin.url], { intervalMs: 40, fall: 1 }, { closeTunnelsOnDown: true });
    const keeping = harness([origin.url], { intervalMs: 40, fall: 1 }, { closeTunnelsOnDown: false });
    const reasons: string[] = [];
    const kept: string[] = [];
    const fake = (into: string[]): Closable => ({ destroy: (reason) => void into.push(reason) });
    closing.server.tunnels.add(fake(reasons));
    keeping.server.tunnels.add(fake(kept));
    try {
      closing.checker.start();
      keeping.checker.start();
      await waitFor(() => !closing.server.healthy && !keeping.server.healthy, 3_000, 'both servers to go down');
      assert.deepEqual(closing.wentDown, [closing.server]);
      assert.deepEqual(keeping.wentDown, [keeping.server]);
      assert.deepEqual(reasons, ['down']);
      assert.deepEqual(kept, []);
      // A down server is no longer selected.
      const selection = closing.pool.select({ kind: 'http', clientAddress: '127.0.0.1', cookieHeader: undefined, secure: false, tried: undefined }, Date.now());
      assert.equal(selection, undefined);
    } finally {
      await closing.close();
      await keeping.close();
      await origin.close();
    }
  });

  test('the server list is read every round: a server added later is probed, a removed one no longer', { timeout: 10_000 }, async () => {
    const first = await statusOrigin(200);
    const second = await statusOrigin(500);
    const h = harness([first.url], { intervalMs: 40, fall: 1, rise: 1 });
    try {
      h.checker.start();
      await waitFor(() => first.requests.length >= 1, 3_000, 'the first server to be probed');
      const added = h.pool.createServer(second.url);
      h.pool.addServer(added);
      await waitFor(() => !added.healthy, 3_000, 'the added server to be probed and go down');
      h.pool.servers.splice(h.pool.servers.indexOf(h.server), 1);
      const probedBefore = first.requests.length;
      await waitFor(() => second.requests.length >= 5, 3_000, 'more rounds');
      assert.ok(first.requests.length <= probedBefore + 1, `a removed server was probed ${first.requests.length - probedBefore} more times`);
    } finally {
      await h.close();
      await first.close();
      await second.close();
    }
  });
});

// ---------------------------------------------------------------- stop, timers, leaks

describe('stopping', () => {
  test('stop(): the probe in flight is aborted and never reported, no more rounds, every timer was unref()\'d and is gone', { timeout: 10_000 }, async () => {
    const held: ServerResponse[] = [];
    const origin = await startOrigin({ handler: (_req, res) => void held.push(res) });
    let open = 0;
    origin.server.on('connection', (socket: Socket) => {
      open++;
      socket.on('close', () => open--);
    });
    const timers = trackTimers((stack) => stack.includes('active-check'));
    const h = harness([origin.url], { intervalMs: 50, timeoutMs: 2_000, fall: 1 });
    try {
      h.checker.start();
      await waitFor(() => held.length === 1, 3_000, 'a probe in flight');
      h.checker.stop();
      const requests = origin.requests.length;
      // The probe had 2 s left: only an abort closes its connection this soon.
      await waitFor(() => open === 0, 1_000, 'stop() to close the probe connection');
      // Answer the aborted probe's request anyway: nobody may hear it.
      for (const res of held) res.writeHead(500).end();
      await sleep(300);
      assert.equal(origin.requests.length, requests, 'rounds went on after stop()');
      assert.equal(h.server.healthy, true, 'a result arrived after stop()');
      assert.deepEqual(warnings(h.logs), []);
      assert.ok(timers.created.length >= 2, `only ${timers.created.length} timers seen: is the tracking wrong?`);
      for (const timer of timers.created) {
        assert.equal(timer.handle?.hasRef(), false, `a ${timer.kind} keeps the process alive`);
        assert.ok(timer.cleared || timer.fired, `a ${timer.kind} is still pending after stop()`);
      }
    } finally {
      timers.restore();
      await h.close();
      await origin.close();
    }
  });

  test('the process exits promptly after stop(), even with a probe in flight', { timeout: 15_000 }, async () => {
    // A server that accepts and never answers, in this process: only the child's
    // own sockets and timers can keep the child alive.
    const accepted = new Set<Socket>();
    const hanging = net.createServer((socket) => {
      accepted.add(socket);
      socket.resume();
      socket.on('error', () => undefined);
      socket.on('close', () => accepted.delete(socket));
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    const port = (hanging.address() as AddressInfo).port;
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-health-child-'));
    const script = join(dir, 'child.mjs');
    const from = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);
    writeFileSync(script, `
      import { UpstreamPool } from ${from('../../src/upstream/upstream-pool.js')};
      import { ActiveHealthCheck } from ${from('../../src/upstream/health/active-check.js')};
      import { silentLogger } from ${from('../../src/log/logger.js')};
      const health = { type: 'http', path: '/', method: 'GET', headers: {}, expectStatus: [200, 399], expectBody: undefined, intervalMs: 60000, timeoutMs: 60000, rise: 1, fall: 1 };
      const pool = new UpstreamPool({ name: 'child', servers: [{ url: 'http://127.0.0.1:${port}', weight: 1 }], policy: undefined, sticky: 'none',
        stickySecret: 'x'.repeat(16), stickyCookieName: 'sy', failTimeoutMs: 1000, activeHealth: health }, { connectMs: 1000, responseMs: 1000, bodyIdleMs: 1000 });
      const checker = new ActiveHealthCheck(pool, health, silentLogger());
      checker.start();
      process.stdin.once('data', async () => {
        process.stdin.pause();
        checker.stop();
        await pool.close();
        console.log('stopped');
      });
      console.log('started');
    `);
    const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    try {
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      await waitFor(() => output.includes('started') && accepted.size === 1, 5_000, 'the child probe to connect');
      child.stdin.end('stop\n');
      await waitFor(() => output.includes('stopped'), 5_000, 'the child to stop');
      const stoppedAt = Date.now();
      const code = await Promise.race([exited, sleep(3_000).then(() => 'still running' as const)]);
      assert.equal(code, 0, `the child did not exit after stop() (${String(code)})`);
      assert.ok(Date.now() - stoppedAt < 3_000);
      await waitFor(() => accepted.size === 0, 2_000, 'the probe connection to close');
    } finally {
      child.kill();
      for (const socket of accepted) socket.destroy();
      await new Promise<void>((resolve) => hanging.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('no file descriptors leak over many probes of every kind', { timeout: 20_000 }, async () => {
    const fdsBefore = openFdCount();
    const passing = await statusOrigin(200);
    const failing = await statusOrigin(503);
    const silent = await startOrigin({ handler: () => undefined });
    const websocket = await startOrigin();
    const wrongAccept = await startOrigin({
      onUpgrade: (_req, socket) => {
        socket.on('end', () => socket.destroy());
        socket.resume();
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: bm9wZQ==\r\n\r\n');
      },
    });
    const noHandshake = await startOrigin({
      onUpgrade: (_req, socket) => {
        socket.on('end', () => socket.destroy());
        socket.resume();
      },
    });
    const refused = await closedPort();
    const fast = { intervalMs: 20, timeoutMs: 100, fall: 2, rise: 1 };
    const harnesses = [
      harness([passing.url, failing.url, silent.url, `http://127.0.0.1:${refused}`], { ...fast, expectBody: 'ok' }),
      harness([websocket.wsUrl, wrongAccept.wsUrl, noHandshake.wsUrl, `ws://127.0.0.1:${refused}`], { ...fast, type: 'websocket' }),
    ];
    try {
      for (const h of harnesses) h.checker.start();
      await waitFor(() => websocket.handshakes.length >= 15 && passing.requests.length >= 30, 10_000, 'many probes');
      assert.deepEqual(harnesses[0]!.pool.servers.map((server) => server.healthy), [true, false, false, false]);
      assert.deepEqual(harnesses[1]!.pool.servers.map((server) => server.healthy), [true, false, false, false]);
    } finally {
      for (const h of harnesses) await h.close();
      for (const origin of [passing, failing, silent, websocket, wrongAccept, noHandshake]) await origin.close();
    }
    await waitFor(() => openFdCount() <= fdsBefore + 2, 3_000, `file descriptors to return to ${fdsBefore} (now ${openFdCount()})`);
  });
});

// ---------------------------------------------------------------- helpers

interface TrackedTimer {
  readonly kind: 'setTimeout' | 'setInterval';
  handle: NodeJS.Timeout | undefined;
  cleared: boolean;
  fired: boolean;
}

/** Wraps the global timer functions; records the timers whose creating stack passes `select`. */
function trackTimers(select: (stack: string) => boolean): { created: TrackedTimer[]; restore(): void } {
  const created: TrackedTimer[] = [];
  const originals = { setTimeout, setInterval, clearTimeout, clearInterval };
  const byHandle = new Map<unknown, TrackedTimer>();
  const wrap = (kind: TrackedTimer['kind']) => (callback: (...args: unknown[]) => void, ms?: number, ...args: unknown[]): NodeJS.Timeout => {
    const stack = new Error().stack ?? '';
    if (!select(stack)) return originals[kind](callback, ms, ...args);
    const entry: TrackedTimer = { kind, handle: undefined, cleared: false, fired: false };
    const handle = originals[kind]((...inner: unknown[]) => {
      if (kind === 'setTimeout') entry.fired = true;
      callback(...inner);
    }, ms, ...args);
    entry.handle = handle;
    created.push(entry);
    byHandle.set(handle, entry);
    return handle;
  };
  const clear = (kind: 'clearTimeout' | 'clearInterval') => (handle: NodeJS.Timeout | string | number | undefined): void => {
    const entry = byHandle.get(handle);
    if (entry) entry.cleared = true;
    originals[kind](handle);
  };
  const target = globalThis as unknown as Record<string, unknown>;
  target.setTimeout = wrap('setTimeout');
  target.setInterval = wrap('setInterval');
  target.clearTimeout = clear('clearTimeout');
  target.clearInterval = clear('clearInterval');
  return {
    created,
    restore: () => Object.assign(target, originals),
  };
}
