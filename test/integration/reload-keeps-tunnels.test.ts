/**
 * docs/config.md "Reload": a config reload (SIGHUP, --watch, POST /api/reload)
 * touches no open connection or tunnel, also with `workers: N` (every worker
 * reloads; none restarts). Changing a route's upstream affects new requests
 * and tunnels only. And docs/config.md "workers": a worker that dies is
 * replaced; only its own tunnels are lost.
 *
 * Everything runs through the real CLI (`switchyard run -c FILE` with
 * `workers: 2` and an admin listener on 127.0.0.1:0, whose URL is read from
 * the primary's "admin listener ready" log line) against real `ws` echo
 * origins on 127.0.0.1. /api/tunnels ids are "PID:n" and its `client` is the
 * client's address:port, so each test-side WebSocket is attributed to the
 * worker process holding it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { WebSocket } from 'ws';
import type { TunnelSnapshot } from '../../src/admin/snapshot.js';
import { childPids, cleanupsAfterEach, type CliProcess, killPid, spawnSwitchyard, stopSwitchyards, withTimeout } from '../helpers/cli.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { sleep, waitFor } from '../helpers/raw.js';

// ---------------------------------------------------------------- file descriptors

/**
 * 500 tunnels cost this test process about 1000 descriptors (each tunnel is a
 * client socket here plus the origin's accepted socket, also here), and each
 * of the two workers about 500 (client side plus backend side of its half);
 * the workers inherit this process's limit. Node cannot raise RLIMIT_NOFILE,
 * so the soft limit is read from /proc and the tunnel count is lowered to what
 * fits (2 per tunnel plus 300 spare for the runner, origins, pipes and admin
 * requests) when it is below ~1300; the usual 1024 would allow 362.
 */
function openFileLimit(): number {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((text) => text.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? Infinity : Number(soft);
  } catch {
    return 1024;
  }
}
const FD_LIMIT = openFileLimit();
const TUNNELS = Math.max(40, Math.min(500, Math.floor((FD_LIMIT - 300) / 2)));
const BATCH = 50;

// ---------------------------------------------------------------- cleanup

/** Everything a test started, undone in reverse order after it (pass or fail). */
const cleanups = cleanupsAfterEach();

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-reload-tunnels-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// ---------------------------------------------------------------- processes

/** Alive and still running bin/switchyard.js (guards against a reused pid). */
function isOurWorker(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('switchyard.js');
  } catch {
    return false;
  }
}

interface Running extends CliProcess {
  readonly port: number;
  readonly adminUrl: string;
  /** Every worker pid seen as a child of this CLI process (killed at cleanup if still alive). */
  readonly workersSeen: Set<number>;
}

const START_LINE = /^switchyard listening on http:\/\/127\.0\.0\.1:(\d+) \(2 workers\)/m;

/** `switchyard run -c FILE [...extra]`; resolves once the start line and the admin line are out. */
async function startRun(file: string, extra: readonly string[] = [], ms = 15_000): Promise<Running> {
  const cli = spawnSwitchyard(['run', '-c', file, ...extra], {}, ['SWITCHYARD_LOG_LEVEL']);
  const workersSeen = new Set<number>();
  cleanups.push(async () => {
    for (const pid of childPids(cli.pid)) workersSeen.add(pid);
    await stopSwitchyards(); // SIGKILL to the primary, which this test spawned
    for (const pid of workersSeen) if (isOurWorker(pid)) killPid(pid);
    await waitFor(() => [...workersSeen].every((pid) => !isOurWorker(pid)), 5_000, 'the workers to exit').catch(() => undefined);
  });
  const state = (): string => `stdout ${JSON.stringify(cli.stdout.slice(-2_000))}, stderr ${JSON.stringify(cli.stderr.slice(-4_000))}`;
  const deadline = Date.now() + ms;
  let match: RegExpExecArray | null = null;
  let admin: string | undefined;
  while (!(match = START_LINE.exec(cli.stdout)) || !(admin = logEntries(cli).find((entry) => entry.msg === 'admin listener ready')?.admin as string | undefined)) {
    if (cli.exitedAt !== undefined) throw new Error(`exited before it was ready; ${state()}`);
    if (Date.now() > deadline) throw new Error(`not ready within ${ms} ms; ${state()}`);
    await sleep(20);
  }
  for (const pid of childPids(cli.pid)) workersSeen.add(pid);
  return Object.assign(cli, { port: Number(match[1]), adminUrl: admin.replace(/\/$/, ''), workersSeen });
}

interface LogEntry {
  pid: number;
  msg: string;
  [key: string]: unknown;
}

function logEntries(cli: CliProcess): LogEntry[] {
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

function logs(cli: CliProcess, msg: RegExp): LogEntry[] {
  return logEntries(cli).filter((entry) => msg.test(entry.msg));
}

const RELOADED = /^config reloaded$/;
const REJECTED = /reload rejected/;
const RESTART_ONLY = /apply after a restart/;
const WORKER_DIED = /^worker died/;

/** Waits for one "config reloaded" line from each worker after the first `before` ones; returns their pids, sorted. */
async function reloadedBy(cli: CliProcess, before: number, workers: readonly number[]): Promise<number[]> {
  await waitFor(() => logs(cli, RELOADED).length >= before + workers.length, 5_000,
    `${workers.length} more "config reloaded" lines (stderr: ${JSON.stringify(cli.stderr.slice(-3_000))})`);
  return logs(cli, RELOADED).slice(before).map((entry) => entry.pid).sort((x, y) => x - y);
}

// ---------------------------------------------------------------- origins

/** Echoes every WebSocket message as "NAME:message"; HTTP answers {origin, url}. */
async function taggedOrigin(name: string): Promise<Origin> {
  const origin = await startOrigin({
    name,
    handler: (req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Origin': name });
      res.end(JSON.stringify({ origin: name, url: req.url }));
    },
    onWebSocket: (ws) => ws.on('message', (data) => ws.send(`${name}:${data.toString()}`)),
  });
  cleanups.push(() => origin.close());
  return origin;
}

// ---------------------------------------------------------------- clients

interface Tunnel {
  readonly ws: WebSocket;
  /** The client socket's local port: /api/tunnels names it as `client`. */
  port: number;
  /** Resolvers of round trips waiting for their answer, in order. */
  readonly waiting: ((text: string) => void)[];
  closed: boolean;
}

function clientKey(tunnel: Tunnel): string {
  return `127.0.0.1:${tunnel.port}`;
}

async function openTunnel(url: string, ms = 5_000): Promise<Tunnel> {
  const ws = new WebSocket(url, { handshakeTimeout: ms, perMessageDeflate: false });
  const tunnel: Tunnel = { ws, port: 0, waiting: [], closed: false };
  ws.on('message', (data) => tunnel.waiting.shift()?.(data.toString()));
  ws.on('close', () => { tunnel.closed = true; });
  ws.on('error', () => undefined);
  ws.once('upgrade', (res) => { tunnel.port = res.socket.localPort ?? 0; });
  cleanups.push(() => ws.terminate());
  await withTimeout(new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake to ${url} answered ${res.statusCode}`)));
  }), ms, `WebSocket ${url} to open`);
  assert.ok(tunnel.port > 0, 'the client port is known');
  return tunnel;
}

/** Opens `count` tunnels, BATCH at a time, so the handshakes (and descriptors) stay bounded. */
async function openTunnels(url: string, count: number): Promise<Tunnel[]> {
  const tunnels: Tunnel[] = [];
  for (let i = 0; i < count; i += BATCH) {
    tunnels.push(...await Promise.all(Array.from({ length: Math.min(BATCH, count - i) }, (_x, j) => openTunnel(`${url}/${i + j}`))));
  }
  return tunnels;
}

/** Sends one message and resolves with the next message the tunnel receives. */
function roundTrip(tunnel: Tunnel, text: string, ms = 5_000): Promise<string> {
  return withTimeout(new Promise<string>((resolve, reject) => {
    if (tunnel.ws.readyState !== WebSocket.OPEN) {
      reject(new Error(`tunnel ${clientKey(tunnel)} not open (readyState ${tunnel.ws.readyState}) to send ${text}`));
      return;
    }
    tunnel.waiting.push(resolve);
    tunnel.ws.send(text);
  }), ms, `the answer to ${text} on ${clientKey(tunnel)}`);
}

/**
 * Every tunnel sends a unique message at once; asserts each answer is that
 * message echoed by `origin` (so it also tells which origin the tunnel is on).
 */
async function assertAllEcho(tunnels: readonly Tunnel[], label: string, origin: string): Promise<void> {
  const answers = await Promise.all(tunnels.map((tunnel, i) => roundTrip(tunnel, `${label}-${i}`).catch((err: Error) => `FAILED: ${err.message}`)));
  const wrong = answers.map((answer, i) => [i, answer] as const).filter(([i, answer]) => answer !== `${origin}:${label}-${i}`);
  assert.equal(wrong.length, 0, `${wrong.length} of ${tunnels.length} tunnels did not echo through ${origin} (${label}); first: ${JSON.stringify(wrong.slice(0, 5))}`);
}

function terminate(tunnels: readonly Tunnel[]): void {
  for (const tunnel of tunnels) tunnel.ws.terminate();
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on a fresh connection (so the cluster spreads them over the workers). */
function httpRequest(url: string, method = 'GET', ms = 5_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error(`${method} ${url}: no answer within ${ms} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** /api/tunnels keyed by client address:port. */
async function tunnelsByClient(adminUrl: string): Promise<Map<string, TunnelSnapshot>> {
  const reply = await httpRequest(`${adminUrl}/api/tunnels`);
  assert.equal(reply.status, 200, reply.body);
  const list = JSON.parse(reply.body) as TunnelSnapshot[];
  return new Map(list.map((tunnel) => [tunnel.client, tunnel]));
}

/** Polls /api/tunnels until every given tunnel is listed; returns the listing. */
async function listed(adminUrl: string, tunnels: readonly Tunnel[], ms = 5_000): Promise<Map<string, TunnelSnapshot>> {
  const deadline = Date.now() + ms;
  for (;;) {
    const byClient = await tunnelsByClient(adminUrl);
    const missing = tunnels.filter((tunnel) => !byClient.has(clientKey(tunnel)));
    if (missing.length === 0) return byClient;
    if (Date.now() > deadline) assert.fail(`${missing.length} of ${tunnels.length} tunnels missing from /api/tunnels (${byClient.size} listed), e.g. ${clientKey(missing[0]!)}`);
    await sleep(50);
  }
}

function pidOf(snapshot: TunnelSnapshot): number {
  return Number(snapshot.id.split(':')[0]);
}

/** Opens tunnels one at a time (the cluster's round robin then alternates workers); each must echo through `origin`. */
async function openSequential(url: string, count: number, origin: string, label: string): Promise<Tunnel[]> {
  const fresh: Tunnel[] = [];
  for (let i = 0; i < count; i++) fresh.push(await openTunnel(`${url}/${i}`));
  await assertAllEcho(fresh, label, origin);
  return fresh;
}

// ---------------------------------------------------------------- config

interface Version {
  readonly version: number;
  /** Origin of the named upstream `chat` (route /chat): its definition changes. */
  readonly chat: Origin;
  /** Which named upstream route /alt goes to: the route's `to` changes. */
  readonly alt: 'pool-a' | 'pool-b';
  readonly a: Origin;
  readonly b: Origin;
}

function configText({ version, chat, alt, a, b }: Version): string {
  return `# reload-keeps-tunnels, version ${version}
listeners:
  - address: 127.0.0.1:0
workers: 2
access_log: false
admin: { address: 127.0.0.1:0 }
timeouts: { drain: 1s }
upstreams:
  chat: { servers: [${chat.url}] }
  pool-a: { servers: [${a.url}] }
  pool-b: { servers: [${b.url}] }
sites:
  - name: main
    routes:
      - name: version
        match: { exact: /version }
        respond: { body: v${version} }
      - name: chat
        match: { prefix: /chat }
        to: chat
        response_headers: { set: { X-Config-Version: v${version} } }
      - name: alt
        match: { prefix: /alt }
        to: ${alt}
`;
}

// ================================================================ 5 × SIGHUP + POST /api/reload

test(`workers: 2, ${TUNNELS} open tunnels: 5 SIGHUP reloads and a POST /api/reload switch upstreams for new tunnels only; every old tunnel keeps echoing through A in the same worker`, { timeout: 45_000 }, async (t) => {
  if (TUNNELS < 500) t.diagnostic(`open-file limit ${FD_LIMIT}: ${TUNNELS} tunnels instead of 500`);
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 0, chat: a, alt: 'pool-a', a, b }));
  const cli = await startRun(file);
  const workers = childPids(cli.pid);
  assert.equal(workers.length, 2, `two worker processes: ${JSON.stringify(workers)}`);
  const base = `http://127.0.0.1:${cli.port}`;
  const ws = `ws://127.0.0.1:${cli.port}`;

  // Half the tunnels on /chat (upstream `chat`, whose servers change), half on /alt (whose `to` changes).
  const started = Date.now();
  const half = Math.floor(TUNNELS / 2);
  const old = [...await openTunnels(`${ws}/chat/live`, half), ...await openTunnels(`${ws}/alt/live`, TUNNELS - half)];
  t.diagnostic(`${old.length} tunnels open in ${Date.now() - started} ms`);
  await assertAllEcho(old, 'before', 'A');
  assert.equal(a.sockets.size, TUNNELS);

  const initial = await listed(cli.adminUrl, old);
  const idOf = new Map(old.map((tunnel) => [clientKey(tunnel), initial.get(clientKey(tunnel))!.id]));
  const oldPids = [...new Set(old.map((tunnel) => pidOf(initial.get(clientKey(tunnel))!)))].sort((x, y) => x - y);
  assert.deepEqual(oldPids, workers, 'the old tunnels are held by both workers');

  /** Every old tunnel: still open, same id (same worker, never reopened), still on A through its old upstream. */
  const assertOldUntouched = async (label: string): Promise<void> => {
    assert.equal(old.filter((tunnel) => tunnel.closed).length, 0, `no old tunnel closed (${label})`);
    await assertAllEcho(old, label, 'A');
    const now = await listed(cli.adminUrl, old);
    const moved = old.filter((tunnel) => {
      const snapshot = now.get(clientKey(tunnel))!;
      const upstream = tunnel.ws.url.includes('/chat/') ? 'chat' : 'pool-a';
      return snapshot.id !== idOf.get(clientKey(tunnel)) || snapshot.server !== a.url || snapshot.upstream !== upstream;
    });
    assert.equal(moved.length, 0, `old tunnels changed id, server or upstream (${label}): ${JSON.stringify(moved.slice(0, 3).map((tunnel) => now.get(clientKey(tunnel))))}`);
    assert.deepEqual([...new Set(old.map((tunnel) => pidOf(now.get(clientKey(tunnel))!)))].sort((x, y) => x - y), workers, `the old tunnels' worker pids (${label})`);
  };

  /** New connections follow version `version`: tunnels on both workers, and HTTP answers. */
  const assertNewFollow = async (version: number, chat: Origin, alt: Origin, label: string): Promise<void> => {
    const freshChat = await openSequential(`${ws}/chat/new-${version}`, 4, chat === a ? 'A' : 'B', `${label}-chat`);
    const freshAlt = await openSequential(`${ws}/alt/new-${version}`, 4, alt === a ? 'A' : 'B', `${label}-alt`);
    const now = await listed(cli.adminUrl, [...freshChat, ...freshAlt]);
    const snapshots = [...freshChat, ...freshAlt].map((tunnel) => now.get(clientKey(tunnel))!);
    assert.deepEqual([...new Set(snapshots.map(pidOf))].sort((x, y) => x - y), workers, `new tunnels in both workers (${label})`);
    assert.ok(freshChat.every((tunnel) => now.get(clientKey(tunnel))!.server === chat.url), `new /chat tunnels on ${chat.url} (${label})`);
    assert.ok(freshAlt.every((tunnel) => now.get(clientKey(tunnel))!.server === alt.url), `new /alt tunnels on ${alt.url} (${label})`);
    terminate([...freshChat, ...freshAlt]);
    // Fresh connections alternate between the workers: both answer with the new version.
    for (let i = 0; i < 2; i++) {
      const reply = await httpRequest(`${base}/version`);
      assert.equal(reply.body, `v${version}`, `GET /version #${i} (${label})`);
    }
    for (let i = 0; i < 2; i++) {
      const reply = await httpRequest(`${base}/chat/http-${i}`);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-config-version'], `v${version}`, `the changed response header (${label})`);
      assert.equal(reply.headers['x-origin'], chat === a ? 'A' : 'B', `GET /chat goes to the new upstream (${label})`);
    }
  };

  for (let version = 1; version <= 5; version++) {
    const toB = version % 2 === 1;
    const chat = toB ? b : a;
    const alt = toB ? 'pool-b' : 'pool-a';
    const before = logs(cli, RELOADED).length;
    writeFileSync(file, configText({ version, chat, alt, a, b }));
    process.kill(cli.pid, 'SIGHUP');
    assert.deepEqual(await reloadedBy(cli, before, workers), workers, `each worker reloaded once (reload ${version})`);
    await assertNewFollow(version, chat, toB ? b : a, `SIGHUP ${version}`);
    await assertOldUntouched(`after SIGHUP ${version}`);
    assert.deepEqual(childPids(cli.pid), workers, `the same worker processes after SIGHUP ${version}`);
  }

  // A sixth reload through the admin API: answered once every worker has reloaded.
  const before = logs(cli, RELOADED).length;
  writeFileSync(file, configText({ version: 6, chat: b, alt: 'pool-b', a, b }));
  const reply = await httpRequest(`${cli.adminUrl}/api/reload`, 'POST');
  assert.equal(reply.status, 200, reply.body);
  assert.deepEqual(JSON.parse(reply.body), { ok: true });
  assert.deepEqual(await reloadedBy(cli, before, workers), workers, 'each worker reloaded once (admin API)');
  await assertNewFollow(6, b, b, 'POST /api/reload');
  await assertOldUntouched('after POST /api/reload');

  // None restarted; nothing complained.
  assert.equal(cli.exitedAt, undefined);
  assert.deepEqual(childPids(cli.pid), workers, 'the same worker processes');
  assert.equal(logs(cli, WORKER_DIED).length, 0);
  assert.equal(logs(cli, REJECTED).length, 0);
  assert.equal(logs(cli, RESTART_ONLY).length, 0, 'no restart-only setting changed');
  assert.equal((cli.stdout.match(/switchyard listening on/g) ?? []).length, 1, 'one start line: nothing started again');
  assert.equal(logs(cli, RELOADED).length, 12, 'six reloads × two workers');
  await waitFor(() => a.sockets.size === TUNNELS, 3_000, `origin A back to the ${TUNNELS} old tunnels (has ${a.sockets.size})`);
});

// ================================================================ --watch

test('workers: 2 + --watch, 50 open tunnels: an in-place write and a rename-over save reload every worker; old tunnels stay on A, new ones follow', { timeout: 30_000 }, async () => {
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 0, chat: a, alt: 'pool-a', a, b }));
  const cli = await startRun(file, ['--watch']);
  const workers = childPids(cli.pid);
  assert.equal(workers.length, 2);
  const ws = `ws://127.0.0.1:${cli.port}`;
  const old = [...await openTunnels(`${ws}/chat/live`, 25), ...await openTunnels(`${ws}/alt/live`, 25)];
  await assertAllEcho(old, 'before', 'A');
  const initial = await listed(cli.adminUrl, old);
  assert.deepEqual([...new Set(old.map((tunnel) => pidOf(initial.get(clientKey(tunnel))!)))].sort((x, y) => x - y), workers);
  await sleep(300); // let the watcher settle

  const steps: { how: string; version: number; to: Origin; write: (text: string) => void }[] = [
    { how: 'in-place write', version: 1, to: b, write: (text) => writeFileSync(file, text) },
    {
      how: 'rename-over save', version: 2, to: a, write: (text) => {
        const temp = join(dir, '.switchyard.yaml.swp');
        writeFileSync(temp, text);
        renameSync(temp, file);
      },
    },
  ];
  for (const { how, version, to, write } of steps) {
    write(configText({ version, chat: to, alt: to === b ? 'pool-b' : 'pool-a', a, b }));
    // The watcher debounces; every worker logs its reload (more than once is tolerated).
    await waitFor(() => workers.every((pid) => logs(cli, RELOADED).filter((entry) => entry.pid === pid).length >= version), 5_000,
      `both workers to reload after the ${how} (stderr: ${JSON.stringify(cli.stderr.slice(-2_000))})`);
    const name = to === a ? 'A' : 'B';
    const fresh = [...await openSequential(`${ws}/chat/new-${version}`, 4, name, `${how}-chat`), ...await openSequential(`${ws}/alt/new-${version}`, 4, name, `${how}-alt`)];
    const now = await listed(cli.adminUrl, [...old, ...fresh]);
    assert.deepEqual([...new Set(fresh.map((tunnel) => pidOf(now.get(clientKey(tunnel))!)))].sort((x, y) => x - y), workers, `new tunnels in both workers after the ${how}`);
    assert.ok(fresh.every((tunnel) => now.get(clientKey(tunnel))!.server === to.url));
    terminate(fresh);
    assert.equal(old.filter((tunnel) => tunnel.closed).length, 0, `no old tunnel closed by the ${how}`);
    await assertAllEcho(old, `after-${version}`, 'A');
    assert.ok(old.every((tunnel) => now.get(clientKey(tunnel))!.id === initial.get(clientKey(tunnel))!.id && now.get(clientKey(tunnel))!.server === a.url),
      `old tunnels keep their id and server after the ${how}`);
    assert.equal((await httpRequest(`http://127.0.0.1:${cli.port}/version`)).body, `v${version}`);
  }
  assert.deepEqual(childPids(cli.pid), workers, 'the same worker processes');
  assert.ok(logs(cli, RELOADED).every((entry) => workers.includes(entry.pid)), 'only the two original workers reloaded');
  assert.equal(logs(cli, WORKER_DIED).length, 0);
  assert.equal(logs(cli, REJECTED).length, 0);
  assert.equal(cli.exitedAt, undefined);
});

// ================================================================ worker crash

test(`workers: 2, ${TUNNELS} open tunnels, one worker SIGKILLed: exactly its tunnels close, the rest keep echoing, a replacement starts and takes new tunnels`, { timeout: 40_000 }, async (t) => {
  const a = await taggedOrigin('A');
  const b = await taggedOrigin('B');
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, configText({ version: 0, chat: a, alt: 'pool-a', a, b }));
  const cli = await startRun(file);
  const workers = childPids(cli.pid);
  assert.equal(workers.length, 2);
  const ws = `ws://127.0.0.1:${cli.port}`;

  const tunnels = await openTunnels(`${ws}/chat/live`, TUNNELS);
  await assertAllEcho(tunnels, 'before', 'A');
  const initial = await listed(cli.adminUrl, tunnels);
  const byPid = new Map<number, Tunnel[]>();
  for (const tunnel of tunnels) {
    const pid = pidOf(initial.get(clientKey(tunnel))!);
    (byPid.get(pid) ?? byPid.set(pid, []).get(pid)!).push(tunnel);
  }
  assert.deepEqual([...byPid.keys()].sort((x, y) => x - y), workers, 'both workers hold tunnels');
  const [victim, survivor] = workers as [number, number];
  const lost = byPid.get(victim)!;
  const kept = byPid.get(survivor)!;
  t.diagnostic(`worker ${victim} holds ${lost.length} tunnels, worker ${survivor} ${kept.length}`);
  assert.ok(lost.length > 0 && kept.length > 0);
  assert.ok(childPids(cli.pid).includes(victim), 'the victim is a child of the CLI process this test started');

  process.kill(victim, 'SIGKILL');

  // The kernel closes the dead worker's sockets: its clients see the close.
  await waitFor(() => tunnels.filter((tunnel) => tunnel.closed).length >= lost.length, 5_000,
    `the ${lost.length} tunnels of worker ${victim} to close (closed: ${tunnels.filter((tunnel) => tunnel.closed).length})`);
  await sleep(500); // anything else that was going to close would have by now
  const closed = tunnels.filter((tunnel) => tunnel.closed);
  assert.equal(closed.length, lost.length, `closed tunnels = the ${lost.length} /api/tunnels attributed to worker ${victim}`);
  assert.ok(lost.every((tunnel) => tunnel.closed), 'every tunnel of the dead worker closed');
  assert.ok(kept.every((tunnel) => !tunnel.closed), 'no tunnel of the surviving worker closed');
  await assertAllEcho(kept, 'after-crash', 'A');
  await waitFor(() => a.sockets.size === kept.length, 3_000, `origin A to keep only the surviving worker's ${kept.length} tunnels (has ${a.sockets.size})`);

  // The primary replaces the dead worker.
  await waitFor(() => logs(cli, WORKER_DIED).some((entry) => entry.worker === victim), 5_000, `"worker died" for ${victim}`);
  await waitFor(() => childPids(cli.pid).length === 2 && !childPids(cli.pid).includes(victim), 10_000, `a replacement worker (children: ${JSON.stringify(childPids(cli.pid))})`);
  const now = childPids(cli.pid);
  for (const pid of now) cli.workersSeen.add(pid);
  assert.ok(now.includes(survivor), 'the surviving worker was not restarted');
  const replacement = now.find((pid) => pid !== survivor)!;
  assert.equal(logs(cli, WORKER_DIED).length, 1, 'one worker died');
  assert.equal(cli.exitedAt, undefined, 'the primary keeps running');

  // The survivors are listed as before, in the surviving worker, with the same ids.
  const afterCrash = await listed(cli.adminUrl, kept);
  assert.ok(kept.every((tunnel) => afterCrash.get(clientKey(tunnel))!.id === initial.get(clientKey(tunnel))!.id));
  assert.ok(lost.every((tunnel) => !afterCrash.has(clientKey(tunnel))), 'the dead worker\'s tunnels are gone from /api/tunnels');

  // New tunnels work, and once the replacement listens they land on it too.
  const fresh: Tunnel[] = [];
  const deadline = Date.now() + 10_000;
  let onReplacement = 0;
  while (onReplacement < 2) {
    assert.ok(Date.now() < deadline, `no new tunnel landed on the replacement worker ${replacement} within 10 s`);
    const batch = await openSequential(`${ws}/chat/fresh-${fresh.length}`, 2, 'A', `fresh-${fresh.length}`);
    fresh.push(...batch);
    const listing = await listed(cli.adminUrl, batch);
    onReplacement += batch.filter((tunnel) => pidOf(listing.get(clientKey(tunnel))!) === replacement).length;
  }
  const listing = await listed(cli.adminUrl, fresh);
  const freshPids = new Set(fresh.map((tunnel) => pidOf(listing.get(clientKey(tunnel))!)));
  assert.ok([...freshPids].every((pid) => pid === survivor || pid === replacement), `new tunnels only in live workers: ${JSON.stringify([...freshPids])}`);
  await assertAllEcho(fresh, 'fresh-again', 'A');
  await assertAllEcho(kept, 'after-replacement', 'A');
  assert.equal(tunnels.filter((tunnel) => tunnel.closed).length, lost.length, 'nothing else closed meanwhile');
});
