import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { startOrigin, type Origin, type OriginOptions } from '../helpers/origins.js';
import { connectRaw, rawExchange, readUntil, sleep, waitFor } from '../helpers/raw.js';
import { handshakeRequest } from '../helpers/websocket-frames.js';

// ---------------------------------------------------------------------------
// Helpers: a YAML config → a running Switchyard; named origins; small clients.
// ---------------------------------------------------------------------------

interface Running {
  readonly proxy: Switchyard;
  /** Port of the first listener. */
  readonly port: number;
  /** Ports of every listener, in config order. */
  readonly ports: readonly number[];
  close(): Promise<void>;
}

/**
 * Loads a config file's text (the template literal's common indentation removed)
 * with loadConfigText and starts Switchyard on it with a silent logger.
 */
async function startYaml(yaml: string): Promise<Running> {
  const { config } = loadConfigText(dedent(yaml), 'routing.test.yaml', { env: {}, defaultSecret: 'routing-test-secret-0123456789abcdef' });
  const proxy = await Switchyard.start(config, silentLogger());
  const ports = proxy.addresses.map((address) => address.port);
  return { proxy, port: ports[0]!, ports, close: () => proxy.shutdown(0) };
}

function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').split('\n');
  const indents = lines.filter((line) => line.trim() !== '').map((line) => /^ */.exec(line)![0].length);
  const indent = Math.min(...indents);
  return lines.map((line) => line.slice(indent)).join('\n');
}

/**
 * An origin whose HTTP answers carry X-Origin: NAME (and "origin": NAME in the
 * JSON echo) and whose WebSockets first send "hello from NAME", then echo.
 */
function namedOrigin(name: string, options: OriginOptions = {}): Promise<Origin> {
  return startOrigin({
    name,
    onWebSocket: (ws) => {
      ws.send(`hello from ${name}`);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    },
    ...options,
  });
}

async function namedOrigins<const N extends string>(names: readonly N[]): Promise<Record<N, Origin>> {
  const started = await Promise.all(names.map((name) => namedOrigin(name)));
  return Object.fromEntries(names.map((name, index) => [name, started[index]])) as Record<N, Origin>;
}

async function closeAll(origins: Record<string, Origin> | readonly Origin[]): Promise<void> {
  await Promise.all(Object.values(origins).map((origin: Origin) => origin.close()));
}

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly body: string;
}

interface RequestOptions {
  readonly method?: string;
  /** Host header to send; default 127.0.0.1:PORT. */
  readonly host?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** One HTTP/1.1 request on a fresh connection, the whole response read. */
function request(port: number, path: string, options: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path,
      method: options.method ?? 'GET',
      agent: false,
      headers: { ...(options.host === undefined ? {} : { host: options.host }), ...options.headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** The origin that answered (X-Origin), failing with the status and body when none did. */
function answeredBy(reply: Reply): string {
  const origin = reply.headers['x-origin'];
  assert.equal(typeof origin, 'string', `no origin answered: ${reply.status} ${reply.headers['x-switchyard-error'] ?? ''} ${reply.body}`);
  return origin as string;
}

/** The JSON echo of the default origin handler. */
function echoOf(reply: Reply): { origin: string; method: string; url: string; headers: http.IncomingHttpHeaders; rawHeaders: string[] } {
  assert.equal(reply.status, 200, `${reply.status} ${reply.headers['x-switchyard-error'] ?? ''} ${reply.body}`);
  return JSON.parse(reply.body) as { origin: string; method: string; url: string; headers: http.IncomingHttpHeaders; rawHeaders: string[] };
}

/** Values of every raw header line with this name (any case), in order. */
function rawValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  }
  return out;
}

interface OpenedWebSocket {
  readonly ws: WebSocket;
  /** The origin's first message: "hello from NAME". */
  readonly greeting: string;
  readonly upgrade: IncomingMessage;
}

/** Opens a WebSocket through the proxy and waits for the origin's greeting. */
function openWebSocket(url: string, headers: Record<string, string> = {}): Promise<OpenedWebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    let upgrade: IncomingMessage | undefined;
    ws.once('upgrade', (res) => { upgrade = res; });
    ws.once('message', (data) => resolve({ ws, greeting: String(data), upgrade: upgrade! }));
    ws.once('unexpected-response', (req, res) => {
      reject(new Error(`handshake answered ${res.statusCode} ${String(res.headers['x-switchyard-error'] ?? '')}`));
      req.destroy();
    });
    ws.once('error', reject);
  });
}

/** Sends a text message and resolves with the next message received. */
function roundTrip(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data) => resolve(String(data)));
    ws.once('close', () => reject(new Error('closed before the echo')));
    ws.send(text);
  });
}

interface ParsedHead {
  readonly status: number;
  readonly statusLine: string;
  /** Every header line, in order, names lower-cased. */
  readonly headers: readonly (readonly [string, string])[];
  values(name: string): string[];
  readonly body: string;
}

function parseResponse(text: string): ParsedHead {
  const end = text.indexOf('\r\n\r\n');
  const lines = (end < 0 ? text : text.slice(0, end)).split('\r\n');
  const statusLine = lines[0] ?? '';
  const headers = lines.slice(1).map((line): [string, string] => {
    const colon = line.indexOf(':');
    return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
  });
  return {
    status: Number(statusLine.split(' ')[1]),
    statusLine,
    headers,
    values: (name) => headers.filter(([key]) => key === name).map(([, value]) => value),
    body: end < 0 ? '' : text.slice(end + 4),
  };
}

/** Sends a WebSocket handshake on a raw socket and reads the response head (the socket stays open). */
async function rawHandshake(port: number, path: string, host: string, extra: string[] = []): Promise<{ head: ParsedHead; socket: Socket }> {
  const socket = await connectRaw(port);
  socket.on('error', () => undefined);
  socket.write(handshakeRequest(path, host, { extra }));
  try {
    return { head: parseResponse(await readUntil(socket, '\r\n\r\n')), socket };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/** A handshake whose answer is not a 101: everything until the proxy closes. */
async function refusedHandshake(port: number, path: string, host: string): Promise<ParsedHead> {
  const { response } = await rawExchange(port, handshakeRequest(path, host), 3_000);
  return parseResponse(response);
}

// ---------------------------------------------------------------------------

describe('path matching: prefix at segment boundaries, exact, regex; first match wins', () => {
  let o: Record<'health' | 'ws' | 'api' | 'writer' | 'items' | 'rest', Origin>;
  let sy: Running;
  before(async () => {
    o = await namedOrigins(['health', 'ws', 'api', 'writer', 'items', 'rest'] as const);
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - name: main
          routes:
            - match: { exact: /health }
              to: ${o.health.url}
            - match: { prefix: /ws }
              to: ${o.ws.url}
            - match: { regex: '^/api/v(\\d+)/(.*)$' }
              rewrite: /v$1/$2
              to: ${o.api.url}
            - match: { prefix: /items, methods: [POST, PUT] }
              to: ${o.writer.url}
            - match: { prefix: /items }
              to: ${o.items.url}
            - to: ${o.rest.url}
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await closeAll(o);
  }, { timeout: 10_000 });

  test('prefix /ws matches /ws, /ws/ and /ws/x/y but not /wsx or /ws-old', { timeout: 5_000 }, async () => {
    for (const path of ['/ws', '/ws/', '/ws/x/y', '/ws?x=1']) assert.equal(answeredBy(await request(sy.port, path)), 'ws', path);
    for (const path of ['/wsx', '/ws-old', '/w']) assert.equal(answeredBy(await request(sy.port, path)), 'rest', path);
    assert.equal(o.ws.requests.at(-1)?.url, '/ws?x=1', 'a prefix route forwards the path unchanged');
  });

  test('exact /health matches only /health (the query is not part of the path)', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/health')), 'health');
    assert.equal(answeredBy(await request(sy.port, '/health?verbose=1')), 'health');
    assert.equal(o.health.requests.at(-1)?.url, '/health?verbose=1');
    for (const path of ['/health/', '/healthz', '/health/x']) assert.equal(answeredBy(await request(sy.port, path)), 'rest', path);
  });

  test('regex with capture groups feeds the rewrite template; the query is kept', { timeout: 5_000 }, async () => {
    const echo = echoOf(await request(sy.port, '/api/v2/users/7?fields=name'));
    assert.equal(echo.origin, 'api');
    assert.equal(echo.url, '/v2/users/7?fields=name');
    assert.equal(answeredBy(await request(sy.port, '/api/vX/users')), 'rest', 'no digits, no match');
  });

  test('methods: only the listed methods match; the first matching route wins over a later one', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/items/1', { method: 'POST' })), 'writer');
    assert.equal(answeredBy(await request(sy.port, '/items/1', { method: 'PUT' })), 'writer');
    assert.equal(answeredBy(await request(sy.port, '/items/1', { method: 'GET' })), 'items');
    assert.equal(answeredBy(await request(sy.port, '/items/1', { method: 'DELETE' })), 'items');
    // /health is matched by the exact route and by the catch-all: the first wins.
    assert.equal(answeredBy(await request(sy.port, '/health', { method: 'POST' })), 'health');
  });
});

describe('upgrade: websocket | none | any (RewriteCond %{HTTP:Upgrade} as a condition)', () => {
  let o: Record<'sockets' | 'pages' | 'both' | 'wsonly', Origin>;
  let sy: Running;
  before(async () => {
    o = await namedOrigins(['sockets', 'pages', 'both', 'wsonly'] as const);
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            - name: chat-sockets
              match: { prefix: /chat, upgrade: websocket }
              to: ${o.sockets.wsUrl}
            - name: chat-pages
              match: { prefix: /chat }
              to: ${o.pages.url}
            - match: { prefix: /plain, upgrade: none }
              to: ${o.pages.url}
            - match: { prefix: /plain }
              to: ${o.sockets.url}
            - match: { prefix: /both, upgrade: any }
              to: ${o.both.url}
            - match: { prefix: /only-ws, upgrade: websocket }
              to: ${o.wsonly.url}
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await closeAll(o);
  }, { timeout: 10_000 });

  test('HTTP and WebSocket on the same path go to different origins', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/chat/room')), 'pages');
    const { ws, greeting } = await openWebSocket(`ws://127.0.0.1:${sy.port}/chat/room`);
    try {
      assert.equal(greeting, 'hello from sockets');
      assert.equal(await roundTrip(ws, 'ping'), 'ping');
      assert.equal(o.sockets.handshakes.at(-1)?.url, '/chat/room');
      assert.equal(o.pages.handshakes.length, 0);
      assert.equal(o.sockets.requests.length, 0, 'the plain GET never reached the WebSocket origin');
    } finally {
      ws.terminate();
    }
  });

  test('a non-WebSocket Upgrade (h2c) is plain HTTP and skips the upgrade: websocket route', { timeout: 5_000 }, async () => {
    const socket = await connectRaw(sy.port);
    try {
      socket.write([
        'GET /chat/h2c HTTP/1.1', `Host: 127.0.0.1:${sy.port}`, 'Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c',
        'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA', '', '',
      ].join('\r\n'));
      const head = parseResponse(await readUntil(socket, '\r\n\r\n'));
      assert.equal(head.status, 200, head.statusLine);
      assert.deepEqual(head.values('x-origin'), ['pages']);
      assert.equal(o.sockets.handshakes.filter((h) => h.url === '/chat/h2c').length, 0);
    } finally {
      socket.destroy();
    }
  });

  test('upgrade: none takes plain HTTP only; upgrades fall through to the next route', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/plain/x')), 'pages');
    const { ws, greeting } = await openWebSocket(`ws://127.0.0.1:${sy.port}/plain/x`);
    ws.terminate();
    assert.equal(greeting, 'hello from sockets');
  });

  test('upgrade: any takes both', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/both')), 'both');
    const { ws, greeting } = await openWebSocket(`ws://127.0.0.1:${sy.port}/both`);
    ws.terminate();
    assert.equal(greeting, 'hello from both');
  });

  test('upgrade: websocket alone: a plain request finds no route (404 SY_NO_ROUTE)', { timeout: 5_000 }, async () => {
    const reply = await request(sy.port, '/only-ws');
    assert.equal(reply.status, 404);
    assert.equal(reply.headers['x-switchyard-error'], 'SY_NO_ROUTE');
    const { ws, greeting } = await openWebSocket(`ws://127.0.0.1:${sy.port}/only-ws`);
    ws.terminate();
    assert.equal(greeting, 'hello from wsonly');
    assert.equal(o.wsonly.requests.length, 0);
  });
});

describe('path rewriting: regex template, strip_prefix, a base path in the URL', () => {
  let origin: Origin;
  let sy: Running;
  before(async () => {
    origin = await namedOrigin('backend');
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            # ProxyPassMatch ^/(myApp/ws)$ ws://backend/$1
            - match: { regex: '^/(myApp/ws)$' }
              rewrite: /$1
              to: ${origin.wsUrl}
            - match: { regex: '^/apps/(\\w+)/socket$' }
              rewrite: /$1/ws
              to: ${origin.url}
            # ProxyPass /wsapp/ ws://backend/
            - match: { prefix: /wsapp/ }
              strip_prefix: true
              to: ${origin.wsUrl}/
            - match: { prefix: /svc }
              strip_prefix: true
              to: ${origin.url}/base
            - match: { prefix: /based }
              to: ${origin.url}/base/
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await origin.close();
  }, { timeout: 10_000 });

  test('ProxyPassMatch ^/(myApp/ws)$ with rewrite /$1: HTTP reaches /myApp/ws', { timeout: 5_000 }, async () => {
    assert.equal(echoOf(await request(sy.port, '/myApp/ws')).url, '/myApp/ws');
    assert.equal(echoOf(await request(sy.port, '/myApp/ws?v=2')).url, '/myApp/ws?v=2');
    const miss = await request(sy.port, '/myApp/ws/more');
    assert.equal(miss.status, 404, 'the regex is anchored');
    assert.equal(miss.headers['x-switchyard-error'], 'SY_NO_ROUTE');
  });

  test('ProxyPassMatch ^/(myApp/ws)$ with rewrite /$1: the WebSocket handshake reaches /myApp/ws', { timeout: 5_000 }, async () => {
    const { ws, greeting } = await openWebSocket(`ws://127.0.0.1:${sy.port}/myApp/ws`);
    try {
      assert.equal(greeting, 'hello from backend');
      assert.equal(origin.handshakes.at(-1)?.url, '/myApp/ws');
      assert.equal(await roundTrip(ws, 'through the rewrite'), 'through the rewrite');
    } finally {
      ws.terminate();
    }
  });

  test('captures are placed by the template, for HTTP and for a handshake', { timeout: 5_000 }, async () => {
    assert.equal(echoOf(await request(sy.port, '/apps/chat/socket?room=1')).url, '/chat/ws?room=1');
    const { ws } = await openWebSocket(`ws://127.0.0.1:${sy.port}/apps/game/socket?seat=3`);
    ws.terminate();
    assert.equal(origin.handshakes.at(-1)?.url, '/game/ws?seat=3');
  });

  test('strip_prefix (ProxyPass /wsapp/ ws://backend/): /wsapp/x?q=1 reaches /x?q=1', { timeout: 5_000 }, async () => {
    assert.equal(echoOf(await request(sy.port, '/wsapp/x?q=1')).url, '/x?q=1');
    assert.equal(echoOf(await request(sy.port, '/wsapp/')).url, '/');
    assert.equal(echoOf(await request(sy.port, '/wsapp/a/b/')).url, '/a/b/');
    const { ws, greeting } = await openWebSocket(`ws://127.0.0.1:${sy.port}/wsapp/feed?token=t1`);
    try {
      assert.equal(greeting, 'hello from backend');
      assert.equal(origin.handshakes.at(-1)?.url, '/feed?token=t1');
      assert.equal(await roundTrip(ws, 'stripped'), 'stripped');
    } finally {
      ws.terminate();
    }
  });

  test('a `to` URL with a base path: its path goes first (with strip_prefix and without)', { timeout: 5_000 }, async () => {
    assert.equal(echoOf(await request(sy.port, '/svc/x?y=1')).url, '/base/x?y=1');
    assert.equal(echoOf(await request(sy.port, '/svc')).url, '/base/');
    assert.equal(echoOf(await request(sy.port, '/based/x')).url, '/base/based/x');
  });
});

describe('header and query conditions', () => {
  const names = ['canary', 'acme', 'globex', 'curl', 'anonymous', 'fallback', 'debug', 'v2', 'token', 'plainq'] as const;
  let o: Record<(typeof names)[number], Origin>;
  let sy: Running;
  before(async () => {
    o = await namedOrigins(names);
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            - match: { prefix: /h, headers: { X-Canary: { present: true } } }
              to: ${o.canary.url}
            - match: { prefix: /h, headers: { x-tenant: acme } }
              to: ${o.acme.url}
            - match: { prefix: /h, headers: { X-TENANT: { equals: Globex } } }
              to: ${o.globex.url}
            - match: { prefix: /h, headers: { User-Agent: { regex: '^curl/\\d' } } }
              to: ${o.curl.url}
            - match: { prefix: /h, headers: { Authorization: { present: false } } }
              to: ${o.anonymous.url}
            - match: { prefix: /h }
              to: ${o.fallback.url}
            - match: { prefix: /q, query: { debug: '1' } }
              to: ${o.debug.url}
            - match: { prefix: /q, query: { v: { regex: '^2\\.' } } }
              to: ${o.v2.url}
            - match: { prefix: /q, query: { token: { present: true } } }
              to: ${o.token.url}
            - match: { prefix: /q }
              to: ${o.plainq.url}
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await closeAll(o);
  }, { timeout: 10_000 });

  const auth = { Authorization: 'Bearer t' };

  test('present: true matches any value, header names in any case', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/h', { headers: { 'x-CANARY': '' } })), 'canary');
    assert.equal(answeredBy(await request(sy.port, '/h', { headers: { 'X-Canary': 'yes', ...auth } })), 'canary');
  });

  test('equals (plain string or { equals }) is exact and case-sensitive in the value', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/h', { headers: { 'X-Tenant': 'acme', ...auth } })), 'acme');
    assert.equal(answeredBy(await request(sy.port, '/h', { headers: { 'x-tenant': 'Globex', ...auth } })), 'globex');
    assert.equal(answeredBy(await request(sy.port, '/h', { headers: { 'X-Tenant': 'ACME', ...auth } })), 'fallback');
    assert.equal(answeredBy(await request(sy.port, '/h', { headers: { 'X-Tenant': 'acme-corp', ...auth } })), 'fallback');
  });

  test('regex tests the header value', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/h', { headers: { 'User-Agent': 'curl/8.5.0', ...auth } })), 'curl');
    assert.equal(answeredBy(await request(sy.port, '/h', { headers: { 'User-Agent': 'Mozilla/5.0 curl/8', ...auth } })), 'fallback');
  });

  test('present: false matches only when the header is absent', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/h')), 'anonymous');
    assert.equal(answeredBy(await request(sy.port, '/h', { headers: auth })), 'fallback');
  });

  test('header conditions apply to WebSocket handshakes too', { timeout: 5_000 }, async () => {
    const { ws, greeting } = await openWebSocket(`ws://127.0.0.1:${sy.port}/h/live`, { 'X-Tenant': 'acme' });
    ws.terminate();
    assert.equal(greeting, 'hello from acme');
  });

  test('query conditions: equals (after decoding), regex, present; names are case-sensitive', { timeout: 5_000 }, async () => {
    assert.equal(answeredBy(await request(sy.port, '/q?debug=1')), 'debug');
    assert.equal(answeredBy(await request(sy.port, '/q?x=y&debug=%31')), 'debug');
    assert.equal(answeredBy(await request(sy.port, '/q?debug=0')), 'plainq');
    assert.equal(answeredBy(await request(sy.port, '/q?DEBUG=1')), 'plainq');
    assert.equal(answeredBy(await request(sy.port, '/q?v=2.1')), 'v2');
    assert.equal(answeredBy(await request(sy.port, '/q?v=12.1')), 'plainq');
    assert.equal(answeredBy(await request(sy.port, '/q?token=')), 'token');
    assert.equal(answeredBy(await request(sy.port, '/q/sub?token')), 'token');
    assert.equal(answeredBy(await request(sy.port, '/q')), 'plainq');
    assert.equal(o.debug.requests.at(-1)?.url, '/q?x=y&debug=%31', 'the query is forwarded as received');
  });
});

describe('sites by host name', () => {
  let o: Record<'api' | 'tenants' | 'fallback' | 'only', Origin>;
  let withDefault: Running;
  let withoutDefault: Running;
  before(async () => {
    o = await namedOrigins(['api', 'tenants', 'fallback', 'only'] as const);
    withDefault = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - name: api
          hosts: [api.example.com]
          routes: [{ to: '${o.api.url}' }]
        - name: tenants
          hosts: ['*.example.com']
          routes: [{ to: '${o.tenants.url}' }]
        - name: fallback
          hosts: ['*']
          routes: [{ to: '${o.fallback.url}' }]
    `);
    withoutDefault = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - name: only
          hosts: [only.example]
          routes:
            - match: { prefix: /app }
              to: ${o.only.url}
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await withDefault.close();
    await withoutDefault.close();
    await closeAll(o);
  }, { timeout: 10_000 });

  test('exact name first, then *.example.com, then the default site; case and port ignored', { timeout: 5_000 }, async () => {
    const cases: [string, string][] = [
      ['api.example.com', 'api'],
      ['API.Example.COM:8443', 'api'],
      ['api.example.com.', 'api'],
      ['shop.example.com', 'tenants'],
      ['a.b.example.com:80', 'tenants'],
      ['example.com', 'fallback'],
      ['notexample.com', 'fallback'],
      ['other.test', 'fallback'],
      [`127.0.0.1:${withDefault.port}`, 'fallback'],
    ];
    for (const [host, expected] of cases) assert.equal(answeredBy(await request(withDefault.port, '/', { host })), expected, host);
    assert.equal(o.api.requests.at(-1)?.headers.host, 'api.example.com.', 'the Host is forwarded as sent');
  });

  test('WebSocket handshakes pick their site by Host too', { timeout: 5_000 }, async () => {
    const { ws, greeting } = await openWebSocket(`ws://127.0.0.1:${withDefault.port}/live`, { Host: 'shop.example.com' });
    ws.terminate();
    assert.equal(greeting, 'hello from tenants');
  });

  test('no default site: an unknown host gets 421 SY_NO_SITE (HTTP and handshake)', { timeout: 5_000 }, async () => {
    const reply = await request(withoutDefault.port, '/app', { host: 'other.example' });
    assert.equal(reply.status, 421);
    assert.equal(reply.headers['x-switchyard-error'], 'SY_NO_SITE');
    const head = await refusedHandshake(withoutDefault.port, '/app', 'other.example');
    assert.equal(head.status, 421, head.statusLine);
    assert.deepEqual(head.values('x-switchyard-error'), ['SY_NO_SITE']);
    assert.equal(o.only.requests.length + o.only.handshakes.length, 0);
    assert.equal(answeredBy(await request(withoutDefault.port, '/app', { host: 'only.example' })), 'only');
  });

  test('a site but no matching route: 404 SY_NO_ROUTE (HTTP and handshake)', { timeout: 5_000 }, async () => {
    const reply = await request(withoutDefault.port, '/elsewhere', { host: 'only.example' });
    assert.equal(reply.status, 404);
    assert.equal(reply.headers['x-switchyard-error'], 'SY_NO_ROUTE');
    const head = await refusedHandshake(withoutDefault.port, '/elsewhere', 'only.example');
    assert.equal(head.status, 404, head.statusLine);
    assert.deepEqual(head.values('x-switchyard-error'), ['SY_NO_ROUTE']);
  });
});

describe('listeners serve the sites they name', () => {
  let o: Record<'public' | 'admin', Origin>;
  let sy: Running;
  before(async () => {
    o = await namedOrigins(['public', 'admin'] as const);
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
          sites: [public]
        - address: 127.0.0.1:0
          sites: [admin]
      sites:
        - name: public
          hosts: [www.local, '*']
          routes: [{ to: '${o.public.url}' }]
        - name: admin
          hosts: [admin.local]
          routes: [{ to: '${o.admin.url}' }]
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await closeAll(o);
  }, { timeout: 10_000 });

  test('the public listener never reaches the admin site, even by its host name', { timeout: 5_000 }, async () => {
    const [publicPort, adminPort] = sy.ports as [number, number];
    assert.notEqual(publicPort, adminPort);
    assert.equal(answeredBy(await request(publicPort, '/', { host: 'www.local' })), 'public');
    assert.equal(answeredBy(await request(publicPort, '/', { host: 'admin.local' })), 'public', 'the public default site answers');
    assert.equal(o.admin.requests.length, 0);
  });

  test('the admin listener serves admin.local only: other hosts get 421', { timeout: 5_000 }, async () => {
    const adminPort = sy.ports[1]!;
    assert.equal(answeredBy(await request(adminPort, '/', { host: 'admin.local' })), 'admin');
    const reply = await request(adminPort, '/', { host: 'www.local' });
    assert.equal(reply.status, 421);
    assert.equal(reply.headers['x-switchyard-error'], 'SY_NO_SITE');
  });
});

describe('request header actions (set, add, remove) reach the origin', () => {
  let origin: Origin;
  let sy: Running;
  before(async () => {
    origin = await namedOrigin('hdr');
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            - to: ${origin.url}
              request_headers:
                set: { X-Env: prod, User-Agent: switchyard-test }
                add: { X-Tag: proxy }
                remove: [X-Secret, cookie]
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await origin.close();
  }, { timeout: 10_000 });

  const clientHeaders = { 'X-Env': 'dev', 'X-Tag': 'client', 'X-Secret': 's3cret', Cookie: 'sid=1', 'User-Agent': 'curl/8', 'X-Other': 'kept' };

  function checkSeen(rawHeaders: readonly string[]): void {
    assert.deepEqual(rawValues(rawHeaders, 'x-env'), ['prod'], 'set replaces the client value');
    assert.deepEqual(rawValues(rawHeaders, 'user-agent'), ['switchyard-test']);
    assert.deepEqual(rawValues(rawHeaders, 'x-tag'), ['client', 'proxy'], 'add keeps the client value');
    assert.deepEqual(rawValues(rawHeaders, 'x-secret'), []);
    assert.deepEqual(rawValues(rawHeaders, 'cookie'), [], 'remove ignores case');
    assert.deepEqual(rawValues(rawHeaders, 'x-other'), ['kept']);
  }

  test('HTTP request', { timeout: 5_000 }, async () => {
    const echo = echoOf(await request(sy.port, '/x', { headers: clientHeaders }));
    checkSeen(echo.rawHeaders);
  });

  test('WebSocket handshake', { timeout: 5_000 }, async () => {
    const { ws } = await openWebSocket(`ws://127.0.0.1:${sy.port}/live`, clientHeaders);
    ws.terminate();
    const seen = origin.handshakes.at(-1);
    assert.ok(seen);
    checkSeen(seen.rawHeaders);
  });
});

describe('response header actions (set, add, remove) reach the client', () => {
  let origin: Origin;
  let sy: Running;
  before(async () => {
    origin = await startOrigin({
      name: 'resp',
      handler: (_req, res) => {
        res.writeHead(200, ['X-Powered-By', 'Express', 'Cache-Control', 'no-cache', 'Vary', 'Accept', 'Content-Type', 'text/plain', 'X-Origin', 'resp']);
        res.end('ok');
      },
    });
    origin.wss.on('headers', (headers: string[]) => headers.push('X-Powered-By: ws', 'Cache-Control: no-cache'));
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            - to: ${origin.url}
              response_headers:
                set: { Cache-Control: no-store }
                add: { Vary: Origin, X-Frame-Options: DENY }
                remove: [x-powered-by]
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await origin.close();
  }, { timeout: 10_000 });

  test('HTTP response', { timeout: 5_000 }, async () => {
    const reply = await request(sy.port, '/page');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'ok');
    assert.deepEqual(rawValues(reply.rawHeaders, 'x-powered-by'), []);
    assert.deepEqual(rawValues(reply.rawHeaders, 'cache-control'), ['no-store']);
    assert.deepEqual(rawValues(reply.rawHeaders, 'vary'), ['Accept', 'Origin']);
    assert.deepEqual(rawValues(reply.rawHeaders, 'x-frame-options'), ['DENY']);
    assert.deepEqual(rawValues(reply.rawHeaders, 'content-type'), ['text/plain']);
  });

  test('101 response of a WebSocket handshake', { timeout: 5_000 }, async () => {
    const { head, socket } = await rawHandshake(sy.port, '/live', `127.0.0.1:${sy.port}`);
    socket.destroy();
    assert.equal(head.status, 101, head.statusLine);
    assert.deepEqual(head.values('x-powered-by'), []);
    assert.deepEqual(head.values('cache-control'), ['no-store']);
    assert.deepEqual(head.values('x-frame-options'), ['DENY']);
    assert.equal(head.values('sec-websocket-accept').length, 1);
  });
});

describe('preserve_host', () => {
  let origin: Origin;
  let sy: Running;
  before(async () => {
    origin = await namedOrigin('hosts');
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            - match: { prefix: /own }
              preserve_host: false
              to: ${origin.url}
            - to: ${origin.url}
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await origin.close();
  }, { timeout: 10_000 });

  test('default: the origin sees the client Host (HTTP and handshake)', { timeout: 5_000 }, async () => {
    const echo = echoOf(await request(sy.port, '/keep', { host: 'front.example:8080' }));
    assert.equal(echo.headers.host, 'front.example:8080');
    const { ws } = await openWebSocket(`ws://127.0.0.1:${sy.port}/keep`, { Host: 'front.example:8080' });
    ws.terminate();
    assert.equal(origin.handshakes.at(-1)?.headers.host, 'front.example:8080');
  });

  test('preserve_host: false: the origin sees its own host:port (HTTP and handshake)', { timeout: 5_000 }, async () => {
    const echo = echoOf(await request(sy.port, '/own', { host: 'front.example:8080' }));
    assert.equal(echo.headers.host, `127.0.0.1:${origin.port}`);
    assert.equal(rawValues(echo.rawHeaders, 'host').length, 1);
    assert.equal(echo.headers['x-forwarded-host'], 'front.example:8080', 'the client Host still travels in X-Forwarded-Host');
    const { ws } = await openWebSocket(`ws://127.0.0.1:${sy.port}/own`, { Host: 'front.example:8080' });
    ws.terminate();
    const seen = origin.handshakes.at(-1);
    assert.ok(seen);
    assert.equal(seen.headers.host, `127.0.0.1:${origin.port}`);
    assert.equal(rawValues(seen.rawHeaders, 'host').length, 1);
  });
});

describe('redirect', () => {
  let sy: Running;
  before(async () => {
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            - match: { regex: '^/old/(.*)$' }
              redirect: { status: 301, location: 'https://$host/new/$1' }
            - match: { prefix: /search }
              redirect: { location: '/find$query' }
            - match: { regex: '^/go/(.*)$' }
              redirect: { status: 307, location: '/$1' }
            - redirect: { status: 308, location: '$path' }
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
  }, { timeout: 10_000 });

  test('status and a Location built from captures and $host; the query is kept', { timeout: 5_000 }, async () => {
    const reply = await request(sy.port, '/old/a/b?x=1&y=2', { host: 'shop.example:8080' });
    assert.equal(reply.status, 301);
    assert.equal(reply.headers.location, 'https://shop.example:8080/new/a/b?x=1&y=2');
  });

  test('$query places the query ("?a=b" or ""); the default status is 302', { timeout: 5_000 }, async () => {
    const withQuery = await request(sy.port, '/search?q=cats&page=2');
    assert.equal(withQuery.status, 302);
    assert.equal(withQuery.headers.location, '/find?q=cats&page=2');
    const without = await request(sy.port, '/search');
    assert.equal(without.status, 302);
    assert.equal(without.headers.location, '/find');
  });

  test('a WebSocket handshake to a redirect route gets the redirect, framed correctly', { timeout: 5_000 }, async () => {
    const head = await refusedHandshake(sy.port, '/old/socket', 'shop.example');
    assert.equal(head.status, 301, head.statusLine);
    assert.deepEqual(head.values('location'), ['https://shop.example/new/socket']);
    const lengths = head.values('content-length');
    assert.equal(lengths.length, 1, `exactly one Content-Length, got ${JSON.stringify(lengths)}`);
    assert.equal(Number(lengths[0]), Buffer.byteLength(head.body, 'latin1'));
    assert.equal(head.values('content-type').length, 1, `exactly one Content-Type, got ${JSON.stringify(head.values('content-type'))}`);
  });

  test('a path of //evil.example/x never yields a Location starting with //', { timeout: 5_000 }, async () => {
    for (const path of ['//evil.example/x', '///evil.example/x', '/go//evil.example/x']) {
      const { response } = await rawExchange(sy.port, `GET ${path} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n`);
      const head = parseResponse(response);
      assert.ok(head.status >= 300 && head.status < 400, `${path}: ${head.statusLine}`);
      const [location] = head.values('location');
      assert.ok(location !== undefined, path);
      assert.ok(!location.startsWith('//'), `${path} redirected to ${location}`);
      assert.ok(location.startsWith('/'), `${path} redirected to ${location}`);
      assert.match(location, /evil\.example\/x$/, 'the path is kept, as a path on this host');
    }
  });

  test('a path of /\\evil.example/x never yields a Location a browser reads as another host', { timeout: 5_000 }, async () => {
    // WHATWG URL parsing treats "\" as "/" for http(s): "/\evil.example" is "//evil.example".
    for (const path of ['/\\evil.example/x', '/go/\\evil.example/x', '/go//\\evil.example/x']) {
      const { response } = await rawExchange(sy.port, `GET ${path} HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n`);
      const head = parseResponse(response);
      if (head.status === 400) continue; // refusing the request is safe too
      const [location] = head.values('location');
      assert.ok(location !== undefined, `${path}: ${head.statusLine}`);
      const resolved = new URL(location, 'https://shop.example/');
      assert.equal(resolved.host, 'shop.example', `${path} redirected to ${location}, which resolves to ${resolved.href}`);
    }
  });
});

describe('respond', () => {
  let origin: Origin;
  let sy: Running;
  before(async () => {
    origin = await namedOrigin('behind');
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            - match: { exact: /healthz }
              respond: { body: ok }
            - match: { exact: /teapot }
              respond: { status: 418, body: 'short and stout', content_type: text/html; charset=utf-8 }
            - match: { exact: /empty }
              respond: {}
            - to: ${origin.url}
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await origin.close();
  }, { timeout: 10_000 });

  test('status, body and content type as configured; the origin is not asked', { timeout: 5_000 }, async () => {
    const health = await request(sy.port, '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.body, 'ok');
    assert.equal(health.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(health.headers['content-length'], '2');

    const teapot = await request(sy.port, '/teapot');
    assert.equal(teapot.status, 418);
    assert.equal(teapot.body, 'short and stout');
    assert.equal(teapot.headers['content-type'], 'text/html; charset=utf-8');

    const empty = await request(sy.port, '/empty');
    assert.equal(empty.status, 200);
    assert.equal(empty.body, '');
    assert.equal(empty.headers['content-length'], '0');

    assert.equal(origin.requests.length, 0);
    assert.equal(answeredBy(await request(sy.port, '/healthz/deep')), 'behind');
  });

  test('a WebSocket handshake to a respond route gets that response, framed correctly', { timeout: 5_000 }, async () => {
    const head = await refusedHandshake(sy.port, '/teapot', `127.0.0.1:${sy.port}`);
    assert.equal(head.status, 418, head.statusLine);
    assert.deepEqual(head.values('content-type'), ['text/html; charset=utf-8']);
    const lengths = head.values('content-length');
    assert.equal(lengths.length, 1, `exactly one Content-Length, got ${JSON.stringify(lengths)}`);
    assert.equal(Number(lengths[0]), Buffer.byteLength(head.body, 'latin1'));
    assert.equal(head.body, 'short and stout');
    assert.equal(origin.handshakes.length, 0);
  });
});

describe('per-route timeouts', () => {
  let slow: Origin;
  let fast: Origin;
  let sy: Running;
  const SLOW_MS = 1_200;
  before(async () => {
    slow = await namedOrigin('slow', {
      handler: (_req, res) => {
        const timer = setTimeout(() => {
          res.writeHead(200, { 'X-Origin': 'slow' });
          res.end('late');
        }, SLOW_MS);
        res.on('close', () => clearTimeout(timer));
      },
      onUpgrade: (_req, socket, _head, accept) => {
        const timer = setTimeout(accept, SLOW_MS);
        socket.on('close', () => clearTimeout(timer));
      },
    });
    fast = await namedOrigin('fast');
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            - match: { prefix: /impatient }
              to: ${slow.url}
              timeouts: { response: 300ms }
            - match: { prefix: /short-tunnel }
              to: ${fast.url}
              timeouts: { tunnel_idle: 300ms }
            - match: { prefix: /long-tunnel }
              to: ${fast.url}
            - to: ${slow.url}
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await slow.close();
    await fast.close();
  }, { timeout: 10_000 });

  test('response: 300ms on one route gives 504 there, while the default route waits for the answer', { timeout: 8_000 }, async () => {
    const started = Date.now();
    const [impatient, patient] = await Promise.all([
      request(sy.port, '/impatient').then((reply) => ({ reply, ms: Date.now() - started })),
      request(sy.port, '/patient').then((reply) => ({ reply, ms: Date.now() - started })),
    ]);
    assert.equal(impatient.reply.status, 504);
    assert.equal(impatient.reply.headers['x-switchyard-error'], 'SY_UPSTREAM_TIMEOUT');
    assert.ok(impatient.ms >= 250 && impatient.ms < SLOW_MS, `504 after ${impatient.ms} ms`);
    assert.equal(patient.reply.status, 200);
    assert.equal(patient.reply.body, 'late');
    assert.ok(patient.ms >= SLOW_MS - 50, `200 after ${patient.ms} ms`);
  });

  test('response: the route timeout also bounds a slow WebSocket handshake', { timeout: 8_000 }, async () => {
    const started = Date.now();
    const head = await refusedHandshake(sy.port, '/impatient/ws', `127.0.0.1:${sy.port}`);
    const ms = Date.now() - started;
    assert.equal(head.status, 504, head.statusLine);
    assert.deepEqual(head.values('x-switchyard-error'), ['SY_UPSTREAM_TIMEOUT']);
    assert.ok(ms < SLOW_MS, `504 after ${ms} ms`);
  });

  test('tunnel_idle: 300ms closes an idle tunnel on its route; another route\'s tunnel stays open', { timeout: 8_000 }, async () => {
    const [short, long] = await Promise.all([
      openWebSocket(`ws://127.0.0.1:${sy.port}/short-tunnel`),
      openWebSocket(`ws://127.0.0.1:${sy.port}/long-tunnel`),
    ]);
    try {
      const opened = Date.now();
      const shortClosed = new Promise<number>((resolve) => short.ws.once('close', () => resolve(Date.now() - opened)));
      let longClosed = false;
      long.ws.once('close', () => { longClosed = true; });
      const closedAfter = await shortClosed;
      assert.ok(closedAfter >= 200 && closedAfter < 1_500, `short tunnel closed after ${closedAfter} ms`);
      await sleep(700);
      assert.equal(longClosed, false);
      assert.equal(long.ws.readyState, WebSocket.OPEN);
      assert.equal(await roundTrip(long.ws, 'still here'), 'still here');
    } finally {
      short.ws.terminate();
      long.ws.terminate();
    }
  });
});

describe('named upstreams and balancing', () => {
  test('weights 3 and 1: 40 requests split 30/10, one in every four to the lighter server', { timeout: 10_000 }, async () => {
    const o = await namedOrigins(['heavy', 'light'] as const);
    const sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      upstreams:
        pair:
          servers:
            - url: ${o.heavy.url}
              weight: 3
            - url: ${o.light.url}
              weight: 1
      sites:
        - routes:
            - to: pair
    `);
    try {
      const sequence: string[] = [];
      for (let i = 0; i < 40; i++) sequence.push(answeredBy(await request(sy.port, `/r${i}`)));
      const count = (name: string): number => sequence.filter((entry) => entry === name).length;
      assert.equal(count('heavy'), 30, sequence.join(' '));
      assert.equal(count('light'), 10, sequence.join(' '));
      // Interleaved: every group of four holds exactly one "light".
      for (let i = 0; i + 4 <= sequence.length; i += 4) {
        assert.equal(sequence.slice(i, i + 4).filter((entry) => entry === 'light').length, 1, sequence.join(' '));
      }
    } finally {
      await sy.close();
      await closeAll(o);
    }
  });

  test('policy least_conn: HTTP requests avoid the server busy with a long request', { timeout: 10_000 }, async () => {
    const held: http.ServerResponse[] = [];
    const holding = (name: string): OriginOptions['handler'] => (req, res) => {
      if (req.url?.startsWith('/hold')) {
        held.push(res);
        return;
      }
      res.writeHead(200, { 'X-Origin': name });
      res.end(name);
    };
    const a = await namedOrigin('a', { handler: holding('a') });
    const b = await namedOrigin('b', { handler: holding('b') });
    const sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      upstreams:
        busy:
          policy: least_conn
          servers: ['${a.url}', '${b.url}']
      sites:
        - routes:
            - to: busy
    `);
    try {
      const slowReply = request(sy.port, '/hold');
      await waitFor(() => held.length === 1, 3_000, 'the long request to reach an origin');
      const holder = a.requests.some((r) => r.url === '/hold') ? 'a' : 'b';
      const other = holder === 'a' ? 'b' : 'a';
      const answered: string[] = [];
      for (let i = 0; i < 6; i++) answered.push(answeredBy(await request(sy.port, `/quick${i}`)));
      assert.deepEqual(answered, Array(6).fill(other), `the ${holder} origin holds one request`);
      held[0]!.writeHead(200, { 'X-Origin': holder });
      held[0]!.end('released');
      const released = await slowReply;
      assert.equal(released.body, 'released');
      // Both idle again: the least_conn tie-break spreads requests over both.
      const spread = new Set<string>();
      for (let i = 0; i < 4; i++) spread.add(answeredBy(await request(sy.port, `/again${i}`)));
      assert.deepEqual([...spread].sort(), ['a', 'b']);
    } finally {
      for (const res of held) res.destroy();
      await sy.close();
      await a.close();
      await b.close();
    }
  });
});
