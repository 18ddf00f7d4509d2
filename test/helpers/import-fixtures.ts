import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { WebSocket, WebSocketServer } from 'ws';
import { selfSignedCertificate, type TestCertificate } from './certs.js';
import { REPO_ROOT, spawnSwitchyard, withTimeout, type CliProcess } from './cli.js';
import { closedPort } from './origins.js';

/**
 * Fixtures for `switchyard import`: test/fixtures/import/FORMAT/NAME.conf (plus
 * any files it includes, in the same folder tree) and NAME.expect.json, which
 * says what the translation must do (ImportExpectation). The harness copies the
 * folder, points every backend address the config names at a real origin,
 * imports, checks, runs the result and sends the listed requests.
 */
export interface ImportExpectation {
  readonly description: string;
  /** Backend `host:port` as written in the config → origin name. Every occurrence in the copied files is replaced by the origin's 127.0.0.1:PORT. */
  readonly backends?: Readonly<Record<string, string>>;
  /** Origins (by name) that speak TLS (https/wss backends); trusted through NODE_EXTRA_CA_CERTS. */
  readonly tlsBackends?: readonly string[];
  /** Certificate and key files (relative to the fixture folder) the config names: the harness writes a self-signed pair there. */
  readonly certs?: readonly { readonly cert: string; readonly key: string }[];
  /** Requests to send through the translated config. */
  readonly requests: readonly ExpectedRequest[];
  /** Each text must appear in the "Not translated" list the import prints. */
  readonly skipped?: readonly string[];
  /** Each text must appear in the "Look at" list (unsafe or redundant settings). */
  readonly advice?: readonly string[];
  /** Each text must appear in the generated YAML (e.g. "policy: least_conn"). */
  readonly yaml?: readonly string[];
}

export interface ExpectedRequest {
  /** Listener address as the translation wrote it (e.g. ":443"); default the first listener. */
  readonly listen?: string;
  readonly host: string;
  readonly path: string;
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** Open a WebSocket instead of a plain request. */
  readonly websocket?: boolean;
  /** Origin name that must answer (HTTP: 200 from it; WebSocket: the tunnel reaches it). */
  readonly origin?: string;
  /** The path (with query) the origin must have received. */
  readonly originPath?: string;
  /** The Host header the origin must have received. */
  readonly originHost?: string;
  /** Status expected instead of an origin's answer (redirects, local responses, refusals). */
  readonly status?: number;
  /** Location header expected with `status`. */
  readonly location?: string;
  /**
   * Where the original config under a real nginx deliberately answers
   * otherwise than the translation (e.g. a WebSocket handshake through a
   * location without Upgrade headers, which nginx passes on as a plain GET):
   * what nginx itself does, and why. Only import-nginx-original.test.ts reads
   * it; the Switchyard harness ignores it.
   */
  readonly nginx?: { readonly origin?: string; readonly status?: number; readonly originPath?: string; readonly originHost?: string; readonly why: string };
  /**
   * Where the original config under a real Apache httpd 2.4 deliberately
   * answers otherwise than the translation (e.g. a WebSocket handshake through
   * an http:// ProxyPass without upgrade=websocket, which httpd passes on as a
   * plain GET): what httpd itself does, and why (a choice docs/import-apache.md
   * describes). A `status` other than 200 or 101 without an `origin` is a local
   * answer: the request's origin, path and Host then no longer apply. Only
   * import-apache-original.test.ts reads it; the Switchyard harness ignores it.
   */
  readonly apache?: { readonly origin?: string; readonly status?: number; readonly originPath?: string; readonly originHost?: string; readonly why: string };
}

export const FIXTURE_ROOT = join(REPO_ROOT, 'test', 'fixtures', 'import');

/** The fixtures of a format: the NAME.conf files that have a NAME.expect.json beside them. */
export function listFixtures(format: string): string[] {
  const dir = join(FIXTURE_ROOT, format);
  return readdirSync(dir).filter((name) => name.endsWith('.expect.json')).map((name) => name.replace(/\.expect\.json$/, '')).sort();
}

export interface NamedOrigin {
  readonly name: string;
  readonly port: number;
  readonly tls: boolean;
  close(): Promise<void>;
}

/** An origin that says who it is: HTTP answers JSON {origin, url, host}; a WebSocket sends the same as its first message, then echoes. */
export async function startNamedOrigin(name: string, cert: TestCertificate | undefined): Promise<NamedOrigin> {
  const describe = (req: http.IncomingMessage): string => JSON.stringify({ origin: name, url: req.url, host: req.headers.host });
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(describe(req));
    });
  };
  const server = cert ? https.createServer({ cert: cert.cert, key: cert.key }, handler) : http.createServer(handler);
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => undefined);
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => ws.terminate());
      ws.send(describe(req));
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    name,
    port: (server.address() as AddressInfo).port,
    tls: cert !== undefined,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface ImportRun {
  readonly dir: string;
  /** The generated YAML as written by `import -o`. */
  readonly yaml: string;
  /** What `import` printed on stderr (the report). */
  readonly report: string;
  close(): Promise<void>;
}

/**
 * Runs one fixture end to end: import (exit 0), `check` (exit 0), then `run`
 * on loopback ports and every expected request. Throws (assert) on the first
 * difference.
 */
export async function runImportFixture(format: string, name: string): Promise<void> {
  const expectation = JSON.parse(readFileSync(join(FIXTURE_ROOT, format, `${name}.expect.json`), 'utf8')) as ImportExpectation;
  const copy = await copyFixture(format, expectation, `switchyard-import-${format}-`);
  const { dir, cert, replacements } = copy;
  let proxy: CliProcess | undefined;
  try {
    replaceInTree(dir, replacements);

    const source = join(dir, `${name}.conf`);
    const output = join(dir, `${name}.switchyard.yaml`);
    const imported = spawnSwitchyard(['import', format, source, '-o', output]);
    const importExit = await withTimeout(imported.exited, 15_000, 'import');
    assert.equal(importExit.code, 0, `import ${format} ${name} exited ${importExit.code}:\n${imported.stderr}`);
    const yaml = readFileSync(output, 'utf8');
    for (const text of expectation.yaml ?? []) assert.ok(yaml.includes(text), `${name}: the YAML lacks ${JSON.stringify(text)}:\n${yaml}`);
    const [skippedPart = '', advicePart = ''] = splitReport(imported.stderr);
    for (const text of expectation.skipped ?? []) assert.ok(skippedPart.includes(text), `${name}: "Not translated" lacks ${JSON.stringify(text)}:\n${imported.stderr}`);
    for (const text of expectation.advice ?? []) assert.ok(advicePart.includes(text), `${name}: "Look at" lacks ${JSON.stringify(text)}:\n${imported.stderr}`);

    const checked = spawnSwitchyard(['check', '-c', output]);
    const checkExit = await withTimeout(checked.exited, 15_000, 'check');
    assert.equal(checkExit.code, 0, `check of ${name} exited ${checkExit.code}:\n${checked.stderr}\n${yaml}`);

    const ports = await runnableCopy(output, join(dir, `${name}.run.yaml`));
    proxy = spawnSwitchyard(['run', '-c', join(dir, `${name}.run.yaml`)], { NODE_EXTRA_CA_CERTS: cert.certFile });
    await waitForListening(proxy);
    for (const request of expectation.requests) {
      const listen = request.listen ?? ports.first;
      const port = ports.byAddress.get(listen);
      assert.ok(port, `${name}: no listener ${listen} in the translation (have ${[...ports.byAddress.keys()].join(', ')})`);
      await checkRequest(name, request, port.port, port.tls);
    }
  } finally {
    if (proxy) {
      proxy.child.kill('SIGKILL');
      await proxy.exited;
    }
    await copy.closeOrigins();
    copy.remove();
  }
}

/** A fixture folder copied to a temp dir, with its certificates written and its named origins running. */
export interface FixtureCopy {
  readonly dir: string;
  readonly cert: TestCertificate;
  /** Origins by name. */
  readonly origins: ReadonlyMap<string, NamedOrigin>;
  /** Each backend address as the config writes it → the origin's address, longest first (so "b:80" does not eat into "b:8080"). */
  readonly replacements: readonly [string, string][];
  closeOrigins(): Promise<void>;
  /** Deletes the copy and the certificate. */
  remove(): void;
}

/**
 * Copies a format's fixture folder, writes a self-signed pair wherever the
 * expectation names certificate files, and starts one named origin per backend
 * name (TLS for tlsBackends). `tlsHost` names TLS origins in the replacements
 * (default 127.0.0.1; a server that checks names by DNS only wants localhost).
 */
export async function copyFixture(format: string, expectation: ImportExpectation, prefix: string, tlsHost = '127.0.0.1'): Promise<FixtureCopy> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const cert = await selfSignedCertificate(`${prefix}cert-`);
  const origins = new Map<string, NamedOrigin>();
  const closeOrigins = async (): Promise<void> => {
    for (const origin of origins.values()) await origin.close();
  };
  const remove = (): void => {
    cert.remove();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    cpSync(join(FIXTURE_ROOT, format), dir, { recursive: true });
    for (const pair of expectation.certs ?? []) {
      mkdirSync(dirname(join(dir, pair.cert)), { recursive: true });
      mkdirSync(dirname(join(dir, pair.key)), { recursive: true });
      copyFileSync(cert.certFile, join(dir, pair.cert));
      copyFileSync(cert.keyFile, join(dir, pair.key));
    }
    const replacements: [string, string][] = [];
    for (const [address, originName] of Object.entries(expectation.backends ?? {})) {
      let origin = origins.get(originName);
      if (!origin) {
        origin = await startNamedOrigin(originName, expectation.tlsBackends?.includes(originName) ? cert : undefined);
        origins.set(originName, origin);
      }
      replacements.push([address, `${origin.tls ? tlsHost : '127.0.0.1'}:${origin.port}`]);
    }
    replacements.sort((a, b) => b[0].length - a[0].length);
    return { dir, cert, origins, replacements, closeOrigins, remove };
  } catch (err) {
    await closeOrigins();
    remove();
    throw err;
  }
}

function splitReport(stderr: string): [string, string] {
  const skippedAt = stderr.indexOf('Not translated');
  const adviceAt = stderr.indexOf('Look at');
  const skipped = skippedAt < 0 ? '' : stderr.slice(skippedAt, adviceAt > skippedAt ? adviceAt : undefined);
  const advice = adviceAt < 0 ? '' : stderr.slice(adviceAt);
  return [skipped, advice];
}

function replaceInTree(dir: string, replacements: readonly [string, string][]): void {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      replaceInTree(path, replacements);
      continue;
    }
    if (/\.(pem|crt|key|json)$/.test(entry)) continue;
    let text = readFileSync(path, 'utf8');
    for (const [from, to] of replacements) text = text.split(from).join(to);
    writeFileSync(path, text);
  }
}

interface ListenerPorts {
  readonly first: string;
  readonly byAddress: Map<string, { port: number; tls: boolean }>;
}

/** Writes a copy of the translation that listens on free loopback ports, logs nothing and runs one process. */
async function runnableCopy(output: string, runFile: string): Promise<ListenerPorts> {
  const config = parseYaml(readFileSync(output, 'utf8')) as { listeners: { address: string; tls?: unknown; redirect_to_https?: unknown }[]; access_log?: unknown; workers?: number; admin?: unknown };
  const byAddress = new Map<string, { port: number; tls: boolean }>();
  const httpsPorts = new Map<string, number>();
  for (const listener of config.listeners) {
    const port = await closedPort();
    byAddress.set(listener.address, { port, tls: listener.tls !== undefined });
    if (listener.tls !== undefined) httpsPorts.set(listener.address, port);
    listener.address = `127.0.0.1:${port}`;
  }
  config.access_log = false;
  delete config.admin;
  delete config.workers;
  writeFileSync(runFile, stringifyYaml(config));
  if (existsSync(runFile)) return { first: [...byAddress.keys()][0]!, byAddress };
  throw new Error('could not write the run copy');
}

async function waitForListening(proxy: CliProcess): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!proxy.stdout.includes('switchyard listening on')) {
    if (proxy.child.exitCode !== null || Date.now() > deadline) throw new Error(`switchyard did not start:\n${proxy.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** What a named origin answers: who it is, and the path and Host it received. */
export interface OriginAnswer {
  origin: string;
  url: string;
  host: string;
}

async function checkRequest(fixture: string, request: ExpectedRequest, port: number, tls: boolean): Promise<void> {
  const what = `${fixture}: ${request.websocket ? 'WebSocket' : (request.method ?? 'GET')} ${request.host}${request.path}`;
  if (request.websocket) {
    const answer = await openWebSocket(request, port, tls);
    if (request.status !== undefined) {
      assert.equal(answer.status, request.status, `${what}: status`);
      return;
    }
    assert.equal(answer.status, 101, `${what}: the handshake got ${answer.status}`);
    checkOrigin(what, request, answer.origin);
    return;
  }
  const response = await sendRequest(request, port, tls);
  if (request.status !== undefined) {
    assert.equal(response.status, request.status, `${what}: status (body ${response.body.slice(0, 200)})`);
    if (request.location !== undefined) assert.equal(response.location, request.location, `${what}: Location`);
    if (request.origin === undefined) return;
  } else {
    assert.equal(response.status, 200, `${what}: status (body ${response.body.slice(0, 200)})`);
  }
  checkOrigin(what, request, JSON.parse(response.body) as OriginAnswer);
}

function checkOrigin(what: string, request: ExpectedRequest, answer: OriginAnswer | undefined): void {
  assert.ok(answer, `${what}: no answer from an origin`);
  if (request.origin !== undefined) assert.equal(answer.origin, request.origin, `${what}: reached the wrong backend`);
  if (request.originPath !== undefined) assert.equal(answer.url, request.originPath, `${what}: path at the backend`);
  if (request.originHost !== undefined) assert.equal(answer.host, request.originHost, `${what}: Host at the backend`);
}

/** What sendRequest() and openWebSocket() need of a request: where it goes and what it carries. */
export type RequestTarget = Pick<ExpectedRequest, 'host' | 'path' | 'method' | 'headers'>;

/** Sends one HTTP request to 127.0.0.1:`port` (TLS with SNI from the Host when `tls`) and reads the whole answer. */
export function sendRequest(request: RequestTarget, port: number, tls: boolean): Promise<{ status: number; location: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const options = {
      host: '127.0.0.1', port, path: request.path, method: request.method ?? 'GET',
      headers: { ...request.headers, Host: request.host }, agent: false as const,
      ...(tls ? { servername: request.host, rejectUnauthorized: false } : {}),
    };
    const req = (tls ? https : http).request(options, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body }));
    });
    req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Opens a WebSocket to 127.0.0.1:`port` against a named origin: 101 with the
 * origin's self-description once one echo came back, or the status (and
 * Location) of a refused handshake.
 */
export function openWebSocket(request: RequestTarget, port: number, tls: boolean): Promise<{ status: number; location?: string | undefined; origin?: OriginAnswer }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${port}${request.path}`, {
      headers: { ...request.headers, Host: request.host },
      handshakeTimeout: 5_000,
      ...(tls ? { servername: request.host, rejectUnauthorized: false } : {}),
    });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, location: res.headers.location });
      ws.terminate();
    });
    ws.once('message', (data) => {
      const origin = JSON.parse(String(data)) as OriginAnswer;
      // One echo proves the tunnel carries frames both ways.
      ws.send('ping-through');
      ws.once('message', (echo) => {
        if (String(echo) !== 'ping-through') reject(new Error(`echo was ${String(echo)}`));
        else resolve({ status: 101, origin });
        ws.close();
      });
    });
    ws.on('error', (err) => reject(err));
  });
}
