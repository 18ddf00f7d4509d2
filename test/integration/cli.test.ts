/**
 * The quick-mode CLI as a user runs it: `node bin/switchyard.js proxy ...` in its
 * own process, real origins on 127.0.0.1:0, real HTTP, HTTPS and WebSocket clients.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { Agent, request as undiciRequest } from 'undici';
import { WebSocket, WebSocketServer } from 'ws';
import { acceptByHand } from '../helpers/websocket-frames.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { selfSignedCertificate, type TestCertificate } from '../helpers/certs.js';
import { alive, childPids, type CliProcess, killPid, spawnSwitchyard, stopSwitchyards, withTimeout } from '../helpers/cli.js';
import { sleep, waitFor } from '../helpers/raw.js';

const START_LINE = /^switchyard listening on (https?):\/\/127\.0\.0\.1:(\d+)\b.*$/m;

// ---------------------------------------------------------------- processes

/** Extra PIDs (cluster workers) to kill if a test leaves them behind. */
const strayPids = new Set<number>();

afterEach(async () => {
  await stopSwitchyards();
  for (const pid of strayPids) killPid(pid);
  strayPids.clear();
});

async function waitExit(cli: CliProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return withTimeout(cli.exited, ms, `process ${cli.pid} to exit (stderr: ${JSON.stringify(cli.stderr)})`);
}

/** Runs the CLI to completion. */
async function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = spawnSwitchyard(args, env);
  const { code } = await waitExit(cli, 10_000);
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

interface RunningProxy extends CliProcess {
  readonly port: number;
  readonly scheme: string;
  readonly startLine: string;
}

/** Starts `switchyard proxy ARGS` and waits for its start line. */
async function startCli(args: readonly string[], env: Record<string, string> = {}, ms = 10_000): Promise<RunningProxy> {
  const cli = spawnSwitchyard(['proxy', ...args], env);
  const deadline = Date.now() + ms;
  let match: RegExpExecArray | null = null;
  while (!(match = START_LINE.exec(cli.stdout))) {
    if (cli.exitedAt !== undefined) throw new Error(`proxy exited before its start line; stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
    if (Date.now() > deadline) throw new Error(`no start line within ${ms} ms; stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
    await sleep(10);
  }
  const port = Number(match[2]);
  assert.ok(port > 0 && port < 65536, `a real port in the start line: ${match[0]}`);
  return Object.assign(cli, { port, scheme: match[1] as string, startLine: match[0] });
}

// ---------------------------------------------------------------- clients

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One GET on a fresh connection (no keep-alive pool between tests). */
function get(url: string, headers: Record<string, string> = {}, ms = 5_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error(`GET ${url}: no answer within ${ms} ms`)));
    req.on('error', reject);
  });
}

/** Opens a WebSocket and resolves once it is open; the first message is kept. */
async function openWs(url: string, options: { ca?: Buffer } = {}, ms = 5_000): Promise<{ ws: WebSocket; messages: string[]; closed: Promise<number> }> {
  const ws = new WebSocket(url, { ...(options.ca ? { ca: options.ca } : {}), handshakeTimeout: ms });
  const messages: string[] = [];
  ws.on('message', (data) => messages.push(data.toString()));
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('error', () => undefined);
  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
  }), ms, `WebSocket ${url} to open`);
  return { ws, messages, closed };
}

async function nextMessage(messages: string[], predicate: (text: string) => boolean, what: string, ms = 3_000): Promise<string> {
  await waitFor(() => messages.some(predicate), ms, what);
  return messages.find(predicate) as string;
}

function tryConnect(port: number): Promise<'connected' | 'refused' | 'other'> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve('connected'); });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED' ? 'refused' : 'other'));
  });
}

function countBy(values: readonly (string | undefined)[]): Map<string | undefined, number> {
  const counts = new Map<string | undefined, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

/** The first Set-Cookie of a response as name, value and the whole line. */
function cookieOf(reply: Reply): { name: string; value: string; line: string } | undefined {
  const line = reply.headers['set-cookie']?.[0];
  if (!line) return undefined;
  const pair = line.split(';')[0] as string;
  const eq = pair.indexOf('=');
  return { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), line };
}

// ---------------------------------------------------------------- origins

/** An origin that greets each WebSocket with its name and then echoes. */
function namedOrigin(name: string): Promise<Origin> {
  return startOrigin({
    name,
    onWebSocket: (ws) => {
      ws.send(`hello from ${name}`);
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    },
  });
}

// ---------------------------------------------------------------- certificate

let certificate: TestCertificate | undefined;
let certFile = '';
let keyFile = '';
let cert: Buffer = Buffer.alloc(0);
let key: Buffer = Buffer.alloc(0);

before(async () => {
  certificate = await selfSignedCertificate('switchyard-cli-');
  ({ cert, key } = certificate);
  ({ certFile, keyFile } = certificate);
});

after(() => certificate?.remove());

// ---------------------------------------------------------------- usage

test('proxy --help prints the usage with every flag and exits 0', async () => {
  const { code, stdout, stderr } = await runCli(['proxy', '--help']);
  assert.equal(code, 0);
  assert.equal(stderr, '');
  assert.match(stdout, /Usage: switchyard proxy/);
  for (const flag of ['--listen', '--to', '--sticky', '--tls-cert', '--tls-key', '--workers', '--idle-timeout', '--drain-timeout']) {
    assert.ok(stdout.includes(flag), `usage mentions ${flag}`);
  }
  assert.match(stdout, /cookie\|ip/);
  assert.match(stdout, /HOST:PORT/);
});

test('every bad argument prints one line on stderr naming it and exits 2', async () => {
  const to = ['--to', 'http://127.0.0.1:9'];
  const listen = ['--listen', '127.0.0.1:0'];
  const cases: { args: string[]; names: string[] }[] = [
    { args: [...listen, ...to, '--bogus'], names: ['--bogus'] },
    { args: [...to], names: ['--listen'] },
    { args: [...listen], names: ['--to'] },
    { args: [...listen, '--to', 'ftp://x'], names: ['--to', 'ftp://x'] },
    { args: ['--listen', 'nonsense', ...to], names: ['--listen', 'nonsense'] },
    { args: [...listen, ...to, '--sticky', 'foo'], names: ['--sticky', 'foo'] },
    { args: [...listen, ...to, '--workers', '0'], names: ['--workers'] },
    { args: [...listen, ...to, '--idle-timeout', '5parsecs'], names: ['--idle-timeout', '5parsecs'] },
    { args: [...listen, ...to, '--tls-cert', certFile], names: ['--tls-key'] },
    { args: [...listen, ...to, '--tls-cert', join(certificate!.dir, 'missing.pem'), '--tls-key', keyFile], names: ['--tls-cert', 'missing.pem'] },
  ];
  const results = await Promise.all(cases.map((c) => runCli(['proxy', ...c.args])));
  cases.forEach((c, i) => {
    const { code, stdout, stderr } = results[i]!;
    const label = `switchyard proxy ${c.args.join(' ')}`;
    assert.equal(code, 2, `${label}: exit code (stderr ${JSON.stringify(stderr)})`);
    assert.equal(stdout, '', `${label}: nothing on stdout`);
    const lines = stderr.split('\n').filter((line) => line.trim() !== '');
    assert.equal(lines.length, 1, `${label}: exactly one line on stderr, got ${JSON.stringify(stderr)}`);
    assert.ok(stderr.endsWith('\n'), `${label}: the line is terminated`);
    for (const name of c.names) assert.ok(lines[0]!.includes(name), `${label}: stderr names ${name}: ${JSON.stringify(lines[0])}`);
  });
});

test('a start failure (port in use) prints one line, no stack trace, exits non-zero', async () => {
  const blocker = net.createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as AddressInfo).port;
  try {
    const { code, stdout, stderr } = await runCli(['proxy', '--listen', `127.0.0.1:${port}`, '--to', 'http://127.0.0.1:9']);
    assert.notEqual(code, 0);
    assert.notEqual(code, null);
    assert.equal(stdout, '', 'no start line');
    const lines = stderr.split('\n').filter((line) => line.trim() !== '');
    assert.equal(lines.length, 1, `one line on stderr, got ${JSON.stringify(stderr)}`);
    assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace');
    assert.match(lines[0]!, /EADDRINUSE|in use/i);
    assert.ok(lines[0]!.includes(String(port)), 'names the address');
  } finally {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  }
});

// ---------------------------------------------------------------- forwarding

test('start line names the address and backends; HTTP and WebSocket go through', async () => {
  const origin = await namedOrigin('alpha');
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', origin.url]);
    assert.equal(proxy.scheme, 'http');
    assert.ok(proxy.startLine.includes(origin.url), `start line names the backend: ${proxy.startLine}`);

    const reply = await get(`http://127.0.0.1:${proxy.port}/hello?x=1`, { 'X-Test': 'yes' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-origin'], 'alpha');
    const seen = JSON.parse(reply.body) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/hello?x=1');
    assert.equal(seen.headers['x-test'], 'yes');
    assert.match(seen.headers.via ?? '', /switchyard/);
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');

    const { ws, messages } = await openWs(`ws://127.0.0.1:${proxy.port}/chat`);
    await nextMessage(messages, (m) => m === 'hello from alpha', 'greeting');
    ws.send('ping through the CLI');
    await nextMessage(messages, (m) => m === 'ping through the CLI', 'echo');
    ws.close();
    assert.equal(origin.handshakes.length, 1);
    assert.equal(origin.handshakes[0]!.url, '/chat');

    // stdout: the start line, then the access log (JSON, one object per line).
    const [startLine, ...logLines] = proxy.stdout.split('\n').filter((line) => line !== '');
    assert.match(startLine ?? '', /^switchyard listening on /);
    for (const line of logLines) assert.ok(['request', 'tunnel'].includes((JSON.parse(line) as { type: string }).type), line);
  } finally {
    await origin.close();
  }
});

test('several --to: HTTP requests are spread round robin', async () => {
  const a = await namedOrigin('a');
  const b = await namedOrigin('b');
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', a.url, '--to', b.url]);
    assert.ok(proxy.startLine.includes(a.url) && proxy.startLine.includes(b.url), proxy.startLine);
    const origins: (string | undefined)[] = [];
    for (let i = 0; i < 20; i++) {
      const reply = await get(`http://127.0.0.1:${proxy.port}/r${i}`);
      assert.equal(reply.status, 200);
      origins.push(reply.headers['x-origin'] as string | undefined);
    }
    const counts = countBy(origins);
    assert.ok(Math.abs((counts.get('a') ?? 0) - 10) <= 1, `a got ${counts.get('a')} of 20`);
    assert.ok(Math.abs((counts.get('b') ?? 0) - 10) <= 1, `b got ${counts.get('b')} of 20`);
    assert.equal(a.requests.length + b.requests.length, 20);
  } finally {
    await a.close();
    await b.close();
  }
});

test('several --to: WebSocket tunnels go to the backend with the fewest open connections', async () => {
  const a = await namedOrigin('a');
  const b = await namedOrigin('b');
  const clients: WebSocket[] = [];
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', a.url, '--to', b.url]);
    const open = async (): Promise<{ ws: WebSocket; closed: Promise<number>; origin: string }> => {
      const { ws, messages, closed } = await openWs(`ws://127.0.0.1:${proxy.port}/t`);
      clients.push(ws);
      const hello = await nextMessage(messages, (m) => m.startsWith('hello from '), 'greeting');
      return { ws, closed, origin: hello.slice('hello from '.length) };
    };
    const first: { ws: WebSocket; closed: Promise<number>; origin: string }[] = [];
    for (let i = 0; i < 4; i++) first.push(await open());
    assert.deepEqual(first.map((t) => t.origin).sort(), ['a', 'a', 'b', 'b'], 'four tunnels: two on each backend');
    assert.equal(a.sockets.size, 2);
    assert.equal(b.sockets.size, 2);

    // Close both tunnels on a: a now has none open, b still has two.
    const onA = first.filter((t) => t.origin === 'a');
    for (const t of onA) t.ws.close();
    await withTimeout(Promise.all(onA.map((t) => t.closed)), 3_000, 'tunnels on a to close');
    await waitFor(() => a.sockets.size === 0, 3_000, 'origin a to see its tunnels closed');
    await sleep(150); // let the proxy retire both sides of those tunnels

    const next = [await open(), await open()];
    assert.deepEqual(next.map((t) => t.origin), ['a', 'a'], 'both new tunnels go to the idle backend');
    assert.equal(a.sockets.size, 2);
    assert.equal(b.sockets.size, 2);
  } finally {
    for (const ws of clients) ws.terminate();
    await a.close();
    await b.close();
  }
});

test('--to ws://HOST:PORT names the same origin as http:// for HTTP and WebSocket', async () => {
  const origin = await namedOrigin('wsurl');
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', origin.wsUrl]);
    assert.ok(proxy.startLine.includes(origin.wsUrl), proxy.startLine);
    const reply = await get(`http://127.0.0.1:${proxy.port}/plain`);
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-origin'], 'wsurl');
    const { ws, messages } = await openWs(`ws://127.0.0.1:${proxy.port}/sock`);
    await nextMessage(messages, (m) => m === 'hello from wsurl', 'greeting');
    ws.send('over ws://');
    await nextMessage(messages, (m) => m === 'over ws://', 'echo');
    ws.close();
  } finally {
    await origin.close();
  }
});

test('--to wss://HOST:PORT reaches a TLS origin for HTTP and WebSocket', async () => {
  const server = https.createServer({ cert, key }, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Origin': 'tls-origin' });
    res.end(`tls origin saw ${req.url}`);
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => {
    ws.on('error', () => ws.terminate());
    ws.send('hello from tls-origin');
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    // The proxy process trusts the test's self-signed certificate through Node's own mechanism.
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', `wss://127.0.0.1:${port}`], { NODE_EXTRA_CA_CERTS: certFile });
    const reply = await get(`http://127.0.0.1:${proxy.port}/secure-path`);
    assert.equal(reply.status, 200, `body: ${reply.body}`);
    assert.equal(reply.body, 'tls origin saw /secure-path');
    const { ws, messages } = await openWs(`ws://127.0.0.1:${proxy.port}/sock`);
    await nextMessage(messages, (m) => m === 'hello from tls-origin', 'greeting');
    ws.send('over wss://');
    await nextMessage(messages, (m) => m === 'over wss://', 'echo');
    ws.close();
  } finally {
    for (const client of wss.clients) client.terminate();
    wss.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

// ---------------------------------------------------------------- affinity

test('--sticky cookie pins a client, ignores forged cookies and falls back when the pinned backend is down', async () => {
  const a = await namedOrigin('a');
  const b = await namedOrigin('b');
  const origins = new Map([['a', a], ['b', b]]);
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', a.url, '--to', b.url, '--sticky', 'cookie']);
    const base = `http://127.0.0.1:${proxy.port}`;

    const first = await get(`${base}/`);
    assert.equal(first.status, 200);
    const cookie = cookieOf(first);
    assert.ok(cookie, 'the first response sets the affinity cookie');
    assert.match(cookie.line, /;\s*HttpOnly/i);
    assert.ok(cookie.value.length > 0);
    const pinned = first.headers['x-origin'] as string;
    const other = pinned === 'a' ? 'b' : 'a';

    for (let i = 0; i < 10; i++) {
      const reply = await get(`${base}/again${i}`, { Cookie: `${cookie.name}=${cookie.value}` });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-origin'], pinned, `request ${i} with the cookie stays on ${pinned}`);
    }

    const last = cookie.value.at(-1) === 'A' ? 'B' : 'A';
    for (const forged of ['forged-value', `${cookie.value.slice(0, -1)}${last}`]) {
      const reply = await get(`${base}/forged`, { Cookie: `${cookie.name}=${forged}` });
      assert.equal(reply.status, 200);
      const renewed = cookieOf(reply);
      assert.ok(renewed, `forged cookie ${forged}: re-pinned with a new Set-Cookie`);
      assert.equal(renewed.name, cookie.name);
      assert.notEqual(renewed.value, forged);
      assert.match(renewed.line, /;\s*HttpOnly/i);
    }

    await origins.get(pinned)!.close();
    await sleep(100);
    const fallback = await get(`${base}/after-failure`, { Cookie: `${cookie.name}=${cookie.value}` });
    assert.equal(fallback.status, 200, `falls back without an error: ${fallback.body}`);
    assert.equal(fallback.headers['x-origin'], other);
    const repinned = cookieOf(fallback);
    assert.ok(repinned, 'the fallback response carries a new cookie');
    assert.equal(repinned.name, cookie.name);
    assert.notEqual(repinned.value, cookie.value);
    for (let i = 0; i < 5; i++) {
      const reply = await get(`${base}/repinned${i}`, { Cookie: `${repinned.name}=${repinned.value}` });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-origin'], other);
    }
  } finally {
    await a.close();
    await b.close();
  }
});

test('SWITCHYARD_SECRET: a cookie from one proxy process is honored by another', async () => {
  const a = await namedOrigin('a');
  const b = await namedOrigin('b');
  try {
    const args = ['--listen', '127.0.0.1:0', '--to', a.url, '--to', b.url, '--sticky', 'cookie'];
    const secret = { SWITCHYARD_SECRET: 'shared-test-secret-0123456789' };
    const one = await startCli(args, secret);
    const two = await startCli(args, secret);
    const first = await get(`http://127.0.0.1:${one.port}/`);
    const cookie = cookieOf(first);
    assert.ok(cookie, 'proxy one sets the cookie');
    const pinned = first.headers['x-origin'];
    for (let i = 0; i < 10; i++) {
      const reply = await get(`http://127.0.0.1:${two.port}/on-two-${i}`, { Cookie: `${cookie.name}=${cookie.value}` });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-origin'], pinned, `proxy two honors proxy one's cookie (request ${i})`);
    }
    // Control: a process with another secret does not accept that cookie.
    const three = await startCli(args, { SWITCHYARD_SECRET: 'another-secret-9876543210' });
    const reply = await get(`http://127.0.0.1:${three.port}/on-three`, { Cookie: `${cookie.name}=${cookie.value}` });
    assert.equal(reply.status, 200);
    assert.ok(cookieOf(reply), 'a different secret re-pins the client');
  } finally {
    await a.close();
    await b.close();
  }
});

test('--sticky ip keeps 127.0.0.1 on one backend and falls back when it is down', async () => {
  const a = await namedOrigin('a');
  const b = await namedOrigin('b');
  const origins = new Map([['a', a], ['b', b]]);
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', a.url, '--to', b.url, '--sticky', 'ip']);
    const seen: (string | undefined)[] = [];
    for (let i = 0; i < 20; i++) {
      const reply = await get(`http://127.0.0.1:${proxy.port}/ip${i}`);
      assert.equal(reply.status, 200);
      seen.push(reply.headers['x-origin'] as string | undefined);
    }
    const pinned = seen[0] as string;
    assert.deepEqual(seen, Array(20).fill(pinned), 'all 20 requests hit one backend');
    await origins.get(pinned)!.close();
    await sleep(100);
    for (let i = 0; i < 5; i++) {
      const reply = await get(`http://127.0.0.1:${proxy.port}/down${i}`);
      assert.equal(reply.status, 200, `falls back without an error: ${reply.body}`);
      assert.equal(reply.headers['x-origin'], pinned === 'a' ? 'b' : 'a');
    }
  } finally {
    await a.close();
    await b.close();
  }
});

// ---------------------------------------------------------------- TLS, workers, timeouts

test('--tls-cert/--tls-key: HTTPS and wss:// through the proxy, origin sees X-Forwarded-Proto: https', async () => {
  const origin = await namedOrigin('behind-tls');
  const agent = new Agent({ connect: { ca: cert } });
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', origin.url, '--tls-cert', certFile, '--tls-key', keyFile]);
    assert.equal(proxy.scheme, 'https', proxy.startLine);
    const res = await undiciRequest(`https://127.0.0.1:${proxy.port}/over-tls`, { dispatcher: agent, headersTimeout: 5_000, bodyTimeout: 5_000 });
    const text = await res.body.text();
    assert.equal(res.statusCode, 200);
    const seen = JSON.parse(text) as { url: string; headers: Record<string, string> };
    assert.equal(seen.url, '/over-tls');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');

    const { ws, messages } = await openWs(`wss://127.0.0.1:${proxy.port}/secure-ws`, { ca: cert });
    await nextMessage(messages, (m) => m === 'hello from behind-tls', 'greeting');
    ws.send('over wss');
    await nextMessage(messages, (m) => m === 'over wss', 'echo');
    ws.close();
    assert.equal(origin.handshakes[0]?.headers['x-forwarded-proto'], 'https');

    // Plain HTTP on the TLS port is not served as HTTP.
    const plain = await get(`http://127.0.0.1:${proxy.port}/`).then((r) => r.status, () => 'failed');
    assert.notEqual(plain, 200);
  } finally {
    await agent.close();
    await origin.close();
  }
});

test('--workers 2: two worker processes serve HTTP and WebSocket; SIGTERM ends them all with exit 0', async () => {
  const origin = await namedOrigin('multi');
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', origin.url, '--workers', '2'], {}, 20_000);
    const workers = childPids(proxy.pid);
    for (const pid of workers) strayPids.add(pid);
    assert.equal(workers.length, 2, `two worker processes, found ${JSON.stringify(workers)}`);
    for (const pid of workers) {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      assert.match(cmdline, /node/, `worker ${pid} is node`);
    }

    for (let i = 0; i < 10; i++) {
      const reply = await get(`http://127.0.0.1:${proxy.port}/w${i}`);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-origin'], 'multi');
    }
    const { ws, messages, closed } = await openWs(`ws://127.0.0.1:${proxy.port}/w`);
    await nextMessage(messages, (m) => m === 'hello from multi', 'greeting');
    ws.send('through a worker');
    await nextMessage(messages, (m) => m === 'through a worker', 'echo');
    ws.close();
    await withTimeout(closed, 3_000, 'tunnel to close');

    process.kill(proxy.pid, 'SIGTERM');
    const { code, signal } = await waitExit(proxy, 10_000);
    assert.equal(signal, null);
    assert.equal(code, 0);
    await waitFor(() => workers.every((pid) => !alive(pid)), 3_000, 'workers to exit');
  } finally {
    await origin.close();
  }
});

test('--idle-timeout 300ms closes a tunnel with no traffic after about 300 ms', async () => {
  const origin = await namedOrigin('idle');
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', origin.url, '--idle-timeout', '300ms']);
    const { ws, messages, closed } = await openWs(`ws://127.0.0.1:${proxy.port}/idle`);
    await nextMessage(messages, (m) => m === 'hello from idle', 'greeting');
    const quietSince = Date.now();
    await withTimeout(closed, 3_000, 'the idle tunnel to be closed');
    const elapsed = Date.now() - quietSince;
    assert.ok(elapsed >= 250, `closed after ${elapsed} ms, not before the idle timeout`);
    assert.ok(elapsed < 1_000, `closed after ${elapsed} ms, soon after the idle timeout`);
    assert.equal(ws.readyState, WebSocket.CLOSED);
    await waitFor(() => origin.sockets.size === 0, 2_000, 'the origin side of the tunnel to close');
  } finally {
    await origin.close();
  }
});

// ---------------------------------------------------------------- shutdown

/** Origin: /slow answers 200 after 500 ms, WebSockets echo. */
function slowOrigin(): Promise<Origin> {
  return startOrigin({
    name: 'slow',
    handler: (req, res) => {
      const delay = req.url === '/slow' ? 500 : 0;
      setTimeout(() => {
        res.writeHead(200, { 'Content-Type': 'text/plain', 'X-Origin': 'slow' });
        res.end(`done ${req.url}`);
      }, delay);
    },
  });
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`${signal}: stops accepting, finishes an in-flight request, closes a tunnel with 1001, exits 0 when done`, async () => {
    const origin = await slowOrigin();
    try {
      const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', origin.url]);
      const { ws, messages, closed } = await openWs(`ws://127.0.0.1:${proxy.port}/drain`);
      ws.send('before');
      await nextMessage(messages, (m) => m === 'before', 'echo before the signal');

      const slow = get(`http://127.0.0.1:${proxy.port}/slow`);
      await waitFor(() => origin.requests.some((r) => r.url === '/slow'), 3_000, 'the slow request to reach the origin');
      process.kill(proxy.pid, signal);
      const signalledAt = Date.now();

      // New connections are refused soon after.
      let state = await tryConnect(proxy.port);
      while (state !== 'refused' && Date.now() - signalledAt < 1_000) {
        await sleep(20);
        state = await tryConnect(proxy.port);
      }
      assert.equal(state, 'refused', 'new connections are refused within 1 s of the signal');

      // The tunnel is told to go with a real close frame: 1001 Going Away.
      assert.equal(await withTimeout(closed, 3_000, 'tunnel close'), 1001);
      await waitFor(() => origin.sockets.size === 0, 2_000, 'the backend side of the tunnel to close');

      const reply = await slow;
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'done /slow');
      const { code } = await waitExit(proxy, 3_000);
      assert.equal(code, 0);
    } finally {
      await origin.close();
    }
  });
}

test('--drain-timeout 500ms: a client and a backend that never answer the close frame are cut, and the process exits 0 after about 0.5 s', async () => {
  // A backend that accepts the handshake by hand, then reads and never answers.
  const held = new Set<net.Socket>();
  const origin = await startOrigin({
    onUpgrade: (req, socket) => {
      held.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => held.delete(socket));
      // It does close its end once the proxy closed (an upgraded socket is half-open otherwise).
      socket.on('end', () => socket.end());
      socket.resume();
      acceptByHand(req, socket);
    },
  });
  try {
    const proxy = await startCli(['--listen', '127.0.0.1:0', '--to', origin.url, '--drain-timeout', '500ms']);
    // A raw client: it reads the proxy's close frame but never answers it.
    const socket = net.connect(proxy.port, '127.0.0.1');
    socket.on('error', () => undefined);
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => { received = Buffer.concat([received, chunk]); });
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.write(`GET /held HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    await waitFor(() => received.includes('\r\n\r\n'), 3_000, 'the 101');
    assert.match(received.toString('latin1'), /^HTTP\/1\.1 101/);
    const headEnd = received.indexOf('\r\n\r\n') + 4;
    process.kill(proxy.pid, 'SIGTERM');
    const signalledAt = Date.now();
    await waitFor(() => received.length >= headEnd + 4, 2_000, 'the close frame');
    const frame = received.subarray(headEnd);
    assert.equal(frame[0], 0x88, 'a close frame with FIN');
    assert.equal((frame[1] ?? 0) & 0x80, 0, 'unmasked, as a server sends it');
    assert.equal(frame.readUInt16BE(2), 1001);
    const { code, signal } = await waitExit(proxy, 5_000);
    const elapsed = (proxy.exitedAt ?? Date.now()) - signalledAt;
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.ok(elapsed >= 400, `exited after ${elapsed} ms: the drain period was given`);
    assert.ok(elapsed < 2_000, `exited after ${elapsed} ms: the drain timeout was enforced`);
    await withTimeout(ended, 2_000, 'the client connection to be cut');
    await waitFor(() => held.size === 0, 2_000, 'the origin side of the tunnel to close');
  } finally {
    await origin.close();
  }
});
