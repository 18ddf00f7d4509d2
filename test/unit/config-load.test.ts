/**
 * The config file loader and validator: every problem is one line,
 * "file:line:col: path: message", naming what was expected and what was found;
 * unknown keys get a "did you mean"; ${VAR} and ${VAR:-default} interpolate the
 * environment. Each message is asserted exactly as a user would read it.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, formatIssue, type ConfigIssue } from '../../src/config/config-error.js';
import { loadConfigFile, loadConfigText, type LoadResult } from '../../src/config/load.js';

const T = { timeout: 5_000 };

/** The config "file" of the text-based tests; it is never created, only named. */
const DIR = join(tmpdir(), 'switchyard-config-load-test');
const FILE = join(DIR, 'switchyard.yaml');
const SECRET = 'default-secret-for-tests-0123456789';

/** Lines of a YAML document. */
function doc(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

/** One listener and one site whose routes start at line 5 (list items indented 6). */
function withRoutes(routes: readonly string[], ...rest: string[]): string {
  return doc('listeners:', '  - address: 127.0.0.1:0', 'sites:', '  - routes:', ...routes, ...rest);
}

/** "FILE:line:col", the start of every formatted issue. */
function at(line: number, column: number): string {
  return `${FILE}:${line}:${column}`;
}

function load(text: string, env: NodeJS.ProcessEnv = {}): LoadResult {
  return loadConfigText(text, FILE, { env, defaultSecret: SECRET });
}

/** The ConfigError's issues; fails the test when the text loads. */
function issuesOf(text: string, env: NodeJS.ProcessEnv = {}): readonly ConfigIssue[] {
  let error: unknown;
  try {
    load(text, env);
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error === undefined ? 'a loaded config' : String(error)}`);
  return error.issues;
}

/** Every issue, formatted the way `switchyard check` prints it. */
function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  return issuesOf(text, env).map(formatIssue);
}

describe('YAML syntax', () => {
  it('a syntax error names the file, line and column', T, () => {
    assert.deepEqual(problems(doc('listeners:', '  - address: 127.0.0.1:0', ' sites: []')), [
      `${at(3, 1)}: YAML: All mapping items must start at the same column`,
    ]);
  });

  it('a tab used as indentation is a syntax error at its line', T, () => {
    assert.deepEqual(problems(doc('listeners:', '\t- address: 127.0.0.1:0')), [
      `${at(2, 1)}: YAML: Tabs are not allowed as indentation`,
    ]);
  });

  it('a duplicate key is an error at the second occurrence', T, () => {
    const issues = issuesOf(withRoutes(['      - to: http://127.0.0.1:1', '        to: http://127.0.0.1:2']));
    assert.equal(issues.length, 1, issues.map(formatIssue).join('\n'));
    const issue = issues[0]!;
    assert.equal(issue.severity, 'error');
    assert.deepEqual([issue.line, issue.column], [6, 9]);
  });

  it('a duplicate key error names the duplicated key (its path in the document)', T, () => {
    const [line] = problems(withRoutes(['      - to: http://127.0.0.1:1', '        to: http://127.0.0.1:2']));
    assert.ok(line !== undefined);
    assert.ok(line.startsWith(`${at(6, 9)}: `), line);
    assert.match(line, /sites\[0\]\.routes\[0\]\.to|"to"/, 'the message says which key is duplicated');
  });
});

describe('unknown keys', () => {
  it('mtach → did you mean "match"', T, () => {
    assert.deepEqual(problems(withRoutes(['      - mtach: { prefix: / }', '        to: http://127.0.0.1:1'])), [
      `${at(5, 9)}: sites[0].routes[0].mtach: unknown key "mtach" (did you mean "match"?)`,
    ]);
  });

  it('upsteams at the top level → did you mean "upstreams"', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: http://127.0.0.1:1'], 'upsteams: {}')), [
      `${at(6, 1)}: upsteams: unknown key "upsteams" (did you mean "upstreams"?)`,
    ]);
  });

  it('prefx inside match → did you mean "prefix"', T, () => {
    assert.deepEqual(problems(withRoutes(['      - match: { prefx: / }', '        to: http://127.0.0.1:1'])), [
      `${at(5, 18)}: sites[0].routes[0].match.prefx: unknown key "prefx" (did you mean "prefix"?)`,
    ]);
  });

  it('a key like no known one lists the keys expected there', T, () => {
    assert.deepEqual(problems(withRoutes(['      - zzzzqqq: 1', '        to: http://127.0.0.1:1'])), [
      `${at(5, 9)}: sites[0].routes[0].zzzzqqq: unknown key "zzzzqqq" (expected one of: name, match, to, strip_prefix, rewrite, preserve_host, reverse_rewrite, request_headers, response_headers, redirect, respond, timeouts, websocket_over_http2, websocket, allow, deny, max_tunnels)`,
    ]);
  });

  it('inside a union: a server entry and the long sticky form still suggest', T, () => {
    const text = withRoutes(['      - to: app'],
      'upstreams:',
      '  app:',
      '    servers: [{ url: "http://127.0.0.1:1", wieght: 2 }]',
      '    sticky: { mode: cookie, cokie: affinity }');
    assert.deepEqual(problems(text), [
      `${at(8, 44)}: upstreams.app.servers[0].wieght: unknown key "wieght" (did you mean "weight"?)`,
      `${at(9, 29)}: upstreams.app.sticky.cokie: unknown key "cokie" (did you mean "cookie"?)`,
    ]);
  });

  it('inside a header condition: presnt → did you mean "present"', T, () => {
    const text = withRoutes(['      - match: { headers: { x-a: { presnt: true } } }', '        to: http://127.0.0.1:1']);
    assert.deepEqual(problems(text), [
      `${at(5, 36)}: sites[0].routes[0].match.headers.x-a.presnt: unknown key "presnt" (did you mean "present"?)`,
    ]);
  });
});

describe('wrong types', () => {
  it('to: 5 → expected a string, found 5', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: 5'])), [
      `${at(5, 13)}: sites[0].routes[0].to: expected a string, found 5`,
    ]);
  });

  it('listeners: "x" → expected a list, found "x"', T, () => {
    assert.deepEqual(problems(doc('listeners: "x"', 'sites:', '  - routes:', '      - to: http://127.0.0.1:1')), [
      `${at(1, 12)}: listeners: expected a list, found "x"`,
    ]);
  });

  it('match: /x → expected a mapping, found "/x"', T, () => {
    assert.deepEqual(problems(withRoutes(['      - match: /x', '        to: http://127.0.0.1:1'])), [
      `${at(5, 16)}: sites[0].routes[0].match: expected a mapping, found "/x"`,
    ]);
  });

  it('a list where a string or a mapping is expected is reported as "found a list"', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: [http://127.0.0.1:1]'], 'timeouts: [1s]')), [
      `${at(5, 13)}: sites[0].routes[0].to: expected a string, found a list`,
      `${at(6, 11)}: timeouts: expected a mapping, found a list`,
    ]);
  });

  it('a document that is a list, not a mapping, says so', T, () => {
    assert.deepEqual(problems(doc('- listeners', '- sites')), [`${at(1, 1)}: expected a mapping, found a list`]);
  });

  it('a number out of range names the bound and the value', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: http://127.0.0.1:1'], 'workers: 0')), [
      `${at(6, 10)}: workers: expected at least 1, found 0`,
    ]);
  });
});

describe('missing and conflicting fields', () => {
  it('no listeners → required: expected a list', T, () => {
    assert.deepEqual(problems(doc('sites:', '  - routes:', '      - to: http://127.0.0.1:1')), [
      `${at(1, 1)}: listeners: required: expected a list`,
    ]);
  });

  it('a site without routes → required: expected a list, at the site', T, () => {
    assert.deepEqual(problems(doc('listeners:', '  - address: 127.0.0.1:0', 'sites:', '  - hosts: [example.com]')), [
      `${at(4, 5)}: sites[0].routes: required: expected a list`,
    ]);
  });

  it('a route without an action → "a route needs exactly one action"', T, () => {
    assert.deepEqual(problems(withRoutes(['      - match: { prefix: / }'])), [
      `${at(5, 9)}: sites[0].routes[0]: a route needs exactly one action: to, redirect or respond`,
    ]);
  });

  it('a route with two actions → the same message', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: http://127.0.0.1:1', '        respond: { body: hi }'])), [
      `${at(5, 9)}: sites[0].routes[0]: a route needs exactly one action: to, redirect or respond`,
    ]);
  });

  it('prefix and regex together → use one of prefix, exact or regex', T, () => {
    assert.deepEqual(problems(withRoutes(['      - match: { prefix: /a, regex: ^/a }', '        to: http://127.0.0.1:1'])), [
      `${at(5, 16)}: sites[0].routes[0].match: use one of prefix, exact or regex`,
    ]);
  });

  it('strip_prefix without match.prefix', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: http://127.0.0.1:1', '        strip_prefix: true'])), [
      `${at(6, 23)}: sites[0].routes[0].strip_prefix: needs match.prefix (the prefix to strip)`,
    ]);
  });
});

describe('values', () => {
  it('a bad enum: upgrade: websockets', T, () => {
    assert.deepEqual(problems(withRoutes(['      - match: { upgrade: websockets }', '        to: http://127.0.0.1:1'])), [
      `${at(5, 27)}: sites[0].routes[0].match.upgrade: expected one of "websocket", "any", "none", found "websockets"`,
    ]);
  });

  it('a bad enum in a union: sticky: cookies', T, () => {
    const text = withRoutes(['      - to: app'], 'upstreams:', '  app:', '    servers: [http://127.0.0.1:1]', '    sticky: cookies');
    assert.deepEqual(problems(text), [
      `${at(9, 13)}: upstreams.app.sticky: expected "none" | "cookie" | "ip" or a mapping, found "cookies"`,
    ]);
  });

  it('a bad duration, global and per route', T, () => {
    const text = withRoutes(['      - to: http://127.0.0.1:1', '        timeouts: { response: 1 minute }'], 'timeouts:', '  connect: 5 seconds');
    assert.deepEqual(problems(text), [
      `${at(6, 31)}: sites[0].routes[0].timeouts.response: expected a duration such as 500ms, 30s, 5m or 1h, found "1 minute"`,
      `${at(8, 12)}: timeouts.connect: expected a duration such as 500ms, 30s, 5m or 1h, found "5 seconds"`,
    ]);
  });

  it('a bad listener address', T, () => {
    const tail = ['sites:', '  - routes:', '      - to: http://127.0.0.1:1'];
    assert.deepEqual(problems(doc('listeners:', '  - address: localhost', ...tail)), [
      `${at(2, 14)}: listeners[0].address: expected HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or :8080, found "localhost"`,
    ]);
    assert.deepEqual(problems(doc('listeners:', '  - address: 127.0.0.1:99999', ...tail)), [
      `${at(2, 14)}: listeners[0].address: expected HOST:PORT, found "127.0.0.1:99999"`,
    ]);
  });

  it('a server URL with another scheme, at upstreams.NAME.servers[i] (and .url in the long form)', T, () => {
    const short = withRoutes(['      - to: app'], 'upstreams:', '  app:', '    servers:', '      - http://127.0.0.1:1', '      - ftp://x');
    assert.deepEqual(problems(short), [
      `${at(10, 9)}: upstreams.app.servers[1]: "ftp://x": expected a URL with scheme http, https, ws or wss`,
    ]);
    const long = withRoutes(['      - to: app'], 'upstreams:', '  app:', '    servers:', '      - url: ftp://x', '        weight: 2');
    assert.deepEqual(problems(long), [
      `${at(9, 14)}: upstreams.app.servers[0].url: "ftp://x": expected a URL with scheme http, https, ws or wss`,
    ]);
  });

  it('an inline URL in to: is checked too', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: "http://127.0.0.1:1/app?x=1"'])), [
      `${at(5, 13)}: sites[0].routes[0].to: "http://127.0.0.1:1/app?x=1": a backend URL takes no query or fragment`,
    ]);
  });

  it('an invalid upstream name says which names are allowed and what was found', T, () => {
    const [line, ...rest] = problems(withRoutes(['      - to: "a b"'], 'upstreams:', '  "a b": { servers: [http://127.0.0.1:1] }'));
    assert.deepEqual(rest, []);
    assert.ok(line !== undefined);
    assert.ok(line.startsWith(`${FILE}:7:`), line);
    assert.match(line, /upstreams\.a b: /);
    assert.match(line, /upstream names use letters, digits, _ \. -/, 'the schema\'s own message, not a generic one');
  });

  it('an invalid regex', T, () => {
    assert.deepEqual(problems(withRoutes(['      - match: { regex: "^/(a" }', '        to: http://127.0.0.1:1'])), [
      `${at(5, 25)}: sites[0].routes[0].match.regex: not a valid regular expression: Invalid regular expression: /^/(a/: Unterminated group`,
    ]);
  });

  it('an invalid header name in request_headers.set is reported at that header', T, () => {
    const text = withRoutes(['      - to: http://127.0.0.1:1', '        request_headers:', '          set:', '            "bad header": x']);
    const issues = issuesOf(text);
    assert.equal(issues.length, 1, issues.map(formatIssue).join('\n'));
    const issue = issues[0]!;
    assert.match(issue.message, /invalid header name "bad header"/);
    assert.ok(issue.path.startsWith('sites[0].routes[0].request_headers.set'), `path ${issue.path}`);
    assert.equal(issue.line, 8, 'the line of the bad name');
  });

  it('a frame header cannot be removed from responses', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: http://127.0.0.1:1', '        response_headers: { remove: [Content-Length] }'])), [
      `${at(6, 38)}: sites[0].routes[0].response_headers.remove[0]: header actions: remove cannot change Content-Length: the proxy manages it`,
    ]);
  });
});

describe('references between sections', () => {
  it('to: naming an unknown upstream suggests the close one', T, () => {
    const text = withRoutes(['      - to: backnd'], 'upstreams:', '  backend: { servers: [http://127.0.0.1:1] }');
    assert.deepEqual(problems(text), [
      `${at(5, 13)}: sites[0].routes[0].to: no upstream named "backnd" (did you mean "backend"?)`,
    ]);
  });

  it('to: naming an unknown upstream lists the upstreams when none is close', T, () => {
    const text = withRoutes(['      - to: zzz'], 'upstreams:', '  backend: { servers: [http://127.0.0.1:1] }');
    assert.deepEqual(problems(text), [`${at(5, 13)}: sites[0].routes[0].to: no upstream named "zzz" (upstreams: backend)`]);
  });

  it('to: naming an upstream when there are none explains both forms', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: backend'])), [
      `${at(5, 13)}: sites[0].routes[0].to: no upstream named "backend" (define it under upstreams, or give a URL such as http://127.0.0.1:3000)`,
    ]);
  });

  it('listener sites naming an unknown site', T, () => {
    const text = doc('listeners:', '  - address: 127.0.0.1:0', '    sites: [pubic]', 'sites:', '  - name: public', '    routes:', '      - to: http://127.0.0.1:1');
    assert.deepEqual(problems(text), [`${at(3, 13)}: listeners[0].sites[0]: no site named "pubic" (did you mean "public"?)`]);
  });

  it('a missing TLS file names the path resolved against the config file\'s folder', T, () => {
    const text = doc('listeners:', '  - address: 127.0.0.1:0', '    tls: { cert: certs/missing.pem, key: certs/missing-key.pem }',
      'sites:', '  - routes:', '      - to: http://127.0.0.1:1');
    assert.deepEqual(problems(text), [
      `${at(3, 18)}: listeners[0].tls.cert: cannot read ${join(DIR, 'certs', 'missing.pem')} (no such file)`,
      `${at(3, 42)}: listeners[0].tls.key: cannot read ${join(DIR, 'certs', 'missing-key.pem')} (no such file)`,
    ]);
  });
});

describe('templates', () => {
  it('rewrite using $2 when the regex has one capture group', T, () => {
    const text = withRoutes(['      - match: { regex: "^/a/(.*)" }', '        to: http://127.0.0.1:1', '        rewrite: /$2']);
    assert.deepEqual(problems(text), [`${at(7, 18)}: sites[0].routes[0].rewrite: uses $2, but match.regex has 1 capture group`]);
  });

  it('rewrite using $1 on a route without a regex', T, () => {
    const text = withRoutes(['      - match: { prefix: /a }', '        to: http://127.0.0.1:1', '        rewrite: /$1']);
    assert.deepEqual(problems(text), [`${at(7, 18)}: sites[0].routes[0].rewrite: uses $N captures, but the route has no match.regex`]);
  });

  it('redirect.location using $1 on a route without a regex', T, () => {
    const text = withRoutes(['      - match: { prefix: /x }', '        redirect: { location: "/$1" }']);
    assert.deepEqual(problems(text), [`${at(6, 31)}: sites[0].routes[0].redirect.location: uses $N captures, but the route has no match.regex`]);
  });

  it('an unknown template variable ($foo)', T, () => {
    assert.deepEqual(problems(withRoutes(['      - to: http://127.0.0.1:1', '        rewrite: /$foo'])), [
      `${at(6, 18)}: sites[0].routes[0].rewrite: template "/$foo": unknown variable $foo; use $0..$9 or \${0}..\${9} for regex captures, $path, $query, $host, $hostname, $scheme (or \${path}.. when letters follow), $$ for a literal $`,
    ]);
  });

  it('rewrite and strip_prefix together', T, () => {
    const text = withRoutes(['      - match: { prefix: /a }', '        to: http://127.0.0.1:1', '        strip_prefix: true', '        rewrite: /x']);
    assert.deepEqual(problems(text), [`${at(8, 18)}: sites[0].routes[0].rewrite: use either rewrite or strip_prefix, not both`]);
  });
});

describe('environment variables', () => {
  const listenOn = (address: string): string => doc('listeners:', `  - address: "${address}"`, 'sites:', '  - routes:', '      - to: http://127.0.0.1:1');

  it('${PORT} is replaced by the variable', T, () => {
    const { config } = load(listenOn('127.0.0.1:${PORT}'), { PORT: '8080' });
    assert.deepEqual(config.listeners.map(({ host, port }) => ({ host, port })), [{ host: '127.0.0.1', port: 8080 }]);
  });

  it('${PORT:-8080} uses the default when the variable is unset or empty, the variable when set', T, () => {
    assert.equal(load(listenOn('127.0.0.1:${PORT:-8080}'), {}).config.listeners[0]?.port, 8080);
    assert.equal(load(listenOn('127.0.0.1:${PORT:-8080}'), { PORT: '' }).config.listeners[0]?.port, 8080);
    assert.equal(load(listenOn('127.0.0.1:${PORT:-8080}'), { PORT: '9000' }).config.listeners[0]?.port, 9000);
  });

  it('a default may itself hold a URL', T, () => {
    const { config } = load(withRoutes(['      - to: ${API_URL:-http://127.0.0.1:3000/app}']));
    const route = config.sites[0]?.routes[0];
    assert.equal(route?.action.kind === 'proxy' ? route.action.upstream : undefined, 'http://127.0.0.1:3000/app');
  });

  it('a missing ${NOPE} without default is an error at its line and column', T, () => {
    const issues = issuesOf(withRoutes(['      - match: { prefix: / }', '        to: ${NOPE}']));
    assert.equal(issues.length, 1, issues.map(formatIssue).join('\n'));
    const issue = issues[0]!;
    assert.equal(issue.severity, 'error');
    assert.deepEqual([issue.file, issue.line, issue.column], [FILE, 6, 13]);
    assert.equal(issue.message, 'environment variable NOPE is not set (write ${NOPE:-default} to give a default)');
  });

  it('a missing variable error names its path in the document', T, () => {
    assert.deepEqual(problems(withRoutes(['      - match: { prefix: / }', '        to: ${NOPE}'])), [
      `${at(6, 13)}: sites[0].routes[0].to: environment variable NOPE is not set (write \${NOPE:-default} to give a default)`,
    ]);
  });

  it('an empty variable without default is an error too; every missing one is reported', T, () => {
    const issues = issuesOf(withRoutes(['      - to: ${EMPTY}', '      - to: ${ALSO_MISSING}']), { EMPTY: '' });
    assert.deepEqual(issues.map((issue) => [issue.line, issue.message]), [
      [5, 'environment variable EMPTY is not set (write ${EMPTY:-default} to give a default)'],
      [6, 'environment variable ALSO_MISSING is not set (write ${ALSO_MISSING:-default} to give a default)'],
    ]);
  });

  it('$${LITERAL} writes a literal ${LITERAL}', T, () => {
    const { config } = load(withRoutes(['      - respond: { body: "cost: $${LITERAL}" }']), { LITERAL: 'replaced' });
    const action = config.sites[0]?.routes[0]?.action;
    assert.equal(action?.kind === 'respond' ? action.body : undefined, 'cost: ${LITERAL}');
  });

  it('lower-case ${path} and ${1} are left to route templates', T, () => {
    const text = withRoutes([
      '      - match: { regex: "^/old/(.*)" }',
      '        redirect: { location: "https://${host}/new/${1}${query}" }',
      '      - to: http://127.0.0.1:1',
      '        rewrite: "/base${path}"',
    ]);
    const { config } = load(text, { host: 'not-this', path: 'not-this' });
    const [redirect, proxy] = config.sites[0]?.routes.map((route) => route.action) ?? [];
    assert.equal(redirect?.kind === 'redirect' ? redirect.location : undefined, 'https://${host}/new/${1}${query}');
    assert.equal(proxy?.kind === 'proxy' ? proxy.rewrite : undefined, '/base${path}');
  });
});

describe('several errors at once', () => {
  it('schema errors across the file are all reported, in file order', T, () => {
    const text = doc(
      'listeners:',
      '  - address: nope',
      'sites:',
      '  - routes:',
      '      - to: 5',
      '      - match: { upgrade: x }',
      '        to: http://127.0.0.1:1',
      '      - mtach: {}',
      '        to: http://127.0.0.1:1',
    );
    assert.deepEqual(problems(text), [
      `${at(2, 14)}: listeners[0].address: expected HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or :8080, found "nope"`,
      `${at(5, 13)}: sites[0].routes[0].to: expected a string, found 5`,
      `${at(6, 27)}: sites[0].routes[1].match.upgrade: expected one of "websocket", "any", "none", found "x"`,
      `${at(8, 9)}: sites[0].routes[2].mtach: unknown key "mtach" (did you mean "match"?)`,
    ]);
  });

  it('cross-checks across the file are all reported', T, () => {
    const text = doc(
      'listeners:',
      '  - address: 127.0.0.1:0',
      '    sites: [mian]',
      'sites:',
      '  - name: main',
      '    routes:',
      '      - match: { exact: /a }',
      '        to: backnd',
      '      - match: { prefix: /b }',
      '        to: http://127.0.0.1:1',
      '        rewrite: /$1',
      '      - to: ftp://x',
      'upstreams:',
      '  backend: { servers: [http://127.0.0.1:1] }',
    );
    assert.deepEqual(problems(text).sort(), [
      `${at(3, 13)}: listeners[0].sites[0]: no site named "mian" (did you mean "main"?)`,
      `${at(8, 13)}: sites[0].routes[0].to: no upstream named "backnd" (did you mean "backend"?)`,
      `${at(11, 18)}: sites[0].routes[1].rewrite: uses $N captures, but the route has no match.regex`,
      `${at(12, 13)}: sites[0].routes[2].to: "ftp://x": expected a URL with scheme http, https, ws or wss`,
    ].sort());
  });

  // Two passes (docs/config.md): every structural error at once; once the file is
  // well-formed, every reference, URL and route-order error at once.
  it('structural errors come first, all at once; then every cross-check error at once', T, () => {
    const lines = [
      'listeners:',
      '  - address: 127.0.0.1:0',
      'sites:',
      '  - routes:',
      '      - match: { prefix: / }',
      '        to: api',
      '      - match: { prefix: /ws/, upgrade: websocket }',
      '        to: apis',
      '      - mtach: { exact: /healthz }',
      '        respond: { body: ok }',
      'upstreams:',
      '  apis: { servers: [http://127.0.0.1:1] }',
      'timeouts:',
      '  connect: 5 seconds',
    ];
    assert.deepEqual(problems(doc(...lines)).sort(), [
      `${at(9, 9)}: sites[0].routes[2].mtach: unknown key "mtach" (did you mean "match"?)`,
      `${at(14, 12)}: timeouts.connect: expected a duration such as 500ms, 30s, 5m or 1h, found "5 seconds"`,
    ].sort());
    lines[8] = '      - match: { exact: /healthz }';
    lines[13] = '  connect: 5s';
    assert.deepEqual(problems(doc(...lines)).sort(), [
      `${at(6, 13)}: sites[0].routes[0].to: no upstream named "api" (did you mean "apis"?)`,
      `${at(7, 9)}: sites[0].routes[1]: unreachable (prefix /ws/, upgrade: websocket): routes[0] (prefix /) matches every request it would, first; move it above routes[0]`,
      `${at(9, 9)}: sites[0].routes[2]: unreachable (exact /healthz): routes[0] (prefix /) matches every request it would, first; move it above routes[0]`,
    ].sort());
  });

  it('ConfigError.message holds every error line after the code\'s text', T, () => {
    let error: unknown;
    try {
      load(withRoutes(['      - to: 5', '      - to: 6']));
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof ConfigError);
    assert.equal(error.code, 'SY_CONFIG_INVALID');
    assert.equal(error.message, [
      `invalid configuration: ${at(5, 13)}: sites[0].routes[0].to: expected a string, found 5`,
      `${at(6, 13)}: sites[0].routes[1].to: expected a string, found 6`,
    ].join('\n'));
  });
});

describe('a valid config → the runtime model', () => {
  const text = doc(
    'listeners:',
    '  - address: 127.0.0.1:8080',
    '  - address: "[::1]:8443"',
    '    sites: [main]',
    '  - address: ":9000"',
    'sites:',
    '  - name: main',
    '    hosts: [example.com, "*.example.com"]',
    '    routes:',
    '      - match: { prefix: /ws/, upgrade: websocket }',
    '        to: chat',
    '      - name: legacy',
    '        match: { regex: "^/(myApp/ws)$" }',
    '        to: ws://127.0.0.1:9080',
    '        rewrite: /$1',
    '      - match: { exact: /healthz, methods: [GET, HEAD] }',
    '        respond: { body: ok }',
    '      - match: { prefix: /old/, headers: { X-Beta: { present: true } }, query: { v: "2" } }',
    '        redirect: { location: "https://$host/new$path" }',
    '      - to: web',
    '        preserve_host: false',
    '        strip_prefix: false',
    '        timeouts: { connect: 250ms }',
    '  - routes:',
    '      - to: ws://127.0.0.1:9080',
    'upstreams:',
    '  chat: { servers: [http://127.0.0.1:8001, http://127.0.0.1:8002] }',
    '  web:',
    '    servers: [{ url: http://127.0.0.1:8003, weight: 3 }, http://127.0.0.1:8004]',
    '    sticky: cookie',
    '    policy: least_conn',
    '    fail_timeout: 2s',
  );

  it('loads, remembering its file; the only warnings are the lint of the cookie-pinned upstream', T, () => {
    const { config, warnings } = load(text);
    // sticky: cookie without a secret, and a WebSocket-capable route to it without allowed_origins.
    assert.deepEqual(warnings.map((warning) => warning.path), ['upstreams.web.sticky', 'sites[0].routes[4]']);
    assert.ok(warnings.every((warning) => warning.severity === 'warning'));
    assert.equal(config.file, FILE);
  });

  it('lint: the cookie secret warning goes with SWITCHYARD_SECRET set; a short tunnel_idle on a WebSocket route is warned unless pings keep it alive', T, () => {
    const quiet = loadConfigText(text, FILE, { env: { SWITCHYARD_SECRET: 's'.repeat(32) }, defaultSecret: 'unused-0123456789abcdef' });
    assert.deepEqual(quiet.warnings.map((warning) => warning.path), ['sites[0].routes[4]']);
    const short = doc(
      'listeners:',
      '  - address: 127.0.0.1:8080',
      'sites:',
      '  - routes:',
      '      - match: { prefix: /ws, upgrade: websocket }',
      '        to: http://127.0.0.1:8001',
      '        timeouts: { tunnel_idle: 60s }',
      '      - match: { prefix: /live }',
      '        to: http://127.0.0.1:8001',
      '        timeouts: { tunnel_idle: 60s }',
      '        websocket: { ping: { interval: 20s } }',
      '      - match: { upgrade: none }',
      '        to: http://127.0.0.1:8001',
      '        timeouts: { tunnel_idle: 10s }',
    );
    const { warnings } = load(short);
    assert.deepEqual(warnings.map((warning) => warning.path), ['sites[0].routes[0].timeouts.tunnel_idle']);
    assert.match(warnings[0]!.message, /quiet for 60 s are cut/);
  });

  it('listeners: host and port parsed, ":PORT" is every interface, sites kept', T, () => {
    assert.deepEqual(load(text).config.listeners, [
      { host: '127.0.0.1', port: 8080, http2: false, websocketOverHttp2: true },
      { host: '::1', port: 8443, sites: ['main'], http2: false, websocketOverHttp2: true },
      { host: '0.0.0.0', port: 9000, http2: false, websocketOverHttp2: true },
    ]);
  });

  it('sites: ids, names, hosts (default ["*"]) and route ids like sites[0].routes[1]', T, () => {
    const { sites } = load(text).config;
    assert.deepEqual(sites.map((site) => [site.id, site.name, site.hosts]), [
      ['sites[0]', 'main', ['example.com', '*.example.com']],
      ['sites[1]', undefined, ['*']],
    ]);
    assert.deepEqual(sites.flatMap((site) => site.routes.map((route) => [route.id, route.name])), [
      ['sites[0].routes[0]', undefined],
      ['sites[0].routes[1]', 'legacy'],
      ['sites[0].routes[2]', undefined],
      ['sites[0].routes[3]', undefined],
      ['sites[0].routes[4]', undefined],
      ['sites[1].routes[0]', undefined],
    ]);
  });

  it('defaults: timeouts 1s/60s/1h (and the rest), limits, workers; a route override applies to that route only', T, () => {
    const { config } = load(text);
    assert.deepEqual(config.timeouts, { connectMs: 1_000, responseMs: 60_000, tunnelIdleMs: 3_600_000, headerMs: 30_000, keepAliveMs: 75_000, drainMs: 30_000 });
    assert.deepEqual(config.limits, { maxHeaderBytes: 16_384, maxHeaderCount: 100 });
    assert.equal(config.workers, 1);
    const routes = config.sites[0]!.routes;
    assert.deepEqual(routes[0]!.timeouts, { connectMs: 1_000, responseMs: 60_000, tunnelIdleMs: 3_600_000 });
    assert.deepEqual(routes[4]!.timeouts, { connectMs: 250, responseMs: 60_000, tunnelIdleMs: 3_600_000 });
  });

  it('global timeouts are inherited by routes', T, () => {
    const { config } = load(withRoutes(['      - to: http://127.0.0.1:1'], 'timeouts: { tunnel_idle: 2h, response: 1.5s }'));
    assert.equal(config.timeouts.tunnelIdleMs, 7_200_000);
    assert.deepEqual(config.sites[0]?.routes[0]?.timeouts, { connectMs: 1_000, responseMs: 1_500, tunnelIdleMs: 7_200_000 });
  });

  it('matches: upgrade defaults to any; header names lower-cased; conditions normalised', T, () => {
    const routes = load(text).config.sites[0]!.routes;
    assert.deepEqual(routes[0]!.match, { prefix: '/ws/', upgrade: 'websocket' });
    assert.deepEqual(routes[1]!.match, { regex: '^/(myApp/ws)$', upgrade: 'any' });
    assert.deepEqual(routes[2]!.match, { exact: '/healthz', methods: ['GET', 'HEAD'], upgrade: 'any' });
    assert.deepEqual(routes[3]!.match, {
      prefix: '/old/',
      headers: new Map([['x-beta', { kind: 'present' }]]),
      query: new Map([['v', { kind: 'equals', value: '2' }]]),
      upgrade: 'any',
    });
    assert.deepEqual(routes[4]!.match, { upgrade: 'any' });
  });

  it('actions: proxy defaults (preserve_host true), redirect 302, respond 200 text/plain', T, () => {
    const routes = load(text).config.sites[0]!.routes;
    assert.deepEqual(routes[0]!.action, {
      kind: 'proxy', upstream: 'chat', stripPrefix: false, rewrite: undefined, preserveHost: true,
      reverseRewrite: undefined, requestHeaders: undefined, responseHeaders: undefined,
    });
    assert.deepEqual(routes[1]!.action, {
      kind: 'proxy', upstream: 'ws://127.0.0.1:9080', stripPrefix: false, rewrite: '/$1', preserveHost: true,
      reverseRewrite: undefined, requestHeaders: undefined, responseHeaders: undefined,
    });
    assert.deepEqual(routes[2]!.action, { kind: 'respond', status: 200, body: 'ok', contentType: 'text/plain; charset=utf-8' });
    assert.deepEqual(routes[3]!.action, { kind: 'redirect', status: 302, location: 'https://$host/new$path' });
    assert.equal(routes[4]!.action.kind === 'proxy' && routes[4]!.action.preserveHost, false);
  });

  it('upstreams: named ones with weights and options; an inline URL becomes one upstream named after it', T, () => {
    const { upstreams } = load(text).config;
    assert.deepEqual([...upstreams.keys()].sort(), ['chat', 'web', 'ws://127.0.0.1:9080']);
    // Every upstream, named or inline, carries the same defaults for what it leaves out.
    const defaults = {
      policy: undefined, sticky: 'none', stickySecret: SECRET, stickyCookieName: 'sy_affinity', failTimeoutMs: 10_000,
      passiveHealth: { maxFails: 1, failOn: ['connect', 'reset', 'timeout'], maxEjectMs: 300_000 }, closeTunnelsOnDown: false,
      retries: 2, retryDeadlineMs: 10_000, queueSize: 0, queueTimeoutMs: 5_000, drainTimeoutMs: 300_000, http2: false,
    };
    assert.deepEqual(upstreams.get('ws://127.0.0.1:9080'), { ...defaults, name: 'ws://127.0.0.1:9080', servers: [{ url: 'ws://127.0.0.1:9080', weight: 1 }] });
    assert.deepEqual(upstreams.get('chat')?.servers, [{ url: 'http://127.0.0.1:8001', weight: 1 }, { url: 'http://127.0.0.1:8002', weight: 1 }]);
    assert.deepEqual(upstreams.get('web'), {
      ...defaults,
      name: 'web',
      servers: [{ url: 'http://127.0.0.1:8003', weight: 3, maxConns: 0, drain: false }, { url: 'http://127.0.0.1:8004', weight: 1 }],
      policy: 'least_conn', sticky: 'cookie', failTimeoutMs: 2_000,
    });
  });

  it('the sticky secret: the long form, else SWITCHYARD_SECRET, else the default', T, () => {
    const upstream = (sticky: string): string => withRoutes(['      - to: app'], 'upstreams:', '  app:', '    servers: [http://127.0.0.1:1]', `    sticky: ${sticky}`);
    const longForm = load(upstream('{ mode: ip, cookie: sid, secret: a-secret-of-16-chars-or-more }'), { SWITCHYARD_SECRET: 'from-env' }).config.upstreams.get('app');
    assert.deepEqual([longForm?.sticky, longForm?.stickyCookieName, longForm?.stickySecret], ['ip', 'sid', 'a-secret-of-16-chars-or-more']);
    assert.equal(load(upstream('cookie'), { SWITCHYARD_SECRET: 'from-env' }).config.upstreams.get('app')?.stickySecret, 'from-env');
    assert.equal(load(upstream('cookie')).config.upstreams.get('app')?.stickySecret, SECRET);
  });
});

describe('loadConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-config-file-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a missing file is one error naming the file', T, () => {
    const missing = join(dir, 'nope.yaml');
    let error: unknown;
    try {
      loadConfigFile(missing, { defaultSecret: SECRET });
    } catch (err) {
      error = err;
    }
    assert.ok(error instanceof ConfigError);
    assert.deepEqual(error.issues.map(formatIssue), [`${missing}: cannot read the config file (no such file)`]);
  });

  it('TLS files are read relative to the config file\'s folder, not the working directory', T, () => {
    mkdirSync(join(dir, 'certs'), { recursive: true });
    // A real pair: certificates are checked when the file loads.
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-keyout', join(dir, 'certs', 'key.pem'), '-out', join(dir, 'certs', 'cert.pem')], { stdio: 'ignore' });
    const file = join(dir, 'tls.yaml');
    writeFileSync(file, doc('listeners:', '  - address: 127.0.0.1:0', '    tls: { cert: certs/cert.pem, key: certs/key.pem }',
      'sites:', '  - routes:', '      - to: http://127.0.0.1:1'));
    const { config } = loadConfigFile(file, { defaultSecret: SECRET, env: {} });
    assert.equal(config.file, file);
    assert.equal(String(config.listeners[0]?.tls?.cert), readFileSync(join(dir, 'certs', 'cert.pem'), 'utf8'));
    assert.equal(String(config.listeners[0]?.tls?.key), readFileSync(join(dir, 'certs', 'key.pem'), 'utf8'));
  });
});
