import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import net, { type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { openFdCount, sleep, waitFor } from '../helpers/raw.js';
import { clientFrame, handshakeRequest } from '../helpers/websocket-frames.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

describe('resets at every stage never crash the proxy', () => {
  let origin: Origin;
  let proxy: TestProxy;
  const held: Socket[] = [];
  const originWsClosed: number[] = [];
  let messagesAtOrigin = 0;
  before(async () => {
    origin = await startOrigin({ onUpgrade: scriptedUpgrade(held), onWebSocket: echoAndTrack });
    proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
  });
  after(async () => {
    for (const socket of held) socket.destroy();
    await proxy.close();
    await origin.close();
  });

  function echoAndTrack(ws: WebSocket): void {
    ws.on('message', (data) => {
      messagesAtOrigin++;
      ws.send(data);
    });
    ws.on('close', () => originWsClosed.push(Date.now()));
  }

  const registrySettles = (): Promise<void> => registryEmpty(proxy, 2_000);

  test('client resets before sending the full handshake', { timeout: 5_000 }, async () => {
    const connectionsBefore = origin.connectionCount;
    const client = await connect(proxy.port);
    client.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nConnection: Upgrade\r\nUpgr`);
    await waitFor(() => proxy.proxy.registry.connections.size === 1, 1_000, 'the proxy to accept the connection');
    await sleep(50);
    client.resetAndDestroy();
    await registrySettles();
    assert.equal(origin.connectionCount, connectionsBefore, 'an incomplete handshake never reaches the origin');
  });

  test('client resets after sending the handshake, before the 101', { timeout: 5_000 }, async () => {
    const heldBefore = held.length;
    const client = await connect(proxy.port);
    client.write(handshakeRequest('/hold', `127.0.0.1:${proxy.port}`));
    await waitFor(() => held.length === heldBefore + 1, 1_000, 'the origin to hold the handshake');
    const upstream = watch(held.at(-1)!);
    const resetAt = Date.now();
    client.resetAndDestroy();
    // The proxy abandons the pending handshake: its connection to the origin ends.
    await waitFor(() => upstream.ended || upstream.closed, 1_000, 'the origin connection to be closed');
    assert.ok(Date.now() - resetAt < 1_000);
    await registrySettles();
  });

  test('client sends the handshake and resets in the same instant, backend silent: everything is released', { timeout: 5_000 }, async () => {
    // Own servers: if this fails, what the proxy holds must not spill into other tests.
    const silentHeld: Socket[] = [];
    const upstreams: { ended: boolean; closed: boolean }[] = [];
    const silent = await startOrigin({
      onUpgrade: (_req, socket) => {
        silentHeld.push(socket); // never answers
        upstreams.push(watch(socket));
      },
    });
    const silentProxy = await startProxy({ servers: [silent.url] });
    try {
      // Handshake and RST reach the proxy's kernel before it reads; the reset may
      // then surface as a plain EOF. Either way the client is gone: the handshake
      // must either never reach the origin or be given up at once.
      for (let i = 0; i < 5; i++) {
        const client = await connect(silentProxy.port);
        client.write(handshakeRequest('/hold', `127.0.0.1:${silentProxy.port}`));
        client.resetAndDestroy();
      }
      await sleep(200); // time for any forwarded handshake to arrive
      const open = (): number => upstreams.filter((upstream) => !upstream.ended && !upstream.closed).length;
      await waitFor(() => open() === 0, 1_000, 'the proxy to give up every origin connection')
        .catch(() => assert.fail(`${open()} of ${upstreams.length} origin connections still open 1 s later`));
      await registryEmpty(silentProxy, 1_000);
    } finally {
      for (const socket of silentHeld) socket.destroy();
      await silentProxy.close();
      await silent.close();
    }
  });

  test('client resets right after the 101', { timeout: 5_000 }, async () => {
    const closedBefore = originWsClosed.length;
    const client = await connect(proxy.port);
    client.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
    assert.match(await readHead(client), /^HTTP\/1\.1 101 /);
    const resetAt = Date.now();
    client.resetAndDestroy();
    await waitFor(() => originWsClosed.length === closedBefore + 1, 1_000, 'the origin WebSocket to close');
    assert.ok(originWsClosed.at(-1)! - resetAt < 1_000);
    await registrySettles();
  });

  test('client resets in the middle of a message', { timeout: 5_000 }, async () => {
    const closedBefore = originWsClosed.length;
    const messagesBefore = messagesAtOrigin;
    const client = await connect(proxy.port);
    client.write(handshakeRequest('/', `127.0.0.1:${proxy.port}`));
    assert.match(await readHead(client), /^HTTP\/1\.1 101 /);
    const frame = clientFrame(0x2, Buffer.alloc(1_000, 7));
    client.write(frame.subarray(0, 100));
    await sleep(50); // let the partial frame cross the tunnel
    client.resetAndDestroy();
    await waitFor(() => originWsClosed.length === closedBefore + 1, 1_000, 'the origin WebSocket to close');
    assert.equal(messagesAtOrigin, messagesBefore, 'a truncated message is never delivered whole');
    await registrySettles();
  });

  test('backend resets before the 101: the client gets a 502', { timeout: 5_000 }, async () => {
    const { response, closed } = await exchange(proxy.port, handshakeRequest('/reset-before-101', `127.0.0.1:${proxy.port}`));
    assert.match(response, /^HTTP\/1\.1 502 /);
    assert.match(response, /X-Switchyard-Error: SY_UPSTREAM_RESET/i);
    assert.equal(closed, true);
    await registrySettles();
  });

  test('backend resets right after the 101: the client is closed', { timeout: 5_000 }, async () => {
    const { response, closed } = await exchange(proxy.port, handshakeRequest('/reset-after-101', `127.0.0.1:${proxy.port}`));
    assert.match(response, /^HTTP\/1\.1 101 /);
    assert.equal(closed, true, 'the client connection was closed within the exchange time');
    await registrySettles();
  });

  test('backend resets mid-stream: the client gets the bytes sent so far, then is closed', { timeout: 5_000 }, async () => {
    const { response, closed } = await exchange(proxy.port, handshakeRequest('/reset-mid-stream', `127.0.0.1:${proxy.port}`));
    assert.match(response, /^HTTP\/1\.1 101 /);
    assert.ok(response.endsWith(PARTIAL_FRAME.toString('latin1')), 'the partial frame was relayed');
    assert.equal(closed, true);
    await registrySettles();
  });

  test('after all of that, a fresh WebSocket is proxied fine', { timeout: 5_000 }, async () => {
    assert.equal(await echoOnce(proxy.wsUrl, 'still alive'), 'still alive');
    await registrySettles();
  });
});

describe('no leaks: connections, tunnels, requests and fds return to baseline after churn', () => {
  const KINDS = ['normal', 'client-reset-after-101', 'client-reset-mid-handshake', 'client-reset-before-101', 'backend-reset-before-101', 'backend-reset-after-101', 'refused-upgrade', 'plain-http'] as const;
  type Kind = (typeof KINDS)[number];
  const PER_KIND = 140; // 8 kinds x 140 = 1120 cycles
  const CONCURRENCY = 20;

  test(`${KINDS.length * PER_KIND} cycles with resets at every stage leak nothing`, { timeout: 60_000 }, async (t) => {
    const held: Socket[] = [];
    const origin = await startOrigin({ onUpgrade: scriptedUpgrade(held) });
    // Idle keep-alive connections from the proxy's HTTP pool to the origin are
    // reuse, not a leak; a short origin keep-alive lets them go before the fd count.
    origin.server.keepAliveTimeout = 200;
    const proxy = await startProxy({ servers: [origin.url], timeouts: { tunnelIdleMs: 5_000 } });
    try {
      const baseline = openFdCount();
      const host = `127.0.0.1:${proxy.port}`;

      const cycle: Record<Kind, () => Promise<void>> = {
        'normal': async () => {
          assert.equal(await echoOnce(proxy.wsUrl, 'churn'), 'churn');
        },
        'client-reset-after-101': async () => {
          const client = await connect(proxy.port);
          client.write(handshakeRequest('/', host));
          assert.match(await readHead(client), /^HTTP\/1\.1 101 /);
          client.resetAndDestroy();
        },
        'client-reset-mid-handshake': async () => {
          const client = await connect(proxy.port);
          client.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-`);
          await new Promise((resolve) => setImmediate(resolve));
          client.resetAndDestroy();
        },
        'client-reset-before-101': async () => {
          // The origin answers only after 20 ms: the reset lands while the proxy waits.
          const client = await connect(proxy.port);
          client.write(handshakeRequest('/slow', host));
          await sleep(5);
          client.resetAndDestroy();
        },
        'backend-reset-before-101': async () => {
          const { response } = await exchange(proxy.port, handshakeRequest('/reset-before-101', host));
          assert.match(response, /^HTTP\/1\.1 502 /);
        },
        'backend-reset-after-101': async () => {
          const { response, closed } = await exchange(proxy.port, handshakeRequest('/reset-after-101', host));
          assert.match(response, /^HTTP\/1\.1 101 /);
          assert.equal(closed, true);
        },
        'refused-upgrade': async () => {
          const { response, closed } = await exchange(proxy.port, handshakeRequest('/reject', host));
          assert.match(response, /^HTTP\/1\.1 403 /);
          assert.ok(response.endsWith('nope'));
          assert.equal(closed, true);
        },
        'plain-http': async () => {
          const { response } = await exchange(proxy.port, `GET /plain HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
          assert.match(response, /^HTTP\/1\.1 200 /);
        },
      };

      const jobs: Kind[] = [];
      for (let i = 0; i < PER_KIND; i++) jobs.push(...KINDS);
      const done = new Map<Kind, number>();
      const started = Date.now();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < jobs.length) {
          const kind = jobs[next++]!;
          await withTimeout(cycle[kind](), 5_000, kind);
          done.set(kind, (done.get(kind) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      t.diagnostic(`${jobs.length} cycles in ${Date.now() - started} ms; fds: baseline ${baseline}, right after churn ${openFdCount()}`);
      for (const kind of KINDS) assert.equal(done.get(kind), PER_KIND, kind);

      await registryEmpty(proxy, 5_000);
      for (const socket of held) socket.destroy();
      await waitFor(() => openFdCount() <= baseline + 5, 10_000, 'fd count to return to baseline');
      t.diagnostic(`fds settled at ${openFdCount()}`);

      // And the proxy still works.
      assert.equal(await echoOnce(proxy.wsUrl, 'after churn'), 'after churn');
    } finally {
      for (const socket of held) socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

// ---------------------------------------------------------------------------
// Helpers

/** Start of a 100-byte frame, cut short by the origin's reset. */
const PARTIAL_FRAME = Buffer.from([0x82, 100, 1, 2, 3, 4, 5, 6, 7, 8]);

/**
 * An origin's onUpgrade that misbehaves on cue, by path. Sockets it keeps open
 * are pushed to `held` so the test can close them.
 */
function scriptedUpgrade(held: Socket[]) {
  return (req: IncomingMessage, socket: Socket, _head: Buffer, accept: () => void): void => {
    switch (req.url) {
      case '/hold':
        held.push(socket);
        return;
      case '/slow':
        setTimeout(accept, 20);
        return;
      case '/reset-before-101':
        socket.resetAndDestroy();
        return;
      case '/reset-after-101':
        socket.write(rawAcceptHead(req), () => socket.resetAndDestroy());
        return;
      case '/reset-mid-stream':
        socket.write(Buffer.concat([Buffer.from(rawAcceptHead(req)), PARTIAL_FRAME]), () => setTimeout(() => socket.resetAndDestroy(), 50));
        return;
      case '/reject':
        socket.on('end', () => socket.end());
        socket.write('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nnope');
        return;
      default:
        accept();
    }
  };
}

function connect(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', () => undefined);
    socket.once('error', reject);
  });
}

/** Reads until the end of a response head. */
function readHead(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer): void => {
      text += chunk.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(text);
      }
    };
    const onClose = (): void => reject(new Error(`closed before a response head: ${JSON.stringify(text)}`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

/** Sends raw bytes and collects the answer until the proxy closes the connection (or 2 s pass). */
function exchange(port: number, request: string): Promise<{ response: string; closed: boolean }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let response = '';
    const timer = setTimeout(() => finish(false), 2_000);
    const finish = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ response, closed });
    };
    socket.on('connect', () => socket.write(request));
    socket.on('data', (chunk: Buffer) => { response += chunk.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
  });
}

/** Opens a WebSocket with the ws client, exchanges one message, closes cleanly. */
async function echoOnce(url: string, text: string): Promise<string> {
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    const reply = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    ws.send(text);
    const echoed = await reply;
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.close();
    await closed;
    return echoed;
  } finally {
    ws.terminate();
  }
}

/** Every connection, request and tunnel the proxy tracks has gone; says what is left if not. */
async function registryEmpty(proxy: TestProxy, timeoutMs: number): Promise<void> {
  const { registry } = proxy.proxy;
  try {
    await waitFor(() => registry.connections.size === 0 && registry.tunnels.size === 0 && registry.inFlight === 0, timeoutMs, 'registry');
  } catch {
    assert.fail(`registry not empty: connections ${registry.connections.size}, tunnels ${registry.tunnels.size}, inFlight ${registry.inFlight}`);
  }
}

function watch(socket: Socket): { ended: boolean; closed: boolean } {
  const state = { ended: false, closed: socket.destroyed };
  socket.on('end', () => { state.ended = true; });
  socket.on('close', () => { state.closed = true; });
  return state;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function rawAcceptHead(req: IncomingMessage): string {
  const accept = createHash('sha1').update((req.headers['sec-websocket-key'] ?? '') + GUID).digest('base64');
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
}
