import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { connectRaw, rawExchange } from '../helpers/raw.js';

// One origin and proxy for the requests every test sends; each test starts with
// an empty origin log, so "the backend never saw it" is origin.requests being empty.
let origin: Origin;
let proxy: TestProxy;

before(async () => {
  origin = await startOrigin();
  proxy = await startProxy({ servers: [origin.url] });
});

after(async () => {
  await proxy.close();
  await origin.close();
});

beforeEach(() => {
  origin.requests.length = 0;
});

describe('malformed requests', () => {
  test('a malformed request line gets 400 and the connection is closed', { timeout: 30_000 }, async () => {
    const lines = [
      'GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n',
      'G@T / HTTP/1.1\r\nHost: x\r\n\r\n',
      'GET / HTTP/9.9\r\nHost: x\r\n\r\n',
      'complete nonsense\r\n\r\n',
    ];
    for (const request of lines) {
      await expectRejected(proxy.port, request, [400]);
      await assertStillServes(proxy);
    }
  });

  test('a request line without an HTTP/1.x version gets 400 (or 505) and is not forwarded', { timeout: 30_000 }, async () => {
    // No version at all is the HTTP/0.9 form; "HTTP/2.0" in HTTP/1 syntax is no valid
    // HTTP/2 either. Forwarded, they would reach the backend as HTTP/1.1 requests the
    // client never sent (and without a Host of the client's own).
    const lines = [
      'GET /v\r\n\r\n',
      `GET /v HTTP/0.9\r\nHost: 127.0.0.1:${proxy.port}\r\n\r\n`,
      `GET /v HTTP/2.0\r\nHost: 127.0.0.1:${proxy.port}\r\n\r\n`,
    ];
    // Every form is tried before asserting, so a failure names all that got through.
    const outcomes: string[] = [];
    for (const request of lines) {
      const { response, closed } = await rawExchange(proxy.port, request, 3_000);
      const status = /^HTTP\/1\.1 (\d{3}) /.exec(response)?.[1] ?? 'none';
      outcomes.push(`${JSON.stringify(request.split('\r\n')[0])} -> ${status}${closed ? '' : ' (left open)'}, forwarded: ${origin.requests.length > 0}`);
      origin.requests.length = 0;
    }
    const wrong = outcomes.filter((outcome) => !/-> (400|505), forwarded: false$/.test(outcome));
    assert.deepEqual(wrong, [], 'expected 400 or 505, never forwarded');
    await assertStillServes(proxy);
  });

  test('malformed header lines get 400 and the connection is closed', { timeout: 30_000 }, async () => {
    const headers = [
      'Bad Name: value',
      'NoColonHere',
      ': empty-name',
      'X-Ctl: a\x01b',
      'X-Nul: a\x00b',
    ];
    for (const header of headers) {
      await expectRejected(proxy.port, `GET /bad HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\n${header}\r\n\r\n`, [400]);
      await assertStillServes(proxy);
    }
  });

  test('an HTTP/1.1 request without Host gets 400', { timeout: 10_000 }, async () => {
    await expectRejected(proxy.port, 'GET /no-host HTTP/1.1\r\n\r\n', [400]);
    assertNothingForwarded();
    await assertStillServes(proxy);
  });
});

describe('header size limit', () => {
  test('headers over the default 16 KiB get 431; under it they pass', { timeout: 10_000 }, async () => {
    const response = await expectRejected(proxy.port, requestWithHeader(proxy.port, 'X-Big', 'a'.repeat(17 * 1024)), [431]);
    assert.match(response, /X-Switchyard-Error: SY_CLIENT_HEADERS_TOO_LARGE/i);
    assertNothingForwarded();
    // Many small headers add up the same way as one big one.
    const many = Array.from({ length: 400 }, (_v, i) => `X-H${i}: ${'b'.repeat(40)}`).join('\r\n');
    await expectRejected(proxy.port, `GET /many HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\n${many}\r\n\r\n`, [431]);
    assertNothingForwarded();
    const { response: fine } = await rawExchange(proxy.port, requestWithHeader(proxy.port, 'X-Big', 'a'.repeat(8 * 1024)));
    assert.match(fine, /^HTTP\/1\.1 200 /);
    assert.equal(origin.requests.length, 1);
    assert.equal(origin.requests[0]!.headers['x-big'], 'a'.repeat(8 * 1024));
  });

  test('limits.maxHeaderBytes 2048: 3000 bytes of headers get 431, 1000 bytes pass', { timeout: 10_000 }, async () => {
    const small = await startProxy({ servers: [origin.url], limits: { maxHeaderBytes: 2048 } });
    try {
      await expectRejected(small.port, requestWithHeader(small.port, 'X-Big', 'a'.repeat(3000)), [431]);
      assertNothingForwarded();
      const { response } = await rawExchange(small.port, requestWithHeader(small.port, 'X-Big', 'a'.repeat(1000)));
      assert.match(response, /^HTTP\/1\.1 200 /);
      assert.equal(origin.requests.length, 1);
    } finally {
      await small.close();
    }
  });
});

describe('ambiguous framing (request smuggling)', () => {
  test('Content-Length together with Transfer-Encoding: 400, closed, never forwarded', { timeout: 10_000 }, async () => {
    const request = [
      'POST /smuggle HTTP/1.1',
      `Host: 127.0.0.1:${proxy.port}`,
      'Content-Length: 6',
      'Transfer-Encoding: chunked',
      '',
      '0',
      '',
      'GET /smuggled HTTP/1.1',
      `Host: 127.0.0.1:${proxy.port}`,
      '', '',
    ].join('\r\n');
    await expectRejected(proxy.port, request, [400]);
    assertNothingForwarded();
    await assertStillServes(proxy);
  });

  test('differing duplicate Content-Length: 400, closed, never forwarded', { timeout: 10_000 }, async () => {
    const request = `POST /dup HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`;
    await expectRejected(proxy.port, request, [400]);
    const listed = `POST /dup HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nContent-Length: 5, 6\r\n\r\nhello!`;
    await expectRejected(proxy.port, listed, [400]);
    assertNothingForwarded();
    await assertStillServes(proxy);
  });

  test('an obs-folded header: 400, closed, never forwarded', { timeout: 10_000 }, async () => {
    for (const fold of [' ', '\t']) {
      const request = `GET /fold HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nX-Folded: first\r\n${fold}second\r\n\r\n`;
      await expectRejected(proxy.port, request, [400]);
      await assertStillServes(proxy);
    }
  });

  test('a Transfer-Encoding other than chunked: 501 or 400, never forwarded', { timeout: 10_000 }, async () => {
    for (const coding of ['gzip', 'gzip, chunked', 'identity', 'chunked, gzip']) {
      const request = `POST /te HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nTransfer-Encoding: ${coding}\r\n\r\n5\r\nhello\r\n0\r\n\r\n`;
      await expectRejected(proxy.port, request, [400, 501], `Transfer-Encoding: ${coding}`);
      await assertStillServes(proxy);
    }
  });
});

describe('slow clients', () => {
  test('a client dribbling its headers past headerMs gets 408 and is closed', { timeout: 10_000 }, async () => {
    const slow = await startProxy({ servers: [origin.url], timeouts: { headerMs: 500 } });
    const socket = await connectRaw(slow.port);
    let dribble: NodeJS.Timeout | undefined;
    try {
      const started = Date.now();
      let received = '';
      socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1'); });
      socket.on('error', () => undefined);
      const closed = new Promise<number>((resolve) => socket.on('close', () => resolve(Date.now())));
      socket.write(`GET /slow HTTP/1.1\r\nHost: 127.0.0.1:${slow.port}\r\n`);
      // One header line every 100 ms: always busy, never finished.
      let line = 0;
      dribble = setInterval(() => {
        if (!socket.destroyed && socket.writable) socket.write(`X-Drip-${line++}: 1\r\n`);
      }, 100);
      const closedAt = await Promise.race([closed, new Promise<number>((resolve) => setTimeout(() => resolve(-1), 4_000))]);
      assert.notEqual(closedAt, -1, 'the proxy never closed the slow connection');
      const elapsed = closedAt - started;
      assert.ok(elapsed >= 400, `closed after ${elapsed} ms, before the header timeout`);
      assert.ok(elapsed <= 500 + 1_500, `closed after ${elapsed} ms, well past headerMs`);
      assert.match(received, /^HTTP\/1\.1 408 /);
      assertNothingForwarded();
      await assertStillServes(slow);
    } finally {
      clearInterval(dribble);
      socket.destroy();
      await slow.close();
    }
  });
});

describe('request targets and methods', () => {
  test('an absolute-form target naming another host is never forwarded there: 400', { timeout: 10_000 }, async () => {
    const request = `GET http://evil.example/x HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\n\r\n`;
    const response = await expectRejected(proxy.port, request, [400]);
    assert.match(response, /X-Switchyard-Error: SY_CLIENT_MISDIRECTED/i);
    assertNothingForwarded();
    await assertStillServes(proxy);
  });

  test('an absolute-form target naming the Host is forwarded in origin-form', { timeout: 10_000 }, async () => {
    const host = `127.0.0.1:${proxy.port}`;
    const { response } = await rawExchange(proxy.port, `GET http://${host}/x?q=1 HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.match(response, /^HTTP\/1\.1 200 /);
    assert.equal(origin.requests.length, 1);
    assert.equal(origin.requests[0]!.url, '/x?q=1');
    assert.equal(origin.requests[0]!.headers.host, host);
  });

  test('CONNECT gets 405 and is never forwarded', { timeout: 10_000 }, async () => {
    await expectRejected(proxy.port, 'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n', [405]);
    await expectRejected(proxy.port, `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`, [405]);
    assertNothingForwarded();
    await assertStillServes(proxy);
  });
});

// --- helpers ---

/**
 * Sends raw bytes on a fresh connection; the proxy must answer with one of
 * `statuses` and close the connection (well before rawExchange's 3 s limit).
 */
async function expectRejected(port: number, request: string, statuses: number[], what = JSON.stringify(request.slice(0, 60))): Promise<string> {
  const { response, closed } = await rawExchange(port, request, 3_000);
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(response)?.[1]);
  assert.ok(statuses.includes(status), `${what}: expected ${statuses.join(' or ')}, got ${JSON.stringify(response.slice(0, 200))}`);
  assert.equal(closed, true, `${what}: connection left open after ${status}`);
  return response;
}

function assertNothingForwarded(): void {
  assert.equal(origin.requests.length, 0, `forwarded: ${JSON.stringify(origin.requests.map((request) => `${request.method} ${request.url}`))}`);
}

/** The proxy keeps serving: a good request on a new connection gets the origin's 200. */
async function assertStillServes(target: TestProxy): Promise<void> {
  const status = await new Promise<number>((resolve, reject) => {
    const req = http.get(`${target.url}/good`, { agent: false, timeout: 3_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('good request timed out')));
    req.on('error', reject);
  });
  assert.equal(status, 200);
  // Only good requests ever reach the origin; the bad one before it did not.
  assert.deepEqual(origin.requests.map((request) => request.url), ['/good']);
  origin.requests.length = 0;
}

function requestWithHeader(port: number, name: string, value: string): string {
  return `GET /sized HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${name}: ${value}\r\nConnection: close\r\n\r\n`;
}
