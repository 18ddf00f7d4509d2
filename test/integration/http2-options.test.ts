/**
 * The HTTP/2 switches: listener `http2` (h2c by prior knowledge on a plain
 * port; ALPN without h2 on a TLS port), listener and route
 * `websocket_over_http2` (SETTINGS_ENABLE_CONNECT_PROTOCOL per connection and
 * 421 per route), upstream `http2` (h2 over ALPN and h2c to backends; WebSocket
 * handshakes stay HTTP/1.1), and the RST_STREAM codes a WebSocket over HTTP/2
 * ends with. Real servers on 127.0.0.1, configs from YAML.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { fetch as undiciFetch } from 'undici';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { selfSignedCertificate, type TestCertificate } from '../helpers/certs.js';
import { withTimeout } from '../helpers/cli.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { connectRaw, openFdCount, sleep, waitFor } from '../helpers/raw.js';
import { clientFrame } from '../helpers/websocket-frames.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_CONNECT_ERROR } = http2.constants;
const OP_TEXT = 0x1;
const OP_CLOSE = 0x8;

let certificate: TestCertificate | undefined;
let cert: Buffer = Buffer.alloc(0);
let key: Buffer = Buffer.alloc(0);

before(async () => {
  certificate = await selfSignedCertificate('switchyard-h2-options-');
  ({ cert, key } = certificate);
}, { timeout: 30_000 });

after(() => certificate?.remove());

// ---------------------------------------------------------------- proxy from YAML

/** Starts Switchyard from YAML lines (relative files resolve in the certificate's folder). */
async function startYaml(lines: readonly string[]): Promise<Switchyard> {
  const { config } = loadConfigText(`${lines.join('\n')}\n`, join(certificate!.dir, 'http2-options.yaml'), { env: {}, defaultSecret: 'http2-options-test-secret-0123456789abcdef' });
  return Switchyard.start(config, silentLogger());
}

/**
 * shutdown(0); should shutdown itself throw (a proxy bug), what is left is cut
 * through the registry and the runtime so the run still ends, and the error
 * is rethrown for the hook or test to report.
 */
async function stopProxy(sy: Switchyard | undefined): Promise<void> {
  if (!sy) return;
  try {
    await withTimeout(sy.shutdown(0), 5_000, 'the proxy to shut down');
  } catch (err) {
    sy.registry.destroyAll('shutdown');
    await sy.runtime.close();
    throw err;
  }
}

function portOf(sy: Switchyard, index = 0): number {
  return sy.addresses[index]!.port;
}

const tlsFiles = (): string => `tls: { cert: ${JSON.stringify(certificate!.certFile)}, key: ${JSON.stringify(certificate!.keyFile)} }`;

function registryEmpty(sy: Switchyard, ms = 5_000): Promise<void> {
  const { registry } = sy;
  return waitFor(() => registry.tunnels.size === 0 && registry.inFlight === 0 && registry.connections.size === 0 && registry.sessions.size === 0, ms,
    `the registry to empty (tunnels ${registry.tunnels.size}, in flight ${registry.inFlight}, connections ${registry.connections.size} `
    + `[${[...registry.connections].map((socket) => `${socket.remotePort}: ${socket.readyState}, read ${socket.bytesRead}, written ${socket.bytesWritten}`).join('; ')}], sessions ${registry.sessions.size})`);
}

// ---------------------------------------------------------------- clients

type ResponseHeaders = http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;

/** An h2 (or h2c, for http://) session once the server's first SETTINGS arrived. */
async function h2Session(url: string, options: http2.SecureClientSessionOptions = {}): Promise<{ session: http2.ClientHttp2Session; settings: http2.Settings }> {
  const session = http2.connect(url, options);
  session.on('error', () => undefined);
  try {
    const settings = await withTimeout(new Promise<http2.Settings>((resolve, reject) => {
      session.once('remoteSettings', resolve);
      session.once('error', reject);
      session.once('close', () => reject(new Error('the session closed before the server SETTINGS')));
    }), 5_000, `the server SETTINGS on ${url}`);
    return { session, settings };
  } catch (err) {
    session.destroy();
    throw err;
  }
}

function closeSession(session: http2.ClientHttp2Session | undefined): Promise<void> {
  if (!session || session.destroyed) return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => {
    session.once('close', () => resolve());
    session.destroy();
  }), 3_000, 'the client session to close');
}

interface Reply {
  readonly status: number;
  readonly statusMessage: string;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

function h2Get(session: http2.ClientHttp2Session, path: string, extra: http2.OutgoingHttpHeaders = {}): Promise<Reply> {
  return withTimeout(new Promise<Reply>((resolve, reject) => {
    const stream = session.request({ ':path': path, ...extra });
    let headers: ResponseHeaders | undefined;
    let body = '';
    stream.setEncoding('utf8');
    stream.on('response', (h: ResponseHeaders) => { headers = h; });
    stream.on('data', (chunk: string) => { body += chunk; });
    stream.on('end', () => (headers ? resolve({ status: Number(headers[':status']), statusMessage: '', headers, body }) : reject(new Error('no response headers'))));
    stream.on('error', reject);
  }), 5_000, `h2 GET ${path}`);
}

/** An HTTP/1.1 GET on a fresh connection (http or https by the URL); the request is destroyed after. */
function h1Get(url: string, options: https.RequestOptions = {}): Promise<Reply> {
  const get = url.startsWith('https:') ? https.get : http.get;
  let req: http.ClientRequest | undefined;
  return withTimeout(new Promise<Reply>((resolve, reject) => {
    req = get(url, { agent: false, ...options }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, statusMessage: res.statusMessage ?? '', headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  }), 5_000, `HTTP/1.1 GET ${url}`).finally(() => req?.destroy());
}

/** Opens an HTTP/1.1 WebSocket, sends `text` and returns the echo. */
async function wsEcho(url: string, text: string, options: ClientOptions = {}): Promise<string> {
  const ws = new WebSocket(url, options);
  try {
    await withTimeout(once(ws, 'open'), 5_000, `${url} to open`);
    const reply = withTimeout(once(ws, 'message'), 3_000, `the echo on ${url}`);
    ws.send(text);
    const [data] = (await reply) as [Buffer];
    return data.toString('utf8');
  } finally {
    ws.terminate();
  }
}

interface WsMessage {
  readonly opcode: number;
  readonly data: Buffer;
}

/** A WebSocket over an HTTP/2 stream (RFC 8441): masked frames out, unfragmented server frames in. */
class H2WebSocket {
  readonly messages: WsMessage[] = [];
  sawEnd = false;
  private pending = Buffer.alloc(0);

  constructor(readonly stream: http2.ClientHttp2Stream, readonly status: number, readonly headers: ResponseHeaders) {
    stream.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      for (;;) {
        const b1 = this.pending[1];
        if (b1 === undefined) return;
        const len7 = b1 & 0x7f;
        const headerLength = len7 === 126 ? 4 : len7 === 127 ? 10 : 2;
        if (this.pending.length < headerLength) return;
        const length = len7 === 126 ? this.pending.readUInt16BE(2) : len7 === 127 ? Number(this.pending.readBigUInt64BE(2)) : len7;
        if (this.pending.length < headerLength + length) return;
        this.messages.push({ opcode: this.pending[0]! & 0x0f, data: this.pending.subarray(headerLength, headerLength + length) });
        this.pending = this.pending.subarray(headerLength + length);
      }
    });
    stream.on('end', () => { this.sawEnd = true; });
  }

  send(opcode: number, payload: string | Buffer): void {
    this.stream.write(clientFrame(opcode, payload));
  }

  async next(ms = 3_000): Promise<WsMessage> {
    await waitFor(() => this.messages.length > 0, ms, 'a WebSocket message');
    return this.messages.shift()!;
  }

  async echo(text: string): Promise<string> {
    this.send(OP_TEXT, text);
    const reply = await this.next();
    assert.equal(reply.opcode, OP_TEXT, `a text echo of ${JSON.stringify(text)}`);
    return reply.data.toString('utf8');
  }

  /** Resolves with the stream's rstCode once it has closed. */
  closed(ms: number, what: string): Promise<number | undefined> {
    if (this.stream.closed && this.stream.destroyed) return Promise.resolve(this.stream.rstCode);
    return withTimeout(new Promise<number | undefined>((resolve) => this.stream.once('close', () => resolve(this.stream.rstCode))), ms, what);
  }
}

/** Sends an extended CONNECT (:protocol websocket) and resolves with whatever status comes back. */
async function h2WebSocket(session: http2.ClientHttp2Session, path: string, authority: string, scheme: 'http' | 'https'): Promise<H2WebSocket> {
  const stream = session.request({
    ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': scheme, ':path': path, ':authority': authority, 'sec-websocket-version': '13',
  });
  stream.on('error', () => undefined);
  try {
    const headers = await withTimeout(new Promise<ResponseHeaders>((resolve, reject) => {
      stream.once('response', resolve);
      stream.once('close', () => reject(new Error(`the CONNECT stream closed without a response (rst code ${stream.rstCode})`)));
    }), 5_000, `the response to CONNECT ${path}`);
    return new H2WebSocket(stream, Number(headers[':status']), headers);
  } catch (err) {
    stream.destroy();
    throw err;
  }
}

async function h2WebSocketAccepted(session: http2.ClientHttp2Session, path: string, authority: string, scheme: 'http' | 'https'): Promise<H2WebSocket> {
  const ws = await h2WebSocket(session, path, authority, scheme);
  if (ws.status !== 200) {
    ws.stream.destroy();
    assert.fail(`extended CONNECT ${path} answered ${ws.status} ${String(ws.headers['x-switchyard-error'] ?? '')}`);
  }
  return ws;
}

// ---------------------------------------------------------------- raw sockets

interface RawFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_DATA = 0x0;
const FRAME_HEADERS = 0x1;
const FRAME_SETTINGS = 0x4;
const FLAG_ACK = 0x1;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;

function h2Frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK for GET `path` over http: indexed :method GET and :scheme http, literal :path and :authority. */
function h2cGetBlock(path: string, authority: string): Buffer {
  const literal = (index: number, value: string): Buffer => Buffer.concat([Buffer.from([index, value.length]), Buffer.from(value, 'latin1')]);
  return Buffer.concat([Buffer.from([0x82, 0x86]), literal(4, path), literal(1, authority)]);
}

/** Collects the h2 frames the server sends on a raw socket. */
function collectFrames(socket: Socket): RawFrame[] {
  const frames: RawFrame[] = [];
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      frames.push({ type: pending[3]!, flags: pending[4]!, streamId: pending.readUInt32BE(5) & 0x7fffffff, payload: pending.subarray(9, 9 + length) });
      pending = pending.subarray(9 + length);
    }
  });
  return frames;
}

/** Writes `data` one byte per write (and per TCP segment: no Nagle, a pause between). */
async function writeByteByByte(socket: Socket, data: Buffer | string): Promise<void> {
  socket.setNoDelay(true);
  for (const byte of Buffer.from(data)) {
    socket.write(Buffer.from([byte]));
    await sleep(2);
  }
}

/** Everything received until the peer closes. */
function readUntilClose(socket: Socket, ms: number): Promise<string> {
  let text = '';
  socket.on('data', (chunk: Buffer) => { text += chunk.toString('latin1'); });
  return withTimeout(new Promise<string>((resolve) => socket.once('close', () => resolve(text))), ms, 'the server to close the connection').catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; got ${JSON.stringify(text)}`);
  });
}

// ================================================================= 1. h2c on a plain listener

describe('listener http2: true on a plain listener (h2c by prior knowledge)', () => {
  let origin: Origin;
  let sy: Switchyard;
  let port = 0;
  /** A plain listener of the same proxy without http2. */
  let plainPort = 0;

  before(async () => {
    origin = await startOrigin({ name: 'h2c-origin' });
    sy = await startYaml([
      'listeners:',
      '  - address: 127.0.0.1:0',
      '    http2: true',
      '  - address: 127.0.0.1:0',
      'sites:',
      '  - routes:',
      `      - to: ${origin.url}`,
      // Clients' idle keep-alive connections must not outlive the leak check.
      'timeouts: { keep_alive: 2s }',
    ]);
    port = portOf(sy, 0);
    plainPort = portOf(sy, 1);
  }, { timeout: 10_000 });

  after(async () => {
    try {
      await stopProxy(sy);
    } finally {
      await origin?.close();
    }
  }, { timeout: 10_000 });

  test('an h2c client gets proxied responses; the origin sees HTTP/1.1 with X-Forwarded-Proto http', { timeout: 10_000 }, async () => {
    const { session } = await h2Session(`http://127.0.0.1:${port}`);
    try {
      const reply = await h2Get(session, '/over-h2c?x=1');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-origin'], 'h2c-origin');
      assert.equal((JSON.parse(reply.body) as { url: string }).url, '/over-h2c?x=1');
      const seen = origin.requests.find((r) => r.url === '/over-h2c?x=1');
      assert.ok(seen, 'the origin got the request');
      assert.equal(seen.httpVersion, '1.1');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
    } finally {
      await closeSession(session);
    }
  });

  test('HTTP/1.1 clients (http.get and undici fetch) work on the same port', { timeout: 10_000 }, async () => {
    const reply = await h1Get(`http://127.0.0.1:${port}/over-h1`);
    assert.equal(reply.status, 200);
    assert.equal(reply.statusMessage, 'OK');
    assert.equal((JSON.parse(reply.body) as { url: string }).url, '/over-h1');
    const response = await withTimeout(undiciFetch(`http://127.0.0.1:${port}/over-fetch`, { signal: AbortSignal.timeout(5_000) }), 5_000, 'undici fetch');
    assert.equal(response.status, 200);
    assert.equal(((await response.json()) as { url: string }).url, '/over-fetch');
    assert.equal(origin.requests.find((r) => r.url === '/over-fetch')?.headers['x-forwarded-proto'], 'http');
  });

  test('an HTTP/1.1 WebSocket works on the same port', { timeout: 10_000 }, async () => {
    assert.equal(await wsEcho(`ws://127.0.0.1:${port}/h1-ws`, 'hello over h1'), 'hello over h1');
    assert.equal(origin.handshakes.at(-1)?.url, '/h1-ws');
  });

  test('an RFC 8441 WebSocket over h2c is advertised and echoes', { timeout: 10_000 }, async () => {
    const { session, settings } = await h2Session(`http://127.0.0.1:${port}`);
    try {
      assert.equal(settings.enableConnectProtocol, true, 'SETTINGS_ENABLE_CONNECT_PROTOCOL on h2c');
      const ws = await h2WebSocketAccepted(session, '/h2c-ws', `127.0.0.1:${port}`, 'http');
      assert.equal(await ws.echo('hello over h2c'), 'hello over h2c');
      assert.equal(origin.handshakes.at(-1)?.url, '/h2c-ws');
      assert.equal(origin.handshakes.at(-1)?.headers['x-forwarded-proto'], 'http');
      ws.stream.close();
    } finally {
      await closeSession(session);
    }
  });

  test('an HTTP/1.1 request written one byte at a time (a POST: its first byte matches the preface) is answered', { timeout: 10_000 }, async () => {
    const socket = await connectRaw(port);
    socket.on('error', () => undefined);
    try {
      const response = readUntilClose(socket, 5_000);
      await writeByteByByte(socket, 'POST /byte-by-byte HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello');
      const text = await response;
      assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(text, /"url":"\/byte-by-byte"/);
      assert.match(text, /"body":"hello"/);
    } finally {
      socket.destroy();
    }
  });

  test('the h2 preface written one byte at a time gets the server SETTINGS, and a raw GET on it is answered', { timeout: 10_000 }, async () => {
    const socket = await connectRaw(port);
    socket.on('error', () => undefined);
    const frames = collectFrames(socket);
    try {
      await writeByteByByte(socket, PREFACE);
      socket.write(h2Frame(FRAME_SETTINGS, 0, 0));
      await waitFor(() => frames.some((f) => f.type === FRAME_SETTINGS && (f.flags & FLAG_ACK) === 0), 3_000, 'the server SETTINGS frame');
      await waitFor(() => frames.some((f) => f.type === FRAME_SETTINGS && (f.flags & FLAG_ACK) !== 0), 3_000, 'the server to ACK our SETTINGS');
      socket.write(h2Frame(FRAME_SETTINGS, FLAG_ACK, 0));
      socket.write(h2Frame(FRAME_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, h2cGetBlock('/raw-h2c', `127.0.0.1:${port}`)));
      await waitFor(() => frames.some((f) => f.streamId === 1 && (f.type === FRAME_DATA || f.type === FRAME_HEADERS) && (f.flags & FLAG_END_STREAM) !== 0), 3_000, 'the end of the response on stream 1');
      assert.ok(frames.some((f) => f.type === FRAME_HEADERS && f.streamId === 1), 'a HEADERS frame answers stream 1');
      const body = Buffer.concat(frames.filter((f) => f.type === FRAME_DATA && f.streamId === 1).map((f) => f.payload)).toString();
      assert.equal((JSON.parse(body) as { url: string }).url, '/raw-h2c');
    } finally {
      socket.destroy();
    }
  });

  test('a listener without http2 does not speak h2c (no SETTINGS) and still serves HTTP/1.1 after', { timeout: 10_000 }, async () => {
    const session = http2.connect(`http://127.0.0.1:${plainPort}`);
    session.on('error', () => undefined);
    let gotSettings = false;
    session.on('remoteSettings', () => { gotSettings = true; });
    try {
      await withTimeout(new Promise<void>((resolve) => session.once('close', () => resolve())), 5_000, 'the h2c attempt on an HTTP/1.1-only listener to fail');
      assert.equal(gotSettings, false, 'no HTTP/2 SETTINGS from a listener without http2');
    } finally {
      session.destroy();
    }
    const reply = await h1Get(`http://127.0.0.1:${plainPort}/after-h2c-attempt`);
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body) as { url: string }).url, '/after-h2c-attempt');
  });

  test('100 mixed HTTP/1.1 and h2c connections: the registry empties and fds return to baseline', { timeout: 60_000 }, async (t) => {
    // Warm up both protocols (lazy state, the upstream keep-alive connection).
    const warm = await h2Session(`http://127.0.0.1:${port}`);
    await h2Get(warm.session, '/warm');
    await closeSession(warm.session);
    await h1Get(`http://127.0.0.1:${port}/warm`);
    // Earlier tests' clients (undici's fetch keeps its connections 4 s) may still hold one.
    await registryEmpty(sy, 15_000);
    const baseline = openFdCount();
    for (let i = 0; i < 100; i++) {
      switch (i % 4) {
        case 0: {
          const { session } = await h2Session(`http://127.0.0.1:${port}`);
          assert.equal((await h2Get(session, `/mixed/${i}`)).status, 200);
          await closeSession(session);
          break;
        }
        case 1:
          assert.equal((await h1Get(`http://127.0.0.1:${port}/mixed/${i}`)).status, 200);
          break;
        case 2: {
          // Abrupt: the session is destroyed with its stream still open.
          const { session } = await h2Session(`http://127.0.0.1:${port}`);
          session.request({ ':path': `/mixed/${i}` }).on('error', () => undefined);
          session.destroy();
          break;
        }
        default: {
          // Half a preface, then gone.
          const socket = await connectRaw(port);
          socket.on('error', () => undefined);
          socket.write('PR');
          await sleep(1);
          socket.destroy();
        }
      }
    }
    t.diagnostic(`fds: baseline ${baseline}, right after ${openFdCount()}`);
    await registryEmpty(sy);
    await waitFor(() => openFdCount() <= baseline + 5, 10_000, `the fd count to return to baseline ${baseline} (now ${openFdCount()})`);
  });
});

describe('h2c: a connection that sends nothing', () => {
  let origin: Origin;
  let sy: Switchyard;

  before(async () => {
    origin = await startOrigin();
    sy = await startYaml([
      'listeners:',
      '  - address: 127.0.0.1:0',
      '    http2: true',
      'sites:',
      '  - routes:',
      `      - to: ${origin.url}`,
      'timeouts: { header: 500ms }',
    ]);
  }, { timeout: 10_000 });

  after(async () => {
    try {
      await stopProxy(sy);
    } finally {
      await origin?.close();
    }
  }, { timeout: 10_000 });

  /** Milliseconds from connecting (and writing `first`) until the server closes the connection. */
  async function timeClose(first: string): Promise<number> {
    const socket = await connectRaw(portOf(sy));
    socket.on('error', () => undefined);
    try {
      const opened = Date.now();
      const closed = readUntilClose(socket, 4_000);
      if (first) socket.write(first);
      await closed;
      return Date.now() - opened;
    } finally {
      socket.destroy();
    }
  }

  test('is closed after timeouts.header (500ms); the listener serves on', { timeout: 10_000 }, async () => {
    const elapsed = await timeClose('');
    assert.ok(elapsed >= 400 && elapsed < 2_000, `a silent connection closed after ${elapsed} ms (expected about 500)`);
    const { session } = await h2Session(`http://127.0.0.1:${portOf(sy)}`);
    try {
      assert.equal((await h2Get(session, '/after-silence')).status, 200);
    } finally {
      await closeSession(session);
    }
  });

  test('one that stops inside the preface ("PRI * HT") is closed after timeouts.header too', { timeout: 10_000 }, async () => {
    const elapsed = await timeClose('PRI * HT');
    assert.ok(elapsed >= 400 && elapsed < 2_000, `a connection stopping inside the preface closed after ${elapsed} ms (expected about 500)`);
  });
});

// ================================================================= 2 and 3. TLS listener switches

describe('TLS listeners: websocket_over_http2 and http2 switches', () => {
  let origin: Origin;
  let sy: Switchyard;

  before(async () => {
    origin = await startOrigin({ name: 'tls-switches' });
    sy = await startYaml([
      'listeners:',
      '  - address: 127.0.0.1:0',
      `    ${tlsFiles()}`,
      '  - address: 127.0.0.1:0',
      `    ${tlsFiles()}`,
      '    websocket_over_http2: false',
      '  - address: 127.0.0.1:0',
      `    ${tlsFiles()}`,
      '    http2: false',
      'sites:',
      '  - routes:',
      `      - to: ${origin.url}`,
    ]);
  }, { timeout: 10_000 });

  after(async () => {
    try {
      await stopProxy(sy);
    } finally {
      await origin?.close();
    }
  }, { timeout: 10_000 });

  test('default (field absent): the server SETTINGS enable the CONNECT protocol', { timeout: 10_000 }, async () => {
    const { session, settings } = await h2Session(`https://127.0.0.1:${portOf(sy, 0)}`, { ca: cert });
    try {
      assert.equal(settings.enableConnectProtocol, true);
    } finally {
      await closeSession(session);
    }
  });

  test('websocket_over_http2: false: enableConnectProtocol is false, and h2 requests still work', { timeout: 10_000 }, async () => {
    const { session, settings } = await h2Session(`https://127.0.0.1:${portOf(sy, 1)}`, { ca: cert });
    try {
      assert.equal(settings.enableConnectProtocol, false);
      const reply = await h2Get(session, '/no-rfc8441');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-origin'], 'tls-switches');
    } finally {
      await closeSession(session);
    }
  });

  test('http2: false: ALPN offered h2 and http/1.1 picks http/1.1 (h2 on the default listener)', { timeout: 10_000 }, async () => {
    const alpn = (port: number): Promise<string | false | null | undefined> => withTimeout(new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, ca: cert, ALPNProtocols: ['h2', 'http/1.1'] }, () => {
        resolve(socket.alpnProtocol);
        socket.destroy();
      });
      socket.on('error', reject);
    }), 5_000, 'the TLS handshake');
    assert.equal(await alpn(portOf(sy, 0)), 'h2', 'control: the default TLS listener picks h2');
    assert.equal(await alpn(portOf(sy, 2)), 'http/1.1');
  });

  test('http2: false: https requests and wss WebSockets work', { timeout: 10_000 }, async () => {
    const port = portOf(sy, 2);
    const reply = await h1Get(`https://127.0.0.1:${port}/https-h1`, { ca: cert });
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body) as { url: string }).url, '/https-h1');
    assert.equal(origin.requests.find((r) => r.url === '/https-h1')?.headers['x-forwarded-proto'], 'https');
    assert.equal(await wsEcho(`wss://127.0.0.1:${port}/wss-h1`, 'over wss', { ca: cert }), 'over wss');
  });
});

// ================================================================= 4. route websocket_over_http2

describe('route websocket_over_http2: false', () => {
  let origin: Origin;
  let sy: Switchyard;
  let port = 0;

  before(async () => {
    origin = await startOrigin({ name: 'sni-sites' });
    sy = await startYaml([
      'listeners:',
      '  - address: 127.0.0.1:0',
      `    ${tlsFiles()}`,
      'sites:',
      '  - name: a',
      '    hosts: [a.test]',
      '    routes:',
      `      - to: ${origin.url}`,
      '        websocket_over_http2: false',
      '  - name: b',
      '    hosts: [b.test]',
      '    routes:',
      '      - match: { prefix: /off }',
      `        to: ${origin.url}`,
      '        websocket_over_http2: false',
      '      - match: { prefix: /on }',
      `        to: ${origin.url}`,
    ]);
    port = portOf(sy);
  }, { timeout: 10_000 });

  after(async () => {
    try {
      await stopProxy(sy);
    } finally {
      await origin?.close();
    }
  }, { timeout: 10_000 });

  /** The default certificate is for localhost: keep the chain check, skip the name check. */
  const sni = (servername: string): http2.SecureClientSessionOptions => ({ ca: cert, servername, checkServerIdentity: () => undefined });

  test('SNI a.test (every route off) gets enableConnectProtocol false; SNI b.test gets true', { timeout: 10_000 }, async () => {
    const a = await h2Session(`https://127.0.0.1:${port}`, sni('a.test'));
    const b = await h2Session(`https://127.0.0.1:${port}`, sni('b.test'));
    try {
      assert.equal(a.settings.enableConnectProtocol, false, 'SNI a.test');
      assert.equal(b.settings.enableConnectProtocol, true, 'SNI b.test');
      // Plain h2 requests to a.test are unaffected.
      const reply = await h2Get(a.session, '/page', { ':authority': 'a.test' });
      assert.equal(reply.status, 200);
    } finally {
      await closeSession(a.session);
      await closeSession(b.session);
    }
  });

  test('a.test: WebSockets over HTTP/1.1 (wss) still work', { timeout: 10_000 }, async () => {
    const options: ClientOptions & tls.ConnectionOptions = { rejectUnauthorized: false, servername: 'a.test', headers: { Host: 'a.test' } };
    const echoed = await wsEcho(`wss://127.0.0.1:${port}/a-ws`, 'a over h1', options);
    assert.equal(echoed, 'a over h1');
    assert.equal(origin.handshakes.at(-1)?.url, '/a-ws');
  });

  test('b.test: CONNECT to /off gets 421 SY_HTTP2_WEBSOCKET_OFF; /on echoes', { timeout: 10_000 }, async () => {
    const { session } = await h2Session(`https://127.0.0.1:${port}`, sni('b.test'));
    try {
      const handshakesBefore = origin.handshakes.length;
      const off = await h2WebSocket(session, '/off/x', 'b.test', 'https');
      assert.equal(off.status, 421);
      assert.equal(off.headers['x-switchyard-error'], 'SY_HTTP2_WEBSOCKET_OFF');
      off.stream.destroy();
      assert.equal(origin.handshakes.length, handshakesBefore, 'the refused CONNECT never reached the backend');
      const on = await h2WebSocketAccepted(session, '/on/x', 'b.test', 'https');
      assert.equal(await on.echo('b on'), 'b on');
      assert.equal(origin.handshakes.at(-1)?.url, '/on/x');
      on.stream.close();
    } finally {
      await closeSession(session);
    }
  });
});

// ================================================================= 5. upstream http2

interface SeenRequest {
  readonly httpVersion: string;
  readonly url: string;
  /** Which HTTP/2 session carried it (0: HTTP/1.1). */
  readonly session: number;
}

interface H2Origin {
  readonly url: string;
  readonly seen: SeenRequest[];
  /** httpVersion of each WebSocket handshake. */
  readonly upgrades: string[];
  sessions: number;
  maxHeld: number;
  close(): Promise<void>;
}

const HOLD_UNTIL = 20;

/**
 * A node:http2 origin: TLS with allowHTTP1 (and WebSockets over HTTP/1.1), or
 * plain h2c without HTTP/1.1. /hold/ requests are answered once HOLD_UNTIL are
 * waiting at once (or after 2 s); /pingpong echoes each body chunk as it
 * arrives; anything else gets a small JSON answer.
 */
async function startH2Origin(secure: boolean): Promise<H2Origin> {
  const sessionIds = new WeakMap<http2.Http2Session, number>();
  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<Socket>();
  let held: (() => void)[] = [];
  const release = (): void => {
    const now = held;
    held = [];
    for (const respond of now) respond();
  };
  const origin: H2Origin = { url: '', seen: [], upgrades: [], sessions: 0, maxHeld: 0, close: async () => undefined };
  const handler = (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse): void => {
    const session = (req.stream as http2.ServerHttp2Stream | undefined)?.session;
    const url = req.url;
    origin.seen.push({ httpVersion: req.httpVersion, url, session: session ? (sessionIds.get(session) ?? -1) : 0 });
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-origin': 'h2-origin', 'x-custom': 'yes' });
      res.end(JSON.stringify({ url, httpVersion: req.httpVersion }));
    };
    if (url.includes('/pingpong')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'x-origin': 'h2-origin' });
      req.on('data', (chunk: Buffer) => res.write(`echo:${chunk.toString()};`));
      req.on('end', () => res.end('done'));
    } else if (url.includes('/hold/')) {
      req.resume();
      held.push(answer);
      origin.maxHeld = Math.max(origin.maxHeld, held.length);
      if (held.length >= HOLD_UNTIL) release();
      else setTimeout(release, 2_000).unref();
    } else {
      req.resume();
      req.on('end', answer);
    }
  };
  const server = secure ? http2.createSecureServer({ cert, key, allowHTTP1: true }, handler) : http2.createServer(handler);
  server.on('session', (session: http2.ServerHttp2Session) => {
    origin.sessions++;
    sessionIds.set(session, origin.sessions);
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
    session.on('error', () => undefined);
  });
  server.on(secure ? 'secureConnection' : 'connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    origin.upgrades.push(req.httpVersion);
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => ws.terminate());
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  Object.assign(origin, {
    url: `${secure ? 'https' : 'http'}://127.0.0.1:${port}`,
    close: async () => {
      release();
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      for (const session of sessions) session.destroy();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  return origin;
}

/**
 * POSTs a chunked body one chunk at a time to a /pingpong origin, each chunk
 * only after the echo of the one before came back: request and response
 * bodies both stream, and the response head arrives before the body ends.
 */
async function pingPong(url: string): Promise<void> {
  const req = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'text/plain' } });
  req.on('error', () => undefined);
  try {
    const response = withTimeout(once(req, 'response'), 5_000, 'the response head while the request body is still open');
    req.write('chunk0');
    const [res] = (await response) as [IncomingMessage];
    assert.equal(res.statusCode, 200);
    assert.equal(res.statusMessage, 'OK');
    assert.equal(res.headers['x-origin'], 'h2-origin');
    let received = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => { received += chunk; });
    for (let i = 0; i < 4; i++) {
      if (i > 0) req.write(`chunk${i}`);
      await waitFor(() => received.includes(`echo:chunk${i};`), 3_000, `the echo of chunk ${i} while the request is still open (got ${JSON.stringify(received)})`);
    }
    const ended = withTimeout(once(res, 'end'), 3_000, 'the response end');
    req.end();
    await ended;
    assert.equal(received, 'echo:chunk0;echo:chunk1;echo:chunk2;echo:chunk3;done');
  } finally {
    req.destroy();
  }
}

describe('upstream http2', () => {
  let tlsOrigin: H2Origin;
  let h2cOrigin: H2Origin;
  let sy: Switchyard;
  let base = '';

  before(async () => {
    [tlsOrigin, h2cOrigin] = await Promise.all([startH2Origin(true), startH2Origin(false)]);
    const ca = JSON.stringify(certificate!.certFile);
    sy = await startYaml([
      'listeners:',
      '  - address: 127.0.0.1:0',
      'sites:',
      '  - routes:',
      '      - match: { prefix: /h2/ }',
      '        to: h2tls',
      '      - match: { prefix: /h1/ }',
      '        to: h1tls',
      '      - match: { prefix: /h2c/ }',
      '        to: h2c',
      'upstreams:',
      `  h2tls: { servers: [${tlsOrigin.url}], http2: true, tls: { ca: ${ca} } }`,
      `  h1tls: { servers: [${tlsOrigin.url}], tls: { ca: ${ca} } }`,
      `  h2c: { servers: [${h2cOrigin.url}], http2: true }`,
    ]);
    base = `http://127.0.0.1:${portOf(sy)}`;
  }, { timeout: 10_000 });

  after(async () => {
    try {
      await stopProxy(sy);
    } finally {
      await Promise.all([tlsOrigin?.close(), h2cOrigin?.close()]);
    }
  }, { timeout: 10_000 });

  test('https upstream with http2: the origin sees HTTP/2; the HTTP/1.1 client gets 200 OK and the origin headers', { timeout: 10_000 }, async () => {
    const reply = await h1Get(`${base}/h2/plain`);
    assert.equal(reply.status, 200);
    assert.equal(reply.statusMessage, 'OK');
    assert.equal(reply.headers['x-origin'], 'h2-origin');
    assert.equal(reply.headers['x-custom'], 'yes');
    assert.equal(reply.headers['content-type'], 'application/json');
    assert.equal((JSON.parse(reply.body) as { httpVersion: string }).httpVersion, '2.0');
    assert.equal(tlsOrigin.seen.find((r) => r.url === '/h2/plain')?.httpVersion, '2.0');
  });

  test('20 concurrent requests go over one upstream HTTP/2 session, all in flight at once', { timeout: 15_000 }, async (t) => {
    // One request first, so the pool knows the server picked h2.
    assert.equal((await h1Get(`${base}/h2/warm`)).status, 200);
    const sessionsBefore = tlsOrigin.sessions;
    const replies = await Promise.all(Array.from({ length: HOLD_UNTIL }, (_, i) => h1Get(`${base}/h2/hold/${i}`)));
    assert.deepEqual(replies.map((r) => r.status), Array.from({ length: HOLD_UNTIL }, () => 200));
    const held = tlsOrigin.seen.filter((r) => r.url.startsWith('/h2/hold/'));
    t.diagnostic(`sessions before ${sessionsBefore}, after ${tlsOrigin.sessions}; most requests waiting at once ${tlsOrigin.maxHeld}`);
    assert.equal(held.length, HOLD_UNTIL);
    assert.deepEqual([...new Set(held.map((r) => r.httpVersion))], ['2.0']);
    assert.equal(new Set(held.map((r) => r.session)).size, 1, `one session carried them all (sessions: ${[...new Set(held.map((r) => r.session))].join(', ')})`);
    assert.equal(tlsOrigin.sessions, sessionsBefore, 'no new upstream session was opened');
    assert.equal(tlsOrigin.maxHeld, HOLD_UNTIL, 'all 20 were in flight at the origin at once');
  });

  test('request and response bodies stream through an HTTP/2 upstream (chunk by chunk ping-pong)', { timeout: 15_000 }, async () => {
    await pingPong(`${base}/h2/pingpong`);
    assert.equal(tlsOrigin.seen.find((r) => r.url === '/h2/pingpong')?.httpVersion, '2.0');
  });

  test('control: the same ping-pong through the HTTP/1.1 upstream of the same origin', { timeout: 15_000 }, async () => {
    await pingPong(`${base}/h1/pingpong`);
    assert.equal(tlsOrigin.seen.find((r) => r.url === '/h1/pingpong')?.httpVersion, '1.1');
  });

  test('the same https origin without upstream http2 gets HTTP/1.1', { timeout: 10_000 }, async () => {
    const reply = await h1Get(`${base}/h1/plain`);
    assert.equal(reply.status, 200);
    assert.equal(reply.statusMessage, 'OK');
    assert.equal(tlsOrigin.seen.find((r) => r.url === '/h1/plain')?.httpVersion, '1.1');
  });

  test('an h2c upstream (http:// URL, http2: true) gets HTTP/2 requests', { timeout: 10_000 }, async () => {
    const reply = await h1Get(`${base}/h2c/plain`);
    assert.equal(reply.status, 200);
    assert.equal(reply.statusMessage, 'OK');
    assert.equal(reply.headers['x-origin'], 'h2-origin');
    assert.equal(h2cOrigin.seen.find((r) => r.url === '/h2c/plain')?.httpVersion, '2.0');
  });

  test('h2c upstream: 20 concurrent requests go over one session, all in flight at once', { timeout: 15_000 }, async () => {
    assert.equal((await h1Get(`${base}/h2c/warm`)).status, 200);
    const sessionsBefore = h2cOrigin.sessions;
    h2cOrigin.maxHeld = 0;
    const replies = await Promise.all(Array.from({ length: HOLD_UNTIL }, (_, i) => h1Get(`${base}/h2c/hold/${i}`)));
    assert.deepEqual(replies.map((r) => r.status), Array.from({ length: HOLD_UNTIL }, () => 200));
    const held = h2cOrigin.seen.filter((r) => r.url.startsWith('/h2c/hold/'));
    assert.equal(new Set(held.map((r) => r.session)).size, 1, `one session carried them all (sessions: ${[...new Set(held.map((r) => r.session))].join(', ')})`);
    assert.equal(h2cOrigin.sessions, sessionsBefore, 'no new upstream session was opened');
    assert.equal(h2cOrigin.maxHeld, HOLD_UNTIL, 'all 20 were in flight at the origin at once');
  });

  test('h2c upstream: request and response bodies stream (ping-pong)', { timeout: 15_000 }, async () => {
    await pingPong(`${base}/h2c/pingpong`);
    assert.equal(h2cOrigin.seen.find((r) => r.url === '/h2c/pingpong')?.httpVersion, '2.0');
  });

  test('a WebSocket through an upstream with http2 reaches the backend as an HTTP/1.1 upgrade and echoes', { timeout: 10_000 }, async () => {
    const upgradesBefore = tlsOrigin.upgrades.length;
    assert.equal(await wsEcho(`ws://127.0.0.1:${portOf(sy)}/h2/ws`, 'ws via h2 upstream'), 'ws via h2 upstream');
    assert.deepEqual(tlsOrigin.upgrades.slice(upgradesBefore), ['1.1']);
  });
});

// ================================================================= 6. RST_STREAM codes

interface BackendSocket {
  readonly url: string;
  readonly raw: Socket;
  errorCode: string | undefined;
  /** The proxy's FIN arrived. */
  ended: boolean;
  closed: boolean;
}

describe('WebSockets over HTTP/2: RST_STREAM codes', () => {
  let origin: Origin;
  let sy: Switchyard;
  let port = 0;
  const backends: BackendSocket[] = [];

  before(async () => {
    origin = await startOrigin({
      name: 'rst-codes',
      onWebSocket: (ws, req) => {
        const backend: BackendSocket = { url: req.url ?? '', raw: req.socket, errorCode: undefined, ended: false, closed: false };
        backends.push(backend);
        backend.raw.on('error', (err: NodeJS.ErrnoException) => { backend.errorCode ??= err.code ?? err.message; });
        backend.raw.on('end', () => { backend.ended = true; });
        backend.raw.on('close', () => { backend.closed = true; });
        ws.on('message', (data, isBinary) => {
          const text = String(data);
          if (text === 'reset') backend.raw.resetAndDestroy();
          else if (text === 'bye') {
            ws.close(1000, 'bye');
            backend.raw.end();
          } else ws.send(data, { binary: isBinary });
        });
      },
    });
    sy = await startYaml([
      'listeners:',
      '  - address: 127.0.0.1:0',
      `    ${tlsFiles()}`,
      'sites:',
      '  - routes:',
      '      - match: { prefix: /idle }',
      `        to: ${origin.wsUrl}`,
      '        timeouts: { tunnel_idle: 300ms }',
      `      - to: ${origin.wsUrl}`,
    ]);
    port = portOf(sy);
  }, { timeout: 10_000 });

  after(async () => {
    try {
      await stopProxy(sy);
    } finally {
      await origin?.close();
    }
  }, { timeout: 10_000 });

  async function open(path: string): Promise<{ session: http2.ClientHttp2Session; ws: H2WebSocket; backend: BackendSocket }> {
    const { session } = await h2Session(`https://127.0.0.1:${port}`, { ca: cert });
    try {
      const ws = await h2WebSocketAccepted(session, path, `localhost:${port}`, 'https');
      assert.equal(await ws.echo(`hello ${path}`), `hello ${path}`);
      const backend = backends.find((b) => b.url === path);
      assert.ok(backend, `the backend socket of ${path}`);
      return { session, ws, backend };
    } catch (err) {
      session.destroy();
      throw err;
    }
  }

  test('a backend TCP reset resets the client stream with CONNECT_ERROR', { timeout: 10_000 }, async () => {
    const { session, ws } = await open('/reset');
    try {
      ws.send(OP_TEXT, 'reset');
      const rstCode = await ws.closed(3_000, 'the client stream to close after the backend reset');
      assert.equal(rstCode, NGHTTP2_CONNECT_ERROR, `rstCode ${rstCode}, expected NGHTTP2_CONNECT_ERROR (${NGHTTP2_CONNECT_ERROR})`);
      assert.equal(ws.sawEnd, false, 'no END_STREAM before the reset');
      await waitFor(() => sy.registry.tunnels.size === 0, 2_000, 'the tunnel to be retired');
    } finally {
      await closeSession(session);
    }
  });

  test('the tunnel idle timeout (route tunnel_idle 300ms) resets the client stream with CANCEL', { timeout: 10_000 }, async () => {
    const { session, ws } = await open('/idle');
    try {
      const quietFrom = Date.now();
      const rstCode = await ws.closed(3_000, 'the idle tunnel to be closed');
      const after = Date.now() - quietFrom;
      assert.equal(rstCode, NGHTTP2_CANCEL, `rstCode ${rstCode}, expected NGHTTP2_CANCEL (${NGHTTP2_CANCEL})`);
      assert.ok(after >= 200 && after < 2_000, `closed after ${after} ms of quiet (tunnel_idle 300ms)`);
    } finally {
      await closeSession(session);
    }
  });

  test('a client RST_STREAM (without END_STREAM) reaches the backend as a TCP reset (ECONNRESET), not a FIN', { timeout: 10_000 }, async () => {
    const { session, ws, backend } = await open('/client-cancel');
    try {
      // Node's stream.close(code) sends END_STREAM first and RST_STREAM later (a
      // FIN the proxy rightly passes on); destroying the stream sends RST_STREAM alone.
      ws.stream.destroy(new Error('the client gives up'));
      await waitFor(() => backend.closed, 3_000, 'the backend socket to close');
      assert.equal(backend.errorCode, 'ECONNRESET', `the backend socket's error: ${String(backend.errorCode)} (FIN seen: ${backend.ended})`);
      assert.equal(backend.ended, false, 'no clean end (FIN) before the reset');
    } finally {
      await closeSession(session);
    }
  });

  test('a backend that closes cleanly (close frame, then FIN) ends the client stream without an error code', { timeout: 10_000 }, async () => {
    const { session, ws } = await open('/clean');
    try {
      ws.send(OP_TEXT, 'bye');
      const close = await ws.next();
      assert.equal(close.opcode, OP_CLOSE);
      assert.equal(close.data.readUInt16BE(0), 1000);
      assert.equal(close.data.subarray(2).toString(), 'bye');
      await waitFor(() => ws.sawEnd || ws.stream.destroyed, 3_000, 'the client stream to end');
      assert.equal(ws.sawEnd, true, `END_STREAM, not a reset (rstCode ${ws.stream.rstCode})`);
      ws.stream.end();
      const rstCode = await ws.closed(3_000, 'the stream to close after both ends');
      assert.equal(rstCode, NGHTTP2_NO_ERROR, `rstCode ${rstCode}, expected NGHTTP2_NO_ERROR`);
    } finally {
      await closeSession(session);
    }
  });
});
