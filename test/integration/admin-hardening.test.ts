/**
 * The admin listener against hostile browsers and careless peers: DNS
 * rebinding and cross-site requests without a token, redacted config, bounded
 * metric labels, the live-feed cap, and a close() that does not wait for
 * keep-alive clients. Real proxy, real origins, real sockets on 127.0.0.1:0.
 */
import assert from 'node:assert/strict';
import http, { type IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { LocalAdminBackend } from '../../src/admin/admin-backend.js';
import { AdminServer } from '../../src/admin/admin-server.js';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { closeCodeLabel } from '../../src/observe/observer.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { waitFor } from '../helpers/raw.js';

const T = { timeout: 10_000 };
const SECRET_HEADER_VALUE = 'api-key-that-must-not-leak-42';
const HEALTH_HEADER_VALUE = 'health-token-that-must-not-leak-7';
const MATCH_HEADER_VALUE = 'match-value-that-must-not-leak-9';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function request(port: number, path: string, options: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.setTimeout(5_000, () => req.destroy(new Error(`${path}: no answer`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

function errorCode(reply: Reply): string | undefined {
  try {
    return (JSON.parse(reply.body) as { error?: string }).error;
  } catch {
    return undefined;
  }
}

/** The value of one sample line of the Prometheus text, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const wanted = Object.entries(labels).every(([key, value]) => line.includes(`${key}="${value}"`));
    if (wanted) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('admin listener hardening', () => {
  let origin: Origin;
  let proxy: Switchyard;
  let admin: AdminServer;
  let proxyPort: number;

  before(async () => {
    origin = await startOrigin({
      onWebSocket: (ws) => ws.on('message', (data, binary) => {
        const text = data.toString();
        if (text.startsWith('close ')) ws.close(Number(text.slice(6)), 'asked');
        else ws.send(data, { binary });
      }),
    });
    const yaml = `
listeners:
  - address: 127.0.0.1:0
sites:
  - name: main
    routes:
      - name: secret-match
        match: { prefix: /private, headers: { X-Match: ${MATCH_HEADER_VALUE} } }
        to: app
      - name: app
        to: app
        request_headers: { set: { X-Api-Key: ${SECRET_HEADER_VALUE} }, add: { X-Extra: ${SECRET_HEADER_VALUE} } }
upstreams:
  app:
    servers: [${origin.url}]
    health:
      active: { path: /health, interval: 60s, headers: { Authorization: ${HEALTH_HEADER_VALUE} } }
timeouts: { tunnel_idle: 30s }
`;
    const config = loadConfigText(yaml, 'admin-hardening.yaml', { env: {}, defaultSecret: 'admin-hardening-secret-0123456789' }).config;
    proxy = await Switchyard.start(config, silentLogger());
    proxyPort = proxy.addresses[0]!.port;
    admin = await AdminServer.start({ host: '127.0.0.1', port: 0 }, new LocalAdminBackend(proxy, undefined), silentLogger());
  });

  after(async () => {
    await admin.close();
    await proxy.shutdown(0);
    await origin.close();
  });

  test('without a token, a Host that is a foreign name (DNS rebinding) gets 403; IP literals and localhost are answered', T, async () => {
    for (const host of ['evil.example', 'evil.example:80', `attacker.test:${admin.port}`]) {
      const reply = await request(admin.port, '/api/stats', { headers: { Host: host } });
      assert.equal(reply.status, 403, `Host ${host}`);
      assert.equal(errorCode(reply), 'SY_ADMIN_FORBIDDEN');
    }
    for (const host of [`127.0.0.1:${admin.port}`, `localhost:${admin.port}`, 'localhost', `[::1]:${admin.port}`, '10.1.2.3']) {
      assert.equal((await request(admin.port, '/api/stats', { headers: { Host: host } })).status, 200, `Host ${host}`);
    }
  });

  test('without a token, a POST or DELETE from another origin is refused; the same origin and no Origin (curl) pass', T, async () => {
    const host = `127.0.0.1:${admin.port}`;
    const foreign = await request(admin.port, '/api/reload', { method: 'POST', headers: { Host: host, Origin: 'http://evil.example' } });
    assert.equal(foreign.status, 403);
    assert.equal(errorCode(foreign), 'SY_ADMIN_FORBIDDEN');
    const foreignDelete = await request(admin.port, '/api/tunnels/1:1', { method: 'DELETE', headers: { Host: host, Origin: 'null' } });
    assert.equal(foreignDelete.status, 403);
    // This proxy was not started from a file: reload answers 422, past the origin check.
    const same = await request(admin.port, '/api/reload', { method: 'POST', headers: { Host: host, Origin: `http://${host}` } });
    assert.equal(same.status, 422, same.body);
    assert.equal((await request(admin.port, '/api/reload', { method: 'POST' })).status, 422);
    // A GET with a foreign Origin reads nothing a page could not already be refused by CORS.
    assert.equal((await request(admin.port, '/api/stats', { headers: { Host: host, Origin: 'http://evil.example' } })).status, 200);
  });

  test('with a token, Host and Origin are not checked; the Bearer scheme is case-insensitive', T, async () => {
    const token = 'hardening-token-0123456789';
    const guarded = await AdminServer.start({ host: '127.0.0.1', port: 0, token }, new LocalAdminBackend(proxy, undefined), silentLogger());
    try {
      assert.equal((await request(guarded.port, '/api/stats', { headers: { Host: 'admin.internal.example' } })).status, 401);
      for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
        const reply = await request(guarded.port, '/api/stats', { headers: { Host: 'admin.internal.example', Authorization: `${scheme} ${token}` } });
        assert.equal(reply.status, 200, scheme);
      }
      assert.equal((await request(guarded.port, '/api/stats', { headers: { Authorization: `Basic ${token}` } })).status, 401);
    } finally {
      await guarded.close();
    }
  });

  test('/api/config redacts header values and shows match conditions as objects', T, async () => {
    const reply = await request(admin.port, '/api/config');
    assert.equal(reply.status, 200);
    for (const secret of [SECRET_HEADER_VALUE, HEALTH_HEADER_VALUE, MATCH_HEADER_VALUE]) assert.ok(!reply.body.includes(secret), `${secret} leaked: ${reply.body}`);
    const config = JSON.parse(reply.body) as {
      sites: { routes: { name: string; match: { headers?: Record<string, unknown> }; action: { requestHeaders?: { set?: Record<string, string>; add?: Record<string, string> } } }[] }[];
      upstreams: Record<string, { activeHealth?: { headers?: Record<string, string> } }>;
    };
    const routes = config.sites[0]!.routes;
    const matching = routes.find((route) => route.name === 'secret-match')!;
    assert.deepEqual(Object.keys(matching.match.headers ?? {}), ['x-match'], 'the match header names survive (a Map used to serialise as {})');
    const app = routes.find((route) => route.name === 'app')!;
    assert.deepEqual(app.action.requestHeaders?.set, { 'X-Api-Key': '[redacted]' });
    assert.deepEqual(app.action.requestHeaders?.add, { 'X-Extra': '[redacted]' });
    const healthHeaders = config.upstreams.app?.activeHealth?.headers;
    assert.ok(healthHeaders && Object.values(healthHeaders).every((value) => value === '[redacted]'), JSON.stringify(config.upstreams.app));
  });

  test('bad percent-encoding in an admin path is 400, not 500', T, async () => {
    const drain = await request(admin.port, '/api/upstreams/%E0%A4%A/drain', { method: 'POST', body: JSON.stringify({ server: origin.url }) });
    assert.equal(drain.status, 400, drain.body);
    assert.equal(errorCode(drain), 'SY_ADMIN_BAD_REQUEST');
    const tunnel = await request(admin.port, '/api/tunnels/%ZZ', { method: 'DELETE' });
    assert.equal(tunnel.status, 400, tunnel.body);
  });

  test('close codes are bucketed: the protocol range keeps its number, 4321 becomes 4xxx, 999 invalid', T, async () => {
    assert.equal(closeCodeLabel(1000), '1000');
    assert.equal(closeCodeLabel(1015), '1015');
    assert.equal(closeCodeLabel(1016), 'invalid');
    assert.equal(closeCodeLabel(3001), '3xxx');
    assert.equal(closeCodeLabel(4999), '4xxx');
    assert.equal(closeCodeLabel(999), 'invalid');
    assert.equal(closeCodeLabel(5000), 'invalid');

    const ws = new WebSocket(`ws://127.0.0.1:${proxyPort}/room`);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
    ws.send('close 4321');
    assert.equal(await closed, 4321);
    let text = '';
    await waitFor(() => {
      void request(admin.port, '/metrics').then((reply) => { text = reply.body; });
      return sample(text, 'switchyard_websocket_close_codes_total', { route: 'app', side: 'backend', code: '4xxx' }) === 1;
    }, 3_000, 'a 4xxx backend close code in the metrics');
    assert.ok(!text.includes('code="4321"'), 'the raw application code is not a label');
  });

  test('switchyard_upstream_active counts an open tunnel by route and server, and drops it when it ends', T, async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${proxyPort}/room`);
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
    const labels = { site: 'main', route: 'app', upstream: 'app', server: origin.url };
    const open = await request(admin.port, '/metrics');
    assert.equal(sample(open.body, 'switchyard_upstream_active', labels), 1, open.body.split('\n').filter((l) => l.includes('upstream_active')).join('\n'));
    ws.close(1000);
    let text = open.body;
    await waitFor(() => {
      void request(admin.port, '/metrics').then((reply) => { text = reply.body; });
      return sample(text, 'switchyard_upstream_active', labels) === undefined;
    }, 3_000, 'the gauge to drop the ended tunnel');
    // The histograms carry the site too.
    assert.ok(/switchyard_websocket_session_seconds_count\{[^}]*site="main"[^}]*route="app"/.test(text), 'session histogram labelled by site and route');
  });

  test('live feeds are capped at 64: the 65th gets 503 SY_ADMIN_BUSY; closing one makes room', { timeout: 20_000 }, async () => {
    const feeds: http.ClientRequest[] = [];
    const openFeed = (): Promise<number> => new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: admin.port, path: '/api/events', agent: false }, (res) => {
        resolve(res.statusCode ?? 0);
        res.resume();
      });
      req.on('error', reject);
      feeds.push(req);
    });
    try {
      for (let i = 0; i < 64; i++) assert.equal(await openFeed(), 200, `feed ${i}`);
      assert.equal(await openFeed(), 503);
      feeds[0]!.destroy();
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(await openFeed(), 200, 'room after one feed closed');
    } finally {
      for (const feed of feeds) feed.destroy();
    }
  });

  test('close() returns at once although a client holds a half-sent request', T, async () => {
    const extra = await AdminServer.start({ host: '127.0.0.1', port: 0 }, new LocalAdminBackend(proxy, undefined), silentLogger());
    const socket = net.connect(extra.port, '127.0.0.1');
    socket.on('error', () => undefined);
    try {
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      // Not idle: server.close() alone would wait for it (up to the headers timeout).
      socket.write('GET /api/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n');
      await new Promise((resolve) => setTimeout(resolve, 100));
      const started = Date.now();
      await extra.close();
      assert.ok(Date.now() - started < 1_000, `close took ${Date.now() - started} ms`);
    } finally {
      socket.destroy();
    }
  });
});

describe('POST /api/routes/NAME/drain', () => {
  test('recycles the route\'s open tunnels with 1012 and leaves other routes\' tunnels open; new tunnels are taken', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const yaml = `
listeners:
  - address: 127.0.0.1:0
sites:
  - name: main
    routes:
      - name: chat
        match: { prefix: /chat }
        to: app
      - name: feed
        to: app
upstreams:
  app:
    servers: [${origin.url}]
drain: { rate: 0 }
`;
    const proxy = await Switchyard.start(loadConfigText(yaml, 'route-drain.yaml', { env: {}, defaultSecret: 'route-drain-secret-0123456789' }).config, silentLogger());
    const admin = await AdminServer.start({ host: '127.0.0.1', port: 0 }, new LocalAdminBackend(proxy, undefined), silentLogger());
    const port = proxy.addresses[0]!.port;
    const open = async (path: string): Promise<{ ws: WebSocket; closed: Promise<number> }> => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
      const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
      await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
      return { ws, closed };
    };
    try {
      const chats = [await open('/chat/1'), await open('/chat/2')];
      const feed = await open('/feed');
      const reply = await request(admin.port, '/api/routes/chat/drain', { method: 'POST' });
      assert.equal(reply.status, 200, reply.body);
      assert.deepEqual(JSON.parse(reply.body), { route: 'chat', closing: 2 });
      assert.deepEqual(await Promise.all(chats.map((chat) => chat.closed)), [1012, 1012]);
      const echoed = new Promise<string>((resolve) => feed.ws.once('message', (data) => resolve(String(data))));
      feed.ws.send('still here');
      assert.equal(await echoed, 'still here', 'the other route\'s tunnel stays open');
      const again = await open('/chat/3');
      again.ws.close(1000);
      assert.equal(await again.closed, 1000, 'the drained route takes new tunnels');
      assert.deepEqual(JSON.parse((await request(admin.port, '/api/routes/nothing/drain', { method: 'POST' })).body), { route: 'nothing', closing: 0 });
      feed.ws.close(1000);
      await feed.closed;
    } finally {
      await admin.close();
      await proxy.shutdown(0);
      await origin.close();
    }
  });
});
