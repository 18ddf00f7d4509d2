/**
 * Observability end to end (docs/observability.md): the access log (JSON and
 * combined, reopen, a failing disk), byte-exact tunnels with their counters,
 * Prometheus metrics and the admin API, each against a real Switchyard in this
 * process in front of real origins on 127.0.0.1:0.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { LocalAdminBackend } from '../../src/admin/admin-backend.js';
import { AdminServer } from '../../src/admin/admin-server.js';
import type { Snapshot, TunnelSnapshot, UpstreamSnapshot } from '../../src/admin/snapshot.js';
import { loadConfigText } from '../../src/config/load.js';
import { withDefaults, type SwitchyardConfig, type TimeoutConfig } from '../../src/config/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { AccessLog, type AccessLogFormat } from '../../src/observe/access-log.js';
import type { RequestRecord, TunnelRecord } from '../../src/observe/records.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { closedPort, startOrigin, type Origin } from '../helpers/origins.js';
import { readUntil, sleep, waitFor } from '../helpers/raw.js';
import { clientFrame, handshakeRequest } from '../helpers/websocket-frames.js';

// parse-prometheus-text-format ships no types, and a `declare module` in a
// module file cannot describe an untyped package (TS2665): load it with require.
interface PromSample {
  value?: string;
  labels?: Record<string, string>;
}
interface PromFamily {
  name: string;
  type: string;
  metrics: PromSample[];
}
const parsePrometheusText = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => PromFamily[];

/**
 * parse-prometheus-text-format 1.1.1 keeps only unlabelled histograms (a
 * labelled one loses its labels, _count and _sum): histograms are parsed as
 * their untyped NAME_bucket, NAME_sum and NAME_count series instead.
 */
function parsePrometheusTextFormat(text: string): PromFamily[] {
  return parsePrometheusText(text.replace(/^# TYPE \S+ histogram\n/gm, ''));
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MiB = 1024 * 1024;
const STICKY_SECRET = 'sticky-secret-that-must-not-leak-0123456789';

// ---------------------------------------------------------------- the proxy

type LogLine = Partial<Omit<RequestRecord, 'type'>> & Partial<Omit<TunnelRecord, 'type'>> & { type: 'request' | 'tunnel' };

interface Harness {
  readonly proxy: Switchyard;
  readonly port: number;
  readonly url: string;
  readonly wsUrl: string;
  readonly logFile: string;
  readonly accessLog: AccessLog;
  close(): Promise<void>;
}

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-observability-'));
  tempDirs.push(dir);
  return dir;
}

function quickConfig(servers: readonly string[], timeouts: Partial<TimeoutConfig> = {}): SwitchyardConfig {
  return withDefaults({ listeners: [{ host: '127.0.0.1', port: 0 }], upstream: { servers }, timeouts }, () => randomBytes(16).toString('hex'));
}

function yamlConfig(yaml: string): SwitchyardConfig {
  return loadConfigText(yaml, 'observability.test.yaml', { env: {}, defaultSecret: 'observability-default-secret-0123' }).config;
}

/** Starts Switchyard with an AccessLog writing to `logFile` (default: a new temp file). */
async function startHarness(config: SwitchyardConfig, options: { format?: AccessLogFormat; logFile?: string } = {}): Promise<Harness> {
  const logFile = options.logFile ?? join(tempDir(), 'access.log');
  const accessLog = new AccessLog({ path: logFile, format: options.format ?? 'json' }, silentLogger());
  const proxy = await Switchyard.start(config, silentLogger(), { accessLog });
  const port = proxy.addresses[0]!.port;
  return {
    proxy, port, logFile, accessLog,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    close: async () => {
      await proxy.shutdown(0);
      closeAccessLog(accessLog);
    },
  };
}

/** The test leaves no file open (a failing log is dropped without a flush: see AccessLog.close). */
function closeAccessLog(accessLog: AccessLog): void {
  accessLog.close();
}

// ---------------------------------------------------------------- the access log file

function readLines(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((line) => line !== '');
}

function readRecords(file: string): LogLine[] {
  return readLines(file).map((line) => JSON.parse(line) as LogLine);
}

/** Polls the file until a JSON line matches. */
async function waitForRecord(file: string, match: (line: LogLine) => boolean, what: string, ms = 3_000): Promise<LogLine> {
  let found: LogLine | undefined;
  await waitFor(() => (found = readRecords(file).find(match)) !== undefined, ms, `${what}; the log has ${JSON.stringify(readLines(file))}`);
  return found!;
}

async function waitForLine(file: string, match: (line: string) => boolean, what: string, ms = 3_000): Promise<string> {
  let found: string | undefined;
  await waitFor(() => (found = readLines(file).find(match)) !== undefined, ms, `${what}; the log has ${JSON.stringify(readLines(file))}`);
  return found!;
}

// ---------------------------------------------------------------- clients

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** The client's local port (the proxy logs it as client_port). */
  clientPort: number;
}

/** One request on a fresh connection. */
function httpRequest(url: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; ms?: number } = {}): Promise<Reply> {
  const ms = options.ms ?? 5_000;
  return new Promise((resolve, reject) => {
    let clientPort = 0;
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, clientPort }));
      res.on('error', reject);
    });
    req.on('socket', (socket) => socket.once('connect', () => { clientPort = socket.localPort ?? 0; }));
    req.setTimeout(ms, () => req.destroy(new Error(`${options.method ?? 'GET'} ${url}: no answer within ${ms} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T> {
  const reply = await httpRequest(url, { headers });
  assert.equal(reply.status, 200, `GET ${url}: ${reply.body}`);
  return JSON.parse(reply.body) as T;
}

interface OpenWs {
  readonly ws: WebSocket;
  readonly messages: { data: Buffer; binary: boolean }[];
  /** The client's local port. */
  readonly clientPort: number;
  readonly closed: Promise<{ code: number; reason: string }>;
  isClosed(): boolean;
}

async function openWs(url: string, ms = 3_000): Promise<OpenWs> {
  const ws = new WebSocket(url, { handshakeTimeout: ms });
  const messages: { data: Buffer; binary: boolean }[] = [];
  let clientPort = 0;
  let closedFlag = false;
  ws.on('upgrade', (res: IncomingMessage) => { clientPort = res.socket.localPort ?? 0; });
  ws.on('message', (data, binary) => messages.push({ data: Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer), binary }));
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => {
    closedFlag = true;
    resolve({ code, reason: reason.toString() });
  }));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, messages, clientPort, closed, isClosed: () => closedFlag };
}

/** Closes a client WebSocket (if still open) and waits for its close event. */
async function closeWs(client: OpenWs, code = 1000, reason = ''): Promise<void> {
  if (!client.isClosed()) client.ws.close(code, reason);
  const timer = setTimeout(() => client.ws.terminate(), 2_000);
  await client.closed;
  clearTimeout(timer);
}

function acceptHead(req: IncomingMessage): string {
  const accept = createHash('sha1').update(`${req.headers['sec-websocket-key'] ?? ''}${GUID}`).digest('base64');
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
}

/** An unmasked (server) frame of any size. */
function serverFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const length = payload.length;
  const head = length < 126 ? Buffer.alloc(2) : length < 65536 ? Buffer.alloc(4) : Buffer.alloc(10);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) head[1] = length;
  else if (length < 65536) {
    head[1] = 126;
    head.writeUInt16BE(length, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(length), 2);
  }
  return Buffer.concat([head, payload]);
}

// ---------------------------------------------------------------- metrics

async function scrape(adminUrl: string, headers: Record<string, string> = {}): Promise<PromFamily[]> {
  const reply = await httpRequest(`${adminUrl}/metrics`, { headers });
  assert.equal(reply.status, 200, reply.body);
  assert.match(String(reply.headers['content-type']), /^text\/plain/);
  return parsePrometheusTextFormat(reply.body);
}

function family(families: readonly PromFamily[], name: string): PromFamily {
  const found = families.find((candidate) => candidate.name === name);
  assert.ok(found, `no metric ${name} in ${families.map((f) => f.name).join(', ')}`);
  return found;
}

/** The samples of a metric whose labels include `labels`. */
function samples(families: readonly PromFamily[], name: string, labels: Record<string, string> = {}): PromSample[] {
  return family(families, name).metrics.filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value));
}

/** Sum of the matching samples' values (0 when none match). */
function sum(families: readonly PromFamily[], name: string, labels: Record<string, string> = {}): number {
  return samples(families, name, labels).reduce((total, sample) => total + Number(sample.value), 0);
}

// ===================================================================== 1. access log

describe('access log, JSON', () => {
  let origin: Origin;
  let deadPort: number;
  let harness: Harness;
  let dead: Harness;
  before(async () => {
    origin = await startOrigin({ name: 'echo' });
    harness = await startHarness(quickConfig([origin.url], { tunnelIdleMs: 10_000 }));
    deadPort = await closedPort();
    dead = await startHarness(quickConfig([`http://127.0.0.1:${deadPort}`]));
  });
  after(async () => {
    await harness.close();
    await dead.close();
    await origin.close();
  });

  test('a proxied POST: every field of its request line', { timeout: 10_000 }, async () => {
    const body = randomBytes(1234).toString('hex').slice(0, 1234);
    const reply = await httpRequest(`${harness.url}/submit?x=1&y=two`, {
      method: 'POST', body, headers: { 'Content-Type': 'text/plain', 'User-Agent': 'observability-test/1', Referer: 'http://ref.example/' },
    });
    assert.equal(reply.status, 200);
    const seen = origin.requests.find((request) => request.url === '/submit?x=1&y=two');
    assert.ok(seen, 'the origin got the request');
    assert.equal(seen.body, body);
    const line = await waitForRecord(harness.logFile, (l) => l.type === 'request' && l.path === '/submit?x=1&y=two', 'the POST line');
    assert.equal(line.method, 'POST');
    assert.equal(line.status, 200);
    assert.equal(line.host, `127.0.0.1:${harness.port}`);
    assert.equal(line.protocol, 'h1');
    assert.equal(line.client, '127.0.0.1');
    assert.equal(typeof line.client_port, 'number');
    assert.equal(line.client_port, reply.clientPort);
    assert.equal(line.listener, `127.0.0.1:${harness.port}`);
    assert.equal(line.site, 'default');
    assert.equal(line.route, 'all');
    assert.equal(line.bytes_in, 1234);
    assert.equal(line.bytes_out, Buffer.byteLength(reply.body));
    assert.equal(line.upstream, origin.url);
    assert.equal(line.retries, 0);
    assert.equal(line.error, undefined);
    assert.equal(line.user_agent, 'observability-test/1');
    assert.equal(line.referer, 'http://ref.example/');
    assert.match(line.time ?? '', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    const { duration_ms: duration, upstream_ttfb_ms: ttfb, upstream_connect_ms: connect } = line;
    assert.ok(typeof duration === 'number' && typeof ttfb === 'number' && typeof connect === 'number', JSON.stringify(line));
    assert.ok(duration >= ttfb && ttfb >= connect && connect >= 0, `duration ${duration} >= ttfb ${ttfb} >= connect ${connect} >= 0`);
    assert.match(line.request_id ?? '', UUID);
    assert.equal(line.request_id, seen.headers['x-request-id'], 'the log and the origin see the same request id');
  });

  test('a client X-Request-Id is kept and passed on; a garbage or too-long one is replaced by a UUID', { timeout: 10_000 }, async () => {
    const cases = [
      { given: 'client-id.42_abc', kept: true },
      { given: 'has spaces in it', kept: false },
      { given: 'x'.repeat(201), kept: false },
      { given: 'y'.repeat(200), kept: true },
    ];
    for (const [index, { given, kept }] of cases.entries()) {
      const path = `/rid/${index}`;
      const reply = await httpRequest(`${harness.url}${path}`, { headers: { 'X-Request-Id': given } });
      assert.equal(reply.status, 200);
      const atOrigin = origin.requests.find((request) => request.url === path)?.headers['x-request-id'];
      const line = await waitForRecord(harness.logFile, (l) => l.path === path, `the line of ${path}`);
      if (kept) {
        assert.equal(atOrigin, given, `case ${index}: the origin gets the client's id`);
        assert.equal(line.request_id, given);
      } else {
        assert.match(String(atOrigin), UUID, `case ${index}: ${given.slice(0, 20)}... replaced`);
        assert.equal(line.request_id, atOrigin);
      }
    }
  });

  test('a closed backend port: 502 with error SY_UPSTREAM_CONNECT_REFUSED', { timeout: 10_000 }, async () => {
    const reply = await httpRequest(`${dead.url}/nobody-home`);
    assert.equal(reply.status, 502);
    const line = await waitForRecord(dead.logFile, (l) => l.path === '/nobody-home', 'the 502 line');
    assert.equal(line.type, 'request');
    assert.equal(line.status, 502);
    assert.equal(line.error, 'SY_UPSTREAM_CONNECT_REFUSED');
    assert.equal(line.upstream, `http://127.0.0.1:${deadPort}`);
    assert.equal(line.upstream_ttfb_ms, undefined, 'no backend response headers');
  });

  test('a refused single-server upstream: retries 0 in the log and the metric (no other server was tried)', { timeout: 10_000 }, async () => {
    const fresh = await startHarness(quickConfig([`http://127.0.0.1:${await closedPort()}`]));
    try {
      const reply = await httpRequest(`${fresh.url}/retry-count`);
      assert.equal(reply.status, 502);
      const line = await waitForRecord(fresh.logFile, (l) => l.path === '/retry-count', 'the 502 line');
      assert.equal(line.error, 'SY_UPSTREAM_CONNECT_REFUSED');
      const metrics = parsePrometheusTextFormat(await fresh.proxy.observer.metrics.registry.metrics());
      // docs/observability.md: retries = "other servers tried after failures";
      // switchyard_upstream_retries_total = "attempts on another server after a failure".
      assert.equal(line.retries, 0, 'retries in the access log');
      assert.equal(sum(metrics, 'switchyard_upstream_retries_total'), 0, 'switchyard_upstream_retries_total');
    } finally {
      await fresh.close();
    }
  });

  test('a normal tunnel: messages, close frames both ways, closed_by client', { timeout: 10_000 }, async () => {
    const client = await openWs(`${harness.wsUrl}/chat/normal`);
    for (const text of ['one', 'two', 'three']) client.ws.send(text);
    client.ws.send(Buffer.from([0, 1, 2, 3, 255]));
    await waitFor(() => client.messages.length === 4, 2_000, 'four echoes');
    assert.deepEqual(client.messages.map((m) => m.binary), [false, false, false, true]);
    await sleep(20); // the tunnel has a measurable age
    await closeWs(client, 1000, 'done');
    const line = await waitForRecord(harness.logFile, (l) => l.type === 'tunnel' && l.path === '/chat/normal', 'the tunnel line');
    assert.equal(line.status, 101);
    assert.equal(line.method, 'GET');
    assert.equal(line.client_port, client.clientPort);
    assert.equal(line.upstream, origin.url);
    assert.equal(line.messages_from_client, 4);
    assert.equal(line.messages_from_backend, 4);
    assert.deepEqual(line.client_close, { code: 1000, reason: 'done' });
    assert.equal(line.backend_close?.code, 1000);
    assert.equal(line.closed_by, 'client');
    assert.ok((line.bytes_from_client ?? 0) > 0 && (line.bytes_from_backend ?? 0) > 0, JSON.stringify(line));
    assert.ok((line.session_ms ?? 0) > 0, `session_ms ${line.session_ms}`);
    assert.equal(line.malformed, undefined);
    const handshake = origin.handshakes.find((request) => request.url === '/chat/normal');
    assert.equal(line.request_id, handshake?.headers['x-request-id']);
  });

  test('a backend that closes first (4001 "server bye"): closed_by backend', { timeout: 10_000 }, async () => {
    const byeOrigin = await startOrigin({
      onWebSocket: (ws) => ws.on('message', (data) => {
        if (String(data) === 'bye please') ws.close(4001, 'server bye');
        else ws.send(data);
      }),
    });
    const proxied = await startHarness(quickConfig([byeOrigin.url], { tunnelIdleMs: 10_000 }));
    try {
      const client = await openWs(`${proxied.wsUrl}/bye`);
      client.ws.send('bye please');
      const closed = await client.closed;
      assert.deepEqual(closed, { code: 4001, reason: 'server bye' });
      const line = await waitForRecord(proxied.logFile, (l) => l.type === 'tunnel', 'the tunnel line');
      assert.equal(line.closed_by, 'backend');
      assert.deepEqual(line.backend_close, { code: 4001, reason: 'server bye' });
      assert.equal(line.client_close?.code, 4001, 'ws echoes the close code');
      assert.equal(line.messages_from_client, 1);
      assert.equal(line.messages_from_backend, 0);
    } finally {
      await proxied.close();
      await byeOrigin.close();
    }
  });

  test('an idle tunnel (tunnel_idle 300ms): closed_by idle_timeout', { timeout: 10_000 }, async () => {
    const proxied = await startHarness(quickConfig([origin.url], { tunnelIdleMs: 300 }));
    try {
      const client = await openWs(`${proxied.wsUrl}/idle`);
      const opened = Date.now();
      await client.closed;
      const after = Date.now() - opened;
      assert.ok(after >= 250 && after < 2_000, `closed after ${after} ms`);
      const line = await waitForRecord(proxied.logFile, (l) => l.type === 'tunnel', 'the tunnel line');
      assert.equal(line.closed_by, 'idle_timeout');
      // No close frame either way: no code (the line carries client_close: {}).
      assert.equal(line.client_close?.code, undefined);
      assert.equal(line.backend_close?.code, undefined);
      assert.ok((line.session_ms ?? 0) >= 250, `session_ms ${line.session_ms}`);
    } finally {
      await proxied.close();
    }
  });

  /** A tunnel whose backend resets its TCP connection once the 101 is through: the client's close code and the log line. */
  async function backendResetTunnel(): Promise<{ closeCode: number; line: LogLine }> {
    const sockets: Socket[] = [];
    const resetOrigin = await startOrigin({
      onUpgrade: (req, socket) => {
        sockets.push(socket);
        socket.write(acceptHead(req));
      },
    });
    const proxied = await startHarness(quickConfig([resetOrigin.url], { tunnelIdleMs: 10_000 }));
    try {
      const client = await openWs(`${proxied.wsUrl}/reset`);
      await waitFor(() => proxied.proxy.registry.tunnels.size === 1, 1_000, 'the tunnel');
      sockets[0]!.resetAndDestroy();
      const closed = await client.closed;
      const line = await waitForRecord(proxied.logFile, (l) => l.type === 'tunnel', 'the tunnel line');
      return { closeCode: closed.code, line };
    } finally {
      for (const socket of sockets) socket.destroy();
      await proxied.close();
      await resetOrigin.close();
    }
  }

  test('a backend reset after the upgrade: closed_by error', { timeout: 10_000 }, async () => {
    const { closeCode, line } = await backendResetTunnel();
    assert.equal(closeCode, 1006, 'the client sees an abnormal close');
    assert.equal(line.closed_by, 'error', `a backend reset is logged as closed_by ${line.closed_by}`);
    assert.equal(line.backend_close?.code, undefined);
    assert.equal(line.client_close?.code, undefined);
  });

  test('a backend reset after the upgrade: the tunnel line carries error SY_TUNNEL_ERROR', { timeout: 10_000 }, async () => {
    const { line } = await backendResetTunnel();
    // docs/errors.md: SY_TUNNEL_ERROR shows in the "access log `error`" for
    // "a tunnel ended by a socket error on either side (reset, broken pipe)".
    assert.equal(line.error, 'SY_TUNNEL_ERROR', `the line: ${JSON.stringify(line)}`);
  });

  test('reopen() after the file was renamed: new lines go to a new file under the old name', { timeout: 10_000 }, async () => {
    const dir = tempDir();
    const file = join(dir, 'rotate.log');
    const proxied = await startHarness(quickConfig([origin.url]), { logFile: file });
    try {
      assert.equal((await httpRequest(`${proxied.url}/before-rotate`)).status, 200);
      await waitForRecord(file, (l) => l.path === '/before-rotate', 'the first line');
      renameSync(file, `${file}.1`);
      proxied.accessLog.reopen();
      assert.equal((await httpRequest(`${proxied.url}/after-rotate`)).status, 200);
      await waitForRecord(file, (l) => l.path === '/after-rotate', 'the line after reopen in a new file');
      await sleep(100);
      assert.deepEqual(readRecords(`${file}.1`).map((l) => l.path), ['/before-rotate']);
      assert.deepEqual(readRecords(file).map((l) => l.path), ['/after-rotate']);
    } finally {
      await proxied.close();
    }
  });

  test('a log on /dev/full: requests still succeed, dropped lines are counted', { timeout: 10_000 }, async () => {
    const proxied = await startHarness(quickConfig([origin.url]), { logFile: '/dev/full' });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await httpRequest(`${proxied.url}/full/${i}`)).status, 200);
      await waitFor(() => proxied.accessLog.dropped > 0, 2_000, 'the first dropped line');
      const droppedBefore = proxied.accessLog.dropped;
      for (let i = 0; i < 5; i++) assert.equal((await httpRequest(`${proxied.url}/full/more/${i}`)).status, 200);
      await waitFor(() => proxied.accessLog.dropped >= droppedBefore + 5, 2_000, `dropped to grow from ${droppedBefore} (is ${proxied.accessLog.dropped})`);
      // A tunnel still works, and its line is dropped too.
      const client = await openWs(`${proxied.wsUrl}/full/ws`);
      client.ws.send('still serving');
      await waitFor(() => client.messages.length === 1, 2_000, 'the echo');
      await closeWs(client, 1000);
      await waitFor(() => proxied.accessLog.dropped >= droppedBefore + 6, 2_000, 'the tunnel line dropped');
    } finally {
      await proxied.close();
    }
  });
});

describe('access log, combined format', () => {
  test('a request line in nginx combined form, a tunnel line with closed_by=', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const proxied = await startHarness(quickConfig([origin.url], { tunnelIdleMs: 10_000 }), { format: 'combined' });
    try {
      const reply = await httpRequest(`${proxied.url}/x?a=1`);
      assert.equal(reply.status, 200);
      const line = await waitForLine(proxied.logFile, (l) => l.includes('/x?a=1'), 'the request line');
      assert.match(line, /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET \/x\?a=1 HTTP\/1\.1" 200 \d+ "-" ".*"/);
      assert.ok(line.includes(` 200 ${Buffer.byteLength(reply.body)} `), `bytes sent in ${line}`);
      assert.match(line, / rid=[0-9a-f-]{36} rt=\d+\.\d{3} upstream=http:\/\/127\.0\.0\.1:\d+/);
      const client = await openWs(`${proxied.wsUrl}/combined-ws`);
      client.ws.send('hi');
      await waitFor(() => client.messages.length === 1, 2_000, 'the echo');
      await closeWs(client, 1000, 'bye');
      const tunnel = await waitForLine(proxied.logFile, (l) => l.includes('/combined-ws'), 'the tunnel line');
      assert.match(tunnel, /"GET \/combined-ws HTTP\/1\.1" 101 \d+ /);
      assert.match(tunnel, / msgs_in=1 msgs_out=1 client_close=1000 backend_close=1000 closed_by=client/);
    } finally {
      await proxied.close();
      await origin.close();
    }
  });
});

// ===================================================================== 2. byte-for-byte

/** WebSocket messages of random sizes (some fragmented) totalling `payloadBytes`, as one byte stream. */
function randomFrames(payloadBytes: number, masked: boolean): { stream: Buffer; messages: number } {
  const frames: Buffer[] = [];
  let left = payloadBytes;
  let messages = 0;
  const sizes = [() => randomInt(0, 126), () => randomInt(126, 65536), () => randomInt(65536, 300_000)];
  while (left > 0) {
    const size = Math.min(left, sizes[randomInt(0, 3)]!());
    left -= size;
    const payload = randomBytes(size);
    const pieces = size >= 3 ? randomInt(1, 4) : 1;
    const cuts = [0, ...Array.from({ length: pieces - 1 }, () => randomInt(0, size + 1)).sort((a, b) => a - b), size];
    for (let i = 0; i < pieces; i++) {
      const part = payload.subarray(cuts[i], cuts[i + 1]);
      const opcode = i === 0 ? 0x2 : 0x0;
      const fin = i === pieces - 1;
      frames.push(masked ? clientFrame(opcode, part, fin) : serverFrame(opcode, part, fin));
    }
    messages++;
  }
  return { stream: Buffer.concat(frames), messages };
}

/** Writes a buffer in chunks of random sizes (frame headers split across writes). */
function writeInRandomChunks(socket: Socket, data: Buffer): void {
  for (let at = 0; at < data.length;) {
    const size = Math.min(data.length - at, randomInt(1, 96 * 1024));
    socket.write(data.subarray(at, at + size));
    at += size;
  }
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('a tunnel passes every byte unchanged and counts the messages', () => {
  test('2 MiB of random frames each way: sha256 equal at both ends, messages counted', { timeout: 30_000 }, async () => {
    const fromClient = randomFrames(2 * MiB, true);
    const fromOrigin = randomFrames(2 * MiB, false);
    const originReceived: Buffer[] = [];
    let originSocket: Socket | undefined;
    const origin = await startOrigin({
      onUpgrade: (req, socket, head) => {
        originSocket = socket;
        if (head.length > 0) originReceived.push(head);
        socket.on('data', (chunk: Buffer) => originReceived.push(chunk));
        socket.on('end', () => socket.end());
        socket.write(acceptHead(req));
        writeInRandomChunks(socket, fromOrigin.stream);
      },
    });
    const proxied = await startHarness(quickConfig([origin.url], { tunnelIdleMs: 20_000 }));
    const admin = await AdminServer.start({ host: '127.0.0.1', port: 0 }, new LocalAdminBackend(proxied.proxy, undefined), silentLogger());
    const client = net.connect(proxied.port, '127.0.0.1');
    client.on('error', () => undefined);
    try {
      await new Promise<void>((resolve) => client.once('connect', resolve));
      const clientReceived: Buffer[] = [];
      let receivedBytes = 0;
      client.write(handshakeRequest('/bytes', `127.0.0.1:${proxied.port}`));
      const headText = await readUntil(client, '\r\n\r\n', 3_000);
      assert.match(headText, /^HTTP\/1\.1 101 /);
      // readUntil read in latin1: whatever followed the head already is tunnel data.
      const extra = Buffer.from(headText.slice(headText.indexOf('\r\n\r\n') + 4), 'latin1');
      clientReceived.push(extra);
      receivedBytes += extra.length;
      client.on('data', (chunk: Buffer) => {
        clientReceived.push(chunk);
        receivedBytes += chunk.length;
      });
      writeInRandomChunks(client, fromClient.stream);
      const originBytes = (): number => originReceived.reduce((total, chunk) => total + chunk.length, 0);
      await waitFor(() => originBytes() >= fromClient.stream.length && receivedBytes >= fromOrigin.stream.length, 20_000,
        `${fromClient.stream.length} bytes at the origin and ${fromOrigin.stream.length} at the client`);
      const received = Buffer.concat(clientReceived);
      const atOrigin = Buffer.concat(originReceived);
      assert.equal(atOrigin.length, fromClient.stream.length);
      assert.equal(sha256(atOrigin), sha256(fromClient.stream), 'client -> origin bytes identical');
      assert.equal(received.length, fromOrigin.stream.length);
      assert.equal(sha256(received), sha256(fromOrigin.stream), 'origin -> client bytes identical');

      const tunnels = await getJson<TunnelSnapshot[]>(`http://127.0.0.1:${admin.port}/api/tunnels`);
      assert.equal(tunnels.length, 1);
      const live = tunnels[0]!;
      assert.equal(live.messagesFromClient, fromClient.messages);
      assert.equal(live.messagesFromBackend, fromOrigin.messages);
      assert.equal(live.bytesFromClient, fromClient.stream.length);
      assert.equal(live.bytesFromBackend, fromOrigin.stream.length);

      client.end();
      const line = await waitForRecord(proxied.logFile, (l) => l.type === 'tunnel' && l.path === '/bytes', 'the tunnel line', 5_000);
      assert.equal(line.messages_from_client, fromClient.messages);
      assert.equal(line.messages_from_backend, fromOrigin.messages);
      assert.equal(line.bytes_from_client, fromClient.stream.length);
      assert.equal(line.bytes_from_backend, fromOrigin.stream.length);
      assert.equal(line.closed_by, 'client');
      assert.equal(line.malformed, undefined);
    } finally {
      client.destroy();
      originSocket?.destroy();
      await admin.close();
      await proxied.close();
      await origin.close();
    }
  });
});

// ===================================================================== 3. metrics

describe('Prometheus metrics', () => {
  let origin: Origin;
  let deadPort: number;
  let proxy: Switchyard;
  let admin: AdminServer;
  let adminUrl: string;
  let proxyUrl: string;
  before(async () => {
    origin = await startOrigin();
    deadPort = await closedPort();
    proxy = await Switchyard.start(yamlConfig(`
listeners:
  - address: 127.0.0.1:0
sites:
  - name: main
    routes:
      - name: ws
        match: { prefix: /ws, upgrade: websocket }
        to: app
      - name: api
        match: { prefix: /api }
        to: app
      - name: dead
        match: { prefix: /dead }
        to: http://127.0.0.1:${deadPort}
upstreams:
  app: { servers: [${origin.url}] }
`), silentLogger());
    admin = await AdminServer.start({ host: '127.0.0.1', port: 0 }, new LocalAdminBackend(proxy, undefined), silentLogger());
    adminUrl = `http://127.0.0.1:${admin.port}`;
    proxyUrl = `http://127.0.0.1:${proxy.addresses[0]!.port}`;
  });
  after(async () => {
    await admin.close();
    await proxy.shutdown(0);
    await origin.close();
  });

  test('requests by route and status class, tunnels, messages, close codes, handshakes, server state, rejections', { timeout: 15_000 }, async () => {
    for (let i = 0; i < 3; i++) assert.equal((await httpRequest(`${proxyUrl}/api/item/${i}`)).status, 200);
    assert.equal((await httpRequest(`${proxyUrl}/nothing-here`)).status, 404);
    assert.equal((await httpRequest(`${proxyUrl}/dead/end`)).status, 502);

    const client = await openWs(`ws${proxyUrl.slice(4)}/ws/chat`);
    client.ws.send('m1');
    client.ws.send('m2');
    await waitFor(() => client.messages.length === 2, 2_000, 'two echoes');
    const open = await scrape(adminUrl);
    assert.equal(sum(open, 'switchyard_tunnels_active'), 1);
    assert.deepEqual(samples(open, 'switchyard_tunnels_active')[0]?.labels, { site: 'main', route: 'ws', upstream: 'app', server: origin.url });
    assert.equal(sum(open, 'switchyard_websocket_messages_total', { route: 'ws', direction: 'in' }), 2, 'open tunnels count');
    assert.equal(sum(open, 'switchyard_websocket_messages_total', { route: 'ws', direction: 'out' }), 2);
    assert.equal(sum(open, 'switchyard_upstream_server_active', { upstream: 'app', server: origin.url }), 1);

    await closeWs(client, 1000, 'done');
    await waitFor(() => proxy.registry.tunnels.size === 0, 2_000, 'the tunnel to end');
    const m = await scrape(adminUrl);
    const types = Object.fromEntries(parsePrometheusText((await httpRequest(`${adminUrl}/metrics`)).body).map((f) => [f.name, f.type]));
    assert.equal(types.switchyard_requests_total, 'COUNTER');
    assert.equal(types.switchyard_tunnels_active, 'GAUGE');
    assert.equal(types.switchyard_upstream_server_state, 'GAUGE');
    assert.equal(types.switchyard_websocket_handshake_seconds, 'HISTOGRAM');
    assert.equal(sum(m, 'switchyard_tunnels_active'), 0);
    assert.equal(sum(m, 'switchyard_requests_total', { site: 'main', route: 'api', status_class: '2xx' }), 3);
    assert.equal(sum(m, 'switchyard_requests_total', { site: 'main', route: 'dead', status_class: '5xx' }), 1);
    assert.equal(sum(m, 'switchyard_requests_total', { site: 'main', route: 'ws', status_class: '1xx' }), 1, 'one tunnel opened, counted once');
    assert.equal(sum(m, 'switchyard_tunnels_total', { route: 'ws' }), 1);
    assert.equal(sum(m, 'switchyard_websocket_messages_total', { route: 'ws', direction: 'in' }), 2);
    assert.equal(sum(m, 'switchyard_websocket_messages_total', { route: 'ws', direction: 'out' }), 2);
    assert.equal(sum(m, 'switchyard_websocket_close_codes_total', { route: 'ws', side: 'client', code: '1000' }), 1);
    assert.equal(sum(m, 'switchyard_websocket_close_codes_total', { route: 'ws', side: 'backend', code: '1000' }), 1);
    assert.equal(sum(m, 'switchyard_tunnel_ends_total', { route: 'ws', closed_by: 'client' }), 1);
    assert.equal(sum(m, 'switchyard_websocket_handshake_seconds_count', { route: 'ws' }), 1);
    assert.equal(sum(m, 'switchyard_websocket_handshake_seconds_bucket', { route: 'ws', le: '+Inf' }), 1);
    assert.ok(sum(m, 'switchyard_websocket_handshake_seconds_sum', { route: 'ws' }) > 0);
    assert.equal(sum(m, 'switchyard_websocket_session_seconds_count', { route: 'ws' }), 1);
    assert.equal(sum(m, 'switchyard_upstream_server_state', { upstream: 'app', server: origin.url, state: 'up' }), 1);
    assert.equal(samples(m, 'switchyard_upstream_server_state', { upstream: 'app' }).length, 1, 'one state per server');
    assert.equal(sum(m, 'switchyard_rejections_total', { reason: 'SY_UPSTREAM_CONNECT_REFUSED' }), 1);
    assert.equal(sum(m, 'switchyard_rejections_total', { reason: 'SY_NO_ROUTE' }), 1);
    assert.ok(sum(m, 'switchyard_bytes_total', { route: 'ws', direction: 'in' }) > 0);
    assert.equal(sum(m, 'switchyard_access_log_dropped_total'), 0);
    assert.equal(sum(m, 'switchyard_requests_in_flight'), 0);
  });

  test('a 404 the proxy answered itself (SY_NO_ROUTE) counts in switchyard_requests_total', { timeout: 10_000 }, async () => {
    const before = await scrape(adminUrl);
    assert.equal((await httpRequest(`${proxyUrl}/no-route-here`)).status, 404);
    const after = await scrape(adminUrl);
    assert.equal(sum(after, 'switchyard_rejections_total', { reason: 'SY_NO_ROUTE' }) - sum(before, 'switchyard_rejections_total', { reason: 'SY_NO_ROUTE' }), 1);
    // docs/observability.md: requests no route took count under site and route "-".
    const fourxx = (families: PromFamily[]): number => sum(families, 'switchyard_requests_total', { site: '-', route: '-', status_class: '4xx' });
    assert.equal(fourxx(after) - fourxx(before), 1, `4xx samples: ${JSON.stringify(samples(after, 'switchyard_requests_total'))}`);
  });
});

// ===================================================================== 4. admin API

describe('admin API', () => {
  let originA: Origin;
  let originB: Origin;
  let harness: Harness;
  let admin: AdminServer;
  let adminUrl: string;
  before(async () => {
    originA = await startOrigin({ name: 'A' });
    originB = await startOrigin({ name: 'B' });
    harness = await startHarness(yamlConfig(`
listeners:
  - address: 127.0.0.1:0
sites:
  - name: main
    routes:
      - name: chat
        to: chat
upstreams:
  chat:
    servers: [${originA.url}, ${originB.url}]
    policy: round_robin
    sticky: { mode: cookie, secret: ${STICKY_SECRET} }
timeouts: { tunnel_idle: 30s }
`));
    admin = await AdminServer.start({ host: '127.0.0.1', port: 0 }, new LocalAdminBackend(harness.proxy, undefined), silentLogger());
    adminUrl = `http://127.0.0.1:${admin.port}`;
  });
  after(async () => {
    await admin.close();
    await harness.close();
    await originA.close();
    await originB.close();
  });

  test('GET /api/config, /api/stats, /api/upstreams, /api/tunnels', { timeout: 10_000 }, async () => {
    const config = await httpRequest(`${adminUrl}/api/config`);
    assert.equal(config.status, 200);
    assert.match(String(config.headers['content-type']), /^application\/json/);
    assert.ok(!config.body.includes(STICKY_SECRET), 'the sticky secret is left out');
    const parsed = JSON.parse(config.body) as { upstreams: Record<string, { servers: { url: string }[]; sticky: string }> };
    assert.deepEqual(parsed.upstreams.chat?.servers.map((s) => s.url), [originA.url, originB.url]);

    assert.equal((await httpRequest(`${harness.url}/page`)).status, 200);
    const client = await openWs(`${harness.wsUrl}/room`);
    try {
      client.ws.send('hello');
      await waitFor(() => client.messages.length === 1, 2_000, 'the echo');

      const stats = await getJson<Snapshot>(`${adminUrl}/api/stats`);
      assert.equal(stats.processes, 1);
      const route = stats.routes.find((r) => r.route === 'chat');
      assert.ok(route, JSON.stringify(stats.routes));
      assert.equal(route.site, 'main');
      assert.equal(route.requests, 2, 'one request and one tunnel');
      assert.equal(route.tunnelsOpen, 1);
      assert.equal(route.tunnelsTotal, 1);
      assert.equal(route.messagesIn, 1);
      assert.equal(route.messagesOut, 1);
      assert.equal(stats.upstreams.length, 1);

      const upstreams = await getJson<UpstreamSnapshot[]>(`${adminUrl}/api/upstreams`);
      assert.deepEqual(upstreams.map((u) => u.name), ['chat']);
      assert.deepEqual(upstreams[0]!.servers.map((s) => [s.url, s.state, s.weight]), [[originA.url, 'up', 1], [originB.url, 'up', 1]]);
      assert.equal(upstreams[0]!.servers.reduce((total, s) => total + s.tunnels, 0), 1);

      const tunnels = await getJson<TunnelSnapshot[]>(`${adminUrl}/api/tunnels`);
      assert.equal(tunnels.length, 1);
      const tunnel = tunnels[0]!;
      assert.match(tunnel.id, new RegExp(`^${process.pid}:\\d+$`));
      assert.equal(tunnel.client, `127.0.0.1:${client.clientPort}`);
      assert.equal(tunnel.site, 'main');
      assert.equal(tunnel.route, 'chat');
      assert.equal(tunnel.upstream, 'chat');
      assert.ok([originA.url, originB.url].includes(tunnel.server), tunnel.server);
      assert.equal(tunnel.protocol, 'h1');
      assert.ok(tunnel.ageSeconds >= 0);
      assert.equal(tunnel.messagesFromClient, 1);
      assert.equal(tunnel.messagesFromBackend, 1);
      assert.ok(tunnel.bytesFromClient > 0 && tunnel.bytesFromBackend > 0);
    } finally {
      await closeWs(client);
    }
  });

  test('drain sends 10 new tunnels to the other server and closes the old one with 1012 (closed_by drain); undrain takes it back', { timeout: 20_000 }, async () => {
    const opened: OpenWs[] = [];
    const handshakes = (): [number, number] => [originA.handshakes.length, originB.handshakes.length];
    try {
      const [a0] = handshakes();
      const old = await openWs(`${harness.wsUrl}/old`);
      opened.push(old);
      const drained = originA.handshakes.length > a0 ? originA : originB;
      const other = drained === originA ? originB : originA;

      const drain = await httpRequest(`${adminUrl}/api/upstreams/chat/drain`, { method: 'POST', body: JSON.stringify({ server: drained.url }) });
      assert.equal(drain.status, 200, drain.body);
      assert.deepEqual(JSON.parse(drain.body), { upstream: 'chat', server: drained.url, draining: true });
      const upstreams = await getJson<UpstreamSnapshot[]>(`${adminUrl}/api/upstreams`);
      assert.equal(upstreams[0]!.servers.find((s) => s.url === drained.url)?.state, 'draining');

      const drainedBefore = drained.handshakes.length;
      const otherBefore = other.handshakes.length;
      for (let i = 0; i < 10; i++) opened.push(await openWs(`${harness.wsUrl}/while-drained/${i}`));
      assert.equal(drained.handshakes.length - drainedBefore, 0, 'no new tunnel on the drained server');
      assert.equal(other.handshakes.length - otherBefore, 10);

      // Its open tunnel got a 1012 Service Restart close frame, and the log line says why.
      assert.equal((await old.closed).code, 1012);
      const line = await waitForRecord(harness.logFile, (l) => l.type === 'tunnel' && l.path === '/old', 'the drained tunnel\'s line');
      assert.equal(line.closed_by, 'drain');
      assert.equal(line.client_close?.code, 1012, 'the client answered the close frame with its own 1012');
      assert.equal(line.backend_close?.code, 1012, 'the backend answered too');

      const undrain = await httpRequest(`${adminUrl}/api/upstreams/chat/undrain`, { method: 'POST', body: JSON.stringify({ server: drained.url }) });
      assert.equal(undrain.status, 200, undrain.body);
      assert.equal((JSON.parse(undrain.body) as { draining: boolean }).draining, false);
      const [a1, b1] = handshakes();
      for (let i = 0; i < 6; i++) opened.push(await openWs(`${harness.wsUrl}/after-undrain/${i}`));
      const [a2, b2] = handshakes();
      assert.ok(a2 - a1 > 0 && b2 - b1 > 0, `after undrain A got ${a2 - a1}, B got ${b2 - b1} of 6`);
    } finally {
      await Promise.all(opened.map((client) => closeWs(client)));
    }
  });

  test('DELETE /api/tunnels/ID closes that tunnel; its log line says closed_by admin', { timeout: 10_000 }, async () => {
    const victim = await openWs(`${harness.wsUrl}/victim`);
    const bystander = await openWs(`${harness.wsUrl}/bystander`);
    try {
      const tunnels = await getJson<TunnelSnapshot[]>(`${adminUrl}/api/tunnels`);
      const target = tunnels.find((t) => t.client === `127.0.0.1:${victim.clientPort}`);
      assert.ok(target, JSON.stringify(tunnels));
      const reply = await httpRequest(`${adminUrl}/api/tunnels/${encodeURIComponent(target.id)}`, { method: 'DELETE' });
      assert.equal(reply.status, 200, reply.body);
      assert.deepEqual(JSON.parse(reply.body), { closed: target.id });
      const closed = await victim.closed;
      assert.equal(closed.code, 1006, 'the connection was cut without a close frame');
      const line = await waitForRecord(harness.logFile, (l) => l.type === 'tunnel' && l.path === '/victim', 'the victim\'s line');
      assert.equal(line.closed_by, 'admin');
      assert.equal(bystander.isClosed(), false, 'the other tunnel stays open');
      const again = await httpRequest(`${adminUrl}/api/tunnels/${encodeURIComponent(target.id)}`, { method: 'DELETE' });
      assert.equal(again.status, 404);
    } finally {
      await closeWs(victim);
      await closeWs(bystander);
    }
  });

  test('404 for an unknown upstream, server, tunnel or endpoint; 400 without a server; 422 reload without a file', { timeout: 10_000 }, async () => {
    const notFound = async (method: string, path: string, body?: string): Promise<void> => {
      const reply = await httpRequest(`${adminUrl}${path}`, { method, ...(body !== undefined ? { body } : {}) });
      assert.equal(reply.status, 404, `${method} ${path}: ${reply.body}`);
      assert.equal((JSON.parse(reply.body) as { error: string }).error, 'SY_ADMIN_NOT_FOUND');
    };
    await notFound('POST', '/api/upstreams/nope/drain', JSON.stringify({ server: originA.url }));
    await notFound('POST', '/api/upstreams/chat/drain', JSON.stringify({ server: 'http://127.0.0.1:1' }));
    await notFound('POST', '/api/upstreams/chat/undrain', JSON.stringify({ server: 'http://127.0.0.1:1' }));
    await notFound('DELETE', `/api/tunnels/${process.pid}:999999`);
    await notFound('DELETE', '/api/tunnels/not-an-id');
    await notFound('GET', '/api/nothing');
    await notFound('GET', '/api/tunnels/1');
    const noServer = await httpRequest(`${adminUrl}/api/upstreams/chat/drain`, { method: 'POST', body: '{}' });
    assert.equal(noServer.status, 400);
    const reload = await httpRequest(`${adminUrl}/api/reload`, { method: 'POST' });
    assert.equal(reload.status, 422);
    const outcome = JSON.parse(reload.body) as { ok: boolean; errors: string[] };
    assert.equal(outcome.ok, false);
    assert.ok(outcome.errors.length > 0);
  });

  test('/api/events sends a Snapshot as an SSE data: line within 1.5 s', { timeout: 10_000 }, async () => {
    const snapshot = await firstEvent(`${adminUrl}/api/events`);
    assert.equal(snapshot.processes, 1);
    assert.ok(Array.isArray(snapshot.routes) && Array.isArray(snapshot.upstreams) && Array.isArray(snapshot.recentErrors));
    assert.deepEqual(snapshot.upstreams.map((u) => u.name), ['chat']);
  });

  test('with a token: 401 and WWW-Authenticate without it or with a wrong one; 200 with it; ?token= on /api/events only', { timeout: 10_000 }, async () => {
    const token = 'a-token-of-16-chars-min';
    const guarded = await AdminServer.start({ host: '127.0.0.1', port: 0, token }, new LocalAdminBackend(harness.proxy, undefined), silentLogger());
    const base = `http://127.0.0.1:${guarded.port}`;
    try {
      const refused: Record<string, string>[] = [{}, { Authorization: 'Bearer wrong-token-of-16-chars' }, { Authorization: `Basic ${token}` }, { Authorization: `Bearer ${token}x` }];
      for (const headers of refused) {
        const reply = await httpRequest(`${base}/api/stats`, { headers });
        assert.equal(reply.status, 401, JSON.stringify(headers));
        assert.match(String(reply.headers['www-authenticate']), /^Bearer /);
        assert.equal((JSON.parse(reply.body) as { error: string }).error, 'SY_ADMIN_UNAUTHORIZED');
      }
      const ok = await httpRequest(`${base}/api/stats`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 200);
      assert.equal((await httpRequest(`${base}/metrics`, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
      assert.equal((await httpRequest(`${base}/metrics?token=${token}`)).status, 401, 'the query token is for the live feed only');
      assert.equal((await httpRequest(`${base}/api/events?token=wrong-token-of-16-chars`, { ms: 1_500 })).status, 401);
      const snapshot = await firstEvent(`${base}/api/events?token=${token}`);
      assert.equal(snapshot.processes, 1);
    } finally {
      await guarded.close();
    }
  });
});

/** Opens /api/events and resolves with the first data: line's Snapshot (within 1.5 s). */
function firstEvent(url: string, ms = 1_500): Promise<Snapshot> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      if (res.statusCode !== 200) {
        req.destroy();
        reject(new Error(`GET ${url}: ${res.statusCode}`));
        return;
      }
      if (!String(res.headers['content-type']).startsWith('text/event-stream')) reject(new Error(`content-type ${res.headers['content-type']}`));
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        const match = /^data: (.*)\n\n/m.exec(text);
        if (!match) return;
        clearTimeout(timer);
        req.destroy();
        try {
          resolve(JSON.parse(match[1]!) as Snapshot);
        } catch (err) {
          reject(err as Error);
        }
      });
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no data: line from ${url} within ${ms} ms`));
    }, ms);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe('access log flushed before its file is open', () => {
  test('a flush right after start (shutdown, a test reading the log) does not stop the log', { timeout: 5_000 }, async () => {
    const file = join(tempDir(), 'not-yet', 'access.log');
    const accessLog = new AccessLog({ path: file, format: 'json' }, silentLogger());
    try {
      // sonic-boom opens the file asynchronously: this flush comes before the open.
      accessLog.flush();
      accessLog.write({ type: 'request', path: '/after-early-flush' } as unknown as RequestRecord);
      await waitForRecord(file, (line) => line.path === '/after-early-flush', 'the line written after the early flush');
      assert.equal(accessLog.dropped, 0);
    } finally {
      closeAccessLog(accessLog);
    }
  });
});
