/**
 * A malformed WebSocket stream is logged and still passed through unchanged
 * (docs/observability.md, `malformed`; src/proxy/frames/frame-tracker.ts).
 *
 * Each test runs a real Switchyard in this process, with an access log file
 * and a logger whose lines the test reads, in front of a backend that answers
 * the upgrade by hand (a 101 with the right Sec-WebSocket-Accept) and then
 * records every byte it receives on the socket. The client is a raw TCP
 * socket. Both tunnel paths are covered: the plain byte pipe (a route without
 * WebSocket policies) and the frame gate (a route with a max_age policy; a
 * route with message size or rate limits cuts a malformed stream instead:
 * test/integration/operations-edge-cases.test.ts).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { AccessLog } from '../../src/observe/access-log.js';
import type { TunnelRecord } from '../../src/observe/records.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { sleep, waitFor } from '../helpers/raw.js';
import { clientFrame, handshakeRequest } from '../helpers/websocket-frames.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

// ---------------------------------------------------------------- frames

/** A server frame (unmasked unless `mask`), with a free first byte (FIN, RSV, opcode). */
function serverFrame(firstByte: number, payload: Buffer | string, mask = false): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  assert.ok(data.length < 126, 'short frames only');
  const key = mask ? randomBytes(4) : Buffer.alloc(0);
  const body = Buffer.from(data);
  if (mask) for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ key[i % 4]!;
  return Buffer.concat([Buffer.from([firstByte, (mask ? 0x80 : 0) | data.length]), key, body]);
}

/** A masked client frame with a free first byte (FIN, RSV bits, any opcode). */
function maskedFrame(firstByte: number, payload: Buffer | string): Buffer {
  const frame = clientFrame(0x1, payload);
  frame[0] = firstByte;
  return frame;
}

/** An unmasked client frame: client frames must be masked (RFC 6455 §5.3). */
function unmaskedClientFrame(payload: string): Buffer {
  return serverFrame(0x81, payload, false);
}

/** A binary frame header whose 64-bit length has its most significant bit set (RFC 6455 §5.2). */
function highBitLengthHeader(masked: boolean): Buffer {
  const header = Buffer.alloc(10 + (masked ? 4 : 0));
  header[0] = 0x82;
  header[1] = (masked ? 0x80 : 0) | 127;
  header.writeBigUInt64BE(0x8000_0000_0000_0005n, 2);
  if (masked) randomBytes(4).copy(header, 10);
  return header;
}

// ---------------------------------------------------------------- backend

interface BackendConn {
  readonly socket: Socket;
  readonly requestId: string;
  readonly chunks: Buffer[];
  readonly closed: Promise<void>;
  bytes(): Buffer;
}

interface Backend {
  readonly url: string;
  /** Raw tunnels the backend accepted (paths other than /echo). */
  readonly conns: BackendConn[];
  readonly httpRequests: string[];
  close(): Promise<void>;
}

/**
 * Answers /echo upgrades with a real WebSocket echo (ws), plain requests with
 * 200 "plain ok", and any other upgrade by hand: a 101, then it records every
 * byte that arrives (the upgrade's head included) and ends when the proxy does.
 */
async function startBackend(): Promise<Backend> {
  const conns: BackendConn[] = [];
  const httpRequests: string[] = [];
  const wss = new WebSocketServer({ noServer: true });
  const server = http.createServer((req, res) => {
    httpRequests.push(req.url ?? '');
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('plain ok');
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => undefined);
    if (req.url?.startsWith('/echo')) {
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => ws.terminate());
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
      return;
    }
    const chunks: Buffer[] = [];
    if (head.length > 0) chunks.push(Buffer.from(head));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('end', () => socket.end());
    const key = String(req.headers['sec-websocket-key']);
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    conns.push({
      socket,
      requestId: String(req.headers['x-request-id']),
      chunks,
      closed: new Promise((resolve) => socket.once('close', () => resolve())),
      bytes: () => Buffer.concat(chunks),
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    conns,
    httpRequests,
    close: async () => {
      for (const conn of conns) conn.socket.destroy();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------- client

/** A raw client socket through the proxy; everything after the 101's head is the tunnel. */
class RawClient {
  private buffer = Buffer.alloc(0);
  private headEnd = -1;
  readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      if (this.headEnd < 0) {
        const at = this.buffer.indexOf('\r\n\r\n');
        if (at >= 0) this.headEnd = at + 4;
      }
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Connects, sends the handshake (and `early` in the same write), waits for the 101. */
  static async open(port: number, requestId: string, early: Buffer = Buffer.alloc(0)): Promise<RawClient> {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });
    const client = new RawClient(socket);
    const request = handshakeRequest('/tunnel', `127.0.0.1:${port}`, { extra: [`X-Request-Id: ${requestId}`] });
    socket.write(Buffer.concat([Buffer.from(request, 'latin1'), early]));
    await waitFor(() => client.headEnd >= 0, 3_000, `the handshake answer for ${requestId}; got ${JSON.stringify(client.buffer.toString('latin1'))}`);
    const statusLine = client.buffer.subarray(0, client.buffer.indexOf('\r\n')).toString('latin1');
    assert.match(statusLine, /^HTTP\/1\.1 101 /, statusLine);
    return client;
  }

  /** The bytes that came after the 101's head. */
  tunnelBytes(): Buffer {
    return this.headEnd < 0 ? Buffer.alloc(0) : this.buffer.subarray(this.headEnd);
  }
}

/** Writes `bytes` in pieces of varied sizes, with a pause between, so frames straddle chunks. */
async function writeInPieces(socket: Socket, bytes: Buffer): Promise<void> {
  const sizes = [1, 2, 3, 7, 13, 64, 1000, 4096, 65536];
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes[i % sizes.length]!;
    const piece = bytes.subarray(at, at + size);
    at += piece.length;
    if (!socket.write(piece)) await new Promise<void>((resolve) => socket.once('drain', () => resolve()));
    if (i < 12) await sleep(3);
  }
}

// ---------------------------------------------------------------- the proxy

interface LogLine {
  level: number;
  msg: string;
  request_id?: string;
  malformed?: string;
}

type TunnelLine = Partial<TunnelRecord> & { type: string };

interface Harness {
  readonly proxy: Switchyard;
  readonly port: number;
  readonly url: string;
  readonly logFile: string;
  /** Lines the proxy's operational logger wrote (level warn and above). */
  readonly logLines: LogLine[];
  close(): Promise<void>;
}

async function startHarness(backend: Backend, withPolicy: boolean, dir: string): Promise<Harness> {
  const logFile = join(dir, `access-${withPolicy ? 'policy' : 'plain'}.log`);
  const logLines: LogLine[] = [];
  const logger = pino({ level: 'warn' }, {
    write: (line: string) => {
      for (const text of line.split('\n')) if (text !== '') logLines.push(JSON.parse(text) as LogLine);
    },
  });
  const accessLog = new AccessLog({ path: logFile, format: 'json' }, silentLogger());
  const config = loadConfigText(`
listeners:
  - address: 127.0.0.1:0
sites:
  - name: main
    routes:
      - name: ws
        to: backend
${withPolicy ? '        websocket: { max_age: 1h }\n' : ''}upstreams:
  backend:
    servers: [${backend.url}]
timeouts: { tunnel_idle: 30s }
`, 'malformed-tunnel.test.yaml', { env: {}, defaultSecret: 'malformed-tunnel-default-secret-0123' }).config;
  const proxy = await Switchyard.start(config, logger, { accessLog });
  const port = proxy.addresses[0]!.port;
  return {
    proxy, port, logFile, logLines,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await proxy.shutdown(0);
      accessLog.close();
    },
  };
}

function readRecords(file: string): TunnelLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as TunnelLine);
}

async function tunnelLine(harness: Harness, requestId: string): Promise<TunnelLine> {
  let found: TunnelLine | undefined;
  await waitFor(
    () => (found = readRecords(harness.logFile).find((line) => line.type === 'tunnel' && line.request_id === requestId)) !== undefined,
    3_000,
    `the tunnel line of ${requestId}; the log has ${existsSync(harness.logFile) ? readFileSync(harness.logFile, 'utf8') : '(no file)'}`,
  );
  return found!;
}

function warningsFor(harness: Harness, requestId: string): LogLine[] {
  return harness.logLines.filter((line) => line.request_id === requestId && line.level === 40);
}

/** The backend's side of the tunnel whose handshake carried `requestId`. */
async function backendConn(backend: Backend, requestId: string): Promise<BackendConn> {
  let conn: BackendConn | undefined;
  await waitFor(() => (conn = backend.conns.find((c) => c.requestId === requestId)) !== undefined, 3_000, `the backend's connection for ${requestId}`);
  return conn!;
}

/** Waits until `received()` holds as many bytes as `expected`, then a little longer for extra bytes. */
async function expectSameBytes(received: () => Buffer, expected: Buffer, what: string): Promise<void> {
  await waitFor(() => received().length >= expected.length, 5_000, `${what}: ${expected.length} bytes; got ${received().length}`).catch(() => undefined);
  await sleep(100);
  const got = received();
  assert.equal(got.length, expected.length, `${what}: byte count`);
  if (!got.equals(expected)) {
    let at = 0;
    while (at < got.length && got[at] === expected[at]) at++;
    assert.fail(`${what}: the bytes differ first at offset ${at}: got ${got.subarray(at, at + 16).toString('hex')}, sent ${expected.subarray(at, at + 16).toString('hex')}`);
  }
}

/** Ends the tunnel from `side` with a FIN and waits for both sockets to close. */
async function endTunnel(side: 'client' | 'backend', client: RawClient, conn: BackendConn): Promise<void> {
  if (side === 'client') client.socket.end();
  else conn.socket.end();
  await Promise.race([
    Promise.all([client.closed, conn.closed]),
    sleep(3_000).then(() => { throw new Error(`the tunnel did not end after a FIN from the ${side}`); }),
  ]);
}

// ---------------------------------------------------------------- cases

interface MalformedCase {
  readonly name: string;
  /** Who sends the malformed stream. */
  readonly from: 'client' | 'backend';
  /** Valid frames before the bad one (the tracker counts these messages). */
  readonly validMessages: number;
  readonly bytes: () => Buffer;
  readonly reason: string;
  /** The bad bytes go in the same write as the handshake (client) or the 101 (not used for the backend). */
  readonly early?: boolean;
}

/** 200 KiB of bytes after the violation: the tunnel must go on passing them untouched. */
const tail = (): Buffer => randomBytes(200 * 1024);

const CASES: readonly MalformedCase[] = [
  {
    name: 'a client frame with reserved opcode 3 and RSV1-3 set, after a valid message, followed by more frames and 200 KiB',
    from: 'client',
    validMessages: 1,
    bytes: () => Buffer.concat([clientFrame(0x1, 'valid before'), maskedFrame(0xf3, 'reserved'), clientFrame(0x1, 'valid after'), tail()]),
    reason: 'reserved opcode 3',
  },
  {
    name: 'a backend frame with reserved opcode 4 and RSV1 set, after a valid message, followed by more frames and 200 KiB',
    from: 'backend',
    validMessages: 1,
    bytes: () => Buffer.concat([serverFrame(0x81, 'valid before'), serverFrame(0xc4, 'reserved'), serverFrame(0x81, 'valid after'), tail()]),
    reason: 'reserved opcode 4',
  },
  {
    name: 'an unmasked client frame followed by more frames and 200 KiB',
    from: 'client',
    validMessages: 0,
    bytes: () => Buffer.concat([unmaskedClientFrame('not masked'), clientFrame(0x1, 'masked after'), tail()]),
    reason: 'mask bit wrong for direction',
  },
  {
    name: 'a masked backend frame followed by more frames and 200 KiB',
    from: 'backend',
    validMessages: 0,
    bytes: () => Buffer.concat([serverFrame(0x81, 'masked by the server', true), serverFrame(0x81, 'after'), tail()]),
    reason: 'mask bit wrong for direction',
  },
  {
    name: 'a client frame whose 64-bit length has the top bit set, followed by 200 KiB',
    from: 'client',
    validMessages: 1,
    bytes: () => Buffer.concat([clientFrame(0x2, randomBytes(100)), highBitLengthHeader(true), Buffer.from('hello'), tail()]),
    reason: '64-bit length with high bit set',
  },
  {
    name: 'a backend frame whose 64-bit length has the top bit set, followed by 200 KiB',
    from: 'backend',
    validMessages: 0,
    bytes: () => Buffer.concat([highBitLengthHeader(false), Buffer.from('hello'), tail()]),
    reason: '64-bit length with high bit set',
  },
  {
    name: 'a reserved-opcode client frame in the same write as the handshake (early data)',
    from: 'client',
    validMessages: 1,
    early: true,
    bytes: () => Buffer.concat([clientFrame(0x1, 'early valid'), maskedFrame(0x85, 'early reserved'), tail()]),
    reason: 'reserved opcode 5',
  },
];

// ---------------------------------------------------------------- tests

const dir = mkdtempSync(join(tmpdir(), 'switchyard-malformed-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let nextId = 1;

for (const withPolicy of [false, true]) {
  describe(`malformed WebSocket streams pass through unchanged and are logged (${withPolicy ? 'route with a policy: frame gate' : 'plain pipe'})`, () => {
    let backend: Backend;
    let harness: Harness;
    const clients: RawClient[] = [];

    before(async () => {
      backend = await startBackend();
      harness = await startHarness(backend, withPolicy, dir);
    });
    afterEach(async () => {
      // Even after a failed test, nothing of its tunnel outlives it (nor logs into the next test).
      for (const client of clients.splice(0)) client.socket.destroy();
      for (const conn of backend.conns) conn.socket.destroy();
      await waitFor(() => harness.proxy.registry.tunnels.size === 0, 3_000, 'every tunnel to be gone after the test');
    });
    after(async () => {
      await harness.close();
      await backend.close();
    });

    for (const c of CASES) {
      test(`${c.name}: the other side receives it byte for byte; the tunnel line says "${c.reason}"; a warning is logged`, { timeout: 15_000 }, async () => {
        const requestId = `malformed-${withPolicy ? 'policy' : 'plain'}-${nextId++}`;
        const sent = c.bytes();
        const client = await RawClient.open(harness.port, requestId, c.early ? sent : Buffer.alloc(0));
        clients.push(client);
        const conn = await backendConn(backend, requestId);

        if (c.from === 'client') {
          if (!c.early) await writeInPieces(client.socket, sent);
          await expectSameBytes(() => conn.bytes(), sent, 'what the backend received');
          assert.equal(client.tunnelBytes().length, 0, 'the client got nothing back (no frame of the proxy\'s own)');
        } else {
          await writeInPieces(conn.socket, sent);
          await expectSameBytes(() => client.tunnelBytes(), sent, 'what the client received');
          assert.equal(conn.bytes().length, 0, 'the backend got nothing (no frame of the proxy\'s own)');
        }
        // The tunnel still works after the violation: one more valid frame each way
        // (valid, so the direction that was not malformed stays clean).
        const laterFromClient = clientFrame(0x1, 'later from the client');
        const laterFromBackend = serverFrame(0x81, 'later from the backend');
        client.socket.write(laterFromClient);
        conn.socket.write(laterFromBackend);
        const expectedAtBackend = Buffer.concat([c.from === 'client' ? sent : Buffer.alloc(0), laterFromClient]);
        const expectedAtClient = Buffer.concat([c.from === 'backend' ? sent : Buffer.alloc(0), laterFromBackend]);
        await expectSameBytes(() => conn.bytes(), expectedAtBackend, 'the backend after more bytes');
        await expectSameBytes(() => client.tunnelBytes(), expectedAtClient, 'the client after more bytes');

        await endTunnel(c.from, client, conn);
        const line = await tunnelLine(harness, requestId);
        assert.equal(line.malformed, c.reason, `the tunnel line: ${JSON.stringify(line)}`);
        assert.equal(line.bytes_from_client, expectedAtBackend.length);
        assert.equal(line.bytes_from_backend, expectedAtClient.length);
        assert.equal(c.from === 'client' ? line.messages_from_client : line.messages_from_backend, c.validMessages, 'messages before the violation');
        assert.equal(c.from === 'client' ? line.messages_from_backend : line.messages_from_client, 1, 'the clean direction\'s one message');

        await waitFor(() => warningsFor(harness, requestId).length > 0, 2_000, `a warning for ${requestId}; the logger wrote ${JSON.stringify(harness.logLines)}`);
        const warnings = warningsFor(harness, requestId);
        assert.equal(warnings.length, 1, JSON.stringify(warnings));
        assert.equal(warnings[0]!.malformed, c.reason);
        assert.match(warnings[0]!.msg, /malformed/);
        await waitFor(() => harness.proxy.registry.tunnels.size === 0, 2_000, 'the proxy to forget the tunnel');
      });
    }

    test('RSV bits on otherwise valid frames (no extension negotiated) pass through unchanged and are not flagged (a deliberate tracker choice)', { timeout: 10_000 }, async () => {
      const requestId = `rsv-only-${withPolicy ? 'policy' : 'plain'}-${nextId++}`;
      const client = await RawClient.open(harness.port, requestId);
      clients.push(client);
      const conn = await backendConn(backend, requestId);
      const sent = Buffer.concat([maskedFrame(0xc1, 'rsv1'), maskedFrame(0xa2, 'rsv2'), maskedFrame(0x91, 'rsv3')]);
      await writeInPieces(client.socket, sent);
      await expectSameBytes(() => conn.bytes(), sent, 'what the backend received');
      await endTunnel('client', client, conn);
      const line = await tunnelLine(harness, requestId);
      assert.equal(line.malformed, undefined, JSON.stringify(line));
      assert.equal(line.messages_from_client, 3);
      assert.equal(warningsFor(harness, requestId).length, 0);
    });

    test('violations both ways: the tunnel line names the first one seen (the backend\'s), as documented', { timeout: 10_000 }, async () => {
      const requestId = `both-${withPolicy ? 'policy' : 'plain'}-${nextId++}`;
      const client = await RawClient.open(harness.port, requestId);
      clients.push(client);
      const conn = await backendConn(backend, requestId);
      const fromBackend = Buffer.concat([serverFrame(0x84, 'backend first'), randomBytes(1000)]);
      conn.socket.write(fromBackend);
      await expectSameBytes(() => client.tunnelBytes(), fromBackend, 'what the client received');
      const fromClient = Buffer.concat([maskedFrame(0x83, 'client second'), randomBytes(1000)]);
      client.socket.write(fromClient);
      await expectSameBytes(() => conn.bytes(), fromClient, 'what the backend received');
      await endTunnel('client', client, conn);
      const line = await tunnelLine(harness, requestId);
      // docs/observability.md: "the first WebSocket protocol violation seen"; records.ts: "The first protocol violation seen in either direction".
      assert.equal(line.malformed, 'reserved opcode 4', `the backend's violation came first; the line: ${JSON.stringify(line)}`);
    });

    test('after the malformed streams the proxy still serves a normal WebSocket and an HTTP request', { timeout: 10_000 }, async () => {
      const requestId = `normal-${withPolicy ? 'policy' : 'plain'}-${nextId++}`;
      const ws = new WebSocket(`ws://127.0.0.1:${harness.port}/echo`, { headers: { 'X-Request-Id': requestId }, handshakeTimeout: 3_000 });
      try {
        await new Promise<void>((resolve, reject) => {
          ws.once('open', () => resolve());
          ws.once('error', reject);
        });
        const echoes: string[] = [];
        ws.on('message', (data) => echoes.push(String(data)));
        ws.send('one');
        ws.send('two');
        await waitFor(() => echoes.length === 2, 3_000, 'two echoes');
        assert.deepEqual(echoes, ['one', 'two']);
        const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
        ws.close(1000, 'done');
        assert.equal(await closed, 1000);
      } finally {
        ws.terminate();
      }
      const line = await tunnelLine(harness, requestId);
      assert.equal(line.malformed, undefined, JSON.stringify(line));
      assert.equal(line.messages_from_client, 2);
      assert.equal(line.messages_from_backend, 2);
      assert.deepEqual(line.client_close, { code: 1000, reason: 'done' });

      const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.get(`${harness.url}/page`, { agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => { body += chunk; });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.setTimeout(3_000, () => req.destroy(new Error('no answer within 3 s')));
        req.on('error', reject);
      });
      assert.deepEqual(reply, { status: 200, body: 'plain ok' });
      assert.ok(backend.httpRequests.includes('/page'));
      assert.deepEqual(warningsFor(harness, requestId), [], 'no warning for a clean tunnel');
      await waitFor(() => harness.proxy.registry.tunnels.size === 0, 2_000, 'no tunnel left open');
    });
  });
}
