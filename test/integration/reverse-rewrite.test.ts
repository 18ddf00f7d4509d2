import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { connectRaw, rawExchange, readUntil } from '../helpers/raw.js';
import { handshakeRequest } from '../helpers/websocket-frames.js';

// Reverse rewriting (ProxyPassReverse, ProxyPassReverseCookieDomain/Path): what a
// backend says about its own URLs and cookies is mapped back to the URL the
// client used, when the route changes the path or the host.

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

interface Running {
  readonly port: number;
  close(): Promise<void>;
}

/** Loads the YAML (common indentation removed) with loadConfigText and starts Switchyard on it. */
async function startYaml(yaml: string): Promise<Running> {
  const { config } = loadConfigText(dedent(yaml), 'reverse-rewrite.test.yaml', { env: {}, defaultSecret: 'reverse-rewrite-secret-0123456789' });
  const proxy = await Switchyard.start(config, silentLogger());
  return { port: proxy.addresses[0]!.port, close: () => proxy.shutdown(0) };
}

function dedent(text: string): string {
  const lines = text.replace(/^\n/, '').split('\n');
  const indent = Math.min(...lines.filter((line) => line.trim() !== '').map((line) => /^ */.exec(line)![0].length));
  return lines.map((line) => line.slice(indent)).join('\n');
}

interface Reply {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
}

/** GET on a fresh connection with the given Host header. */
function get(port: number, path: string, host: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false, headers: { host } }, (res) => {
      res.resume();
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders }));
    });
    req.on('error', reject);
    req.end();
  });
}

function rawValues(rawHeaders: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === name) out.push(rawHeaders[i + 1]!);
  }
  return out;
}

/** The header lines of a raw response, exactly as sent (name case, spacing, value). */
function headerLines(response: string): string[] {
  const end = response.indexOf('\r\n\r\n');
  return response.slice(0, end < 0 ? response.length : end).split('\r\n').slice(1);
}

function valuesOf(lines: readonly string[], name: string): string[] {
  return lines.filter((line) => line.slice(0, line.indexOf(':')).toLowerCase() === name).map((line) => line.slice(line.indexOf(':') + 1).trim());
}

/** One raw GET; everything the server sends until it closes. */
async function rawGet(port: number, path: string, host: string): Promise<{ statusLine: string; lines: string[] }> {
  const { response } = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
  return { statusLine: response.slice(0, response.indexOf('\r\n')), lines: headerLines(response) };
}

async function rawHandshake(port: number, path: string, host: string): Promise<{ statusLine: string; lines: string[]; socket: Socket }> {
  const socket = await connectRaw(port);
  socket.on('error', () => undefined);
  socket.write(handshakeRequest(path, host));
  try {
    const head = await readUntil(socket, '\r\n\r\n');
    return { statusLine: head.slice(0, head.indexOf('\r\n')), lines: headerLines(head), socket };
  } catch (err) {
    socket.destroy();
    throw err;
  }
}

/**
 * The backend: it names itself by the address it was reached on
 * (http://127.0.0.1:PORT) and answers by the last path segment, keeping the
 * segments before it (/base/abs → Location .../base/login).
 */
function backendHandler(req: IncomingMessage, res: ServerResponse): void {
  const self = `127.0.0.1:${req.socket.localPort}`;
  const path = new URL(req.url ?? '/', 'http://placeholder').pathname;
  const dir = path.slice(0, path.lastIndexOf('/'));
  const leaf = path.slice(path.lastIndexOf('/') + 1);
  const headers: string[] = ['X-Origin', 'backend'];
  let status = 200;
  switch (leaf) {
    case 'abs':
      status = 302;
      headers.push('Location', `http://${self}${dir}/login?next=%2Fdash`);
      break;
    case 'rel':
      status = 302;
      headers.push('Location', `${dir}/login`);
      break;
    case 'content':
      status = 201;
      headers.push('Content-Location', `http://${self}${dir}/items/7`, 'URI', `${dir}/items/8`);
      break;
    case 'schemes':
      headers.push('Content-Location', `ws://${self}${dir}/socket`, 'URI', `//${self}${dir}/p`);
      break;
    case 'elsewhere':
      status = 302;
      headers.push('Location', 'http://other.example/login');
      break;
    case 'other-port':
      status = 302;
      headers.push('Location', 'http://127.0.0.1:1/login');
      break;
    case 'outside':
      status = 302;
      headers.push('Location', '/static/logo.png');
      break;
    case 'cookie':
      headers.push('Set-Cookie', 'sid=abc; Domain=127.0.0.1; Path=/; HttpOnly');
      break;
    case 'cookies':
      headers.push(
        'Set-Cookie', 'a=1; Domain=127.0.0.1; Path=/',
        'Set-Cookie', 'b=2; Path=/cart; SameSite=Lax',
        'Set-Cookie', 'c=3;domain=.127.0.0.1;path=/;Secure',
        'Set-Cookie', 'd=4; Domain=other.example',
        'Set-Cookie', 'e=5',
      );
      break;
    default:
      break;
  }
  res.writeHead(status, [...headers, 'Content-Length', '0']);
  res.end();
}

const HOST = 'www.shop.example:8080';

// ---------------------------------------------------------------------------

describe('reverse rewriting', () => {
  let backend: Origin;
  let sy: Running;
  before(async () => {
    backend = await startOrigin({
      name: 'backend',
      handler: backendHandler,
      onUpgrade: (req, socket, _head, accept) => {
        if (!req.url?.endsWith('/denied')) {
          accept();
          return;
        }
        const self = `127.0.0.1:${socket.localPort}`;
        socket.end(`HTTP/1.1 302 Found\r\nLocation: http://${self}/login\r\nSet-Cookie: back=1; Domain=127.0.0.1; Path=/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      },
    });
    backend.wss.on('headers', (headers: string[]) => headers.push('Set-Cookie: ws=1; Domain=127.0.0.1; Path=/', 'Set-Cookie: room=2; Path=/chat'));
    sy = await startYaml(`
      listeners:
        - address: 127.0.0.1:0
      sites:
        - routes:
            - name: app
              match: { prefix: /app/ }
              strip_prefix: true
              to: ${backend.url}
            - name: shop
              match: { prefix: /shop }
              strip_prefix: true
              to: ${backend.url}/base
            - name: own-host
              match: { prefix: /own }
              preserve_host: false
              to: ${backend.url}
            - name: raw
              match: { prefix: /raw/ }
              strip_prefix: true
              reverse_rewrite: false
              to: ${backend.url}
            - name: live
              match: { prefix: /live/ }
              strip_prefix: true
              to: ${backend.wsUrl}/
            - name: unchanged
              to: ${backend.url}
    `);
  }, { timeout: 10_000 });
  after(async () => {
    await sy.close();
    await backend.close();
  }, { timeout: 10_000 });

  describe('Location, Content-Location and URI', () => {
    test('an absolute Location naming the backend becomes the client-facing URL (strip_prefix /app/)', { timeout: 5_000 }, async () => {
      const reply = await get(sy.port, '/app/abs', HOST);
      assert.equal(reply.status, 302);
      assert.equal(backend.requests.at(-1)?.url, '/abs');
      assert.equal(reply.headers.location, `http://${HOST}/app/login?next=%2Fdash`);

      const clientHost = `127.0.0.1:${sy.port}`;
      const direct = await get(sy.port, '/app/abs', clientHost);
      assert.equal(direct.headers.location, `http://${clientHost}/app/login?next=%2Fdash`);
    });

    test('a relative Location gets the route prefix back: /login → /app/login', { timeout: 5_000 }, async () => {
      const reply = await get(sy.port, '/app/rel', HOST);
      assert.equal(reply.status, 302);
      assert.equal(reply.headers.location, '/app/login');
    });

    test('Content-Location and URI are mapped the same way', { timeout: 5_000 }, async () => {
      const reply = await get(sy.port, '/app/content', HOST);
      assert.equal(reply.status, 201);
      assert.equal(reply.headers['content-location'], `http://${HOST}/app/items/7`);
      assert.equal(reply.headers.uri, '/app/items/8');
    });

    test('ws:// and scheme-relative URLs naming the backend are mapped too', { timeout: 5_000 }, async () => {
      const reply = await get(sy.port, '/app/schemes', HOST);
      assert.equal(reply.headers['content-location'], `ws://${HOST}/app/socket`);
      assert.equal(reply.headers.uri, `//${HOST}/app/p`);
    });

    test('a Location to another host, or the same address on another port, is left alone', { timeout: 5_000 }, async () => {
      assert.equal((await get(sy.port, '/app/elsewhere', HOST)).headers.location, 'http://other.example/login');
      assert.equal((await get(sy.port, '/app/other-port', HOST)).headers.location, 'http://127.0.0.1:1/login');
    });

    test('a base path in the `to` URL maps back to the route prefix; paths outside it are left alone', { timeout: 5_000 }, async () => {
      const abs = await get(sy.port, '/shop/abs', HOST);
      assert.equal(backend.requests.at(-1)?.url, '/base/abs');
      assert.equal(abs.headers.location, `http://${HOST}/shop/login?next=%2Fdash`);
      assert.equal((await get(sy.port, '/shop/rel', HOST)).headers.location, '/shop/login');
      assert.equal((await get(sy.port, '/shop/outside', HOST)).headers.location, '/static/logo.png');
    });
  });

  describe('Set-Cookie Domain and Path', () => {
    test('Domain naming the backend becomes the client host; Path=/ becomes /app/', { timeout: 5_000 }, async () => {
      const reply = await get(sy.port, '/app/cookie', HOST);
      assert.deepEqual(reply.headers['set-cookie'], ['sid=abc; Domain=www.shop.example; Path=/app/; HttpOnly']);
    });

    test('repeated Set-Cookie lines are each rewritten and kept separate', { timeout: 5_000 }, async () => {
      const reply = await get(sy.port, '/app/cookies', HOST);
      assert.deepEqual(rawValues(reply.rawHeaders, 'set-cookie'), [
        'a=1; Domain=www.shop.example; Path=/app/',
        'b=2; Path=/app/cart; SameSite=Lax',
        'c=3;domain=www.shop.example;path=/app/;Secure',
        'd=4; Domain=other.example',
        'e=5',
      ]);
    });
  });

  describe('when it applies', () => {
    test('preserve_host: false alone maps the backend host back (paths unchanged)', { timeout: 5_000 }, async () => {
      const reply = await get(sy.port, '/own/abs', HOST);
      const seen = backend.requests.at(-1);
      assert.ok(seen);
      assert.equal(seen.url, '/own/abs');
      assert.equal(seen.headers.host, `127.0.0.1:${backend.port}`);
      assert.equal(reply.headers.location, `http://${HOST}/own/login?next=%2Fdash`);
      assert.equal((await get(sy.port, '/own/rel', HOST)).headers.location, '/own/login');
      const cookie = await get(sy.port, '/own/cookie', HOST);
      assert.deepEqual(cookie.headers['set-cookie'], ['sid=abc; Domain=www.shop.example; Path=/; HttpOnly']);
    });

    test('reverse_rewrite: false turns it off', { timeout: 5_000 }, async () => {
      assert.equal((await get(sy.port, '/raw/abs', HOST)).headers.location, `http://127.0.0.1:${backend.port}/login?next=%2Fdash`);
      assert.equal((await get(sy.port, '/raw/rel', HOST)).headers.location, '/login');
      assert.deepEqual((await get(sy.port, '/raw/cookie', HOST)).headers['set-cookie'], ['sid=abc; Domain=127.0.0.1; Path=/; HttpOnly']);
    });

    test('a route that changes neither path nor host leaves these headers byte-identical', { timeout: 5_000 }, async () => {
      for (const path of ['/abs', '/rel', '/content', '/schemes', '/cookie', '/cookies']) {
        const viaProxy = await rawGet(sy.port, path, HOST);
        const direct = await rawGet(backend.port, path, HOST);
        assert.equal(viaProxy.statusLine, direct.statusLine, path);
        const pick = (lines: string[]): string[] => lines.filter((line) => /^(location|content-location|uri|set-cookie):/i.test(line));
        const expected = pick(direct.lines);
        assert.ok(expected.length > 0, path);
        assert.deepEqual(pick(viaProxy.lines), expected, path);
      }
    });
  });

  describe('WebSocket handshakes', () => {
    test('Set-Cookie on a 101 is rewritten too', { timeout: 5_000 }, async () => {
      const { statusLine, lines, socket } = await rawHandshake(sy.port, '/live/chat', HOST);
      socket.destroy();
      assert.match(statusLine, /^HTTP\/1\.1 101 /);
      assert.equal(backend.handshakes.at(-1)?.url, '/chat');
      assert.deepEqual(valuesOf(lines, 'set-cookie'), ['ws=1; Domain=www.shop.example; Path=/live/', 'room=2; Path=/live/chat']);
    });

    test('on a route that changes nothing, the 101 Set-Cookie lines are untouched', { timeout: 5_000 }, async () => {
      const { statusLine, lines, socket } = await rawHandshake(sy.port, '/chat', HOST);
      socket.destroy();
      assert.match(statusLine, /^HTTP\/1\.1 101 /);
      assert.deepEqual(valuesOf(lines, 'set-cookie'), ['ws=1; Domain=127.0.0.1; Path=/', 'room=2; Path=/chat']);
    });

    test('a handshake the backend refuses with a redirect gets its Location and cookies mapped back', { timeout: 5_000 }, async () => {
      const { response } = await rawExchange(sy.port, handshakeRequest('/live/denied', HOST));
      const lines = headerLines(response);
      assert.match(response, /^HTTP\/1\.1 302 /);
      assert.deepEqual(valuesOf(lines, 'location'), [`http://${HOST}/live/login`]);
      assert.deepEqual(valuesOf(lines, 'set-cookie'), ['back=1; Domain=www.shop.example; Path=/live/']);
    });
  });
});
