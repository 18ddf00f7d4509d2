import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { WebSocket } from 'ws';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { sleep, waitFor } from '../helpers/raw.js';
import { clientFrame, handshakeRequest } from '../helpers/websocket-frames.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MiB = 1024 * 1024;

describe('early data sent with a handshake is delivered first and exactly once', () => {
  test('a frame in the same write as the client handshake reaches the origin once and is echoed', { timeout: 5_000 }, async () => {
    const received: string[] = [];
    const origin = await startOrigin({
      onWebSocket: (ws) => ws.on('message', (data) => {
        received.push(String(data));
        ws.send(data);
      }),
    });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      peer.socket.write(Buffer.concat([Buffer.from(handshakeRequest('/', `127.0.0.1:${proxy.port}`)), clientFrame(0x1, 'early bird')]));
      const head = await peer.head();
      assert.equal(head.status, 101, head.statusLine);
      const frame = await peer.frame(head.end);
      assert.equal(frame.payload.toString(), 'early bird');
      await sleep(300); // room for a duplicate to show up
      assert.deepEqual(received, ['early bird']);
      assert.equal(peer.buffer.length, frame.end, 'exactly one echo after the 101');
    } finally {
      peer.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('a frame in the same TCP write as the backend 101 reaches the client once, right after the 101', { timeout: 5_000 }, async () => {
    const originSockets: Socket[] = [];
    const origin = await startOrigin({
      onUpgrade: (req, socket) => {
        originSockets.push(socket);
        socket.write(Buffer.concat([Buffer.from(rawAcceptHead(req)), serverFrame(0x1, 'hello first')]));
      },
    });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      const request = handshakeRequest('/', `127.0.0.1:${proxy.port}`);
      peer.socket.write(request);
      const head = await peer.head();
      assert.equal(head.status, 101, head.statusLine);
      assert.equal(head.header('sec-websocket-accept'), acceptFor(keyOf(request)));
      const frame = await peer.frame(head.end);
      assert.equal(frame.masked, false);
      assert.equal(frame.payload.toString(), 'hello first');
      await sleep(300);
      assert.equal(peer.buffer.length, frame.end, 'the early frame arrived exactly once and nothing else followed');
    } finally {
      peer.socket.destroy();
      for (const socket of originSockets) socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

describe('backpressure: a peer that stops reading keeps memory bounded', () => {
  // Unbounded, the whole stream would be buffered by the proxy within the pause.
  const TOTAL = 128 * MiB;
  const PAUSE_MS = 2_000;

  test('origin pushes as fast as it can to a paused client; nothing is lost when it resumes', { timeout: 30_000 }, async (t) => {
    const originSockets: Socket[] = [];
    let sender: Sender | undefined;
    const origin = await startOrigin({
      onUpgrade: (req, socket) => {
        originSockets.push(socket);
        socket.write(rawAcceptHead(req));
        sender = new Sender(socket, TOTAL);
      },
    });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 30_000 } });
    const client = net.connect(proxy.port, '127.0.0.1');
    client.on('error', () => undefined);
    try {
      const rssBefore = process.memoryUsage().rss;
      const receiver = new Receiver();
      let headText = '';
      let upgraded = false;
      client.on('data', (chunk: Buffer) => {
        if (upgraded) {
          receiver.take(chunk);
          return;
        }
        headText += chunk.toString('latin1');
        const end = headText.indexOf('\r\n\r\n');
        if (end < 0) return;
        upgraded = true;
        client.pause(); // stop reading from here on
        receiver.take(chunk.subarray(chunk.length - (headText.length - end - 4)));
      });
      client.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      await waitFor(() => upgraded, 2_000, 'the 101');
      assert.match(headText, /^HTTP\/1\.1 101 /);

      const rssPeak = await sampleRssFor(PAUSE_MS);
      const writtenDuringPause = sender!.written;
      client.resume();
      await waitFor(() => receiver.count === TOTAL, 20_000, 'every byte to arrive after resuming');

      t.diagnostic(`origin wrote ${mib(writtenDuringPause)} of ${mib(TOTAL)} during the pause; RSS peak +${mib(rssPeak - rssBefore)}`);
      assert.ok(writtenDuringPause < 64 * MiB, `origin wrote ${mib(writtenDuringPause)} while the client was paused`);
      assert.ok(rssPeak - rssBefore < 64 * MiB, `RSS grew ${mib(rssPeak - rssBefore)} during the pause`);
      assert.equal(receiver.count, sender!.written);
      assert.equal(receiver.digest(), sender!.digest());
    } finally {
      client.destroy();
      for (const socket of originSockets) socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('client pushes as fast as it can to an origin that stopped reading; nothing is lost when it resumes', { timeout: 30_000 }, async (t) => {
    let originSocket: Socket | undefined;
    const receiver = new Receiver();
    const origin = await startOrigin({
      onUpgrade: (req, socket) => {
        originSocket = socket;
        socket.pause(); // the origin reads nothing until told to
        socket.on('data', (chunk: Buffer) => receiver.take(chunk));
        socket.write(rawAcceptHead(req));
      },
    });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 30_000 } });
    const client = net.connect(proxy.port, '127.0.0.1');
    client.on('error', () => undefined);
    try {
      const rssBefore = process.memoryUsage().rss;
      let headText = '';
      client.on('data', (chunk: Buffer) => { headText += chunk.toString('latin1'); });
      client.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      await waitFor(() => headText.includes('\r\n\r\n'), 2_000, 'the 101');
      assert.match(headText, /^HTTP\/1\.1 101 /);
      assert.ok(originSocket);
      const upstream = originSocket;

      const sender = new Sender(client, TOTAL);
      const rssPeak = await sampleRssFor(PAUSE_MS);
      const writtenDuringPause = sender.written;
      upstream.resume();
      await waitFor(() => receiver.count === TOTAL, 20_000, 'every byte to arrive after resuming');

      t.diagnostic(`client wrote ${mib(writtenDuringPause)} of ${mib(TOTAL)} during the pause; RSS peak +${mib(rssPeak - rssBefore)}`);
      assert.ok(writtenDuringPause < 64 * MiB, `client wrote ${mib(writtenDuringPause)} while the origin was paused`);
      assert.ok(rssPeak - rssBefore < 64 * MiB, `RSS grew ${mib(rssPeak - rssBefore)} during the pause`);
      assert.equal(receiver.count, sender.written);
      assert.equal(receiver.digest(), sender.digest());
    } finally {
      client.destroy();
      originSocket?.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

describe('FIN: passed on, half-close works, torn down once both sides are done', () => {
  test('client FIN reaches the origin, the origin can still send, then both close', { timeout: 5_000 }, async () => {
    const originSockets: RawSide[] = [];
    const origin = await startOrigin({
      onUpgrade: (req, socket) => {
        socket.write(rawAcceptHead(req));
        originSockets.push(new RawSide(socket));
      },
    });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      peer.socket.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      const head = await peer.head();
      assert.equal(head.status, 101, head.statusLine);
      await waitFor(() => proxy.proxy.registry.tunnels.size === 1, 1_000, 'the tunnel');
      const upstream = originSockets[0]!;

      peer.socket.end();
      await waitFor(() => upstream.ended, 1_000, 'the origin to see the FIN');

      // Half-closed: the other direction still carries data.
      upstream.socket.write('after the client FIN');
      await waitFor(() => peer.buffer.subarray(head.end).toString() === 'after the client FIN', 1_000, 'data after the FIN');
      assert.equal(peer.closed, false);

      upstream.socket.end();
      await waitFor(() => peer.ended && peer.closed, 1_000, 'the client to see the FIN and close');
      await waitFor(() => upstream.closed, 1_000, 'the origin socket to close');
      await waitFor(() => proxy.proxy.registry.tunnels.size === 0, 1_000, 'the tunnel to be retired');
      assert.equal(peer.hadError, false);
      assert.equal(upstream.hadError, false);
    } finally {
      peer.socket.destroy();
      for (const side of originSockets) side.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('origin FIN reaches the client, the client can still send, then both close', { timeout: 5_000 }, async () => {
    const originSockets: RawSide[] = [];
    const origin = await startOrigin({
      onUpgrade: (req, socket) => {
        socket.write(rawAcceptHead(req));
        originSockets.push(new RawSide(socket));
      },
    });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    // allowHalfOpen: the client keeps writing after the origin's FIN.
    const peer = await RawPeer.connect(proxy.port, true);
    try {
      peer.socket.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      const head = await peer.head();
      assert.equal(head.status, 101, head.statusLine);
      await waitFor(() => originSockets.length === 1, 1_000, 'the origin socket');
      const upstream = originSockets[0]!;

      upstream.socket.end();
      await waitFor(() => peer.ended, 1_000, 'the client to see the FIN');

      peer.socket.write('after the origin FIN');
      await waitFor(() => upstream.text === 'after the origin FIN', 1_000, 'data after the FIN');
      assert.equal(upstream.closed, false);

      peer.socket.end();
      await waitFor(() => upstream.ended, 1_000, 'the origin to see the FIN');
      await waitFor(() => peer.closed && upstream.closed, 1_000, 'both sockets to close');
      await waitFor(() => proxy.proxy.registry.tunnels.size === 0, 1_000, 'the tunnel to be retired');
      assert.equal(peer.hadError, false);
      assert.equal(upstream.hadError, false);
    } finally {
      peer.socket.destroy();
      for (const side of originSockets) side.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });
  test('a client FIN sent before the 101 is not lost: the origin sees it and both sides close', { timeout: 5_000 }, async () => {
    const originSockets: RawSide[] = [];
    const origin = await startOrigin({
      onUpgrade: (req, socket) => {
        const side = new RawSide(socket);
        originSockets.push(side);
        // A well-behaved backend: it answers a little later, and ends when the client has.
        socket.on('end', () => socket.end());
        setTimeout(() => socket.write(rawAcceptHead(req)), 100);
      },
    });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port, true);
    try {
      peer.socket.end(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
      await waitFor(() => originSockets.length === 1, 1_000, 'the handshake at the origin');
      const upstream = originSockets[0]!;
      // Whether the proxy passes the FIN on after the 101 or gives up the
      // handshake, the origin must learn that the client is done, well before
      // the 5 s idle timeout would clean up.
      await waitFor(() => upstream.ended || upstream.closed, 1_500, 'the origin to see the client FIN');
      await waitFor(() => peer.closed && upstream.closed, 1_000, 'both sockets to close');
      await waitFor(() => proxy.proxy.registry.tunnels.size === 0 && proxy.proxy.registry.inFlight === 0, 1_000, 'the registry to empty');
    } finally {
      peer.socket.destroy();
      for (const side of originSockets) side.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

describe('an error or reset on one side destroys the other', () => {
  test('client reset closes the origin side within a second', { timeout: 5_000 }, async () => {
    const originClosed: number[] = [];
    const origin = await startOrigin({ onWebSocket: (ws) => ws.on('close', () => originClosed.push(Date.now())) });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      await peer.upgrade(proxy.port);
      await waitFor(() => origin.sockets.size === 1, 1_000, 'the origin WebSocket');
      const resetAt = Date.now();
      peer.socket.resetAndDestroy();
      await waitFor(() => originClosed.length === 1, 1_000, 'the origin side to close');
      assert.ok(originClosed[0]! - resetAt < 1_000);
      await waitFor(() => proxy.proxy.registry.tunnels.size === 0, 1_000, 'the tunnel to be retired');
    } finally {
      peer.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('origin reset closes the client within a second', { timeout: 5_000 }, async () => {
    const originSockets: Socket[] = [];
    const origin = await startOrigin({
      onUpgrade: (req, socket) => {
        originSockets.push(socket);
        socket.write(rawAcceptHead(req));
      },
    });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      await peer.upgrade(proxy.port);
      await waitFor(() => proxy.proxy.registry.tunnels.size === 1, 1_000, 'the tunnel');
      const resetAt = Date.now();
      originSockets[0]!.resetAndDestroy();
      await waitFor(() => peer.closed, 1_000, 'the client to close');
      assert.ok(Date.now() - resetAt < 1_000);
      await waitFor(() => proxy.proxy.registry.tunnels.size === 0, 1_000, 'the tunnel to be retired');
    } finally {
      peer.socket.destroy();
      for (const socket of originSockets) socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('origin WebSocket terminate() closes the client within a second', { timeout: 5_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    const peer = await RawPeer.connect(proxy.port);
    try {
      await peer.upgrade(proxy.port);
      await waitFor(() => origin.sockets.size === 1, 1_000, 'the origin WebSocket');
      const terminatedAt = Date.now();
      for (const ws of origin.sockets) ws.terminate();
      await waitFor(() => peer.closed, 1_000, 'the client to close');
      assert.ok(Date.now() - terminatedAt < 1_000);
      await waitFor(() => proxy.proxy.registry.tunnels.size === 0, 1_000, 'the tunnel to be retired');
    } finally {
      peer.socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

describe('idle timeout (tunnelIdleMs: 300)', () => {
  let origin: Origin;
  let proxy: TestProxy;
  const received: string[] = [];
  let ticking: ((ws: WebSocket) => void) | undefined;
  const originClosed: number[] = [];
  before(async () => {
    // Never echoes: traffic flows one way only.
    origin = await startOrigin({
      onWebSocket: (ws) => {
        ws.on('message', (data) => received.push(String(data)));
        ws.on('close', () => originClosed.push(Date.now()));
        ticking?.(ws);
      },
    });
    proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 300 } });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  test('an idle tunnel closes both sides at about 300 ms', { timeout: 5_000 }, async () => {
    const closedBefore = originClosed.length;
    const peer = await RawPeer.connect(proxy.port);
    try {
      await peer.upgrade(proxy.port);
      const upgradedAt = Date.now();
      await waitFor(() => peer.closed, 2_000, 'the idle tunnel to close');
      const elapsed = Date.now() - upgradedAt;
      assert.ok(elapsed >= 250 && elapsed < 800, `closed after ${elapsed} ms`);
      await waitFor(() => originClosed.length === closedBefore + 1, 1_000, 'the origin side to close');
      await waitFor(() => proxy.proxy.registry.tunnels.size === 0, 1_000, 'the tunnel to be retired');
    } finally {
      peer.socket.destroy();
    }
  });

  test('client-to-origin traffic every 100 ms keeps the tunnel open well past 300 ms', { timeout: 5_000 }, async () => {
    received.length = 0;
    const peer = await RawPeer.connect(proxy.port);
    try {
      await peer.upgrade(proxy.port);
      for (let i = 0; i < 12; i++) {
        await sleep(100);
        assert.equal(peer.closed, false, `closed after ${i * 100} ms of one-way traffic`);
        peer.socket.write(clientFrame(0x1, `up ${i}`));
      }
      await waitFor(() => received.length === 12, 1_000, 'all 12 messages at the origin');
      assert.equal(peer.closed, false);
      // Once the traffic stops, the idle timeout applies again.
      await waitFor(() => peer.closed, 1_500, 'the tunnel to close once idle');
    } finally {
      peer.socket.destroy();
    }
  });

  test('origin-to-client traffic every 100 ms keeps the tunnel open well past 300 ms', { timeout: 5_000 }, async () => {
    ticking = (ws) => {
      let sent = 0;
      const timer = setInterval(() => {
        if (sent === 12 || ws.readyState !== ws.OPEN) {
          clearInterval(timer);
          return;
        }
        ws.send(`down ${sent++}`);
      }, 100);
      ws.on('close', () => clearInterval(timer));
    };
    const peer = await RawPeer.connect(proxy.port);
    try {
      const head = await peer.upgrade(proxy.port);
      await sleep(1_250);
      assert.equal(peer.closed, false, 'closed although the origin kept sending');
      const frames = peer.frames(head.end);
      assert.ok(frames.length >= 11, `got ${frames.length} frames`);
      assert.equal(frames[0]!.payload.toString(), 'down 0');
      await waitFor(() => peer.closed, 1_500, 'the tunnel to close once idle');
    } finally {
      ticking = undefined;
      peer.socket.destroy();
    }
  });
});

describe('server timeouts never write into an upgraded connection', () => {
  let origin: Origin;
  let proxy: TestProxy;
  before(async () => {
    origin = await startOrigin();
    proxy = await startProxy({ servers: [origin.url], timeouts: { headerMs: 300, keepAliveMs: 300, tunnelIdleMs: 60_000 } });
  });
  after(async () => {
    await proxy.close();
    await origin.close();
  });

  test('a tunnel idle for 2 s (headerMs and keepAliveMs 300) receives no bytes and still echoes', { timeout: 6_000 }, async () => {
    const peer = await RawPeer.connect(proxy.port);
    try {
      const head = await peer.upgrade(proxy.port);
      await sleep(2_000);
      assert.equal(peer.buffer.length, head.end, `unexpected bytes: ${JSON.stringify(peer.buffer.subarray(head.end).toString('latin1'))}`);
      assert.equal(peer.closed, false);
      peer.socket.write(clientFrame(0x1, 'still here'));
      assert.equal((await peer.frame(head.end)).payload.toString(), 'still here');
    } finally {
      peer.socket.destroy();
    }
  });

  test('the same after a keep-alive request on the same connection', { timeout: 6_000 }, async () => {
    const peer = await RawPeer.connect(proxy.port);
    try {
      peer.socket.write(`GET /first HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\n\r\n`);
      await waitFor(() => peer.buffer.includes('\r\n0\r\n\r\n'), 2_000, 'the first (chunked) response');
      assert.match(peer.buffer.toString('latin1'), /^HTTP\/1\.1 200 /);
      peer.buffer = Buffer.alloc(0);

      const head = await peer.upgrade(proxy.port);
      await sleep(2_000);
      assert.equal(peer.buffer.length, head.end, `unexpected bytes: ${JSON.stringify(peer.buffer.subarray(head.end).toString('latin1'))}`);
      assert.equal(peer.closed, false);
      peer.socket.write(clientFrame(0x1, 'still here'));
      assert.equal((await peer.frame(head.end)).payload.toString(), 'still here');
    } finally {
      peer.socket.destroy();
    }
  });
});

// ---------------------------------------------------------------------------
// Helpers

interface Head {
  status: number;
  statusLine: string;
  end: number;
  header(name: string): string | undefined;
}

interface Frame {
  opcode: number;
  masked: boolean;
  payload: Buffer;
  end: number;
}

/** A raw client connection that keeps every byte it receives, to parse the head and frames. */
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

  static connect(port: number, allowHalfOpen = false): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen }, () => resolve(new RawPeer(socket)));
      socket.once('error', reject);
    });
  }

  /** Sends a handshake and resolves with the 101 head. */
  async upgrade(port: number): Promise<Head> {
    this.socket.write(handshakeRequest('/', `127.0.0.1:${port}`));
    const head = await this.head();
    assert.equal(head.status, 101, head.statusLine);
    return head;
  }

  async head(): Promise<Head> {
    await waitFor(() => this.buffer.includes('\r\n\r\n') || this.closed, 2_000, 'a response head');
    const at = this.buffer.indexOf('\r\n\r\n');
    assert.ok(at >= 0, `no response head; got ${JSON.stringify(this.buffer.toString('latin1'))}`);
    const [statusLine = '', ...lines] = this.buffer.subarray(0, at).toString('latin1').split('\r\n');
    return {
      status: Number(statusLine.split(' ')[1]),
      statusLine,
      end: at + 4,
      header: (name) => {
        const line = lines.find((l) => l.toLowerCase().startsWith(`${name}:`));
        return line?.slice(name.length + 1).trim();
      },
    };
  }

  async frame(offset: number): Promise<Frame> {
    await waitFor(() => parseFrame(this.buffer, offset) !== undefined || this.closed, 2_000, 'a frame');
    const frame = parseFrame(this.buffer, offset);
    assert.ok(frame, 'the connection closed before a whole frame arrived');
    return frame;
  }

  /** Every complete frame received from `offset` on. */
  frames(offset: number): Frame[] {
    const frames: Frame[] = [];
    for (let frame = parseFrame(this.buffer, offset); frame; frame = parseFrame(this.buffer, frame.end)) frames.push(frame);
    return frames;
  }
}

/** An origin-side raw socket with what happened to it. */
class RawSide {
  text = '';
  ended = false;
  closed = false;
  hadError = false;

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => { this.text += chunk.toString('latin1'); });
    socket.on('end', () => { this.ended = true; });
    socket.on('error', () => { this.hadError = true; });
    socket.on('close', () => { this.closed = true; });
  }
}

/**
 * Writes `total` bytes as fast as the socket accepts them, honouring write()'s
 * backpressure, from 17 distinct random blocks (a lost or reordered block
 * changes the digest).
 */
class Sender {
  written = 0;
  private readonly hash = createHash('sha256');
  private readonly blocks = Array.from({ length: 17 }, () => randomBytes(64 * 1024));
  private next = 0;

  constructor(private readonly socket: Socket, private readonly total: number) {
    this.pump();
  }

  digest(): string {
    return this.hash.copy().digest('hex');
  }

  private pump = (): void => {
    while (this.written < this.total && !this.socket.destroyed) {
      const block = this.blocks[this.next++ % this.blocks.length]!;
      this.hash.update(block);
      this.written += block.length;
      if (!this.socket.write(block)) {
        this.socket.once('drain', this.pump);
        return;
      }
    }
  };
}

class Receiver {
  count = 0;
  private readonly hash = createHash('sha256');

  take(chunk: Buffer): void {
    this.count += chunk.length;
    this.hash.update(chunk);
  }

  digest(): string {
    return this.hash.copy().digest('hex');
  }
}

/** Samples this process's RSS for `ms` and resolves with the peak. */
async function sampleRssFor(ms: number): Promise<number> {
  let peak = process.memoryUsage().rss;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    await sleep(50);
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  return peak;
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

/** A valid 101 for a raw origin that accepts the handshake itself. */
function rawAcceptHead(req: IncomingMessage): string {
  const accept = acceptFor(req.headers['sec-websocket-key'] ?? '');
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
}

/** An unmasked (server) frame with a short payload. */
function serverFrame(opcode: number, payload: string): Buffer {
  const data = Buffer.from(payload);
  assert.ok(data.length < 126);
  return Buffer.concat([Buffer.from([0x80 | opcode, data.length]), data]);
}

function parseFrame(buffer: Buffer, offset: number): Frame | undefined {
  if (buffer.length < offset + 2) return undefined;
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
  return { opcode: buffer[offset]! & 0x0f, masked, payload, end: at + length };
}

function keyOf(request: string): string {
  const match = /^Sec-WebSocket-Key: (.+)$/im.exec(request);
  assert.ok(match?.[1]);
  return match[1].trim();
}

function acceptFor(key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64');
}
