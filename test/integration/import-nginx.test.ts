import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { symlinkSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { toJsRegex } from '../../src/tools/import/values.js';
import { spawnSwitchyard, stopSwitchyards, withTimeout } from '../helpers/cli.js';
import { listFixtures, runImportFixture } from '../helpers/import-fixtures.js';

after(stopSwitchyards);

describe('switchyard import nginx: fixtures translate, pass check, and reach the backends the original pointed at', () => {
  for (const name of listFixtures('nginx')) {
    test(name, { timeout: 60_000 }, () => runImportFixture('nginx', name));
  }
});

test('nginx fixtures: the seed setups (the WebSocket upstream recipe, its TLS variant, the missing Upgrade headers, the 60 s read timeout) plus at least 6 realistic configs', () => {
  const names = listFixtures('nginx');
  for (const seed of ['seed-websocket-upstream', 'seed-wss-tls', 'readme-no-upgrade-headers', 'readme-read-timeout-60s']) assert.ok(names.includes(seed), seed);
  assert.ok(names.filter((name) => !/^(seed|readme)-/.test(name)).length >= 6, names.join(', '));
});

test('caseless regexes (~*): letters get both cases, letter ranges stay ranges in each case', () => {
  assert.equal(toJsRegex('^/api/[a-f0-9]+$', true), '^/[aA][pP][iI]/[a-fA-F0-9]+$');
  assert.equal(toJsRegex('[^a-z]x', true), '[^a-zA-Z][xX]');
  assert.ok(!new RegExp(toJsRegex('^[a-f]+$', true)!).test('G'));
  assert.equal(toJsRegex('(?<id>\\d+)\\.png$', true), '(?<id>\\d+)\\.[pP][nN][gG]$');
  assert.equal(toJsRegex('(?P<id>x)', false), '(?<id>x)');
  assert.equal(toJsRegex('([unclosed', false), undefined);
});

describe('switchyard import nginx: bad input gets one clear line with file:line:column', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-import-nginx-bad-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function importFile(name: string, text: string, format = 'nginx'): Promise<{ code: number | null; stdout: string; stderr: string; file: string }> {
    const file = join(dir, name);
    writeFileSync(file, text);
    const cli = spawnSwitchyard(['import', format, file]);
    const { code } = await withTimeout(cli.exited, 15_000, 'import');
    return { code, stdout: cli.stdout, stderr: cli.stderr, file };
  }

  test('a Switchyard YAML file is not nginx: exit 1 naming the directive without ";"', async () => {
    const result = await importFile('switchyard.yaml', 'listeners:\n  - address: :8080\nsites:\n  - routes:\n      - to: http://127.0.0.1:9000\n');
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${result.file}:1:1: directive "listeners:" has no ";"`));
    assert.match(result.stderr, /SY_IMPORT_INVALID/);
    assert.equal(result.stdout, '');
  });

  test('an Apache file given as nginx: exit 1, the line of the first section tag and a hint', async () => {
    const result = await importFile('apache.conf', '# a vhost\n<VirtualHost *:80>\n  ProxyPass / http://127.0.0.1:9000/\n</VirtualHost>\n');
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${result.file}:2:1: "<VirtualHost" is not nginx syntax \\(an Apache config\\? try: switchyard import apache\\)`));
  });

  test('an include that names a missing file: exit 1 at the include line', async () => {
    const result = await importFile('include-missing.conf', 'http {\n  server {\n    listen 80;\n    include snippets/proxy.conf;\n    location / { proxy_pass http://127.0.0.1:9000; }\n  }\n}\n');
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${result.file}:4:5: include snippets/proxy.conf: no such file`));
  });

  test('an error inside an included file names that file and line', async () => {
    mkdirSync(join(dir, 'conf.d'), { recursive: true });
    writeFileSync(join(dir, 'conf.d', 'broken.conf'), 'server {\n  listen 80;\n  location / {\n    proxy_pass http://127.0.0.1:9000\n  }\n}\n');
    const result = await importFile('include-broken.conf', 'http {\n  include conf.d/*.conf;\n}\n');
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${join(dir, 'conf.d', 'broken.conf')}:4:5: directive "proxy_pass" has no ";" before "}"`));
  });

  test('a broken link in an included folder (sites-enabled/ has them): exit 1 at the include line, naming the file', async () => {
    mkdirSync(join(dir, 'sites-enabled'), { recursive: true });
    writeFileSync(join(dir, 'sites-enabled', 'app'), 'server { listen 80; location / { proxy_pass http://127.0.0.1:9000; } }\n');
    symlinkSync(join(dir, 'sites-available', 'gone'), join(dir, 'sites-enabled', 'old'));
    const result = await importFile('broken-link.conf', 'http {\n  include sites-enabled/*;\n}\n');
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${result.file}:2:3: cannot read ${join(dir, 'sites-enabled', 'old')} \\(no such file\\)`));
  });

  test('a block never closed: exit 1 at its "{"', async () => {
    const result = await importFile('unclosed.conf', 'http {\n  server {\n    listen 80;\n    location / { proxy_pass http://127.0.0.1:9000; }\n}\n');
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`${result.file}:1:6: this "\\{" is never closed`));
  });

  test('a stray "}" and an unterminated string: exit 1 at their place', async () => {
    const stray = await importFile('stray.conf', 'server { listen 80; }\n}\n');
    assert.equal(stray.code, 1);
    assert.match(stray.stderr, new RegExp(`${stray.file}:2:1: unexpected "\\}"`));
    const quote = await importFile('quote.conf', 'server {\n  return 200 "ok;\n}\n');
    assert.equal(quote.code, 1);
    assert.match(quote.stderr, new RegExp(`${quote.file}:2:14: unterminated double-quoted string`));
  });

  test('a missing file: exit 1 and the reason', async () => {
    const cli = spawnSwitchyard(['import', 'nginx', join(dir, 'nope.conf')]);
    const { code } = await withTimeout(cli.exited, 15_000, 'import');
    assert.equal(code, 1);
    assert.match(cli.stderr, /nope\.conf.*no such file/);
  });

  test('unknown directives are not errors: listed under "Not translated" with file:line, the rest is translated', async () => {
    const result = await importFile('unknown.conf', 'server {\n  listen 8080;\n  frobnicate on;\n  location / {\n    proxy_pass http://127.0.0.1:9000;\n    root /var/www;\n  }\n  location /files/ { root /srv; }\n}\n');
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`Not translated[^]*${result.file}:3:3: frobnicate on: no Switchyard equivalent`));
    assert.match(result.stderr, new RegExp(`${result.file}:8:3: location /files/: serves with "root"`));
    assert.match(result.stdout, /address: :8080/);
    assert.match(result.stdout, /# Not translated \(\d+\):/);
  });

  test('usage: no file, an unknown format, an unknown option: exit 2', async () => {
    for (const args of [['import'], ['import', 'nginx'], ['import', 'caddy', 'x.conf'], ['import', 'nginx', 'x.conf', '--frob']]) {
      const cli = spawnSwitchyard(args);
      const { code } = await withTimeout(cli.exited, 15_000, 'import');
      assert.equal(code, 2, `${args.join(' ')}: ${cli.stderr}`);
      assert.equal(cli.stderr.trim().split('\n').length, 1, cli.stderr);
    }
  });
});
