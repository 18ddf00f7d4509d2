import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { closedPort, startOrigin, type Origin } from '../helpers/origins.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { connectRaw, waitFor } from '../helpers/raw.js';
import { clientFrame, handshakeRequest } from '../helpers/websocket-frames.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

describe('a request is a WebSocket upgrade for any form of Connection and Upgrade', () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await startOrigin();
    proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  const forms: { connection: string; upgrade: string }[] = [
    { connection: 'keep-alive, Upgrade', upgrade: 'websocket' },
    { connection: 'upgrade', upgrade: 'websocket' },
    { connection: 'UPGRADE', upgrade: 'websocket' },
    { connection: 'Upgrade', upgrade: 'WebSocket' },
    { connection: 'Upgrade', upgrade: 'websocket' },
    { connection: 'keep-alive,upgrade', upgrade: 'WEBSOCKET' },
  ];
  for (const form of forms) {
    test(`Connection: ${form.connection} / Upgrade: ${form.upgrade} gets 101 and echoes a frame`, { timeout: 5_000 }, async () => {
      const handshakesBefore = origin.handshakes.length;
      const peer = await RawPeer.connect(proxy.port);
      try {
        const request = handshakeRequest('/forms', `127.0.0.1:${proxy.port}`, form);
        peer.socket.write(request);
        const head = await peer.head();
        assert.equal(head.status, 101, head.statusLine);
        assert.equal(head.header('sec-websocket-accept'), acceptFor(keyOf(request)));

        peer.socket.write(clientFrame(0x1, `hello ${form.connection} ${form.upgrade}`));
        const frame = await peer.frame(head.end);
        assert.equal(frame.masked, false, 'server frames reach the client unmasked');
        assert.equal(frame.opcode, 0x1);
        assert.equal(frame.payload.toString(), `hello ${form.connection} ${form.upgrade}`);

        // Whatever the client sent, the backend sees the canonical form.
        assert.equal(origin.handshakes.length, handshakesBefore + 1);
        const seen = origin.handshakes.at(-1)!;
        assert.equal(seen.headers.connection, 'Upgrade');
        assert.equal(seen.headers.upgrade, 'websocket');
      } finally {
        peer.socket.destroy();
      }
    });
  }
});

describe('the handshake reaches the backend with its headers intact', () => {
  test('Sec-WebSocket-*, Origin and Cookie pass unchanged, X-Forwarded-* and Via are added', { timeout: 5_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      const host = `127.0.0.1:${proxy.port}`;
      const request = handshakeRequest('/room/7?x=1', host, {
        connection: 'keep-alive, Upgrade',
        extra: [
          'Sec-WebSocket-Protocol: chat, v2',
          'Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits',
          'Origin: http://app.example',
          'Cookie: sid=abc; theme=dark',
          'X-Forwarded-For: 10.1.2.3',
        ],
      });
      peer.socket.write(request);
      const head = await peer.head();
      assert.equal(head.status, 101, head.statusLine);
      assert.equal(head.header('sec-websocket-protocol'), 'chat');

      assert.equal(origin.handshakes.length, 1);
      const seen = origin.handshakes[0]!;
      assert.equal(seen.url, '/room/7?x=1');
      assert.equal(seen.headers['sec-websocket-key'], keyOf(request));
      assert.equal(seen.headers['sec-websocket-version'], '13');
      assert.equal(seen.headers['sec-websocket-protocol'], 'chat, v2');
      assert.equal(seen.headers['sec-websocket-extensions'], 'permessage-deflate; client_max_window_bits');
      assert.equal(seen.headers.origin, 'http://app.example');
      assert.equal(seen.headers.cookie, 'sid=abc; theme=dark');
      assert.equal(seen.headers.host, host);
      assert.equal(seen.headers.connection, 'Upgrade');
      assert.equal(seen.headers.upgrade, 'websocket');
      assert.equal(seen.headers['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
      assert.equal(seen.headers['x-forwarded-host'], host);
      assert.equal(seen.headers['x-forwarded-port'], String(proxy.port));
      assert.equal(seen.headers.via, '1.1 switchyard');
      // Exactly one Connection and one Upgrade line: the client's are replaced, not added to.
      assert.equal(countRaw(seen.rawHeaders, 'connection'), 1);
      assert.equal(countRaw(seen.rawHeaders, 'upgrade'), 1);
    } finally {
      peer.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

describe('other Upgrade protocols are forwarded as plain HTTP, never tunneled', () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await startOrigin();
    proxy = await startProxy({ servers: [origin.url] });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  const cases: { name: string; lines: string[] }[] = [
    { name: 'h2c', lines: ['Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA'] },
    { name: 'Upgrade: foo', lines: ['Connection: upgrade', 'Upgrade: foo'] },
    // Upgrade names websocket but Connection lacks the token: not an upgrade either.
    { name: 'websocket without "upgrade" in Connection', lines: ['Connection: keep-alive', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='] },
  ];
  for (const { name, lines } of cases) {
    test(`${name} reaches the origin as a normal request without upgrade headers`, { timeout: 5_000 }, async () => {
      const requestsBefore = origin.requests.length;
      const handshakesBefore = origin.handshakes.length;
      const peer = await RawPeer.connect(proxy.port);
      try {
        peer.socket.write([`GET /plain/${encodeURIComponent(name)} HTTP/1.1`, `Host: 127.0.0.1:${proxy.port}`, ...lines, '', ''].join('\r\n'));
        const response = await peer.response();
        assert.equal(response.status, 200, response.statusLine);
        assert.equal(response.header('x-origin'), 'origin');
        assert.equal(response.header('upgrade'), undefined);

        assert.equal(origin.handshakes.length, handshakesBefore, 'nothing was upgraded at the origin');
        assert.equal(origin.requests.length, requestsBefore + 1);
        const seen = origin.requests.at(-1)!;
        assert.equal(seen.url, `/plain/${encodeURIComponent(name)}`);
        assert.equal(seen.headers.upgrade, undefined);
        assert.doesNotMatch(seen.headers.connection ?? '', /upgrade/i);
        assert.equal(seen.headers['http2-settings'], undefined, 'a Connection-listed header is hop-by-hop');
      } finally {
        peer.socket.destroy();
      }
    });
  }
});

describe('the backend 101 is relayed with every header', () => {
  test('repeated Set-Cookie and custom headers reach the client, then bytes flow', { timeout: 5_000 }, async () => {
    const origin = await startOrigin();
    origin.wss.on('headers', (headers: string[]) => headers.push('Set-Cookie: a=1', 'Set-Cookie: b=2', 'X-Custom: y'));
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      const request = handshakeRequest('/', `127.0.0.1:${proxy.port}`);
      peer.socket.write(request);
      const head = await peer.head();
      assert.equal(head.status, 101, head.statusLine);
      assert.deepEqual(head.all('set-cookie'), ['a=1', 'b=2']);
      assert.equal(head.header('x-custom'), 'y');
      assert.equal(head.header('upgrade')?.toLowerCase(), 'websocket');
      assert.match(head.header('connection') ?? '', /upgrade/i);
      assert.equal(head.header('sec-websocket-accept'), acceptFor(keyOf(request)));

      peer.socket.write(clientFrame(0x2, Buffer.from([1, 2, 3, 250])));
      const frame = await peer.frame(head.end);
      assert.equal(frame.opcode, 0x2);
      assert.deepEqual([...frame.payload], [1, 2, 3, 250]);
    } finally {
      peer.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('subprotocol negotiation works through the proxy', { timeout: 5_000 }, async () => {
    const origin = await startOrigin();
    // The server's choice (not merely the first offer) must travel back.
    origin.wss.options.handleProtocols = (protocols) => (protocols.has('v2') ? 'v2' : false);
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const ws = new WebSocket(`${proxy.wsUrl}/sub`, ['chat', 'v2']);
    try {
      await new Promise<void>((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      assert.equal(ws.protocol, 'v2');
      // The offer reaches the backend as sent (ws writes it without a space).
      assert.equal(origin.handshakes[0]?.headers['sec-websocket-protocol'], 'chat,v2');
      const reply = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
      ws.send('over v2');
      assert.equal(await reply, 'over v2');
    } finally {
      ws.terminate();
      await proxy.close();
      await origin.close();
    }
  });
});

describe('a backend that answers anything but 101', () => {
  test('403 with a body and Set-Cookie reaches the client and both connections close', { timeout: 5_000 }, async () => {
    const originSockets = new RawOriginSockets();
    const origin = await startOrigin({
      onUpgrade: (_req, socket) => {
        originSockets.add(socket);
        // The origin leaves its socket open: closing it is the proxy's job.
        socket.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nSet-Cookie: denied=1; Path=/\r\nX-Reason: policy\r\nContent-Length: 4\r\n\r\nnope');
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    const peer = await RawPeer.connect(proxy.port);
    try {
      peer.socket.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      const response = await peer.response();
      assert.equal(response.status, 403, response.statusLine);
      assert.equal(response.header('set-cookie'), 'denied=1; Path=/');
      assert.equal(response.header('x-reason'), 'policy');
      assert.equal(response.header('content-type'), 'text/plain');
      assert.equal(response.body.toString(), 'nope');
      assert.equal(peer.ended, true, 'the client got a FIN, not a reset');
      assert.equal(peer.hadError, false);
      await originSockets.waitAllEnded('the proxy to close its connection to the origin');
      await waitFor(() => proxy.proxy.registry.inFlight === 0 && proxy.proxy.registry.tunnels.size === 0, 2_000, 'registry to settle');
    } finally {
      peer.socket.destroy();
      originSockets.destroyAll();
      await proxy.close();
      await origin.close();
    }
  });

  test('200 from a plain HTTP origin that ignores upgrades reaches the client and both connections close', { timeout: 5_000 }, async () => {
    // No 'upgrade' listener: Node answers the handshake as an ordinary request.
    const plain = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Plain': 'yes' });
      res.end('plain body');
    });
    const originSockets: Socket[] = [];
    plain.on('connection', (socket: Socket) => originSockets.push(socket));
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${(plain.address() as AddressInfo).port}`] });
    const peer = await RawPeer.connect(proxy.port);
    try {
      peer.socket.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      const response = await peer.response();
      assert.equal(response.status, 200, response.statusLine);
      assert.equal(response.header('x-plain'), 'yes');
      assert.equal(response.body.toString(), 'plain body');
      assert.equal(peer.ended, true);
      assert.equal(peer.hadError, false);
      assert.equal(originSockets.length, 1);
      await waitFor(() => originSockets.every((socket) => socket.destroyed), 2_000, 'the origin connection to close');
    } finally {
      peer.socket.destroy();
      await proxy.close();
      plain.closeAllConnections();
      await new Promise<void>((resolve) => plain.close(() => resolve()));
    }
  });
});

describe('upstream failures during the handshake', () => {
  test('a backend refusing the connection gets the handshake a 502 within a second', { timeout: 5_000 }, async () => {
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${await closedPort()}`] });
    const peer = await RawPeer.connect(proxy.port);
    try {
      const started = Date.now();
      peer.socket.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      const response = await peer.response();
      assert.equal(response.status, 502, `${response.statusLine} ${response.header('x-switchyard-error') ?? ''}`);
      assert.ok(Date.now() - started < 1_000, `answered after ${Date.now() - started} ms`);
    } finally {
      peer.socket.destroy();
      await proxy.close();
    }
  });

  test('with the first backend refusing, the handshake is served by the second', { timeout: 5_000 }, async () => {
    const origin = await startOrigin({ name: 'second' });
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${await closedPort()}`, origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      peer.socket.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      const head = await peer.head();
      assert.equal(head.status, 101, head.statusLine);
      assert.equal(origin.handshakes.length, 1);
      // The refused server was tried (and is now skipped by passive health).
      assert.ok(defaultPool(proxy).servers[0]!.ejectedUntil > 0, 'the first server was tried and ejected');
      peer.socket.write(clientFrame(0x1, 'via the second'));
      assert.equal((await peer.frame(head.end)).payload.toString(), 'via the second');
    } finally {
      peer.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('a backend that never answers the handshake gets it a 504', { timeout: 5_000 }, async () => {
    const originSockets = new RawOriginSockets();
    const origin = await startOrigin({ onUpgrade: (_req, socket) => originSockets.add(socket) });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { responseMs: 300 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      const started = Date.now();
      peer.socket.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      const response = await peer.response();
      const elapsed = Date.now() - started;
      assert.equal(response.status, 504, response.statusLine);
      assert.ok(elapsed >= 250 && elapsed < 1_500, `answered after ${elapsed} ms`);
      assert.equal(originSockets.count, 1);
      await originSockets.waitAllEnded('the proxy to give up its connection to the silent origin');
    } finally {
      peer.socket.destroy();
      originSockets.destroyAll();
      await proxy.close();
      await origin.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Helpers

interface Head {
  status: number;
  statusLine: string;
  headers: [string, string][];
  /** Offset of the first byte after the blank line. */
  end: number;
  header(name: string): string | undefined;
  all(name: string): string[];
}

/** A raw client connection that keeps every byte it receives, to parse heads and frames. */
class RawPeer {
  buffer = Buffer.alloc(0);
  ended = false;
  closed = false;
  hadError = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => { this.buffer = Buffer.concat([this.buffer, chunk]); });
    socket.on('end', () => { this.ended = true; });
    socket.on('error', () => { this.hadError = true; });
    socket.on('close', () => { this.closed = true; });
  }

  static async connect(port: number): Promise<RawPeer> {
    return new RawPeer(await connectRaw(port));
  }

  async head(timeoutMs = 2_000): Promise<Head> {
    await waitFor(() => this.buffer.includes('\r\n\r\n') || this.closed, timeoutMs, 'a response head');
    const head = parseHead(this.buffer);
    assert.ok(head, `no response head; got ${JSON.stringify(this.buffer.toString('latin1'))}`);
    return head;
  }

  /** A whole response, framed by chunked coding, Content-Length, or the connection closing. */
  async response(timeoutMs = 2_000): Promise<Head & { body: Buffer }> {
    const head = await this.head(timeoutMs);
    if (head.header('transfer-encoding')?.toLowerCase() === 'chunked') {
      await waitFor(() => decodeChunked(this.buffer.subarray(head.end)) !== undefined || this.closed, timeoutMs, 'the chunked body');
      const body = decodeChunked(this.buffer.subarray(head.end));
      assert.ok(body, 'the connection closed inside a chunked body');
      return { ...head, body };
    }
    const length = head.header('content-length');
    if (length === undefined) {
      await waitFor(() => this.closed, timeoutMs, 'the connection to close after the response');
      return { ...head, body: this.buffer.subarray(head.end) };
    }
    await waitFor(() => this.buffer.length >= head.end + Number(length) || this.closed, timeoutMs, 'the response body');
    return { ...head, body: this.buffer.subarray(head.end, head.end + Number(length)) };
  }

  async frame(offset: number, timeoutMs = 2_000): Promise<Frame> {
    await waitFor(() => parseFrame(this.buffer, offset) !== undefined || this.closed, timeoutMs, 'a frame');
    const frame = parseFrame(this.buffer, offset);
    assert.ok(frame, 'the connection closed before a whole frame arrived');
    return frame;
  }
}

/**
 * Raw sockets an origin's onUpgrade kept. They are not tracked by the origin's
 * http.Server any more, so the test must destroy them itself.
 */
class RawOriginSockets {
  private readonly sockets: { socket: Socket; ended: boolean }[] = [];

  add(socket: Socket): void {
    const entry = { socket, ended: false };
    socket.on('end', () => { entry.ended = true; });
    this.sockets.push(entry);
  }

  get count(): number {
    return this.sockets.length;
  }

  /** The proxy sent its FIN (or closed) on every one of them. */
  async waitAllEnded(what: string): Promise<void> {
    await waitFor(() => this.sockets.every((entry) => entry.ended || entry.socket.destroyed), 2_000, what);
  }

  destroyAll(): void {
    for (const { socket } of this.sockets) socket.destroy();
  }
}

function parseHead(buffer: Buffer): Head | undefined {
  const at = buffer.indexOf('\r\n\r\n');
  if (at < 0) return undefined;
  const [statusLine = '', ...lines] = buffer.subarray(0, at).toString('latin1').split('\r\n');
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
  });
  return {
    status: Number(statusLine.split(' ')[1]),
    statusLine,
    headers,
    end: at + 4,
    header: (name) => headers.find(([n]) => n === name)?.[1],
    all: (name) => headers.filter(([n]) => n === name).map(([, v]) => v),
  };
}

/** The payload of a complete chunked body (no trailers), or undefined if incomplete. */
function decodeChunked(data: Buffer): Buffer | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  while (true) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd < 0) return undefined;
    const size = parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
    if (size === 0) return data.length >= lineEnd + 4 ? Buffer.concat(parts) : undefined;
    if (data.length < lineEnd + 2 + size + 2) return undefined;
    parts.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

interface Frame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
  end: number;
}

/** Parses one (small, unfragmented) frame at `offset`, or undefined if incomplete. */
function parseFrame(buffer: Buffer, offset: number): Frame | undefined {
  if (buffer.length < offset + 2) return undefined;
  const b0 = buffer[offset]!;
  const b1 = buffer[offset + 1]!;
  let length = b1 & 0x7f;
  let at = offset + 2;
  if (length === 126) {
    if (buffer.length < at + 2) return undefined;
    length = buffer.readUInt16BE(at);
    at += 2;
  } else if (length === 127) {
    if (buffer.length < at + 8) return undefined;
    length = Number(buffer.readBigUInt64BE(at));
    at += 8;
  }
  const masked = (b1 & 0x80) !== 0;
  const mask = masked ? buffer.subarray(at, at + 4) : undefined;
  if (masked) at += 4;
  if (buffer.length < at + length) return undefined;
  const payload = Buffer.from(buffer.subarray(at, at + length));
  if (mask) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ mask[i % 4]!;
  return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload, end: at + length };
}

function keyOf(request: string): string {
  const match = /^Sec-WebSocket-Key: (.+)$/im.exec(request);
  assert.ok(match?.[1]);
  return match[1].trim();
}

function acceptFor(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}

function countRaw(rawHeaders: string[], name: string): number {
  let count = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) count++;
  return count;
}

/** The pool behind quick-mode configs (startProxy builds one). */
function defaultPool(proxy: { proxy: { runtime: { pools: ReadonlyMap<string, { servers: readonly { ejectedUntil: number }[] }> } } }): { servers: readonly { ejectedUntil: number }[] } {
  const pool = proxy.proxy.runtime.pools.get('default');
  if (!pool) throw new Error('no default pool');
  return pool;
}
