/**
 * A route's `websocket:` policies and the top-level `drain:` pacing, end to end:
 * a real Switchyard started from YAML in this process, a real `ws` backend
 * behind it and `ws` clients (raw sockets where a client must misbehave), all
 * on 127.0.0.1:0. Covers proxy pings (and that the proxy swallows its own
 * pongs), max_age, max_message_bytes, max_messages_per_second, the Origin and
 * subprotocol checks of the handshake, and the paced 1001 closes of shutdown.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { WebSocket } from 'ws';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { AccessLog } from '../../src/observe/access-log.js';
import type { TunnelRecord } from '../../src/observe/records.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { connectRaw, readUntil, sleep, waitFor } from '../helpers/raw.js';
import { acceptByHand, handshakeRequest } from '../helpers/websocket-frames.js';

const TEST_TIMEOUT = 20_000;

// ---------------------------------------------------------------- harness

const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

interface Running {
  readonly proxy: Switchyard;
  readonly port: number;
  readonly wsUrl: string;
  readonly logFile: string;
  /** Tunnel lines of the access log so far. */
  tunnelRecords(): TunnelRecord[];
}

/** A ws backend that records, per accepted socket, its messages, pings, pongs and close. */
interface BackendPeer {
  readonly ws: WebSocket;
  readonly req: IncomingMessage;
  readonly messages: Buffer[];
  readonly pings: Buffer[];
  readonly pongs: Buffer[];
  /** performance.now() of the handshake. */
  readonly openedAt: number;
  readonly closed: Promise<Closed>;
  closedWith: Closed | undefined;
}

interface Closed {
  code: number;
  reason: string;
  /** performance.now() of the 'close' event. */
  at: number;
}

interface Backend {
  readonly origin: Origin;
  readonly peers: BackendPeer[];
}

async function startBackend(t: TestContext): Promise<Backend> {
  const peers: BackendPeer[] = [];
  const origin = await startOrigin({
    name: 'ws-backend',
    onWebSocket: (ws, req) => {
      let resolveClosed!: (closed: Closed) => void;
      const peer: BackendPeer = {
        ws, req, messages: [], pings: [], pongs: [], openedAt: performance.now(),
        closed: new Promise<Closed>((resolve) => { resolveClosed = resolve; }),
        closedWith: undefined,
      };
      ws.on('message', (data: Buffer, isBinary) => {
        peer.messages.push(Buffer.from(data));
        ws.send(data, { binary: isBinary });
      });
      ws.on('ping', (data: Buffer) => peer.pings.push(Buffer.from(data)));
      ws.on('pong', (data: Buffer) => peer.pongs.push(Buffer.from(data)));
      ws.on('close', (code, reason) => {
        peer.closedWith = { code, reason: reason.toString(), at: performance.now() };
        resolveClosed(peer.closedWith);
      });
      peers.push(peer);
    },
  });
  t.after(() => origin.close());
  return { origin, peers };
}

/** Starts Switchyard from YAML with one catch-all route to `backend`, the route's `websocket:` block and top-level extras. */
async function startProxy(t: TestContext, backend: Backend, websocket: string | undefined, topLevel = ''): Promise<Running> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-ws-policies-'));
  tempDirs.push(dir);
  const logFile = join(dir, 'access.log');
  const lines = [
    'listeners:',
    '  - address: 127.0.0.1:0',
    'sites:',
    '  - routes:',
    `      - to: ${backend.origin.wsUrl}`,
    ...(websocket === undefined ? [] : ['        websocket:', ...websocket.trim().split('\n').map((line) => `          ${line.trim()}`)]),
    ...(topLevel === '' ? [] : topLevel.trim().split('\n').map((line) => line.trim())),
  ];
  const yaml = `${lines.join('\n')}\n`;
  const { config } = loadConfigText(yaml, 'websocket-policies.test.yaml', { env: {}, defaultSecret: 'websocket-policies-secret-0123456789' });
  const accessLog = new AccessLog({ path: logFile, format: 'json' }, silentLogger());
  const proxy = await Switchyard.start(config, silentLogger(), { accessLog });
  t.after(async () => {
    await proxy.shutdown(0);
    accessLog.flush();
    accessLog.close();
  });
  const port = proxy.addresses[0]!.port;
  return {
    proxy,
    port,
    wsUrl: `ws://127.0.0.1:${port}`,
    logFile,
    tunnelRecords: () => {
      accessLog.flush();
      if (!existsSync(logFile)) return [];
      return readFileSync(logFile, 'utf8').split('\n').filter((line) => line !== '')
        .map((line) => JSON.parse(line) as TunnelRecord & { type: string })
        .filter((line) => line.type === 'tunnel');
    },
  };
}

interface Client {
  readonly ws: WebSocket;
  readonly messages: Buffer[];
  readonly pings: Buffer[];
  readonly pongs: Buffer[];
  /** performance.now() when the client saw the 101. */
  openedAt: number;
  readonly closed: Promise<Closed>;
  closedWith: Closed | undefined;
}

/** A ws client, open (rejects on a failed handshake or after `ms`). */
async function openClient(t: TestContext, url: string, protocols?: string[], options: { origin?: string } = {}, ms = 3_000): Promise<Client> {
  const ws = new WebSocket(url, protocols, { handshakeTimeout: ms, ...(options.origin ? { origin: options.origin } : {}) });
  t.after(() => ws.terminate());
  let resolveClosed!: (closed: Closed) => void;
  const client: Client = {
    ws, messages: [], pings: [], pongs: [], openedAt: 0,
    closed: new Promise<Closed>((resolve) => { resolveClosed = resolve; }),
    closedWith: undefined,
  };
  ws.on('message', (data: Buffer) => client.messages.push(Buffer.from(data)));
  ws.on('ping', (data: Buffer) => client.pings.push(Buffer.from(data)));
  ws.on('pong', (data: Buffer) => client.pongs.push(Buffer.from(data)));
  ws.on('close', (code, reason) => {
    client.closedWith = { code, reason: reason.toString(), at: performance.now() };
    resolveClosed(client.closedWith);
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => {
      client.openedAt = performance.now();
      resolve();
    });
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res: IncomingMessage) => reject(new Error(`handshake answered ${res.statusCode}`)));
  });
  ws.on('error', () => undefined);
  return client;
}

/** A promise that settles with `promise`, or rejects after `ms` saying what was awaited. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits for the next message on a client. */
async function nextMessage(client: Client, count: number, ms = 2_000): Promise<Buffer> {
  await waitFor(() => client.messages.length >= count, ms, `message #${count} on the client`);
  return client.messages[count - 1]!;
}

interface HandshakeAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The subprotocol the client got (status 101). */
  protocol: string;
}

/** One handshake with a ws client: its status (101 or the refusal), headers and chosen subprotocol; closes at once. */
function handshake(url: string, protocols: string[] | undefined, origin: string | undefined, ms = 3_000): Promise<HandshakeAnswer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { handshakeTimeout: ms, ...(origin !== undefined ? { origin } : {}) });
    ws.on('error', (err) => reject(err));
    ws.once('upgrade', (res: IncomingMessage) => {
      ws.once('open', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, protocol: ws.protocol });
        ws.terminate();
      });
    });
    ws.once('unexpected-response', (req, res: IncomingMessage) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, headers: res.headers, protocol: '' });
      req.destroy();
      ws.terminate();
    });
  });
}

interface RawFrame {
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Parses whole frames from the start of `bytes` (a trailing partial frame is ignored). */
function parseFrames(bytes: Buffer): RawFrame[] {
  const frames: RawFrame[] = [];
  let at = 0;
  while (bytes.length - at >= 2) {
    const b0 = bytes[at]!;
    const b1 = bytes[at + 1]!;
    let offset = at + 2;
    let length = b1 & 0x7f;
    if (length === 126) {
      if (bytes.length - offset < 2) break;
      length = bytes.readUInt16BE(offset);
      offset += 2;
    } else if (length === 127) {
      if (bytes.length - offset < 8) break;
      length = Number(bytes.readBigUInt64BE(offset));
      offset += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    const key = masked ? bytes.subarray(offset, offset + 4) : undefined;
    if (masked) offset += 4;
    if (bytes.length - offset < length) break;
    const payload = Buffer.from(bytes.subarray(offset, offset + length));
    if (key) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
    frames.push({ opcode: b0 & 0x0f, masked, payload });
    at = offset + length;
  }
  return frames;
}

// ---------------------------------------------------------------- proxy pings

describe('websocket.ping: the proxy pings quiet peers', () => {
  test('a healthy idle client and backend stay open; both get the proxy\'s pings, neither sees a pong', { timeout: TEST_TIMEOUT }, async (t) => {
    const backend = await startBackend(t);
    const proxy = await startProxy(t, backend, 'ping: { interval: 200ms, timeout: 300ms }');
    const client = await openClient(t, `${proxy.wsUrl}/idle`);
    await waitFor(() => backend.peers.length === 1, 2_000, 'the backend WebSocket');
    const peer = backend.peers[0]!;

    await sleep(1_600);

    assert.equal(client.closedWith, undefined, `the client was closed: ${JSON.stringify(client.closedWith)}`);
    assert.equal(peer.closedWith, undefined, `the backend was closed: ${JSON.stringify(peer.closedWith)}`);
    assert.equal(client.ws.readyState, WebSocket.OPEN);
    // Pings arrive on both sides (about one per 200-250 ms of silence)...
    assert.ok(client.pings.length >= 3, `the client got ${client.pings.length} pings in 1.6 s`);
    assert.ok(peer.pings.length >= 3, `the backend got ${peer.pings.length} pings in 1.6 s`);
    for (const ping of [...client.pings, ...peer.pings]) assert.match(ping.toString('latin1'), /^switchyard:/);
    // ...and the pongs ws answers with are the proxy's: none is passed on.
    assert.deepEqual(client.pongs.map(String), [], 'the client saw pongs');
    assert.deepEqual(peer.pongs.map(String), [], 'the backend saw pongs');
    assert.deepEqual(client.messages, []);
    assert.deepEqual(peer.messages, []);

    // The tunnel still carries data both ways.
    client.ws.send('still here');
    assert.equal((await nextMessage(client, 1)).toString(), 'still here');
    assert.deepEqual(peer.messages.map(String), ['still here']);
    assert.deepEqual(proxy.tunnelRecords(), [], 'no tunnel ended');
  });

  test('a client that never answers is closed: the backend gets 1001 within interval + timeout', { timeout: TEST_TIMEOUT }, async (t) => {
    const backend = await startBackend(t);
    const proxy = await startProxy(t, backend, 'ping: { interval: 200ms, timeout: 300ms }');
    const socket: Socket = await connectRaw(proxy.port);
    t.after(() => socket.destroy());
    socket.on('error', () => undefined);
    socket.write(handshakeRequest('/frozen', `127.0.0.1:${proxy.port}`));
    const head = await readUntil(socket, '\r\n\r\n');
    const openedAt = performance.now();
    assert.match(head, /^HTTP\/1\.1 101 /);
    // Frozen: reads nothing more, writes nothing (no pong, no close).
    socket.pause();
    await waitFor(() => backend.peers.length === 1, 2_000, 'the backend WebSocket');
    const peer = backend.peers[0]!;

    const closed = await within(peer.closed, 3_000, 'close on the backend');
    const elapsed = closed.at - openedAt;
    assert.equal(closed.code, 1001, `backend close code ${closed.code} (${closed.reason})`);
    // The first ping goes out after 200 ms of silence, its pong is due 300 ms later.
    assert.ok(elapsed >= 450, `closed after ${Math.round(elapsed)} ms: before the pong was due`);
    // interval + timeout = 500 ms, plus up to two checks (50 ms each) and scheduling slack.
    assert.ok(elapsed < 900, `closed after ${Math.round(elapsed)} ms: later than interval + timeout + slack`);
    assert.ok(peer.pings.length >= 1, 'the healthy backend was pinged too');
    assert.deepEqual(peer.pongs, []);

    // The tunnel ends (the frozen client never answers the close: cut after the timeout) and is logged.
    await waitFor(() => proxy.tunnelRecords().length === 1, 3_000, 'the tunnel\'s access log line');
    const record = proxy.tunnelRecords()[0]!;
    assert.equal(record.closed_by, 'ping_timeout');
    assert.equal(record.backend_close?.code, 1001);
    assert.equal(proxy.proxy.registry.tunnels.size, 0);

    // What the frozen client was sent: unmasked pings, then an unmasked close 1001.
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.resume();
    await within(new Promise((resolve) => socket.once('close', resolve)), 2_000, 'the frozen client\'s connection to end');
    const frames = parseFrames(Buffer.concat(received));
    const pings = frames.filter((frame) => frame.opcode === 0x9);
    const closes = frames.filter((frame) => frame.opcode === 0x8);
    assert.ok(pings.length >= 1, `frames to the client: ${JSON.stringify(frames.map((f) => f.opcode))}`);
    assert.ok(pings.every((ping) => !ping.masked && ping.payload.toString('latin1').startsWith('switchyard:')));
    assert.equal(closes.length, 1, `frames to the client: ${JSON.stringify(frames.map((f) => f.opcode))}`);
    assert.equal(closes[0]!.masked, false, 'a close toward the client is not masked');
    assert.equal(closes[0]!.payload.readUInt16BE(0), 1001);
    assert.equal(frames[frames.length - 1]!.opcode, 0x8, 'nothing after the close');
  });
});

// ---------------------------------------------------------------- max_age

describe('websocket.max_age', () => {
  test('a tunnel is recycled with 1012 to the client and to the backend at about max_age', { timeout: TEST_TIMEOUT }, async (t) => {
    const backend = await startBackend(t);
    const proxy = await startProxy(t, backend, 'max_age: 500ms\nmax_age_jitter: 0');
    const client = await openClient(t, `${proxy.wsUrl}/aging`);
    await waitFor(() => backend.peers.length === 1, 2_000, 'the backend WebSocket');
    const peer = backend.peers[0]!;
    client.ws.send('young');
    assert.equal((await nextMessage(client, 1)).toString(), 'young');

    const closed = await within(client.closed, 4_000, 'close on the client');
    const elapsed = closed.at - client.openedAt;
    assert.equal(closed.code, 1012, `client close code ${closed.code} (${closed.reason})`);
    assert.ok(elapsed >= 400 && elapsed <= 1_500, `client closed after ${Math.round(elapsed)} ms, expected about 500`);
    const backendClosed = await within(peer.closed, 2_000, 'close on the backend');
    assert.equal(backendClosed.code, 1012, `backend close code ${backendClosed.code} (${backendClosed.reason})`);
    assert.ok(backendClosed.at - peer.openedAt < 1_500, `backend closed after ${Math.round(backendClosed.at - peer.openedAt)} ms`);

    await waitFor(() => proxy.tunnelRecords().length === 1, 2_000, 'the tunnel\'s access log line');
    assert.equal(proxy.tunnelRecords()[0]!.closed_by, 'max_age');
  });
});

// ---------------------------------------------------------------- message limits

interface Refusal {
  readonly proxy: Running;
  readonly client: Client;
  readonly peer: BackendPeer;
  /** performance.now() when the refused message was sent. */
  readonly sentAt: number;
  /** The client's close. */
  readonly closed: Closed;
}

/** 900 bytes (passes, echoed), then 2000 bytes through a route with max_message_bytes: 1000. */
async function sendTooBig(t: TestContext): Promise<Refusal> {
  const backend = await startBackend(t);
  const proxy = await startProxy(t, backend, 'max_message_bytes: 1000');
  const client = await openClient(t, `${proxy.wsUrl}/big`);
  await waitFor(() => backend.peers.length === 1, 2_000, 'the backend WebSocket');
  const peer = backend.peers[0]!;
  const small = Buffer.alloc(900, 0x61);
  client.ws.send(small);
  assert.ok((await nextMessage(client, 1)).equals(small), 'a 900-byte message goes through and back');
  assert.deepEqual(peer.messages.map((message) => message.length), [900]);
  const sentAt = performance.now();
  client.ws.send(Buffer.alloc(2000, 0x62));
  const closed = await within(client.closed, 8_000, 'close on the client');
  return { proxy, client, peer, sentAt, closed };
}

/** 20 messages at once through a route with max_messages_per_second: 5. */
async function sendTooMany(t: TestContext): Promise<Refusal> {
  const backend = await startBackend(t);
  const proxy = await startProxy(t, backend, 'max_messages_per_second: 5');
  const client = await openClient(t, `${proxy.wsUrl}/chatty`);
  await waitFor(() => backend.peers.length === 1, 2_000, 'the backend WebSocket');
  const peer = backend.peers[0]!;
  const sentAt = performance.now();
  for (let i = 0; i < 20; i++) client.ws.send(`message ${i}`);
  const closed = await within(client.closed, 8_000, 'close on the client');
  return { proxy, client, peer, sentAt, closed };
}

/** The other side of a policy close gets a close frame 1001 (TunnelControl.policyClose), promptly. */
async function assertBackendGot1001(refusal: Refusal): Promise<void> {
  const { peer, sentAt } = refusal;
  const backendClosed = await within(peer.closed, 8_000, 'close on the backend');
  assert.equal(backendClosed.code, 1001,
    `the backend's connection ended ${Math.round(backendClosed.at - sentAt)} ms after the refused message with code ${backendClosed.code}`
    + `${backendClosed.code === 1006 ? ' (no close frame reached it)' : ''}`);
  assert.ok(backendClosed.at - sentAt < 2_000, `the backend's connection ended ${Math.round(backendClosed.at - sentAt)} ms after the refused message`);
}

describe('websocket.max_message_bytes', () => {
  test('a message above the limit closes the client with 1009 and never reaches the backend', { timeout: TEST_TIMEOUT }, async (t) => {
    const { closed, peer, sentAt, proxy } = await sendTooBig(t);
    assert.equal(closed.code, 1009, `client close code ${closed.code} (${closed.reason})`);
    await within(peer.closed, 8_000, 'the backend connection to end');
    assert.deepEqual(peer.messages.map((message) => message.length), [900], 'the backend got the big message');
    assert.ok(closed.at - sentAt < 2_000, `the client's connection ended ${Math.round(closed.at - sentAt)} ms after the big message`);
    await waitFor(() => proxy.tunnelRecords().length === 1, 2_000, 'the tunnel\'s access log line');
    assert.equal(proxy.tunnelRecords()[0]!.closed_by, 'policy');
  });

  test('the backend gets a close frame 1001 when the client\'s message is refused', { timeout: TEST_TIMEOUT }, async (t) => {
    const refusal = await sendTooBig(t);
    assert.equal(refusal.closed.code, 1009);
    await assertBackendGot1001(refusal);
  });

  test('after refusing a message the proxy still follows the client\'s frames: its close is logged, nothing is called malformed', { timeout: TEST_TIMEOUT }, async (t) => {
    const { closed, proxy } = await sendTooBig(t);
    assert.equal(closed.code, 1009);
    await waitFor(() => proxy.tunnelRecords().length === 1, 8_000, 'the tunnel\'s access log line');
    const record = proxy.tunnelRecords()[0]!;
    assert.equal(record.malformed, undefined, `the client's valid stream was logged as malformed: ${record.malformed}`);
    // ws answers the proxy's close frame with its own close frame (RFC 6455 §5.5.1).
    assert.ok(record.client_close, `the client's close frame is missing from the log line: ${JSON.stringify(record)}`);
  });
});

describe('websocket.max_messages_per_second', () => {
  test('20 quick messages with a limit of 5: the client gets 1008, the backend at most 5 messages', { timeout: TEST_TIMEOUT }, async (t) => {
    const { closed, peer } = await sendTooMany(t);
    assert.equal(closed.code, 1008, `client close code ${closed.code} (${closed.reason})`);
    await within(peer.closed, 8_000, 'the backend connection to end');
    assert.ok(peer.messages.length <= 5, `the backend got ${peer.messages.length} messages`);
    assert.ok(peer.messages.length >= 1, 'the first messages pass');
    assert.deepEqual(peer.messages.map(String), Array.from({ length: peer.messages.length }, (_, i) => `message ${i}`));
  });

  test('the backend gets a close frame 1001 when the client exceeds the rate', { timeout: TEST_TIMEOUT }, async (t) => {
    const refusal = await sendTooMany(t);
    assert.equal(refusal.closed.code, 1008);
    await assertBackendGot1001(refusal);
  });

  test('after the rate limit refuses a message, the client\'s valid stream is not logged as malformed', { timeout: TEST_TIMEOUT }, async (t) => {
    const { closed, proxy } = await sendTooMany(t);
    assert.equal(closed.code, 1008);
    await waitFor(() => proxy.tunnelRecords().length === 1, 8_000, 'the tunnel\'s access log line');
    const record = proxy.tunnelRecords()[0]!;
    assert.equal(record.closed_by, 'policy');
    assert.equal(record.malformed, undefined, `the client's valid stream was logged as malformed: ${record.malformed}`);
  });

  test('5 messages a second for 2 s stay within the limit', { timeout: TEST_TIMEOUT }, async (t) => {
    const backend = await startBackend(t);
    const proxy = await startProxy(t, backend, 'max_messages_per_second: 5');
    const client = await openClient(t, `${proxy.wsUrl}/polite`);
    // Bursts of 4 per 1.1 s: never more than 5 in any window the proxy counts.
    for (let burst = 0; burst < 2; burst++) {
      for (let i = 0; i < 4; i++) client.ws.send(`m${burst}-${i}`);
      await nextMessage(client, (burst + 1) * 4);
      await sleep(1_100);
    }
    assert.equal(client.closedWith, undefined, `closed: ${JSON.stringify(client.closedWith)}`);
    assert.equal(backend.peers[0]!.messages.length, 8);
  });
});

// ---------------------------------------------------------------- handshake checks

describe('websocket.allowed_origins', () => {
  test('only listed origins (exact or *.) may open WebSockets; others get 403 SY_WEBSOCKET_ORIGIN_DENIED', { timeout: TEST_TIMEOUT }, async (t) => {
    const backend = await startBackend(t);
    const proxy = await startProxy(t, backend, 'allowed_origins: [https://app.example.com, "https://*.example.org"]');
    const url = `${proxy.wsUrl}/origin`;

    const cases: { origin: string | undefined; allowed: boolean }[] = [
      { origin: 'https://app.example.com', allowed: true },
      { origin: 'https://x.example.org', allowed: true },
      { origin: 'https://example.org', allowed: false },
      { origin: 'https://evil.com', allowed: false },
      { origin: undefined, allowed: false },
      { origin: 'http://app.example.com', allowed: false },
      { origin: 'https://x.example.org.evil.com', allowed: false },
      { origin: 'https://app.example.com.evil.com', allowed: false },
    ];
    for (const { origin, allowed } of cases) {
      const before = backend.origin.handshakes.length;
      const answer = await handshake(url, undefined, origin);
      const label = `Origin ${origin ?? '(none)'}`;
      if (allowed) {
        assert.equal(answer.status, 101, label);
        assert.equal(backend.origin.handshakes.length, before + 1, `${label}: the backend saw the handshake`);
        assert.equal(backend.origin.handshakes[before]!.headers.origin, origin);
      } else {
        assert.equal(answer.status, 403, label);
        assert.equal(answer.headers['x-switchyard-error'], 'SY_WEBSOCKET_ORIGIN_DENIED', label);
        assert.equal(backend.origin.handshakes.length, before, `${label}: the refused handshake reached the backend`);
      }
    }
  });
});

describe('websocket.allowed_subprotocols', () => {
  test('a client asking for "chat.v1" and "chat.v2" gets chat.v2; the backend is offered only chat.v2', { timeout: TEST_TIMEOUT }, async (t) => {
    const backend = await startBackend(t);
    const proxy = await startProxy(t, backend, 'allowed_subprotocols: [chat.v2]');
    const answer = await handshake(`${proxy.wsUrl}/chat`, ['chat.v1', 'chat.v2'], undefined);
    assert.equal(answer.status, 101);
    assert.equal(backend.origin.handshakes.length, 1);
    assert.equal(backend.origin.handshakes[0]!.headers['sec-websocket-protocol'], 'chat.v2', 'the backend sees only the allowed subprotocol');
    assert.equal(answer.protocol, 'chat.v2');
  });

  test('the same with the header written "chat.v1, chat.v2" on a raw connection', { timeout: TEST_TIMEOUT }, async (t) => {
    const backend = await startBackend(t);
    const proxy = await startProxy(t, backend, 'allowed_subprotocols: [chat.v2]');
    const socket = await connectRaw(proxy.port);
    t.after(() => socket.destroy());
    socket.on('error', () => undefined);
    socket.write(handshakeRequest('/chat', `127.0.0.1:${proxy.port}`, { extra: ['Sec-WebSocket-Protocol: chat.v1, chat.v2'] }));
    const head = await readUntil(socket, '\r\n\r\n');
    assert.match(head, /^HTTP\/1\.1 101 /);
    assert.equal(backend.origin.handshakes.length, 1);
    assert.equal(backend.origin.handshakes[0]!.headers['sec-websocket-protocol'], 'chat.v2', 'the backend sees only the allowed subprotocol');
    assert.match(head, /\r\nsec-websocket-protocol: chat\.v2\r\n/i);
  });

  test('a client asking only for chat.v1 gets 403 SY_WEBSOCKET_SUBPROTOCOL_DENIED', { timeout: TEST_TIMEOUT }, async (t) => {
    const backend = await startBackend(t);
    const proxy = await startProxy(t, backend, 'allowed_subprotocols: [chat.v2]');
    const refused = await handshake(`${proxy.wsUrl}/chat`, ['chat.v1'], undefined);
    assert.equal(refused.status, 403);
    assert.equal(refused.headers['x-switchyard-error'], 'SY_WEBSOCKET_SUBPROTOCOL_DENIED');
    assert.equal(backend.origin.handshakes.length, 0, 'the refused handshake reached the backend');
    // An allowed one alone passes.
    const ok = await handshake(`${proxy.wsUrl}/chat`, ['chat.v2'], undefined);
    assert.equal(ok.status, 101);
    assert.equal(ok.protocol, 'chat.v2');
  });
});

// ---------------------------------------------------------------- paced shutdown

describe('drain pacing on shutdown', () => {
  test('20 tunnels with drain { rate: 20, jitter: 0 } get 1001 spread over about 1 s, one per 50 ms', { timeout: TEST_TIMEOUT }, async (t) => {
    const backend = await startBackend(t);
    const proxy = await startProxy(t, backend, undefined, 'drain: { rate: 20, jitter: 0 }');
    const clients: Client[] = [];
    for (let i = 0; i < 20; i++) clients.push(await openClient(t, `${proxy.wsUrl}/paced/${i}`));
    await waitFor(() => backend.peers.length === 20, 3_000, '20 backend WebSockets');
    assert.equal(proxy.proxy.registry.tunnels.size, 20);

    const start = performance.now();
    const stopped = proxy.proxy.shutdown(5_000).then(() => performance.now());
    const closes = await within(Promise.all(clients.map((client) => client.closed)), 4_000, 'close on all 20 clients');
    const stoppedAt = await within(stopped, 4_000, 'shutdown');

    assert.deepEqual(closes.map((closed) => closed.code), Array(20).fill(1001), 'every client gets 1001');
    const times = closes.map((closed) => closed.at - start).sort((a, b) => a - b);
    const shown = times.map(Math.round).join(', ');
    const spread = times[times.length - 1]! - times[0]!;
    assert.ok(spread >= 700 && spread <= 1_600, `closes spread over ${Math.round(spread)} ms: ${shown}`);
    assert.ok(times[0]! < 200, `the first close came ${Math.round(times[0]!)} ms after shutdown began`);
    for (let i = 0; i < times.length; i++) {
      const inWindow = times.filter((time) => time >= times[i]! && time < times[i]! + 50).length;
      assert.ok(inWindow <= 3, `${inWindow} closes within 50 ms from ${Math.round(times[i]!)} ms: ${shown}`);
    }
    const gaps = times.slice(1).map((time, i) => time - times[i]!).sort((a, b) => a - b);
    const median = gaps[Math.floor(gaps.length / 2)]!;
    assert.ok(median >= 30 && median <= 75, `median gap ${Math.round(median)} ms (expected about 50): ${shown}`);

    // Shutdown ends once the last tunnel is closed, well before its 5 s.
    assert.ok(stoppedAt - start < 2_500, `shutdown took ${Math.round(stoppedAt - start)} ms`);
    assert.ok(stoppedAt - start >= times[times.length - 1]! - 50, 'shutdown resolved before the last tunnel closed');

    const backendCloses = await within(Promise.all(backend.peers.map((peer) => peer.closed)), 2_000, 'close on all 20 backends');
    assert.deepEqual(backendCloses.map((closed) => closed.code), Array(20).fill(1001), 'every backend gets 1001');
    await waitFor(() => proxy.tunnelRecords().length === 20, 2_000, '20 tunnel log lines');
    assert.ok(proxy.tunnelRecords().every((record) => record.closed_by === 'shutdown'));
  });
});

describe('websocket.ping: a frozen backend', () => {
  test('a backend that never answers is found: the client gets 1001 within interval + timeout, closed_by ping_timeout', { timeout: TEST_TIMEOUT }, async (t) => {
    // Completes the handshake by hand, then neither reads nor writes.
    const frozen: Socket[] = [];
    const origin = await startOrigin({
      onUpgrade: (req, socket) => {
        frozen.push(socket);
        socket.on('error', () => undefined);
        acceptByHand(req, socket);
        socket.pause();
      },
    });
    t.after(async () => {
      for (const socket of frozen) socket.destroy();
      await origin.close();
    });
    const proxy = await startProxy(t, { origin, peers: [] }, 'ping: { interval: 200ms, timeout: 300ms, to: backend }');
    const ws = new WebSocket(`${proxy.wsUrl}/frozen-backend`);
    ws.on('error', () => undefined);
    const closed = new Promise<{ code: number; at: number }>((resolve) => ws.once('close', (code) => resolve({ code, at: performance.now() })));
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('unexpected-response', () => reject(new Error('refused'))); });
    const openedAt = performance.now();
    const { code, at } = await within(closed, 3_000, 'the client\'s close');
    assert.equal(code, 1001);
    const elapsed = at - openedAt;
    assert.ok(elapsed >= 450 && elapsed < 900, `closed after ${Math.round(elapsed)} ms (interval + timeout = 500 ms)`);
    await waitFor(() => proxy.tunnelRecords().length === 1, 8_000, 'the tunnel\'s access log line');
    assert.equal(proxy.tunnelRecords()[0]!.closed_by, 'ping_timeout');
  });
});
