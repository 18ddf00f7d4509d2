import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { translateNginx } from '../../src/tools/import/nginx/nginx-translator.js';
import { listenAddress, splitHostPort } from '../../src/tools/import/values.js';
import { FIXTURE_ROOT, listFixtures, copyFixture, type ExpectedRequest, type ImportExpectation } from '../helpers/import-fixtures.js';
import { NGINX } from '../helpers/nginx.js';
import { closedPort } from '../helpers/origins.js';
import { askHttp, askWebSocket, compareAnswer } from '../helpers/original-server-requests.js';
import { accepts } from '../helpers/server-process.js';

/**
 * The nginx fixtures' expectations proven against nginx itself: each
 * fixture's own config, run by a real nginx with the same origins, must
 * answer the fixture's requests the way the expectation (and so the
 * translation) says: the same backend, path and Host, the same local answers.
 * Where nginx deliberately differs (a WebSocket through a location that never
 * passed Upgrade headers, a backend Switchyard cannot reach at all), the
 * request carries `nginx: { origin?, status?, why }` saying what nginx does.
 * To run unprivileged on loopback, the copy's process settings (user, pid)
 * go, logs, caches and temp files stay in the temp folder, every listen moves
 * to 127.0.0.1 on a free port (one per address the translation would have;
 * an IPv6 listen beside an IPv4 one on the same port in a server is dropped),
 * and a sites-style file is wrapped in `events {} http { }`.
 */
describe('switchyard import nginx: the fixtures through a real nginx reach the same backends', { skip: !NGINX && 'nginx not installed' }, () => {
  for (const name of listFixtures('nginx')) {
    test(name, { timeout: 30_000 }, () => throughNginx(name));
  }
});

interface NginxPort { port: number; tls: boolean }

async function throughNginx(name: string): Promise<void> {
  const expectation = JSON.parse(readFileSync(join(FIXTURE_ROOT, 'nginx', `${name}.expect.json`), 'utf8')) as ImportExpectation;
  const copy = await copyFixture('nginx', expectation, 'switchyard-nginx-fixture-');
  const { dir, replacements } = copy;
  let nginx: ChildProcess | undefined;
  try {
    const ports = new Map<string, NginxPort>();
    await rewriteTree(dir, dir, name, replacements, ports);
    const runFile = runnableMain(dir, name);

    // Requests without a listener go to the translation's first one, as in the fixture harness.
    const listeners = translateNginx(join(FIXTURE_ROOT, 'nginx', `${name}.conf`)).draft.listeners.map((listener) => listener.address);
    for (const address of listeners) assert.ok(ports.has(address), `${name}: the translation listens on ${address}, the nginx copy does not (have ${[...ports.keys()].join(', ')})`);

    const errorLog = join(dir, 'error.log');
    nginx = spawn(NGINX!, ['-p', dir, '-c', runFile, '-e', errorLog], { stdio: 'ignore' });
    nginx.once('error', () => undefined);
    const deadline = Date.now() + 10_000;
    for (const address of listeners) {
      while (!(await accepts(ports.get(address)!.port))) {
        if (nginx.exitCode !== null || Date.now() > deadline) {
          throw new Error(`nginx did not start for ${name}:\n${existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '(no error log)'}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }

    // Every request is sent; the differences are reported together, each with what nginx answered.
    const differences: string[] = [];
    for (const written of expectation.requests) {
      const request: ExpectedRequest = { ...written, ...written.nginx };
      if (written.nginx) {
        assert.ok(written.nginx.why.trim().length > 0, `${name}: an nginx override without a why`);
        const keys = ['origin', 'status', 'originPath', 'originHost'] as const;
        assert.ok(keys.some((key) => written.nginx![key] !== undefined && written.nginx![key] !== written[key]), `${name}: the nginx override of ${written.path} changes nothing`);
      }
      const listen = request.listen ?? listeners[0]!;
      const bind = ports.get(listen);
      assert.ok(bind, `${name}: no nginx listen for ${listen}`);
      const what = `${request.websocket ? 'WebSocket' : (request.method ?? 'GET')} ${listen} ${request.host}${request.path}`;
      const answer = request.websocket ? await askWebSocket(request, bind.port, bind.tls) : await askHttp(request, bind.port, bind.tls);
      const difference = compareAnswer(request, answer);
      if (difference) differences.push(`${what}: ${difference}; nginx answered ${JSON.stringify(answer)}`);
    }
    assert.equal(differences.length, 0, `${name}: real nginx differs from the expectation:\n  ${differences.join('\n  ')}`);
  } finally {
    if (nginx?.pid !== undefined && nginx.exitCode === null && nginx.signalCode === null) {
      const exited = new Promise((resolve) => nginx!.once('exit', resolve));
      nginx.kill('SIGKILL');
      await exited;
    }
    await copy.closeOrigins();
    copy.remove();
  }
}

/**
 * Rewrites the config files under `dir` (all but other fixtures' main files) in place: backend addresses to the
 * origins, process settings out, log and cache paths into `root`, and every
 * listen to 127.0.0.1 on a free port, recorded in `ports` by the address the
 * translation gives that listen (":443", "127.0.0.1:8081").
 */
async function rewriteTree(root: string, dir: string, name: string, replacements: readonly [string, string][], ports: Map<string, NginxPort>): Promise<void> {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      await rewriteTree(root, path, name, replacements, ports);
      continue;
    }
    if (/\.(pem|crt|key|json)$/.test(entry)) continue;
    // The other fixtures' main files are never loaded: their listens must not count.
    if (dir === root && entry.endsWith('.conf') && entry !== `${name}.conf`) continue;
    let text = readFileSync(path, 'utf8');
    for (const [from, to] of replacements) text = text.split(from).join(to);
    text = text
      .replace(/^(\s*)(user|pid|daemon|master_process)(\s[^;]*)?;/gm, '$1# $2$3;')
      .split('/var/log/nginx/').join('logs/')
      .split('/var/cache/nginx').join(join(root, 'cache'));
    writeFileSync(path, await remapListens(text, ports));
  }
}

/** The listens of each server block (from one `server {` line to the next) moved to 127.0.0.1:FREEPORT, flags kept. */
async function remapListens(text: string, ports: Map<string, NginxPort>): Promise<string> {
  const lines = text.split('\n');
  const starts = lines.flatMap((line, index) => (/^\s*server\s*\{/.test(line) ? [index] : []));
  for (const [n, start] of starts.entries()) {
    const end = starts[n + 1] ?? lines.length;
    const sslOn = lines.slice(start, end).some((line) => /^\s*ssl\s+on\s*;/.test(line));
    const listens: { index: number; indent: string; address: string; ipv6: boolean; flags: string; rest: string }[] = [];
    for (let index = start; index < end; index++) {
      const match = /^(\s*)listen\s+([^;\s]+)([^;]*);(.*)$/.exec(lines[index]!);
      if (!match) continue;
      const target = match[2]!;
      const { host, port } = /^\d+$/.test(target) ? { host: undefined, port: Number(target) } : splitHostPort(target);
      listens.push({ index, indent: match[1]!, address: listenAddress(host, port ?? 80), ipv6: target.startsWith('['), flags: match[3]!, rest: match[4]! });
    }
    if (listens.length === 0) {
      // nginx's own default (*:80 as root, *:8000 otherwise) made explicit: the translation takes :80.
      lines[start] = `${lines[start]!} listen 127.0.0.1:${(await portFor(ports, ':80', sslOn)).port};`;
      continue;
    }
    for (const listen of listens) {
      const tls = sslOn || /(^|\s)ssl(\s|$)/.test(listen.flags);
      // [::]:80 beside 80 in one server: one loopback socket serves both.
      if (listen.ipv6 && listens.some((other) => !other.ipv6 && other.address === listen.address)) {
        lines[listen.index] = `${listen.indent}# (IPv6 twin dropped)${listen.rest}`;
        continue;
      }
      const { port } = await portFor(ports, listen.address, tls);
      lines[listen.index] = `${listen.indent}listen 127.0.0.1:${port}${listen.flags.replace(/\s+ipv6only=\w+/, '')};${listen.rest}`;
    }
  }
  return lines.join('\n');
}

async function portFor(ports: Map<string, NginxPort>, address: string, tls: boolean): Promise<NginxPort> {
  let entry = ports.get(address);
  if (!entry) {
    entry = { port: await closedPort(), tls };
    ports.set(address, entry);
  }
  if (tls) entry.tls = true;
  return entry;
}

/** The file nginx runs: no daemon, one process, pid and logs in the folder; the fixture inside http { } unless it has its own. */
function runnableMain(dir: string, name: string): string {
  for (const sub of ['logs', 'cache', 'tmp/client_body', 'tmp/proxy', 'tmp/fastcgi', 'tmp/uwsgi', 'tmp/scgi']) mkdirSync(join(dir, sub), { recursive: true });
  if (!existsSync(join(dir, 'mime.types'))) {
    if (existsSync('/etc/nginx/mime.types')) copyFileSync('/etc/nginx/mime.types', join(dir, 'mime.types'));
    else writeFileSync(join(dir, 'mime.types'), 'types {}\n');
  }
  const httpSettings = ['access_log off;', ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((sub) => `${sub}_temp_path ${join(dir, 'tmp', sub)};`)].join('\n');
  const mainFile = join(dir, `${name}.conf`);
  const text = readFileSync(mainFile, 'utf8');
  const main = [`daemon off;`, `master_process off;`, `pid ${join(dir, 'nginx.pid')};`, `error_log ${join(dir, 'error.log')} warn;`];
  if (!/^\s*events\s*\{/m.test(text)) main.push('events { worker_connections 256; }');
  if (/^\s*http\s*\{/m.test(text)) {
    writeFileSync(mainFile, text.replace(/^(\s*http\s*\{)/m, `$1\n${httpSettings}`));
    main.push(`include ${name}.conf;`);
  } else {
    main.push(`http {\n${httpSettings}\ninclude ${name}.conf;\n}`);
  }
  const runFile = join(dir, `${name}.nginx-run.conf`);
  writeFileSync(runFile, `${main.join('\n')}\n`);
  return runFile;
}
