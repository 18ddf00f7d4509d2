import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import { describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import type { UpstreamPool } from '../../src/upstream/upstream-pool.js';
import type { UpstreamServer } from '../../src/upstream/upstream-server.js';
import { closedPort, startOrigin, type Origin } from '../helpers/origins.js';
import { sleep, waitFor } from '../helpers/raw.js';

// ---------------------------------------------------------------------------
// Upstream pools end to end: stickiness across instances, health (active and
// passive), retries, connection limits with the wait queue, draining, and
// policies, each through a real Switchyard started from a YAML string in front
// of real origins on 127.0.0.1.
// ---------------------------------------------------------------------------

interface Running {
  readonly proxy: Switchyard;
  readonly port: number;
  readonly url: string;
  readonly wsUrl: string;
  /** The pool of upstream "app". */
  pool(): UpstreamPool;
  close(): Promise<void>;
}

/** Loads YAML (common indentation removed) with loadConfigText and starts Switchyard on it. */
async function startYaml(yaml: string, secret = 'pools-test-default-secret-0123456789'): Promise<Running> {
  const { config } = loadConfigText(dedent(yaml), 'upstream-pools.test.yaml', { env: {}, defaultSecret: secret });
  const proxy = await Switchyard.start(config, silentLogger());
  const port = proxy.addresses[0]!.port;
  return {
    proxy,
    port,
    url: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    pool: () => {
      const pool = proxy.runtime.pools.get('app');
      assert.ok(pool, 'no upstream "app"');
      return pool;
    },
    close: () => proxy.shutdown(0),
  };
}

/** A config with one catch-all route to upstream "app", whose body (YAML lines) is given. */
function appConfig(upstreamBody: string): string {
  const indented = dedent(upstreamBody).split('\n').map((line) => `      ${line}`).join('\n');
  return `listeners:\n  - address: 127.0.0.1:0\nsites:\n  - routes:\n      - to: app\nupstreams:\n  app:\n${indented}\n`;
}

function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').replace(/\n\s*$/, '').split('\n');
  const indents = lines.filter((line) => line.trim() !== '').map((line) => /^ */.exec(line)![0].length);
  const indent = Math.min(...indents);
  return lines.map((line) => line.slice(indent)).join('\n');
}

// ---------------------------------------------------------------------------
// Origins: named apps whose behaviour a test can change while they run.
// ---------------------------------------------------------------------------

interface Served {
  readonly url: string;
  readonly method: string;
  readonly at: number;
  doneAt: number | undefined;
}

interface App {
  readonly name: string;
  readonly origin: Origin;
  readonly url: string;
  /** What /health answers: 200 when true, 503 when false. */
  healthy: boolean;
  /** Every /health answer, with its time and status. */
  readonly checks: { at: number; status: number }[];
  /** Every other request, in arrival order. */
  readonly served: Served[];
  /** echo: 200 JSON; reset: destroy the connection without answering; error: 500. */
  behaviour: 'echo' | 'reset' | 'error';
  /** Delay before the reset when behaviour is reset. */
  resetDelayMs: number;
  close(): Promise<void>;
}

/**
 * An origin answering /health per `healthy`, other requests per `behaviour`
 * (after ?delay=MS when given) with X-Origin: NAME; its WebSockets send
 * "hello from NAME", then echo.
 */
async function startApp(name: string): Promise<App> {
  const app: App = {
    name, origin: undefined as unknown as Origin, url: '', healthy: true, checks: [], served: [], behaviour: 'echo', resetDelayMs: 0,
    close: () => app.origin.close(),
  };
  const origin = await startOrigin({
    name,
    handler: (req, res, body) => {
      const url = new URL(req.url ?? '/', 'http://origin.test');
      if (url.pathname === '/health') {
        const status = app.healthy ? 200 : 503;
        app.checks.push({ at: Date.now(), status });
        res.writeHead(status, { 'Content-Type': 'text/plain', 'X-Origin': name });
        res.end(app.healthy ? 'ok' : 'down');
        return;
      }
      const served: Served = { url: req.url ?? '', method: req.method ?? '', at: Date.now(), doneAt: undefined };
      app.served.push(served);
      if (app.behaviour === 'reset') {
        if (app.resetDelayMs > 0) setTimeout(() => req.socket.destroy(), app.resetDelayMs);
        else req.socket.destroy();
        return;
      }
      const answer = (): void => {
        const status = app.behaviour === 'error' ? 500 : 200;
        res.writeHead(status, { 'Content-Type': 'application/json', 'X-Origin': name });
        res.end(JSON.stringify({ origin: name, method: req.method, url: req.url, body }), () => { served.doneAt = Date.now(); });
      };
      const delay = Number(url.searchParams.get('delay') ?? '0');
      if (delay > 0) setTimeout(answer, delay);
      else answer();
    },
    onWebSocket: (ws) => {
      ws.send(`hello from ${name}`);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    },
  });
  Object.assign(app, { origin, url: origin.url });
  return app;
}

async function startApps<const N extends string>(names: readonly N[]): Promise<Record<N, App>> {
  const apps = await Promise.all(names.map((name) => startApp(name)));
  return Object.fromEntries(names.map((name, index) => [name, apps[index]])) as Record<N, App>;
}

async function closeApps(apps: Record<string, App>): Promise<void> {
  await Promise.all(Object.values(apps).map((app) => app.close()));
}

// ---------------------------------------------------------------------------
// Clients.
// ---------------------------------------------------------------------------

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** X-Origin of the answer, '' when no origin answered. */
  readonly origin: string;
  readonly elapsedMs: number;
}

interface SendOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string;
  readonly agent?: http.Agent;
}

function send(port: number, path: string, options: SendOptions = {}): Promise<Reply> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body !== undefined) headers['Content-Length'] = String(Buffer.byteLength(options.body));
    const req = http.request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', agent: options.agent ?? false, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        origin: typeof res.headers['x-origin'] === 'string' ? res.headers['x-origin'] : '',
        elapsedMs: Date.now() - started,
      }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

function describeReply(reply: Reply): string {
  return `${reply.status} ${String(reply.headers['x-switchyard-error'] ?? '')} ${reply.body.slice(0, 200)}`;
}

/** The affinity cookie ("name=value") of a response's Set-Cookie, if any. */
function affinityCookie(reply: Reply, name = 'sy_affinity'): string | undefined {
  const values = reply.headers['set-cookie'] ?? [];
  const found = values.find((value) => value.startsWith(`${name}=`));
  return found?.split(';')[0];
}

/** A WebSocket through the proxy that collects every message. */
class WsClient {
  readonly messages: string[] = [];
  closedAt: number | undefined;
  /** The close code the client received (1006: none, the connection just ended). */
  closeCode: number | undefined;
  readonly closed: Promise<void>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => this.messages.push(String(data)));
    ws.on('error', () => undefined);
    this.closed = new Promise((resolve) => ws.once('close', (code: number) => {
      this.closedAt = Date.now();
      this.closeCode = code;
      resolve();
    }));
  }

  get isClosed(): boolean {
    return this.closedAt !== undefined;
  }

  async next(timeoutMs = 2_000): Promise<string> {
    await waitFor(() => this.messages.length > 0 || this.isClosed, timeoutMs, 'a WebSocket message');
    const message = this.messages.shift();
    if (message === undefined) throw new Error('the WebSocket closed before a message arrived');
    return message;
  }

  async echo(text: string): Promise<string> {
    this.ws.send(text);
    return this.next();
  }

  /** The origin's greeting names it: "hello from NAME" → NAME. */
  async origin(): Promise<string> {
    const hello = await this.next();
    assert.match(hello, /^hello from /);
    return hello.slice('hello from '.length);
  }

  close(): Promise<void> {
    if (!this.isClosed) this.ws.terminate();
    return this.closed;
  }
}

type Handshake =
  | { readonly opened: true; readonly client: WsClient; readonly elapsedMs: number }
  | { readonly opened: false; readonly status: number; readonly headers: IncomingHttpHeaders; readonly elapsedMs: number };

/** A WebSocket handshake through the proxy: opened, or the status and headers of the refusal. */
function handshake(url: string, headers: Record<string, string> = {}): Promise<Handshake> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const client = new WsClient(ws);
    ws.once('open', () => resolve({ opened: true, client, elapsedMs: Date.now() - started }));
    ws.once('unexpected-response', (req, res) => {
      resolve({ opened: false, status: res.statusCode ?? 0, headers: res.headers, elapsedMs: Date.now() - started });
      res.resume();
      req.destroy();
    });
    ws.once('error', reject);
  });
}

async function openWs(url: string, headers: Record<string, string> = {}): Promise<WsClient> {
  const result = await handshake(url, headers);
  if (!result.opened) throw new Error(`handshake answered ${result.status} ${String(result.headers['x-switchyard-error'] ?? '')}`);
  return result.client;
}

/** Opens tunnels until one lands on `name`; closes the others. */
async function tunnelTo(url: string, name: string): Promise<WsClient> {
  const others: WsClient[] = [];
  try {
    for (let i = 0; i < 8; i++) {
      const client = await openWs(url);
      if (await client.origin() === name) return client;
      others.push(client);
    }
    throw new Error(`no tunnel landed on ${name}`);
  } finally {
    await Promise.all(others.map((client) => client.close()));
  }
}

function serverOf(pool: UpstreamPool, app: App): UpstreamServer {
  const server = pool.servers.find((candidate) => candidate.url === app.url);
  assert.ok(server, `${app.name} is not in the pool`);
  return server;
}

async function originsOf(port: number, count: number, path = '/who', headers: Record<string, string> = {}): Promise<string[]> {
  const origins: string[] = [];
  for (let i = 0; i < count; i++) {
    const reply = await send(port, path, { headers });
    assert.equal(reply.status, 200, describeReply(reply));
    origins.push(reply.origin);
  }
  return origins;
}

// ---------------------------------------------------------------------------

describe('cookie stickiness across two Switchyard instances', () => {
  test('a cookie from one instance sends the client to the same origin through the other; another secret ignores it', { timeout: 20_000 }, async () => {
    const apps = await startApps(['a', 'b', 'c'] as const);
    const upstream = `
      servers: [${apps.a.url}, ${apps.b.url}, ${apps.c.url}]
      sticky: { mode: cookie, secret: shared-secret-for-both-instances-42 }
    `;
    const first = await startYaml(appConfig(upstream));
    const second = await startYaml(appConfig(upstream));
    const foreign = await startYaml(appConfig(upstream.replace('shared-secret-for-both-instances-42', 'another-secret-entirely-0987654321')));
    try {
      // One cookie per origin, handed out by the first instance.
      const cookies = new Map<string, string>();
      for (let i = 0; i < 9 && cookies.size < 3; i++) {
        const reply = await send(first.port, '/login');
        assert.equal(reply.status, 200, describeReply(reply));
        const cookie = affinityCookie(reply);
        assert.ok(cookie, 'the first answer without a cookie sets the affinity cookie');
        cookies.set(reply.origin, cookie);
      }
      assert.deepEqual([...cookies.keys()].sort(), ['a', 'b', 'c']);

      for (const [origin, cookie] of cookies) {
        // The second instance honours the first one's cookie: same origin, every time.
        const seen = await originsOf(second.port, 6, '/next', { Cookie: `theme=dark; ${cookie}` });
        assert.deepEqual(seen, Array(6).fill(origin), `cookie pinned to ${origin} through the second instance`);
        const reply = await send(second.port, '/again', { headers: { Cookie: cookie } });
        assert.equal(affinityCookie(reply), undefined, 'a valid cookie is not re-issued');
        // A WebSocket through the second instance lands on the same origin too.
        const ws = await openWs(`${second.wsUrl}/ws`, { Cookie: cookie });
        try {
          assert.equal(await ws.origin(), origin);
          assert.equal(await ws.echo('ping'), 'ping');
        } finally {
          await ws.close();
        }
      }

      // An instance with another secret does not trust the cookie: it re-pins
      // (a new Set-Cookie) and balances as if there were none.
      const [origin, cookie] = [...cookies.entries()][0]!;
      const replies = [];
      for (let i = 0; i < 6; i++) replies.push(await send(foreign.port, '/foreign', { headers: { Cookie: cookie } }));
      for (const reply of replies) {
        assert.equal(reply.status, 200, describeReply(reply));
        const fresh = affinityCookie(reply);
        assert.ok(fresh, 'the foreign instance issues its own cookie');
        assert.notEqual(fresh, cookie);
      }
      assert.ok(new Set(replies.map((reply) => reply.origin)).size >= 2, `the cookie for ${origin} pinned the foreign instance: ${replies.map((r) => r.origin).join(',')}`);
    } finally {
      await Promise.all([first.close(), second.close(), foreign.close()]);
      await closeApps(apps);
    }
  });
});

// ---------------------------------------------------------------------------

interface Tombstone {
  /** Request lines received, with their arrival time. */
  readonly requests: { line: string; at: number }[];
  close(): Promise<void>;
}

/**
 * Takes a killed origin's port: every connection is read for its request line,
 * recorded, and reset, so attempts to reach the dead backend can be counted.
 */
async function tombstone(port: number): Promise<Tombstone> {
  const requests: { line: string; at: number }[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', (chunk: Buffer) => {
      requests.push({ line: chunk.toString('latin1').split('\r\n')[0] ?? '', at: Date.now() });
      socket.resetAndDestroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    requests,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('health checks', () => {
  test('a backend killed mid-run: with active and passive health on, ≥ 99% of 1000 requests succeed and none reach it once it is down', { timeout: 60_000 }, async () => {
    const apps = await startApps(['a', 'b', 'c'] as const);
    // Short passive ejections (100 ms, not doubling): passive health alone would
    // let requests back to the dead server every 100 ms; only the active check
    // keeps it out. Workers pause between requests so the run outlasts the kill
    // by seconds.
    const sy = await startYaml(appConfig(`
      servers: [${apps.a.url}, ${apps.b.url}, ${apps.c.url}]
      fail_timeout: 100ms
      health:
        active: { path: /health, interval: 100ms, timeout: 100ms, fall: 2, rise: 2 }
        passive: { max_fails: 1, fail_on: [connect, reset, timeout], max_eject: 100ms }
    `));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    let grave: Tombstone | undefined;
    let monitor: NodeJS.Timeout | undefined;
    try {
      const dead = serverOf(sy.pool(), apps.c);
      const total = 1_000;
      const statuses = new Map<number, number>();
      const byOrigin = new Map<string, number>();
      let issued = 0;
      let completed = 0;
      let killedAt = 0;
      let downAt = 0;
      let killing: Promise<void> | undefined;
      const kill = async (): Promise<void> => {
        killedAt = Date.now();
        monitor = setInterval(() => {
          if (downAt === 0 && !dead.healthy) downAt = Date.now();
        }, 5);
        await apps.c.close();
        grave = await tombstone(apps.c.origin.port);
      };
      const worker = async (): Promise<void> => {
        while (issued < total) {
          const index = issued++;
          let status = 0;
          try {
            const reply = await send(sy.port, `/load/${index}`, { agent });
            status = reply.status;
            byOrigin.set(reply.origin, (byOrigin.get(reply.origin) ?? 0) + 1);
          } catch {
            status = -1;
          }
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          completed++;
          if (completed === 200 && !killing) killing = kill();
          await sleep(15);
        }
      };
      await Promise.all(Array.from({ length: 10 }, () => worker()));
      await killing;
      const ok = statuses.get(200) ?? 0;
      assert.ok(ok >= 990, `only ${ok} of ${total} succeeded: ${JSON.stringify([...statuses])}`);
      assert.ok(apps.c.served.length > 0, 'the killed origin served nothing before it died');
      // The active check (fall 2 at 100 ms) took the dead server down...
      await waitFor(() => downAt !== 0, 3_000, 'the active check to take the killed server down');
      assert.ok(downAt - killedAt < 2_000, `down ${downAt - killedAt} ms after the kill`);
      // ... and from then on no request was sent its way (health checks aside).
      assert.ok(grave);
      const late = grave.requests.filter((request) => !request.line.includes('/health') && request.at > downAt + 100);
      assert.deepEqual(late.map((request) => request.line), [], 'requests sent to the server after it was down');
      assert.equal(dead.healthy, false, 'the dead server came back up although every check fails');
      assert.ok(grave.requests.some((request) => request.line.startsWith('GET /health')), 'the dead server is still checked');
    } finally {
      clearInterval(monitor);
      agent.destroy();
      await sy.close();
      await grave?.close();
      await closeApps(apps);
    }
  });

  test('rise and fall: fall failed checks in a row take a server down, rise passes bring it back, each at the interval', { timeout: 20_000 }, async () => {
    const apps = await startApps(['a', 'b'] as const);
    const interval = 100;
    const fall = 3;
    const rise = 2;
    const sy = await startYaml(appConfig(`
      servers: [${apps.a.url}, ${apps.b.url}]
      health:
        active: { path: /health, interval: ${interval}ms, timeout: ${interval}ms, fall: ${fall}, rise: ${rise} }
    `));
    try {
      const a = serverOf(sy.pool(), apps.a);
      await waitFor(() => apps.a.checks.length >= 2, 2_000, 'the first checks of a');
      assert.equal(a.healthy, true);

      const failingFrom = Date.now();
      apps.a.healthy = false;
      await waitFor(() => !a.healthy, 3_000, 'a to go down');
      const downAfter = Date.now() - failingFrom;
      const failedChecks = apps.a.checks.filter((check) => check.at >= failingFrom && check.status === 503).length;
      assert.equal(failedChecks, fall, `a went down after ${failedChecks} failed checks, not ${fall}`);
      assert.ok(downAfter >= (fall - 1) * interval - 30, `down after ${downAfter} ms: faster than ${fall} checks at ${interval} ms`);
      assert.ok(downAfter <= fall * interval + 600, `down only after ${downAfter} ms`);

      // Down: every request goes to b.
      assert.deepEqual(await originsOf(sy.port, 6), Array(6).fill('b'));
      await sleep(3 * interval);
      assert.equal(a.healthy, false, 'a came back while its checks still fail');

      const passingFrom = Date.now();
      apps.a.healthy = true;
      await waitFor(() => a.healthy, 3_000, 'a to come back');
      const upAfter = Date.now() - passingFrom;
      const passedChecks = apps.a.checks.filter((check) => check.at >= passingFrom && check.status === 200).length;
      assert.equal(passedChecks, rise, `a came back after ${passedChecks} passed checks, not ${rise}`);
      assert.ok(upAfter >= (rise - 1) * interval - 30, `up after ${upAfter} ms: faster than ${rise} checks at ${interval} ms`);
      assert.ok(upAfter <= rise * interval + 600, `up only after ${upAfter} ms`);
      assert.ok((await originsOf(sy.port, 6)).includes('a'), 'a gets requests again once up');
    } finally {
      await sy.close();
      await closeApps(apps);
    }
  });

  for (const onDown of ['close', 'keep'] as const) {
    test(`on_down: ${onDown}: ${onDown === 'close' ? 'closes' : 'keeps'} the tunnels of a server the active check takes down`, { timeout: 20_000 }, async () => {
      const apps = await startApps(['a', 'b'] as const);
      const sy = await startYaml(appConfig(`
        servers: [${apps.a.url}, ${apps.b.url}]
        health:
          active: { path: /health, interval: 100ms, timeout: 100ms, fall: 2, rise: 2 }
          on_down: ${onDown}
      `));
      let onA: WsClient | undefined;
      let onB: WsClient | undefined;
      try {
        onA = await tunnelTo(`${sy.wsUrl}/ws`, 'a');
        onB = await tunnelTo(`${sy.wsUrl}/ws`, 'b');
        const a = serverOf(sy.pool(), apps.a);
        apps.a.healthy = false;
        await waitFor(() => !a.healthy, 3_000, 'a to go down');
        if (onDown === 'close') {
          await waitFor(() => onA!.isClosed, 1_000, 'the tunnel on a to be closed');
        } else {
          await sleep(300);
          assert.equal(onA.isClosed, false, 'on_down: keep closed the tunnel');
          assert.equal(await onA.echo('still here'), 'still here');
        }
        // The healthy server's tunnel is not touched either way.
        assert.equal(await onB.echo('b lives'), 'b lives');
        // New tunnels avoid the down server.
        const fresh = await openWs(`${sy.wsUrl}/ws`);
        try {
          assert.equal(await fresh.origin(), 'b');
        } finally {
          await fresh.close();
        }
      } finally {
        await onA?.close();
        await onB?.close();
        await sy.close();
        await closeApps(apps);
      }
    });
  }

  test('passive health: fail_on [5xx] with max_fails 2 ejects a server after two 500s, which still reach the client', { timeout: 20_000 }, async () => {
    const apps = await startApps(['a', 'b'] as const);
    apps.a.behaviour = 'error';
    const sy = await startYaml(appConfig(`
      servers: [${apps.a.url}, ${apps.b.url}]
      health:
        passive: { max_fails: 2, fail_on: [5xx] }
    `));
    try {
      const replies: Reply[] = [];
      for (let i = 0; i < 12; i++) replies.push(await send(sy.port, `/p/${i}`));
      const fromA = replies.filter((reply) => reply.origin === 'a');
      assert.equal(fromA.length, 2, `a answered ${fromA.length} times: ${replies.map((reply) => `${reply.origin}:${reply.status}`).join(' ')}`);
      for (const reply of fromA) {
        assert.equal(reply.status, 500, 'the 500 reaches the client as it is');
        assert.equal(reply.headers['x-switchyard-error'], undefined, 'a backend 500 is not a proxy error');
      }
      assert.equal(apps.a.served.length, 2, 'a got requests after its second 500');
      // After the two 500s, every request went to b.
      const afterEjection = replies.slice(replies.indexOf(fromA[1]!) + 1);
      assert.ok(afterEjection.length >= 8);
      assert.deepEqual(afterEjection.map((reply) => `${reply.origin}:${reply.status}`), Array(afterEjection.length).fill('b:200'));
      assert.ok(serverOf(sy.pool(), apps.a).ejectedUntil > Date.now(), 'a is not ejected');
    } finally {
      await sy.close();
      await closeApps(apps);
    }
  });
});

// ---------------------------------------------------------------------------

describe('retries only when safe', () => {
  // Policy first makes the resetting origin (listed first) the first try every
  // time; fail_on [5xx] keeps it from being ejected between requests.
  async function resetThenEcho(extra = ''): Promise<{ apps: Record<'resetting' | 'good', App>; sy: Running }> {
    const apps = await startApps(['resetting', 'good'] as const);
    apps.resetting.behaviour = 'reset';
    const sy = await startYaml(appConfig(`
      servers: [${apps.resetting.url}, ${apps.good.url}]
      policy: first
      health: { passive: { fail_on: [5xx] } }
      ${extra}
    `));
    return { apps, sy };
  }

  test('a reset before any answer: a GET is retried on the next server; a POST with a body gets 502 and never reaches it', { timeout: 20_000 }, async () => {
    const { apps, sy } = await resetThenEcho();
    try {
      const get = await send(sy.port, '/read');
      assert.equal(get.status, 200, describeReply(get));
      assert.equal(get.origin, 'good');
      assert.deepEqual(apps.resetting.served.map((served) => `${served.method} ${served.url}`), ['GET /read'], 'the GET was not tried on the resetting server first');
      assert.deepEqual(apps.good.served.map((served) => `${served.method} ${served.url}`), ['GET /read']);

      const post = await send(sy.port, '/write', { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: 'order=1' });
      assert.equal(post.status, 502, describeReply(post));
      assert.equal(post.headers['x-switchyard-error'], 'SY_UPSTREAM_RESET');
      assert.equal(apps.resetting.served.filter((served) => served.method === 'POST').length, 1, 'the POST reached the resetting server once');
      assert.deepEqual(apps.good.served.filter((served) => served.method === 'POST'), [], 'the POST was sent again after a reset');

      // Not idempotent even without a body; idempotent but with a body: neither is resent.
      const emptyPost = await send(sy.port, '/empty', { method: 'POST' });
      assert.equal(emptyPost.status, 502, describeReply(emptyPost));
      const put = await send(sy.port, '/put', { method: 'PUT', body: 'x' });
      assert.equal(put.status, 502, describeReply(put));
      assert.deepEqual(apps.good.served.map((served) => `${served.method} ${served.url}`), ['GET /read']);

      // Idempotent methods without a body are retried.
      for (const method of ['HEAD', 'DELETE', 'OPTIONS']) {
        const reply = await send(sy.port, `/m/${method}`, { method });
        assert.equal(reply.status, 200, `${method}: ${describeReply(reply)}`);
        assert.equal(reply.origin, 'good');
      }
    } finally {
      await sy.close();
      await closeApps(apps);
    }
  });

  test('a refused connection is retried for a POST too: nothing reached the first server', { timeout: 20_000 }, async () => {
    const refused = await closedPort();
    const good = await startApp('good');
    const sy = await startYaml(appConfig(`
      servers: [http://127.0.0.1:${refused}, ${good.url}]
      policy: first
      health: { passive: { fail_on: [5xx] } }
    `));
    try {
      for (let i = 0; i < 3; i++) {
        const reply = await send(sy.port, `/order/${i}`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: `item=${i}` });
        assert.equal(reply.status, 200, describeReply(reply));
        assert.equal(reply.origin, 'good');
        assert.equal((JSON.parse(reply.body) as { body: string }).body, `item=${i}`);
      }
      assert.equal(good.served.length, 3);
    } finally {
      await sy.close();
      await good.close();
    }
  });

  test('retries: 0 turns retrying off: a reset GET and a refused connection each get 502', { timeout: 20_000 }, async () => {
    const { apps, sy } = await resetThenEcho('retries: 0');
    const refused = await closedPort();
    const sy2 = await startYaml(appConfig(`
      servers: [http://127.0.0.1:${refused}, ${apps.good.url}]
      policy: first
      retries: 0
      health: { passive: { fail_on: [5xx] } }
    `));
    try {
      const get = await send(sy.port, '/read');
      assert.equal(get.status, 502, describeReply(get));
      assert.equal(get.headers['x-switchyard-error'], 'SY_UPSTREAM_RESET');
      const refusedGet = await send(sy2.port, '/read2');
      assert.equal(refusedGet.status, 502, describeReply(refusedGet));
      assert.equal(refusedGet.headers['x-switchyard-error'], 'SY_UPSTREAM_CONNECT_REFUSED');
      assert.equal(apps.resetting.served.length, 1);
      assert.deepEqual(apps.good.served, [], 'a request was retried with retries: 0');
    } finally {
      await Promise.all([sy.close(), sy2.close()]);
      await closeApps(apps);
    }
  });

  test('retry_deadline: no new attempt starts once it has passed', { timeout: 20_000 }, async () => {
    const { apps, sy } = await resetThenEcho('retry_deadline: 150ms');
    apps.resetting.resetDelayMs = 400;
    const { apps: control, sy: patient } = await resetThenEcho('retry_deadline: 5s');
    control.resetting.resetDelayMs = 400;
    try {
      const late = await send(sy.port, '/slow-reset');
      assert.equal(late.status, 502, describeReply(late));
      assert.equal(late.headers['x-switchyard-error'], 'SY_UPSTREAM_RESET');
      assert.ok(late.elapsedMs >= 350, `answered after ${late.elapsedMs} ms, before the reset`);
      assert.deepEqual(apps.good.served, [], 'retried after the deadline');
      // The same failure within the deadline is retried.
      const retried = await send(patient.port, '/slow-reset');
      assert.equal(retried.status, 200, describeReply(retried));
      assert.equal(retried.origin, 'good');
    } finally {
      await Promise.all([sy.close(), patient.close()]);
      await closeApps(apps);
      await closeApps(control);
    }
  });
});

// ---------------------------------------------------------------------------

describe('max_conns and the wait queue', () => {
  async function oneSlot(): Promise<{ app: App; sy: Running }> {
    const app = await startApp('only');
    const sy = await startYaml(appConfig(`
      servers: [{ url: ${app.url}, max_conns: 1 }]
      queue: { size: 1, timeout: 300ms }
    `));
    return { app, sy };
  }

  test('one request in flight: the next waits and is served after it; one more gets 503 at once with Retry-After', { timeout: 20_000 }, async () => {
    const { app, sy } = await oneSlot();
    try {
      const first = send(sy.port, '/first?delay=150');
      await waitFor(() => app.served.length === 1, 2_000, 'the first request at the origin');
      const second = send(sy.port, '/second');
      await sleep(30);
      assert.equal(app.served.length, 1, 'the second request did not wait for the slot');
      const third = await send(sy.port, '/third');
      assert.equal(third.status, 503, describeReply(third));
      assert.equal(third.headers['x-switchyard-error'], 'SY_UPSTREAM_BUSY');
      assert.match(String(third.headers['retry-after']), /^[1-9]\d*$/);
      assert.ok(third.elapsedMs < 150, `the 503 took ${third.elapsedMs} ms`);
      const [one, two] = await Promise.all([first, second]);
      assert.equal(one.status, 200, describeReply(one));
      assert.equal(two.status, 200, describeReply(two));
      const [servedFirst, servedSecond] = app.served;
      assert.deepEqual(app.served.map((served) => served.url), ['/first?delay=150', '/second'], 'the third request reached the origin');
      assert.ok(servedFirst!.doneAt !== undefined && servedSecond!.at >= servedFirst!.doneAt, 'the second request ran beside the first despite max_conns 1');
    } finally {
      await sy.close();
      await app.close();
    }
  });

  test('a request that waits longer than queue.timeout gets 503 SY_UPSTREAM_BUSY after about that long', { timeout: 20_000 }, async () => {
    const { app, sy } = await oneSlot();
    try {
      const slow = send(sy.port, '/slow?delay=1000');
      await waitFor(() => app.served.length === 1, 2_000, 'the slow request at the origin');
      const waiting = await send(sy.port, '/waiting');
      assert.equal(waiting.status, 503, describeReply(waiting));
      assert.equal(waiting.headers['x-switchyard-error'], 'SY_UPSTREAM_BUSY');
      assert.match(String(waiting.headers['retry-after']), /^[1-9]\d*$/);
      assert.ok(waiting.elapsedMs >= 270 && waiting.elapsedMs < 800, `503 after ${waiting.elapsedMs} ms, queue.timeout is 300 ms`);
      assert.equal((await slow).status, 200);
      assert.deepEqual(app.served.map((served) => served.url), ['/slow?delay=1000']);
    } finally {
      await sy.close();
      await app.close();
    }
  });

  test('WebSocket handshakes queue the same way: a tunnel holds the only slot', { timeout: 20_000 }, async () => {
    const { app, sy } = await oneSlot();
    const clients: WsClient[] = [];
    try {
      const holder = await openWs(`${sy.wsUrl}/ws/1`);
      clients.push(holder);
      assert.equal(await holder.origin(), 'only');
      const waiting = handshake(`${sy.wsUrl}/ws/2`);
      await sleep(50);
      assert.equal(app.origin.handshakes.length, 1, 'the second handshake did not wait for the slot');
      const refused = await handshake(`${sy.wsUrl}/ws/3`);
      assert.equal(refused.opened, false, 'a third handshake got through with the queue full');
      if (!refused.opened) {
        assert.equal(refused.status, 503);
        assert.equal(refused.headers['x-switchyard-error'], 'SY_UPSTREAM_BUSY');
        assert.match(String(refused.headers['retry-after']), /^[1-9]\d*$/);
        assert.ok(refused.elapsedMs < 150, `the 503 took ${refused.elapsedMs} ms`);
      }
      // The tunnel ends: the waiting handshake gets the slot.
      await holder.close();
      const second = await waiting;
      assert.equal(second.opened, true, 'the queued handshake was refused');
      if (second.opened) {
        clients.push(second.client);
        assert.equal(await second.client.origin(), 'only');
        assert.equal(await second.client.echo('queued'), 'queued');
      }
      // With that tunnel open, a waiting handshake times out after about 300 ms.
      const late = await handshake(`${sy.wsUrl}/ws/4`);
      assert.equal(late.opened, false);
      if (!late.opened) {
        assert.equal(late.status, 503);
        assert.equal(late.headers['x-switchyard-error'], 'SY_UPSTREAM_BUSY');
        assert.ok(late.elapsedMs >= 270 && late.elapsedMs < 800, `503 after ${late.elapsedMs} ms`);
      }
      assert.deepEqual(app.origin.handshakes.map((request) => request.url), ['/ws/1', '/ws/2']);
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await sy.close();
      await app.close();
    }
  });

  test('a server at max_conns gets no new work: it spreads to the other server, and back once a slot frees', { timeout: 20_000 }, async () => {
    const apps = await startApps(['a', 'b'] as const);
    const sy = await startYaml(appConfig(`
      servers: [{ url: ${apps.a.url}, max_conns: 1 }, ${apps.b.url}]
    `));
    let onA: WsClient | undefined;
    try {
      onA = await tunnelTo(`${sy.wsUrl}/ws`, 'a');
      assert.deepEqual(await originsOf(sy.port, 8), Array(8).fill('b'), 'a full server got requests');
      const more = await openWs(`${sy.wsUrl}/ws`);
      try {
        assert.equal(await more.origin(), 'b');
      } finally {
        await more.close();
      }
      await onA.close();
      await waitFor(() => serverOf(sy.pool(), apps.a).active === 0, 2_000, 'the slot on a to free');
      assert.ok((await originsOf(sy.port, 8)).includes('a'), 'a gets requests again once below max_conns');
    } finally {
      await onA?.close();
      await sy.close();
      await closeApps(apps);
    }
  });
});

// ---------------------------------------------------------------------------

describe('draining', () => {
  test('drainServer moves new requests and tunnels to the other server, closes its open tunnel with 1012 at once; undrain brings it back', { timeout: 20_000 }, async () => {
    const apps = await startApps(['a', 'b'] as const);
    const sy = await startYaml(appConfig(`
      servers: [${apps.a.url}, ${apps.b.url}]
    `));
    let onA: WsClient | undefined;
    const fresh: WsClient[] = [];
    try {
      onA = await tunnelTo(`${sy.wsUrl}/ws`, 'a');
      assert.equal(await onA.echo('before'), 'before');
      const drainedAt = Date.now();
      assert.equal(sy.proxy.drainServer('app', apps.a.url), true);
      assert.equal(sy.proxy.drainServer('app', 'http://127.0.0.1:1'), false, 'draining an unknown server');
      // A 1012 close frame (Service Restart) reaches the client at once, not at the 5m drain_timeout.
      await waitFor(() => onA!.isClosed, 2_000, 'the drained tunnel to be closed');
      assert.equal(onA.closeCode, 1012);
      assert.ok(onA.closedAt! - drainedAt < 1_000, `closed ${onA.closedAt! - drainedAt} ms after drainServer`);
      await waitFor(() => apps.a.origin.sockets.size === 0, 2_000, 'the backend side to close');
      assert.deepEqual(await originsOf(sy.port, 6), Array(6).fill('b'), 'a drained server got requests');
      for (let i = 0; i < 3; i++) {
        const client = await openWs(`${sy.wsUrl}/ws`);
        fresh.push(client);
        assert.equal(await client.origin(), 'b', 'a drained server got a tunnel');
      }
      for (const client of fresh) assert.equal(await client.echo('b stays'), 'b stays', 'a tunnel on the other server was closed');

      assert.equal(sy.proxy.undrainServer('app', apps.a.url), true);
      assert.ok((await originsOf(sy.port, 6)).includes('a'), 'undrained a gets no requests');
    } finally {
      await onA?.close();
      await Promise.all(fresh.map((client) => client.close()));
      await sy.close();
      await closeApps(apps);
    }
  });

  test('drain: true in the file starts the server drained', { timeout: 20_000 }, async () => {
    const apps = await startApps(['a', 'b'] as const);
    const sy = await startYaml(appConfig(`
      servers: [{ url: ${apps.a.url}, drain: true }, ${apps.b.url}]
    `));
    try {
      assert.deepEqual(await originsOf(sy.port, 8), Array(8).fill('b'));
      const client = await openWs(`${sy.wsUrl}/ws`);
      try {
        assert.equal(await client.origin(), 'b');
      } finally {
        await client.close();
      }
      assert.equal(apps.a.served.length + apps.a.origin.handshakes.length, 0);
      assert.equal(sy.proxy.undrainServer('app', apps.a.url), true);
      assert.ok((await originsOf(sy.port, 6)).includes('a'));
    } finally {
      await sy.close();
      await closeApps(apps);
    }
  });
});

// ---------------------------------------------------------------------------

describe('policies through the proxy', () => {
  test('policy hash with hash_key header: each key stays on one origin; keys spread', { timeout: 20_000 }, async () => {
    const apps = await startApps(['a', 'b', 'c'] as const);
    const sy = await startYaml(appConfig(`
      servers: [${apps.a.url}, ${apps.b.url}, ${apps.c.url}]
      policy: hash
      hash_key: { header: X-User }
    `));
    try {
      const homes = new Map<string, string>();
      for (let user = 0; user < 15; user++) {
        const seen = await originsOf(sy.port, 4, `/u/${user}`, { 'X-User': `user-${user}` });
        assert.equal(new Set(seen).size, 1, `user-${user} went to ${seen.join(',')}`);
        homes.set(`user-${user}`, seen[0]!);
      }
      assert.ok(new Set(homes.values()).size >= 2, `every key went to ${[...homes.values()][0]}`);
      // The same key through a WebSocket lands on the same origin.
      const [user, home] = [...homes.entries()][0]!;
      const client = await openWs(`${sy.wsUrl}/ws`, { 'X-User': user });
      try {
        assert.equal(await client.origin(), home);
      } finally {
        await client.close();
      }
    } finally {
      await sy.close();
      await closeApps(apps);
    }
  });

  test('policy first with max_conns fills the servers in the order written', { timeout: 20_000 }, async () => {
    const apps = await startApps(['a', 'b', 'c'] as const);
    const sy = await startYaml(appConfig(`
      servers: [{ url: ${apps.a.url}, max_conns: 1 }, { url: ${apps.b.url}, max_conns: 1 }, ${apps.c.url}]
      policy: first
    `));
    const clients: WsClient[] = [];
    try {
      assert.deepEqual(await originsOf(sy.port, 4), Array(4).fill('a'), 'an idle pool sends everything to the first server');
      const landed: string[] = [];
      for (let i = 0; i < 4; i++) {
        const client = await openWs(`${sy.wsUrl}/ws`);
        clients.push(client);
        landed.push(await client.origin());
      }
      assert.deepEqual(landed, ['a', 'b', 'c', 'c']);
      assert.deepEqual(await originsOf(sy.port, 4), Array(4).fill('c'), 'requests skip the full servers');
      await clients[0]!.close();
      await waitFor(() => serverOf(sy.pool(), apps.a).active === 0, 2_000, 'the slot on a to free');
      assert.deepEqual(await originsOf(sy.port, 2), ['a', 'a'], 'a freed slot on the first server is used first');
    } finally {
      await Promise.all(clients.map((client) => client.close()));
      await sy.close();
      await closeApps(apps);
    }
  });
});
