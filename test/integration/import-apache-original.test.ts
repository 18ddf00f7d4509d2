import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { describe, test } from 'node:test';
import { translateApache } from '../../src/tools/import/apache/apache-translator.js';
import { listenAddress, splitHostPort } from '../../src/tools/import/values.js';
import { APACHE } from '../helpers/apache.js';
import { type TestCertificate } from '../helpers/certs.js';
import { FIXTURE_ROOT, listFixtures, copyFixture, type ExpectedRequest, type ImportExpectation } from '../helpers/import-fixtures.js';
import { closedPort } from '../helpers/origins.js';
import { askHttp, askWebSocket, compareAnswer } from '../helpers/original-server-requests.js';
import { accepts } from '../helpers/server-process.js';

/**
 * The Apache fixtures' expectations proven against httpd itself: each
 * fixture's own config, run by a real Apache 2.4 (Debian's apache2, one
 * process in the foreground) with the same origins, must answer the fixture's
 * requests the way the expectation (and so the translation) says: the same
 * backend, path and Host, the same local answers. Where httpd deliberately
 * differs (a WebSocket through an http:// ProxyPass without
 * upgrade=websocket, a case-sensitive RewriteCond the translation relaxes,
 * Basic auth it leaves open, hand-set Upgrade headers it drops, a backend
 * whose host comes from a capture), the request carries
 * `apache: { origin?, status?, originPath?, originHost?, why }` saying what
 * httpd does. A relative Location counts as the absolute URL it stands for
 * (httpd writes its redirects absolute).
 *
 * To run on loopback, a main httpd.conf in the temp copy sets ServerRoot to
 * the copy, keeps pid, logs, mutexes and runtime files there, loads the
 * modules the fixtures use from /usr/lib/apache2/modules, defines Debian's
 * envvars (APACHE_LOG_DIR, ...) and includes the fixture. In the fixture's
 * files LoadModule, Listen, User, Group, PidFile, DefaultRuntimeDir and
 * ErrorLog lines are commented out, /var/log/apache2 goes to the copy's logs,
 * absolute DocumentRoots (and the <Directory> sections naming them) move into
 * the copy, and every <VirtualHost> address goes to 127.0.0.1 on a free port:
 * one per address the translation would listen on, each with its Listen in
 * the main file. Backends are replaced as the fixture harness does, except
 * that TLS backends are called localhost (the test certificate's DNS name),
 * since httpd checks a backend certificate's name against DNS names only. A
 * chain file or DH parameters file the fixture does not ship is provided or
 * left out.
 */
describe('switchyard import apache: the fixtures through a real Apache httpd reach the same backends', { skip: !APACHE && 'apache2 not installed' }, () => {
  for (const name of listFixtures('apache')) {
    test(name, { timeout: 30_000 }, () => throughApache(name));
  }
});

const MODULES_DIR = '/usr/lib/apache2/modules';

/** What the fixtures use; those compiled into Debian's binary (log_config, unixd) have no .so and are skipped. */
const MODULES = [
  'mpm_event', 'unixd', 'authz_core', 'authz_host', 'authn_core', 'auth_basic', 'authn_file', 'authz_user',
  'proxy', 'proxy_http', 'proxy_wstunnel', 'proxy_balancer', 'lbmethod_byrequests', 'lbmethod_bybusyness', 'slotmem_shm',
  'rewrite', 'headers', 'ssl', 'socache_shmcb', 'alias', 'dir', 'mime', 'log_config', 'setenvif', 'env', 'filter',
];

interface ApachePort { port: number; tls: boolean }

type Request = { -readonly [K in keyof ExpectedRequest]: ExpectedRequest[K] };

async function throughApache(name: string): Promise<void> {
  const expectation = JSON.parse(readFileSync(join(FIXTURE_ROOT, 'apache', `${name}.expect.json`), 'utf8')) as ImportExpectation;
  const copy = await copyFixture('apache', expectation, 'switchyard-apache-fixture-', 'localhost');
  const { dir, cert, replacements } = copy;
  let apache: ChildProcess | undefined;
  let stderr = '';
  try {

    // The translation's listeners: which addresses exist, which speak TLS, and the default for requests without `listen`.
    const listeners = translateApache(join(FIXTURE_ROOT, 'apache', `${name}.conf`)).draft.listeners;
    const files = configFiles(dir, dir, name);
    const texts = new Map(files.map((file) => {
      let text = readFileSync(file, 'utf8');
      for (const [from, to] of replacements) text = text.split(from).join(to);
      return [file, text] as const;
    }));
    const ports = await allocatePorts([...texts.values()], listeners.map((listener) => ({ address: listener.address, tls: listener.tls !== undefined })));
    for (const listener of listeners) {
      assert.ok(ports.byAddress.has(listener.address), `${name}: the translation listens on ${listener.address}, the Apache copy does not (have ${[...ports.byAddress.keys()].join(', ')})`);
    }
    const documentRoots = new Set<string>();
    for (const text of texts.values()) {
      for (const match of text.matchAll(/^\s*DocumentRoot\s+"?([^"\s]+)"?/gim)) if (isAbsolute(match[1]!)) documentRoots.add(match[1]!.replace(/\/+$/, ''));
    }
    for (const [file, text] of texts) writeFileSync(file, runnableText(text, dir, ports, [...documentRoots], cert));
    for (const root of documentRoots) mkdirSync(join(dir, 'docroot', root), { recursive: true });
    const confFile = writeMain(dir, name, ports);
    readableByAll(dir);

    const errorLog = join(dir, 'error.log');
    apache = spawn(APACHE!, ['-X', '-d', dir, '-f', confFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    apache.once('error', () => undefined);
    apache.stderr?.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
    const deadline = Date.now() + 10_000;
    for (const { port } of ports.byAddress.values()) {
      while (!(await accepts(port))) {
        if (apache.exitCode !== null || Date.now() > deadline) {
          throw new Error(`apache2 did not start for ${name}:\n${stderr}${existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '(no error log)'}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }

    // Every request is sent; the differences are reported together, each with what httpd answered.
    const differences: string[] = [];
    for (const written of expectation.requests) {
      const request = withOverride(name, written);
      const listen = request.listen ?? listeners[0]!.address;
      const bind = ports.byAddress.get(listen);
      assert.ok(bind, `${name}: no Apache listen for ${listen}`);
      const what = `${request.websocket ? 'WebSocket' : (request.method ?? 'GET')} ${listen} ${request.host}${request.path}`;
      const answer = request.websocket ? await askWebSocket(request, bind.port, bind.tls) : await askHttp(request, bind.port, bind.tls);
      const url = `${bind.tls ? 'https' : 'http'}://${request.host}${request.path}`;
      const difference = compareAnswer(request, answer, (actual, expected) => sameLocation(actual, expected, url));
      if (difference) differences.push(`${what}: ${difference}; httpd answered ${JSON.stringify(answer)}`);
    }
    const log = existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '';
    assert.equal(differences.length, 0, `${name}: real Apache httpd differs from the expectation:\n  ${differences.join('\n  ')}\nerror log:\n${log}`);
  } finally {
    // Origins first: their end closes httpd's tunnels, which a stopping httpd would otherwise wait for.
    await copy.closeOrigins();
    if (apache) await stop(apache);
    copy.remove();
  }
}

/** The request as httpd should answer it: the written one with its `apache` override (checked to say why and to change something). */
function withOverride(name: string, written: ExpectedRequest): Request {
  const { apache: override, nginx: _nginx, ...request } = written as Request;
  if (!override) return request;
  assert.ok(override.why.trim().length > 0, `${name}: an apache override of ${written.path} without a why`);
  const keys = ['origin', 'status', 'originPath', 'originHost'] as const;
  assert.ok(keys.some((key) => override[key] !== undefined && override[key] !== written[key]), `${name}: the apache override of ${written.path} changes nothing`);
  for (const key of keys) if (override[key] !== undefined) (request as Record<string, unknown>)[key] = override[key];
  if (override.status !== undefined && override.status !== written.status) {
    delete request.location;
    // A local answer (not an origin's 200 or 101): the written origin, path and Host no longer apply.
    if (override.status !== 200 && override.status !== 101 && override.origin === undefined) {
      delete request.origin;
      delete request.originPath;
      delete request.originHost;
    }
  }
  return request;
}

/** The same Location once both are resolved against the request's URL, as a client resolves them ("/new" and httpd's "http://host/new"). */
function sameLocation(actual: string | undefined, expected: string, url: string): boolean {
  if (actual === undefined) return false;
  if (actual === expected) return true;
  try {
    return new URL(actual, url).href === new URL(expected, url).href;
  } catch {
    return false;
  }
}

/** The copy's config files that httpd may read: all but certificates, expectations and the other fixtures' main files. */
function configFiles(root: string, dir: string, name: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) {
      files.push(...configFiles(root, path, name));
      continue;
    }
    if (/\.(pem|crt|key|json)$/.test(entry)) continue;
    if (dir === root && entry.endsWith('.conf') && entry !== `${name}.conf`) continue;
    files.push(path);
  }
  return files;
}

interface Ports {
  /** The translation's listener address (":443", "10.0.0.1:8080") → the loopback port standing in for it. */
  readonly byAddress: Map<string, ApachePort>;
  /** The port a `Listen` or `<VirtualHost>` names → the translation's address for it. */
  readonly addressOfPort: Map<number, string>;
}

/**
 * One free port per address: the `Listen` lines' (as the translation writes
 * them), then the ports of <VirtualHost> sections no Listen names (`:PORT`,
 * as the translation creates them). TLS where the translation's listener is.
 */
async function allocatePorts(texts: readonly string[], listeners: readonly { address: string; tls: boolean }[]): Promise<Ports> {
  const byAddress = new Map<string, ApachePort>();
  const addressOfPort = new Map<number, string>();
  const add = async (address: string, port: number): Promise<void> => {
    if (!addressOfPort.has(port)) addressOfPort.set(port, address);
    if (!byAddress.has(address)) byAddress.set(address, { port: await closedPort(), tls: listeners.some((listener) => listener.address === address && listener.tls) });
  };
  for (const text of texts) {
    for (const match of text.matchAll(/^\s*Listen\s+(\S+)/gim)) {
      const target = match[1]!;
      const { host, port } = /^\d+$/.test(target) ? { host: undefined, port: Number(target) } : splitHostPort(target);
      if (port !== undefined) await add(listenAddress(host, port), port);
    }
  }
  for (const text of texts) {
    for (const match of text.matchAll(/^\s*<VirtualHost\s+([^>]*)>/gim)) {
      for (const word of match[1]!.trim().split(/\s+/)) {
        const { port } = splitHostPort(word.replace(/^"|"$/g, ''));
        if (port !== undefined && !addressOfPort.has(port)) await add(`:${port}`, port);
      }
    }
  }
  return { byAddress, addressOfPort };
}

/** One file made runnable here (see the describe's comment). */
function runnableText(text: string, dir: string, ports: Ports, documentRoots: readonly string[], cert: TestCertificate): string {
  if (documentRoots.length > 0) {
    // One pass, longest first, so /var/www/html is not moved twice when /var/www is a root too.
    const roots = [...documentRoots].sort((a, b) => b.length - a.length).map((root) => root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    text = text.replace(new RegExp(roots.join('|'), 'g'), (root) => join(dir, 'docroot', root));
  }
  return text.split('\n').map((line) => {
    if (/^\s*(LoadModule|Listen|User|Group|PidFile|DefaultRuntimeDir|ErrorLog)\s/i.test(line)) return `# (run by the test) ${line}`;
    const vhost = /^(\s*<VirtualHost\s+)([^>]*)(>.*)$/i.exec(line);
    if (vhost) {
      const addresses = vhost[2]!.trim().split(/\s+/).map((word) => {
        const { port } = splitHostPort(word.replace(/^"|"$/g, ''));
        const address = port === undefined ? undefined : ports.addressOfPort.get(port);
        return address === undefined ? word : `127.0.0.1:${ports.byAddress.get(address)!.port}`;
      });
      return `${vhost[1]}${addresses.join(' ')}${vhost[3]}`;
    }
    // A chain file the fixture does not provide: the test certificate stands in (httpd refuses a missing one).
    const chain = /^\s*SSLCertificateChainFile\s+"?([^"\s]+)"?/i.exec(line);
    if (chain && !existsSync(isAbsolute(chain[1]!) ? chain[1]! : join(dir, chain[1]!))) {
      const file = isAbsolute(chain[1]!) ? join(dir, 'docroot', chain[1]!) : join(dir, chain[1]!);
      mkdirSync(dirname(file), { recursive: true });
      copyFileSync(cert.certFile, file);
      return line.replace(chain[1]!, file);
    }
    // DH parameters in a file the fixture does not provide (the translation skips the line too).
    const dh = /^\s*SSLOpenSSLConfCmd\s+DHParameters\s+"?([^"\s]+)"?/i.exec(line);
    if (dh && !existsSync(isAbsolute(dh[1]!) ? dh[1]! : join(dir, dh[1]!))) return `# (no such file here) ${line}`;
    return line.split('/var/log/apache2/').join(`${join(dir, 'logs')}/`);
  }).join('\n');
}

/** The main file: process settings and modules, Debian's envvars, one Listen per port, then the fixture. */
function writeMain(dir: string, name: string, ports: Ports): string {
  for (const sub of ['logs', 'run', 'htdocs']) mkdirSync(join(dir, sub), { recursive: true });
  const mimeTypes = existsSync('/etc/mime.types') ? '/etc/mime.types' : join(dir, 'mime.types');
  if (!existsSync(mimeTypes)) writeFileSync(mimeTypes, '');
  const modules = MODULES.filter((module) => existsSync(join(MODULES_DIR, `mod_${module}.so`)));
  const lines = [
    `ServerRoot ${dir}`,
    `Define APACHE_RUN_DIR ${join(dir, 'run')}`,
    `Define APACHE_LOCK_DIR ${join(dir, 'run')}`,
    `Define APACHE_PID_FILE ${join(dir, 'httpd.pid')}`,
    `Define APACHE_LOG_DIR ${join(dir, 'logs')}`,
    'Define APACHE_RUN_USER nobody',
    'Define APACHE_RUN_GROUP nogroup',
    `DefaultRuntimeDir ${join(dir, 'run')}`,
    `PidFile ${join(dir, 'httpd.pid')}`,
    `ErrorLog ${join(dir, 'error.log')}`,
    'LogLevel warn',
    `Mutex file:${join(dir, 'run')} default`,
    'ServerName localhost',
    ...modules.map((module) => `LoadModule ${module}_module ${MODULES_DIR}/mod_${module}.so`),
    'User nobody',
    'Group nogroup',
    `TypesConfig ${mimeTypes}`,
    `DocumentRoot ${join(dir, 'htdocs')}`,
    ...[...ports.byAddress.values()].map(({ port, tls }) => `Listen 127.0.0.1:${port}${tls ? ' https' : ''}`),
    `Include ${name}.conf`,
  ];
  const file = join(dir, 'httpd.conf');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** Folders open to `nobody` (httpd's user after it binds): document roots and .htaccess lookups happen as that user. */
function readableByAll(dir: string): void {
  chmodSync(dir, 0o755);
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) readableByAll(path);
  }
}

/**
 * SIGKILL, then the POSIX shared memory httpd mapped is removed: with -X it
 * never runs the pool cleanup that would unlink it (mod_slotmem_shm's
 * balancer slots stay in /dev/shm otherwise, even after SIGTERM, which with
 * -X can also hang on a closing tunnel). Mutexes and the rest are files in
 * the temp folder.
 */
async function stop(apache: ChildProcess): Promise<void> {
  if (apache.pid === undefined || apache.exitCode !== null || apache.signalCode !== null) return;
  let shared: string[] = [];
  try {
    shared = [...new Set(readFileSync(`/proc/${apache.pid}/maps`, 'utf8').match(/\/dev\/shm\/ShM\.\S+/g) ?? [])];
  } catch {
    // No /proc (not Linux), or httpd just exited: nothing to remove.
  }
  const exited = new Promise((resolve) => apache.once('exit', resolve));
  apache.kill('SIGKILL');
  await exited;
  for (const file of shared) rmSync(file, { force: true });
}
