/**
 * Client identity and client limits end to end, through a real Switchyard in
 * this process and real origins on 127.0.0.1:0: the PROXY protocol on plain and
 * TLS listeners (trusted sources, refusals), trusted_proxies with route
 * allow/deny, the request limits (header count, body size), the connection
 * limits (per address, all listeners, one listener), the WebSocket handshake
 * rate and per-route tunnel limit, the rejection counters in /metrics, and
 * that refused connections leave no sockets or file descriptors behind.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, afterEach, before, describe, test } from 'node:test';
import { LocalAdminBackend } from '../../src/admin/admin-backend.js';
import { AdminServer } from '../../src/admin/admin-server.js';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { AccessLog } from '../../src/observe/access-log.js';
import type { RequestRecord, TunnelRecord } from '../../src/observe/records.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { selfSignedCertificate, type TestCertificate } from '../helpers/certs.js';
import {
  closeWebSocket, connectPlain, connectWithHeader, destroyOpenedSockets, echo, grown, httpRequest, rawExchange, requestOver,
  scrapeRejections, tlsCoalescedWithHeader, tlsOver, tryWebSocket, v1Header, v2Header, type Reply, type WsAttempt,
} from '../helpers/client-identity.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { openFdCount, sleep, waitFor } from '../helpers/raw.js';

// ---------------------------------------------------------------- harness

type LogLine = Partial<Omit<RequestRecord, 'type'>> & Partial<Omit<TunnelRecord, 'type'>> & { type: 'request' | 'tunnel' };

interface Harness {
  readonly proxy: Switchyard;
  /** Listener ports, in config order. */
  readonly ports: number[];
  readonly logFile: string;
  readonly adminPort: number;
  rejections(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function yamlConfig(yaml: string): ReturnType<typeof loadConfigText>['config'] {
  return loadConfigText(yaml, 'limits-and-identity.test.yaml', { env: {}, defaultSecret: randomBytes(16).toString('hex') }).config;
}

async function startHarness(yaml: string): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-limits-'));
  tempDirs.push(dir);
  const logFile = join(dir, 'access.log');
  const accessLog = new AccessLog({ path: logFile, format: 'json' }, silentLogger());
  const proxy = await Switchyard.start(yamlConfig(yaml), silentLogger(), { accessLog });
  const admin = await AdminServer.start({ host: '127.0.0.1', port: 0 }, new LocalAdminBackend(proxy, undefined), silentLogger());
  return {
    proxy, logFile,
    ports: proxy.addresses.map((address) => address.port),
    adminPort: admin.port,
    rejections: () => scrapeRejections(admin.port),
    close: async () => {
      await admin.close();
      await proxy.shutdown(0);
      accessLog.close();
    },
  };
}

function readRecords(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as LogLine);
}

async function waitForRecord(file: string, match: (line: LogLine) => boolean, what: string, ms = 3_000): Promise<LogLine> {
  let found: LogLine | undefined;
  await waitFor(() => (found = readRecords(file).find(match)) !== undefined, ms, `${what}; the log has ${JSON.stringify(readRecords(file))}`);
  return found!;
}

function requestRecordFor(h: Harness, path: string): Promise<LogLine> {
  return waitForRecord(h.logFile, (line) => line.type === 'request' && line.path === path, `the access log line of ${path}`);
}

/** The echo origin's view of the request (headers as the backend saw them). */
function echoed(reply: Reply): { url: string; headers: Record<string, string | undefined>; body: string } {
  assert.equal(reply.status, 200, `expected the origin's echo, got ${reply.status} ${reply.body}`);
  return JSON.parse(reply.body) as { url: string; headers: Record<string, string | undefined>; body: string };
}

function expectOpen(attempt: WsAttempt, what: string): asserts attempt is Extract<WsAttempt, { kind: 'open' }> {
  assert.equal(attempt.kind, 'open', `${what}: ${attempt.kind === 'refused' ? `refused ${attempt.status} ${attempt.headers['x-switchyard-error']} ${attempt.body}` : ''}`);
}

function expectRefused(attempt: WsAttempt, status: number, code: string, what: string): asserts attempt is Extract<WsAttempt, { kind: 'refused' }> {
  if (attempt.kind === 'open') {
    attempt.ws.terminate();
    assert.fail(`${what}: the WebSocket opened, expected ${status} ${code}`);
  }
  assert.equal(attempt.status, status, `${what}: status`);
  assert.equal(attempt.headers['x-switchyard-error'], code, `${what}: X-Switchyard-Error`);
}

function expectRawError(reply: { status: number; headers: Record<string, string>; text: string; closed: boolean }, status: number, code: string, what: string): void {
  assert.equal(reply.status, status, `${what}: got ${JSON.stringify(reply.text.slice(0, 300))}`);
  assert.equal(reply.headers['x-switchyard-error'], code, `${what}: X-Switchyard-Error`);
  assert.equal(reply.closed, true, `${what}: the proxy closes the connection after the refusal`);
}

function get(path: string, extra: string[] = []): string {
  return [`GET ${path} HTTP/1.1`, 'Host: app.test', ...extra, '', ''].join('\r\n');
}

afterEach(() => destroyOpenedSockets());

/** A pause after a PROXY header so the proxy reads it alone, before the TLS ClientHello. */
const SETTLE_MS = 50;

// ===================================================================== 1. PROXY protocol

describe('PROXY protocol on listeners', () => {
  let origin: Origin;
  let certificate: TestCertificate;
  let h: Harness;
  /** Plain listener trusting 127.0.0.1, TLS listener trusting 127.0.0.1/32, plain listener trusting others only. */
  let plain: number;
  let secure: number;
  let untrusted: number;

  before(async () => {
    origin = await startOrigin();
    certificate = await selfSignedCertificate('switchyard-limits-cert-');
    h = await startHarness(`
listeners:
  - address: 127.0.0.1:0
    proxy_protocol: [127.0.0.1]
  - address: 127.0.0.1:0
    proxy_protocol: [127.0.0.1/32]
    tls: { cert: ${JSON.stringify(certificate.certFile)}, key: ${JSON.stringify(certificate.keyFile)} }
  - address: 127.0.0.1:0
    proxy_protocol: [192.0.2.0/24, "2001:db8::/32"]
sites:
  - name: main
    routes:
      - name: ws
        match: { prefix: /ws }
        to: app
      - name: echo
        to: app
upstreams:
  app: { servers: [${origin.url}] }
timeouts: { header: 1s }
`);
    [plain, secure, untrusted] = h.ports as [number, number, number];
  });
  after(async () => {
    await h.close();
    await origin.close();
    certificate.remove();
  });

  describe('from a trusted source', () => {
    test('v1 TCP4: the client in the header is the client (access log, X-Forwarded-For)', { timeout: 10_000 }, async () => {
      const connection = await connectWithHeader(plain, v1Header('TCP4', '203.0.113.10', '127.0.0.1', 40001, plain));
      const backend = echoed(await requestOver(connection, '/echo/v1-tcp4'));
      assert.equal(backend.headers['x-forwarded-for'], '203.0.113.10');
      const line = await requestRecordFor(h, '/echo/v1-tcp4');
      assert.equal(line.client, '203.0.113.10');
      assert.equal(line.client_port, 40001);
      assert.equal(line.status, 200);
    });

    test('v1 TCP6, the header arriving in pieces', { timeout: 10_000 }, async () => {
      const header = v1Header('TCP6', '2001:db8::10', '::1', 40002, plain);
      const connection = await connectWithHeader(plain, [header.subarray(0, 3), header.subarray(3, 20), header.subarray(20)]);
      const backend = echoed(await requestOver(connection, '/echo/v1-tcp6'));
      assert.equal(backend.headers['x-forwarded-for'], '2001:db8::10');
      const line = await requestRecordFor(h, '/echo/v1-tcp6');
      assert.equal(line.client, '2001:db8::10');
      assert.equal(line.client_port, 40002);
    });

    test('v2 TCP4 and TCP6', { timeout: 10_000 }, async () => {
      const four = await connectWithHeader(plain, v2Header('203.0.113.11', '127.0.0.1', 40003, plain));
      assert.equal(echoed(await requestOver(four, '/echo/v2-tcp4')).headers['x-forwarded-for'], '203.0.113.11');
      const header = v2Header('2001:db8::11', '2001:db8::1', 40004, plain);
      const six = await connectWithHeader(plain, [header.subarray(0, 10), header.subarray(10, 30), header.subarray(30)]);
      assert.equal(echoed(await requestOver(six, '/echo/v2-tcp6')).headers['x-forwarded-for'], '2001:db8::11');
      const line4 = await requestRecordFor(h, '/echo/v2-tcp4');
      assert.equal(line4.client, '203.0.113.11');
      assert.equal(line4.client_port, 40003);
      const line6 = await requestRecordFor(h, '/echo/v2-tcp6');
      assert.equal(line6.client, '2001:db8::11');
      assert.equal(line6.client_port, 40004);
    });

    test('an IPv4 client in an IPv6 header (a dual-stack balancer) is logged and forwarded as IPv4, v1 and v2 alike', { timeout: 10_000 }, async () => {
      const viaV1 = await connectWithHeader(plain, v1Header('TCP6', '::ffff:203.0.113.12', '::ffff:127.0.0.1', 40005, plain));
      assert.equal(echoed(await requestOver(viaV1, '/echo/mapped-v1')).headers['x-forwarded-for'], '203.0.113.12', 'v1');
      assert.equal((await requestRecordFor(h, '/echo/mapped-v1')).client, '203.0.113.12', 'v1 log');
      const viaV2 = await connectWithHeader(plain, v2Header('::ffff:203.0.113.13', '::ffff:127.0.0.1', 40006, plain));
      const backend = echoed(await requestOver(viaV2, '/echo/mapped-v2'));
      const line = await requestRecordFor(h, '/echo/mapped-v2');
      assert.equal(backend.headers['x-forwarded-for'], '203.0.113.13', 'v2: X-Forwarded-For');
      assert.equal(line.client, '203.0.113.13', 'v2: access log client');
    });

    test('v2 LOCAL and v1 UNKNOWN (health checks): the connection\'s own address stands', { timeout: 10_000 }, async () => {
      const local = await connectWithHeader(plain, v2Header('203.0.113.99', '127.0.0.1', 40007, plain, { command: 'LOCAL' }));
      assert.equal(echoed(await requestOver(local, '/echo/v2-local')).headers['x-forwarded-for'], '127.0.0.1');
      const unknown = await connectWithHeader(plain, Buffer.from('PROXY UNKNOWN\r\n', 'latin1'));
      assert.equal(echoed(await requestOver(unknown, '/echo/v1-unknown')).headers['x-forwarded-for'], '127.0.0.1');
      assert.equal((await requestRecordFor(h, '/echo/v2-local')).client, '127.0.0.1');
      assert.equal((await requestRecordFor(h, '/echo/v1-unknown')).client, '127.0.0.1');
    });

    test('every keep-alive request of the connection keeps the header\'s client; header and requests in one write', { timeout: 10_000 }, async () => {
      const bytes = Buffer.concat([
        v1Header('TCP4', '203.0.113.14', '127.0.0.1', 40008, plain),
        Buffer.from(get('/echo/keep-alive-1') + get('/echo/keep-alive-2', ['Connection: close']), 'latin1'),
      ]);
      const reply = await rawExchange(plain, bytes);
      assert.equal(reply.closed, true, 'the connection closes after the second response');
      assert.equal(reply.text.match(/HTTP\/1\.1 200 /g)?.length, 2, reply.text);
      for (const path of ['/echo/keep-alive-1', '/echo/keep-alive-2']) {
        const seen = origin.requests.find((request) => request.url === path);
        assert.equal(seen?.headers['x-forwarded-for'], '203.0.113.14', path);
        assert.equal((await requestRecordFor(h, path)).client, '203.0.113.14', path);
      }
    });

    test('a WebSocket after a PROXY header: handshake, echo, the tunnel logged with the header\'s client', { timeout: 10_000 }, async () => {
      const connection = await connectWithHeader(plain, v1Header('TCP4', '203.0.113.20', '127.0.0.1', 40010, plain));
      const attempt = await tryWebSocket(`ws://127.0.0.1:${plain}/ws/after-v1`, { createConnection: () => connection });
      expectOpen(attempt, 'WebSocket after PROXY v1');
      assert.equal(await echo(attempt.ws, 'hello through PROXY'), 'hello through PROXY');
      const handshake = origin.handshakes.find((request) => request.url === '/ws/after-v1');
      assert.equal(handshake?.headers['x-forwarded-for'], '203.0.113.20');
      await closeWebSocket(attempt.ws);
      const line = await waitForRecord(h.logFile, (record) => record.type === 'tunnel' && record.path === '/ws/after-v1', 'the tunnel line');
      assert.equal(line.client, '203.0.113.20');
      assert.equal(line.client_port, 40010);
    });

    test('a WebSocket after a v2 header whose first bytes share a segment with the handshake', { timeout: 10_000 }, async () => {
      // No wait between header and handshake: both usually arrive in one read.
      const connection = await connectWithHeader(plain, v2Header('203.0.113.21', '127.0.0.1', 40011, plain));
      const attempt = await tryWebSocket(`ws://127.0.0.1:${plain}/ws/after-v2`, { createConnection: () => connection });
      expectOpen(attempt, 'WebSocket after PROXY v2');
      assert.equal(await echo(attempt.ws, 'v2'), 'v2');
      assert.equal(origin.handshakes.find((request) => request.url === '/ws/after-v2')?.headers['x-forwarded-for'], '203.0.113.21');
      await closeWebSocket(attempt.ws);
    });

    test('TLS listener: the header comes before the TLS handshake (HTTP/1.1, header read on its own)', { timeout: 10_000 }, async () => {
      const connection = await connectWithHeader(secure, v1Header('TCP4', '203.0.113.30', '127.0.0.1', 40012, secure), SETTLE_MS);
      const backend = echoed(await requestOver(tlsOver(connection), '/echo/tls-v1'));
      assert.equal(backend.headers['x-forwarded-for'], '203.0.113.30');
      assert.equal(backend.headers['x-forwarded-proto'], 'https');
      const line = await requestRecordFor(h, '/echo/tls-v1');
      assert.equal(line.client, '203.0.113.30');
      assert.equal(line.client_port, 40012);
    });

    test('TLS listener: the header and the ClientHello in one segment (as balancers send them)', { timeout: 10_000 }, async () => {
      const connection = await connectPlain(secure);
      const secured = tlsCoalescedWithHeader(connection, v1Header('TCP4', '203.0.113.33', '127.0.0.1', 40015, secure));
      const handshake = await new Promise<string>((resolve) => {
        const timer = setTimeout(() => resolve('no TLS handshake within 3 s'), 3_000);
        secured.once('secureConnect', () => resolve('secure'));
        secured.once('error', (err) => resolve(`TLS error: ${err.message}`));
        secured.once('secureConnect', () => clearTimeout(timer));
      });
      assert.equal(handshake, 'secure', 'the ClientHello that arrived with the header must reach TLS');
      const backend = echoed(await requestOver(secured, '/echo/tls-coalesced', { ms: 3_000 }));
      assert.equal(backend.headers['x-forwarded-for'], '203.0.113.33');
      assert.equal((await requestRecordFor(h, '/echo/tls-coalesced')).client, '203.0.113.33');
    });

    test('TLS listener: a secure WebSocket after a v2 header', { timeout: 10_000 }, async () => {
      const connection = await connectWithHeader(secure, v2Header('2001:db8::31', '2001:db8::1', 40013, secure), SETTLE_MS);
      const attempt = await tryWebSocket(`wss://127.0.0.1:${secure}/ws/tls-v2`, { createConnection: () => tlsOver(connection) });
      expectOpen(attempt, 'wss after PROXY v2');
      assert.equal(await echo(attempt.ws, 'over tls'), 'over tls');
      assert.equal(origin.handshakes.find((request) => request.url === '/ws/tls-v2')?.headers['x-forwarded-for'], '2001:db8::31');
      await closeWebSocket(attempt.ws);
      assert.equal((await waitForRecord(h.logFile, (record) => record.type === 'tunnel' && record.path === '/ws/tls-v2', 'the wss tunnel line')).client, '2001:db8::31');
    });

    test('TLS listener: HTTP/2 after a PROXY header', { timeout: 10_000 }, async () => {
      const connection = await connectWithHeader(secure, v1Header('TCP4', '203.0.113.32', '127.0.0.1', 40014, secure), SETTLE_MS);
      const session = http2.connect(`https://localhost:${secure}`, { createConnection: () => tlsOver(connection, ['h2']) });
      try {
        const body = await new Promise<string>((resolve, reject) => {
          const stream = session.request({ ':path': '/echo/h2-after-proxy' });
          let text = '';
          stream.setEncoding('utf8');
          stream.on('response', (headers) => {
            if (headers[':status'] !== 200) reject(new Error(`status ${String(headers[':status'])}`));
          });
          stream.on('data', (chunk: string) => { text += chunk; });
          stream.on('end', () => resolve(text));
          stream.on('error', reject);
          stream.setTimeout(5_000, () => reject(new Error('no HTTP/2 answer')));
        });
        const backend = JSON.parse(body) as { headers: Record<string, string> };
        assert.equal(backend.headers['x-forwarded-for'], '203.0.113.32');
        const line = await requestRecordFor(h, '/echo/h2-after-proxy');
        assert.equal(line.protocol, 'h2');
        assert.equal(line.client, '203.0.113.32');
      } finally {
        session.destroy();
      }
    });
  });

  describe('refusals', () => {
    test('an untrusted source that sends a header (v1 or v2) is closed without a response', { timeout: 10_000 }, async () => {
      const before = await h.rejections();
      const seenBefore = origin.requests.length;
      const v1 = await rawExchange(untrusted, Buffer.concat([v1Header('TCP4', '203.0.113.40', '127.0.0.1', 40020, untrusted), Buffer.from(get('/echo/spoof-v1'))]));
      assert.deepEqual({ text: v1.text, closed: v1.closed }, { text: '', closed: true }, 'v1');
      const v2 = await rawExchange(untrusted, Buffer.concat([v2Header('203.0.113.41', '127.0.0.1', 40021, untrusted), Buffer.from(get('/echo/spoof-v2'))]));
      assert.deepEqual({ text: v2.text, closed: v2.closed }, { text: '', closed: true }, 'v2');
      assert.equal(origin.requests.length, seenBefore, 'nothing reached the backend');
      assert.deepEqual(grown(before, await h.rejections()), { SY_PROXY_PROTOCOL_UNTRUSTED: 2 });
    });

    test('an untrusted source without a header is an ordinary client', { timeout: 10_000 }, async () => {
      const backend = echoed(await httpRequest(untrusted, '/echo/plain-untrusted'));
      assert.equal(backend.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal((await requestRecordFor(h, '/echo/plain-untrusted')).client, '127.0.0.1');
      // Also a request starting with "P" (PUT, POST, PATCH) that is not a header.
      const put = await rawExchange(untrusted, `PUT /echo/put-untrusted HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`);
      assert.equal(put.status, 200, put.text);
      const patch = await rawExchange(untrusted, `PATCH /echo/patch-untrusted HTTP/1.1\r\nHost: app.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      assert.equal(patch.status, 200, patch.text);
    });

    test('a trusted source that sends no header is closed without a response (plain and TLS)', { timeout: 10_000 }, async () => {
      const before = await h.rejections();
      const seenBefore = origin.requests.length;
      const reply = await rawExchange(plain, get('/echo/no-header', ['Connection: close']));
      assert.deepEqual({ text: reply.text, closed: reply.closed }, { text: '', closed: true });
      // A TLS client straight away: its ClientHello is not a header.
      const outcome = await new Promise<string>((resolve) => {
        const socket = tls.connect({ host: '127.0.0.1', port: secure, servername: 'localhost', rejectUnauthorized: false });
        const timer = setTimeout(() => {
          socket.destroy();
          resolve('still open after 3 s');
        }, 3_000);
        socket.once('secureConnect', () => {
          clearTimeout(timer);
          socket.destroy();
          resolve('TLS handshake completed');
        });
        socket.once('error', () => {
          clearTimeout(timer);
          resolve('refused');
        });
        socket.once('close', () => {
          clearTimeout(timer);
          resolve('refused');
        });
      });
      assert.equal(outcome, 'refused');
      assert.equal(origin.requests.length, seenBefore);
      assert.deepEqual(grown(before, await h.rejections()), { SY_PROXY_PROTOCOL_MISSING: 2 });
    });

    test('a malformed header from a trusted source is closed without a response', { timeout: 10_000 }, async () => {
      const before = await h.rejections();
      const seenBefore = origin.requests.length;
      const cases: [string, Buffer][] = [
        ['port out of range', Buffer.from('PROXY TCP4 203.0.113.50 127.0.0.1 99999 80\r\n', 'latin1')],
        ['family and address differ', Buffer.from('PROXY TCP4 2001:db8::1 127.0.0.1 1 80\r\n', 'latin1')],
        ['v1 over 107 bytes', Buffer.from(`PROXY TCP4 ${'9'.repeat(120)}\r\n`, 'latin1')],
        ['v2 version 3', (() => { const header = v2Header('203.0.113.51', '127.0.0.1', 1, 80); header[12] = 0x31; return header; })()],
        ['v2 command 2', (() => { const header = v2Header('203.0.113.52', '127.0.0.1', 1, 80); header[12] = 0x22; return header; })()],
      ];
      for (const [what, header] of cases) {
        const reply = await rawExchange(plain, Buffer.concat([header, Buffer.from(get('/echo/malformed', ['Connection: close']))]));
        assert.deepEqual({ text: reply.text, closed: reply.closed }, { text: '', closed: true }, what);
      }
      assert.equal(origin.requests.length, seenBefore);
      assert.deepEqual(grown(before, await h.rejections()), { SY_PROXY_PROTOCOL_INVALID: cases.length });
    });

    test('a trusted source that stops inside its header is closed at the header timeout', { timeout: 10_000 }, async () => {
      const started = Date.now();
      const reply = await rawExchange(plain, 'PROXY TCP4 203.0.11', 6_000);
      assert.deepEqual({ text: reply.text, closed: reply.closed }, { text: '', closed: true });
      const waited = Date.now() - started;
      assert.ok(waited >= 800 && waited < 4_000, `closed after ${waited} ms; the header timeout is 1 s`);
    });
  });
});

// ===================================================================== 2. trusted_proxies

const ROUTES_WITH_LISTS = (upstream: string): string => `
sites:
  - name: main
    routes:
      - name: allowed
        match: { prefix: /allowed }
        to: app
        allow: [203.0.113.0/24]
      - name: denied
        match: { prefix: /denied }
        to: app
        deny: [203.0.113.7]
      - name: both
        match: { prefix: /both }
        to: app
        allow: [203.0.113.0/24]
        deny: [203.0.113.7/32]
      - name: open
        to: app
upstreams:
  app: { servers: [${upstream}] }
`;

describe('trusted_proxies and route allow / deny', () => {
  let origin: Origin;
  let trusting: Harness;
  let plainProxy: Harness;

  before(async () => {
    origin = await startOrigin();
    trusting = await startHarness(`
listeners:
  - address: 127.0.0.1:0
trusted_proxies: [127.0.0.1]
${ROUTES_WITH_LISTS(origin.url)}`);
    plainProxy = await startHarness(`
listeners:
  - address: 127.0.0.1:0
${ROUTES_WITH_LISTS(origin.url)}`);
  });
  after(async () => {
    await trusting.close();
    await plainProxy.close();
    await origin.close();
  });

  test('a trusted peer: the client comes from X-Forwarded-For; the backend sees the chain with the peer appended', { timeout: 10_000 }, async () => {
    const port = trusting.ports[0]!;
    const backend = echoed(await httpRequest(port, '/open/xff', { headers: { 'X-Forwarded-For': '203.0.113.7' } }));
    assert.equal(backend.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal((await requestRecordFor(trusting, '/open/xff')).client, '203.0.113.7');
    // A longer chain: the rightmost untrusted entry.
    echoed(await httpRequest(port, '/open/chain', { headers: { 'X-Forwarded-For': '198.51.100.1, 203.0.113.8' } }));
    assert.equal((await requestRecordFor(trusting, '/open/chain')).client, '203.0.113.8');
    // No header: the peer.
    echoed(await httpRequest(port, '/open/none'));
    assert.equal((await requestRecordFor(trusting, '/open/none')).client, '127.0.0.1');
  });

  test('allow and deny apply to the client from X-Forwarded-For', { timeout: 10_000 }, async () => {
    const port = trusting.ports[0]!;
    const before = await trusting.rejections();
    const seenBefore = origin.requests.length;
    const xff = (address: string): { headers: Record<string, string> } => ({ headers: { 'X-Forwarded-For': address } });

    assert.equal((await httpRequest(port, '/allowed/a', xff('203.0.113.7'))).status, 200, 'allowed: in the range');
    const outside = await httpRequest(port, '/allowed/b', xff('198.51.100.1'));
    assert.equal(outside.status, 403, 'allowed: outside the range');
    assert.equal(outside.headers['x-switchyard-error'], 'SY_CLIENT_IP_DENIED');
    const peerOnly = await httpRequest(port, '/allowed/c');
    assert.equal(peerOnly.status, 403, 'allowed: no header, the peer 127.0.0.1 is outside');

    const denied = await httpRequest(port, '/denied/a', xff('203.0.113.7'));
    assert.equal(denied.status, 403, 'denied address');
    assert.equal(denied.headers['x-switchyard-error'], 'SY_CLIENT_IP_DENIED');
    assert.equal((await httpRequest(port, '/denied/b', xff('203.0.113.8'))).status, 200, 'a neighbour of the denied address');

    assert.equal((await httpRequest(port, '/both/a', xff('203.0.113.7'))).status, 403, 'deny wins over allow');
    assert.equal((await httpRequest(port, '/both/b', xff('203.0.113.8'))).status, 200, 'allowed and not denied');

    const deniedLine = await requestRecordFor(trusting, '/denied/a');
    assert.equal(deniedLine.client, '203.0.113.7');
    assert.equal(deniedLine.status, 403);
    assert.equal(deniedLine.error, 'SY_CLIENT_IP_DENIED');
    assert.deepEqual(origin.requests.slice(seenBefore).map((request) => request.url).sort(), ['/allowed/a', '/both/b', '/denied/b']);
    assert.deepEqual(grown(before, await trusting.rejections()), { SY_CLIENT_IP_DENIED: 4 });
  });

  test('WebSocket handshakes are checked the same way', { timeout: 10_000 }, async () => {
    const port = trusting.ports[0]!;
    const before = await trusting.rejections();
    const refused = await tryWebSocket(`ws://127.0.0.1:${port}/denied/ws`, { headers: { 'X-Forwarded-For': '203.0.113.7' } });
    expectRefused(refused, 403, 'SY_CLIENT_IP_DENIED', 'WebSocket from a denied client');
    const opened = await tryWebSocket(`ws://127.0.0.1:${port}/allowed/ws`, { headers: { 'X-Forwarded-For': '203.0.113.9' } });
    expectOpen(opened, 'WebSocket from an allowed client');
    assert.equal(origin.handshakes.find((request) => request.url === '/allowed/ws')?.headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
    await closeWebSocket(opened.ws);
    assert.deepEqual(grown(before, await trusting.rejections()), { SY_CLIENT_IP_DENIED: 1 });
  });

  test('without trusted_proxies X-Forwarded-For is not believed: the lists see 127.0.0.1', { timeout: 10_000 }, async () => {
    const port = plainProxy.ports[0]!;
    const before = await plainProxy.rejections();
    const backend = echoed(await httpRequest(port, '/open/untrusted-xff', { headers: { 'X-Forwarded-For': '203.0.113.7' } }));
    assert.equal(backend.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'still appended to');
    assert.equal((await requestRecordFor(plainProxy, '/open/untrusted-xff')).client, '127.0.0.1');
    const allowed = await httpRequest(port, '/allowed/spoofed', { headers: { 'X-Forwarded-For': '203.0.113.7' } });
    assert.equal(allowed.status, 403, 'a spoofed X-Forwarded-For does not get past allow');
    assert.equal(allowed.headers['x-switchyard-error'], 'SY_CLIENT_IP_DENIED');
    assert.equal((await httpRequest(port, '/denied/spoofed', { headers: { 'X-Forwarded-For': '203.0.113.7' } })).status, 200, 'nor does it trigger deny');
    assert.deepEqual(grown(before, await plainProxy.rejections()), { SY_CLIENT_IP_DENIED: 1 });
  });
});

// ===================================================================== 3. limits

describe('request limits: header count and body size', () => {
  let origin: Origin;
  let h: Harness;
  let port: number;

  before(async () => {
    origin = await startOrigin();
    h = await startHarness(`
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: ${origin.url}
limits: { max_header_count: 10, max_body_bytes: 1000 }
`);
    port = h.ports[0]!;
  });
  after(async () => {
    await h.close();
    await origin.close();
  });

  function withHeaders(path: string, count: number): string {
    // Host and Connection, then X-Fill-N up to `count` fields in all.
    const extra = Array.from({ length: count - 2 }, (_, i) => `X-Fill-${i}: ${i}`);
    return get(path, ['Connection: close', ...extra]);
  }

  test('max_header_count 10: 10 fields pass, 11 and more get 431 SY_CLIENT_TOO_MANY_HEADERS without reaching the backend', { timeout: 10_000 }, async () => {
    const before = await h.rejections();
    const ten = await rawExchange(port, withHeaders('/headers/10', 10));
    assert.equal(ten.status, 200, ten.text);
    const seenBefore = origin.requests.length;
    expectRawError(await rawExchange(port, withHeaders('/headers/11', 11)), 431, 'SY_CLIENT_TOO_MANY_HEADERS', '11 fields');
    expectRawError(await rawExchange(port, withHeaders('/headers/50', 50)), 431, 'SY_CLIENT_TOO_MANY_HEADERS', '50 fields');
    assert.equal(origin.requests.length, seenBefore, 'the backend saw none of them');
    const line = await requestRecordFor(h, '/headers/11');
    assert.equal(line.status, 431);
    assert.equal(line.error, 'SY_CLIENT_TOO_MANY_HEADERS');
    assert.deepEqual(grown(before, await h.rejections()), { SY_CLIENT_TOO_MANY_HEADERS: 2 });
  });

  test('max_body_bytes 1000 with Content-Length: 1000 passes, 2000 gets 413 before the backend sees anything', { timeout: 10_000 }, async () => {
    const before = await h.rejections();
    const fits = await httpRequest(port, '/body/1000', { method: 'POST', body: 'a'.repeat(1000) });
    assert.equal(echoed(fits).body.length, 1000);
    const connectionsBefore = origin.connectionCount;
    const seenBefore = origin.requests.length;
    const big = await rawExchange(port, `POST /body/2000 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2000\r\n\r\n${'b'.repeat(2000)}`);
    expectRawError(big, 413, 'SY_CLIENT_BODY_TOO_LARGE', 'Content-Length 2000');
    // Declared but not sent: refused on the header alone.
    const declared = await rawExchange(port, `POST /body/declared HTTP/1.1\r\nHost: app.test\r\nContent-Length: 1000000\r\n\r\n`);
    expectRawError(declared, 413, 'SY_CLIENT_BODY_TOO_LARGE', 'Content-Length 1000000, no body sent');
    assert.equal(origin.requests.length, seenBefore, 'no request reached the backend');
    assert.equal(origin.connectionCount, connectionsBefore, 'not even a connection to the backend');
    assert.deepEqual(grown(before, await h.rejections()), { SY_CLIENT_BODY_TOO_LARGE: 2 });
  });

  test('max_body_bytes 1000, chunked: 1000 bytes pass, 2000 get 413 and the backend never gets the whole body', { timeout: 10_000 }, async () => {
    const before = await h.rejections();
    const chunked = (path: string, chunks: string[]): string =>
      `POST ${path} HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n${chunks.map((chunk) => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join('')}0\r\n\r\n`;
    const fits = await rawExchange(port, chunked('/chunked/1000', ['x'.repeat(400), 'y'.repeat(600)]).replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'));
    assert.equal(fits.status, 200, fits.text.slice(0, 300));
    assert.equal((JSON.parse(fits.body) as { body: string }).body.length, 1000);
    // The origin answers only after the whole body (it echoes it), so the proxy sees the excess first.
    const big = await rawExchange(port, chunked('/chunked/2000', ['z'.repeat(500), 'z'.repeat(500), 'z'.repeat(500), 'z'.repeat(500)]));
    expectRawError(big, 413, 'SY_CLIENT_BODY_TOO_LARGE', 'chunked 2000');
    await sleep(100);
    assert.equal(origin.requests.some((request) => request.url === '/chunked/2000'), false, 'the backend never received the whole request');
    const line = await requestRecordFor(h, '/chunked/2000');
    assert.equal(line.status, 413);
    assert.equal(line.error, 'SY_CLIENT_BODY_TOO_LARGE');
    assert.deepEqual(grown(before, await h.rejections()), { SY_CLIENT_BODY_TOO_LARGE: 1 });
  });

  test('max_body_bytes: a chunked body that grows past the limit slowly is cut off too', { timeout: 10_000 }, async () => {
    const socket = await connectPlain(port);
    socket.write(`POST /chunked/slow HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n${(600).toString(16)}\r\n${'s'.repeat(600)}\r\n`);
    await sleep(150);
    const reply = await rawExchange(socket, `${(600).toString(16)}\r\n${'s'.repeat(600)}\r\n`);
    expectRawError(reply, 413, 'SY_CLIENT_BODY_TOO_LARGE', 'slow chunked 1200');
    assert.equal(origin.requests.some((request) => request.url === '/chunked/slow'), false);
  });
});

describe('connection limits', () => {
  let origin: Origin;

  before(async () => {
    origin = await startOrigin();
  });
  after(async () => {
    await origin.close();
  });

  test('max_connections_per_ip 2: the third connection gets 429 SY_CLIENT_CONNECTION_LIMIT; after one closes a new one works', { timeout: 15_000 }, async () => {
    const h = await startHarness(`
listeners:
  - address: 127.0.0.1:0
  - address: 127.0.0.1:0
    proxy_protocol: [127.0.0.1]
sites:
  - routes:
      - to: ${origin.url}
limits: { max_connections_per_ip: 2 }
`);
    try {
      const [port, proxied] = h.ports as [number, number];
      const before = await h.rejections();
      const first = await connectPlain(port);
      const second = await connectPlain(port);
      await waitFor(() => h.proxy.registry.connections.size === 2, 3_000, 'two connections');
      const seenBefore = origin.requests.length;
      const third = await rawExchange(port, get('/per-ip/third'));
      expectRawError(third, 429, 'SY_CLIENT_CONNECTION_LIMIT', 'third connection');
      assert.equal(origin.requests.length, seenBefore, 'the refused request did not reach the backend');
      // The two held connections are served as usual.
      const onSecond = await rawExchange(second, get('/per-ip/second', ['Connection: close']));
      assert.equal(onSecond.status, 200, onSecond.text);
      first.destroy();
      await waitFor(() => h.proxy.registry.connections.size === 0, 3_000, 'the connections to close');
      const again = await httpRequest(port, '/per-ip/again');
      assert.equal(again.status, 200, 'a new connection once one closed');

      // Behind a PROXY header, the header's client is counted.
      const a1 = await connectWithHeader(proxied, v1Header('TCP4', '203.0.113.60', '127.0.0.1', 1, proxied));
      const a2 = await connectWithHeader(proxied, v1Header('TCP4', '203.0.113.60', '127.0.0.1', 2, proxied));
      await waitFor(() => h.proxy.registry.connections.size === 2, 3_000, 'two proxied connections');
      const other = await connectWithHeader(proxied, v1Header('TCP4', '203.0.113.61', '127.0.0.1', 3, proxied));
      assert.equal((await rawExchange(other, get('/per-ip/other-client', ['Connection: close']))).status, 200, 'another client behind the same balancer');
      const same = await connectWithHeader(proxied, v1Header('TCP4', '203.0.113.60', '127.0.0.1', 4, proxied));
      expectRawError(await rawExchange(same, get('/per-ip/same-client')), 429, 'SY_CLIENT_CONNECTION_LIMIT', 'third connection of 203.0.113.60');
      const line = await requestRecordFor(h, '/per-ip/same-client');
      assert.equal(line.client, '203.0.113.60');
      // 127.0.0.1 itself has no connection open now (the proxied ones count as their clients).
      assert.equal((await httpRequest(port, '/per-ip/direct')).status, 200);
      a1.destroy();
      a2.destroy();
      assert.deepEqual(grown(before, await h.rejections()), { SY_CLIENT_CONNECTION_LIMIT: 2 });
    } finally {
      await h.close();
    }
  });

  test('limits.max_connections 2 (all listeners): the third connection gets 503 SY_PROXY_CONNECTION_LIMIT', { timeout: 15_000 }, async () => {
    const h = await startHarness(`
listeners:
  - address: 127.0.0.1:0
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: ${origin.url}
limits: { max_connections: 2 }
`);
    try {
      const [one, two] = h.ports as [number, number];
      const before = await h.rejections();
      const held = [await connectPlain(one), await connectPlain(two)];
      await waitFor(() => h.proxy.registry.connections.size === 2, 3_000, 'two connections');
      expectRawError(await rawExchange(one, get('/global/on-one')), 503, 'SY_PROXY_CONNECTION_LIMIT', 'third connection, first listener');
      expectRawError(await rawExchange(two, get('/global/on-two')), 503, 'SY_PROXY_CONNECTION_LIMIT', 'third connection, second listener');
      held[0]!.destroy();
      await waitFor(() => h.proxy.registry.connections.size === 1, 3_000, 'one connection left');
      assert.equal((await httpRequest(two, '/global/after-close')).status, 200);
      held[1]!.destroy();
      assert.deepEqual(grown(before, await h.rejections()), { SY_PROXY_CONNECTION_LIMIT: 2 });
    } finally {
      await h.close();
    }
  });

  test('listener max_connections 2: the third connection to that listener gets 503; another listener is not limited', { timeout: 15_000 }, async () => {
    const h = await startHarness(`
listeners:
  - address: 127.0.0.1:0
    max_connections: 2
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: ${origin.url}
`);
    try {
      const [limited, free] = h.ports as [number, number];
      const before = await h.rejections();
      const held = [await connectPlain(limited), await connectPlain(limited)];
      const heldFree = [await connectPlain(free), await connectPlain(free), await connectPlain(free)];
      await waitFor(() => h.proxy.registry.connections.size === 5, 3_000, 'five connections');
      expectRawError(await rawExchange(limited, get('/listener/third')), 503, 'SY_PROXY_CONNECTION_LIMIT', 'third connection on the limited listener');
      assert.equal((await httpRequest(free, '/listener/free')).status, 200, 'a fourth connection on the other listener');
      held[0]!.destroy();
      await waitFor(() => h.proxy.registry.connections.size === 4, 3_000, 'one connection fewer');
      assert.equal((await httpRequest(limited, '/listener/after-close')).status, 200);
      for (const socket of [...held, ...heldFree]) socket.destroy();
      assert.deepEqual(grown(before, await h.rejections()), { SY_PROXY_CONNECTION_LIMIT: 1 });
    } finally {
      await h.close();
    }
  });
});

describe('WebSocket limits', () => {
  let origin: Origin;

  before(async () => {
    origin = await startOrigin();
  });
  after(async () => {
    await origin.close();
  });

  test('handshakes_per_ip_per_second 3: the 4th quick handshake gets 429 with Retry-After; after ~1 s it works again', { timeout: 15_000 }, async () => {
    const h = await startHarness(`
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: ${origin.url}
limits: { handshakes_per_ip_per_second: 3 }
`);
    const open: WsAttempt[] = [];
    try {
      const url = `ws://127.0.0.1:${h.ports[0]!}/rate`;
      const before = await h.rejections();
      for (let i = 0; i < 3; i++) {
        const attempt = await tryWebSocket(url);
        open.push(attempt);
        expectOpen(attempt, `handshake ${i + 1}`);
      }
      const fourth = await tryWebSocket(url);
      open.push(fourth);
      expectRefused(fourth, 429, 'SY_CLIENT_HANDSHAKE_RATE', '4th handshake');
      // Plain requests are not handshakes.
      assert.equal((await httpRequest(h.ports[0]!, '/rate/plain')).status, 200);
      for (const attempt of open) if (attempt.kind === 'open') await closeWebSocket(attempt.ws);
      await sleep(1_100);
      const later = await tryWebSocket(url);
      open.push(later);
      expectOpen(later, 'a handshake after a second');
      assert.deepEqual(grown(before, await h.rejections()), { SY_CLIENT_HANDSHAKE_RATE: 1 });
      const retryAfter = Number(fourth.headers['retry-after']);
      assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After on the 429: ${JSON.stringify(fourth.headers)}`);
    } finally {
      for (const attempt of open) if (attempt.kind === 'open') attempt.ws.terminate();
      await h.close();
    }
  });

  test('route max_tunnels 2: the 3rd WebSocket gets 503 SY_ROUTE_TUNNEL_LIMIT; after one closes a new one opens', { timeout: 15_000 }, async () => {
    const h = await startHarness(`
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - name: capped
        match: { prefix: /capped }
        to: ${origin.url}
        max_tunnels: 2
      - name: free
        to: ${origin.url}
`);
    const open: WsAttempt[] = [];
    try {
      const base = `ws://127.0.0.1:${h.ports[0]!}`;
      const before = await h.rejections();
      for (let i = 0; i < 2; i++) {
        const attempt = await tryWebSocket(`${base}/capped/${i}`);
        open.push(attempt);
        expectOpen(attempt, `tunnel ${i + 1}`);
      }
      const third = await tryWebSocket(`${base}/capped/2`);
      open.push(third);
      expectRefused(third, 503, 'SY_ROUTE_TUNNEL_LIMIT', '3rd tunnel');
      assert.equal(origin.handshakes.some((request) => request.url === '/capped/2'), false, 'the backend never saw the 3rd handshake');
      const elsewhere = await tryWebSocket(`${base}/free/1`);
      open.push(elsewhere);
      expectOpen(elsewhere, 'a tunnel on another route');
      const first = open[0]!;
      assert.equal(first.kind, 'open');
      if (first.kind === 'open') {
        assert.equal(await echo(first.ws, 'still alive'), 'still alive');
        await closeWebSocket(first.ws);
      }
      await waitFor(() => h.proxy.registry.tunnels.size === 2, 3_000, 'the closed tunnel to end');
      const again = await tryWebSocket(`${base}/capped/3`);
      open.push(again);
      expectOpen(again, 'a tunnel after one closed');
      assert.deepEqual(grown(before, await h.rejections()), { SY_ROUTE_TUNNEL_LIMIT: 1 });
    } finally {
      for (const attempt of open) if (attempt.kind === 'open') attempt.ws.terminate();
      await h.close();
    }
  });
});

// ===================================================================== 4. leaks

describe('refused connections leave nothing behind', () => {
  test('200 over-limit connections, 100 refused PROXY headers, 50 resets before a header: no sockets, no descriptors left', { timeout: 60_000 }, async () => {
    const origin = await startOrigin();
    const h = await startHarness(`
listeners:
  - address: 127.0.0.1:0
  - address: 127.0.0.1:0
    proxy_protocol: [192.0.2.1]
  - address: 127.0.0.1:0
    proxy_protocol: [127.0.0.1]
sites:
  - routes:
      - to: ${origin.url}
limits: { max_connections_per_ip: 2 }
timeouts: { header: 2s }
`);
    try {
      const [limited, untrustedPort, trustedPort] = h.ports as [number, number, number];
      const before = await h.rejections();
      await sleep(100);
      const baseline = openFdCount();

      const held = [await connectPlain(limited), await connectPlain(limited)];
      await waitFor(() => h.proxy.registry.connections.size === 2, 3_000, 'two held connections');
      const statuses = new Map<string, number>();
      const count = (key: string): void => void statuses.set(key, (statuses.get(key) ?? 0) + 1);
      for (let batch = 0; batch < 10; batch++) {
        const replies = await Promise.all(Array.from({ length: 20 }, () => rawExchange(limited, get('/leak/over-limit'), 5_000)));
        for (const reply of replies) count(`${reply.status} ${reply.headers['x-switchyard-error'] ?? '-'} ${reply.closed ? 'closed' : 'open'}`);
      }
      for (let batch = 0; batch < 5; batch++) {
        const replies = await Promise.all(Array.from({ length: 20 }, (_, i) =>
          rawExchange(untrustedPort, Buffer.concat([v1Header('TCP4', '203.0.113.70', '127.0.0.1', 1000 + i, untrustedPort), Buffer.from(get('/leak/spoof'))]), 5_000)));
        for (const reply of replies) count(`proxy ${reply.text === '' ? 'silent' : 'answered'} ${reply.closed ? 'closed' : 'open'}`);
      }
      // Resets in the middle of a header (trusted listener) and before any byte (untrusted one).
      await Promise.all(Array.from({ length: 25 }, async () => {
        const socket = await connectWithHeader(trustedPort, Buffer.from('PROXY TCP4 203.0', 'latin1'));
        socket.resetAndDestroy();
      }));
      await Promise.all(Array.from({ length: 25 }, async () => {
        const socket = await connectPlain(untrustedPort);
        socket.resetAndDestroy();
      }));
      assert.deepEqual(Object.fromEntries(statuses), {
        '429 SY_CLIENT_CONNECTION_LIMIT closed': 200,
        'proxy silent closed': 100,
      });
      for (const socket of held) socket.destroy();

      await waitFor(() => h.proxy.registry.connections.size === 0, 5_000, `the proxy's connections to close (${h.proxy.registry.connections.size} open)`);
      let fds = openFdCount();
      await waitFor(() => (fds = openFdCount()) <= baseline + 3, 5_000, `descriptors back at the baseline ${baseline}`).catch(() => undefined);
      assert.ok(fds <= baseline + 3, `open descriptors: ${fds}, baseline ${baseline}`);
      assert.deepEqual(grown(before, await h.rejections()), { SY_CLIENT_CONNECTION_LIMIT: 200, SY_PROXY_PROTOCOL_UNTRUSTED: 100 });
      // Still serving.
      assert.equal((await httpRequest(limited, '/leak/after')).status, 200);
    } finally {
      await h.close();
      await origin.close();
    }
  });
});
