/**
 * Shadowed routes: a route that an earlier route of the same site always takes
 * first can never match, and the loader refuses the file (the classic
 * "ProxyPass / above the WebSocket rule"). Where regexes make it undecidable it
 * only warns. Asserted through the loader, with file positions, as `check` prints.
 */
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, formatIssue, type ConfigIssue } from '../../src/config/config-error.js';
import { loadConfigText, type LoadResult } from '../../src/config/load.js';

const T = { timeout: 5_000 };
const FILE = join(tmpdir(), 'switchyard-shadowing-test', 'switchyard.yaml');

/**
 * One listener and one site; each route is [match, action] written as two lines,
 * so routes[i] starts at line 5 + 2i, column 9.
 */
function site(...routes: [match: string, action: string][]): string {
  const lines = ['listeners:', '  - address: 127.0.0.1:0', 'sites:', '  - routes:'];
  for (const [match, action] of routes) lines.push(`      - match: ${match}`, `        ${action}`);
  return `${lines.join('\n')}\n`;
}

const TO_A = 'to: http://127.0.0.1:1';
const TO_B = 'to: http://127.0.0.1:2';

function routeLine(index: number): number {
  return 5 + 2 * index;
}

function load(text: string): LoadResult {
  return loadConfigText(text, FILE, { env: {}, defaultSecret: 'shadowing-test-secret-0123456789' });
}

function issuesOf(text: string): readonly ConfigIssue[] {
  let error: unknown;
  try {
    load(text);
  } catch (err) {
    error = err;
  }
  assert.ok(error instanceof ConfigError, `expected the file to be refused, got ${error === undefined ? 'a loaded config' : String(error)}`);
  return error.issues;
}

function problems(text: string): string[] {
  return issuesOf(text).map(formatIssue);
}

/** The formatted error for routes[later] of sites[0], shadowed by routes[earlier]. */
function unreachable(later: number, laterDescription: string, earlier: number, earlierDescription: string): string {
  return `${FILE}:${routeLine(later)}:9: sites[0].routes[${later}]: unreachable (${laterDescription}): routes[${earlier}] (${earlierDescription}) matches every request it would, first; move it above routes[${earlier}]`;
}

/** Loads the file and asserts it has neither errors nor warnings. */
function assertAccepted(text: string): void {
  const { warnings } = load(text);
  assert.deepEqual(warnings.map(formatIssue), []);
}

describe('refused: a route that can never match', () => {
  it('a WebSocket prefix under an earlier catch-all prefix /', T, () => {
    const text = site(['{ prefix: / }', TO_A], ['{ prefix: /ws/, upgrade: websocket }', TO_B]);
    assert.deepEqual(problems(text), [unreachable(1, 'prefix /ws/, upgrade: websocket', 0, 'prefix /')]);
  });

  it('the issue carries severity, path, line and column of the unreachable route', T, () => {
    const issues = issuesOf(site(['{ prefix: / }', TO_A], ['{ prefix: /ws/, upgrade: websocket }', TO_B]));
    assert.deepEqual(issues.map(({ severity, file, line, column, path }) => ({ severity, file, line, column, path })), [
      { severity: 'error', file: FILE, line: 7, column: 9, path: 'sites[0].routes[1]' },
    ]);
  });

  it('the exact message of the docs', T, () => {
    const issues = issuesOf(site(['{ prefix: / }', TO_A], ['{ prefix: /ws/, upgrade: websocket }', TO_B]));
    assert.equal(issues[0]?.message, 'unreachable (prefix /ws/, upgrade: websocket): routes[0] (prefix /) matches every request it would, first; move it above routes[0]');
  });

  it('a prefix under a shorter prefix at a segment boundary (/api then /api/v1)', T, () => {
    assert.deepEqual(problems(site(['{ prefix: /api }', TO_A], ['{ prefix: /api/v1 }', TO_B])), [
      unreachable(1, 'prefix /api/v1', 0, 'prefix /api'),
    ]);
  });

  it('the same prefix with and without a trailing slash (/ws then /ws/)', T, () => {
    assert.deepEqual(problems(site(['{ prefix: /ws }', TO_A], ['{ prefix: /ws/ }', TO_B])), [
      unreachable(1, 'prefix /ws/', 0, 'prefix /ws'),
    ]);
  });

  it('an exact path under a prefix', T, () => {
    assert.deepEqual(problems(site(['{ prefix: /api }', TO_A], ['{ exact: /api/health }', 'respond: { body: ok }'])), [
      unreachable(1, 'exact /api/health', 0, 'prefix /api'),
    ]);
  });

  it('the same exact path twice', T, () => {
    assert.deepEqual(problems(site(['{ exact: /a }', TO_A], ['{ exact: /a }', TO_B])), [unreachable(1, 'exact /a', 0, 'exact /a')]);
  });

  it('identical conditions (header names differing only in case), named routes', T, () => {
    const text = `${[
      'listeners:',
      '  - address: 127.0.0.1:0',
      'sites:',
      '  - routes:',
      '      - name: first',
      '        match: { prefix: /x, methods: [GET], headers: { x-a: "1" }, query: { q: { present: true } } }',
      `        ${TO_A}`,
      '      - name: second',
      '        match: { prefix: /x, methods: [GET], headers: { X-A: { equals: "1" } }, query: { q: { present: true } } }',
      `        ${TO_B}`,
    ].join('\n')}\n`;
    assert.deepEqual(problems(text), [
      `${FILE}:8:9: sites[0].routes[1]: unreachable ("second", prefix /x, GET): routes[0] ("first", prefix /x, GET) matches every request it would, first; move it above routes[0]`,
    ]);
  });

  it('the later route\'s methods are a subset of the earlier route\'s', T, () => {
    assert.deepEqual(problems(site(['{ prefix: /, methods: [GET, POST] }', TO_A], ['{ prefix: /a, methods: [GET] }', TO_B])), [
      unreachable(1, 'prefix /a, GET', 0, 'prefix /, GET|POST'),
    ]);
  });

  it('an empty match above anything: every later route is refused', T, () => {
    const text = site(
      ['{}', TO_A],
      ['{ prefix: /a }', TO_B],
      ['{ exact: /x, methods: [POST] }', TO_B],
      ['{ regex: "^/r/(.*)" }', TO_B],
      ['{ upgrade: websocket }', TO_B],
      ['{}', TO_B],
    );
    assert.deepEqual(problems(text), [
      unreachable(1, 'prefix /a', 0, 'every path'),
      unreachable(2, 'exact /x, POST', 0, 'every path'),
      unreachable(3, 'regex ^/r/(.*)', 0, 'every path'),
      unreachable(4, 'every path, upgrade: websocket', 0, 'every path'),
      unreachable(5, 'every path', 0, 'every path'),
    ]);
  });

  it('a regex above an exact path it matches', T, () => {
    assert.deepEqual(problems(site(['{ regex: "^/user/[0-9]+$" }', TO_A], ['{ exact: /user/42 }', TO_B])), [
      unreachable(1, 'exact /user/42', 0, 'regex ^/user/[0-9]+$'),
    ]);
  });

  it('the same regex twice', T, () => {
    assert.deepEqual(problems(site(['{ regex: "^/r/" }', TO_A], ['{ regex: "^/r/" }', TO_B])), [unreachable(1, 'regex ^/r/', 0, 'regex ^/r/')]);
  });

  it('upgrade: none above upgrade: none', T, () => {
    assert.deepEqual(problems(site(['{ prefix: /, upgrade: none }', TO_A], ['{ prefix: /ws, upgrade: none }', TO_B])), [
      unreachable(1, 'prefix /ws, upgrade: none', 0, 'prefix /, upgrade: none'),
    ]);
  });

  it('the first covering route is named when several earlier routes cover', T, () => {
    const text = site(['{ prefix: /a }', TO_A], ['{ prefix: / }', TO_A], ['{ prefix: /a/b }', TO_B]);
    assert.deepEqual(problems(text), [unreachable(2, 'prefix /a/b', 0, 'prefix /a')]);
  });

  it('in a second site, the path names that site', T, () => {
    const text = [
      'listeners:',
      '  - address: 127.0.0.1:0',
      'sites:',
      '  - hosts: [a.example]',
      '    routes:',
      `      - ${TO_A}`,
      '  - hosts: [b.example]',
      '    routes:',
      '      - match: { prefix: / }',
      `        ${TO_A}`,
      '      - match: { prefix: /x }',
      `        ${TO_B}`,
    ].join('\n');
    assert.deepEqual(problems(text), [
      `${FILE}:11:9: sites[1].routes[1]: unreachable (prefix /x): routes[0] (prefix /) matches every request it would, first; move it above routes[0]`,
    ]);
  });

  it('a GET-only route above a WebSocket-only route covers it (a WebSocket upgrade is always a GET)', T, () => {
    const text = site(['{ prefix: /, methods: [GET, HEAD] }', TO_A], ['{ prefix: /ws, upgrade: websocket }', TO_B]);
    assert.deepEqual(problems(text), [unreachable(1, 'prefix /ws, upgrade: websocket', 0, 'prefix /, GET|HEAD')]);
  });
});

describe('accepted: the earlier route is narrower', () => {
  it('upgrade: websocket on / above a plain prefix /', T, () => {
    assertAccepted(site(['{ prefix: /, upgrade: websocket }', TO_A], ['{ prefix: / }', TO_B]));
  });

  it('upgrade: none above a route that also takes upgrades', T, () => {
    assertAccepted(site(['{ prefix: /, upgrade: none }', TO_A], ['{ prefix: /ws }', TO_B]));
  });

  it('by methods', T, () => {
    assertAccepted(site(['{ prefix: /, methods: [GET] }', TO_A], ['{ prefix: /a }', TO_B]));
    assertAccepted(site(['{ prefix: /, methods: [GET] }', TO_A], ['{ prefix: /a, methods: [GET, POST] }', TO_B]));
  });

  it('by headers', T, () => {
    assertAccepted(site(['{ prefix: /, headers: { x-beta: "1" } }', TO_A], ['{ prefix: /a }', TO_B]));
    assertAccepted(site(['{ prefix: /, headers: { x-beta: "1" } }', TO_A], ['{ prefix: /a, headers: { x-beta: "2" } }', TO_B]));
    assertAccepted(site(['{ prefix: /, headers: { x-beta: { present: false } } }', TO_A], ['{ prefix: /a }', TO_B]));
  });

  it('by query', T, () => {
    assertAccepted(site(['{ prefix: /, query: { v: "2" } }', TO_A], ['{ prefix: /a }', TO_B]));
  });

  it('prefixes that only overlap as text (/ws vs /wsx)', T, () => {
    assertAccepted(site(['{ prefix: /ws }', TO_A], ['{ prefix: /wsx }', TO_B]));
    assertAccepted(site(['{ prefix: /ws }', TO_A], ['{ exact: /wsx }', TO_B]));
  });

  it('a prefix with a trailing slash above the same prefix without (/ws/ then /ws)', T, () => {
    assertAccepted(site(['{ prefix: /ws/ }', TO_A], ['{ prefix: /ws }', TO_B]));
  });

  it('an exact path above a prefix of the same path', T, () => {
    assertAccepted(site(['{ exact: /a }', TO_A], ['{ prefix: /a }', TO_B]));
  });

  it('a regex above an exact path it does not match', T, () => {
    assertAccepted(site(['{ regex: "^/user/[0-9]+$" }', TO_A], ['{ exact: /user/me }', TO_B]));
  });

  it('the narrow route first, the catch-all last', T, () => {
    assertAccepted(site(['{ prefix: /ws/, upgrade: websocket }', TO_B], ['{ exact: /healthz }', 'respond: { body: ok }'], ['{}', TO_A]));
  });

  it('routes in different sites never shadow each other', T, () => {
    const text = [
      'listeners:',
      '  - address: 127.0.0.1:0',
      'sites:',
      '  - hosts: [a.example]',
      '    routes:',
      `      - ${TO_A}`,
      '  - hosts: [b.example]',
      '    routes:',
      '      - match: { prefix: /x }',
      `        ${TO_B}`,
    ].join('\n');
    assertAccepted(text);
  });
});

describe('warned: regexes make it undecidable', () => {
  it('a regex under a prefix it starts with: a warning, and the config still loads', T, () => {
    const text = site(['{ prefix: /api }', TO_A], ['{ regex: "^/api/(.*)" }', `${TO_B}\n        rewrite: /$1`]);
    const { config, warnings } = load(text);
    assert.deepEqual(warnings.map(formatIssue), [
      `${FILE}:7:9: warning: sites[0].routes[1]: may be unreachable (regex ^/api/(.*)): routes[0] (prefix /api) may match first (regexes make it undecidable); check the order`,
    ]);
    assert.deepEqual(warnings.map(({ severity, path, line, column }) => ({ severity, path, line, column })), [
      { severity: 'warning', path: 'sites[0].routes[1]', line: 7, column: 9 },
    ]);
    assert.deepEqual(config.sites[0]?.routes.map((route) => route.id), ['sites[0].routes[0]', 'sites[0].routes[1]']);
  });

  it('a regex under a regex with a shorter literal start', T, () => {
    const { warnings } = load(site(['{ regex: "^/api/" }', TO_A], ['{ regex: "^/api/v1/(.*)" }', TO_B]));
    assert.deepEqual(warnings.map(formatIssue), [
      `${FILE}:7:9: warning: sites[0].routes[1]: may be unreachable (regex ^/api/v1/(.*)): routes[0] (regex ^/api/) may match first (regexes make it undecidable); check the order`,
    ]);
  });

  it('a prefix under a regex that matches the prefix', T, () => {
    const { warnings } = load(site(['{ regex: "^/static" }', TO_A], ['{ prefix: /static/img }', TO_B]));
    assert.deepEqual(warnings.map(formatIssue), [
      `${FILE}:7:9: warning: sites[0].routes[1]: may be unreachable (prefix /static/img): routes[0] (regex ^/static) may match first (regexes make it undecidable); check the order`,
    ]);
  });

  it('unrelated regexes give no warning', T, () => {
    assertAccepted(site(['{ regex: "^/api/" }', TO_A], ['{ regex: "^/static/(.*)" }', TO_B]));
  });

  it('a certain refusal of a later route wins over a warning from an earlier one', T, () => {
    const text = site(['{ regex: "^/a" }', TO_A], ['{ prefix: /a }', TO_A], ['{ prefix: /a/b }', TO_B]);
    const issues = issuesOf(text);
    assert.deepEqual(issues.map((issue) => [issue.severity, issue.path]), [
      ['warning', 'sites[0].routes[1]'],
      ['error', 'sites[0].routes[2]'],
    ]);
    assert.equal(formatIssue(issues[1]!), unreachable(2, 'prefix /a/b', 1, 'prefix /a'));
  });
});
