/**
 * Reload: SIGHUP (and --watch) swap the config atomically. New requests use the
 * new routes; open connections, in-flight requests and tunnels are untouched; a
 * new config that fails validation is rejected with its errors logged and the
 * old one keeps serving. In-process (Switchyard.reload) and through the CLI
 * (`switchyard run -c FILE`, with --watch and --workers), with real origins and
 * clients on 127.0.0.1.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import type { SwitchyardConfig } from '../../src/config/model.js';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { sleep, waitFor } from '../helpers/raw.js';
import { alive, childPids, cleanupsAfterEach, withTimeout } from '../helpers/cli.js';

// dist/test/integration/reload.test.js -> the repository root
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'switchyard.js');
const START_LINE = /^switchyard listening on http:\/\/127\.0\.0\.1:(\d+)\b.*$/m;
const SECRET = randomBytes(24).toString('hex');

// ---------------------------------------------------------------- cleanup

/** Everything a test started, undone in reverse order after it (pass or fail). */
const cleanups = cleanupsAfterEach();

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-reload-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------- origins

/** Answers HTTP with {origin, url} JSON and X-Origin; echoes WebSocket messages as "NAME:message". */
async function taggedOrigin(name: string, hold?: { url: string; until: Promise<void> }): Promise<Origin> {
  const origin = await startOrigin({
    name,
    handler: (req: IncomingMessage, res: ServerResponse) => {
      const answer = (): void => {
        res.writeHead(200, { 'Content-Type': 'application/json', 'X-Origin': name });
        res.end(JSON.stringify({ origin: name, url: req.url }));
      };
      if (hold && req.url === hold.url) void hold.until.then(answer);
      else answer();
    },
    onWebSocket: (ws) => ws.on('message', (data) => ws.send(`${name}:${data.toString()}`)),
  });
  cleanups.push(() => origin.close());
  return origin;
}

function serverConnections(origin: Origin): Promise<number> {
  return new Promise((resolve, reject) => origin.server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
}

// ---------------------------------------------------------------- clients

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  reusedSocket: boolean;
  socket: Socket;
}

/** One GET; a fresh connection unless an agent is given. */
function get(url: string, agent: http.Agent | false = false, ms = 5_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, reusedSocket: req.reusedSocket, socket: req.socket as Socket }));
      res.on('error', reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error(`GET ${url}: no answer within ${ms} ms`)));
    req.on('error', reject);
  });
}

/** Which origin answered a proxied GET (from its JSON body). */
async function originOf(url: string, agent: http.Agent | false = false): Promise<string> {
  const reply = await get(url, agent);
  assert.equal(reply.status, 200, `GET ${url}: ${reply.status} ${reply.body}`);
  return (JSON.parse(reply.body) as { origin: string }).origin;
}

interface Tunnel {
  readonly ws: WebSocket;
  /** Resolvers of round trips waiting for their answer, in order. */
  readonly waiting: ((text: string) => void)[];
  closed: boolean;
}

async function openTunnel(url: string, ms = 5_000): Promise<Tunnel> {
  const ws = new WebSocket(url, { handshakeTimeout: ms, perMessageDeflate: false });
  const tunnel: Tunnel = { ws, waiting: [], closed: false };
  ws.on('message', (data) => tunnel.waiting.shift()?.(data.toString()));
  ws.on('close', () => { tunnel.closed = true; });
  ws.on('error', () => undefined);
  cleanups.push(() => ws.terminate());
  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
  }), ms, `WebSocket ${url} to open`);
  return tunnel;
}

async function openTunnels(url: string, count: number): Promise<Tunnel[]> {
  const tunnels: Tunnel[] = [];
  // In batches, so the handshakes do not all land in the same instant.
  for (let i = 0; i < count; i += 40) {
    tunnels.push(...await Promise.all(Array.from({ length: Math.min(40, count - i) }, () => openTunnel(url))));
  }
  return tunnels;
}

/** Sends one message and resolves with the next message the tunnel receives. */
function roundTrip(tunnel: Tunnel, text: string, ms = 5_000): Promise<string> {
  return withTimeout(new Promise<string>((resolve, reject) => {
    if (tunnel.ws.readyState !== WebSocket.OPEN) {
      reject(new Error(`tunnel not open (readyState ${tunnel.ws.readyState}) to send ${text}`));
      return;
    }
    tunnel.waiting.push(resolve);
    tunnel.ws.send(text);
  }), ms, `the answer to ${text}`);
}

/** Every tunnel sends a unique message; resolves with the answers, in tunnel order. */
function echoAll(tunnels: readonly Tunnel[], label: string): Promise<string[]> {
  return Promise.all(tunnels.map((tunnel, i) => roundTrip(tunnel, `${label}-${i}`)));
}

function expectedEchoes(tunnels: readonly Tunnel[], label: string, origin: string): string[] {
  return tunnels.map((_tunnel, i) => `${origin}:${label}-${i}`);
}

// ---------------------------------------------------------------- configs

interface Version {
  /** Body of GET /version (a `respond` route). */
  readonly version: string;
  /** Origin URL that /chat (HTTP and WebSocket) and every other path go to. */
  readonly to: string;
  readonly workers?: number;
}

/** A small config file: /version answered locally, /chat proxied through a named upstream, the rest inline. */
function configText({ version, to, workers }: Version): string {
  return `# reload test config, version ${version}
listeners:
  - address: 127.0.0.1:0
timeouts:
  drain: 1s
upstreams:
  chat-${version}:
    servers: [${to}]
sites:
  - name: main
    routes:
      - name: version
        match: { exact: /version }
        respond: { body: ${version} }
      - name: chat
        match: { prefix: /chat }
        to: chat-${version}
      - name: rest
        to: ${to}
${workers ? `workers: ${workers}\n` : ''}`;
}

function loadText(text: string): SwitchyardConfig {
  return loadConfigText(text, 'reload-test.yaml', { env: {}, defaultSecret: SECRET }).config;
}

async function startInProcess(text: string): Promise<{ proxy: Switchyard; port: number }> {
  const proxy = await Switchyard.start(loadText(text), silentLogger());
  cleanups.push(() => proxy.shutdown(0));
  return { proxy, port: proxy.addresses[0]!.port };
}

// ---------------------------------------------------------------- CLI processes

interface Cli {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly port: number;
  stdout: string;
  stderr: string;
  exitedAt: number | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.SWITCHYARD_SECRET;
  delete env.SWITCHYARD_LOG_LEVEL;
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  return env;
}

function killPid(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Starts `switchyard run -c FILE [...extra]` and waits for its start line. */
async function startRun(file: string, extra: readonly string[] = [], ms = 15_000): Promise<Cli> {
  const child = spawn(process.execPath, [BIN, 'run', '-c', file, ...extra], { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  assert.ok(child.pid, 'the CLI process started');
  const pid = child.pid;
  const cli = {
    child, pid, port: 0, stdout: '', stderr: '', exitedAt: undefined as number | undefined,
    exited: new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.on('exit', (code, signal) => {
        cli.exitedAt = Date.now();
        resolve({ code, signal });
      });
    }),
  };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => { cli.stdout += text; });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => { cli.stderr += text; });
  // Workers (if any) are listed before the primary is killed, and killed after it.
  let workers: number[] = [];
  cleanups.push(async () => {
    workers = [...new Set([...workers, ...childPids(pid)])];
    if (cli.exitedAt === undefined) {
      killPid(pid, 'SIGTERM');
      await withTimeout(cli.exited, 5_000, `process ${pid} to exit`).catch(() => {
        killPid(pid);
        return withTimeout(cli.exited, 5_000, `process ${pid} to die`);
      });
    }
    for (const worker of workers) if (alive(worker)) killPid(worker);
  });
  const deadline = Date.now() + ms;
  let match: RegExpExecArray | null;
  while (!(match = START_LINE.exec(cli.stdout))) {
    if (cli.exitedAt !== undefined) throw new Error(`switchyard exited before its start line; stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
    if (Date.now() > deadline) throw new Error(`no start line within ${ms} ms; stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
    await sleep(10);
  }
  workers = childPids(pid);
  return Object.assign(cli, { port: Number(match[1]) });
}

interface LogEntry {
  level: number;
  pid: number;
  msg: string;
  file?: string;
  issues?: string[];
  [key: string]: unknown;
}

/** The JSON log lines the process wrote on stderr so far. */
function logEntries(cli: Cli): LogEntry[] {
  const entries: LogEntry[] = [];
  for (const line of cli.stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      entries.push(JSON.parse(line) as LogEntry);
    } catch {
      // a line still being written
    }
  }
  return entries;
}

function countLogs(cli: Cli, pattern: RegExp): number {
  return logEntries(cli).filter((entry) => pattern.test(entry.msg)).length;
}

/** Waits until `count` log lines matching `pattern` have appeared in total. */
async function waitForLogs(cli: Cli, pattern: RegExp, count: number, ms = 5_000): Promise<LogEntry[]> {
  await waitFor(() => countLogs(cli, pattern) >= count, ms, `${count} log line(s) matching ${pattern} (stderr so far: ${JSON.stringify(cli.stderr)})`);
  return logEntries(cli).filter((entry) => pattern.test(entry.msg));
}

/** Rewrites the file and sends SIGHUP; resolves once the reload was logged (accepted or rejected). */
async function rewriteAndHup(cli: Cli, file: string, text: string, outcome: RegExp, before: number, perProcess = 1): Promise<LogEntry[]> {
  writeFileSync(file, text);
  process.kill(cli.pid, 'SIGHUP');
  const entries = await waitForLogs(cli, outcome, before + perProcess);
  return entries.slice(before);
}

const RELOADED = /^config reloaded/;
const REJECTED = /reload rejected/;

/** Polls `check` every 20 ms; resolves with the milliseconds it took to turn true. */
async function timeUntil(check: () => Promise<boolean>, ms: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
  return Date.now() - started;
}

// ================================================================ in-process

test('in-process reload under 120 open tunnels: old tunnels keep echoing through origin A; new tunnels and requests go to B', { timeout: 30_000 }, async () => {
  let release: () => void = () => undefined;
  const held = new Promise<void>((resolve) => { release = resolve; });
  const a = await taggedOrigin('A', { url: '/chat/slow', until: held });
  const b = await taggedOrigin('B');
  const { proxy, port } = await startInProcess(configText({ version: 'v1', to: a.url }));
  const base = `http://127.0.0.1:${port}`;

  // Before the reload: a keep-alive connection, an in-flight request, 120 tunnels, all on A.
  const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
  cleanups.push(() => keepAlive.destroy());
  const first = await get(`${base}/chat/keep-alive-1`, keepAlive);
  assert.equal(first.headers['x-origin'], 'A');
  const clientSocket = first.socket;
  const inFlight = get(`${base}/chat/slow`);
  await waitFor(() => a.requests.some((request) => request.url === '/chat/slow'), 3_000, 'the slow request to reach A');
  const tunnels = await openTunnels(`ws://127.0.0.1:${port}/chat/live`, 120);
  assert.deepEqual(await echoAll(tunnels, 'before'), expectedEchoes(tunnels, 'before', 'A'));
  assert.equal(a.sockets.size, 120);
  assert.equal((await get(`${base}/version`)).body, 'v1');

  const runtimeBefore = proxy.runtime;
  proxy.reload(loadText(configText({ version: 'v2', to: b.url })));
  assert.notEqual(proxy.runtime, runtimeBefore, 'a new runtime serves new requests');
  assert.deepEqual([...proxy.runtime.pools.keys()].sort(), ['chat-v2', b.url], 'the old upstream chat-v1 is gone from the new runtime');

  // Every old tunnel still echoes, each its own message, still through A.
  assert.deepEqual(await echoAll(tunnels, 'after'), expectedEchoes(tunnels, 'after', 'A'));
  assert.equal(tunnels.filter((tunnel) => tunnel.closed).length, 0, 'no tunnel was closed by the reload');
  assert.equal(a.sockets.size, 120, 'origin A still holds all 120 tunnels');
  assert.equal(b.sockets.size, 0, 'no old tunnel moved to B');

  // The request in flight during the reload finishes from A.
  release();
  const slow = await inFlight;
  assert.equal(slow.status, 200);
  assert.equal(slow.headers['x-origin'], 'A', 'a request in flight keeps its route');

  // New tunnels and new requests use the new routes.
  const fresh = await openTunnels(`ws://127.0.0.1:${port}/chat/new`, 5);
  assert.deepEqual(await echoAll(fresh, 'fresh'), expectedEchoes(fresh, 'fresh', 'B'));
  assert.equal(b.sockets.size, 5);
  assert.equal(a.handshakes.length, 120, 'A accepted only the tunnels opened before the reload');
  assert.equal(await originOf(`${base}/chat/http-after`), 'B');
  assert.equal(await originOf(`${base}/elsewhere`), 'B');
  assert.equal((await get(`${base}/version`)).body, 'v2');

  // The keep-alive connection opened before the reload still works (same client
  // connection, not closed); its next request is a new request, so it is routed by v2.
  const again = await get(`${base}/chat/keep-alive-2`, keepAlive);
  assert.equal(again.status, 200);
  assert.equal(again.reusedSocket, true, 'the request went over the keep-alive connection opened before the reload');
  assert.equal(again.socket, clientSocket);
  assert.equal(again.headers['x-origin'], 'B');

  // And the old tunnels are still fine after all that traffic.
  assert.deepEqual(await echoAll(tunnels, 'later'), expectedEchoes(tunnels, 'later', 'A'));
  assert.equal(tunnels.filter((tunnel) => tunnel.closed).length, 0);
});

test('in-process reload keeps the pool objects of unchanged upstreams (and their keep-alive connections); a dropped pool closes once its last tunnel ends', { timeout: 30_000 }, async () => {
  const kept = await taggedOrigin('K');
  const dropped = await taggedOrigin('D');
  const inline = await taggedOrigin('I');
  const other = await taggedOrigin('O');
  const v1 = `listeners:
  - address: 127.0.0.1:0
upstreams:
  keep:
    servers: [${kept.url}]
  drop:
    servers: [${dropped.url}]
  change:
    servers: [${other.url}]
sites:
  - routes:
      - match: { prefix: /keep }
        to: keep
      - match: { prefix: /drop }
        to: drop
      - match: { prefix: /change }
        to: change
      - match: { prefix: /inline }
        to: ${inline.url}
`;
  // v2: "keep" and the inline upstream unchanged; "drop" gone (its path now on a new
  // upstream to the same server); "change" gets a different fail_timeout; routes reordered.
  const v2 = `listeners:
  - address: 127.0.0.1:0
upstreams:
  change:
    servers: [${other.url}]
    fail_timeout: 3s
  keep:
    servers: [${kept.url}]
  fresh:
    servers: [${dropped.url}]
sites:
  - routes:
      - match: { exact: /version }
        respond: { body: v2 }
      - match: { prefix: /inline }
        to: ${inline.url}
      - match: { prefix: /drop }
        to: fresh
      - match: { prefix: /change }
        to: change
      - match: { prefix: /keep }
        to: keep
`;
  const { proxy, port } = await startInProcess(v1);
  const base = `http://127.0.0.1:${port}`;
  for (const path of ['/keep/1', '/drop/1', '/change/1', '/inline/1', '/keep/2', '/inline/2']) await get(`${base}${path}`);
  const tunnel = await openTunnel(`ws://127.0.0.1:${port}/drop/tunnel`);
  assert.equal(await roundTrip(tunnel, 'before'), 'D:before');
  const before = new Map(proxy.runtime.pools);
  assert.deepEqual([...before.keys()].sort(), ['change', 'drop', 'keep', inline.url].sort());
  const keptConnections = kept.connectionCount;
  const inlineConnections = inline.connectionCount;
  assert.equal(keptConnections, 1, 'two requests to K over one upstream keep-alive connection');

  proxy.reload(loadText(v2));

  const after = proxy.runtime.pools;
  assert.equal(after.get('keep'), before.get('keep'), 'the unchanged upstream keeps its pool object');
  assert.equal(after.get(inline.url), before.get(inline.url), 'the unchanged inline upstream keeps its pool object');
  assert.notEqual(after.get('change'), undefined);
  assert.notEqual(after.get('change'), before.get('change'), 'a changed upstream gets a new pool');
  assert.equal(after.has('drop'), false);
  assert.notEqual(after.get('fresh'), before.get('drop'), 'a new upstream does not reuse a dropped pool by name');

  // The carried-over pools keep their keep-alive connections: no new upstream connection.
  for (let i = 0; i < 3; i++) {
    assert.equal(await originOf(`${base}/keep/after-${i}`), 'K');
    assert.equal(await originOf(`${base}/inline/after-${i}`), 'I');
  }
  assert.equal(kept.connectionCount, keptConnections, 'K saw no new connection after the reload');
  assert.equal(inline.connectionCount, inlineConnections, 'I saw no new connection after the reload');
  assert.equal((await get(`${base}/version`)).body, 'v2');

  // The tunnel through the dropped pool is untouched; once it ends, the dropped
  // pool closes and its idle upstream keep-alive connection to D goes away.
  assert.equal(await roundTrip(tunnel, 'after'), 'D:after');
  assert.equal(await serverConnections(dropped), 2, 'D holds the tunnel and the old pool\'s keep-alive connection');
  tunnel.ws.close();
  await waitFor(() => dropped.sockets.size === 0, 3_000, 'the tunnel to close at D');
  let open = await serverConnections(dropped);
  const deadline = Date.now() + 5_000;
  while (open > 0 && Date.now() < deadline) {
    await sleep(50);
    open = await serverConnections(dropped);
  }
  assert.equal(open, 0, 'the dropped pool was closed after its last tunnel ended');
  assert.equal(await originOf(`${base}/drop/after`), 'D', 'the path now goes through the new upstream');
});

// ================================================================ CLI: SIGHUP

test('run -c FILE + SIGHUP with 110 open tunnels: tunnels keep echoing through A; /version v1→v2 and new requests and tunnels go to B', { timeout: 45_000 }, async () => {
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 'v1', to: a.url }));
  const cli = await startRun(file);
  const base = `http://127.0.0.1:${cli.port}`;

  const tunnels = await openTunnels(`ws://127.0.0.1:${cli.port}/chat/live`, 110);
  assert.deepEqual(await echoAll(tunnels, 'before'), expectedEchoes(tunnels, 'before', 'A'));
  assert.equal((await get(`${base}/version`)).body, 'v1');
  assert.equal(await originOf(`${base}/chat/x`), 'A');

  const [reloaded] = await rewriteAndHup(cli, file, configText({ version: 'v2', to: b.url }), RELOADED, 0);
  assert.equal(reloaded?.pid, cli.pid);
  assert.equal(reloaded?.file, file);

  assert.deepEqual(await echoAll(tunnels, 'after'), expectedEchoes(tunnels, 'after', 'A'));
  assert.equal(tunnels.filter((tunnel) => tunnel.closed).length, 0, 'no tunnel was closed by the reload');
  assert.equal(a.sockets.size, 110);
  const version = await get(`${base}/version`);
  assert.equal(version.status, 200);
  assert.equal(version.body, 'v2');
  assert.equal(await originOf(`${base}/chat/x`), 'B');
  assert.equal(await originOf(`${base}/other`), 'B');
  const fresh = await openTunnel(`ws://127.0.0.1:${cli.port}/chat/new`);
  assert.equal(await roundTrip(fresh, 'fresh'), 'B:fresh');
  assert.equal(cli.exitedAt, undefined, 'SIGHUP did not end the process');
  assert.equal(countLogs(cli, REJECTED), 0);
});

test('SIGHUP with YAML errors (duplicate key, misclosed flow mapping): "reload rejected" on stderr with file:line:col, the old routes keep serving, tunnels untouched', { timeout: 30_000 }, async () => {
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 'v1', to: a.url }));
  const cli = await startRun(file);
  const base = `http://127.0.0.1:${cli.port}`;
  const tunnels = await openTunnels(`ws://127.0.0.1:${cli.port}/chat/live`, 100);
  assert.deepEqual(await echoAll(tunnels, 'before'), expectedEchoes(tunnels, 'before', 'A'));

  const good = configText({ version: 'v2', to: b.url }).split('\n');
  const at = good.findIndex((text) => text.includes('respond: { body: v2 }'));
  const column = (good[at] as string).indexOf('respond') + 1;

  // 1. A duplicated key: an error at a known place (the second "respond").
  const duplicated = [...good];
  duplicated.splice(at + 1, 0, good[at] as string);
  const [duplicate] = await rewriteAndHup(cli, file, duplicated.join('\n'), REJECTED, 0);
  assert.ok(duplicate, 'a "reload rejected" line');
  assert.ok(duplicate.level >= 50, `logged as an error (level ${duplicate.level})`);
  assert.equal(duplicate.file, file);
  assert.ok(Array.isArray(duplicate.issues) && duplicate.issues.length > 0, `the issues are listed: ${JSON.stringify(duplicate)}`);
  assert.ok(duplicate.issues.some((issue) => issue.startsWith(`${file}:${at + 2}:${column}: `) && /duplicate|unique/i.test(issue) && issue.includes('respond')),
    `an issue at ${file}:${at + 2}:${column} names the duplicate key "respond": ${JSON.stringify(duplicate.issues)}`);

  // 2. A syntax error: a flow mapping closed with "]", reported at the "]".
  const misclosed = [...good];
  const matchAt = good.findIndex((text) => text.includes('match: { exact: /version }'));
  misclosed[matchAt] = (good[matchAt] as string).replace('/version }', '/version ]');
  const bracket = `${file}:${matchAt + 1}:${(misclosed[matchAt] as string).indexOf(']') + 1}`;
  const [syntax] = await rewriteAndHup(cli, file, misclosed.join('\n'), REJECTED, 1);
  assert.ok(syntax, 'a second "reload rejected" line');
  assert.ok(syntax.issues?.some((issue) => issue.startsWith(`${bracket}: YAML: `) && /flow map/i.test(issue)),
    `an issue at ${bracket} names the unclosed flow mapping: ${JSON.stringify(syntax.issues)}`);
  assert.equal(countLogs(cli, RELOADED), 0);

  // The old config keeps serving; the tunnels are untouched.
  assert.equal((await get(`${base}/version`)).body, 'v1');
  assert.equal(await originOf(`${base}/chat/x`), 'A');
  assert.equal(await roundTrip(await openTunnel(`ws://127.0.0.1:${cli.port}/chat/new`), 'new'), 'A:new');
  assert.deepEqual(await echoAll(tunnels, 'after'), expectedEchoes(tunnels, 'after', 'A'));
  assert.equal(tunnels.filter((tunnel) => tunnel.closed).length, 0);
  assert.equal(b.requests.length + b.handshakes.length, 0, 'nothing reached B');

  // A fixed file is then accepted on the next SIGHUP.
  await rewriteAndHup(cli, file, configText({ version: 'v2', to: b.url }), RELOADED, 0);
  assert.equal((await get(`${base}/version`)).body, 'v2');
  assert.equal(await originOf(`${base}/chat/x`), 'B');
  assert.deepEqual(await echoAll(tunnels, 'fixed'), expectedEchoes(tunnels, 'fixed', 'A'));
});

test('SIGHUP with an unresolved YAML alias: "reload rejected" gives file:line:col of the alias; the old routes keep serving', { timeout: 30_000 }, async () => {
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 'v1', to: a.url }));
  const cli = await startRun(file);
  const base = `http://127.0.0.1:${cli.port}`;
  const tunnels = await openTunnels(`ws://127.0.0.1:${cli.port}/chat/live`, 20);

  // "*version_body" refers to an anchor that was never set.
  const lines = configText({ version: 'v2', to: b.url }).split('\n');
  const at = lines.findIndex((text) => text.includes('respond: { body: v2 }'));
  lines[at] = (lines[at] as string).replace('body: v2', 'body: *version_body');
  const place = `${file}:${at + 1}:${(lines[at] as string).indexOf('*') + 1}`;

  const [rejected] = await rewriteAndHup(cli, file, lines.join('\n'), REJECTED, 0);
  assert.ok(rejected, 'a "reload rejected" line');
  assert.ok(rejected.issues?.some((issue) => issue.startsWith(`${place}: `) && issue.includes('version_body')),
    `an issue at ${place} names the alias: ${JSON.stringify(rejected.issues)}`);

  assert.equal((await get(`${base}/version`)).body, 'v1');
  assert.equal(await originOf(`${base}/chat/x`), 'A');
  assert.deepEqual(await echoAll(tunnels, 'after'), expectedEchoes(tunnels, 'after', 'A'));
  assert.equal(countLogs(cli, RELOADED), 0);
});

test('SIGHUP with a shadowed route: "reload rejected" names the unreachable route with file:line:col; the old routes keep serving', { timeout: 30_000 }, async () => {
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 'v1', to: a.url }));
  const cli = await startRun(file);
  const base = `http://127.0.0.1:${cli.port}`;
  const tunnels = await openTunnels(`ws://127.0.0.1:${cli.port}/chat/live`, 20);

  // The catch-all moved above /chat: /chat (routes[2]) can never match.
  const shadowed = `listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - match: { exact: /version }
        respond: { body: v2 }
      - to: ${b.url}
      - match: { prefix: /chat }
        to: ${b.url}
`;
  const lines = shadowed.split('\n');
  const index = lines.findIndex((text) => text.includes('prefix: /chat'));
  const place = `${file}:${index + 1}:${(lines[index] as string).indexOf('match') + 1}`;

  const [rejected] = await rewriteAndHup(cli, file, shadowed, REJECTED, 0);
  assert.ok(rejected, 'a "reload rejected" line');
  assert.ok(rejected.level >= 50);
  const issue = rejected.issues?.find((text) => text.includes('unreachable'));
  assert.ok(issue, `an issue names the unreachable route: ${JSON.stringify(rejected.issues)}`);
  assert.ok(issue.startsWith(`${place}: sites[0].routes[2]: `), `the issue gives ${place} and the route's path: ${issue}`);
  assert.match(issue, /prefix \/chat/);

  assert.equal((await get(`${base}/version`)).body, 'v1');
  assert.equal(await originOf(`${base}/chat/x`), 'A');
  assert.equal(await originOf(`${base}/other`), 'A');
  assert.deepEqual(await echoAll(tunnels, 'after'), expectedEchoes(tunnels, 'after', 'A'));
  assert.equal(tunnels.filter((tunnel) => tunnel.closed).length, 0);
  assert.equal(b.requests.length + b.handshakes.length, 0, 'nothing reached B');
  assert.equal(countLogs(cli, RELOADED), 0);
});

// ================================================================ CLI: --watch

test('run -c FILE --watch: rewriting the file (in place, then by rename) switches routes within 1 s; an invalid save is rejected', { timeout: 30_000 }, async (t) => {
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 'v1', to: a.url }));
  const cli = await startRun(file, ['--watch']);
  const base = `http://127.0.0.1:${cli.port}`;
  const tunnels = await openTunnels(`ws://127.0.0.1:${cli.port}/chat/live`, 20);
  assert.equal((await get(`${base}/version`)).body, 'v1');
  await sleep(300); // let the watcher settle

  const versionIs = (expected: string) => async (): Promise<boolean> => (await get(`${base}/version`)).body === expected;

  // An in-place write.
  writeFileSync(file, configText({ version: 'v2', to: b.url }));
  const inPlaceMs = await timeUntil(versionIs('v2'), 3_000, '/version to answer v2');
  assert.ok(inPlaceMs <= 1_000, `in-place write applied after ${inPlaceMs} ms`);
  assert.equal(await originOf(`${base}/chat/x`), 'B');
  await waitForLogs(cli, RELOADED, 1);

  // An editor-style save: write a temporary file, rename it over the config.
  const temp = join(dir, '.switchyard.yaml.swp');
  writeFileSync(temp, configText({ version: 'v3', to: a.url }));
  renameSync(temp, file);
  const renameMs = await timeUntil(versionIs('v3'), 3_000, '/version to answer v3');
  assert.ok(renameMs <= 1_000, `rename-over save applied after ${renameMs} ms`);
  t.diagnostic(`applied ${inPlaceMs} ms after an in-place write, ${renameMs} ms after a rename-over save`);
  assert.equal(await originOf(`${base}/chat/x`), 'A');

  // An invalid save is rejected without a signal; v3 keeps serving.
  const rejectedBefore = countLogs(cli, REJECTED);
  writeFileSync(file, `${configText({ version: 'v4', to: b.url })}bogus_key: 1\n`);
  const [rejected] = (await waitForLogs(cli, REJECTED, rejectedBefore + 1, 3_000)).slice(rejectedBefore);
  assert.ok(rejected?.issues?.some((issue) => issue.startsWith(`${file}:`) && issue.includes('bogus_key')), JSON.stringify(rejected));
  assert.equal((await get(`${base}/version`)).body, 'v3');

  assert.deepEqual(await echoAll(tunnels, 'after'), expectedEchoes(tunnels, 'after', 'A'));
  assert.equal(tunnels.filter((tunnel) => tunnel.closed).length, 0);
  assert.equal(cli.exitedAt, undefined);
});

// ================================================================ CLI: --workers

test('workers: 2 + SIGHUP: both workers reload (20 new connections all see v2), same processes, tunnels untouched', { timeout: 45_000 }, async () => {
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 'v1', to: a.url, workers: 2 }));
  const cli = await startRun(file, [], 20_000);
  const base = `http://127.0.0.1:${cli.port}`;
  const workers = childPids(cli.pid);
  assert.equal(workers.length, 2, `two worker processes: ${JSON.stringify(workers)}`);

  const before = await Promise.all(Array.from({ length: 20 }, () => get(`${base}/version`)));
  assert.deepEqual(before.map((reply) => reply.body), Array(20).fill('v1'));
  const tunnels = await openTunnels(`ws://127.0.0.1:${cli.port}/chat/live`, 20);
  assert.deepEqual(await echoAll(tunnels, 'before'), expectedEchoes(tunnels, 'before', 'A'));

  const reloaded = await rewriteAndHup(cli, file, configText({ version: 'v2', to: b.url, workers: 2 }), RELOADED, 0, 2);
  assert.deepEqual(reloaded.map((entry) => entry.pid).sort((x, y) => x - y), workers, 'each worker logged its reload once');

  // 20 requests on new connections: the cluster spreads them over both workers.
  const replies: string[] = [];
  for (let i = 0; i < 20; i++) replies.push((await get(`${base}/version`)).body);
  assert.deepEqual(replies, Array(20).fill('v2'));
  const origins: string[] = [];
  for (let i = 0; i < 20; i++) origins.push(await originOf(`${base}/chat/${i}`));
  assert.deepEqual(origins, Array(20).fill('B'));

  assert.deepEqual(await echoAll(tunnels, 'after'), expectedEchoes(tunnels, 'after', 'A'));
  assert.equal(tunnels.filter((tunnel) => tunnel.closed).length, 0);

  // No restart: the same primary and the same two workers, nothing died.
  assert.equal(cli.exitedAt, undefined);
  assert.deepEqual(childPids(cli.pid), workers, 'the same worker processes');
  assert.ok(workers.every(alive));
  assert.equal(countLogs(cli, /worker died/), 0);
  assert.equal(countLogs(cli, REJECTED), 0);
  assert.equal((cli.stdout.match(/switchyard listening on/g) ?? []).length, 1, 'one start line: nothing started again');
});

test('workers: 2 + --watch: the primary sees the change and every worker reloads, none restarts', { timeout: 45_000 }, async (t) => {
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 'v1', to: a.url, workers: 2 }));
  const cli = await startRun(file, ['--watch'], 20_000);
  const base = `http://127.0.0.1:${cli.port}`;
  const workers = childPids(cli.pid);
  assert.equal(workers.length, 2, `two worker processes: ${JSON.stringify(workers)}`);
  const tunnels = await openTunnels(`ws://127.0.0.1:${cli.port}/chat/live`, 10);
  await sleep(300); // let the watcher settle

  writeFileSync(file, configText({ version: 'v2', to: b.url, workers: 2 }));
  const reloaded = await waitForLogs(cli, RELOADED, 2, 3_000);
  assert.deepEqual(reloaded.map((entry) => entry.pid).sort((x, y) => x - y), workers, 'each worker reloaded once');
  const replies: string[] = [];
  for (let i = 0; i < 20; i++) replies.push((await get(`${base}/version`)).body);
  assert.deepEqual(replies, Array(20).fill('v2'));
  t.diagnostic(`stderr reload lines: ${reloaded.length}`);

  assert.deepEqual(await echoAll(tunnels, 'after'), expectedEchoes(tunnels, 'after', 'A'));
  assert.deepEqual(childPids(cli.pid), workers, 'the same worker processes');
  assert.equal(countLogs(cli, /worker died/), 0);
});
