/**
 * send_proxy_protocol: every connection to the backend starts with a PROXY
 * header naming the client (v1 text or v2 binary), for HTTP requests (one
 * upstream connection per client connection, reused for its keep-alive
 * requests) and WebSocket tunnels. A real backend on 127.0.0.1:0 parses the
 * header before its HTTP server sees the bytes.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { parseProxyHeader, type ProxySource } from '../../src/net/proxy-protocol.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { waitFor } from '../helpers/raw.js';

interface Backend {
  readonly port: number;
  /** One entry per TCP connection: the header's version and source. */
  readonly headers: { version: 1 | 2; source: ProxySource | undefined }[];
  /** Connections that did not start with a valid header. */
  invalid: number;
  close(): Promise<void>;
}

async function startBackend(): Promise<Backend> {
  const app = http.createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(`hello ${req.url}`);
  });
  const wss = new WebSocketServer({ server: app });
  wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
  const sockets = new Set<Socket>();
  const backend: Backend = {
    port: 0, headers: [], invalid: 0,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      wss.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let seen = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = Buffer.concat([seen, chunk]);
      const parsed = parseProxyHeader(seen);
      if (parsed.kind === 'incomplete') return;
      socket.removeListener('data', onData);
      if (parsed.kind !== 'header') {
        backend.invalid++;
        socket.destroy();
        return;
      }
      backend.headers.push({ version: parsed.version, source: parsed.source });
      socket.pause();
      socket.unshift(seen.subarray(parsed.length));
      app.emit('connection', socket);
      socket.resume();
    };
    socket.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(backend, { port: (server.address() as AddressInfo).port });
}

function get(port: number, path: string, agent: http.Agent): Promise<{ status: number; body: string; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, localPort: req.socket?.localPort ?? 0 }));
    });
    req.on('error', reject);
  });
}

for (const version of ['v1', 'v2'] as const) {
  describe(`send_proxy_protocol: ${version}`, () => {
    let backend: Backend;
    let proxy: Switchyard;
    let port: number;
    before(async () => {
      backend = await startBackend();
      const yaml = `
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: app
upstreams:
  app:
    servers: [http://127.0.0.1:${backend.port}]
    send_proxy_protocol: ${version}
`;
      proxy = await Switchyard.start(loadConfigText(yaml, 'proxy-protocol-upstream.yaml', { env: {}, defaultSecret: 'proxy-protocol-secret-0123456789' }).config, silentLogger());
      port = proxy.addresses[0]!.port;
    });
    after(async () => {
      await proxy.shutdown(0);
      await backend.close();
    });

    test('HTTP: the header names the client; keep-alive requests of one client share one upstream connection, another client gets its own', { timeout: 10_000 }, async () => {
      const before = backend.headers.length;
      const one = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const two = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const first = await get(port, '/a', one);
        const second = await get(port, '/b', one);
        assert.equal(first.status, 200);
        assert.equal(second.body, 'hello /b');
        assert.equal(first.localPort, second.localPort, 'the client reused its connection');
        const other = await get(port, '/c', two);
        assert.equal(other.status, 200);
        const seen = backend.headers.slice(before);
        assert.equal(seen.length, 2, `one upstream connection per client connection: ${JSON.stringify(seen)}`);
        assert.ok(seen.every((header) => header.version === (version === 'v1' ? 1 : 2)));
        assert.deepEqual(seen.map((header) => header.source), [
          { address: '127.0.0.1', port: first.localPort },
          { address: '127.0.0.1', port: other.localPort },
        ]);
        assert.equal(backend.invalid, 0);
      } finally {
        one.destroy();
        two.destroy();
      }
    });

    test('WebSocket: the tunnel\'s connection starts with the header; frames flow both ways', { timeout: 10_000 }, async () => {
      const before = backend.headers.length;
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
      let localPort = 0;
      ws.once('upgrade', (res) => { localPort = res.socket.localPort ?? 0; });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const echoed = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
      ws.send('through the header');
      assert.equal(await echoed, 'through the header');
      const seen = backend.headers.slice(before);
      assert.equal(seen.length, 1);
      assert.deepEqual(seen[0]!.source, { address: '127.0.0.1', port: localPort });
      ws.close(1000);
      await new Promise<void>((resolve) => ws.once('close', () => resolve()));
      await waitFor(() => proxy.registry.tunnels.size === 0, 2_000, 'the tunnel to end');
    });
  });
}
