/**
 * The config-file commands as a user runs them: `node bin/switchyard.js check`,
 * `run` and `schema` in their own processes, config files in a temp folder, real
 * origins on 127.0.0.1:0 and real HTTP and WebSocket clients.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, spawnSwitchyard, stopSwitchyards, withTimeout, type CliProcess } from '../helpers/cli.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { sleep } from '../helpers/raw.js';

const START_LINE = /^switchyard listening on http:\/\/127\.0\.0\.1:(\d+) -> (.*)$/m;
/** What a Node stack trace looks like in output. */
const STACK_FRAME = /^\s+at .+[:(]/m;

// ---------------------------------------------------------------- files

let dir = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'switchyard-config-cli-'));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Writes a config file (lines joined) into the temp folder; returns its path. */
function configFile(name: string, lines: readonly string[]): string {
  const file = join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

// ---------------------------------------------------------------- processes

afterEach(stopSwitchyards);

/** Runs the CLI to completion. */
async function runCli(args: readonly string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = spawnSwitchyard(args, env);
  const { code } = await withTimeout(cli.exited, 10_000, `switchyard ${args.join(' ')} to exit (stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)})`);
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

/** Non-empty output lines. */
function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

/** Starts `switchyard run ARGS` and waits for its start line. */
async function startRun(args: readonly string[], env: Record<string, string> = {}, ms = 10_000): Promise<CliProcess & { port: number; startLine: string }> {
  const cli = spawnSwitchyard(['run', ...args], env);
  const deadline = Date.now() + ms;
  let match: RegExpExecArray | null = null;
  while (!(match = START_LINE.exec(cli.stdout))) {
    if (cli.exitedAt !== undefined) throw new Error(`run exited before its start line; stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
    if (Date.now() > deadline) throw new Error(`no start line within ${ms} ms; stdout ${JSON.stringify(cli.stdout)}, stderr ${JSON.stringify(cli.stderr)}`);
    await sleep(10);
  }
  return Object.assign(cli, { port: Number(match[1]), startLine: match[0] });
}

// ---------------------------------------------------------------- clients

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One GET on a fresh connection. */
function get(url: string, ms = 5_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
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

/** Opens a WebSocket, sends one message and resolves with the first reply, then closes. */
async function wsEcho(url: string, message: string, ms = 5_000): Promise<string> {
  const ws = new WebSocket(url, { handshakeTimeout: ms });
  try {
    return await withTimeout(new Promise<string>((resolve, reject) => {
      ws.once('open', () => ws.send(message));
      ws.once('message', (data) => resolve(data.toString()));
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
    }), ms, `an echo on ${url}`);
  } finally {
    ws.terminate();
  }
}

// ---------------------------------------------------------------- configs

/** Valid: four routes, one named upstream and one inline URL. */
const GOOD = [
  'listeners:',
  '  - address: 127.0.0.1:0',
  'sites:',
  '  - routes:',
  '      - match: { prefix: /chat, upgrade: websocket }',
  '        to: ws://127.0.0.1:1',
  '      - match: { prefix: /api/ }',
  '        to: web',
  '        strip_prefix: true',
  '      - match: { exact: /healthz }',
  '        respond: { body: ok }',
  '      - to: web',
  'upstreams:',
  '  web: { servers: [http://127.0.0.1:2] }',
];

/** Three schema errors, at lines 5, 7 and 12. */
const BAD = [
  'listeners:',
  '  - address: 127.0.0.1:0',
  'sites:',
  '  - routes:',
  '      - mtach: { prefix: / }',
  '        to: web',
  '      - match: { upgrade: websockets }',
  '        to: web',
  'upstreams:',
  '  web: { servers: [http://127.0.0.1:2] }',
  'timeouts:',
  '  connect: 5 seconds',
];

function badLines(file: string): string[] {
  return [
    `${file}:5:9: sites[0].routes[0].mtach: unknown key "mtach" (did you mean "match"?)`,
    `${file}:7:27: sites[0].routes[1].match.upgrade: expected one of "websocket", "any", "none", found "websockets"`,
    `${file}:12:12: timeouts.connect: expected a duration such as 500ms, 30s, 5m or 1h, found "5 seconds"`,
  ];
}

/** The classic mistake: the catch-all above the WebSocket route. */
const SHADOWED = [
  'listeners:',
  '  - address: 127.0.0.1:0',
  'sites:',
  '  - routes:',
  '      - match: { prefix: / }',
  '        to: http://127.0.0.1:1',
  '      - match: { prefix: /ws/, upgrade: websocket }',
  '        to: ws://127.0.0.1:2',
];

/** Valid, with one "may be unreachable" warning at line 7. */
const WARNED = [
  'listeners:',
  '  - address: 127.0.0.1:0',
  'sites:',
  '  - routes:',
  '      - match: { prefix: /api }',
  '        to: http://127.0.0.1:1',
  '      - match: { regex: "^/api/(.*)" }',
  '        to: http://127.0.0.1:2',
  '        rewrite: /$1',
];

// ---------------------------------------------------------------- check

describe('switchyard check', () => {
  it('a valid file: exit 0 and one "ok (...)" summary line', { timeout: 20_000 }, async () => {
    const file = configFile('good.yaml', GOOD);
    const { code, stdout, stderr } = await runCli(['check', '-c', file]);
    assert.equal(code, 0, stderr);
    assert.deepEqual(lines(stdout), [`${file}: ok (1 listener, 1 site, 4 routes, 2 upstreams)`]);
    assert.equal(stderr, '');
  });

  it('an invalid file: exit 1 and every error on its own line with file:line:col, no stack trace', { timeout: 20_000 }, async () => {
    const file = configFile('bad.yaml', BAD);
    const { code, stdout, stderr } = await runCli(['check', '-c', file]);
    assert.equal(code, 1);
    assert.deepEqual(lines(stdout), badLines(file));
    assert.doesNotMatch(stdout + stderr, STACK_FRAME);
    assert.equal(stderr, '');
  });

  it('a shadowed route: exit 1 with the unreachable line', { timeout: 20_000 }, async () => {
    const file = configFile('shadowed.yaml', SHADOWED);
    const { code, stdout } = await runCli(['check', '-c', file]);
    assert.equal(code, 1);
    assert.deepEqual(lines(stdout), [
      `${file}:7:9: sites[0].routes[1]: unreachable (prefix /ws/, upgrade: websocket): routes[0] (prefix /) matches every request it would, first; move it above routes[0]`,
    ]);
  });

  it('a missing file: exit 1 and one clear line', { timeout: 20_000 }, async () => {
    const missing = join(dir, 'does-not-exist.yaml');
    const { code, stdout, stderr } = await runCli(['check', '-c', missing]);
    assert.equal(code, 1);
    assert.deepEqual(lines(stdout + stderr), [`${missing}: cannot read the config file (no such file)`]);
  });

  it('warnings (a regex overlap) are printed, the summary counts them, exit 0', { timeout: 20_000 }, async () => {
    const file = configFile('warned.yaml', WARNED);
    const { code, stdout, stderr } = await runCli(['check', '-c', file]);
    assert.equal(code, 0, stderr);
    assert.deepEqual(lines(stdout), [
      `${file}:7:9: warning: sites[0].routes[1]: may be unreachable (regex ^/api/(.*)): routes[0] (prefix /api) may match first (regexes make it undecidable); check the order`,
      `${file}: ok (1 listener, 1 site, 2 routes, 2 upstreams, 1 warning)`,
    ]);
  });

  it('environment variables are interpolated from the process environment', { timeout: 20_000 }, async () => {
    const file = configFile('env.yaml', ['listeners:', '  - address: "127.0.0.1:${SY_TEST_PORT:-0}"', 'sites:', '  - routes:', '      - to: ${SY_TEST_BACKEND}']);
    const ok = await runCli(['check', '-c', file], { SY_TEST_BACKEND: 'http://127.0.0.1:1' });
    assert.equal(ok.code, 0, ok.stdout);
    const missing = await runCli(['check', '-c', file]);
    assert.equal(missing.code, 1);
    assert.equal(lines(missing.stdout).length, 1, missing.stdout);
    assert.ok(lines(missing.stdout)[0]!.startsWith(`${file}:5:13: `), missing.stdout);
    assert.match(missing.stdout, /environment variable SY_TEST_BACKEND is not set/);
  });
});

// ---------------------------------------------------------------- run

describe('switchyard run', () => {
  it('an invalid file: exit 1, every error line on stderr, no stack trace, never listening', { timeout: 20_000 }, async () => {
    const file = configFile('run-bad.yaml', BAD);
    const { code, stdout, stderr } = await runCli(['run', '-c', file]);
    assert.equal(code, 1);
    assert.deepEqual(lines(stderr), badLines(file));
    assert.doesNotMatch(stdout + stderr, STACK_FRAME);
    assert.doesNotMatch(stdout + stderr, /listening/);
  });

  it('a shadowed route is refused at start: exit 1, no start line', { timeout: 20_000 }, async () => {
    const file = configFile('run-shadowed.yaml', SHADOWED);
    const { code, stdout, stderr } = await runCli(['run', '-c', file]);
    assert.equal(code, 1);
    assert.match(stderr, /sites\[0\]\.routes\[1\]: unreachable/);
    assert.doesNotMatch(stdout + stderr, /listening/);
    assert.doesNotMatch(stdout + stderr, STACK_FRAME);
  });

  it('a missing file given with -c: exit 1, one line, no demo', { timeout: 20_000 }, async () => {
    const missing = join(dir, 'run-missing.yaml');
    const { code, stdout, stderr } = await runCli(['run', '-c', missing]);
    assert.equal(code, 1);
    assert.deepEqual(lines(stdout + stderr), [`${missing}: cannot read the config file (no such file)`]);
  });

  describe('a valid file', () => {
    let web: Origin | undefined;
    let chat: Origin | undefined;

    afterEach(async () => {
      await web?.close();
      await chat?.close();
      web = undefined;
      chat = undefined;
    });

    it('prints the start line and serves HTTP and WebSocket through its routes', { timeout: 30_000 }, async () => {
      web = await startOrigin({ name: 'web' });
      chat = await startOrigin({ name: 'chat' });
      const file = configFile('run-good.yaml', [
        'listeners:',
        '  - address: 127.0.0.1:0',
        'sites:',
        '  - routes:',
        '      - match: { prefix: /chat, upgrade: websocket }',
        `        to: ${chat.wsUrl}`,
        '      - match: { prefix: /api/ }',
        '        to: web',
        '        strip_prefix: true',
        '      - match: { exact: /healthz }',
        '        respond: { body: ok }',
        '      - to: web',
        'upstreams:',
        '  web: { servers: ["${WEB_URL}"] }',
      ]);
      const proxy = await startRun(['-c', file], { WEB_URL: web.url });
      assert.equal(proxy.startLine, `switchyard listening on http://127.0.0.1:${proxy.port} -> ${web.url}, ${chat.wsUrl}`);
      const base = `http://127.0.0.1:${proxy.port}`;

      const api = await get(`${base}/api/users?page=2`);
      assert.equal(api.status, 200);
      assert.equal(api.headers['x-origin'], 'web');
      assert.equal((JSON.parse(api.body) as { url: string }).url, '/users?page=2', 'strip_prefix removed /api');

      const health = await get(`${base}/healthz`);
      assert.deepEqual([health.status, health.body, health.headers['content-type']], [200, 'ok', 'text/plain; charset=utf-8']);

      const plainChat = await get(`${base}/chat`);
      assert.equal(plainChat.headers['x-origin'], 'web', 'a plain request skips the WebSocket-only route');
      assert.deepEqual(web.requests.map((request) => request.url), ['/users?page=2', '/chat']);

      assert.equal(await wsEcho(`ws://127.0.0.1:${proxy.port}/chat/room1`, 'hello chat'), 'hello chat');
      assert.deepEqual(chat.handshakes.map((request) => request.url), ['/chat/room1']);

      assert.equal(await wsEcho(`ws://127.0.0.1:${proxy.port}/live`, 'hello web'), 'hello web');
      assert.deepEqual(web.handshakes.map((request) => request.url), ['/live'], 'other upgrades take the catch-all route');
      assert.deepEqual(chat.requests, [], 'the chat origin saw no plain HTTP');

      assert.equal(proxy.exitedAt, undefined, 'still running');
      assert.doesNotMatch(proxy.stdout + proxy.stderr, STACK_FRAME);
    });

    it('warnings are printed on stderr and the proxy still starts', { timeout: 30_000 }, async () => {
      const file = configFile('run-warned.yaml', WARNED);
      const proxy = await startRun(['-c', file]);
      assert.match(proxy.stderr, new RegExp(`^${escapeRegExp(file)}:7:9: warning: sites\\[0\\]\\.routes\\[1\\]: may be unreachable`, 'm'));
    });
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------- schema

interface JsonSchema {
  $schema?: string;
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  propertyNames?: JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  minLength?: number;
  pattern?: string;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  minimum?: number;
  maximum?: number;
}

/**
 * A small JSON Schema checker for the keywords `switchyard schema` uses (type,
 * properties, required, additionalProperties, items, anyOf, enum, const,
 * pattern, bounds); returns "path: problem" lines.
 */
function validate(schema: JsonSchema, value: unknown, path = '$'): string[] {
  const errors: string[] = [];
  if (schema.anyOf && !schema.anyOf.some((branch) => validate(branch, value, path).length === 0)) errors.push(`${path}: matches no anyOf branch`);
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${path}: ${JSON.stringify(value)} not in enum`);
  if ('const' in schema && value !== schema.const) errors.push(`${path}: not the const ${JSON.stringify(schema.const)}`);
  switch (schema.type) {
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return [...errors, `${path}: not an object`];
      const record = value as Record<string, unknown>;
      for (const key of schema.required ?? []) if (!(key in record)) errors.push(`${path}: missing ${key}`);
      for (const [key, child] of Object.entries(record)) {
        if (schema.propertyNames) errors.push(...validate(schema.propertyNames, key, `${path}[${JSON.stringify(key)}]`));
        const property = schema.properties?.[key];
        if (property) errors.push(...validate(property, child, `${path}.${key}`));
        else if (schema.additionalProperties === false) errors.push(`${path}.${key}: not allowed`);
        else if (typeof schema.additionalProperties === 'object') errors.push(...validate(schema.additionalProperties, child, `${path}.${key}`));
      }
      break;
    }
    case 'array':
      if (!Array.isArray(value)) return [...errors, `${path}: not an array`];
      if (schema.minItems !== undefined && value.length < schema.minItems) errors.push(`${path}: fewer than ${schema.minItems} items`);
      if (schema.items) value.forEach((item, index) => errors.push(...validate(schema.items!, item, `${path}[${index}]`)));
      break;
    case 'string':
      if (typeof value !== 'string') return [...errors, `${path}: not a string`];
      if (schema.minLength !== undefined && value.length < schema.minLength) errors.push(`${path}: shorter than ${schema.minLength}`);
      if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) errors.push(`${path}: does not match ${schema.pattern}`);
      break;
    case 'integer':
    case 'number':
      if (typeof value !== 'number' || (schema.type === 'integer' && !Number.isInteger(value))) return [...errors, `${path}: not a ${schema.type}`];
      if (schema.minimum !== undefined && value < schema.minimum) errors.push(`${path}: below ${schema.minimum}`);
      if (schema.maximum !== undefined && value > schema.maximum) errors.push(`${path}: above ${schema.maximum}`);
      break;
    case 'boolean':
      if (typeof value !== 'boolean') errors.push(`${path}: not a boolean`);
      break;
    default:
      break;
  }
  return errors;
}

/** The first ```yaml block of docs/config.md: the documented example config. */
function docsSample(): Record<string, unknown> {
  const markdown = readFileSync(join(REPO_ROOT, 'docs', 'config.md'), 'utf8');
  const block = /```yaml\n([\s\S]*?)```/.exec(markdown);
  assert.ok(block, 'docs/config.md has a yaml example');
  return parseYaml(block[1] as string) as Record<string, unknown>;
}

describe('switchyard schema', () => {
  let schema: JsonSchema = {};

  before(async () => {
    const { code, stdout, stderr } = await runCli(['schema']);
    assert.equal(code, 0, stderr);
    schema = JSON.parse(stdout) as JsonSchema;
  });

  it('prints a JSON Schema with listeners, sites and upstreams', { timeout: 20_000 }, () => {
    assert.match(schema.$schema ?? '', /^https:\/\/json-schema\.org\//);
    assert.equal(schema.type, 'object');
    for (const key of ['listeners', 'sites', 'upstreams']) assert.ok(schema.properties?.[key], `properties.${key}`);
    assert.deepEqual(schema.required, ['listeners', 'sites']);
    assert.equal(schema.additionalProperties, false);
  });

  it('route and match objects allow no other keys', { timeout: 20_000 }, () => {
    const route = schema.properties?.sites?.items?.properties?.routes?.items;
    assert.ok(route, 'sites[].routes[] is described');
    assert.equal(route.type, 'object');
    assert.equal(route.additionalProperties, false);
    for (const key of ['match', 'to', 'rewrite', 'strip_prefix', 'redirect', 'respond']) assert.ok(route.properties?.[key], `route.${key}`);
    assert.equal(route.properties?.match?.additionalProperties, false);
    assert.deepEqual(route.properties?.match?.properties?.upgrade?.enum, ['websocket', 'any', 'none']);
  });

  it('the documented example config validates against it', { timeout: 20_000 }, () => {
    assert.deepEqual(validate(schema, docsSample()), []);
  });

  it('a misspelt route key or a bad enum value does not', { timeout: 20_000 }, () => {
    const sample = docsSample();
    const routes = (sample.sites as { routes: Record<string, unknown>[] }[])[0]!.routes;
    routes[0]!.mtach = routes[0]!.match;
    assert.deepEqual(validate(schema, sample), ['$.sites[0].routes[0].mtach: not allowed']);
    delete routes[0]!.mtach;
    (routes[0]!.match as Record<string, unknown>).upgrade = 'websockets';
    assert.deepEqual(validate(schema, sample), ['$.sites[0].routes[0].match.upgrade: "websockets" not in enum']);
  });
});
