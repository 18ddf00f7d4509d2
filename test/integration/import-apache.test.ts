/**
 * `switchyard import apache`: every fixture in test/fixtures/import/apache is
 * imported, checked and run against real origins (HTTP and WebSocket reach the
 * backends the Apache config pointed at); bad input gets one clear line with
 * file:line:column; the parser's corner cases (quotes, continuation lines,
 * comments, sections, includes) are pinned down.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { spawnSwitchyard, stopSwitchyards, withTimeout } from '../helpers/cli.js';
import { listFixtures, runImportFixture } from '../helpers/import-fixtures.js';
import { ImportReport } from '../../src/tools/import/import-report.js';
import { logicalLines, parseApacheConfig, splitArgs } from '../../src/tools/import/apache/apache-parser.js';
import { translateApache } from '../../src/tools/import/apache/apache-translator.js';

/** The Apache setups the seeds in ../shared/seeds describe, each with its own fixture. */
const SEED_FIXTURES = [
  'seed000-rewrite-generic',
  'seed000-rewrite-strict',
  'seed000-location-wss',
  'seed001-wss-to-ws',
  'seed002-wstunnel-docs',
  'seed003-grafana-loki',
  'seed004-location-ws',
  'seed004-location-ws-ordered',
];

after(() => stopSwitchyards());

describe('import apache fixtures', () => {
  test(`there are the seed fixtures plus at least 6 more (${listFixtures('apache').length})`, () => {
    const fixtures = listFixtures('apache');
    for (const seed of SEED_FIXTURES) assert.ok(fixtures.includes(seed), `missing fixture ${seed}`);
    assert.ok(fixtures.length >= SEED_FIXTURES.length + 6, `only ${fixtures.length} fixtures`);
  });

  for (const name of listFixtures('apache')) {
    test(name, { timeout: 60_000 }, async () => {
      await runImportFixture('apache', name);
    });
  }
});

describe('import apache: bad input', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-import-apache-bad-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string): string => {
    const file = join(dir, name);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, text);
    return file;
  };

  const run = async (args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> => {
    const cli = spawnSwitchyard(['import', ...args]);
    const exit = await withTimeout(cli.exited, 15_000, 'import');
    return { code: exit.code, stdout: cli.stdout, stderr: cli.stderr };
  };

  test('an nginx file given as apache: exit 1 at its first line', async () => {
    const file = write('nginx.conf', '# nginx\nuser nginx;\nevents { worker_connections 1024; }\nhttp {\n  server {\n    listen 80;\n  }\n}\n');
    const result = await run(['apache', file]);
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, new RegExp(`${escape(file)}:2:1: not an Apache config: "user nginx;" \\(nginx syntax`));
    assert.match(result.stderr, /SY_IMPORT_INVALID/);
    assert.equal(result.stdout, '');
  });

  test('an empty file, and one that proxies nothing: exit 1, nothing written', async () => {
    for (const [name, text] of [['empty.conf', ''], ['names-only.conf', 'ServerName www.example.test\nDocumentRoot /var/www/html\n']] as const) {
      const file = write(name, text);
      const result = await run(['apache', file]);
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`${escape(file)}:1:1: no ProxyPass, RewriteRule \\[P\\] or Redirect: nothing to proxy`));
      assert.equal(result.stdout, '');
    }
  });

  test('a YAML file: exit 1 at the first key', async () => {
    const file = write('switchyard.yaml', 'listeners:\n  - address: :80\nsites: []\n');
    const result = await run(['apache', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${escape(file)}:1:1: not an Apache config: "listeners:"`));
    assert.match(result.stderr, /SY_IMPORT_INVALID/);
  });

  test('a JSON file and an HAProxy file: exit 1 with file:line:column', async () => {
    const json = write('config.json', '{\n  "listeners": []\n}\n');
    const jsonResult = await run(['apache', json]);
    assert.equal(jsonResult.code, 1);
    assert.match(jsonResult.stderr, new RegExp(`${escape(json)}:1:1: not an Apache config`));
    const haproxy = write('haproxy.cfg', 'global\n    maxconn 4000\n\ndefaults\n    mode http\n    timeout connect 5s\n\nfrontend web\n    bind *:80\n    default_backend app\n');
    const haproxyResult = await run(['apache', haproxy]);
    assert.equal(haproxyResult.code, 1);
    assert.match(haproxyResult.stderr, new RegExp(`${escape(haproxy)}:1:1: not an Apache config: "global"`));
  });

  test('an Include that matches nothing: exit 1 at the including line', async () => {
    const file = write('include-missing.conf', 'Listen 80\n\n<VirtualHost *:80>\n    ServerName a.example\n    Include conf.d/nothing-*.conf\n    ProxyPass / http://127.0.0.1:9/\n</VirtualHost>\n');
    const result = await run(['apache', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${escape(file)}:5:5: Include conf.d/nothing-\\*.conf: no file matches`));
    assert.match(result.stderr, /SY_IMPORT_INVALID/);
  });

  test('IncludeOptional that matches nothing is listed, not an error', async () => {
    const file = write('include-optional.conf', 'Listen 80\nIncludeOptional sites-enabled/*.conf\n<VirtualHost *:80>\n    ProxyPass / http://127.0.0.1:9/\n</VirtualHost>\n');
    const result = await run(['apache', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /include-optional\.conf:2:1: IncludeOptional sites-enabled\/\*\.conf: IncludeOptional: no file matches/);
  });

  test('an included file that is not Apache: exit 1 at its line', async () => {
    write('mixed/conf.d/other.conf', 'server {\n  listen 80;\n}\n');
    const file = write('mixed/main.conf', 'Listen 80\nInclude conf.d/*.conf\n');
    const result = await run(['apache', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /mixed\/conf\.d\/other\.conf:1:1: not an Apache config: "server \{"/);
  });

  test('an include loop: exit 1', async () => {
    write('loop/a.conf', 'Listen 80\nInclude b.conf\n');
    write('loop/b.conf', 'ServerName b\nInclude a.conf\n');
    const result = await run(['apache', join(dir, 'loop/a.conf')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /include loop/);
  });

  test('an unclosed section and a mismatched one: exit 1 with the line', async () => {
    const unclosed = write('unclosed.conf', 'Listen 80\n<VirtualHost *:80>\n    ServerName a.example\n    <Location /ws/>\n        ProxyPass ws://127.0.0.1:9/\n</VirtualHost>\n');
    const result = await run(['apache', unclosed]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${escape(unclosed)}:6:1: </VirtualHost> closes <Location> opened at line 4`));
    const open = write('open.conf', 'Listen 80\n<VirtualHost *:80>\n    ProxyPass / http://127.0.0.1:9/\n');
    const openResult = await run(['apache', open]);
    assert.equal(openResult.code, 1);
    assert.match(openResult.stderr, new RegExp(`${escape(open)}:2:1: <VirtualHost> is not closed in this file`));
    const stray = write('stray.conf', 'Listen 80\n</Location>\n');
    const strayResult = await run(['apache', stray]);
    assert.equal(strayResult.code, 1);
    assert.match(strayResult.stderr, new RegExp(`${escape(stray)}:2:1: </Location> without a matching <Location>`));
  });

  test('a missing file: exit 1', async () => {
    const result = await run(['apache', join(dir, 'does-not-exist.conf')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /does-not-exist\.conf:0:0: no such file \(SY_IMPORT_INVALID\)/);
  });

  test('an unknown directive is listed with file:line, not an error', async () => {
    const file = write('unknown.conf', 'Listen 80\n<VirtualHost *:80>\n    ServerName a.example\n    FrobnicateWidgets On\n    ProxyPass / http://127.0.0.1:9/\n</VirtualHost>\n');
    const result = await run(['apache', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /Not translated \(\d+\):/);
    assert.match(result.stderr, /unknown\.conf:4:5: FrobnicateWidgets On: unknown directive/);
    assert.match(result.stdout, /to: http:\/\/127\.0\.0\.1:9/);
  });
});

describe('import apache: parsing', () => {
  test('quotes: double and single, escaped quotes and backslashes, words glued to quotes', () => {
    assert.deepEqual(splitArgs('ProxyPass "/a b/" \'ws://h:1/x\' key=v'), ['ProxyPass', '/a b/', 'ws://h:1/x', 'key=v']);
    assert.deepEqual(splitArgs('Header set X "say \\"hi\\" \\\\ back"'), ['Header', 'set', 'X', 'say "hi" \\ back']);
    assert.deepEqual(splitArgs('RewriteRule ^/?(.*) "ws://h:1/$1" [P,L]'), ['RewriteRule', '^/?(.*)', 'ws://h:1/$1', '[P,L]']);
    assert.deepEqual(splitArgs('  a\t"b"   c  '), ['a', 'b', 'c']);
  });

  test('continuation lines join, comments only at line start, line numbers of the first line', () => {
    const lines = logicalLines('# comment\n  ProxyPass /ws/ \\\n      ws://h:1/ws/ \\\n      timeout=30\nHeader set X "a#b" # not a comment\n\n   # indented comment\nEnd');
    assert.deepEqual(lines.map((line) => [line.line, line.column, line.text.replace(/\s+/g, ' ')]), [
      [2, 3, 'ProxyPass /ws/ ws://h:1/ws/ timeout=30'],
      [5, 1, 'Header set X "a#b" # not a comment'],
      [8, 1, 'End'],
    ]);
  });

  test('sections nest, names ignore case, Define and IfDefine are decided while reading', () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-import-apache-parse-'));
    try {
      const file = join(dir, 'main.conf');
      writeFileSync(join(dir, 'extra.conf'), 'proxypass /extra/ http://127.0.0.1:9/x/\n');
      writeFileSync(file, [
        'Define BACKEND 127.0.0.1:9',
        '<virtualhost *:80>',
        '  SERVERNAME a.example',
        '  <IfDefine !NOPE>',
        '    ProxyPass /d/ http://${BACKEND}/d/',
        '  </IfDefine>',
        '  <IfDefine NOPE>',
        '    Include does-not-exist.conf',
        '  </IfDefine>',
        '  Include extra.conf',
        '</VIRTUALHOST>',
      ].join('\n'));
      const report = new ImportReport();
      const parsed = parseApacheConfig(file, report);
      const vhost = parsed.nodes[0]!;
      assert.equal(vhost.kind, 'section');
      assert.equal(vhost.lower, 'virtualhost');
      const children = vhost.kind === 'section' ? vhost.children : [];
      assert.deepEqual(children.map((node) => node.lower), ['servername', 'ifdefine', 'proxypass']);
      const ifDefine = children[1]!;
      assert.equal(ifDefine.kind === 'section' && ifDefine.children[0]?.text, 'ProxyPass /d/ http://127.0.0.1:9/d/');
      assert.match(report.describe().join('\n'), /main\.conf:7:3: <IfDefine NOPE>: NOPE is not defined here/);

      const { draft } = translateApache(file);
      const routes = draft.sites[0]!.routes;
      assert.deepEqual(routes.map((route) => [route.match?.prefix, route.to]), [['/d/', 'http://127.0.0.1:9'], ['/extra/', 'http://127.0.0.1:9/x/']]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('import apache: semantics the fixtures do not show', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'switchyard-import-apache-semantics-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const translate = (lines: readonly string[]): { sites: ReturnType<typeof translateApache>['draft']['sites']; listeners: ReturnType<typeof translateApache>['draft']['listeners']; report: string } => {
    const file = join(dir, `case-${Math.random().toString(36).slice(2)}.conf`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    const { draft, report } = translateApache(file);
    return { sites: draft.sites, listeners: draft.listeners, report: report.describe().join('\n') };
  };

  test('ProxyWebsocketFallbackToProxyHttp Off: ws:// entries take only WebSocket handshakes, plain requests fall through', () => {
    const { sites } = translate([
      'ProxyWebsocketFallbackToProxyHttp Off',
      '<VirtualHost *:80>',
      '  ProxyPass /ws/ ws://127.0.0.1:9001/ws/',
      '  ProxyPass / http://127.0.0.1:9002/',
      '</VirtualHost>',
    ]);
    assert.deepEqual(sites[0]!.routes.map((route) => [route.match, route.to]), [
      [{ prefix: '/ws/', upgrade: 'websocket' }, 'ws://127.0.0.1:9001'],
      [undefined, 'http://127.0.0.1:9002'],
    ]);
  });

  test('ProxyPass path mapping: same path, other path, no trailing slashes, mismatched slashes', () => {
    const { sites, report } = translate([
      '<VirtualHost *:80>',
      '  ProxyPass /same/ http://127.0.0.1:9001/same/',
      '  ProxyPass /app/ http://127.0.0.1:9001/x/',
      '  ProxyPass /push/ws ws://127.0.0.1:9001/ws',
      '  ProxyPass /odd/ http://127.0.0.1:9001/odd',
      '</VirtualHost>',
    ]);
    const routes = sites[0]!.routes;
    assert.deepEqual(routes[0], { match: { prefix: '/same/' }, to: 'http://127.0.0.1:9001', preserve_host: false });
    assert.deepEqual(routes[1], { match: { prefix: '/app/' }, to: 'http://127.0.0.1:9001/x/', strip_prefix: true, preserve_host: false });
    assert.deepEqual(routes[2], { match: { regex: '^/push/ws((?:/.*)?)$' }, to: 'ws://127.0.0.1:9001', rewrite: '/ws$1', preserve_host: false });
    assert.match(report, /:5:3: ProxyPass \/odd\/ http:\/\/127\.0\.0\.1:9001\/odd: the path and the URL differ in their trailing slash/);
  });

  test('a ProxyPass outside <Location> loses to one inside, and a later <Location> to an earlier more general one', () => {
    const { sites, report } = translate([
      '<VirtualHost *:80>',
      '  ProxyPass /api/ http://127.0.0.1:9001/',
      '  <Location />',
      '    ProxyPass http://127.0.0.1:9002/',
      '  </Location>',
      '</VirtualHost>',
    ]);
    assert.deepEqual(sites[0]!.routes.map((route) => route.to), ['http://127.0.0.1:9002']);
    assert.match(report, /:2:3: ProxyPass \/api\/ http:\/\/127\.0\.0\.1:9001\/: never used: <Location \/> ProxyPass .* \(a ProxyPass inside <Location> takes precedence over ProxyPass outside\)/);
  });

  test('SSLEngine on without a certificate: a plain listener and a note', () => {
    const { listeners, report } = translate([
      '<VirtualHost *:443>',
      '  ServerName a.example',
      '  SSLEngine on',
      '  ProxyPass / http://127.0.0.1:9001/',
      '</VirtualHost>',
    ]);
    assert.deepEqual(listeners, [{ address: ':443', sites: ['a.example'] }]);
    assert.match(report, /:3:3: SSLEngine on: SSLEngine on without a usable SSLCertificateFile/);
  });

  test('RewriteCond forms: [OR] groups, negated Host, methods, %{HTTPS}, header regexes; unsupported ones skip the rule', () => {
    const { sites, report } = translate([
      '<VirtualHost *:80>',
      '  ServerName a.example',
      '  RewriteEngine On',
      '  RewriteCond %{HTTP_HOST} !^www\\. [NC]',
      '  RewriteCond %{REQUEST_METHOD} ^(GET|HEAD)$',
      '  RewriteRule ^/(.*)$ http://www.a.example/$1 [R=301,L]',
      '  RewriteCond %{HTTP:X-Api-Version} ^2 [OR]',
      '  RewriteCond %{HTTP_USER_AGENT} bot [NC]',
      '  RewriteRule ^/api/(.*)$ http://127.0.0.1:9002/v2/$1 [P]',
      '  RewriteCond %{HTTPS} on',
      '  RewriteRule ^ - [F]',
      '  RewriteCond %{QUERY_STRING} debug=1',
      '  RewriteRule ^ - [F]',
      '  ProxyPass / http://127.0.0.1:9001/',
      '</VirtualHost>',
    ]);
    const routes = sites[0]!.routes;
    assert.deepEqual(routes[0]!.match, { methods: ['GET', 'HEAD'], headers: { Host: { regex: '^(?![\\s\\S]*?(?:^www\\.))' } }, regex: '^/(.*)$' });
    assert.deepEqual(routes[0]!.redirect, { status: 301, location: 'http://www.a.example/$1' });
    assert.deepEqual(routes[1]!.match, { headers: { 'X-Api-Version': { regex: '^2' } }, regex: '^/api/(.*)$' });
    assert.deepEqual(routes[2]!.match, { headers: { 'User-Agent': { regex: 'bot' } }, regex: '^/api/(.*)$' });
    assert.equal(routes[2]!.rewrite, '/v2/$1');
    assert.equal(routes[3]!.to, 'http://127.0.0.1:9001');
    assert.match(report, /:11:3: RewriteRule \^ - \[F\]: its conditions never hold here \(RewriteCond %\{HTTPS\} on: this server is not TLS\)/);
    assert.match(report, /:13:3: RewriteRule \^ - \[F\]: RewriteCond %\{QUERY_STRING\} debug=1: conditions on %\{QUERY_STRING\} are not translated/);
  });

  test('<IfModule !...> contents are left out; <IfModule> contents are read', () => {
    const { sites, report } = translate([
      '<IfModule !mod_proxy.c>',
      '  Listen 8080',
      '</IfModule>',
      '<IfModule mod_proxy.c>',
      '  <VirtualHost *:80>',
      '    ProxyPass / http://127.0.0.1:9001/',
      '  </VirtualHost>',
      '</IfModule>',
    ]);
    assert.equal(sites[0]!.routes[0]!.to, 'http://127.0.0.1:9001');
    assert.match(report, /:1:1: <IfModule !mod_proxy\.c>: the translation assumes every module is loaded/);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
