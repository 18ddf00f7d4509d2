import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { Server as IoServer } from 'socket.io';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { waitFor } from '../helpers/raw.js';

// ---------------------------------------------------------------------------
// Why stickiness matters: socket.io (engine.io) opens a session with HTTP long
// polling, keeps polling with its session ID, then upgrades to WebSocket. Two
// socket.io servers that share no adapter only know their own sessions, so every
// request of one client must reach the same server.
// ---------------------------------------------------------------------------

interface IoBackend {
  readonly name: string;
  readonly url: string;
  /** engine.io's connection errors (e.g. "Session ID unknown"), by message. */
  readonly connectionErrors: string[];
  /** Transports of the sockets that connected. */
  readonly connections: string[];
  close(): Promise<void>;
}

/**
 * A socket.io 4 server on its own HTTP server: "whoami" is acknowledged with the
 * server's name, the payload and the transport in use.
 */
async function startIoBackend(name: string): Promise<IoBackend> {
  const server = http.createServer();
  const io = new IoServer(server, { pingInterval: 2_000, pingTimeout: 2_000 });
  const connectionErrors: string[] = [];
  const connections: string[] = [];
  io.engine.on('connection_error', (err: { message: string }) => connectionErrors.push(err.message));
  io.on('connection', (socket) => {
    connections.push(socket.conn.transport.name);
    socket.on('whoami', (payload: unknown, ack: (answer: unknown) => void) => {
      ack({ server: name, payload, transport: socket.conn.transport.name });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    name,
    url: `http://127.0.0.1:${port}`,
    connectionErrors,
    connections,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
      server.closeAllConnections();
      await io.close();
      if (server.listening) await closed;
    },
  };
}

async function startProxy(backends: readonly IoBackend[], sticky: string): Promise<{ url: string; close(): Promise<void> }> {
  const yaml = [
    'listeners:',
    '  - address: 127.0.0.1:0',
    'sites:',
    '  - routes:',
    '      - to: io',
    'upstreams:',
    '  io:',
    `    servers: [${backends.map((backend) => backend.url).join(', ')}]`,
    `    sticky: ${sticky}`,
    '',
  ].join('\n');
  const { config } = loadConfigText(yaml, 'socketio-sticky.test.yaml', { env: {}, defaultSecret: 'socketio-sticky-test-secret-0123456789' });
  const proxy = await Switchyard.start(config, silentLogger());
  return { url: `http://127.0.0.1:${proxy.addresses[0]!.port}`, close: () => proxy.shutdown(0) };
}

/**
 * A socket.io client with the default transports (polling, then the upgrade to
 * websocket). withCredentials gives the Node client its cookie jar: cookies set
 * on polling responses go with later polls and with the WebSocket handshake.
 */
function connectClient(url: string): ClientSocket {
  return ioClient(url, { withCredentials: true, reconnection: false, forceNew: true, timeout: 5_000 });
}

interface Outcome {
  readonly connected: boolean;
  readonly errors: string[];
}

/** Waits until the client connects, or fails (connect_error, or the engine closing first). */
function outcomeOf(client: ClientSocket, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const errors: string[] = [];
    const finish = (connected: boolean): void => {
      clearTimeout(timer);
      resolve({ connected, errors });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    client.once('connect', () => finish(true));
    client.once('connect_error', (err: Error) => {
      errors.push(`connect_error: ${err.message}`);
      finish(false);
    });
    client.io.once('error', (err: Error) => errors.push(`manager error: ${err.message}`));
    client.io.once('close', (reason: string) => {
      errors.push(`engine closed: ${reason}`);
      finish(false);
    });
  });
}

function transportOf(client: ClientSocket): string {
  return client.io.engine.transport.name;
}

describe('socket.io behind Switchyard: polling, then the WebSocket upgrade', () => {
  test('with sticky: cookie, every client connects, upgrades to websocket and gets acks from the one server that knows its session', { timeout: 30_000 }, async () => {
    const backends = [await startIoBackend('io-1'), await startIoBackend('io-2')];
    const proxy = await startProxy(backends, 'cookie');
    const clients: ClientSocket[] = [];
    try {
      const answeredBy = new Set<string>();
      for (let i = 0; i < 4; i++) {
        const client = connectClient(proxy.url);
        clients.push(client);
        const outcome = await outcomeOf(client, 5_000);
        assert.equal(outcome.connected, true, `client ${i} did not connect: ${outcome.errors.join('; ')}`);
        await waitFor(() => transportOf(client) === 'websocket', 5_000, `client ${i} to upgrade to websocket`);
        const answer = await client.timeout(3_000).emitWithAck('whoami', `client-${i}`) as { server: string; payload: string; transport: string };
        assert.equal(answer.payload, `client-${i}`);
        assert.equal(answer.transport, 'websocket', 'the server-side session did not upgrade');
        answeredBy.add(answer.server);
        // A few more round trips stay on the same server.
        for (let j = 0; j < 3; j++) {
          const again = await client.timeout(3_000).emitWithAck('whoami', j) as { server: string };
          assert.equal(again.server, answer.server);
        }
        assert.equal(client.connected, true);
      }
      // Stickiness pins each client, not every client to one server.
      assert.deepEqual([...answeredBy].sort(), ['io-1', 'io-2']);
      for (const backend of backends) assert.deepEqual(backend.connectionErrors, [], `${backend.name} saw requests for sessions it does not know`);
    } finally {
      for (const client of clients) client.disconnect();
      await proxy.close();
      await Promise.all(backends.map((backend) => backend.close()));
    }
  });

  test('without stickiness (round robin) the session breaks: the second request reaches the other server, which does not know it', { timeout: 30_000 }, async () => {
    const backends = [await startIoBackend('io-1'), await startIoBackend('io-2')];
    const proxy = await startProxy(backends, 'none');
    const clients: ClientSocket[] = [];
    try {
      const outcomes: Outcome[] = [];
      for (let i = 0; i < 5; i++) {
        const client = connectClient(proxy.url);
        clients.push(client);
        outcomes.push(await outcomeOf(client, 5_000));
        client.disconnect();
      }
      assert.deepEqual(outcomes.map((outcome) => outcome.connected), [false, false, false, false, false],
        `some clients connected without stickiness: ${JSON.stringify(outcomes)}`);
      for (const outcome of outcomes) assert.ok(outcome.errors.length > 0, 'a client neither connected nor failed');
      // The servers say why: requests carrying a session ID the other server issued.
      const unknown = backends.flatMap((backend) => backend.connectionErrors).filter((message) => message === 'Session ID unknown');
      assert.ok(unknown.length >= 5, `expected a "Session ID unknown" per client, got ${JSON.stringify(backends.map((b) => b.connectionErrors))}`);
    } finally {
      for (const client of clients) client.disconnect();
      await proxy.close();
      await Promise.all(backends.map((backend) => backend.close()));
    }
  });
});
