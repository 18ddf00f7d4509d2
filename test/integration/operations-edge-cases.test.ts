/**
 * Edge cases a review of the operations work found: shutdown with connections
 * still waiting for their PROXY header, a burst of handshakes against
 * max_tunnels, a malformed stream on a route with message limits, parser
 * rejections counted in the metrics, and send_proxy_protocol behind trusted
 * proxies (one upstream connection per client named). Real sockets on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import { LocalAdminBackend } from '../../src/admin/admin-backend.js';
import { AdminServer } from '../../src/admin/admin-server.js';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { parseProxyHeader, type ProxySource } from '../../src/net/proxy-protocol.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { scrapeRejections } from '../helpers/client-identity.js';
import { startOrigin } from '../helpers/origins.js';
import { waitFor } from '../helpers/raw.js';
import { acceptByHand, clientFrame, handshakeRequest } from '../helpers/websocket-frames.js';

function start(yaml: string): Promise<Switchyard> {
  return Switchyard.start(loadConfigText(yaml, 'edge.yaml', { env: {}, defaultSecret: 'edge-case-secret-0123456789abcdef' }).config, silentLogger());
}

test('shutdown closes connections still waiting for their PROXY header at once (not at the header timeout)', { timeout: 10_000 }, async () => {
  const origin = await startOrigin();
  const proxy = await start(`
listeners:
  - address: 127.0.0.1:0
    proxy_protocol: [127.0.0.1]
sites:
  - routes:
      - to: ${origin.url}
timeouts: { header: 8s }
`);
  const idle = net.connect(proxy.addresses[0]!.port, '127.0.0.1');
  idle.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
  try {
    await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
    idle.write('PROXY TCP4 203.0.113.1 ');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const started = Date.now();
    await proxy.shutdown(500);
    const took = Date.now() - started;
    assert.ok(took < 2_000, `shutdown took ${took} ms`);
    await closed;
  } finally {
    idle.destroy();
    await proxy.shutdown(0);
    await origin.close();
  }
});

test('max_tunnels holds against a burst: 10 handshakes at once on a route with max_tunnels 3 open exactly 3', { timeout: 10_000 }, async () => {
  // A backend that answers handshakes after a pause, so they overlap.
  const origin = await startOrigin({ onUpgrade: (_req, _socket, _head, accept) => void setTimeout(accept, 150) });
  const proxy = await start(`
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: ${origin.url}
        max_tunnels: 3
`);
  const port = proxy.addresses[0]!.port;
  const clients: WebSocket[] = [];
  try {
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/burst`);
      clients.push(ws);
      ws.once('open', () => resolve('open'));
      ws.once('unexpected-response', (_req, res) => resolve(`${res.statusCode} ${String(res.headers['x-switchyard-error'])}`));
      ws.once('error', () => resolve('error'));
    })));
    assert.equal(outcomes.filter((outcome) => outcome === 'open').length, 3, outcomes.join(', '));
    assert.equal(outcomes.filter((outcome) => outcome === '503 SY_ROUTE_TUNNEL_LIMIT').length, 7, outcomes.join(', '));
  } finally {
    for (const ws of clients) ws.terminate();
    await proxy.shutdown(0);
    await origin.close();
  }
});

test('a malformed client stream on a route with message limits is cut (closed_by policy), not passed on unchecked', { timeout: 10_000 }, async () => {
  // A backend that completes the handshake by hand and counts every byte after it.
  let backendBytes = 0;
  const origin = await startOrigin({
    onUpgrade: (req, socket) => {
      socket.on('data', (chunk: Buffer) => { backendBytes += chunk.length; });
      socket.on('error', () => undefined);
      socket.on('end', () => socket.end());
      acceptByHand(req, socket);
    },
  });
  const proxy = await start(`
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: ${origin.url}
        websocket: { max_message_bytes: 1000 }
`);
  const client = net.connect(proxy.addresses[0]!.port, '127.0.0.1');
  client.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
  try {
    let head = '';
    client.on('data', (chunk: Buffer) => { head += chunk.toString('latin1'); });
    client.write(handshakeRequest('/ws', '127.0.0.1'));
    await waitFor(() => head.includes('\r\n\r\n'), 3_000, 'the 101');
    // Reserved opcode 3, then 5000 bytes the size limit could no longer see, in one write.
    client.write(Buffer.concat([clientFrame(0x3, 'x'), clientFrame(0x2, Buffer.alloc(5000))]));
    await closed;
    await waitFor(() => proxy.registry.tunnels.size === 0, 2_000, 'the tunnel to end');
    assert.ok(backendBytes < 1000, `the backend got ${backendBytes} bytes after the violation`);
  } finally {
    client.destroy();
    await proxy.shutdown(0);
    await origin.close();
  }
});

test('requests Node\'s parser refuses (431, 400) count in switchyard_rejections_total', { timeout: 10_000 }, async () => {
  const origin = await startOrigin();
  const proxy = await start(`
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: ${origin.url}
limits: { max_header_bytes: 2048 }
`);
  const admin = await AdminServer.start({ host: '127.0.0.1', port: 0 }, new LocalAdminBackend(proxy, undefined), silentLogger());
  const send = (text: string): Promise<string> => new Promise((resolve) => {
    const socket = net.connect(proxy.addresses[0]!.port, '127.0.0.1');
    let reply = '';
    socket.on('data', (chunk: Buffer) => { reply += chunk.toString('latin1'); });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(reply));
    socket.write(text);
  });
  try {
    assert.match(await send(`GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(4096)}\r\n\r\n`), /^HTTP\/1\.1 431/);
    assert.match(await send('GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'), /^HTTP\/1\.1 400/);
    const counted = await scrapeRejections(admin.port);
    assert.equal(counted.get('SY_CLIENT_HEADERS_TOO_LARGE'), 1);
    assert.equal(counted.get('SY_CLIENT_BAD_REQUEST'), 1);
  } finally {
    await admin.close();
    await proxy.shutdown(0);
    await origin.close();
  }
});

test('send_proxy_protocol behind trusted_proxies: each client named by X-Forwarded-For gets its own upstream connection and header', { timeout: 10_000 }, async () => {
  const headers: (ProxySource | undefined)[] = [];
  const app = http.createServer((_req, res) => res.end('ok'));
  const sockets = new Set<Socket>();
  const backend = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.once('data', (chunk: Buffer) => {
      const parsed = parseProxyHeader(chunk);
      if (parsed.kind !== 'header') {
        socket.destroy();
        return;
      }
      headers.push(parsed.source);
      socket.pause();
      socket.unshift(chunk.subarray(parsed.length));
      app.emit('connection', socket);
      socket.resume();
    });
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const proxy = await start(`
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: app
upstreams:
  app:
    servers: [http://127.0.0.1:${(backend.address() as AddressInfo).port}]
    send_proxy_protocol: v1
trusted_proxies: [127.0.0.1]
`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = (forwardedFor: string): Promise<number> => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: proxy.addresses[0]!.port, path: '/', agent, headers: { 'X-Forwarded-For': forwardedFor } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    }).on('error', reject);
  });
  try {
    // One client connection (an L7 proxy in front) carrying two users.
    assert.equal(await get('198.51.100.1'), 200);
    assert.equal(await get('198.51.100.2'), 200);
    assert.equal(await get('198.51.100.1'), 200);
    assert.deepEqual(headers.map((header) => header?.address), ['198.51.100.1', '198.51.100.2']);
  } finally {
    agent.destroy();
    await proxy.shutdown(0);
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  }
});
