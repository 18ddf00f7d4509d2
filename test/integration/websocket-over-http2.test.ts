/**
 * WebSockets over HTTP/2 (RFC 8441): Node's http2 client opens an extended
 * CONNECT (:protocol websocket) on a TLS listener; the proxy bridges it to an
 * ordinary HTTP/1.1 handshake with a real `ws` origin and then carries the
 * frames on the stream both ways. Covers the SETTINGS, the handshake as the
 * backend sees it, subprotocols, text/binary/16 MiB messages, close codes,
 * refusals and errors, routing, resets and connection loss, several sockets on
 * one session, flow control and backpressure, HTTP/1.1 WebSockets alongside,
 * and leaks.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { closedPort, startOrigin, type Origin, type OriginOptions } from '../helpers/origins.js';
import { selfSignedCertificate, type TestCertificate } from '../helpers/certs.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { openFdCount, sleep, waitFor } from '../helpers/raw.js';
import { clientFrame } from '../helpers/websocket-frames.js';
import { withTimeout } from '../helpers/cli.js';
import { h2Connect as connectH2 } from '../helpers/h2-websocket.js';

// ---------------------------------------------------------------- certificate

let certificate: TestCertificate | undefined;
let certFile = '';
let keyFile = '';
let cert: Buffer = Buffer.alloc(0);
let key: Buffer = Buffer.alloc(0);

before(async () => {
  certificate = await selfSignedCertificate('switchyard-ws-h2-');
  ({ cert, key } = certificate);
  ({ certFile, keyFile } = certificate);
}, { timeout: 30_000 });

after(() => certificate?.remove());

function startTlsProxy(servers: readonly string[]): Promise<TestProxy> {
  return startProxy({ servers, tls: { cert, key } });
}

// ---------------------------------------------------------------- WebSocket opcodes and frames

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;

const MiB = 1024 * 1024;

function closePayload(code: number, reason: string): Buffer {
  const reasonBytes = Buffer.from(reason);
  const payload = Buffer.alloc(2 + reasonBytes.length);
  payload.writeUInt16BE(code, 0);
  reasonBytes.copy(payload, 2);
  return payload;
}

interface WsMessage {
  /** The opcode of the message's first frame (text, binary, or a control frame). */
  readonly opcode: number;
  readonly data: Buffer;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * Parses the server's (unmasked) frames from an HTTP/2 stream's DATA: headers
 * with 7, 16 and 64-bit lengths split anywhere across chunks, and fragmented
 * messages (continuation frames, control frames in between) reassembled.
 * Messages are queued for next(), or handed to onMessage when set.
 */
class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private fragments: Buffer[] = [];
  private fragmentOpcode = -1;
  private readonly queue: WsMessage[] = [];
  private waiter: { resolve: (message: WsMessage) => void; reject: (err: Error) => void } | undefined;
  /** Set when the stream ended or closed: no more messages will come. */
  finished = false;
  /** Protocol errors seen (masked server frame, bad continuation, ...). */
  readonly errors: string[] = [];
  bytes = 0;
  onMessage: ((message: WsMessage) => void) | undefined;

  /** Every byte received, kept only when asked for (a refusal's body). */
  private readonly raw: Buffer[] | undefined;
  private readonly ended: Promise<void>;

  constructor(readonly stream: http2.ClientHttp2Stream, keepRaw = false) {
    this.raw = keepRaw ? [] : undefined;
    stream.on('data', (chunk: Buffer) => {
      this.raw?.push(chunk);
      this.push(chunk);
    });
    this.ended = new Promise<void>((resolve, reject) => {
      stream.once('end', () => resolve());
      stream.once('close', () => (stream.readableEnded ? resolve() : reject(new Error(`stream closed before its end (rst code ${stream.rstCode})`))));
    });
    this.ended.catch(() => undefined);
    const finish = (): void => {
      this.finished = true;
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter?.reject(new Error(`the stream ended before the next message (${this.buffered} bytes of a partial frame)`));
    };
    stream.on('end', finish);
    stream.on('close', finish);
  }

  /** The whole response body (as raw bytes) once the stream has ended; needs keepRaw. */
  async body(ms = 3_000): Promise<Buffer> {
    assert.ok(this.raw, 'the reader keeps no raw bytes');
    await withTimeout(this.ended, ms, 'the response body');
    return Buffer.concat(this.raw);
  }

  /** The next message, in order; rejects on timeout or when the stream ends first. */
  next(ms = 3_000): Promise<WsMessage> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.finished) return Promise.reject(new Error('the stream has ended: no more messages'));
    assert.equal(this.waiter, undefined, 'one next() at a time');
    return withTimeout(new Promise<WsMessage>((resolve, reject) => { this.waiter = { resolve, reject }; }), ms, 'a WebSocket message')
      .finally(() => { this.waiter = undefined; });
  }

  private push(chunk: Buffer): void {
    this.bytes += chunk.length;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.buffered < 2) return;
      const head = this.peek(Math.min(this.buffered, 14));
      const b0 = head[0]!;
      const b1 = head[1]!;
      if (b1 & 0x80) this.errors.push('a masked frame from the server');
      const len7 = b1 & 0x7f;
      const headerLength = 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
      if (this.buffered < headerLength) return;
      const length = len7 === 126 ? head.readUInt16BE(2) : len7 === 127 ? Number(head.readBigUInt64BE(2)) : len7;
      if (this.buffered < headerLength + length) return;
      this.take(headerLength);
      this.frame(Boolean(b0 & 0x80), b0 & 0x0f, this.take(length));
    }
  }

  private frame(fin: boolean, opcode: number, payload: Buffer): void {
    if (opcode >= 0x8) {
      this.deliver({ opcode, data: payload });
      return;
    }
    if (opcode === OP_CONTINUATION) {
      if (this.fragmentOpcode < 0) this.errors.push('a continuation frame outside a message');
    } else {
      if (this.fragmentOpcode >= 0) this.errors.push('a new message inside a fragmented one');
      this.fragmentOpcode = opcode;
      this.fragments = [];
    }
    this.fragments.push(payload);
    if (!fin) return;
    const message = { opcode: this.fragmentOpcode, data: this.fragments.length === 1 ? this.fragments[0]! : Buffer.concat(this.fragments) };
    this.fragments = [];
    this.fragmentOpcode = -1;
    this.deliver(message);
  }

  private deliver(message: WsMessage): void {
    if (this.onMessage) {
      this.onMessage(message);
      return;
    }
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve(message);
    } else {
      this.queue.push(message);
    }
  }

  /** The first n buffered bytes, left in place. */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    return Buffer.concat(this.chunks, this.buffered).subarray(0, n);
  }

  /** Removes and returns the first n buffered bytes. */
  private take(n: number): Buffer {
    this.buffered -= n;
    const first = this.chunks[0];
    if (n === 0) return Buffer.alloc(0);
    if (first && first.length > n) {
      this.chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first && first.length === n) {
      this.chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const chunk = this.chunks[0]!;
      const want = n - at;
      if (chunk.length <= want) {
        chunk.copy(out, at);
        at += chunk.length;
        this.chunks.shift();
      } else {
        chunk.copy(out, at, 0, want);
        this.chunks[0] = chunk.subarray(want);
        at += want;
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------- HTTP/2 client

/** An h2 session to the proxy (trusting the test certificate), once the server's SETTINGS have arrived. */
function h2Connect(port: number, options: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  return connectH2(port, { ca: cert, ...options });
}

type ResponseHeaders = http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;

interface H2WebSocket {
  readonly stream: http2.ClientHttp2Stream;
  readonly headers: ResponseHeaders;
  readonly status: number;
  readonly reader: FrameReader;
  /** Sends one masked client frame. */
  send(opcode: number, payload: Buffer | string, fin?: boolean): void;
}

/** Opens an extended CONNECT (:protocol websocket) and resolves with the response headers. */
function h2WebSocket(session: http2.ClientHttp2Session, path: string, extra: http2.OutgoingHttpHeaders = {}, protocol = 'websocket'): Promise<H2WebSocket> {
  const port = (session.socket.remotePort ?? 0);
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': protocol,
    ':path': path,
    ':scheme': 'https',
    ':authority': `localhost:${port}`,
    'sec-websocket-version': '13',
    ...extra,
  });
  stream.on('error', () => undefined);
  return withTimeout(new Promise<H2WebSocket>((resolve, reject) => {
    stream.once('response', (headers: ResponseHeaders) => {
      const status = Number(headers[':status']);
      // Attached in this callback, so no DATA can be missed; a refusal's body is kept whole.
      const reader = new FrameReader(stream, status !== 200);
      resolve({
        stream,
        headers,
        status,
        reader,
        send: (opcode, payload, fin = true) => stream.write(clientFrame(opcode, payload, fin)),
      });
    });
    stream.once('close', () => reject(new Error(`the CONNECT stream closed without a response (rst code ${stream.rstCode})`)));
  }), 5_000, `the response to CONNECT ${path}`).catch((err: unknown) => {
    stream.destroy();
    throw err;
  });
}

/** Opens a WebSocket over h2 and insists on :status 200. */
async function openAccepted(session: http2.ClientHttp2Session, path = '/chat', extra: http2.OutgoingHttpHeaders = {}): Promise<H2WebSocket> {
  const ws = await h2WebSocket(session, path, extra);
  if (ws.status !== 200) {
    const body = await ws.reader.body().catch(() => Buffer.alloc(0));
    ws.stream.destroy();
    assert.fail(`extended CONNECT answered ${ws.status} ${String(ws.headers['x-switchyard-error'] ?? '')} ${body.toString()}`);
  }
  return ws;
}

/** The rest of a stream's DATA until it ends. */
function readBody(stream: http2.ClientHttp2Stream, ms = 3_000): Promise<Buffer> {
  return withTimeout(new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('close', () => (stream.readableEnded ? resolve(Buffer.concat(chunks)) : reject(new Error(`stream closed before its end (rst code ${stream.rstCode})`))));
  }), ms, 'the response body');
}

/** Resolves once the stream has emitted 'close'. */
function streamClosed(stream: http2.Http2Stream, ms: number, what: string): Promise<void> {
  if (stream.closed && stream.destroyed) return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => stream.once('close', () => resolve())), ms, what);
}

/** Resolves once the stream's readable side ended (END_STREAM) or the stream closed (RST_STREAM). */
function streamEndedOrReset(stream: http2.Http2Stream, ms: number, what: string): Promise<'end' | 'close'> {
  if (stream.readableEnded) return Promise.resolve('end');
  if (stream.destroyed) return Promise.resolve('close');
  return withTimeout(new Promise<'end' | 'close'>((resolve) => {
    stream.once('end', () => resolve('end'));
    stream.once('close', () => resolve('close'));
  }), ms, what);
}

/** Sends a text message and returns the next message. */
async function echo(ws: H2WebSocket, text: string): Promise<string> {
  ws.send(OP_TEXT, text);
  const reply = await ws.reader.next();
  assert.equal(reply.opcode, OP_TEXT, `expected a text echo of ${JSON.stringify(text)}, got opcode ${reply.opcode}`);
  return reply.data.toString('utf8');
}

/** A full closing handshake started by the client; resolves once the stream is closed. */
async function closeCleanly(ws: H2WebSocket, code = 1000, reason = ''): Promise<WsMessage> {
  ws.send(OP_CLOSE, closePayload(code, reason));
  let reply = await ws.reader.next();
  while (reply.opcode !== OP_CLOSE) reply = await ws.reader.next();
  ws.stream.end();
  await streamClosed(ws.stream, 3_000, 'the stream to close after the closing handshake');
  return reply;
}

function closeSession(session: http2.ClientHttp2Session): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    session.once('close', () => resolve());
    session.destroy();
  });
}

function tunnelsOf(proxy: TestProxy): number {
  return proxy.proxy.registry.tunnels.size;
}

/** A close code and reason as the backend's WebSocket reported them. */
interface Closing {
  readonly code: number;
  readonly reason: string;
}

// ---------------------------------------------------------------- tests

describe('RFC 8441 through the proxy: handshake, messages, close', () => {
  let origin: Origin;
  let proxy: TestProxy;
  let session: http2.ClientHttp2Session;
  const closes: Closing[] = [];

  before(async () => {
    origin = await startOrigin({
      onWebSocket: (ws) => {
        ws.on('message', (data, isBinary) => {
          const text = isBinary ? '' : String(data);
          if (text.startsWith('close-me:')) {
            const [, code, reason] = text.split(':');
            ws.close(Number(code), reason);
          } else {
            ws.send(data, { binary: isBinary });
          }
        });
        ws.on('close', (code, reason) => closes.push({ code, reason: reason.toString() }));
      },
    });
    proxy = await startTlsProxy([origin.wsUrl]);
    session = await h2Connect(proxy.port);
  }, { timeout: 10_000 });

  after(async () => {
    await closeSession(session);
    await proxy.close();
    await origin.close();
  }, { timeout: 10_000 });

  test('the server SETTINGS advertise SETTINGS_ENABLE_CONNECT_PROTOCOL', { timeout: 5_000 }, () => {
    assert.equal(session.alpnProtocol, 'h2');
    assert.equal(session.remoteSettings.enableConnectProtocol, true);
  });

  test('the backend sees an ordinary HTTP/1.1 handshake; the client gets :status 200 without Sec-WebSocket-Accept', { timeout: 5_000 }, async () => {
    const before = origin.handshakes.length;
    const ws = await openAccepted(session, '/chat/room?x=1', { origin: 'https://app.example', 'x-custom': 'kept' });
    try {
      assert.equal(ws.status, 200);
      assert.equal(ws.headers['sec-websocket-accept'], undefined, 'no Sec-WebSocket-Accept over HTTP/2');
      assert.equal(ws.headers.upgrade, undefined);
      assert.equal(ws.headers.connection, undefined);
      assert.equal(await echo(ws, 'hello'), 'hello');

      assert.equal(origin.handshakes.length, before + 1);
      const handshake = origin.handshakes.at(-1)!;
      assert.equal(handshake.method, 'GET');
      assert.equal(handshake.httpVersion, '1.1');
      assert.equal(handshake.url, '/chat/room?x=1');
      assert.equal(handshake.headers.upgrade?.toLowerCase(), 'websocket');
      assert.match(handshake.headers.connection ?? '', /\bupgrade\b/i);
      const keyHeader = handshake.headers['sec-websocket-key'];
      assert.equal(typeof keyHeader, 'string');
      assert.match(keyHeader as string, /^[A-Za-z0-9+/]{22}==$/, 'a base64 key');
      assert.equal(Buffer.from(keyHeader as string, 'base64').length, 16, 'the key is 16 bytes');
      assert.equal(handshake.headers['sec-websocket-version'], '13');
      assert.equal(handshake.headers.host, `localhost:${proxy.port}`, 'Host is the :authority');
      assert.equal(handshake.headers['x-forwarded-proto'], 'https');
      assert.equal(handshake.headers.origin, 'https://app.example');
      assert.equal(handshake.headers['x-custom'], 'kept');
      for (let i = 0; i < handshake.rawHeaders.length; i += 2) {
        assert.ok(!handshake.rawHeaders[i]!.startsWith(':'), `no pseudo-header reaches the backend: ${handshake.rawHeaders[i]}`);
      }
      assert.equal(ws.reader.errors.length, 0, ws.reader.errors.join('; '));
    } finally {
      ws.stream.destroy();
    }
  });

  test('each handshake gets a fresh key', { timeout: 5_000 }, async () => {
    const a = await openAccepted(session);
    const b = await openAccepted(session);
    try {
      const keys = origin.handshakes.slice(-2).map((h) => h.headers['sec-websocket-key']);
      assert.equal(keys.length, 2);
      assert.notEqual(keys[0], keys[1]);
    } finally {
      a.stream.destroy();
      b.stream.destroy();
    }
  });

  test('text and binary messages are echoed, in order, with their types', { timeout: 5_000 }, async () => {
    const ws = await openAccepted(session);
    try {
      const binary = randomBytes(70_000); // a 16-bit length would not do: 64-bit length frame
      const medium = randomBytes(300); // 16-bit length
      ws.send(OP_TEXT, 'héllo wörld ✓');
      ws.send(OP_BINARY, binary);
      ws.send(OP_BINARY, medium);
      ws.send(OP_TEXT, '');
      // A fragmented client message: the backend reassembles it.
      ws.send(OP_TEXT, 'frag-', false);
      ws.send(OP_CONTINUATION, 'ment', true);
      const a = await ws.reader.next();
      assert.equal(a.opcode, OP_TEXT);
      assert.equal(a.data.toString('utf8'), 'héllo wörld ✓');
      const b = await ws.reader.next();
      assert.equal(b.opcode, OP_BINARY);
      assert.ok(b.data.equals(binary), 'the 70 000-byte binary message came back intact');
      const c = await ws.reader.next();
      assert.equal(c.opcode, OP_BINARY);
      assert.ok(c.data.equals(medium));
      const d = await ws.reader.next();
      assert.equal(d.opcode, OP_TEXT);
      assert.equal(d.data.length, 0);
      const e = await ws.reader.next();
      assert.equal(e.opcode, OP_TEXT);
      assert.equal(e.data.toString(), 'frag-ment');
      // A ping from the client is answered by the backend with a pong.
      ws.send(OP_PING, 'are you there');
      const pong = await ws.reader.next();
      assert.equal(pong.opcode, 0xa);
      assert.equal(pong.data.toString(), 'are you there');
      assert.equal(ws.reader.errors.length, 0, ws.reader.errors.join('; '));
      await closeCleanly(ws);
    } finally {
      ws.stream.destroy();
    }
  });

  test('a 16 MiB binary message goes both ways intact (flow control both ways)', { timeout: 30_000 }, async () => {
    const ws = await openAccepted(session);
    try {
      const big = randomBytes(16 * MiB);
      const digest = sha256(big);
      ws.send(OP_BINARY, big);
      const back = await ws.reader.next(20_000);
      assert.equal(back.opcode, OP_BINARY);
      assert.equal(back.data.length, big.length);
      assert.equal(sha256(back.data), digest);
      assert.equal(await echo(ws, 'after the big one'), 'after the big one');
      await closeCleanly(ws);
    } finally {
      ws.stream.destroy();
    }
  });

  test('the client closes with 4001 "bye": the backend sees 4001 "bye", answers, and the stream closes', { timeout: 5_000 }, async () => {
    const ws = await openAccepted(session);
    const count = closes.length;
    try {
      assert.equal(await echo(ws, 'x'), 'x');
      const reply = await closeCleanly(ws, 4001, 'bye');
      assert.equal(reply.data.readUInt16BE(0), 4001, 'the backend echoes the close code');
      await waitFor(() => closes.length > count, 2_000, 'the backend WebSocket to close');
      await sleep(50);
      assert.deepEqual(closes.slice(count).filter((c) => c.code !== 1006), [{ code: 4001, reason: 'bye' }], 'the backend saw the client\'s code and reason');
      await waitFor(() => tunnelsOf(proxy) === 0, 1_000, 'the tunnel to be retired');
    } finally {
      ws.stream.destroy();
    }
  });

  test('the backend closes with 4002 "server bye": the client gets that close frame and the stream ends', { timeout: 5_000 }, async () => {
    const ws = await openAccepted(session);
    const count = closes.length;
    try {
      ws.send(OP_TEXT, 'close-me:4002:server bye');
      const frame = await ws.reader.next();
      assert.equal(frame.opcode, OP_CLOSE);
      assert.equal(frame.data.readUInt16BE(0), 4002);
      assert.equal(frame.data.subarray(2).toString(), 'server bye');
      // Complete the closing handshake; the backend then closes its connection
      // and the proxy ends the stream.
      ws.send(OP_CLOSE, closePayload(4002, ''));
      const how = await streamEndedOrReset(ws.stream, 2_000, 'the stream to end after the close');
      assert.equal(how, 'end', 'a clean close ends the stream with END_STREAM, not a reset');
      ws.stream.end();
      await streamClosed(ws.stream, 2_000, 'the stream to close');
      await waitFor(() => closes.length > count, 2_000, 'the backend WebSocket to close');
      await sleep(50);
      assert.deepEqual(closes.slice(count).filter((c) => c.code !== 1006).map((c) => c.code), [4002]);
      await waitFor(() => tunnelsOf(proxy) === 0, 1_000, 'the tunnel to be retired');
    } finally {
      ws.stream.destroy();
    }
  });

  test('several WebSockets on one session at once each echo their own messages', { timeout: 15_000 }, async () => {
    const sockets = await Promise.all(Array.from({ length: 8 }, (_, i) => openAccepted(session, `/multi/${i}`)));
    try {
      assert.equal(origin.sockets.size >= 8, true);
      await waitFor(() => tunnelsOf(proxy) === 8, 1_000, 'eight tunnels');
      // Interleave: every socket sends before any reads.
      const rounds = 20;
      for (let r = 0; r < rounds; r++) {
        sockets.forEach((ws, i) => ws.send(r % 2 === 0 ? OP_TEXT : OP_BINARY, `socket ${i} message ${r} ${'x'.repeat(r * 500)}`));
      }
      await Promise.all(sockets.map(async (ws, i) => {
        for (let r = 0; r < rounds; r++) {
          const message = await ws.reader.next();
          assert.equal(message.opcode, r % 2 === 0 ? OP_TEXT : OP_BINARY);
          assert.equal(message.data.toString(), `socket ${i} message ${r} ${'x'.repeat(r * 500)}`);
        }
      }));
      await Promise.all(sockets.map((ws) => closeCleanly(ws)));
      await waitFor(() => tunnelsOf(proxy) === 0, 2_000, 'every tunnel to be retired');
    } finally {
      for (const ws of sockets) ws.stream.destroy();
    }
  });

  test('an extended CONNECT with :protocol other than websocket gets 405', { timeout: 5_000 }, async () => {
    const handshakes = origin.handshakes.length;
    const requests = origin.requests.length;
    const reply = await h2WebSocket(session, '/chat', {}, 'connect-udp');
    try {
      assert.equal(reply.status, 405);
      assert.equal(reply.headers['x-switchyard-error'], 'SY_CLIENT_METHOD_NOT_ALLOWED');
      await streamEndedOrReset(reply.stream, 2_000, 'the 405 to end');
    } finally {
      reply.stream.destroy();
    }
    assert.equal(origin.handshakes.length, handshakes, 'nothing reached the backend');
    assert.equal(origin.requests.length, requests);
    // The session is still usable.
    const ws = await openAccepted(session);
    assert.equal(await echo(ws, 'still here'), 'still here');
    await closeCleanly(ws);
  });
});

describe('subprotocols and extensions', () => {
  test('sec-websocket-protocol "chat, v2" reaches the backend; it picks v2 and the client sees v2', { timeout: 10_000 }, async () => {
    const seen: IncomingMessage[] = [];
    const server = http.createServer();
    const wss = new WebSocketServer({ noServer: true, handleProtocols: (protocols) => (protocols.has('v2') ? 'v2' : false) });
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      seen.push(req);
      socket.on('error', () => undefined);
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('message', (data, isBinary) => ws.send(`${ws.protocol}:${String(data)}`, { binary: isBinary }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = await startTlsProxy([`ws://127.0.0.1:${(server.address() as AddressInfo).port}`]);
    const session = await h2Connect(proxy.port);
    try {
      const ws = await openAccepted(session, '/proto', {
        'sec-websocket-protocol': 'chat, v2',
        'sec-websocket-extensions': 'x-test-extension; a=1',
        origin: 'https://origin.example',
      });
      assert.equal(ws.headers['sec-websocket-protocol'], 'v2');
      assert.equal(ws.headers['sec-websocket-accept'], undefined);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.headers['sec-websocket-protocol'], 'chat, v2');
      assert.equal(seen[0]!.headers['sec-websocket-extensions'], 'x-test-extension; a=1');
      assert.equal(seen[0]!.headers.origin, 'https://origin.example');
      assert.equal(await echo(ws, 'hi'), 'v2:hi', 'the backend agreed on v2');
      await closeCleanly(ws);
    } finally {
      await closeSession(session);
      await proxy.close();
      for (const client of wss.clients) client.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe('refusals and upstream errors', () => {
  async function withProxy(options: OriginOptions, run: (session: http2.ClientHttp2Session, origin: Origin, proxy: TestProxy) => Promise<void>): Promise<void> {
    const origin = await startOrigin(options);
    const proxy = await startTlsProxy([origin.wsUrl]);
    const session = await h2Connect(proxy.port);
    try {
      await run(session, origin, proxy);
    } finally {
      await closeSession(session);
      await proxy.close();
      await origin.close();
    }
  }

  test('a refused handshake (403 with a body) comes back as :status 403 with its headers and body', { timeout: 10_000 }, async () => {
    const body = 'not allowed in here\n';
    await withProxy({
      onUpgrade: (_req, socket) => {
        socket.end([
          'HTTP/1.1 403 Forbidden', 'Content-Type: text/plain', `Content-Length: ${Buffer.byteLength(body)}`, 'X-Reason: no-entry', '', body,
        ].join('\r\n'));
      },
    }, async (session, _origin, proxy) => {
      const reply = await h2WebSocket(session, '/chat');
      try {
        assert.equal(reply.status, 403);
        assert.equal(reply.headers['x-reason'], 'no-entry');
        assert.equal(reply.headers['content-type'], 'text/plain');
        assert.equal(reply.headers.connection, undefined);
        const got = await reply.reader.body();
        assert.equal(got.toString(), body);
      } finally {
        reply.stream.destroy();
      }
      await waitFor(() => tunnelsOf(proxy) === 0 && proxy.proxy.registry.inFlight === 0, 1_000, 'nothing in flight');
      // The session survives the refusal.
      const again = await h2WebSocket(session, '/chat');
      assert.equal(again.status, 403);
      again.stream.destroy();
    });
  });

  test('a 101 with a wrong Sec-WebSocket-Accept becomes 502 SY_UPSTREAM_BAD_RESPONSE', { timeout: 10_000 }, async () => {
    let upgrades = 0;
    await withProxy({
      onUpgrade: (_req, socket) => {
        upgrades++;
        // The origin's server waits for this socket on close: end it when the proxy leaves.
        socket.on('end', () => socket.destroy());
        socket.write([
          'HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade',
          `Sec-WebSocket-Accept: ${createHash('sha1').update('not the key').digest('base64')}`, '', '',
        ].join('\r\n'));
      },
    }, async (session) => {
      const reply = await h2WebSocket(session, '/chat');
      try {
        assert.equal(reply.status, 502);
        assert.equal(reply.headers['x-switchyard-error'], 'SY_UPSTREAM_BAD_RESPONSE');
        assert.equal(reply.headers['sec-websocket-accept'], undefined);
        await streamEndedOrReset(reply.stream, 2_000, 'the 502 to end');
      } finally {
        reply.stream.destroy();
      }
      assert.ok(upgrades >= 1);
    });
  });

  test('a 101 without any Sec-WebSocket-Accept becomes 502 too', { timeout: 10_000 }, async () => {
    await withProxy({
      onUpgrade: (_req, socket) => {
        socket.on('end', () => socket.destroy());
        socket.write(['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', '', ''].join('\r\n'));
      },
    }, async (session) => {
      const reply = await h2WebSocket(session, '/chat');
      try {
        assert.equal(reply.status, 502);
        assert.equal(reply.headers['x-switchyard-error'], 'SY_UPSTREAM_BAD_RESPONSE');
      } finally {
        reply.stream.destroy();
      }
    });
  });

  test('a closed backend port becomes 502 SY_UPSTREAM_CONNECT_REFUSED', { timeout: 10_000 }, async () => {
    const port = await closedPort();
    const proxy = await startTlsProxy([`ws://127.0.0.1:${port}`]);
    const session = await h2Connect(proxy.port);
    try {
      const reply = await h2WebSocket(session, '/chat');
      try {
        assert.equal(reply.status, 502);
        assert.equal(reply.headers['x-switchyard-error'], 'SY_UPSTREAM_CONNECT_REFUSED');
        const body = await reply.reader.body();
        assert.match(body.toString(), /^502 /);
      } finally {
        reply.stream.destroy();
      }
      await waitFor(() => proxy.proxy.registry.inFlight === 0, 1_000, 'nothing in flight');
    } finally {
      await closeSession(session);
      await proxy.close();
    }
  });
});

describe('routing: an extended CONNECT is routed as a WebSocket upgrade (a GET)', () => {
  let sockets: Origin;
  let getWs: Origin;
  let pages: Origin;
  let sy: Switchyard;
  let port = 0;

  function greetingOrigin(name: string): Promise<Origin> {
    return startOrigin({
      name,
      onWebSocket: (ws) => {
        ws.send(`hello from ${name}`);
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      },
    });
  }

  before(async () => {
    [sockets, getWs, pages] = await Promise.all([greetingOrigin('sockets'), greetingOrigin('get-ws'), greetingOrigin('pages')]);
    const yaml = [
      'listeners:',
      '  - address: 127.0.0.1:0',
      `    tls: { cert: ${JSON.stringify(certFile)}, key: ${JSON.stringify(keyFile)} }`,
      'sites:',
      '  - routes:',
      '      - match: { prefix: /chat, upgrade: websocket }',
      `        to: ${sockets.wsUrl}`,
      '      - match: { prefix: /chat }',
      `        to: ${pages.url}`,
      '      - match: { prefix: /get-ws, methods: [GET], upgrade: websocket }',
      `        to: ${getWs.wsUrl}`,
      '      - match: { prefix: /get-ws }',
      `        to: ${pages.url}`,
      '',
    ].join('\n');
    const { config } = loadConfigText(yaml, join(certificate!.dir, 'routing.yaml'), { env: {}, defaultSecret: 'ws-over-h2-test-secret-0123456789abcdef' });
    sy = await Switchyard.start(config, silentLogger());
    port = sy.addresses[0]!.port;
  }, { timeout: 10_000 });

  after(async () => {
    await sy.shutdown(0);
    await Promise.all([sockets.close(), getWs.close(), pages.close()]);
  }, { timeout: 10_000 });

  test('an `upgrade: websocket` route catches the extended CONNECT; a plain h2 GET on the same path does not', { timeout: 10_000 }, async () => {
    const session = await h2Connect(port);
    try {
      const ws = await openAccepted(session, '/chat/room');
      const greeting = await ws.reader.next();
      assert.equal(greeting.data.toString(), 'hello from sockets');
      assert.equal(await echo(ws, 'ping'), 'ping');
      assert.equal(sockets.handshakes.at(-1)?.url, '/chat/room');
      assert.equal(pages.handshakes.length, 0);
      await closeCleanly(ws);

      const page = session.request({ ':method': 'GET', ':path': '/chat/room', ':authority': `localhost:${port}`, ':scheme': 'https' });
      page.on('error', () => undefined);
      const [headers] = await responseOf(page);
      assert.equal(headers[':status'], 200);
      assert.equal(headers['x-origin'], 'pages');
      await readBody(page);
      assert.equal(sockets.requests.length, 0, 'the plain GET never reached the WebSocket origin');
    } finally {
      await closeSession(session);
    }
  });

  test('a `methods: [GET]` + `upgrade: websocket` route catches the extended CONNECT too', { timeout: 10_000 }, async () => {
    const session = await h2Connect(port);
    try {
      const ws = await openAccepted(session, '/get-ws/x');
      const greeting = await ws.reader.next();
      assert.equal(greeting.data.toString(), 'hello from get-ws');
      assert.equal(getWs.handshakes.at(-1)?.url, '/get-ws/x');
      assert.equal(getWs.handshakes.at(-1)?.method, 'GET');
      await closeCleanly(ws);
    } finally {
      await closeSession(session);
    }
  });
});

/** The response headers of a plain h2 request. */
function responseOf(stream: http2.ClientHttp2Stream): Promise<[ResponseHeaders]> {
  return withTimeout(new Promise<[ResponseHeaders]>((resolve, reject) => {
    stream.once('response', (headers: ResponseHeaders) => resolve([headers]));
    stream.once('close', () => reject(new Error('closed without a response')));
  }), 5_000, 'a response');
}

describe('resets and connection loss close the other side', () => {
  let origin: Origin;
  let proxy: TestProxy;
  const closes: number[] = [];

  before(async () => {
    origin = await startOrigin({
      onWebSocket: (ws) => {
        ws.on('message', (data, isBinary) => {
          if (!isBinary && String(data) === 'terminate') ws.terminate();
          else ws.send(data, { binary: isBinary });
        });
        ws.on('close', (code) => closes.push(code));
      },
    });
    proxy = await startTlsProxy([origin.wsUrl]);
  }, { timeout: 10_000 });

  after(async () => {
    await proxy.close();
    await origin.close();
  }, { timeout: 10_000 });

  test('a stream reset by the client (RST_STREAM CANCEL) closes the backend WebSocket within a second', { timeout: 10_000 }, async () => {
    const session = await h2Connect(proxy.port);
    try {
      const ws = await openAccepted(session);
      assert.equal(await echo(ws, 'before reset'), 'before reset');
      await waitFor(() => origin.sockets.size === 1, 1_000, 'the backend socket');
      const count = closes.length;
      const resetAt = Date.now();
      ws.stream.close(http2.constants.NGHTTP2_CANCEL);
      await waitFor(() => origin.sockets.size === 0 && closes.length > count, 1_000, 'the backend WebSocket to close');
      assert.ok(Date.now() - resetAt < 1_000);
      assert.equal(closes.at(-1), 1006, 'closed without a closing handshake');
      await waitFor(() => tunnelsOf(proxy) === 0, 1_000, 'the tunnel to be retired');
      // Other streams on the session are unaffected.
      const other = await openAccepted(session);
      assert.equal(await echo(other, 'still alive'), 'still alive');
      await closeCleanly(other);
    } finally {
      await closeSession(session);
    }
  });

  test('the backend terminating its socket ends or resets the client stream within a second', { timeout: 10_000 }, async () => {
    const session = await h2Connect(proxy.port);
    try {
      const ws = await openAccepted(session);
      assert.equal(await echo(ws, 'x'), 'x');
      const gone = streamEndedOrReset(ws.stream, 1_000, 'the client stream to end or reset after the backend left');
      ws.send(OP_TEXT, 'terminate');
      const how = await gone;
      // The backend's FIN arrives as END_STREAM (RFC 8441 §5: orderly TCP
      // closure maps to END_STREAM); a client answers by ending its side too.
      if (how === 'end') ws.stream.end();
      await streamClosed(ws.stream, 1_000, 'the stream to be closed, not left half-open');
      await waitFor(() => tunnelsOf(proxy) === 0, 1_000, 'the tunnel to be retired');
      // The session is unaffected.
      const other = await openAccepted(session);
      assert.equal(await echo(other, 'next'), 'next');
      await closeCleanly(other);
    } finally {
      await closeSession(session);
    }
  });

  test('a session destroyed by the client closes every backend socket of its streams', { timeout: 10_000 }, async () => {
    const session = await h2Connect(proxy.port);
    const keep = await h2Connect(proxy.port);
    try {
      const doomed = await Promise.all([openAccepted(session), openAccepted(session), openAccepted(session)]);
      const survivor = await openAccepted(keep);
      for (const ws of doomed) assert.equal(await echo(ws, 'hi'), 'hi');
      await waitFor(() => origin.sockets.size === 4, 1_000, 'four backend sockets');
      session.destroy();
      await waitFor(() => origin.sockets.size === 1, 1_000, 'the three backend sockets of the destroyed session to close');
      await waitFor(() => tunnelsOf(proxy) === 1, 1_000, 'only the other session\'s tunnel left');
      assert.equal(await echo(survivor, 'unaffected'), 'unaffected');
      await closeCleanly(survivor);
      await waitFor(() => tunnelsOf(proxy) === 0, 1_000, 'every tunnel retired');
    } finally {
      await closeSession(session);
      await closeSession(keep);
    }
  });
});

describe('flow control and backpressure', () => {
  test('a client that stops reading while the backend streams keeps memory bounded; everything arrives intact after', { timeout: 60_000 }, async (t) => {
    const MESSAGE = MiB;
    const COUNT = 128; // 128 MiB: far more than every buffer on the way together
    const base = randomBytes(MESSAGE);
    let sent = 0;
    const sentHash = createHash('sha256');
    const origin = await startOrigin({
      onWebSocket: (ws) => {
        ws.on('message', (data) => {
          if (String(data) !== 'stream') return;
          const pump = (): void => {
            if (ws.readyState !== WebSocket.OPEN) return;
            // The backend itself never buffers more than ~2 MiB.
            while (sent < COUNT && ws.bufferedAmount < MESSAGE) {
              const message = Buffer.from(base);
              message.writeUInt32BE(sent, 0);
              sentHash.update(message);
              ws.send(message, { binary: true });
              sent++;
            }
            if (sent < COUNT) setTimeout(pump, 2);
          };
          pump();
        });
      },
    });
    const proxy = await startTlsProxy([origin.wsUrl]);
    const session = await h2Connect(proxy.port);
    try {
      const ws = await openAccepted(session, '/stream');
      const receivedHash = createHash('sha256');
      let received = 0;
      let outOfOrder = 0;
      let badType = 0;
      const done = new Promise<void>((resolve) => {
        ws.reader.onMessage = (message) => {
          if (message.opcode !== OP_BINARY || message.data.length !== MESSAGE) badType++;
          else if (message.data.readUInt32BE(0) !== received) outOfOrder++;
          receivedHash.update(message.data);
          received++;
          if (received === COUNT) resolve();
        };
      });
      ws.stream.pause();
      const rssBefore = process.memoryUsage().rss;
      let rssPeak = rssBefore;
      ws.send(OP_TEXT, 'stream');
      const stalledAt = Date.now();
      while (Date.now() - stalledAt < 2_000) {
        await sleep(50);
        rssPeak = Math.max(rssPeak, process.memoryUsage().rss);
      }
      const sentWhilePaused = sent;
      const growth = rssPeak - rssBefore;
      t.diagnostic(`while the client read nothing for 2 s: backend sent ${sentWhilePaused} of ${COUNT} MiB, rss grew ${(growth / MiB).toFixed(1)} MiB; client got ${received} messages`);
      assert.ok(sentWhilePaused < COUNT / 2, `the backend was held back (sent ${sentWhilePaused} of ${COUNT} messages while the client read nothing)`);
      assert.ok(growth < 64 * MiB, `rss grew ${(growth / MiB).toFixed(1)} MiB while the client was not reading`);
      const resumedAt = Date.now();
      ws.stream.resume();
      await withTimeout(done, 45_000, `all ${COUNT} messages (got ${received})`);
      t.diagnostic(`the rest arrived in ${Date.now() - resumedAt} ms`);
      assert.equal(badType, 0, 'every message is a 1 MiB binary message');
      assert.equal(outOfOrder, 0, 'messages arrive in order');
      assert.equal(received, COUNT);
      assert.equal(receivedHash.digest('hex'), sentHash.digest('hex'), 'every byte arrived intact');
      assert.equal(ws.reader.errors.length, 0, ws.reader.errors.join('; '));
      ws.reader.onMessage = undefined;
      await closeCleanly(ws);
    } finally {
      await closeSession(session);
      await proxy.close();
      await origin.close();
    }
  });
});

describe('HTTP/1.1 WebSockets on the same TLS port', () => {
  test('a wss:// client over HTTP/1.1 works alongside WebSockets over h2', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startTlsProxy([origin.wsUrl]);
    const session = await h2Connect(proxy.port);
    const h1 = new WebSocket(`${proxy.wsUrl}/h1`, { ca: cert });
    try {
      const h2ws = await openAccepted(session, '/h2');
      await withTimeout(new Promise<void>((resolve, reject) => {
        h1.once('open', () => resolve());
        h1.once('error', reject);
      }), 5_000, 'the HTTP/1.1 WebSocket to open');
      const h1Echo = withTimeout(new Promise<string>((resolve) => h1.once('message', (data) => resolve(String(data)))), 3_000, 'the HTTP/1.1 echo');
      h1.send('over http/1.1');
      assert.equal(await echo(h2ws, 'over h2'), 'over h2');
      assert.equal(await h1Echo, 'over http/1.1');
      const versions = origin.handshakes.map((h) => [h.url, h.httpVersion]);
      assert.deepEqual(versions.sort(), [['/h1', '1.1'], ['/h2', '1.1']]);
      assert.equal(tunnelsOf(proxy), 2);
      await closeCleanly(h2ws);
      const closed = new Promise<number>((resolve) => h1.once('close', (code) => resolve(code)));
      h1.close(1000);
      assert.equal(await withTimeout(closed, 3_000, 'the HTTP/1.1 close'), 1000);
      await waitFor(() => tunnelsOf(proxy) === 0, 2_000, 'both tunnels retired');
    } finally {
      h1.terminate();
      await closeSession(session);
      await proxy.close();
      await origin.close();
    }
  });
});

describe('no leaks', () => {
  test('after 100 open/echo/close cycles over h2 no tunnel, request or connection is left and fds return to baseline', { timeout: 60_000 }, async (t) => {
    const origin = await startOrigin();
    const proxy = await startTlsProxy([origin.wsUrl]);
    try {
      // Warm up (lazy module and TLS state), then take the baseline.
      const warm = await h2Connect(proxy.port);
      await closeCleanly(await openAccepted(warm));
      await closeSession(warm);
      await waitFor(() => proxy.proxy.registry.connections.size === 0, 2_000, 'the warm-up connection to close');
      const baseline = openFdCount();
      const started = Date.now();
      for (let cycle = 0; cycle < 100; cycle++) {
        const session = await h2Connect(proxy.port);
        const ws = await openAccepted(session, `/cycle/${cycle}`);
        assert.equal(await echo(ws, `cycle ${cycle}`), `cycle ${cycle}`);
        if (cycle % 3 === 0) {
          // Abrupt: reset the stream.
          ws.stream.close(http2.constants.NGHTTP2_CANCEL);
        } else {
          await closeCleanly(ws);
        }
        if (cycle % 2 === 0) {
          // A second WebSocket on the same session before it closes.
          const second = await openAccepted(session, `/cycle/${cycle}/b`);
          assert.equal(await echo(second, 'b'), 'b');
          await closeCleanly(second);
        }
        if (cycle % 5 === 0) session.destroy();
        else await closeSession(session);
      }
      t.diagnostic(`100 cycles in ${Date.now() - started} ms; fds: baseline ${baseline}, right after ${openFdCount()}`);
      const { registry } = proxy.proxy;
      await waitFor(() => registry.tunnels.size === 0 && registry.inFlight === 0 && registry.connections.size === 0 && registry.sessions.size === 0, 5_000,
        `the registry to empty (tunnels ${registry.tunnels.size}, in flight ${registry.inFlight}, connections ${registry.connections.size}, sessions ${registry.sessions.size})`);
      await waitFor(() => origin.sockets.size === 0, 5_000, 'every backend WebSocket to close');
      await waitFor(() => openFdCount() <= baseline + 5, 10_000, `fd count to return to baseline ${baseline} (now ${openFdCount()})`);
      t.diagnostic(`fds settled at ${openFdCount()}`);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

// Regression: idle HTTP/2 sessions close after keep_alive, but a session whose
// only streams are quiet WebSockets is not idle (the tunnel's own timer rules).
describe('HTTP/2 session idleness', () => {
  test('a session with a quiet WebSocket stays open past keep_alive; an empty one closes', { timeout: 20_000 }, async () => {
    const origin = await startOrigin({ name: 'idle' });
    const proxy = await startProxy({ servers: [origin.url], tls: { cert, key }, timeouts: { keepAliveMs: 300 } });
    const busy = await h2Connect(proxy.port);
    const empty = await h2Connect(proxy.port);
    try {
      const ws = await openAccepted(busy, '/quiet');
      const emptyClosed = new Promise<void>((resolve) => empty.once('close', () => resolve()));
      await sleep(1_200);
      assert.ok(!busy.closed && !busy.destroyed, 'the session carrying a WebSocket is still open');
      // The quiet session still takes new streams.
      const stream = busy.request({ ':path': '/after-idle' });
      const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      stream.resume();
      assert.equal(headers[':status'], 200);
      await withTimeout(emptyClosed, 3_000, 'the empty session to close');
      ws.stream.close();
    } finally {
      busy.destroy();
      empty.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});
