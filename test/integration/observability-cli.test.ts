/**
 * Observability through the CLI as a user runs it (docs/observability.md):
 * `switchyard proxy` with --access-log, --access-log-format and --admin (port 0,
 * its URL read from the "admin listener ready" log line), SIGUSR1 reopening the
 * log, and `switchyard run -c FILE` with `workers: 2`, whose primary's admin
 * listener reports and drains across both workers.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, test } from 'node:test';
import { WebSocket } from 'ws';
import type { Snapshot, TunnelSnapshot } from '../../src/admin/snapshot.js';
import { childPids, type CliProcess, killPid, spawnSwitchyard, stopSwitchyards, withTimeout } from '../helpers/cli.js';
import { startOrigin } from '../helpers/origins.js';
import { sleep, waitFor } from '../helpers/raw.js';

// parse-prometheus-text-format ships no types; a `declare module` in a module
// file cannot describe an untyped package (TS2665), so it is loaded with require.
interface PromFamily {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string> }[];
}
const parsePrometheusText = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => PromFamily[];

const START_LINE = /^switchyard listening on http:\/\/127\.0\.0\.1:(\d+)\b.*$/m;
const ADMIN_LINE = /"admin":"(http:\/\/127\.0\.0\.1:\d+)\/".*"msg":"admin listener ready"/;
const COMBINED = /^127\.0\.0\.1 - - \[\d{2}\/\w{3}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "GET \/x\?a=1 HTTP\/1\.1" 200 \d+ "-" ".*"/;

// ---------------------------------------------------------------- processes

const strayPids = new Set<number>();
const tempDirs: string[] = [];

afterEach(async () => {
  await stopSwitchyards();
  for (const pid of strayPids) killPid(pid);
  strayPids.clear();
});

after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-observability-cli-'));
  tempDirs.push(dir);
  return dir;
}

interface Running extends CliProcess {
  readonly port: number;
  readonly startLine: string;
  /** The admin listener's base URL (no trailing slash), when started with one. */
  readonly adminUrl: string | undefined;
}

/** Spawns the CLI and waits for the start line (and the admin line when `admin`). */
async function start(args: readonly string[], admin: boolean, ms = 10_000): Promise<Running> {
  const cli = spawnSwitchyard(args);
  const deadline = Date.now() + ms;
  const state = (): string => `stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`;
  let match: RegExpExecArray | null = null;
  let adminMatch: RegExpExecArray | null = null;
  while (!(match = START_LINE.exec(cli.stdout)) || (admin && !(adminMatch = ADMIN_LINE.exec(cli.stderr)))) {
    if (cli.exitedAt !== undefined) throw new Error(`exited before it was ready; ${state()}`);
    if (Date.now() > deadline) throw new Error(`not ready within ${ms} ms; ${state()}`);
    await sleep(10);
  }
  for (const pid of childPids(cli.pid)) strayPids.add(pid);
  return Object.assign(cli, { port: Number(match[1]), startLine: match[0], adminUrl: adminMatch?.[1] });
}

/** SIGTERM, then the exit (code 0 expected from a graceful stop). */
async function stopGracefully(cli: CliProcess, ms = 10_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  for (const pid of childPids(cli.pid)) strayPids.add(pid);
  process.kill(cli.pid, 'SIGTERM');
  return withTimeout(cli.exited, ms, `process ${cli.pid} to exit after SIGTERM (stderr: ${JSON.stringify(cli.stderr.slice(-2_000))})`);
}

// ---------------------------------------------------------------- clients

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request on a fresh connection (so cluster workers share the load). */
function httpRequest(url: string, options: { method?: string; body?: string; ms?: number } = {}): Promise<Reply> {
  const ms = options.ms ?? 5_000;
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error(`${options.method ?? 'GET'} ${url}: no answer within ${ms} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

async function getJson<T>(url: string): Promise<T> {
  const reply = await httpRequest(url);
  assert.equal(reply.status, 200, `GET ${url}: ${reply.body}`);
  return JSON.parse(reply.body) as T;
}

async function metrics(adminUrl: string): Promise<PromFamily[]> {
  const reply = await httpRequest(`${adminUrl}/metrics`);
  assert.equal(reply.status, 200, reply.body);
  // Labelled histograms lose their labels in this parser; they are not needed here.
  return parsePrometheusText(reply.body.replace(/^# TYPE \S+ histogram\n/gm, ''));
}

function sum(families: readonly PromFamily[], name: string, labels: Record<string, string> = {}): number {
  const found = families.find((f) => f.name === name);
  assert.ok(found, `no metric ${name}`);
  return found.metrics
    .filter((sample) => Object.entries(labels).every(([key, value]) => sample.labels?.[key] === value))
    .reduce((total, sample) => total + Number(sample.value), 0);
}

interface OpenWs {
  readonly ws: WebSocket;
  readonly closed: Promise<number>;
}

async function openWs(url: string, ms = 3_000): Promise<OpenWs> {
  const ws = new WebSocket(url, { handshakeTimeout: ms });
  ws.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { ws, closed };
}

async function closeAll(clients: readonly OpenWs[]): Promise<void> {
  await Promise.all(clients.map(async ({ ws, closed }) => {
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close(1000);
    const timer = setTimeout(() => ws.terminate(), 2_000);
    await closed;
    clearTimeout(timer);
  }));
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((line) => line !== '') : [];
}

// ================================================================ quick mode

test('proxy --admin 127.0.0.1:0 --access-log FILE --access-log-format combined: lines in the file, metrics, SIGUSR1 reopens', { timeout: 20_000 }, async () => {
  const origin = await startOrigin();
  const file = join(tempDir(), 'logs', 'access.log');
  try {
    const cli = await start(['proxy', '--listen', '127.0.0.1:0', '--to', origin.url, '--admin', '127.0.0.1:0',
      '--access-log', file, '--access-log-format', 'combined'], true);
    assert.ok(cli.adminUrl, cli.stderr);
    assert.notEqual(cli.adminUrl, 'http://127.0.0.1:0', 'the real admin port is logged');

    assert.equal((await httpRequest(`http://127.0.0.1:${cli.port}/x?a=1`)).status, 200);
    await waitFor(() => lines(file).some((line) => COMBINED.test(line)), 3_000, `the combined line in ${file}: ${JSON.stringify(lines(file))}`);

    const m = await metrics(cli.adminUrl);
    assert.equal(sum(m, 'switchyard_requests_total', { site: 'default', route: 'all', status_class: '2xx' }), 1);
    const stats = await getJson<Snapshot>(`${cli.adminUrl}/api/stats`);
    assert.equal(stats.processes, 1);

    const ws = await openWs(`ws://127.0.0.1:${cli.port}/ws-line`);
    await closeAll([ws]);
    await waitFor(() => lines(file).some((line) => line.includes('/ws-line') && line.includes(' closed_by=client')), 3_000, 'the tunnel line');

    renameSync(file, `${file}.1`);
    process.kill(cli.pid, 'SIGUSR1');
    await sleep(300); // no acknowledgement exists: give the signal time to arrive
    assert.equal((await httpRequest(`http://127.0.0.1:${cli.port}/after-rotate`)).status, 200);
    await waitFor(() => lines(file).some((line) => line.includes('/after-rotate')), 3_000, `a new ${file} after SIGUSR1`);
    const old = lines(`${file}.1`);
    assert.ok(old.some((line) => line.includes('/x?a=1')), JSON.stringify(old));
    assert.ok(!old.some((line) => line.includes('/after-rotate')), 'nothing after the reopen goes to the moved file');
    assert.deepEqual(lines(file).length, 1);
    assert.equal(cli.exitedAt, undefined, 'SIGUSR1 does not stop the proxy');
    assert.doesNotMatch(cli.stderr, /Debugger listening/, 'SIGUSR1 must not start the inspector');
    assert.deepEqual(await stopGracefully(cli), { code: 0, signal: null });
  } finally {
    await origin.close();
  }
});

test('--access-log off: stdout has the start line only; the default (-) writes JSON lines to stdout', { timeout: 20_000 }, async () => {
  const origin = await startOrigin();
  try {
    const quiet = await start(['proxy', '--listen', '127.0.0.1:0', '--to', origin.url, '--access-log', 'off'], false);
    assert.equal((await httpRequest(`http://127.0.0.1:${quiet.port}/quiet`)).status, 200);
    await closeAll([await openWs(`ws://127.0.0.1:${quiet.port}/quiet-ws`)]);
    await sleep(300);
    assert.equal(quiet.stdout, `${quiet.startLine}\n`);

    const loud = await start(['proxy', '--listen', '127.0.0.1:0', '--to', origin.url], false);
    assert.equal((await httpRequest(`http://127.0.0.1:${loud.port}/loud`)).status, 200);
    await waitFor(() => loud.stdout.includes('"/loud"'), 3_000, `a JSON line on stdout: ${JSON.stringify(loud.stdout)}`);
    const line = loud.stdout.split('\n').find((l) => l.includes('"/loud"'))!;
    const record = JSON.parse(line) as { type: string; path: string; status: number };
    assert.deepEqual([record.type, record.path, record.status], ['request', '/loud', 200]);
  } finally {
    await origin.close();
  }
});

test('SIGTERM with an access log on /dev/full (a full disk) still exits, code 0', { timeout: 20_000 }, async () => {
  const origin = await startOrigin();
  try {
    const cli = await start(['proxy', '--listen', '127.0.0.1:0', '--to', origin.url, '--access-log', '/dev/full', '--drain-timeout', '1s'], false);
    for (let i = 0; i < 3; i++) assert.equal((await httpRequest(`http://127.0.0.1:${cli.port}/full/${i}`)).status, 200);
    await sleep(200);
    assert.equal(cli.exitedAt, undefined, 'a full disk does not stop the proxy');
    assert.deepEqual(await stopGracefully(cli, 5_000), { code: 0, signal: null });
  } finally {
    await origin.close();
  }
});

// ================================================================ workers

test('run -c FILE with workers: 2 and admin: metrics and stats cover both workers; drain applies in every worker', { timeout: 30_000 }, async () => {
  const originA = await startOrigin({ name: 'A' });
  const originB = await startOrigin({ name: 'B' });
  const dir = tempDir();
  const file = join(dir, 'switchyard.yaml');
  writeFileSync(file, `
listeners:
  - address: 127.0.0.1:0
sites:
  - name: main
    routes:
      - name: all
        to: app
upstreams:
  app:
    servers: [${originA.url}, ${originB.url}]
    policy: round_robin
timeouts: { tunnel_idle: 30s, drain: 1s }
workers: 2
access_log: false
admin: { address: 127.0.0.1:0 }
`);
  const opened: OpenWs[] = [];
  try {
    const cli = await start(['run', '-c', file], true, 15_000);
    assert.match(cli.startLine, /\(2 workers\)/);
    const adminUrl = cli.adminUrl!;
    const base = `http://127.0.0.1:${cli.port}`;

    for (let i = 0; i < 20; i++) assert.equal((await httpRequest(`${base}/req/${i}`)).status, 200);
    const m = await metrics(adminUrl);
    assert.equal(sum(m, 'switchyard_requests_total'), 20, 'both workers\' requests, summed');
    assert.equal(sum(m, 'switchyard_requests_total', { site: 'main', route: 'all', status_class: '2xx' }), 20);
    const stats = await getJson<Snapshot>(`${adminUrl}/api/stats`);
    assert.equal(stats.processes, 2);
    assert.equal(stats.routes.reduce((total, route) => total + route.requests, 0), 20);

    // Tunnels before the drain: ids carry the worker's pid, so both workers show.
    for (let i = 0; i < 6; i++) opened.push(await openWs(`ws://127.0.0.1:${cli.port}/before/${i}`));
    await waitFor(() => originA.sockets.size + originB.sockets.size === 6, 2_000, 'six tunnels at the origins');
    const before = await getJson<TunnelSnapshot[]>(`${adminUrl}/api/tunnels`);
    assert.equal(before.length, 6);
    const pids = new Set(before.map((t) => t.id.split(':')[0]));
    assert.equal(pids.size, 2, `tunnels from both workers: ${JSON.stringify(before.map((t) => t.id))}`);
    assert.equal(sum(await metrics(adminUrl), 'switchyard_tunnels_active'), 6);

    const drain = await httpRequest(`${adminUrl}/api/upstreams/app/drain`, { method: 'POST', body: JSON.stringify({ server: originA.url }) });
    assert.equal(drain.status, 200, drain.body);
    const upstreams = await getJson<Snapshot['upstreams']>(`${adminUrl}/api/upstreams`);
    assert.equal(upstreams[0]?.servers.find((s) => s.url === originA.url)?.state, 'draining');

    const aBefore = originA.handshakes.length;
    const bBefore = originB.handshakes.length;
    for (let i = 0; i < 8; i++) opened.push(await openWs(`ws://127.0.0.1:${cli.port}/drained/${i}`));
    assert.equal(originA.handshakes.length - aBefore, 0, 'no new WebSocket on the drained server, in any worker');
    assert.equal(originB.handshakes.length - bBefore, 8);
    const after = await getJson<TunnelSnapshot[]>(`${adminUrl}/api/tunnels`);
    const drainedEra = after.filter((t) => !before.some((b) => b.id === t.id));
    assert.equal(drainedEra.length, 8);
    assert.ok(drainedEra.every((t) => t.server === originB.url), JSON.stringify(drainedEra.map((t) => t.server)));
    assert.equal(new Set(drainedEra.map((t) => t.id.split(':')[0])).size, 2, 'both workers opened tunnels while drained');

    const states = await metrics(adminUrl);
    await closeAll(opened.splice(0));
    assert.deepEqual(await stopGracefully(cli), { code: 0, signal: null });

    // docs/observability.md: switchyard_upstream_server_state is "1 for the state the server is in".
    const stateSamples = JSON.stringify(states.find((f) => f.name === 'switchyard_upstream_server_state')?.metrics);
    assert.equal(sum(states, 'switchyard_upstream_server_state', { server: originB.url, state: 'up' }), 1, `across 2 workers: ${stateSamples}`);
    assert.equal(sum(states, 'switchyard_upstream_server_state', { server: originA.url, state: 'draining' }), 1, `across 2 workers: ${stateSamples}`);
  } finally {
    await closeAll(opened);
    await originA.close();
    await originB.close();
  }
});
