import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { closedPort, startOrigin } from '../helpers/origins.js';
import { startProxy } from '../helpers/proxy.js';
import { rawExchange, waitFor } from '../helpers/raw.js';

describe('backend refusing connections', () => {
  test('the only backend refuses: 502 within a second, with SY_UPSTREAM_CONNECT_REFUSED', { timeout: 10_000 }, async () => {
    const port = await closedPort();
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${port}`] });
    try {
      const started = Date.now();
      const reply = await send(`${proxy.url}/refused`);
      const elapsed = Date.now() - started;
      assert.equal(reply.status, 502);
      assert.equal(reply.headers['x-switchyard-error'], 'SY_UPSTREAM_CONNECT_REFUSED');
      assert.ok(elapsed < 1_000, `502 took ${elapsed} ms`);
    } finally {
      await proxy.close();
    }
  });

  test('first backend refuses: a GET is answered by the second', { timeout: 10_000 }, async () => {
    const refusing = await closedPort();
    const origin = await startOrigin({ name: 'second' });
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${refusing}`, origin.url] });
    try {
      const reply = await send(`${proxy.url}/retry-get`);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-origin'], 'second');
      assert.equal(origin.requests.length, 1);
      assert.equal(origin.requests[0]!.url, '/retry-get');
      // Round robin starts at the first server: it was really tried, and ejected.
      assert.ok(defaultPool(proxy).servers[0]!.ejectedUntil > Date.now(), 'the refusing server was not tried first');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('first backend refuses: a POST with a body is answered by the second, body intact', { timeout: 10_000 }, async () => {
    const refusing = await closedPort();
    const origin = await startOrigin({ name: 'second' });
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${refusing}`, origin.url] });
    try {
      const body = 'payload='.concat('x'.repeat(10_000));
      const sized = await send(`${proxy.url}/retry-post`, { method: 'POST', headers: { 'Content-Type': 'text/plain', 'Content-Length': String(body.length) } }, [body]);
      assert.equal(sized.status, 200);
      assert.equal(sized.headers['x-origin'], 'second');
      assert.ok(defaultPool(proxy).servers[0]!.ejectedUntil > Date.now(), 'the refusing server was not tried first');
      assert.equal(origin.requests.length, 1);
      assert.equal(origin.requests[0]!.method, 'POST');
      assert.equal(origin.requests[0]!.body, body);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('first backend refuses: a chunked POST is answered by the second, body intact', { timeout: 10_000 }, async () => {
    const refusing = await closedPort();
    const origin = await startOrigin({ name: 'second' });
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${refusing}`, origin.url] });
    try {
      const chunked = await send(`${proxy.url}/retry-chunked`, { method: 'POST' }, ['part one, ', 'part two']);
      assert.equal(chunked.status, 200);
      assert.equal(chunked.headers['x-origin'], 'second');
      assert.ok(defaultPool(proxy).servers[0]!.ejectedUntil > Date.now(), 'the refusing server was not tried first');
      assert.equal(origin.requests[0]!.body, 'part one, part two');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe('backend too slow', () => {
  test('no response headers within responseMs: 504 at about that time', { timeout: 10_000 }, async () => {
    // The handler never answers.
    const origin = await startOrigin({ handler: () => undefined });
    const proxy = await startProxy({ servers: [origin.url], timeouts: { responseMs: 300 } });
    try {
      const started = Date.now();
      const reply = await send(`${proxy.url}/silent`);
      const elapsed = Date.now() - started;
      assert.equal(reply.status, 504);
      assert.equal(reply.headers['x-switchyard-error'], 'SY_UPSTREAM_TIMEOUT');
      assert.ok(elapsed >= 250, `504 after only ${elapsed} ms`);
      assert.ok(elapsed < 1_500, `504 only after ${elapsed} ms`);
      assert.equal(origin.requests.length, 1, 'the request did reach the origin');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe('connections cut mid-response', () => {
  test('client gone mid-response: the upstream request is destroyed within a second', { timeout: 10_000 }, async () => {
    let originClosedAt = 0;
    let originFinished = false;
    let ticker: NodeJS.Timeout | undefined;
    const origin = await startOrigin({
      handler: (_req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('first\n');
        // Streams slowly, for at most 5 s, unless the proxy lets go first.
        let ticks = 0;
        ticker = setInterval(() => {
          if (++ticks > 50) {
            clearInterval(ticker);
            res.end();
          } else res.write(`tick ${ticks}\n`);
        }, 100);
        res.on('close', () => {
          originClosedAt = Date.now();
          originFinished = res.writableFinished;
          clearInterval(ticker);
        });
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const goneAt = await new Promise<number>((resolve, reject) => {
        const req = http.get(`${proxy.url}/stream`, { agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve(Date.now());
          });
        });
        req.on('error', () => undefined);
        setTimeout(() => reject(new Error('no first chunk within 2 s')), 2_000).unref();
      });
      await waitFor(() => originClosedAt > 0, 2_000, 'the origin response to close');
      assert.ok(originClosedAt - goneAt < 1_000, `origin noticed after ${originClosedAt - goneAt} ms`);
      assert.equal(originFinished, false, 'the origin response was cut, not completed');
    } finally {
      clearInterval(ticker);
      await proxy.close();
      await origin.close();
    }
  });

  test('backend resets mid-response (Content-Length): the client connection is cut, not left hanging', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '100000' });
        res.write('x'.repeat(1_000));
        setTimeout(() => req.socket.resetAndDestroy(), 50);
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const started = Date.now();
      const { response, closed } = await rawExchange(proxy.port, `GET /reset HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\n\r\n`, 3_000);
      const elapsed = Date.now() - started;
      assert.match(response, /^HTTP\/1\.1 200 /);
      assert.equal(closed, true, 'the client connection was left open');
      assert.ok(elapsed < 1_500, `cut after ${elapsed} ms`);
      const body = response.slice(response.indexOf('\r\n\r\n') + 4);
      assert.ok(body.length < 100_000, 'the body cannot be complete');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('backend resets mid-response (chunked): the client connection is cut without a final chunk', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.write('partial body');
        setTimeout(() => req.socket.resetAndDestroy(), 50);
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const started = Date.now();
      const { response, closed } = await rawExchange(proxy.port, `GET /reset HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\n\r\n`, 3_000);
      const elapsed = Date.now() - started;
      assert.match(response, /^HTTP\/1\.1 200 /);
      assert.match(response, /partial body/);
      assert.equal(closed, true, 'the client connection was left open');
      assert.ok(elapsed < 1_500, `cut after ${elapsed} ms`);
      // A terminating chunk would tell the client a truncated body is complete.
      assert.doesNotMatch(response, /\r\n0\r\n\r\n$/);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('backend closes the connection before answering: 502, not a hang', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({ handler: (req) => req.socket.destroy() });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const started = Date.now();
      const reply = await send(`${proxy.url}/hangup`);
      assert.equal(reply.status, 502);
      assert.match(String(reply.headers['x-switchyard-error']), /^SY_UPSTREAM_/);
      assert.ok(Date.now() - started < 1_500);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe('passive health', () => {
  test('the only backend was ejected but is back: it is retried, no 503', { timeout: 10_000 }, async () => {
    const port = await closedPort();
    // A long failTimeoutMs: the "down" mark is still fresh when the backend returns.
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${port}`], upstream: { failTimeoutMs: 60_000 } });
    let server: http.Server | undefined;
    try {
      const down = await send(`${proxy.url}/before`);
      assert.equal(down.status, 502);
      assert.ok(defaultPool(proxy).servers[0]!.ejectedUntil > Date.now(), 'the server was ejected');
      server = await listenOn(port, (req, res) => res.end(`back: ${req.url}`));
      const up = await send(`${proxy.url}/after`);
      assert.equal(up.status, 200, `got ${up.status} ${up.body}`);
      assert.equal(up.body, 'back: /after');
    } finally {
      await proxy.close();
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
    }
  });

  test('two backends both ejected, one back: it is used, no 503', { timeout: 10_000 }, async () => {
    const [portA, portB] = [await closedPort(), await closedPort()];
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${portA}`, `http://127.0.0.1:${portB}`], upstream: { failTimeoutMs: 60_000 } });
    let server: http.Server | undefined;
    try {
      const down = await send(`${proxy.url}/before`);
      assert.equal(down.status, 502);
      assert.ok(defaultPool(proxy).servers.every((s: { ejectedUntil: number }) => s.ejectedUntil > Date.now()), 'both servers ejected');
      server = await listenOn(portB, (_req, res) => res.end('b is back'));
      for (let i = 0; i < 3; i++) {
        const up = await send(`${proxy.url}/after`);
        assert.equal(up.status, 200, `request ${i}: got ${up.status} ${up.body}`);
        assert.equal(up.body, 'b is back');
      }
    } finally {
      await proxy.close();
      if (server) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server!.close(() => resolve()));
      }
    }
  });
});

// --- helpers ---

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One request on a fresh connection, destroyed if not complete within 5 s so nothing hangs. */
function send(url: string, options: http.RequestOptions = {}, chunks: string[] = []): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, ...options }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('error', reject);
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no complete response from ${url} within 5 s`)), 5_000);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

/** An HTTP server on a given port of 127.0.0.1 (a backend coming back where it was). */
async function listenOn(port: number, handler: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  assert.equal((server.address() as AddressInfo).port, port);
  return server;
}

/** The pool behind quick-mode configs (startProxy builds one). */
function defaultPool(proxy: { proxy: { runtime: { pools: ReadonlyMap<string, { servers: readonly { ejectedUntil: number }[] }> } } }): { servers: readonly { ejectedUntil: number }[] } {
  const pool = proxy.proxy.runtime.pools.get('default');
  if (!pool) throw new Error('no default pool');
  return pool;
}
