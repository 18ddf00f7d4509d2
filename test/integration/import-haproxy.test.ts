import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { parseSections, splitWords } from '../../src/tools/import/haproxy/haproxy-parser.js';
import { translateHaproxy } from '../../src/tools/import/haproxy/haproxy-translator.js';
import { emitYaml } from '../../src/tools/import/emit-yaml.js';
import { selfSignedCertificate } from '../helpers/certs.js';
import { spawnSwitchyard, stopSwitchyards, withTimeout } from '../helpers/cli.js';
import { HAPROXY, startHaproxy } from '../helpers/haproxy.js';
import {
  FIXTURE_ROOT, listFixtures, openWebSocket, runImportFixture, sendRequest, startNamedOrigin,
  type ExpectedRequest, type ImportExpectation, type NamedOrigin, type OriginAnswer, type RequestTarget,
} from '../helpers/import-fixtures.js';
import { accepts } from '../helpers/server-process.js';
import { closedPort } from '../helpers/origins.js';
import { connectRaw, readUntil } from '../helpers/raw.js';

after(stopSwitchyards);

/** The HAProxy setups the seeds describe: seed 004's ACL config, and its two sticky-session notes (balance source, cookie). */
const SEED_SETUPS = ['seed-websocket-acl', 'seed-sticky-source', 'seed-sticky-cookie'];

describe('switchyard import haproxy: fixtures', () => {
  test('there is a fixture per seed setup and at least six more', () => {
    const fixtures = listFixtures('haproxy');
    for (const seed of SEED_SETUPS) assert.ok(fixtures.includes(seed), `no fixture ${seed}`);
    assert.ok(fixtures.length >= SEED_SETUPS.length + 6, `only ${fixtures.length} fixtures`);
  });

  for (const name of listFixtures('haproxy')) {
    test(name, { timeout: 60_000 }, async () => {
      await runImportFixture('haproxy', name);
    });
  }
});

/** A temp folder with the given files; removed after the test. */
function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-import-haproxy-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

async function runImport(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const cli = spawnSwitchyard(['import', 'haproxy', ...args]);
  const { code } = await withTimeout(cli.exited, 15_000, 'import');
  return { code, stdout: cli.stdout, stderr: cli.stderr };
}

const MINIMAL = `defaults
    mode http
frontend fe
    bind :8080
    default_backend be
backend be
    server s1 10.0.0.1:8080
`;

describe('switchyard import haproxy: bad input', () => {
  test('a YAML file is not an HAProxy config: exit 1 with file:line:column', async () => {
    const dir = folder({ 'switchyard.yaml': '# a Switchyard config\nlisteners:\n  - address: :80\n' });
    try {
      const file = join(dir, 'switchyard.yaml');
      const result = await runImport([file]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:2:1: not an HAProxy config`));
      assert.match(result.stderr, /SY_IMPORT_INVALID/);
      assert.equal(result.stdout, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an nginx config given as haproxy: exit 1 at its first directive', async () => {
    const dir = folder({ 'nginx.conf': 'user nginx;\n\nhttp {\n    server { listen 80; }\n}\n' });
    try {
      const result = await runImport([join(dir, 'nginx.conf')]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /nginx\.conf:1:1: not an HAProxy config: "user nginx;" comes before any section/);
      assert.match(result.stderr, /SY_IMPORT_INVALID/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an ACL pattern file (-f) that cannot be read: exit 1 at the acl line', async () => {
    const dir = folder({ 'haproxy.cfg': `${MINIMAL}frontend other\n    bind :8081\n    acl known hdr(host) -i -f hosts/known.lst\n    use_backend be if known\n` });
    try {
      const result = await runImport([join(dir, 'haproxy.cfg')]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /haproxy\.cfg:10:5: cannot read the pattern file .*known\.lst named by -f \(no such file\)/);
      assert.match(result.stderr, /SY_IMPORT_INVALID/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a rule naming an ACL that does not exist: exit 1 with its line', async () => {
    const dir = folder({ 'haproxy.cfg': MINIMAL.replace('    default_backend be\n', '    use_backend be if is_websocket\n') });
    try {
      const result = await runImport([join(dir, 'haproxy.cfg')]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /haproxy\.cfg:5:5: no ACL named "is_websocket" in this section \(SY_IMPORT_INVALID\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unterminated quote: exit 1 with line and column', async () => {
    const dir = folder({ 'haproxy.cfg': `${MINIMAL}    http-request set-header X-Note "unfinished\n` });
    try {
      const result = await runImport([join(dir, 'haproxy.cfg')]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /haproxy\.cfg:8:36: unterminated double quote/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a missing file: exit 1', async () => {
    const result = await runImport([join(tmpdir(), 'no-such-haproxy.cfg')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /no-such-haproxy\.cfg:0:0: cannot read the file \(no such file\) \(SY_IMPORT_INVALID\)/);
  });

  test('only mode tcp proxies: exit 1, nothing to translate', async () => {
    const dir = folder({ 'haproxy.cfg': 'defaults\n    mode tcp\nfrontend db\n    bind :3306\n    default_backend db\nbackend db\n    server d 10.0.0.1:3306\n' });
    try {
      const result = await runImport([join(dir, 'haproxy.cfg')]);
      assert.equal(result.code, 1);
      assert.match(result.stderr, /haproxy\.cfg:1:1: nothing to translate/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('an unknown directive is not an error: it is listed with file:line', async () => {
    const dir = folder({ 'haproxy.cfg': MINIMAL.replace('    bind :8080\n', '    bind :8080\n    frobnicate the widgets\n') });
    try {
      const result = await runImport([join(dir, 'haproxy.cfg')]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /Not translated \(1\):\n {2}.*haproxy\.cfg:5:5: frobnicate the widgets: "frobnicate" is not translated/);
      assert.match(result.stdout, /# Not translated \(1\):/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('switchyard import haproxy: reading the language', () => {
  test('words: quotes, escapes and comments', () => {
    const words = (line: string): string[] => splitWords(line, 'x.cfg', 1).map((word) => word.text);
    assert.deepEqual(words('    acl a hdr(host) -i example.com # comment'), ['acl', 'a', 'hdr(host)', '-i', 'example.com']);
    assert.deepEqual(words('http-request set-header X-Note "two words" # trailing'), ['http-request', 'set-header', 'X-Note', 'two words']);
    assert.deepEqual(words("http-request return string 'no \\escape \"here\"'"), ['http-request', 'return', 'string', 'no \\escape "here"']);
    assert.deepEqual(words('reqadd X-Forwarded-Proto:\\ https'), ['reqadd', 'X-Forwarded-Proto: https']);
    assert.deepEqual(words('acl hash path_end \\#top'), ['acl', 'hash', 'path_end', '#top']);
    assert.deepEqual(words('option httpchk GET /health HTTP/1.1\\r\\nHost:\\ a'), ['option', 'httpchk', 'GET', '/health', 'HTTP/1.1\r\nHost: a']);
    assert.deepEqual(words('acl x path_beg pre"fix here"post'), ['acl', 'x', 'path_beg', 'prefix herepost']);
    assert.deepEqual(words('   # only a comment'), []);
    assert.deepEqual(splitWords('server s "${BACKEND}:80"', 'x.cfg', 1)[2]!.env, ['BACKEND']);
  });

  test('sections: keywords at any indentation, directives belong to the section above', () => {
    const sections = parseSections('global\n  maxconn 10\n\nfrontend fe\n bind :80\nbackend be\n    server s 1.2.3.4:80\n', 'x.cfg');
    assert.deepEqual(sections.map((section) => [section.kind, section.name, section.directives.map((directive) => directive.keyword)]), [
      ['global', undefined, ['maxconn']], ['frontend', 'fe', ['bind']], ['backend', 'be', ['server']],
    ]);
    assert.equal(sections[1]!.directives[0]!.location.line, 5);
    assert.equal(sections[1]!.directives[0]!.location.column, 2);
  });

  test('a folder is read like haproxy -f DIR: its *.cfg files in name order', () => {
    const dir = folder({
      '00-global.cfg': 'global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 3s\n',
      '10-frontend.cfg': 'frontend fe\n    bind :8080\n    default_backend be\n',
      '20-backend.cfg': 'backend be\n    server s1 10.0.0.1:8080\n',
      'README': 'not read',
    });
    try {
      const { draft } = translateHaproxy(dir);
      const config = parseYaml(emitYaml(draft, [])) as { upstreams: Record<string, { servers: string[] }>; timeouts: { connect: string }; limits: { max_connections: number } };
      assert.deepEqual(config.upstreams.be!.servers, ['http://10.0.0.1:8080']);
      assert.equal(config.timeouts.connect, '3s');
      assert.equal(config.limits.max_connections, 100);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('ssl crt with certificate and key in one PEM (HAProxy\'s form) passes check', async () => {
    const dir = folder({ 'haproxy.cfg': 'defaults\n    mode http\nfrontend fe\n    bind :8443 ssl crt certs/site.pem\n    default_backend be\nbackend be\n    server s1 10.0.0.1:8080\n' });
    try {
      mkdirSync(join(dir, 'certs'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost', '-days', '1',
        '-keyout', join(dir, 'certs', 'key.pem'), '-out', join(dir, 'certs', 'cert.pem')], { stdio: 'ignore' });
      writeFileSync(join(dir, 'certs', 'site.pem'), readFileSync(join(dir, 'certs', 'cert.pem'), 'utf8') + readFileSync(join(dir, 'certs', 'key.pem'), 'utf8'));
      const output = join(dir, 'out.yaml');
      const result = await runImport([join(dir, 'haproxy.cfg'), '-o', output]);
      assert.equal(result.code, 0, result.stderr);
      const config = parseYaml(readFileSync(output, 'utf8')) as { listeners: { tls: { cert: string; key: string } }[] };
      assert.equal(config.listeners[0]!.tls.cert, join(dir, 'certs', 'site.pem'));
      assert.equal(config.listeners[0]!.tls.key, join(dir, 'certs', 'site.pem'));
      const checked = spawnSwitchyard(['check', '-c', output]);
      assert.equal((await withTimeout(checked.exited, 15_000, 'check')).code, 0, checked.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('hosts, negation, or, unless and anonymous ACLs', () => {
    const dir = folder({
      'haproxy.cfg': `defaults
    mode http
frontend fe
    bind :8080
    acl app hdr(host) -i app.example.com
    acl legacy hdr_dom(host) -i old.example.com
    acl api path_beg /api/
    acl ws hdr(Upgrade) -i websocket
    use_backend realtime if app ws || legacy { path_beg /live/ }
    use_backend api if api !ws
    use_backend www unless legacy
    default_backend old
backend realtime
    server r 10.0.0.1:1
backend api
    server a 10.0.0.2:2
backend www
    server w 10.0.0.3:3
backend old
    server o 10.0.0.4:4
`,
    });
    try {
      const { draft } = translateHaproxy(join(dir, 'haproxy.cfg'));
      const routes = Object.fromEntries(draft.sites.map((site) => [site.hosts!.join(','), site.routes.map((route) => [route.match ?? {}, route.to])]));
      assert.deepEqual(routes['app.example.com'], [
        [{ upgrade: 'websocket' }, 'realtime'],
        [{ upgrade: 'none', prefix: '/api/' }, 'api'],
        [{}, 'www'],
      ]);
      for (const host of ['old.example.com', '*.old.example.com']) {
        assert.deepEqual(routes[host], [
          [{ prefix: '/live/' }, 'realtime'],
          [{ upgrade: 'none', prefix: '/api/' }, 'api'],
          [{}, 'old'],
        ]);
      }
      assert.deepEqual(routes['*'], [
        [{ upgrade: 'none', prefix: '/api/' }, 'api'],
        [{}, 'www'],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * The WebSocket tests HAProxy configs write by hand, and the handshake forms
 * clients send: what the import says each test misses must be what a real
 * HAProxy misses.
 */
describe('switchyard import haproxy: the strict-match advice agrees with a real HAProxy', { skip: HAPROXY === undefined ? 'haproxy is not installed' : false }, () => {
  const forms = [
    'hdr(Upgrade) -i websocket', 'hdr(Upgrade) WebSocket', 'hdr(Upgrade) websocket', 'hdr_beg(Upgrade) -i web',
    'hdr(Connection) -i upgrade', 'hdr(Connection) -m str Upgrade', 'req.fhdr(Connection) -i upgrade', 'hdr_reg(Connection) ^Upgrade$',
    'hdr_sub(Connection) -i upgrade', 'req.hdr(Connection) -m reg -i ^upgrade$',
  ];
  const samples = [
    { header: 'Upgrade: websocket', upgrade: 'websocket', connection: 'Upgrade' },
    { header: 'Upgrade: WebSocket', upgrade: 'WebSocket', connection: 'Upgrade' },
    { header: 'Connection: Upgrade', upgrade: 'websocket', connection: 'Upgrade' },
    { header: 'Connection: upgrade', upgrade: 'websocket', connection: 'upgrade' },
    { header: 'Connection: keep-alive, Upgrade', upgrade: 'websocket', connection: 'keep-alive, Upgrade' },
  ];

  test('each form, each handshake', { timeout: 60_000 }, async () => {
    const rules = forms.map((form, index) => `  http-request return status 200 if { hdr(X-Case) -m str ${index} } { ${form} }`).join('\n');
    const haproxy = await startHaproxy(`  mode http\n  timeout connect 1s\n  timeout client 5s\n  timeout server 5s\n${rules}\n  http-request return status 404\n`);
    try {
      for (const [index, form] of forms.entries()) {
        const missed: string[] = [];
        for (const sample of samples) {
          const socket = await connectRaw(haproxy.port);
          socket.write(`GET /ws HTTP/1.1\r\nHost: example.com\r\nX-Case: ${index}\r\nUpgrade: ${sample.upgrade}\r\nConnection: ${sample.connection}\r\n`
            + 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
          const status = /^HTTP\/1\.1 (\d{3})/.exec(await readUntil(socket, '\r\n'))?.[1];
          socket.destroy();
          if (status === '404') missed.push(sample.header);
          else assert.equal(status, '200', `${form}: ${sample.header}`);
        }
        const said = importAdvice(form);
        // Samples on the other header are outside the test; only misses on its own header count.
        const header = /Upgrade\)/.test(form) ? 'Upgrade' : 'Connection';
        assert.deepEqual(said.sort(), missed.filter((text) => text.startsWith(header)).sort(), `${form}: the import says it misses ${JSON.stringify(said)}, HAProxy missed ${JSON.stringify(missed)}`);
      }
    } finally {
      await haproxy.close();
    }
  });

  /** The handshake forms the import's advice says FORM misses. */
  function importAdvice(form: string): string[] {
    const dir = folder({ 'haproxy.cfg': `defaults\n    mode http\nfrontend fe\n    bind :8080\n    acl t ${form}\n    use_backend ws if t\n    default_backend web\nbackend ws\n    server w 10.0.0.1:1\nbackend web\n    server h 10.0.0.2:2\n` });
    try {
      const { report, draft } = translateHaproxy(join(dir, 'haproxy.cfg'));
      assert.deepEqual(draft.sites[0]!.routes[0]!.match, { upgrade: 'websocket' }, `${form}: not translated as upgrade: websocket`);
      const note = report.advice.find((entry) => entry.location.line === 5);
      if (!note) return [];
      return [...note.message.matchAll(/`([^`]+)`/g)].map((match) => match[1]!).filter((text) => /^(Upgrade|Connection): /.test(text));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

/**
 * The other direction: each fixture's own HAProxy config, run by a real
 * HAProxy with the same origins, must answer the fixture's requests the way
 * the expectation (and so the translation) says: the same backend, path and
 * Host, the same local answers. Redirects to https may differ only in status
 * (HAProxy's 301/302 against Switchyard's 308). Lines HAProxy 2.x no longer
 * accepts are modernised first (option http-tunnel dropped, 1.x keywords
 * renamed), process settings removed, and every bind moved to a free
 * loopback port.
 */
describe('switchyard import haproxy: the fixtures through a real HAProxy reach the same backends', { skip: HAPROXY === undefined ? 'haproxy is not installed' : false }, () => {
  for (const name of listFixtures('haproxy')) {
    test(name, { timeout: 60_000 }, async () => {
      await throughHaproxy(name);
    });
  }
});

interface FixtureExpectation extends Omit<ImportExpectation, 'requests'> {
  readonly requests: readonly (ExpectedRequest & {
    /** Where the translation deliberately differs from HAProxy (a strict test it fixes): what HAProxy itself does, and why. */
    readonly haproxy?: { readonly origin?: string; readonly status?: number; readonly why: string };
  })[];
}

async function throughHaproxy(name: string): Promise<void> {
  const expectation = JSON.parse(readFileSync(join(FIXTURE_ROOT, 'haproxy', `${name}.expect.json`), 'utf8')) as FixtureExpectation;
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-haproxy-fixture-'));
  const cert = await selfSignedCertificate('switchyard-haproxy-fixture-cert-');
  const origins = new Map<string, NamedOrigin>();
  let haproxy: ChildProcess | undefined;
  let haproxyLog = '';
  try {
    cpSync(join(FIXTURE_ROOT, 'haproxy'), dir, { recursive: true });
    for (const pair of expectation.certs ?? []) {
      mkdirSync(dirname(join(dir, pair.cert)), { recursive: true });
      copyFileSync(cert.certFile, join(dir, pair.cert));
      copyFileSync(cert.keyFile, join(dir, pair.key));
    }
    const replacements: [string, string][] = [];
    for (const [address, originName] of Object.entries(expectation.backends ?? {})) {
      if (!origins.has(originName)) origins.set(originName, await startNamedOrigin(originName, expectation.tlsBackends?.includes(originName) ? cert : undefined));
      replacements.push([address, `127.0.0.1:${origins.get(originName)!.port}`]);
    }
    replacements.sort((a, b) => b[0].length - a[0].length);
    for (const file of readdirSync(dir)) {
      if (!/\.(conf|lst)$/.test(file)) continue;
      let text = readFileSync(join(dir, file), 'utf8');
      for (const [from, to] of replacements) text = text.split(from).join(to);
      writeFileSync(join(dir, file), text);
    }
    const { text, binds } = await runnableHaproxyConfig(readFileSync(join(dir, `${name}.conf`), 'utf8'));
    writeFileSync(join(dir, 'run.cfg'), text);
    haproxy = spawn(HAPROXY!, ['-db', '-f', 'run.cfg'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy.stderr?.setEncoding('utf8').on('data', (chunk: string) => { haproxyLog += chunk; });
    const deadline = Date.now() + 10_000;
    for (const { port } of binds.values()) {
      while (!(await accepts(port))) {
        if (haproxy.exitCode !== null || Date.now() > deadline) throw new Error(`haproxy did not start:\n${haproxyLog}\n${text}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    // Requests without a listener go to the translation's first one, as in the fixture harness.
    const first = translateHaproxy(join(dir, `${name}.conf`)).draft.listeners[0]!.address;
    for (const written of expectation.requests) {
      const request = { ...written, ...written.haproxy };
      const bind = binds.get(request.listen ?? first);
      assert.ok(bind, `${name}: no bind for ${request.listen ?? first}`);
      const what = `${name} through HAProxy: ${request.websocket ? 'WebSocket' : (request.method ?? 'GET')} ${request.host}${request.path}`;
      const answer = request.websocket ? await openWebSocket(request, bind.port, bind.tls) : await haproxyHttp(request, bind.port, bind.tls);
      if (request.status !== undefined) {
        if (request.status === 308) assert.ok(answer.status >= 301 && answer.status <= 308, `${what}: status ${answer.status}`);
        else assert.equal(answer.status, request.status, `${what}: status`);
        if (request.location !== undefined) assert.equal(answer.location, request.location, `${what}: Location`);
        if (request.origin === undefined) continue;
      } else assert.equal(answer.status, request.websocket ? 101 : 200, `${what}: status`);
      assert.ok(answer.origin, `${what}: no answer from an origin`);
      if (request.origin !== undefined) assert.equal(answer.origin.origin, request.origin, `${what}: reached the wrong backend`);
      if (request.originPath !== undefined) assert.equal(answer.origin.url, request.originPath, `${what}: path at the backend`);
      if (request.originHost !== undefined) assert.equal(answer.origin.host, request.originHost, `${what}: Host at the backend`);
    }
  } finally {
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((resolve) => haproxy!.once('exit', resolve));
      haproxy.kill('SIGKILL');
      await exited;
    }
    for (const origin of origins.values()) await origin.close();
    cert.remove();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The fixture's config as HAProxy 2.x runs it here: modern keywords, no process settings, binds on free loopback ports. */
async function runnableHaproxyConfig(source: string): Promise<{ text: string; binds: Map<string, { port: number; tls: boolean }> }> {
  const binds = new Map<string, { port: number; tls: boolean }>();
  const lines: string[] = [];
  for (const raw of source.split('\n')) {
    let line = raw
      .replace(/^(\s*)contimeout\s/, '$1timeout connect ').replace(/^(\s*)clitimeout\s/, '$1timeout client ').replace(/^(\s*)srvtimeout\s/, '$1timeout server ')
      .replace(/^(\s*)block\s/, '$1http-request deny ')
      // A large maxconn makes HAProxy raise its file limit, which a test machine may not allow.
      .replace(/^(\s*)maxconn\s+\d+\s*$/, '$1maxconn 2000')
      .replace(/^(\s*)reqadd\s+([^:\s]+):\\ (.*)$/, '$1http-request add-header $2 $3').replace(/^(\s*)rspadd\s+([^:\s]+):\\ (.*)$/, '$1http-response add-header $2 $3');
    if (/^\s*(option\s+http-tunnel|user|group|daemon|chroot|pidfile|nbproc|stats\s+socket)\b/.test(line)) continue;
    const bind = /^(\s*bind\s+)(\S+)(.*)$/.exec(line);
    if (bind) {
      const tls = /\sssl(\s|$)/.test(bind[3]!);
      const addresses: string[] = [];
      for (const address of bind[2]!.split(',')) {
        const colon = address.lastIndexOf(':');
        const host = address.slice(0, colon).replace(/^\[|\]$/g, '');
        const key = ['', '*', '0.0.0.0', '::', ':'].includes(host) ? `:${address.slice(colon + 1)}` : `${host}:${address.slice(colon + 1)}`;
        const port = await closedPort();
        binds.set(key, { port, tls });
        addresses.push(`127.0.0.1:${port}`);
      }
      line = `${bind[1]!}${addresses.join(',')}${bind[3]!}`;
    }
    lines.push(line);
  }
  return { text: lines.join('\n'), binds };
}

/** An HTTP request through HAProxy; `origin` is the named origin's answer when the body is one. */
async function haproxyHttp(request: RequestTarget, port: number, tls: boolean): Promise<{ status: number; location: string | undefined; origin?: OriginAnswer }> {
  const { status, location, body } = await sendRequest(request, port, tls);
  let origin: OriginAnswer | undefined;
  try {
    origin = JSON.parse(body) as OriginAnswer;
  } catch {
    origin = undefined;
  }
  return { status, location, ...(origin ? { origin } : {}) };
}
