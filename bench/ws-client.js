#!/usr/bin/env node
// WebSocket load client for the bench: raw TCP sockets with pre-built masked
// frames, so the client spends little CPU per message. One mode per process:
//
//   echo        --conns 64 --size 64 --duration 5     send -> wait for echo -> send, per connection
//   throughput  --size 65536 --window 8 --duration 5  one connection, a bounded window of big messages
//   handshake   --concurrency 16 --duration 5         upgrade, close handshake, TCP close, repeat
//   idle        --conns 4000                          open and hold; on "verify", one echo on each
//
// Under the bench (IPC channel present) it sends {type:'ready'} once connected and
// waits for {type:'go'} (idle: {type:'verify'}) so the caller can sample the proxy's
// CPU and memory around exactly the measured work; then it sends {type:'result'} and
// hangs up on {type:'finish'}.
// Run by hand (no IPC) it goes at once and prints the result as JSON.

import { connect } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    target: { type: 'string' }, // HOST:PORT
    mode: { type: 'string', default: 'echo' },
    conns: { type: 'string', default: '64' },
    size: { type: 'string', default: '64' },
    window: { type: 'string', default: '8' },
    duration: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '16' },
    'open-concurrency': { type: 'string', default: '200' },
  },
});
if (!opts.target) {
  console.error('usage: node bench/ws-client.js --target HOST:PORT --mode echo|throughput|handshake|idle [...]');
  process.exit(2);
}
const [HOST, PORT_TEXT] = opts.target.split(':');
const PORT = Number(PORT_TEXT);
const DURATION_MS = Number(opts.duration) * 1000;
const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const ACCEPT = createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
const REQUEST = Buffer.from(
  `GET /bench HTTP/1.1\r\nHost: ${opts.target}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  'latin1',
);
const MASK = randomBytes(4);

/** A complete masked client frame (FIN set). */
function clientFrame(opcode, payload) {
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const frame = Buffer.allocUnsafe(2 + extra + 4 + length);
  frame[0] = 0x80 | opcode;
  if (extra === 0) frame[1] = 0x80 | length;
  else if (extra === 2) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  MASK.copy(frame, 2 + extra);
  const start = 2 + extra + 4;
  for (let i = 0; i < length; i++) frame[start + i] = payload[i] ^ MASK[i & 3];
  return frame;
}

/** Byte length of the unmasked server frame echoing a payload of `length` bytes. */
function serverFrameLength(length) {
  return length + (length < 126 ? 2 : length < 65536 ? 4 : 10);
}

const CLOSE_FRAME = clientFrame(0x8, Buffer.from([0x03, 0xe8]));

/** Opens one WebSocket over raw TCP; resolves with the socket once the 101 is in. */
function openWebSocket(timeoutMs = 10_000) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: HOST, port: PORT, noDelay: true });
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error('handshake timeout')), timeoutMs);
    const fail = (err) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const onData = (chunk) => {
      head = head.length ? Buffer.concat([head, chunk]) : chunk;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16384) fail(new Error('response head too large'));
        return;
      }
      const text = head.toString('latin1', 0, end);
      if (!text.startsWith('HTTP/1.1 101')) return fail(new Error(`expected 101, got: ${text.split('\r\n')[0]}`));
      if (!text.includes(ACCEPT)) return fail(new Error('wrong Sec-WebSocket-Accept'));
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', fail);
      socket.removeListener('close', onEarlyClose);
      resolve({ socket, rest: head.subarray(end + 4) });
    };
    const onEarlyClose = () => fail(new Error('closed before 101'));
    socket.on('data', onData);
    socket.on('error', fail);
    socket.on('close', onEarlyClose);
    socket.write(REQUEST);
  });
}

/** Opens `count` WebSockets with at most `concurrency` handshakes in flight. */
async function openMany(count, concurrency) {
  const sockets = new Array(count);
  const errors = {};
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      try {
        const { socket } = await openWebSocket();
        socket.on('error', () => {});
        sockets[index] = socket;
      } catch (err) {
        failed++;
        errors[err.message] = (errors[err.message] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return { sockets: sockets.filter(Boolean), failed, errors };
}

function percentile(values, p) {
  if (values.length === 0) return null;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

const ipc = typeof process.send === 'function';
function send(message) {
  if (ipc) process.send(message);
  else if (message.type === 'result') console.log(JSON.stringify(message, null, 2));
  else console.error(JSON.stringify(message));
}
function waitFor(type) {
  if (!ipc) return Promise.resolve();
  return new Promise((resolve) => {
    const onMessage = (message) => {
      if (message && message.type === type) {
        process.removeListener('message', onMessage);
        resolve(message);
      }
    };
    process.on('message', onMessage);
  });
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function echoMode() {
  const conns = Number(opts.conns);
  const size = Number(opts.size);
  const frame = clientFrame(0x2, randomBytes(size));
  const expected = serverFrameLength(size);
  const { sockets, failed, errors } = await openMany(conns, 64);
  send({ type: 'ready', opened: sockets.length, failed, errors });
  await waitFor('go');
  const rtts = [];
  let running = true;
  let inFlight = 0;
  let bad = 0;
  let closed = 0;
  let roundTrips = 0;
  let drained;
  const allDone = new Promise((resolve) => { drained = resolve; });
  const start = performance.now();
  for (const socket of sockets) {
    let got = 0;
    let sentAt = 0;
    const fire = () => {
      sentAt = performance.now();
      inFlight++;
      socket.write(frame);
    };
    socket.on('data', (chunk) => {
      if (got === 0 && chunk[0] !== 0x82) bad++;
      got += chunk.length;
      while (got >= expected) {
        got -= expected;
        const now = performance.now();
        rtts.push(now - sentAt);
        roundTrips++;
        inFlight--;
        if (running) fire();
        else if (inFlight === 0) drained();
      }
    });
    socket.on('close', () => {
      closed++;
      if (got === 0 && inFlight > 0) inFlight--; // lost: do not wait for it
      if (!running && inFlight === 0) drained();
    });
    fire();
  }
  await sleep(DURATION_MS);
  running = false;
  const elapsedSend = performance.now() - start;
  await Promise.race([allDone, sleep(5_000)]);
  const seconds = (performance.now() - start) / 1000;
  send({
    type: 'result', mode: 'echo', connections: sockets.length, failed, errors, size,
    roundTrips, seconds, sendSeconds: elapsedSend / 1000, rate: roundTrips / seconds,
    p50Ms: percentile(rtts, 50), p99Ms: percentile(rtts, 99), unanswered: inFlight, badFrames: bad, closedEarly: closed,
  });
  await waitFor('finish'); // the caller samples the proxy before we hang up
  for (const socket of sockets) socket.destroy();
}

async function throughputMode() {
  const size = Number(opts.size);
  const window = Number(opts.window);
  const frame = clientFrame(0x2, randomBytes(size));
  const expected = serverFrameLength(size);
  const { sockets, failed, errors } = await openMany(1, 1);
  send({ type: 'ready', opened: sockets.length, failed, errors });
  await waitFor('go');
  const socket = sockets[0];
  if (!socket) {
    send({ type: 'result', mode: 'throughput', messages: 0, seconds: 0, error: Object.keys(errors)[0] ?? 'no connection' });
    return;
  }
  let sent = 0;
  let received = 0;
  let completed = 0;
  let running = true;
  let closed = false;
  let finish;
  const done = new Promise((resolve) => { finish = resolve; });
  const pump = () => {
    while (running && sent - completed < window) {
      sent++;
      if (!socket.write(frame)) break;
    }
  };
  socket.on('data', (chunk) => {
    received += chunk.length;
    completed = Math.floor(received / expected);
    if (running) pump();
    else if (completed >= sent) finish();
  });
  socket.on('drain', pump);
  socket.on('close', () => {
    closed = true;
    finish();
  });
  const start = performance.now();
  pump();
  await sleep(DURATION_MS);
  running = false;
  if (completed >= sent) finish();
  await Promise.race([done, sleep(10_000)]);
  const seconds = (performance.now() - start) / 1000;
  const payloadBytes = completed * size * 2;
  send({
    type: 'result', mode: 'throughput', size, window, messages: completed, unanswered: sent - completed, seconds,
    // "MB tunneled": payload bytes through the proxy, both directions (an echoed 64 KiB message counts 128 KiB).
    mbTunneled: payloadBytes / 1e6, mbPerSecond: payloadBytes / 1e6 / seconds,
    wireBytes: completed * (frame.length + expected), closedEarly: closed,
  });
  await waitFor('finish'); // the caller samples the proxy before we hang up
  socket.destroy();
}

function handshakeOnce() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let upgradedAt = 0;
    let settled = false;
    const socket = connect({ host: HOST, port: PORT, noDelay: true });
    let head = Buffer.alloc(0);
    const finish = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ error, handshakeMs: upgradedAt ? upgradedAt - t0 : null });
    };
    const timer = setTimeout(() => finish(upgradedAt ? 'close timeout' : 'handshake timeout'), 5_000);
    socket.on('data', (chunk) => {
      if (upgradedAt) return; // the echoed close frame
      head = head.length ? Buffer.concat([head, chunk]) : chunk;
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const text = head.toString('latin1', 0, end);
      if (!text.startsWith('HTTP/1.1 101')) return finish(`expected 101, got: ${text.split('\r\n')[0]}`);
      if (!text.includes(ACCEPT)) return finish('wrong Sec-WebSocket-Accept');
      upgradedAt = performance.now();
      socket.write(CLOSE_FRAME);
    });
    socket.on('error', (err) => finish(err.code ?? err.message));
    socket.on('close', () => finish(upgradedAt ? undefined : 'closed before 101'));
    socket.write(REQUEST);
  });
}

async function handshakeMode() {
  const concurrency = Number(opts.concurrency);
  send({ type: 'ready' });
  await waitFor('go');
  const times = [];
  const errors = {};
  let ok = 0;
  let failed = 0;
  const start = performance.now();
  const deadline = start + DURATION_MS;
  const worker = async () => {
    while (performance.now() < deadline) {
      const { error, handshakeMs } = await handshakeOnce();
      if (error) {
        failed++;
        errors[error] = (errors[error] ?? 0) + 1;
        if (failed > 1000) return;
      } else {
        ok++;
        times.push(handshakeMs);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - start) / 1000;
  send({
    type: 'result', mode: 'handshake', concurrency, handshakes: ok, failed, errors, seconds, rate: ok / seconds,
    p50Ms: percentile(times, 50), p99Ms: percentile(times, 99),
  });
}

async function idleMode() {
  const conns = Number(opts.conns);
  const t0 = performance.now();
  const { sockets, failed, errors } = await openMany(conns, Number(opts['open-concurrency']));
  let closedEarly = 0;
  for (const socket of sockets) socket.on('close', () => { closedEarly++; });
  send({ type: 'ready', opened: sockets.length, failed, errors, openSeconds: (performance.now() - t0) / 1000 });
  await waitFor('verify');
  const closedBeforeVerify = closedEarly;
  // One message per connection, unique, and it must come back byte for byte.
  let echoed = 0;
  let mismatched = 0;
  let pending = sockets.length;
  let allDone;
  const done = new Promise((resolve) => { allDone = resolve; });
  if (pending === 0) allDone();
  sockets.forEach((socket, index) => {
    const payload = Buffer.from(`idle-${String(index).padStart(8, '0')}-`.padEnd(64, 'x'));
    const expected = Buffer.concat([Buffer.from([0x82, payload.length]), payload]);
    let got = Buffer.alloc(0);
    let counted = false;
    const settle = (ok) => {
      if (counted) return;
      counted = true;
      if (ok) echoed++;
      else mismatched++;
      if (--pending === 0) allDone();
    };
    socket.on('data', (chunk) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= expected.length) settle(got.subarray(0, expected.length).equals(expected));
    });
    socket.on('close', () => settle(false));
    if (!socket.destroyed) socket.write(clientFrame(0x2, payload));
    else settle(false);
  });
  await Promise.race([done, sleep(15_000)]);
  send({
    type: 'result', mode: 'idle', requested: conns, opened: sockets.length, failed, errors,
    closedBeforeVerify, echoed, mismatched, unanswered: pending,
  });
  await waitFor('finish'); // the caller samples the proxy before we hang up
  for (const socket of sockets) socket.destroy();
}

const modes = { echo: echoMode, throughput: throughputMode, handshake: handshakeMode, idle: idleMode };
const run = modes[opts.mode];
if (!run) {
  console.error(`ws-client: unknown mode ${opts.mode}`);
  process.exit(2);
}
run().then(
  () => setTimeout(() => process.exit(0), 50),
  (err) => {
    send({ type: 'result', mode: opts.mode, error: err.message });
    setTimeout(() => process.exit(1), 50);
  },
);
