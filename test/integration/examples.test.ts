/**
 * docs/examples/*.yaml, one per seed setup: each file loads and passes
 * `switchyard check`, and, with its backends pointed at real origins on
 * 127.0.0.1, sends plain HTTP and WebSocket to the origin the original Apache,
 * nginx or HAProxy config named, with the path (and Host) the original would
 * have produced.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { after, afterEach, before, test } from 'node:test';
import { WebSocket } from 'ws';
import { parseDocument } from 'yaml';
import { ConfigError } from '../../src/config/config-error.js';
import { loadConfigFile, loadConfigText } from '../../src/config/load.js';
import type { SwitchyardConfig } from '../../src/config/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { REPO_ROOT, spawnSwitchyard, stopSwitchyards, type CliProcess } from '../helpers/cli.js';
import { startOrigin, type Origin, type OriginHandler, type RecordedRequest } from '../helpers/origins.js';
import { connectRaw, readUntil, sleep, waitFor } from '../helpers/raw.js';
import { clientFrame, handshakeRequest } from '../helpers/websocket-frames.js';

const EXAMPLES = join(REPO_ROOT, 'docs', 'examples');
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Every example, with the listen address and backends its defaults name (those of the seed). */
const EXAMPLE_FILES = {
  'apache-generic.yaml': { tls: true, listen: 443, backends: ['https://openqa-backend01'] },
  'apache-wsapp-tls.yaml': { tls: true, listen: 443, backends: ['ws://backendserver.com:8080'] },
  'apache-proxypassmatch.yaml': { tls: false, listen: 80, backends: ['http://backend.example.com:9080'] },
  'grafana-loki.yaml': { tls: true, listen: 443, backends: ['http://127.0.0.1:3000'] },
  'nginx-upstream-ws-location.yaml': { tls: false, listen: 80, backends: ['http://backend_server_1:8080', 'http://backend_server_2:8080', 'http://other_http_backend:80'] },
  'haproxy-websocket-acl.yaml': { tls: false, listen: 80, backends: ['http://backend_server_1:8080', 'http://backend_server_2:8080', 'http://backend_server_3:80'] },
} as const;
type ExampleName = keyof typeof EXAMPLE_FILES;

// ---------------------------------------------------------------- TLS material

let certDir = '';
let certFile = '';
let keyFile = '';
let ca: Buffer;

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'switchyard-examples-'));
  certFile = join(certDir, 'cert.pem');
  keyFile = join(certDir, 'key.pem');
  await new Promise<void>((resolve, reject) => {
    execFile('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,DNS:my.server.tld,DNS:example.com,IP:127.0.0.1', '-days', '1',
      '-keyout', keyFile, '-out', certFile,
    ], { timeout: 30_000 }, (err, _stdout, stderr) => (err ? reject(new Error(`openssl failed: ${err.message} ${stderr}`)) : resolve()));
  });
  ca = readFileSync(certFile);
});

after(() => {
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------- cleanup

/** Closers of everything a test started, run after each test, last first. */
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  while (cleanups.length > 0) {
    const close = cleanups.pop() as () => unknown;
    await Promise.resolve().then(close).catch(() => undefined);
  }
});

async function origin(name: string, handler?: OriginHandler): Promise<Origin> {
  const started = await startOrigin({ name, ...(handler ? { handler } : {}) });
  cleanups.push(() => started.close());
  return started;
}

// ---------------------------------------------------------------- the examples

function tlsEnv(): Record<string, string> {
  return { TLS_CERT: certFile, TLS_KEY: keyFile };
}

function load(name: ExampleName, env: Record<string, string>): SwitchyardConfig {
  const { config, warnings } = loadConfigFile(join(EXAMPLES, name), { env, defaultSecret: 'examples-test-secret-0123456789' });
  assert.deepEqual(warnings, [], `${name} loads without warnings`);
  return config;
}

interface RunningExample {
  readonly proxy: Switchyard;
  readonly port: number;
  /** http://127.0.0.1:PORT or https://... */
  readonly url: string;
  /** ws://127.0.0.1:PORT or wss://... */
  readonly wsUrl: string;
  readonly secure: boolean;
}

/** Loads an example with its backends pointed at `env` and starts it on 127.0.0.1:0. */
async function startExample(name: ExampleName, env: Record<string, string>): Promise<RunningExample> {
  const secure = EXAMPLE_FILES[name].tls;
  const config = load(name, { LISTEN: '127.0.0.1:0', ...(secure ? tlsEnv() : {}), ...env });
  const proxy = await Switchyard.start(config, silentLogger());
  cleanups.push(() => proxy.shutdown(0));
  const address = proxy.addresses[0]!;
  assert.equal(address.host, '127.0.0.1');
  assert.equal(address.secure, secure);
  return {
    proxy,
    port: address.port,
    url: `${secure ? 'https' : 'http'}://127.0.0.1:${address.port}`,
    wsUrl: `${secure ? 'wss' : 'ws'}://127.0.0.1:${address.port}`,
    secure,
  };
}

// ---------------------------------------------------------------- clients

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on a fresh connection; https with the test CA. */
function request(url: string, options: { method?: string; headers?: Record<string, string>; servername?: string } = {}, ms = 5_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const secure = url.startsWith('https:');
    const req = (secure ? https : http).request(url, { method: options.method ?? 'GET', headers: options.headers ?? {}, agent: false, ...(secure ? { ca } : {}), ...(options.servername ? { servername: options.servername } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error(`${url}: no answer within ${ms} ms`)));
    req.on('error', reject);
    req.end();
  });
}

interface OpenWs {
  readonly ws: WebSocket;
  readonly messages: string[];
}

/** Opens a WebSocket (wss with the test CA) and resolves once it is open. */
async function openWs(url: string, options: { headers?: Record<string, string>; origin?: string } = {}, ms = 5_000): Promise<OpenWs> {
  const ws = new WebSocket(url, {
    handshakeTimeout: ms,
    ...(url.startsWith('wss:') ? { ca } : {}),
    ...(options.headers ? { headers: options.headers } : {}),
    ...(options.origin ? { origin: options.origin } : {}),
  });
  cleanups.push(() => ws.terminate());
  const messages: string[] = [];
  ws.on('message', (data) => messages.push(data.toString()));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake for ${url} answered ${res.statusCode}`)));
  });
  ws.on('error', () => undefined);
  return { ws, messages };
}

/** The status a refused handshake gets. */
function refusedHandshake(url: string, options: { headers?: Record<string, string> } = {}, ms = 5_000): Promise<number> {
  const ws = new WebSocket(url, { handshakeTimeout: ms, ...(url.startsWith('wss:') ? { ca } : {}), ...(options.headers ? { headers: options.headers } : {}) });
  cleanups.push(() => ws.terminate());
  return new Promise<number>((resolve, reject) => {
    ws.once('open', () => reject(new Error(`${url} opened; expected a refusal`)));
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.once('error', (err) => reject(err));
  });
}

/** Sends a text message and waits for the origin's echo of it. */
async function echoes(open: OpenWs, text: string): Promise<void> {
  open.ws.send(text);
  await waitFor(() => open.messages.includes(text), 3_000, `the echo of ${JSON.stringify(text)}`);
}

function last(records: readonly RecordedRequest[], what: string): RecordedRequest {
  const record = records.at(-1);
  assert.ok(record, `${what} was recorded`);
  return record;
}

/** Echoes like the default origin, except GET /redirect-to-login, which redirects to the backend's own /login. */
function echoOrRedirect(name: string, location: (req: IncomingMessage) => string): OriginHandler {
  return (req: IncomingMessage, res: ServerResponse, body: string) => {
    if (req.url === '/redirect-to-login') {
      res.writeHead(302, { Location: location(req), 'Content-Length': '0', 'X-Origin': name });
      res.end();
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'X-Origin': name });
    res.end(JSON.stringify({ origin: name, method: req.method, url: req.url, headers: req.headers, body }));
  };
}

/**
 * A WebSocket handshake written by hand on a raw (TLS) connection, with the
 * Connection header Firefox sends; checks the 101 and one echoed frame.
 */
async function rawHandshake(port: number, secure: boolean, path: string, connection: string, upgrade: string, text: string): Promise<void> {
  const socket = secure
    ? await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, ca, ALPNProtocols: ['http/1.1'] }, () => resolve(s));
      s.once('error', reject);
    })
    : await connectRaw(port);
  cleanups.push(() => socket.destroy());
  socket.on('error', () => undefined);
  const handshake = handshakeRequest(path, `127.0.0.1:${port}`, { connection, upgrade });
  const key = /Sec-WebSocket-Key: (\S+)/.exec(handshake)![1]!;
  socket.write(handshake);
  const head = await readUntil(socket, '\r\n\r\n');
  assert.match(head, /^HTTP\/1\.1 101 /, `101 for Connection: ${connection}; got ${JSON.stringify(head)}`);
  assert.match(head, /\r\nupgrade: websocket\r\n/i);
  const accept = /\r\nsec-websocket-accept: (\S+)\r\n/i.exec(head)?.[1];
  assert.equal(accept, createHash('sha1').update(key + GUID).digest('base64'));
  socket.write(clientFrame(0x1, text));
  // Everything after the 101's head: the echoed frame.
  const frame = Buffer.from(await readUntil(socket, text), 'latin1');
  assert.equal(frame[0], 0x81, 'a final text frame');
  assert.equal(frame[1], text.length, 'unmasked, with the payload length');
  assert.equal(frame.subarray(2).toString(), text);
}

// ---------------------------------------------------------------- files and loader

test('docs/examples holds the six examples and the README maps each seed to its file', { timeout: 5_000 }, () => {
  const files = readdirSync(EXAMPLES).filter((file) => file.endsWith('.yaml')).sort();
  assert.deepEqual(files, Object.keys(EXAMPLE_FILES).sort());
  const readme = readFileSync(join(EXAMPLES, 'README.md'), 'utf8');
  for (const file of files) {
    assert.ok(readme.includes(`](${file})`), `README.md links ${file}`);
    const text = readFileSync(join(EXAMPLES, file), 'utf8');
    assert.match(text, /^# /, `${file} starts with a comment`);
    assert.match(text, /\$\{LISTEN:-/, `${file}: the listen address comes from LISTEN`);
    if (EXAMPLE_FILES[file as ExampleName].tls) assert.match(text, /\$\{TLS_CERT:-[^}]+\}[\s\S]*\$\{TLS_KEY:-[^}]+\}/, `${file}: TLS files from TLS_CERT/TLS_KEY`);
  }
  for (const seedWords of ['RewriteCond', 'wsapp', 'ProxyPassMatch', 'Loki', 'nginx', 'HAProxy']) {
    assert.ok(readme.includes(seedWords), `README.md mentions ${seedWords}`);
  }
});

test('every example loads with no errors or warnings, listening and proxying where the seed did by default', { timeout: 10_000 }, () => {
  for (const [name, expected] of Object.entries(EXAMPLE_FILES) as [ExampleName, (typeof EXAMPLE_FILES)[ExampleName]][]) {
    // Only the TLS files come from the environment: their defaults do not exist here.
    const config = load(name, expected.tls ? tlsEnv() : {});
    assert.equal(config.listeners.length, 1, name);
    assert.equal(config.listeners[0]!.host, '0.0.0.0', name);
    assert.equal(config.listeners[0]!.port, expected.listen, name);
    assert.equal(Boolean(config.listeners[0]!.tls), expected.tls, name);
    const servers = [...config.upstreams.values()].flatMap((upstream) => upstream.servers.map((server) => server.url));
    assert.deepEqual(servers.sort(), [...expected.backends].sort(), `${name}: the seed's backends`);
  }
  // proxy_read_timeout 86400s on the nginx /ws/ location.
  const nginx = load('nginx-upstream-ws-location.yaml', {});
  assert.equal(nginx.sites[0]!.routes[0]!.timeouts.tunnelIdleMs, 86_400_000);
  assert.equal(nginx.sites[0]!.routes[1]!.timeouts.tunnelIdleMs, 3_600_000);
  assert.equal(nginx.sites[0]!.routes[0]!.match.prefix, '/ws/', 'location /ws/');
  // The WebSocket-only URL and the acl: routes that take upgrades and nothing else.
  // (With one backend behind both routes, traffic alone cannot tell this apart.)
  const match = load('apache-proxypassmatch.yaml', {}).sites[0]!.routes[0]!.match;
  assert.equal(match.regex, '^/(myApp/ws)$');
  assert.equal(match.upgrade, 'websocket');
  assert.equal(load('haproxy-websocket-acl.yaml', {}).sites[0]!.routes[0]!.match.upgrade, 'websocket');
});

test('switchyard check exits 0 for every example (TLS files given by env)', { timeout: 30_000 }, async () => {
  for (const [name, expected] of Object.entries(EXAMPLE_FILES) as [ExampleName, (typeof EXAMPLE_FILES)[ExampleName]][]) {
    const { code, stdout, stderr } = await runCli(['check', '-c', join('docs', 'examples', name)], expected.tls ? tlsEnv() : {});
    assert.equal(code, 0, `${name}: stdout ${stdout} stderr ${stderr}`);
    assert.match(stdout, new RegExp(`${name.replace(/\./g, '\\.')}: ok \\(1 listener, 1 site, \\d routes?, \\d upstreams?\\)\\n$`));
    assert.doesNotMatch(stdout, /warning/);
  }
});

test('apache-proxypassmatch: putting "ProxyPass /" first is refused, as the seed warns the order matters', { timeout: 5_000 }, () => {
  const file = join(EXAMPLES, 'apache-proxypassmatch.yaml');
  const doc = parseDocument(readFileSync(file, 'utf8'));
  const routes = doc.getIn(['sites', 0, 'routes']) as { items: unknown[] };
  routes.items.reverse();
  assert.throws(() => loadConfigText(doc.toString(), file, { env: {}, defaultSecret: 'x'.repeat(32) }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /sites\[0\]\.routes\[1\]: unreachable .*regex \^\/\(myApp\/ws\)\$.*move it above routes\[0\]/);
    return true;
  });
});

// ---------------------------------------------------------------- Apache, generic

test('apache-generic: HTTP and WebSocket (also "Connection: keep-alive, Upgrade") reach the one backend with the path as sent', { timeout: 20_000 }, async () => {
  const backend = await origin('openqa-backend01', echoOrRedirect('openqa-backend01', (req) => `http://${req.headers.host}/login`));
  const proxy = await startExample('apache-generic.yaml', { BACKEND: backend.url });

  const page = await request(`${proxy.url}/tests/overview?distri=fedora&version=41`);
  assert.equal(page.status, 200);
  assert.equal(page.headers['x-origin'], 'openqa-backend01');
  const seen = last(backend.requests, 'the HTTP request');
  assert.equal(seen.url, '/tests/overview?distri=fedora&version=41');
  assert.equal(seen.headers.host, `127.0.0.1:${backend.port}`, 'ProxyPreserveHost Off: the backend is asked by its own name');
  assert.equal(seen.headers['x-forwarded-proto'], 'https');

  // ProxyPassReverse: the backend's redirect to itself comes back naming the proxy.
  const redirect = await request(`${proxy.url}/redirect-to-login`);
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.location, `https://127.0.0.1:${proxy.port}/login`);

  const live = await openWs(`${proxy.wsUrl}/liveviewhandler/tests/1/developer/ws-proxy?proxy=1`);
  const handshake = last(backend.handshakes, 'the WebSocket handshake');
  assert.equal(handshake.url, '/liveviewhandler/tests/1/developer/ws-proxy?proxy=1');
  assert.equal(handshake.headers.host, `127.0.0.1:${backend.port}`);
  await echoes(live, 'developer mode');

  // The seed's Firefox pitfall: "Connection: keep-alive, Upgrade" must not fall through to plain HTTP.
  const requestsBefore = backend.requests.length;
  await rawHandshake(proxy.port, true, '/liveviewhandler/tests/2/developer/ws-proxy', 'keep-alive, Upgrade', 'websocket', 'firefox');
  const firefox = last(backend.handshakes, 'the Firefox-style handshake');
  assert.equal(firefox.url, '/liveviewhandler/tests/2/developer/ws-proxy');
  assert.equal(firefox.headers.upgrade, 'websocket');
  assert.equal(backend.requests.length, requestsBefore, 'no plain HTTP request reached the backend instead');
  assert.equal(backend.handshakes.length, 2);
});

// ---------------------------------------------------------------- Apache, /wsapp/ over TLS

test('apache-wsapp-tls: wss:// and https:// under /wsapp/ reach the ws:// backend with /wsapp removed; other paths do not', { timeout: 20_000 }, async () => {
  const backend = await origin('backendserver.com', echoOrRedirect('backendserver.com', () => '/login'));
  const proxy = await startExample('apache-wsapp-tls.yaml', { BACKEND: backend.wsUrl });
  assert.ok(backend.wsUrl.startsWith('ws://'), 'the backend is named by a ws:// URL, as in the seed');

  const chat = await openWs(`${proxy.wsUrl}/wsapp/chat?room=1`);
  const handshake = last(backend.handshakes, 'the WebSocket handshake');
  assert.equal(handshake.url, '/chat?room=1');
  assert.equal(handshake.headers.host, `127.0.0.1:${backend.port}`);
  assert.equal(handshake.headers['x-forwarded-proto'], 'https', 'TLS ended at the proxy');
  await echoes(chat, 'over wss, to ws');

  const root = await openWs(`${proxy.wsUrl}/wsapp/`);
  assert.equal(last(backend.handshakes, 'the second handshake').url, '/');
  await echoes(root, 'root');

  const status = await request(`${proxy.url}/wsapp/status?verbose=1`);
  assert.equal(status.status, 200);
  assert.equal(status.headers['x-origin'], 'backendserver.com');
  assert.equal(last(backend.requests, 'the HTTP request').url, '/status?verbose=1');

  // ProxyPassReverse /wsapp/: the backend's /login is the client's /wsapp/login.
  const redirect = await request(`${proxy.url}/wsapp/redirect-to-login`);
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.location, '/wsapp/login');

  // Outside /wsapp/ nothing is proxied (ProxyPass /wsapp/ does not match /wsapp or /other).
  const requestsBefore = backend.requests.length;
  assert.equal((await request(`${proxy.url}/other`)).status, 404);
  assert.equal((await request(`${proxy.url}/wsapp`)).status, 404);
  assert.equal(await refusedHandshake(`${proxy.wsUrl}/chat`), 404);
  assert.equal(backend.requests.length, requestsBefore);
  assert.equal(backend.handshakes.length, 2);
});

// ---------------------------------------------------------------- Apache, ProxyPassMatch

test('apache-proxypassmatch: /myApp/ws upgrades reach the backend as /myApp/ws ($1); other HTTP keeps its path', { timeout: 20_000 }, async () => {
  const backend = await origin('backend.example.com');
  const proxy = await startExample('apache-proxypassmatch.yaml', { BACKEND: backend.url });

  const app = await openWs(`${proxy.wsUrl}/myApp/ws`);
  const handshake = last(backend.handshakes, 'the WebSocket handshake');
  assert.equal(handshake.url, '/myApp/ws');
  assert.equal(handshake.headers.host, `127.0.0.1:${backend.port}`);
  await echoes(app, 'myApp');

  const index = await request(`${proxy.url}/index.html`);
  assert.equal(index.status, 200);
  assert.equal(last(backend.requests, 'the HTTP request').url, '/index.html');

  const api = await request(`${proxy.url}/myApp/api/items?page=2`, { method: 'POST', headers: { 'Content-Type': 'text/plain' } });
  assert.equal(api.status, 200);
  const posted = last(backend.requests, 'the POST');
  assert.equal(posted.method, 'POST');
  assert.equal(posted.url, '/myApp/api/items?page=2');

  // The WebSocket-only URL asked for over plain HTTP takes "ProxyPass /".
  const plain = await request(`${proxy.url}/myApp/ws`);
  assert.equal(plain.status, 200);
  assert.equal(last(backend.requests, 'the plain GET /myApp/ws').url, '/myApp/ws');
  assert.equal(backend.handshakes.length, 1);
});

// ---------------------------------------------------------------- Grafana / Loki

test('grafana-loki: HTTP and WebSocket share the localhost port and the backend sees the client\'s Host', { timeout: 20_000 }, async () => {
  const grafana = await origin('grafana');
  const proxy = await startExample('grafana-loki.yaml', { BACKEND: grafana.url });
  const host = 'my.server.tld';

  const health = await request(`${proxy.url}/api/health`, { headers: { Host: host } });
  assert.equal(health.status, 200);
  const seen = last(grafana.requests, 'the HTTP request');
  assert.equal(seen.url, '/api/health');
  assert.equal(seen.headers.host, host, 'ProxyPreserveHost On');

  const live = await openWs(`${proxy.wsUrl}/api/live/ws`, { headers: { Host: host }, origin: `https://${host}` });
  const handshake = last(grafana.handshakes, 'the WebSocket handshake');
  assert.equal(handshake.url, '/api/live/ws');
  assert.equal(handshake.headers.host, host, 'Grafana Live compares Origin with this Host');
  assert.equal(handshake.headers.origin, `https://${host}`);
  await echoes(live, '{"action":"subscribe","path":"loki/tail"}');

  const tail = await openWs(`${proxy.wsUrl}/loki/api/v1/tail?query=%7Bjob%3D%22varlogs%22%7D`, { headers: { Host: host } });
  assert.equal(last(grafana.handshakes, 'the tail handshake').url, '/loki/api/v1/tail?query=%7Bjob%3D%22varlogs%22%7D');
  await echoes(tail, 'log line');

  // ServerName: another name is not this site.
  const requestsBefore = grafana.requests.length;
  const other = await request(`${proxy.url}/api/health`, { headers: { Host: 'other.example' }, servername: 'localhost' });
  assert.equal(other.status, 421);
  assert.equal(grafana.requests.length, requestsBefore);
});

// ---------------------------------------------------------------- nginx

test('nginx-upstream-ws-location: /ws/ reaches both websocket_backend servers, other locations other_http_backend, paths kept', { timeout: 20_000 }, async () => {
  const ws1 = await origin('backend_server_1');
  const ws2 = await origin('backend_server_2');
  const other = await origin('other_http_backend');
  const proxy = await startExample('nginx-upstream-ws-location.yaml', { BACKEND_1: ws1.url, BACKEND_2: ws2.url, OTHER_BACKEND: other.url });
  const clientHost = `127.0.0.1:${proxy.port}`;

  const first = await openWs(`${proxy.wsUrl}/ws/chat`);
  const second = await openWs(`${proxy.wsUrl}/ws/chat`);
  assert.equal(ws1.handshakes.length, 1, 'one tunnel on each server of the upstream');
  assert.equal(ws2.handshakes.length, 1, 'one tunnel on each server of the upstream');
  assert.equal(other.handshakes.length, 0);
  for (const server of [ws1, ws2]) {
    const handshake = last(server.handshakes, `${server.port}'s handshake`);
    assert.equal(handshake.url, '/ws/chat', 'proxy_pass without a URI keeps the path');
    assert.equal(handshake.headers.host, clientHost, 'proxy_set_header Host $host');
  }
  await echoes(first, 'one');
  await echoes(second, 'two');

  // Plain HTTP under /ws/ goes to the same upstream, round robin.
  const a = await request(`${proxy.url}/ws/status`);
  const b = await request(`${proxy.url}/ws/status`);
  assert.deepEqual([a.headers['x-origin'], b.headers['x-origin']].sort(), ['backend_server_1', 'backend_server_2']);
  assert.equal(last(ws1.requests, 'an HTTP request on server 1').url, '/ws/status');
  assert.equal(last(ws2.requests, 'an HTTP request on server 2').url, '/ws/status');

  const api = await request(`${proxy.url}/api/users?limit=5`);
  assert.equal(api.headers['x-origin'], 'other_http_backend');
  const seen = last(other.requests, 'the request to location /');
  assert.equal(seen.url, '/api/users?limit=5');
  assert.equal(seen.headers.host, `127.0.0.1:${other.port}`, 'location / sets no Host: nginx sends the upstream\'s');

  // Location prefixes are matched per segment here: /wsx is not under /ws/.
  assert.equal((await request(`${proxy.url}/wsx`)).headers['x-origin'], 'other_http_backend');
  assert.equal(last(other.requests, 'GET /wsx').url, '/wsx');
  assert.equal(ws1.requests.length + ws2.requests.length, 2);
});

// ---------------------------------------------------------------- HAProxy

test('haproxy-websocket-acl: upgrades on any path reach ws_backend, plain HTTP on the same path http_backend', { timeout: 20_000 }, async () => {
  const ws1 = await origin('backend_server_1');
  const ws2 = await origin('backend_server_2');
  const plain = await origin('backend_server_3');
  const proxy = await startExample('haproxy-websocket-acl.yaml', { WS_BACKEND_1: ws1.url, WS_BACKEND_2: ws2.url, HTTP_BACKEND: plain.url });

  const page = await request(`${proxy.url}/chat`);
  assert.equal(page.headers['x-origin'], 'backend_server_3');
  assert.equal(last(plain.requests, 'GET /chat').url, '/chat');

  const first = await openWs(`${proxy.wsUrl}/chat`);
  const second = await openWs(`${proxy.wsUrl}/socket.io/?EIO=4&transport=websocket`);
  assert.deepEqual([ws1.handshakes.length, ws2.handshakes.length], [1, 1], 'both ws_backend servers used');
  assert.deepEqual([...ws1.handshakes, ...ws2.handshakes].map((h) => h.url).sort(), ['/chat', '/socket.io/?EIO=4&transport=websocket']);
  await echoes(first, 'acl is_websocket');
  await echoes(second, 'use_backend ws_backend');

  // hdr(Upgrade) -i websocket: the header's case does not matter.
  await rawHandshake(proxy.port, false, '/Chat', 'Upgrade', 'WebSocket', 'capitalised');
  assert.equal(ws1.handshakes.length + ws2.handshakes.length, 3);
  assert.ok([...ws1.handshakes, ...ws2.handshakes].some((h) => h.url === '/Chat'));

  // An Upgrade header on a request that is no handshake stays plain HTTP (default_backend).
  const notHandshake = await request(`${proxy.url}/events`, { headers: { Upgrade: 'websocket' } });
  assert.equal(notHandshake.headers['x-origin'], 'backend_server_3');
  assert.equal(last(plain.requests, 'GET /events').url, '/events');
  assert.equal(plain.handshakes.length, 0);
  assert.equal(ws1.requests.length + ws2.requests.length, 0);
});

// ---------------------------------------------------------------- one example through `switchyard run`

/** `switchyard run` with the example's variables from `env` only (none leak from this shell). */
function spawnCli(args: readonly string[], env: Record<string, string>): CliProcess {
  const cli = spawnSwitchyard(args, env, ['LISTEN', 'BACKEND', 'TLS_CERT', 'TLS_KEY']);
  cleanups.push(stopSwitchyards);
  return cli;
}

async function runCli(args: readonly string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = spawnCli(args, env);
  const { code } = await cli.exited;
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

test('switchyard run -c docs/examples/apache-wsapp-tls.yaml serves wss:// /wsapp/ from the env-given backend and cert', { timeout: 20_000 }, async () => {
  const backend = await origin('backendserver.com');
  const cli = spawnCli(['run', '-c', join('docs', 'examples', 'apache-wsapp-tls.yaml')], { LISTEN: '127.0.0.1:0', BACKEND: backend.wsUrl, ...tlsEnv() });
  const startLine = /^switchyard listening on https:\/\/127\.0\.0\.1:(\d+) -> (\S+)$/m;
  const deadline = Date.now() + 10_000;
  while (!startLine.test(cli.stdout)) {
    if (cli.child.exitCode !== null) throw new Error(`exited early: stdout ${cli.stdout} stderr ${cli.stderr}`);
    if (Date.now() > deadline) throw new Error(`no start line: stdout ${cli.stdout} stderr ${cli.stderr}`);
    await sleep(20);
  }
  const [, port, upstreams] = startLine.exec(cli.stdout)!;
  assert.equal(upstreams, backend.wsUrl);

  const token = randomBytes(6).toString('hex');
  const open = await openWs(`wss://127.0.0.1:${port}/wsapp/${token}`);
  assert.equal(last(backend.handshakes, 'the handshake').url, `/${token}`);
  await echoes(open, token);
  const reply = await request(`https://127.0.0.1:${port}/wsapp/${token}/page`);
  assert.equal(reply.status, 200);
  assert.equal(last(backend.requests, 'the HTTP request').url, `/${token}/page`);
  open.ws.close();

  cli.child.kill('SIGTERM');
  assert.equal((await cli.exited).code, 0);
  assert.doesNotMatch(cli.stderr, /"level":(?:40|50|60)/, 'no warning or error logged');
});
