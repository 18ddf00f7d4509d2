import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { startOrigin } from '../helpers/origins.js';
import { startProxy } from '../helpers/proxy.js';
import { connectRaw, rawExchange, sleep, waitFor } from '../helpers/raw.js';

describe('streaming without buffering', () => {
  test('an SSE event reaches the client at once while the response stays open', { timeout: 10_000 }, async () => {
    let originRes: http.ServerResponse | undefined;
    let wroteAt = 0;
    const origin = await startOrigin({
      handler: (_req, res) => {
        originRes = res;
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        res.write('data: hello\n\n');
        wroteAt = Date.now();
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const started = Date.now();
      const req = http.get(`${proxy.url}/events`, { agent: false });
      const res = await within(new Promise<http.IncomingMessage>((resolve, reject) => req.once('response', resolve).once('error', reject)), 2_000, 'response headers');
      assert.equal(res.headers['content-type'], 'text/event-stream');
      const first = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no SSE event within 2 s')), 2_000);
        res.once('data', (chunk: Buffer) => {
          clearTimeout(timer);
          resolve(chunk.toString());
        });
      });
      const receivedAt = Date.now();
      assert.equal(first, 'data: hello\n\n');
      assert.ok(receivedAt - started < 500, `event took ${receivedAt - started} ms from request start`);
      assert.ok(receivedAt - wroteAt < 500, `event took ${receivedAt - wroteAt} ms after the origin wrote it`);
      assert.equal(res.complete, false, 'the response must still be open');
      // Closing the stream at the origin ends it at the client.
      const ended = new Promise<void>((resolve) => res.on('end', resolve).resume());
      originRes!.end('data: bye\n\n');
      await within(ended, 2_000, 'the end of the stream');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('a request body chunk reaches the origin before the client has finished sending', { timeout: 10_000 }, async () => {
    const seen: string[] = [];
    const origin = await startRawOrigin((req, res) => {
      req.on('data', (chunk: Buffer) => seen.push(chunk.toString()));
      req.on('end', () => res.end(`got ${seen.join('')}`));
    });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const req = http.request(`${proxy.url}/upload`, { method: 'POST', agent: false });
      const reply = collect(req);
      req.write('first-chunk;');
      await waitFor(() => seen.join('').includes('first-chunk;'), 1_000, 'the first chunk at the origin');
      // The request is still open here: the proxy forwarded without waiting for the end.
      req.end('second-chunk');
      const { status, body } = await reply;
      assert.equal(status, 200);
      assert.equal(body.toString(), 'got first-chunk;second-chunk');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('a client that stops reading stalls the origin (response backpressure)', { timeout: 20_000 }, async () => {
    const total = 96 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    let written = 0;
    const origin = await startRawOrigin((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(total) });
      const pump = (): void => {
        while (written < total) {
          written += chunk.length;
          if (!res.write(chunk)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const proxy = await startProxy({ servers: [origin.url] });
    const socket = await connectRaw(proxy.port);
    try {
      // No 'data' listener: the client reads nothing for now.
      socket.write(`GET /big HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nConnection: close\r\n\r\n`);
      await sleep(1_000);
      const atOneSecond = written;
      await sleep(500);
      const stalled = written;
      assert.ok(stalled - atOneSecond <= 1024 * 1024, `origin kept writing while the client read nothing: ${atOneSecond} -> ${stalled}`);
      assert.ok(stalled < 48 * 1024 * 1024, `origin pushed ${stalled} bytes into a client that reads nothing`);
      // Once the client reads, everything arrives.
      const received = await drain(socket, 10_000);
      const headEnd = received.indexOf('\r\n\r\n');
      assert.match(received.subarray(0, headEnd).toString('latin1'), /^HTTP\/1\.1 200/);
      assert.equal(received.length - headEnd - 4, total);
    } finally {
      socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('an origin that stops reading stalls the client upload (request backpressure)', { timeout: 20_000 }, async () => {
    const total = 96 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    let originReq: http.IncomingMessage | undefined;
    let originRes: http.ServerResponse | undefined;
    const origin = await startRawOrigin((req, res) => {
      // Read nothing until told to.
      req.pause();
      originReq = req;
      originRes = res;
    });
    const proxy = await startProxy({ servers: [origin.url] });
    let accepted = 0;
    const req = http.request(`${proxy.url}/upload`, { method: 'POST', agent: false, headers: { 'Content-Length': String(total) } });
    try {
      const reply = collect(req, 15_000);
      const pump = (): void => {
        while (accepted < total) {
          accepted += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
      await waitFor(() => originReq !== undefined, 2_000, 'the request at the origin');
      await sleep(1_000);
      const atOneSecond = accepted;
      await sleep(500);
      const stalled = accepted;
      assert.ok(stalled - atOneSecond <= 1024 * 1024, `client kept sending while the origin read nothing: ${atOneSecond} -> ${stalled}`);
      assert.ok(stalled < 48 * 1024 * 1024, `client pushed ${stalled} bytes towards an origin that reads nothing`);
      // The origin reads now and counts every byte.
      let count = 0;
      originReq!.on('data', (data: Buffer) => { count += data.length; });
      originReq!.on('end', () => originRes!.end(String(count)));
      originReq!.resume();
      const { status, body } = await reply;
      assert.equal(status, 200);
      assert.equal(body.toString(), String(total));
    } finally {
      req.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('an 8 MiB response streams through intact', { timeout: 15_000 }, async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const origin = await startRawOrigin((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream' });
      // Chunked, in pieces, so the proxy relays a stream rather than one buffer.
      for (let at = 0; at < payload.length; at += 256 * 1024) res.write(payload.subarray(at, at + 256 * 1024));
      res.end();
    });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const { status, body } = await send(`${proxy.url}/large`);
      assert.equal(status, 200);
      assert.equal(body.length, payload.length);
      assert.equal(sha256(body), sha256(payload));
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe('connections', () => {
  test('20 sequential requests reuse a few pooled keep-alive origin connections', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      for (let i = 0; i < 20; i++) {
        // A new client connection each time: reuse must come from the upstream pool.
        const { status, body } = await send(`${proxy.url}/seq/${i}`);
        assert.equal(status, 200);
        assert.equal((JSON.parse(body.toString()) as { url: string }).url, `/seq/${i}`);
      }
      assert.equal(origin.requests.length, 20);
      assert.ok(origin.connectionCount <= 3, `origin saw ${origin.connectionCount} connections for 20 sequential requests`);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('pipelined requests are answered in order, even when the first is the slowest', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (req, res) => {
        const delay = req.url === '/slow' ? 300 : 0;
        setTimeout(() => {
          res.writeHead(200, { 'Content-Type': 'text/plain' });
          res.end(`body of ${req.url}`);
        }, delay);
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    const socket = await connectRaw(proxy.port);
    try {
      const reader = new ResponseReader(socket);
      const host = `Host: 127.0.0.1:${proxy.port}`;
      socket.write(`GET /slow HTTP/1.1\r\n${host}\r\n\r\nGET /b HTTP/1.1\r\n${host}\r\n\r\nGET /c HTTP/1.1\r\n${host}\r\n\r\n`);
      const bodies: string[] = [];
      for (let i = 0; i < 3; i++) {
        const response = await reader.next();
        assert.equal(response.status, 200);
        bodies.push(response.body.toString());
      }
      assert.deepEqual(bodies, ['body of /slow', 'body of /b', 'body of /c']);
    } finally {
      socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

describe('hop-by-hop headers', () => {
  test('request: hop-by-hop headers and those named in Connection are not forwarded', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const { response } = await rawRequest(proxy.port, [
        'GET /hop HTTP/1.1',
        `Host: 127.0.0.1:${proxy.port}`,
        'Connection: keep-alive, X-Secret',
        'X-Secret: 1',
        'Keep-Alive: timeout=5, max=7',
        'Proxy-Connection: keep-alive',
        'TE: trailers',
        'Trailer: X-Checksum',
        'Upgrade: h2c',
        'X-Keep: yes',
      ]);
      assert.equal(response.status, 200);
      assert.equal(origin.requests.length, 1);
      const seen = origin.requests[0]!;
      const names = headerNames(seen.rawHeaders);
      for (const name of ['x-secret', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade']) {
        assert.ok(!names.includes(name), `${name} reached the origin: ${JSON.stringify(seen.rawHeaders)}`);
      }
      assert.doesNotMatch(seen.headers.connection ?? '', /x-secret/i);
      assert.equal(seen.headers['x-keep'], 'yes');
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('response: hop-by-hop headers and those named in Connection do not reach the client', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (_req, res) => {
        res.writeHead(200, [
          'Content-Type', 'text/plain',
          'Connection', 'keep-alive, X-Secret',
          'X-Secret', '1',
          'Keep-Alive', 'timeout=5, max=7',
          'Proxy-Connection', 'keep-alive',
          'TE', 'trailers',
          'Trailer', 'X-Checksum',
          'Upgrade', 'h2c',
          'Transfer-Encoding', 'chunked',
          'X-Keep', 'yes',
        ]);
        res.write('hello, ');
        res.end('world');
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      for (const connection of ['close', 'keep-alive']) {
        const { response } = await rawRequest(proxy.port, ['GET /hop HTTP/1.1', `Host: 127.0.0.1:${proxy.port}`, `Connection: ${connection}`]);
        assert.equal(response.status, 200);
        assert.equal(response.body.toString(), 'hello, world');
        const names = response.headers.map(([name]) => name);
        for (const name of ['x-secret', 'proxy-connection', 'te', 'trailer', 'upgrade']) {
          assert.ok(!names.includes(name), `${name} reached the client (client Connection: ${connection})`);
        }
        // The proxy's own Connection / Keep-Alive may be there, never the origin's.
        for (const value of headerValues(response, 'connection')) assert.doesNotMatch(value, /x-secret/i);
        for (const value of headerValues(response, 'keep-alive')) assert.doesNotMatch(value, /max=7/);
        assert.ok(headerValues(response, 'transfer-encoding').length <= 1, 'a single framing header');
        assert.deepEqual(headerValues(response, 'x-keep'), ['yes']);
      }
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('repeated Set-Cookie headers stay separate lines', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (_req, res) => {
        res.writeHead(200, ['Set-Cookie', 'a=1; Path=/', 'Set-Cookie', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT', 'Content-Type', 'text/plain']);
        res.end('ok');
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const { status, rawHeaders } = await send(`${proxy.url}/cookies`);
      assert.equal(status, 200);
      const cookies = rawHeaders.filter((_value, i) => i % 2 === 1 && rawHeaders[i - 1]!.toLowerCase() === 'set-cookie');
      assert.deepEqual(cookies, ['a=1; Path=/', 'b=2; Expires=Wed, 21 Oct 2037 07:28:00 GMT']);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe('forwarding headers', () => {
  test('X-Forwarded-For is appended to the client value, or set when absent', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      await send(`${proxy.url}/xff`, { headers: { 'X-Forwarded-For': '10.0.0.1' } });
      await send(`${proxy.url}/xff`);
      assert.equal(origin.requests.length, 2);
      assert.equal(origin.requests[0]!.headers['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
      assert.equal(origin.requests[1]!.headers['x-forwarded-for'], '127.0.0.1');
      for (const seen of origin.requests) assert.equal(countHeader(seen.rawHeaders, 'x-forwarded-for'), 1);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('X-Forwarded-Proto, -Host and -Port are set by the proxy, replacing client values', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      await send(`${proxy.url}/xfp`, {
        headers: { 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'evil.example', 'X-Forwarded-Port': '1' },
      });
      const seen = origin.requests[0]!;
      assert.equal(seen.headers['x-forwarded-proto'], 'http');
      assert.equal(seen.headers['x-forwarded-host'], `127.0.0.1:${proxy.port}`);
      assert.equal(seen.headers['x-forwarded-port'], String(proxy.port));
      for (const name of ['x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port']) {
        assert.equal(countHeader(seen.rawHeaders, name), 1, `${name} once`);
      }
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('Via is added, after any Via the client sent', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      await send(`${proxy.url}/via`);
      await send(`${proxy.url}/via`, { headers: { Via: '1.0 corp-proxy' } });
      assert.match(origin.requests[0]!.headers.via ?? '', /^1\.1 \S+$/);
      assert.match(origin.requests[1]!.headers.via ?? '', /^1\.0 corp-proxy, 1\.1 \S+$/);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('Host passes through unchanged', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const { response } = await rawRequest(proxy.port, ['GET /host HTTP/1.1', 'Host: example.test:1234', 'Connection: close']);
      assert.equal(response.status, 200);
      const seen = origin.requests[0]!;
      assert.equal(seen.headers.host, 'example.test:1234');
      assert.equal(countHeader(seen.rawHeaders, 'host'), 1);
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});

describe('header bytes', () => {
  test('header values with bytes outside ASCII (obs-text) pass through unchanged, both ways', { timeout: 10_000 }, async () => {
    // UTF-8 "ü" and a lone latin1 "é": a proxy that re-encoded strings would change them.
    const odd = Buffer.from([0xe9, 0x20, 0xc3, 0xbc]);
    let received = Buffer.alloc(0);
    // A raw TCP origin, so no HTTP library decodes the bytes before the test sees them.
    const origin = net.createServer((socket) => {
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.includes('\r\n\r\n')) {
          socket.end(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nX-Back: '), odd, Buffer.from('\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')]));
        }
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => origin.listen(0, '127.0.0.1', resolve));
    const proxy = await startProxy({ servers: [`http://127.0.0.1:${(origin.address() as AddressInfo).port}`] });
    try {
      const request = Buffer.concat([Buffer.from(`GET /bytes HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nConnection: close\r\nX-Name: `), odd, Buffer.from('\r\n\r\n')]);
      const { response } = await rawExchange(proxy.port, request);
      assert.ok(received.includes(Buffer.concat([Buffer.from('X-Name: '), odd, Buffer.from('\r\n')])), `origin got ${JSON.stringify(received.toString('latin1'))}`);
      assert.ok(Buffer.from(response, 'latin1').includes(Buffer.concat([Buffer.from('X-Back: '), odd, Buffer.from('\r\n')])), `client got ${JSON.stringify(response)}`);
    } finally {
      await proxy.close();
      await new Promise<void>((resolve) => origin.close(() => resolve()));
    }
  });
});

describe('non-WebSocket upgrade', () => {
  test('h2c is forwarded as plain HTTP without its upgrade headers, and the connection is kept', { timeout: 10_000 }, async () => {
    const origin = await startOrigin();
    const proxy = await startProxy({ servers: [origin.url] });
    const socket = await connectRaw(proxy.port);
    try {
      const reader = new ResponseReader(socket);
      socket.write([
        'GET /h2c HTTP/1.1',
        `Host: 127.0.0.1:${proxy.port}`,
        'Connection: Upgrade, HTTP2-Settings',
        'Upgrade: h2c',
        'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA',
        'X-Keep: yes',
        '', '',
      ].join('\r\n'));
      const first = await reader.next();
      assert.equal(first.status, 200, 'the origin\'s normal answer, not a 101');
      assert.equal((JSON.parse(first.body.toString()) as { url: string }).url, '/h2c');
      assert.equal(origin.requests.length, 1);
      const seen = origin.requests[0]!;
      const names = headerNames(seen.rawHeaders);
      assert.ok(!names.includes('upgrade'), `Upgrade reached the origin: ${JSON.stringify(seen.rawHeaders)}`);
      assert.ok(!names.includes('http2-settings'), `HTTP2-Settings reached the origin: ${JSON.stringify(seen.rawHeaders)}`);
      assert.doesNotMatch(seen.headers.connection ?? '', /upgrade|http2-settings/i);
      assert.equal(seen.headers['x-keep'], 'yes');
      // Same connection, second request.
      socket.write(`GET /second HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\n\r\n`);
      const second = await reader.next();
      assert.equal(second.status, 200);
      assert.equal((JSON.parse(second.body.toString()) as { url: string }).url, '/second');
      assert.equal(reader.closed, false);
    } finally {
      socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

describe('bodies and framing', () => {
  test('POST bodies arrive intact: chunked and Content-Length, small and 1 MiB', { timeout: 15_000 }, async () => {
    const origin = await startRawOrigin((req, res) => {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      req.on('end', () => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ sha256: hash.digest('hex'), length }));
      });
    });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const small = Buffer.from('name=switchyard&kind=proxy');
      const large = randomBytes(1024 * 1024);
      for (const payload of [small, large]) {
        const pieces: Buffer[] = [];
        for (let at = 0; at < payload.length; at += 16 * 1024) pieces.push(payload.subarray(at, at + 16 * 1024));
        const chunked = await send(`${proxy.url}/chunked`, { method: 'POST' }, pieces);
        const sized = await send(`${proxy.url}/sized`, { method: 'POST', headers: { 'Content-Length': String(payload.length) } }, [payload]);
        for (const [kind, reply] of [['chunked', chunked], ['content-length', sized]] as const) {
          assert.equal(reply.status, 200, kind);
          assert.deepEqual(JSON.parse(reply.body.toString()), { sha256: sha256(payload), length: payload.length }, `${kind}, ${payload.length} bytes`);
        }
      }
    } finally {
      await proxy.close();
      await origin.close();
    }
  });

  test('HEAD gets the headers and no body, and the connection stays usable', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '1234', 'X-Method': req.method ?? '' });
        res.end(req.method === 'HEAD' ? undefined : 'x'.repeat(1234));
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    const socket = await connectRaw(proxy.port);
    try {
      const reader = new ResponseReader(socket);
      const host = `Host: 127.0.0.1:${proxy.port}`;
      socket.write(`HEAD /doc HTTP/1.1\r\n${host}\r\n\r\n`);
      const head = await reader.next({ noBody: true });
      assert.equal(head.status, 200);
      assert.deepEqual(headerValues(head, 'content-length'), ['1234']);
      assert.deepEqual(headerValues(head, 'x-method'), ['HEAD']);
      // A body after the HEAD response would be read as the start of this one.
      socket.write(`GET /doc HTTP/1.1\r\n${host}\r\n\r\n`);
      const get = await reader.next();
      assert.equal(get.status, 200);
      assert.deepEqual(headerValues(get, 'x-method'), ['GET']);
      assert.equal(get.body.length, 1234);
    } finally {
      socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('204 and 304 carry no body, and the connection stays usable', { timeout: 10_000 }, async () => {
    const origin = await startOrigin({
      handler: (req, res) => {
        if (req.url === '/204') res.writeHead(204, { 'X-Kind': 'no-content' });
        else if (req.url === '/304') res.writeHead(304, { ETag: '"v1"', 'X-Kind': 'not-modified' });
        else res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end(req.url === '/after' ? 'after' : undefined);
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    const socket = await connectRaw(proxy.port);
    try {
      const reader = new ResponseReader(socket);
      const host = `Host: 127.0.0.1:${proxy.port}`;
      socket.write(`DELETE /204 HTTP/1.1\r\n${host}\r\n\r\n`);
      const noContent = await reader.next();
      assert.equal(noContent.status, 204);
      assert.deepEqual(headerValues(noContent, 'x-kind'), ['no-content']);
      assert.deepEqual(headerValues(noContent, 'transfer-encoding'), []);
      socket.write(`GET /304 HTTP/1.1\r\n${host}\r\nIf-None-Match: "v1"\r\n\r\n`);
      const notModified = await reader.next();
      assert.equal(notModified.status, 304);
      assert.deepEqual(headerValues(notModified, 'etag'), ['"v1"']);
      assert.deepEqual(headerValues(notModified, 'transfer-encoding'), []);
      socket.write(`GET /after HTTP/1.1\r\n${host}\r\n\r\n`);
      const after = await reader.next();
      assert.equal(after.status, 200);
      assert.equal(after.body.toString(), 'after');
      assert.equal(origin.requests[1]!.headers['if-none-match'], '"v1"');
    } finally {
      socket.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});

// --- helpers ---

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/** One request on a fresh connection; `chunks` are written one by one (chunked unless Content-Length is set). */
function send(url: string, options: http.RequestOptions = {}, chunks: Buffer[] = []): Promise<Reply> {
  const req = http.request(url, { agent: false, ...options });
  const reply = collect(req, 5_000);
  for (const chunk of chunks) req.write(chunk);
  req.end();
  return reply;
}

/** The whole response; the request is destroyed if it is not complete within timeoutMs, so nothing hangs. */
function collect(req: http.ClientRequest, timeoutMs = 5_000): Promise<Reply> {
  const reply = new Promise<Reply>((resolve, reject) => {
    req.on('error', reject);
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (chunk: Buffer) => parts.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(parts) }));
    });
  });
  return within(reply, timeoutMs, 'a complete response', () => req.destroy());
}

/** Rejects when `promise` has not settled within ms (after calling onTimeout). */
function within<T>(promise: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

interface RawOrigin {
  readonly url: string;
  close(): Promise<void>;
}

/** An origin with full control over the request stream (startOrigin reads the whole body first). */
async function startRawOrigin(handler: http.RequestListener): Promise<RawOrigin> {
  const server = http.createServer(handler);
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface RawResponse {
  status: number;
  /** [lower-case name, value] in wire order, repeats kept. */
  headers: [string, string][];
  body: Buffer;
}

/** Sends one request (header lines) on a fresh raw connection and reads one response. */
async function rawRequest(port: number, lines: string[]): Promise<{ response: RawResponse }> {
  const socket = await connectRaw(port);
  try {
    const reader = new ResponseReader(socket);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    return { response: await reader.next() };
  } finally {
    socket.destroy();
  }
}

/** Parses consecutive HTTP/1.1 responses off a raw socket, as a client on a keep-alive connection must. */
class ResponseReader {
  closed = false;
  private buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.wake?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    socket.on('error', () => undefined);
  }

  async next(options: { noBody?: boolean; timeoutMs?: number } = {}): Promise<RawResponse> {
    const deadline = Date.now() + (options.timeoutMs ?? 3_000);
    while (true) {
      const parsed = parseResponse(this.buffer, options.noBody ?? false, this.closed);
      if (parsed) {
        this.buffer = this.buffer.subarray(parsed.consumed);
        return parsed.response;
      }
      const left = deadline - Date.now();
      if (this.closed || left <= 0) {
        throw new Error(`${this.closed ? 'connection closed' : 'timed out'} before a full response; got ${JSON.stringify(this.buffer.toString('latin1').slice(0, 500))}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }
}

function parseResponse(buffer: Buffer, noBody: boolean, closed: boolean): { response: RawResponse; consumed: number } | undefined {
  const headEnd = buffer.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const [statusLine = '', ...lines] = buffer.subarray(0, headEnd).toString('latin1').split('\r\n');
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine);
  if (!match) throw new Error(`not an HTTP/1.1 status line: ${JSON.stringify(statusLine)}`);
  const status = Number(match[1]);
  const headers = lines.map((line): [string, string] => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]);
  const response = { status, headers, body: Buffer.alloc(0) };
  let at = headEnd + 4;
  if (noBody || status === 204 || status === 304 || status < 200) return { response, consumed: at };
  const value = (name: string): string | undefined => headers.find(([header]) => header === name)?.[1];
  if (value('transfer-encoding')?.toLowerCase() === 'chunked') {
    const parts: Buffer[] = [];
    while (true) {
      const lineEnd = buffer.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = parseInt(buffer.subarray(at, lineEnd).toString('latin1'), 16);
      if (size === 0) {
        const end = buffer.indexOf('\r\n\r\n', lineEnd);
        return end < 0 ? undefined : { response: { ...response, body: Buffer.concat(parts) }, consumed: end + 4 };
      }
      if (buffer.length < lineEnd + 2 + size + 2) return undefined;
      parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  const length = value('content-length');
  if (length !== undefined) {
    const end = at + Number(length);
    return buffer.length < end ? undefined : { response: { ...response, body: buffer.subarray(at, end) }, consumed: end };
  }
  return closed ? { response: { ...response, body: buffer.subarray(at) }, consumed: buffer.length } : undefined;
}

/** Reads a raw socket to its close (or the time limit) and returns every byte. */
function drain(socket: Socket, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    const timer = setTimeout(() => reject(new Error(`connection still open after ${timeoutMs} ms`)), timeoutMs);
    socket.on('data', (chunk: Buffer) => parts.push(chunk));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(parts));
    });
  });
}

function headerValues(response: RawResponse, name: string): string[] {
  return response.headers.filter(([header]) => header === name).map(([, value]) => value);
}

function headerNames(rawHeaders: readonly string[]): string[] {
  return rawHeaders.filter((_value, i) => i % 2 === 0).map((name) => name.toLowerCase());
}

function countHeader(rawHeaders: readonly string[], name: string): number {
  return headerNames(rawHeaders).filter((header) => header === name).length;
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
