/**
 * The routing core: Host → site (HostMap), path prefixes at segment boundaries,
 * each match condition of RouteMatcher, and the Router's first-match-wins order.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.js';
import type { MatchConfig, SwitchyardConfig } from '../../src/config/model.js';
import { HostMap, normaliseHost } from '../../src/router/host-map.js';
import { requestFacts } from '../../src/router/request-facts.js';
import { hasPathPrefix, RouteMatcher, type RequestFacts } from '../../src/router/route-matcher.js';
import { Router } from '../../src/router/router.js';

const T = { timeout: 5_000 };

interface RequestOptions {
  readonly method?: string;
  /** Header names as Node gives them: lower case. */
  readonly headers?: Record<string, string>;
  readonly upgrade?: boolean;
}

/** The facts of a request for `target` ("/path?query"), as the pipeline computes them. */
function facts(target: string, options: RequestOptions = {}): RequestFacts {
  const req = { method: options.method ?? 'GET', url: target, headers: options.headers ?? {} } as unknown as IncomingMessage;
  return requestFacts(req, options.upgrade ?? false);
}

function matcher(match: Partial<MatchConfig>): RouteMatcher {
  return new RouteMatcher({ upgrade: 'any', ...match });
}

function matches(match: Partial<MatchConfig>, target: string, options: RequestOptions = {}): boolean {
  return matcher(match).test(facts(target, options)) !== null;
}

/** A config from YAML, for the conditions whose normalisation the loader does. */
function config(yaml: string): SwitchyardConfig {
  return loadConfigText(yaml, join(tmpdir(), 'switchyard-router-test.yaml'), { env: {}, defaultSecret: 'router-test-secret-0123456789' }).config;
}

describe('HostMap', () => {
  it('an exact name beats a wildcard, which beats the default, whatever the order added', T, () => {
    const map = new HostMap<string>();
    map.add('*', 'default');
    map.add('*.example.com', 'wildcard');
    map.add('www.example.com', 'exact');
    assert.equal(map.find('www.example.com'), 'exact');
    assert.equal(map.find('api.example.com'), 'wildcard');
    assert.equal(map.find('other.test'), 'default');
  });

  it('the longest matching wildcard wins, whatever the order added', T, () => {
    const map = new HostMap<string>();
    map.add('*.example.com', 'short');
    map.add('*.api.example.com', 'long');
    map.add('*.com', 'shortest');
    assert.equal(map.find('v1.api.example.com'), 'long');
    assert.equal(map.find('www.example.com'), 'short');
    assert.equal(map.find('other.com'), 'shortest');
  });

  it('a wildcard takes any depth of subdomain but not the bare domain nor a look-alike', T, () => {
    const map = new HostMap<string>();
    map.add('*.example.com', 'wildcard');
    map.add('*', 'default');
    assert.equal(map.find('a.b.c.example.com'), 'wildcard');
    assert.equal(map.find('example.com'), 'default');
    assert.equal(map.find('badexample.com'), 'default');
  });

  it('port, case and a trailing dot are ignored, in the Host header and in the patterns', T, () => {
    const map = new HostMap<string>();
    map.add('Example.COM.', 'exact');
    map.add('*.Example.com', 'wildcard');
    for (const host of ['example.com', 'EXAMPLE.com:8080', 'example.com.', 'Example.Com.:443']) assert.equal(map.find(host), 'exact', host);
    for (const host of ['WWW.example.com:8443', 'www.example.com.']) assert.equal(map.find(host), 'wildcard', host);
  });

  it('an IPv6 literal with and without a port', T, () => {
    const map = new HostMap<string>();
    map.add('[::1]', 'loopback6');
    map.add('127.0.0.1', 'loopback4');
    assert.equal(map.find('[::1]:8080'), 'loopback6');
    assert.equal(map.find('[::1]'), 'loopback6');
    assert.equal(map.find('127.0.0.1:8080'), 'loopback4');
  });

  it('no default: an unknown or missing Host finds nothing', T, () => {
    const map = new HostMap<string>();
    map.add('example.com', 'exact');
    map.add('*.example.com', 'wildcard');
    assert.equal(map.find('other.test'), undefined);
    assert.equal(map.find(undefined), undefined);
    assert.equal(map.find(''), undefined);
  });

  it('with a default, a request without Host gets it', T, () => {
    const map = new HostMap<string>();
    map.add('*', 'default');
    assert.equal(map.find(undefined), 'default');
  });

  it('the first value added for a name keeps it', T, () => {
    const map = new HostMap<string>();
    for (const value of ['first', 'second']) {
      map.add('a.test', value);
      map.add('*.b.test', value);
      map.add('*', value);
    }
    assert.deepEqual([map.find('a.test'), map.find('x.b.test'), map.find('c.test')], ['first', 'first', 'first']);
  });

  it('normaliseHost', T, () => {
    assert.equal(normaliseHost('Example.COM:8080'), 'example.com');
    assert.equal(normaliseHost('example.com.'), 'example.com');
    assert.equal(normaliseHost('[::1]:80'), '[::1]');
    assert.equal(normaliseHost('[2001:DB8::1]'), '[2001:db8::1]');
  });
});

describe('hasPathPrefix: segment boundaries', () => {
  it('/ws matches /ws and below, not /wsx', T, () => {
    for (const path of ['/ws', '/ws/', '/ws/x', '/ws/x/y']) assert.equal(hasPathPrefix(path, '/ws'), true, path);
    for (const path of ['/wsx', '/ws-x', '/w', '/', '/x/ws']) assert.equal(hasPathPrefix(path, '/ws'), false, path);
  });

  it('/ws/ matches /ws/ and below only', T, () => {
    for (const path of ['/ws/', '/ws/x']) assert.equal(hasPathPrefix(path, '/ws/'), true, path);
    for (const path of ['/ws', '/wsx/']) assert.equal(hasPathPrefix(path, '/ws/'), false, path);
  });

  it('/ matches every path', T, () => {
    for (const path of ['/', '/a', '/a/b/']) assert.equal(hasPathPrefix(path, '/'), true, path);
  });

  it('paths are compared as received: case-sensitive, not percent-decoded', T, () => {
    assert.equal(hasPathPrefix('/WS/x', '/ws'), false);
    assert.equal(hasPathPrefix('/w%73/x', '/ws'), false);
  });
});

describe('RouteMatcher: path', () => {
  it('no condition: every request, with no captures', T, () => {
    assert.deepEqual(matcher({}).test(facts('/anything?x=1', { method: 'DELETE' })), []);
  });

  it('prefix at segment boundaries; the query is not part of the path', T, () => {
    assert.equal(matches({ prefix: '/api' }, '/api/x?y=1'), true);
    assert.equal(matches({ prefix: '/api' }, '/api?y=1'), true);
    assert.equal(matches({ prefix: '/api' }, '/apix'), false);
  });

  it('exact: the path equals it, whatever the query', T, () => {
    assert.equal(matches({ exact: '/healthz' }, '/healthz'), true);
    assert.equal(matches({ exact: '/healthz' }, '/healthz?verbose=1'), true);
    assert.equal(matches({ exact: '/healthz' }, '/healthz/'), false);
    assert.equal(matches({ exact: '/healthz' }, '/health'), false);
  });

  it('regex: tested against the path without the query; the captures are returned', T, () => {
    const route = matcher({ regex: '^/(myApp)/(ws)$' });
    const captures = route.test(facts('/myApp/ws?token=abc'));
    assert.deepEqual(captures && [...captures], ['/myApp/ws', 'myApp', 'ws']);
    assert.equal(route.test(facts('/myApp/ws/x')), null);
  });

  it('regex: a group that did not take part is undefined; an unanchored regex matches anywhere', T, () => {
    const optional = matcher({ regex: '^/a(/b)?(/c)?$' }).test(facts('/a/c'));
    assert.deepEqual(optional && [...optional], ['/a/c', undefined, '/c']);
    const unanchored = matcher({ regex: 'v(\\d+)' }).test(facts('/api/v2/users'));
    assert.deepEqual(unanchored && [...unanchored], ['v2', '2']);
  });
});

describe('RouteMatcher: methods', () => {
  it('only the listed methods', T, () => {
    const match = { methods: ['GET', 'HEAD'] };
    assert.equal(matches(match, '/', { method: 'GET' }), true);
    assert.equal(matches(match, '/', { method: 'HEAD' }), true);
    assert.equal(matches(match, '/', { method: 'POST' }), false);
  });
});

describe('RouteMatcher: headers', () => {
  it('present / absent', T, () => {
    const present = { headers: new Map([['x-beta', { kind: 'present' } as const]]) };
    const absent = { headers: new Map([['x-beta', { kind: 'absent' } as const]]) };
    assert.equal(matches(present, '/', { headers: { 'x-beta': '' } }), true, 'present even when empty');
    assert.equal(matches(present, '/'), false);
    assert.equal(matches(absent, '/'), true);
    assert.equal(matches(absent, '/', { headers: { 'x-beta': '1' } }), false);
  });

  it('equals is case-sensitive on the value', T, () => {
    const match = { headers: new Map([['x-env', { kind: 'equals', value: 'Beta' } as const]]) };
    assert.equal(matches(match, '/', { headers: { 'x-env': 'Beta' } }), true);
    assert.equal(matches(match, '/', { headers: { 'x-env': 'beta' } }), false);
    assert.equal(matches(match, '/'), false);
  });

  it('regex is case-insensitive and fails on an absent header', T, () => {
    const match = { headers: new Map([['user-agent', { kind: 'regex', source: 'firefox/\\d+' } as const]]) };
    assert.equal(matches(match, '/', { headers: { 'user-agent': 'Mozilla/5.0 Firefox/128.0' } }), true);
    assert.equal(matches(match, '/', { headers: { 'user-agent': 'curl/8' } }), false);
    assert.equal(matches(match, '/'), false);
  });

  it('header names in the config are case-insensitive (X-Beta matches x-beta)', T, () => {
    const loaded = config([
      'listeners: [{ address: "127.0.0.1:0" }]',
      'sites:',
      '  - routes:',
      '      - match: { headers: { X-Beta: "1", User-Agent: { regex: "^Mozilla" } } }',
      '        respond: { body: beta }',
    ].join('\n'));
    const route = new RouteMatcher(loaded.sites[0]!.routes[0]!.match);
    assert.notEqual(route.test(facts('/', { headers: { 'x-beta': '1', 'user-agent': 'mozilla/5.0' } })), null);
    assert.equal(route.test(facts('/', { headers: { 'x-beta': '1' } })), null);
  });
});

describe('RouteMatcher: query', () => {
  const condition = <C extends object>(name: string, value: C): Partial<MatchConfig> => ({ query: new Map([[name, value as never]]) });

  it('present / absent, including a parameter without a value', T, () => {
    assert.equal(matches(condition('debug', { kind: 'present' }), '/?debug'), true);
    assert.equal(matches(condition('debug', { kind: 'present' }), '/?x=1&debug=0'), true);
    assert.equal(matches(condition('debug', { kind: 'present' }), '/?x=1'), false);
    assert.equal(matches(condition('debug', { kind: 'absent' }), '/'), true);
    assert.equal(matches(condition('debug', { kind: 'absent' }), '/?debug=1'), false);
  });

  it('equals compares the decoded value of the first occurrence', T, () => {
    assert.equal(matches(condition('v', { kind: 'equals', value: '2' }), '/?v=2'), true);
    assert.equal(matches(condition('v', { kind: 'equals', value: '2' }), '/?v=3'), false);
    assert.equal(matches(condition('v', { kind: 'equals', value: '2' }), '/?v=2&v=3'), true);
    assert.equal(matches(condition('name', { kind: 'equals', value: 'a b' }), '/?name=a%20b'), true);
    assert.equal(matches(condition('v', { kind: 'equals', value: '2' }), '/?V=2'), false, 'parameter names are case-sensitive');
  });

  it('regex', T, () => {
    assert.equal(matches(condition('id', { kind: 'regex', source: '^[0-9]+$' }), '/?id=42'), true);
    assert.equal(matches(condition('id', { kind: 'regex', source: '^[0-9]+$' }), '/?id=abc'), false);
    assert.equal(matches(condition('id', { kind: 'regex', source: '^[0-9]+$' }), '/'), false);
  });
});

describe('RouteMatcher: upgrade', () => {
  it('websocket: only upgrades', T, () => {
    assert.equal(matches({ upgrade: 'websocket' }, '/ws', { upgrade: true }), true);
    assert.equal(matches({ upgrade: 'websocket' }, '/ws'), false);
  });

  it('none: only plain HTTP', T, () => {
    assert.equal(matches({ upgrade: 'none' }, '/ws'), true);
    assert.equal(matches({ upgrade: 'none' }, '/ws', { upgrade: true }), false);
  });

  it('any: both', T, () => {
    assert.equal(matches({ upgrade: 'any' }, '/ws'), true);
    assert.equal(matches({ upgrade: 'any' }, '/ws', { upgrade: true }), true);
  });

  it('every condition must hold', T, () => {
    const match: Partial<MatchConfig> = { prefix: '/ws', upgrade: 'websocket', methods: ['GET'], headers: new Map([['origin', { kind: 'equals', value: 'https://app.test' }]]) };
    const ok = { upgrade: true, headers: { origin: 'https://app.test' } };
    assert.equal(matches(match, '/ws/chat', ok), true);
    assert.equal(matches(match, '/api', ok), false);
    assert.equal(matches(match, '/ws/chat', { ...ok, upgrade: false }), false);
    assert.equal(matches(match, '/ws/chat', { ...ok, headers: { origin: 'https://evil.test' } }), false);
  });
});

describe('Router', () => {
  const loaded = config([
    'listeners:',
    '  - address: 127.0.0.1:0',
    '  - address: 127.0.0.1:0',
    '    sites: [admin]',
    'sites:',
    '  - name: main',
    '    hosts: [example.com, "*.example.com"]',
    '    routes:',
    '      - match: { prefix: /ws, upgrade: websocket }',
    '        respond: { body: ws }',
    '      - match: { regex: "^/u/([0-9]+)$" }',
    '        respond: { body: user }',
    '      - match: { prefix: / }',
    '        respond: { body: main }',
    '  - name: admin',
    '    hosts: [admin.test]',
    '    routes:',
    '      - match: { exact: /status }',
    '        respond: { body: status }',
  ].join('\n'));
  const router = new Router(loaded, new Map());

  const routed = (listener: number, host: string | undefined, target: string, options: RequestOptions = {}): string => {
    const decision = router.route(listener, host, facts(target, options));
    return typeof decision === 'string' ? decision : decision.route.config.id;
  };

  it('the first route that matches, in the order written', T, () => {
    assert.equal(routed(0, 'example.com', '/ws/chat', { upgrade: true }), 'sites[0].routes[0]');
    assert.equal(routed(0, 'example.com', '/ws/chat'), 'sites[0].routes[2]');
    assert.equal(routed(0, 'www.example.com', '/u/42'), 'sites[0].routes[1]');
  });

  it('the regex captures come with the decision', T, () => {
    const decision = router.route(0, 'example.com', facts('/u/42'));
    assert.ok(typeof decision !== 'string');
    assert.deepEqual([...decision.captures], ['/u/42', '42']);
  });

  it('no site for the Host → no-site; a site without a matching route → no-route', T, () => {
    assert.equal(routed(0, 'other.test', '/'), 'no-site');
    assert.equal(routed(0, 'admin.test', '/status'), 'sites[1].routes[0]');
    assert.equal(routed(0, 'admin.test', '/other'), 'no-route');
  });

  it('a listener with sites: serves only those', T, () => {
    assert.equal(routed(1, 'admin.test', '/status'), 'sites[1].routes[0]');
    assert.equal(routed(1, 'example.com', '/'), 'no-site');
  });
});

describe('Router: the path index keeps the written order', () => {
  const loaded = config([
    'listeners:',
    '  - address: 127.0.0.1:0',
    'sites:',
    '  - routes:',
    '      - match: { prefix: /api, methods: [GET] }',
    '        respond: { body: api }',
    '      - match: { headers: { X-Canary: "1" } }',
    '        respond: { body: canary }',
    '      - match: { prefix: /api/v2 }',
    '        respond: { body: v2 }',
    '      - match: { exact: /x }',
    '        respond: { body: x }',
    '      - match: { regex: "^/(a|b)/" }',
    '        respond: { body: ab }',
    '      - match: { regex: "^/docs/(.*)" }',
    '        respond: { body: docs }',
    '      - respond: { body: rest }',
  ].join('\n'));
  const router = new Router(loaded, new Map());
  const body = (target: string, options: RequestOptions = {}): string => {
    const decision = router.route(0, 'any.test', facts(target, options));
    assert.ok(typeof decision !== 'string', `no route for ${target}`);
    const action = decision.route.config.action;
    return action.kind === 'respond' ? action.body : action.kind;
  };

  it('each matcher knows the path segments it is bound to', T, () => {
    const segments = router.routes.map((route) => route.matcher.boundSegments());
    assert.deepEqual(segments, [['api'], [], ['api', 'v2'], ['x'], [], ['docs'], []]);
  });

  it('regex literals bind only whole segments; trailing slashes bind nothing more', T, () => {
    assert.deepEqual(matcher({ regex: '^/api' }).boundSegments(), []);
    assert.deepEqual(matcher({ regex: '^/api/us' }).boundSegments(), ['api']);
    assert.deepEqual(matcher({ regex: '^/api\\/v1/' }).boundSegments(), ['api', 'v1']);
    assert.deepEqual(matcher({ regex: 'api/' }).boundSegments(), []);
    assert.deepEqual(matcher({ prefix: '/ws/' }).boundSegments(), ['ws']);
    assert.deepEqual(matcher({ prefix: '/' }).boundSegments(), []);
    assert.deepEqual(matcher({ exact: '/a/b' }).boundSegments(), ['a', 'b']);
  });

  it('a route that matches any segment still wins over a later one of the request\'s segment', T, () => {
    assert.equal(body('/api/v2/items'), 'api');
    assert.equal(body('/api/v2/items', { method: 'POST' }), 'v2');
    assert.equal(body('/api/v2/items', { method: 'POST', headers: { 'x-canary': '1' } }), 'canary');
    assert.equal(body('/api/v2', { method: 'POST' }), 'v2');
    assert.equal(body('/api/v2x', { method: 'POST' }), 'rest');
    assert.equal(body('/x'), 'x');
    assert.equal(body('/x', { headers: { 'x-canary': '1' } }), 'canary');
    assert.equal(body('/api/v2', { headers: { 'x-canary': '1' } }), 'api');
  });

  it('segments without routes of their own fall to the any-segment routes', T, () => {
    assert.equal(body('/a/1'), 'ab');
    assert.equal(body('/docs/intro'), 'docs');
    assert.equal(body('/apix'), 'rest');
    assert.equal(body('/'), 'rest');
    assert.equal(body('/nothing/here'), 'rest');
  });
});
