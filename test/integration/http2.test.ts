/**
 * HTTP/2 on TLS listeners: ALPN picks h2 or HTTP/1.1 on one port, h2 requests are
 * proxied to real HTTP/1.1 origins (header mapping, streaming both ways, flow
 * control, errors, resets), GOAWAY on shutdown, garbage on an h2 connection, and
 * no descriptor leaks. Clients: node:http2 (and raw TLS sockets with ALPN h2 for
 * what node:http2 would not send), https, undici, ws.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { Agent, request as undiciRequest } from 'undici';
import { WebSocket } from 'ws';
import { closedPort, startOrigin } from '../helpers/origins.js';
import { selfSignedCertificate, type TestCertificate } from '../helpers/certs.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { openFdCount, sleep, waitFor } from '../helpers/raw.js';
import { withTimeout } from '../helpers/cli.js';

// ---------------------------------------------------------------- certificate

let certificate: TestCertificate | undefined;
let cert: Buffer = Buffer.alloc(0);
let key: Buffer = Buffer.alloc(0);

before(async () => {
  certificate = await selfSignedCertificate('switchyard-h2-');
  ({ cert, key } = certificate);
});

after(() => certificate?.remove());

function startTlsProxy(input: Omit<Parameters<typeof startProxy>[0], 'tls'>): Promise<TestProxy> {
  return startProxy({ ...input, tls: { cert, key } });
}

// ---------------------------------------------------------------- helpers

/** An h2 session to the proxy, trusting the test certificate; resolves once connected. */
async function h2Connect(proxy: TestProxy): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(proxy.url, { ca: cert });
  // Errors surface on streams (or as a rejected connect); the session must not throw.
  const connectError = new Promise<never>((_resolve, reject) => session.once('error', reject));
  session.on('error', () => undefined);
  await withTimeout(Promise.race([new Promise<void>((resolve) => session.once('connect', () => resolve())), connectError]), 5_000, 'h2 session to connect');
  return session;
}

type ResponseHeaders = http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader;

interface H2Reply {
  readonly status: number;
  readonly headers: ResponseHeaders;
  readonly body: Buffer;
}

/** One complete h2 exchange: headers (and an optional body, which makes the stream carry DATA). */
function h2Request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string | Buffer, ms = 5_000): Promise<H2Reply> {
  const what = `h2 ${String(headers[':method'] ?? 'GET')} ${String(headers[':path'] ?? '/')}`;
  return withTimeout(new Promise<H2Reply>((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let response: ResponseHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => { response = h; });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      if (response) resolve({ status: Number(response[':status']), headers: response, body: Buffer.concat(chunks) });
      else reject(new Error(`${what}: stream ended without a response`));
    });
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  }), ms, what);
}

interface PlainOrigin {
  readonly url: string;
  readonly server: http.Server;
  close(): Promise<void>;
}

/** An HTTP/1.1 origin whose handler sees the request as it streams in (startOrigin reads the whole body first). */
async function startStreamingOrigin(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<PlainOrigin> {
  const server = http.createServer(handler);
  server.on('connection', (socket: Socket) => socket.on('error', () => undefined));
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function registryIdle(proxy: TestProxy, ms = 2_000): Promise<void> {
  const registry = proxy.proxy.registry;
  return waitFor(() => registry.inFlight === 0 && registry.tunnels.size === 0, ms, `the registry to be idle (inFlight ${registry.inFlight})`);
}

// ---------------------------------------------------------------- raw h2 frames

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME = { DATA: 0x0, HEADERS: 0x1, RST_STREAM: 0x3, SETTINGS: 0x4, GOAWAY: 0x7 } as const;

function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0), declaredLength = payload.length): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(declaredLength, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** A HPACK block for GET `path` (literal fields without indexing; no Huffman). */
function getHeaderBlock(path: string, authority: string): Buffer {
  const literal = (index: number, value: string): Buffer => Buffer.concat([Buffer.from([index, value.length]), Buffer.from(value, 'latin1')]);
  // 0x82 :method GET, 0x87 :scheme https; :path (static index 4), :authority (1).
  return Buffer.concat([Buffer.from([0x82, 0x87]), literal(4, path), literal(1, authority)]);
}

interface RawFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

interface RawH2 {
  readonly socket: tls.TLSSocket;
  readonly frames: RawFrame[];
  readonly closed: Promise<void>;
  isClosed(): boolean;
}

/** A TLS connection that negotiated h2 and speaks raw frames. */
async function rawH2(port: number): Promise<RawH2> {
  const socket = tls.connect({ host: '127.0.0.1', port, ca: cert, ALPNProtocols: ['h2'] });
  socket.on('error', () => undefined);
  const frames: RawFrame[] = [];
  let pending = Buffer.alloc(0);
  let isClosed = false;
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      frames.push({ type: pending[3]!, flags: pending[4]!, streamId: pending.readUInt32BE(5) & 0x7fffffff, payload: pending.subarray(9, 9 + length) });
      pending = pending.subarray(9 + length);
    }
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    isClosed = true;
    resolve();
  }));
  await withTimeout(new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', () => resolve());
    socket.once('error', reject);
  }), 5_000, 'raw TLS connection');
  assert.equal(socket.alpnProtocol, 'h2', 'the raw connection negotiated h2');
  return { socket, frames, closed, isClosed: () => isClosed };
}

// ---------------------------------------------------------------- ALPN

describe('ALPN: one TLS port, two protocols', () => {
  test('an h2 client gets HTTP/2, https.get and undici get HTTP/1.1, and wss works on the same port', { timeout: 15_000 }, async () => {
    const origin = await startOrigin({ name: 'alpn' });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    const agent = new Agent({ connect: { ca: cert } });
    let session: http2.ClientHttp2Session | undefined;
    let ws: WebSocket | undefined;
    try {
      session = await h2Connect(proxy);
      assert.equal(session.alpnProtocol, 'h2');
      const h2 = await h2Request(session, { ':path': '/over-h2' });
      assert.equal(h2.status, 200);
      assert.equal(h2.headers['x-origin'], 'alpn');
      assert.equal((JSON.parse(h2.body.toString()) as { url: string }).url, '/over-h2');
      assert.equal(origin.requests[0]?.url, '/over-h2');
      assert.equal(origin.requests[0]?.httpVersion, '1.1', 'the origin is spoken to in HTTP/1.1');
      assert.equal(origin.requests[0]?.headers.via, '2 switchyard');

      // https.get offers no ALPN at all: the server falls back to HTTP/1.1.
      const h1 = await withTimeout(new Promise<{ version: string; alpn: string | false | null; status: number; body: string }>((resolve, reject) => {
        const req = https.get({ host: '127.0.0.1', port: proxy.port, path: '/over-https-get', ca: cert, agent: false }, (res) => {
          let body = '';
          res.setEncoding('utf8').on('data', (text: string) => { body += text; });
          res.on('end', () => resolve({ version: res.httpVersion, alpn: (res.socket as tls.TLSSocket).alpnProtocol, status: res.statusCode ?? 0, body }));
          res.on('error', reject);
        });
        req.on('error', reject);
      }), 5_000, 'https.get');
      assert.equal(h1.status, 200);
      assert.equal(h1.version, '1.1');
      assert.notEqual(h1.alpn, 'h2');
      assert.equal((JSON.parse(h1.body) as { url: string }).url, '/over-https-get');
      assert.equal(origin.requests[1]?.headers.via, '1.1 switchyard');

      // undici offers ALPN "http/1.1".
      const viaUndici = await undiciRequest(`${proxy.url}/over-undici`, { dispatcher: agent, headersTimeout: 5_000, bodyTimeout: 5_000 });
      const undiciBody = await viaUndici.body.text();
      assert.equal(viaUndici.statusCode, 200);
      assert.equal((JSON.parse(undiciBody) as { url: string }).url, '/over-undici');
      assert.equal(origin.requests[2]?.headers.via, '1.1 switchyard');

      // WebSocket over HTTP/1.1 on the same TLS port.
      const socket = new WebSocket(`${proxy.wsUrl}/over-wss`, { ca: cert, handshakeTimeout: 5_000 });
      ws = socket;
      const messages: string[] = [];
      socket.on('message', (data) => messages.push(data.toString()));
      socket.on('error', () => undefined);
      await withTimeout(new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
        socket.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
      }), 5_000, 'wss to open');
      socket.send('ping over wss');
      await waitFor(() => messages.includes('ping over wss'), 3_000, 'the echo over wss');
      assert.equal(origin.handshakes[0]?.url, '/over-wss');
      assert.equal(origin.handshakes[0]?.headers['x-forwarded-proto'], 'https');
      // The h2 session was untouched by the HTTP/1.1 traffic next to it.
      assert.equal((await h2Request(session, { ':path': '/again' })).status, 200);
    } finally {
      ws?.terminate();
      session?.destroy();
      await agent.close();
      await proxy.close();
      await origin.close();
    }
  });
});

// ---------------------------------------------------------------- headers

describe('h2 to HTTP/1.1 header mapping', () => {
  test('the origin sees Host from :authority, no pseudo-headers, one joined Cookie line, X-Forwarded-*, Via "2 switchyard"', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({ name: 'headers' });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const reply = await h2Request(session, {
        ':method': 'GET', ':path': '/map?q=1', ':authority': 'h2.example.test',
        cookie: ['a=1', 'b=2'], 'x-client': 'kept',
      });
      assert.equal(reply.status, 200);
      const seen = origin.requests[0];
      assert.ok(seen, 'the origin got the request');
      assert.equal(seen.url, '/map?q=1');
      assert.equal(seen.method, 'GET');
      assert.equal(seen.headers.host, 'h2.example.test');
      const names = seen.rawHeaders.filter((_value, index) => index % 2 === 0);
      assert.deepEqual(names.filter((name) => name.startsWith(':')), [], `no pseudo-headers: ${JSON.stringify(names)}`);
      assert.equal(names.filter((name) => name.toLowerCase() === 'host').length, 1, 'exactly one Host line');
      const cookieLines = seen.rawHeaders.filter((_value, index) => index % 2 === 1 && seen.rawHeaders[index - 1]!.toLowerCase() === 'cookie');
      assert.deepEqual(cookieLines, ['a=1; b=2'], 'the two cookie fields arrive as one Cookie line');
      assert.equal(seen.headers['x-client'], 'kept');
      assert.equal(seen.headers['x-forwarded-proto'], 'https');
      assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(seen.headers['x-forwarded-host'], 'h2.example.test');
      assert.equal(seen.headers['x-forwarded-port'], String(proxy.port));
      assert.equal(seen.headers.via, '2 switchyard');
      // A GET whose HEADERS ended the stream has no body upstream either.
      assert.equal(seen.headers['transfer-encoding'], undefined);
      assert.equal(seen.body, '');
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('the client sees the origin headers, repeated set-cookie as an array, and no connection-specific headers', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (_req, res) => {
        res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
        res.setHeader('Connection', 'keep-alive, X-Hop');
        res.setHeader('Keep-Alive', 'timeout=5');
        res.setHeader('X-Hop', 'listed in Connection');
        res.setHeader('Upgrade', 'h2c');
        res.setHeader('X-Kept', 'yes');
        res.setHeader('Content-Type', 'text/plain');
        // No Content-Length: the origin answers with Transfer-Encoding: chunked.
        res.writeHead(200);
        res.write('hel');
        res.end('lo');
      },
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const reply = await h2Request(session, { ':path': '/response-headers' });
      assert.equal(reply.status, 200);
      assert.equal(reply.body.toString(), 'hello');
      assert.deepEqual(reply.headers['set-cookie'], ['a=1; Path=/', 'b=2; Path=/']);
      assert.equal(reply.headers['x-kept'], 'yes');
      assert.equal(reply.headers['content-type'], 'text/plain');
      for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'x-hop']) {
        assert.equal(reply.headers[name], undefined, `${name} must not reach an h2 client`);
      }
      // The session survived (a connection-specific header would be a protocol error).
      assert.equal((await h2Request(session, { ':path': '/response-headers' })).status, 200);
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

// ---------------------------------------------------------------- streaming

describe('streaming both ways over h2', () => {
  test('a request body sent in chunks over time reaches the origin before the client ends it', { timeout: 10_000 }, async () => {
    const received: string[] = [];
    const origin = await startStreamingOrigin((req, res) => {
      req.setEncoding('utf8');
      req.on('data', (text: string) => received.push(text));
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(`got:${received.join('')}`);
      });
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const stream = session.request({ ':method': 'POST', ':path': '/upload', 'content-type': 'text/plain' }, { endStream: false });
      const chunks: Buffer[] = [];
      stream.on('data', (chunk: Buffer) => chunks.push(chunk));
      const ended = new Promise<ResponseHeaders>((resolve, reject) => {
        let headers: ResponseHeaders | undefined;
        stream.on('response', (h) => { headers = h; });
        stream.on('end', () => (headers ? resolve(headers) : reject(new Error('no response'))));
        stream.on('error', reject);
      });
      stream.write('first,');
      await waitFor(() => received.join('') === 'first,', 2_000, 'the origin to see the first chunk while the client holds the stream open');
      assert.equal(stream.writableEnded, false);
      await sleep(100);
      stream.write('second,');
      await waitFor(() => received.join('') === 'first,second,', 2_000, 'the origin to see the second chunk');
      stream.end('last');
      const headers = await withTimeout(ended, 5_000, 'the upload response');
      assert.equal(headers[':status'], 200);
      assert.equal(Buffer.concat(chunks).toString(), 'got:first,second,last');
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('a response the origin streams slowly (SSE: one event, then hold) reaches the h2 client at once', { timeout: 10_000 }, async () => {
    const held: ServerResponse[] = [];
    const origin = await startStreamingOrigin((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
      res.write('data: one\n\n');
      held.push(res);
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const started = Date.now();
      const stream = session.request({ ':path': '/events' });
      let text = '';
      let status: number | undefined;
      stream.on('response', (h) => { status = Number(h[':status']); });
      stream.setEncoding('utf8').on('data', (chunk: string) => { text += chunk; });
      stream.on('error', () => undefined);
      await waitFor(() => text.includes('data: one\n\n'), 1_000, 'the first event to arrive while the origin holds the response');
      assert.equal(status, 200);
      assert.ok(Date.now() - started < 1_000);
      // A second event, later, arrives too.
      held[0]!.write('data: two\n\n');
      await waitFor(() => text.includes('data: two\n\n'), 1_000, 'the second event');
      held[0]!.end();
      await withTimeout(new Promise<void>((resolve) => stream.once('end', () => resolve())), 2_000, 'the event stream to end');
      assert.equal(text, 'data: one\n\ndata: two\n\n');
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('8 MiB up and 8 MiB down arrive intact (sha256)', { timeout: 20_000 }, async () => {
    const SIZE = 8 * 1024 * 1024;
    const download = randomBytes(SIZE);
    const origin = await startStreamingOrigin((req, res) => {
      if (req.url === '/download') {
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(SIZE) });
        res.end(download);
        return;
      }
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ length, sha: hash.digest('hex') }));
      });
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const upload = randomBytes(SIZE);
      const up = await h2Request(session, { ':method': 'POST', ':path': '/upload', 'content-type': 'application/octet-stream' }, upload, 15_000);
      assert.equal(up.status, 200);
      assert.deepEqual(JSON.parse(up.body.toString()), { length: SIZE, sha: sha256(upload) });

      const down = await h2Request(session, { ':path': '/download' }, undefined, 15_000);
      assert.equal(down.status, 200);
      assert.equal(down.headers['content-length'], String(SIZE));
      assert.equal(down.body.length, SIZE);
      assert.equal(sha256(down.body), sha256(download));
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('flow control: a client that does not read a large response stalls the origin well below the total; resumed, all arrives intact', { timeout: 30_000 }, async (t) => {
    const TOTAL = 64 * 1024 * 1024;
    const CHUNK = 64 * 1024;
    const payload = randomBytes(TOTAL);
    let written = 0;
    let originDone = false;
    const origin = await startStreamingOrigin((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(TOTAL) });
      const pump = (): void => {
        while (written < TOTAL) {
          const chunk = payload.subarray(written, written + CHUNK);
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        originDone = true;
        res.end();
      };
      res.on('error', () => undefined);
      pump();
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const stream = session.request({ ':path': '/huge' });
      stream.on('error', () => undefined);
      const response = await withTimeout(new Promise<ResponseHeaders>((resolve) => stream.once('response', resolve)), 5_000, 'response headers');
      assert.equal(response[':status'], 200);
      stream.pause();

      // Wait until the origin's progress stops: nothing written for 500 ms.
      let last = -1;
      let stableSince = Date.now();
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline) {
        await sleep(50);
        if (written !== last) {
          last = written;
          stableSince = Date.now();
        } else if (Date.now() - stableSince >= 500) break;
      }
      const stalledAt = written;
      assert.ok(!originDone, `the origin wrote all ${TOTAL} bytes to a client that reads nothing`);
      assert.ok(stalledAt < TOTAL / 4, `origin progress stalled at ${stalledAt} of ${TOTAL} bytes; the proxy buffers what the client does not read`);
      const heapNote = `stalled at ${(stalledAt / 1024 / 1024).toFixed(1)} MiB`;
      t.diagnostic(`origin ${heapNote} of ${TOTAL / 1024 / 1024} MiB`);

      const hash = createHash('sha256');
      let received = 0;
      stream.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        received += chunk.length;
      });
      stream.resume();
      await withTimeout(new Promise<void>((resolve) => stream.once('end', () => resolve())), 20_000, `the rest of the body (${heapNote})`);
      assert.equal(received, TOTAL);
      assert.equal(hash.digest('hex'), sha256(payload));
      assert.ok(originDone);
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('50 concurrent streams on one session are all answered correctly', { timeout: 15_000 }, async () => {
    const origin = await startOrigin({
      handler: (req, res, body) => {
        // Answer out of order, so responses interleave.
        setTimeout(() => {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ url: req.url, body }));
        }, Math.floor(Math.random() * 100));
      },
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const open = session;
      const replies = await Promise.all(Array.from({ length: 50 }, (_unused, i) => (i % 2 === 0
        ? h2Request(open, { ':path': `/stream/${i}` }, undefined, 10_000)
        : h2Request(open, { ':method': 'POST', ':path': `/stream/${i}` }, `body-${i}`, 10_000))));
      for (const [i, reply] of replies.entries()) {
        assert.equal(reply.status, 200, `stream ${i}`);
        assert.deepEqual(JSON.parse(reply.body.toString()), { url: `/stream/${i}`, body: i % 2 === 0 ? '' : `body-${i}` });
      }
      assert.equal(origin.requests.length, 50);
      assert.equal(proxy.proxy.registry.sessions.size, 1, 'all 50 streams shared one session');
      await registryIdle(proxy);
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

// ---------------------------------------------------------------- status codes and errors

describe('status codes and errors over h2', () => {
  test('an origin 404 passes through with its body', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (_req, res) => {
        res.writeHead(404, { 'Content-Type': 'text/plain', 'X-From': 'origin' });
        res.end('not here');
      },
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const reply = await h2Request(session, { ':path': '/missing' });
      assert.equal(reply.status, 404);
      assert.equal(reply.headers['x-from'], 'origin');
      assert.equal(reply.headers['x-switchyard-error'], undefined);
      assert.equal(reply.body.toString(), 'not here');
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('a refused backend gives :status 502 with x-switchyard-error', { timeout: 10_000 }, async () => {
    const port = await closedPort();
    const proxy = await startTlsProxy({ servers: [`http://127.0.0.1:${port}`] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const reply = await h2Request(session, { ':path': '/refused' });
      assert.equal(reply.status, 502);
      assert.equal(reply.headers['x-switchyard-error'], 'SY_UPSTREAM_CONNECT_REFUSED');
      assert.match(reply.body.toString(), /^502 /);
      // The error ended one stream, not the session.
      const again = await h2Request(session, { ':path': '/refused-again' });
      assert.ok(again.status === 502 || again.status === 503, `second answer ${again.status}`);
      assert.ok(again.headers['x-switchyard-error']);
    } finally {
      session?.destroy();
      await proxy.close();
    }
  });

  test('an origin silent past responseMs gives 504', { timeout: 10_000 }, async () => {
    const held: ServerResponse[] = [];
    const origin = await startOrigin({ handler: (_req, res) => { held.push(res); } });
    const proxy = await startTlsProxy({ servers: [origin.url], timeouts: { responseMs: 300 } });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const started = Date.now();
      const reply = await h2Request(session, { ':path': '/silent' });
      const elapsed = Date.now() - started;
      assert.equal(reply.status, 504);
      assert.equal(reply.headers['x-switchyard-error'], 'SY_UPSTREAM_TIMEOUT');
      assert.ok(elapsed >= 250 && elapsed < 2_000, `504 after ${elapsed} ms`);
      await registryIdle(proxy);
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('a client that resets a stream mid-response makes the origin request close within a second', { timeout: 10_000 }, async () => {
    let originClosedAt: number | undefined;
    let originFinished = false;
    const origin = await startStreamingOrigin((req, res) => {
      if (req.url === '/after-reset') {
        res.end('fine');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.write('part one;');
      res.on('finish', () => { originFinished = true; });
      res.on('close', () => { originClosedAt = Date.now(); });
      // ... and holds the rest.
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const stream = session.request({ ':path': '/long' });
      stream.on('error', () => undefined);
      await withTimeout(new Promise<void>((resolve) => stream.once('data', () => resolve())), 3_000, 'the first part of the response');
      assert.equal(originClosedAt, undefined);
      const resetAt = Date.now();
      stream.close(http2.constants.NGHTTP2_CANCEL);
      await waitFor(() => originClosedAt !== undefined, 1_000, "the origin's response to close after the client reset");
      assert.ok(originClosedAt! - resetAt < 1_000);
      assert.equal(originFinished, false, 'the origin response was cut, not completed');
      await registryIdle(proxy);
      // The session lives on for other streams.
      const after = await h2Request(session, { ':path': '/after-reset' }, undefined, 3_000);
      assert.equal(after.status, 200);
      assert.equal(after.body.toString(), 'fine');
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('an origin that fails mid-response: the h2 client sees the stream reset with an error code, not a clean end', { timeout: 10_000 }, async () => {
    const origin = await startStreamingOrigin((req, res) => {
      res.writeHead(200, req.url === '/cut-sized' ? { 'Content-Type': 'text/plain', 'Content-Length': '1000' } : { 'Content-Type': 'text/plain' });
      res.write('the first part;');
      setTimeout(() => req.socket.destroy(), 100);
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      for (const path of ['/cut-chunked', '/cut-sized']) {
        const stream = session.request({ ':path': path });
        let body = '';
        let endedCleanly = false;
        stream.setEncoding('utf8').on('data', (text: string) => { body += text; });
        stream.on('end', () => { endedCleanly = true; });
        stream.on('error', () => undefined);
        await withTimeout(new Promise<void>((resolve) => stream.once('close', () => resolve())), 3_000, `${path}: the cut stream to close`);
        assert.equal(body, 'the first part;', path);
        assert.notEqual(stream.rstCode, http2.constants.NGHTTP2_NO_ERROR, `${path}: a truncated response must be reset with an error code (got RST_STREAM ${String(stream.rstCode)})`);
        assert.equal(endedCleanly, false, `${path}: the truncated response ended like a complete one`);
      }
      await registryIdle(proxy);
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('HEAD, 204 and 304 over h2: headers only, streams end', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (req, res) => {
        if (req.url === '/head') {
          res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '11', 'X-Head': 'yes' });
          res.end(req.method === 'HEAD' ? undefined : 'hello world');
        } else if (req.url === '/no-content') {
          res.writeHead(204, { 'X-Empty': 'yes' });
          res.end();
        } else {
          res.writeHead(304, { ETag: '"v1"', 'Cache-Control': 'max-age=60' });
          res.end();
        }
      },
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    try {
      session = await h2Connect(proxy);
      const head = await h2Request(session, { ':method': 'HEAD', ':path': '/head' });
      assert.equal(head.status, 200);
      assert.equal(head.headers['x-head'], 'yes');
      assert.equal(head.headers['content-length'], '11');
      assert.equal(head.body.length, 0);
      assert.equal(origin.requests[0]?.method, 'HEAD');

      const noContent = await h2Request(session, { ':path': '/no-content' });
      assert.equal(noContent.status, 204);
      assert.equal(noContent.headers['x-empty'], 'yes');
      assert.equal(noContent.body.length, 0);

      const notModified = await h2Request(session, { ':path': '/cached', 'if-none-match': '"v1"' });
      assert.equal(notModified.status, 304);
      assert.equal(notModified.headers.etag, '"v1"');
      assert.equal(notModified.body.length, 0);
      assert.equal(origin.requests[2]?.headers['if-none-match'], '"v1"');

      // And a GET on the HEAD path still carries its body.
      const get = await h2Request(session, { ':path': '/head' });
      assert.equal(get.body.toString(), 'hello world');
      await registryIdle(proxy);
    } finally {
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

// ---------------------------------------------------------------- shutdown

describe('GOAWAY on shutdown', () => {
  test('an in-flight stream completes, sessions get GOAWAY, new streams are refused', { timeout: 15_000 }, async () => {
    const origin = await startOrigin({
      handler: (req, res) => {
        const delay = req.url === '/slow' ? 600 : 0;
        setTimeout(() => {
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.end(`done ${req.url}`);
        }, delay);
      },
    });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    let raw: RawH2 | undefined;
    try {
      session = await h2Connect(proxy);
      const open = session;
      // An idle raw session, to send a stream the way a client that ignores GOAWAY would.
      raw = await rawH2(proxy.port);
      raw.socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
      const rawConn = raw;
      await waitFor(() => rawConn.frames.some((f) => f.type === FRAME.SETTINGS && (f.flags & 1) === 0), 2_000, 'the server SETTINGS on the raw session');
      rawConn.socket.write(frame(FRAME.SETTINGS, 1, 0));

      const goaway = new Promise<{ code: number; lastStreamId: number }>((resolve) => {
        open.once('goaway', (code: number, lastStreamId: number) => resolve({ code, lastStreamId }));
      });
      const sessionClosed = new Promise<void>((resolve) => open.once('close', () => resolve()));
      const slowStream = open.request({ ':path': '/slow' });
      const slow = new Promise<H2Reply>((resolve, reject) => {
        let headers: ResponseHeaders | undefined;
        const chunks: Buffer[] = [];
        slowStream.on('response', (h) => { headers = h; });
        slowStream.on('data', (chunk: Buffer) => chunks.push(chunk));
        slowStream.on('end', () => (headers ? resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks) }) : reject(new Error('no response'))));
        slowStream.on('error', reject);
      });
      await waitFor(() => origin.requests.length === 1, 2_000, 'the slow request to reach the origin');

      const shutdownAt = Date.now();
      const stopping = proxy.proxy.shutdown(2_000);
      const away = await withTimeout(goaway, 1_000, "the h2 client's goaway event");
      assert.equal(away.code, http2.constants.NGHTTP2_NO_ERROR);
      assert.ok(slowStream.id !== undefined && away.lastStreamId >= slowStream.id, `GOAWAY last stream ${away.lastStreamId} keeps in-flight stream ${slowStream.id}`);
      await waitFor(() => rawConn.frames.some((f) => f.type === FRAME.GOAWAY) || rawConn.isClosed(), 1_000, 'GOAWAY on the raw session');
      assert.ok(rawConn.frames.some((f) => f.type === FRAME.GOAWAY), 'the idle raw session got a GOAWAY frame before its connection closed');

      // New streams after GOAWAY: the node client refuses to open one ...
      assert.throws(() => open.request({ ':path': '/after-goaway-client' }), (err: NodeJS.ErrnoException) => err.code === 'ERR_HTTP2_GOAWAY_SESSION');
      // ... and one sent anyway on the raw session is not served.
      if (!rawConn.isClosed()) {
        rawConn.socket.write(frame(FRAME.HEADERS, 0x5, 1, getHeaderBlock('/after-goaway-raw', `127.0.0.1:${proxy.port}`)));
      }

      const reply = await withTimeout(slow, 3_000, 'the in-flight stream to complete');
      assert.equal(reply.status, 200);
      assert.equal(reply.body.toString(), 'done /slow');
      await withTimeout(sessionClosed, 2_000, 'the drained h2 session to close');
      await withTimeout(stopping, 2_500, 'shutdown');
      assert.ok(Date.now() - shutdownAt < 1_800, `shutdown waited for its deadline (${Date.now() - shutdownAt} ms) although the only stream finished`);

      await sleep(100);
      assert.ok(!rawConn.frames.some((f) => f.type === FRAME.HEADERS && f.streamId === 1), 'a stream opened after GOAWAY was answered');
      assert.deepEqual(origin.requests.map((r) => r.url), ['/slow'], 'nothing after GOAWAY reached the origin');
      // And the listener is gone: a fresh connection fails.
      await assert.rejects(h2Connect(proxy));
    } finally {
      raw?.socket.destroy();
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

// ---------------------------------------------------------------- bad input and leaks

describe('robustness', () => {
  /** Bytes that are a connection error (RFC 9113 §5.4.1) on an h2 connection. */
  function connectionErrors(authority: string): { what: string; bytes: Buffer }[] {
    const settings = frame(FRAME.SETTINGS, 0, 0);
    return [
      { what: 'a SETTINGS frame of impossible length', bytes: Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(5))]) },
      { what: 'DATA on stream 0', bytes: Buffer.concat([PREFACE, settings, frame(FRAME.DATA, 0, 0, Buffer.from('x'))]) },
      { what: 'HEADERS with an undecodable HPACK block', bytes: Buffer.concat([PREFACE, settings, frame(FRAME.HEADERS, 0x5, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]))]) },
      { what: 'a frame header claiming 16 MiB', bytes: Buffer.concat([PREFACE, settings, frame(FRAME.DATA, 0, 1, randomBytes(64), 0xffffff)]) },
      { what: 'HEADERS on an even (server-side) stream id', bytes: Buffer.concat([PREFACE, settings, frame(FRAME.HEADERS, 0x5, 2, getHeaderBlock('/even', authority))]) },
    ];
  }

  function goawayCode(raw: RawH2): number | undefined {
    const goaway = raw.frames.find((f) => f.type === FRAME.GOAWAY);
    return goaway && goaway.payload.length >= 8 ? goaway.payload.readUInt32BE(4) : undefined;
  }

  /** Resolves once the proxy answered the garbage: a GOAWAY frame, or the connection closed. */
  function proxyReacted(raw: RawH2, what: string): Promise<void> {
    return waitFor(() => raw.isClosed() || raw.frames.some((f) => f.type === FRAME.GOAWAY), 3_000, `the proxy to react to ${what}`);
  }

  test('garbage on h2 connections does not hurt the process: a later good request on a new session still works', { timeout: 20_000 }, async () => {
    const origin = await startOrigin({ name: 'robust' });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    let session: http2.ClientHttp2Session | undefined;
    const raws: RawH2[] = [];
    try {
      const authority = `127.0.0.1:${proxy.port}`;
      // A good session that stays open next to the garbage.
      session = await h2Connect(proxy);
      const garbage: { what: string; bytes: Buffer }[] = [
        { what: 'random bytes instead of the preface', bytes: randomBytes(512) },
        { what: 'an HTTP/1.1 request on a connection that negotiated h2', bytes: Buffer.from(`GET / HTTP/1.1\r\nHost: ${authority}\r\n\r\n`) },
        ...connectionErrors(authority),
      ];
      for (const { what, bytes } of garbage) {
        const raw = await rawH2(proxy.port);
        raws.push(raw);
        raw.socket.write(bytes);
        await proxyReacted(raw, what);
        raw.socket.destroy();
      }
      assert.equal(origin.requests.length, 0, 'no garbage reached the origin');

      // A request right after a good preface, then garbage on the same connection.
      const mixed = await rawH2(proxy.port);
      raws.push(mixed);
      mixed.socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0), frame(FRAME.HEADERS, 0x5, 1, getHeaderBlock('/before-garbage', authority))]));
      await waitFor(() => mixed.frames.some((f) => f.type === FRAME.HEADERS && f.streamId === 1), 3_000, 'the raw request to be answered');
      mixed.socket.write(randomBytes(256));
      await proxyReacted(mixed, 'garbage after a good request');
      mixed.socket.destroy();

      // The session opened before the garbage still works, and so does a new one.
      assert.equal((await h2Request(session, { ':path': '/old-session' })).status, 200);
      session.destroy();
      session = await h2Connect(proxy);
      const reply = await h2Request(session, { ':path': '/still-serving' });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-origin'], 'robust');
      assert.deepEqual(origin.requests.map((r) => r.url), ['/before-garbage', '/old-session', '/still-serving']);
      await registryIdle(proxy);
    } finally {
      for (const raw of raws) raw.socket.destroy();
      session?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('after a connection error the proxy sends GOAWAY with an error code and closes the connection (RFC 9113 §5.4.1)', { timeout: 20_000 }, async () => {
    const origin = await startOrigin();
    // A short keep-alive: even a fix that reaps such sessions by idle time passes.
    const proxy = await startTlsProxy({ servers: [origin.url], timeouts: { keepAliveMs: 1_000 } });
    const raws: RawH2[] = [];
    try {
      const problems: string[] = [];
      for (const { what, bytes } of connectionErrors(`127.0.0.1:${proxy.port}`)) {
        const raw = await rawH2(proxy.port);
        raws.push(raw);
        raw.socket.write(bytes);
        await proxyReacted(raw, what);
        // The code is the HTTP/2 stack's choice (PROTOCOL_ERROR, FRAME_SIZE_ERROR, ...); it must name an error.
        const sent = goawayCode(raw);
        if (sent === undefined || sent === http2.constants.NGHTTP2_NO_ERROR) problems.push(`${what}: GOAWAY code ${String(sent)}, expected an error code`);
        // The client keeps its end open: closing is the proxy's job.
        await Promise.race([raw.closed, sleep(2_500)]);
        if (!raw.isClosed()) problems.push(`${what}: connection still open 2.5 s after GOAWAY`);
      }
      assert.deepEqual(problems, []);
    } finally {
      for (const raw of raws) raw.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('clients that leave after a connection error leave no session, connection or descriptor behind', { timeout: 20_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startTlsProxy({ servers: [origin.url], timeouts: { keepAliveMs: 1_000 } });
    const registry = proxy.proxy.registry;
    const raws: RawH2[] = [];
    try {
      const baseline = openFdCount();
      const errors = connectionErrors(`127.0.0.1:${proxy.port}`);
      for (let i = 0; i < 20; i++) {
        const { what, bytes } = errors[i % errors.length]!;
        const raw = await rawH2(proxy.port);
        raws.push(raw);
        raw.socket.write(bytes);
        await proxyReacted(raw, what);
        raw.socket.destroy();
      }
      const deadline = Date.now() + 3_000;
      while ((registry.sessions.size > 0 || registry.connections.size > 0) && Date.now() < deadline) await sleep(50);
      assert.equal(registry.sessions.size, 0, `${registry.sessions.size} of 20 sessions still registered 3 s after their clients left`);
      assert.equal(registry.connections.size, 0, `${registry.connections.size} of 20 connections still registered 3 s after their clients left`);
      const fds = openFdCount();
      assert.ok(fds <= baseline + 5, `fds: baseline ${baseline}, after 20 broken sessions ${fds}`);
    } finally {
      for (const raw of raws) raw.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('200 h2 sessions opened and closed: file descriptors back to baseline', { timeout: 60_000 }, async () => {
    const origin = await startOrigin({ name: 'fds' });
    const proxy = await startTlsProxy({ servers: [origin.url] });
    const registry = proxy.proxy.registry;
    const BATCH = 10;
    const runBatch = async (batch: number): Promise<void> => {
      await Promise.all(Array.from({ length: BATCH }, async (_unused, i) => {
        const session = await h2Connect(proxy);
        try {
          const reply = await h2Request(session, { ':path': `/fd/${batch}/${i}` });
          assert.equal(reply.status, 200);
        } finally {
          // Half leave politely, half vanish.
          if (i % 2 === 0) session.close();
          else session.destroy();
        }
      }));
    };
    try {
      // Warm up: the proxy's upstream keep-alive pool grows to the batch width.
      await runBatch(-1);
      await waitFor(() => registry.connections.size === 0 && registry.sessions.size === 0, 3_000, 'warm-up sessions to close');
      await sleep(100);
      const baseline = openFdCount();
      for (let batch = 0; batch < 200 / BATCH; batch++) await runBatch(batch);
      await waitFor(() => registry.connections.size === 0 && registry.sessions.size === 0, 3_000,
        `sessions to close (connections ${registry.connections.size}, sessions ${registry.sessions.size})`);
      await registryIdle(proxy);
      let now = openFdCount();
      const deadline = Date.now() + 3_000;
      while (now > baseline + 10 && Date.now() < deadline) {
        await sleep(50);
        now = openFdCount();
      }
      assert.ok(now <= baseline + 10, `fds: baseline ${baseline}, after 200 sessions ${now}`);
      assert.equal(origin.requests.length, 210);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});
