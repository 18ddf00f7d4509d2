/**
 * Affinity: CookieAffinity (signed cookie values every instance agrees on),
 * readCookie, and the pool's two sticky modes — cookie (pin to the server the
 * cookie names, re-pin when it is ignored or the server cannot take the
 * request) and ip (an address keeps its server by consistent hashing, falling
 * back while that one is down).
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { StickyMode, UpstreamConfig } from '../../src/config/model.js';
import type { Balancer } from '../../src/upstream/balancer/balancer.js';
import { byClientAddress, ConsistentHashBalancer } from '../../src/upstream/balancer/consistent-hash.js';
import { CookieAffinity, readCookie } from '../../src/upstream/sticky.js';
import { FULL, UpstreamPool, type Selection, type SelectionInput } from '../../src/upstream/upstream-pool.js';
import { UpstreamServer } from '../../src/upstream/upstream-server.js';

const T = { timeout: 5_000 };
const URLS = ['http://127.0.0.1:3001', 'http://127.0.0.1:3002', 'http://127.0.0.1:3003'];
const TIMEOUTS = { connectMs: 1_000, responseMs: 1_000, bodyIdleMs: 1_000 };
const NOW = 1_000_000;
const FAIL_MS = 10_000;
const closables: { close(): Promise<unknown> }[] = [];

// UpstreamServer owns an undici Pool (no socket until used); destroy them all at the end.
after(async () => {
  await Promise.all(closables.map((item) => item.close()));
});

describe('CookieAffinity', () => {
  test('the same secret and servers give the same cookie values, in any instance', T, () => {
    // Two instances, as two proxy processes would build them: distinct objects, same URLs.
    const firstServers = makeServers(URLS);
    const secondServers = makeServers(URLS);
    const first = new CookieAffinity('sy_affinity', 'secret-one', firstServers);
    const second = new CookieAffinity('sy_affinity', 'secret-one', secondServers);
    for (let i = 0; i < URLS.length; i++) {
      assert.equal(first.setCookie(firstServers[i]!, false), second.setCookie(secondServers[i]!, false));
    }
    // A cookie minted by one instance pins to the server with the same URL in the other.
    for (let i = 0; i < URLS.length; i++) {
      const cookie = cookieValue(first.setCookie(firstServers[i]!, false));
      assert.equal(second.pinned(`sy_affinity=${cookie}`), secondServers[i]);
    }
  });

  test('each server gets its own value', T, () => {
    const servers = makeServers(URLS);
    const affinity = new CookieAffinity('sy_affinity', 'secret-one', servers);
    const values = new Set(servers.map((server) => cookieValue(affinity.setCookie(server, false))));
    assert.equal(values.size, URLS.length);
  });

  test('another secret gives different values, and its cookies are not accepted', T, () => {
    const serversA = makeServers(URLS);
    const serversB = makeServers(URLS);
    const a = new CookieAffinity('sy_affinity', 'secret-one', serversA);
    const b = new CookieAffinity('sy_affinity', 'secret-two', serversB);
    for (let i = 0; i < URLS.length; i++) {
      const valueA = cookieValue(a.setCookie(serversA[i]!, false));
      const valueB = cookieValue(b.setCookie(serversB[i]!, false));
      assert.notEqual(valueA, valueB);
      assert.equal(b.pinned(`sy_affinity=${valueA}`), undefined);
    }
  });

  test('a forged or tampered cookie is ignored', T, () => {
    const servers = makeServers(URLS);
    const affinity = new CookieAffinity('sy_affinity', 'secret-one', servers);
    const genuine = cookieValue(affinity.setCookie(servers[0]!, false));
    const [key, signature] = genuine.split('.') as [string, string];
    const flipped = `${signature.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`;
    assert.equal(affinity.pinned(`sy_affinity=${genuine}`), servers[0]);
    assert.equal(affinity.pinned(`sy_affinity=${key}.${flipped}`), undefined, 'signature altered');
    assert.equal(affinity.pinned(`sy_affinity=${key}`), undefined, 'signature missing');
    assert.equal(affinity.pinned(`sy_affinity=${key}.`), undefined, 'empty signature');
    assert.equal(affinity.pinned('sy_affinity=anything.at-all'), undefined);
    assert.equal(affinity.pinned(`other=${genuine}`), undefined, 'valid value under another name');
    assert.equal(affinity.pinned(''), undefined);
    assert.equal(affinity.pinned(undefined), undefined);
  });

  test('Set-Cookie carries the name, Path, HttpOnly, SameSite and Secure only when asked', T, () => {
    const servers = makeServers(URLS);
    const affinity = new CookieAffinity('route', 'secret-one', servers);
    const plain = affinity.setCookie(servers[1]!, false);
    const secure = affinity.setCookie(servers[1]!, true);
    assert.match(plain, /^route=[^;\s]+; /);
    assert.match(plain, /; Path=\//);
    assert.match(plain, /; HttpOnly/);
    assert.match(plain, /; SameSite=Lax/);
    assert.doesNotMatch(plain, /Secure/);
    assert.match(secure, /; Secure$/);
    assert.equal(cookieValue(plain), cookieValue(secure));
  });

  test('setCookie refuses a server of another pool', T, () => {
    const affinity = new CookieAffinity('sy_affinity', 'secret-one', makeServers(URLS));
    const [stranger] = makeServers(['http://127.0.0.1:4000']);
    assert.throws(() => affinity.setCookie(stranger!, false));
  });

  test('add: a server added later gets the value an instance built with it would give, and is pinned by it', T, () => {
    const [late] = makeServers(['http://127.0.0.1:3004']);
    const earlier = makeServers(URLS);
    const grown = new CookieAffinity('sy_affinity', 'secret-one', earlier);
    assert.throws(() => grown.setCookie(late!, false), 'unknown before add');
    grown.add(late!);
    const allServers = makeServers([...URLS, 'http://127.0.0.1:3004']);
    const built = new CookieAffinity('sy_affinity', 'secret-one', allServers);
    const value = cookieValue(grown.setCookie(late!, false));
    assert.equal(value, cookieValue(built.setCookie(allServers[3]!, false)), 'two instances agree on the late server');
    assert.equal(grown.pinned(`sy_affinity=${value}`), late);
    assert.equal(built.pinned(`sy_affinity=${value}`), allServers[3]);
    assert.match(grown.setCookie(late!, true), /; Secure$/);
    // The servers known before keep their values and pins.
    for (let i = 0; i < URLS.length; i++) {
      const before = cookieValue(grown.setCookie(earlier[i]!, false));
      assert.equal(before, cookieValue(built.setCookie(allServers[i]!, false)));
      assert.equal(grown.pinned(`sy_affinity=${before}`), earlier[i]);
      assert.notEqual(before, value);
    }
  });
});

describe('readCookie', () => {
  test('finds a cookie at the start, in the middle and at the end', T, () => {
    assert.equal(readCookie('sy=1', 'sy'), '1');
    assert.equal(readCookie('sy=1; a=2', 'sy'), '1');
    assert.equal(readCookie('a=2; sy=1; b=3', 'sy'), '1');
    assert.equal(readCookie('a=2; sy=1', 'sy'), '1');
  });

  test('accepts a pair separator without a space', T, () => {
    assert.equal(readCookie('a=2;sy=1', 'sy'), '1');
  });

  test('does not match a name that only ends or starts with the wanted name', T, () => {
    assert.equal(readCookie('xsy=1', 'sy'), undefined);
    assert.equal(readCookie('sy_old=1', 'sy'), undefined);
    assert.equal(readCookie('xsy=1; sy=2', 'sy'), '2');
    assert.equal(readCookie('sy_old=1; sy=2', 'sy'), '2');
  });

  test('does not match the name inside another cookie value', T, () => {
    assert.equal(readCookie('a=sy=1', 'sy'), undefined);
    assert.equal(readCookie('a=sy=1; sy=2', 'sy'), '2');
  });

  test('a name without "=" is no cookie; an empty value is an empty string', T, () => {
    assert.equal(readCookie('sy; a=1', 'sy'), undefined);
    assert.equal(readCookie('sy', 'sy'), undefined);
    assert.equal(readCookie('sy=', 'sy'), '');
    assert.equal(readCookie('sy=; a=1', 'sy'), '');
  });

  test('trims spaces around the value and is case-sensitive on the name', T, () => {
    assert.equal(readCookie('sy= 1 ; a=2', 'sy'), '1');
    assert.equal(readCookie('SY=1', 'sy'), undefined);
  });

  test('returns undefined when absent', T, () => {
    assert.equal(readCookie('', 'sy'), undefined);
    assert.equal(readCookie('a=1; b=2', 'sy'), undefined);
  });
});

describe('UpstreamPool with cookie affinity', () => {
  test('no cookie: a server by policy, and a Set-Cookie that pins to it', T, () => {
    const pool = makePool('cookie');
    const first = pick(pool, input('http'));
    assert.ok(first.setCookie);
    const cookie = cookiePair(first);
    for (let i = 0; i < 5; i++) {
      const again = pick(pool, input('http', { cookieHeader: `a=1; ${cookie}; b=2` }));
      assert.equal(again.server, first.server);
      assert.equal(again.setCookie, undefined, 'a valid pin is not re-sent');
    }
  });

  test('each server can be pinned: the first picks go round robin, each cookie naming its server', T, () => {
    const pool = makePool('cookie');
    const picks = Array.from({ length: 3 }, () => pick(pool, input('http')));
    assert.deepEqual(picks.map((selection) => pool.servers.indexOf(selection.server)), [0, 1, 2]);
    for (const selection of picks) {
      for (let i = 0; i < 3; i++) assert.equal(pick(pool, input('http', { cookieHeader: cookiePair(selection) })).server, selection.server);
    }
  });

  test('the pin holds for upgrades as well, whatever the load', T, () => {
    const pool = makePool('cookie');
    const cookie = cookiePair(pick(pool, input('http')));
    const pinned = pick(pool, input('http', { cookieHeader: cookie })).server;
    setActive(pool.servers, pool.servers.map((server) => (server === pinned ? 50 : 0)));
    assert.equal(pick(pool, input('upgrade', { cookieHeader: cookie })).server, pinned);
  });

  test('a pool with the same secret and servers honours the cookie; another secret does not', T, () => {
    const minted = makePool('cookie', 'shared');
    const selection = pick(minted, input('http'));
    const cookie = cookiePair(selection);
    const index = minted.servers.indexOf(selection.server);
    const twin = makePool('cookie', 'shared');
    for (let i = 0; i < 3; i++) {
      const again = pick(twin, input('http', { cookieHeader: cookie }));
      assert.equal(twin.servers.indexOf(again.server), index);
      assert.equal(again.setCookie, undefined);
    }
    // Every server's Set-Cookie is the same in both pools.
    for (let i = 0; i < URLS.length; i++) {
      const fromMinted = pick(minted, input('http', { tried: minted.servers.filter((_, j) => j !== i) }));
      const fromTwin = pick(twin, input('http', { tried: twin.servers.filter((_, j) => j !== i) }));
      assert.equal(fromMinted.setCookie, fromTwin.setCookie);
    }
    const stranger = makePool('cookie', 'different');
    const picks = Array.from({ length: 3 }, () => pick(stranger, input('http', { cookieHeader: cookie })));
    // Ignored: round robin decides and every answer re-pins with a fresh cookie.
    assert.equal(new Set(picks.map((other) => other.server)).size, 3);
    for (const other of picks) assert.ok(other.setCookie && cookiePair(other) !== cookie);
  });

  test('a forged cookie is ignored and replaced', T, () => {
    const pool = makePool('cookie');
    const picks = Array.from({ length: 3 }, () => pick(pool, input('http', { cookieHeader: 'sy_affinity=forged.value' })));
    assert.equal(new Set(picks.map((selection) => selection.server)).size, 3, 'round robin, not a pin');
    for (const selection of picks) assert.match(selection.setCookie ?? '', /^sy_affinity=(?!forged)/);
  });

  test('a pinned server that is down, draining or ejected falls back, re-pinning; the pin is honoured again once it is back', T, () => {
    const takeDown: [string, (pool: UpstreamPool, server: UpstreamServer) => void, (pool: UpstreamPool, server: UpstreamServer) => void][] = [
      ['down', (_pool, server) => { server.healthy = false; }, (_pool, server) => { server.healthy = true; }],
      ['draining', (pool, server) => pool.drain(server, 60_000), (pool, server) => pool.undrain(server)],
      ['ejected', (pool, server) => pool.recordFailure(server, 'connect', NOW), (_pool, server) => { server.ejectedUntil = 0; }],
    ];
    for (const [state, down, up] of takeDown) {
      const pool = makePool('cookie');
      const first = pick(pool, input('http'));
      const cookie = cookiePair(first);
      down(pool, first.server);
      for (const kind of ['http', 'upgrade'] as const) {
        const fallback = pick(pool, input(kind, { cookieHeader: cookie }));
        assert.notEqual(fallback.server, first.server, `${state}: ${kind} falls back`);
        assert.ok(fallback.setCookie, `${state}: ${kind} re-pins`);
        assert.notEqual(cookiePair(fallback), cookie);
        assert.equal(pick(pool, input('http', { cookieHeader: cookiePair(fallback) })).server, fallback.server, `${state}: the new pin holds`);
      }
      up(pool, first.server);
      const back = pick(pool, input('http', { cookieHeader: cookie }));
      assert.equal(back.server, first.server, `${state}: the old cookie pins again once the server is back`);
      assert.equal(back.setCookie, undefined);
    }
  });

  test('a pinned server already tried for this request falls back', T, () => {
    const pool = makePool('cookie');
    const first = pick(pool, input('http'));
    const cookie = cookiePair(first);
    const retry = pick(pool, input('http', { cookieHeader: cookie, tried: [first.server] }));
    assert.notEqual(retry.server, first.server);
    assert.ok(retry.setCookie);
  });

  test('with every server ejected the pinned one is still honoured', T, () => {
    const pool = makePool('cookie');
    const first = pick(pool, input('http'));
    for (const server of pool.servers) pool.recordFailure(server, 'connect', NOW);
    for (let i = 0; i < 3; i++) assert.equal(pick(pool, input('http', { cookieHeader: cookiePair(first) })).server, first.server);
  });

  test('Secure is added to the cookie on a TLS listener only', T, () => {
    const pool = makePool('cookie');
    assert.doesNotMatch(pick(pool, input('http', { secure: false })).setCookie!, /Secure/);
    assert.match(pick(pool, input('http', { secure: true })).setCookie!, /; Secure/);
  });

  test('a server added later (discovery) can be pinned, and pools that know it agree', T, () => {
    const pool = makePool('cookie', 'shared');
    const added = pool.createServer('http://127.0.0.1:3004');
    pool.addServer(added);
    const selection = pick(pool, input('http', { tried: pool.servers.filter((server) => server !== added) }));
    assert.equal(selection.server, added);
    assert.ok(selection.setCookie, 'no throw: the new server has a cookie');
    for (let i = 0; i < 3; i++) assert.equal(pick(pool, input('http', { cookieHeader: cookiePair(selection) })).server, added);
    const built = makePool('cookie', 'shared', [...URLS, 'http://127.0.0.1:3004']);
    assert.equal(pick(built, input('http', { cookieHeader: cookiePair(selection) })).server, built.servers[3]);
  });
});

describe('UpstreamPool with ip affinity', () => {
  test('the same address always lands on its home server, for requests and upgrades, with no cookie', T, () => {
    const pool = makePool('ip');
    for (const address of ['10.0.0.1', '10.0.0.2', '192.168.1.77', '::1', '2001:db8::1']) {
      const home = pick(pool, input('http', { clientAddress: address })).server;
      for (let i = 0; i < 5; i++) {
        const selection = pick(pool, input('http', { clientAddress: address }));
        assert.equal(selection.server, home);
        assert.equal(selection.setCookie, undefined);
        setActive(pool.servers, pool.servers.map((server) => (server === home ? 20 : 0)));
        assert.equal(pick(pool, input('upgrade', { clientAddress: address })).server, home, 'load does not move it');
        setActive(pool.servers, [0, 0, 0]);
      }
    }
  });

  test('the home is the same in every pool built with the same servers', T, () => {
    const one = makePool('ip');
    const two = makePool('ip');
    for (let i = 0; i < 100; i++) {
      const clientAddress = `10.2.${i}.9`;
      const a = one.servers.indexOf(pick(one, input('http', { clientAddress })).server);
      const b = two.servers.indexOf(pick(two, input('http', { clientAddress })).server);
      assert.equal(a, b, clientAddress);
    }
  });

  test('spreads many addresses over every server', T, () => {
    const pool = makePool('ip');
    const counts = [0, 0, 0];
    for (let i = 0; i < 300; i++) counts[pool.servers.indexOf(pick(pool, input('http', { clientAddress: `192.168.${i >> 8}.${i & 255}` })).server)]! += 1;
    // A hash that sends everything to one server would fail this; each gets a fair share.
    for (const count of counts) assert.ok(count > 50, `uneven spread: ${counts.join(', ')}`);
  });

  test('falls back while the home server is down, stably, and returns when it is back', T, () => {
    const pool = makePool('ip');
    const hash: Balancer = new ConsistentHashBalancer(byClientAddress);
    for (let i = 0; i < 20; i++) {
      const clientAddress = `10.1.2.${i}`;
      const home = pick(pool, input('http', { clientAddress })).server;
      home.healthy = false;
      const fallback = pick(pool, input('http', { clientAddress })).server;
      assert.notEqual(fallback, home);
      // The address's home among the servers left: other addresses keep theirs.
      const remaining = pool.servers.filter((server) => server !== home);
      assert.equal(fallback, hash.select(remaining, { kind: 'http', clientAddress, hashKey: undefined }));
      for (let j = 0; j < 3; j++) assert.equal(pick(pool, input('upgrade', { clientAddress })).server, fallback, 'stable');
      home.healthy = true;
      assert.equal(pick(pool, input('http', { clientAddress })).server, home, 'back home');
    }
  });

  test('an ejected home is skipped until the ejection ends', T, () => {
    const pool = makePool('ip');
    const clientAddress = '10.4.4.4';
    const home = pick(pool, input('http', { clientAddress })).server;
    pool.recordFailure(home, 'connect', NOW);
    assert.notEqual(pick(pool, input('http', { clientAddress })).server, home);
    assert.equal(pick(pool, input('http', { clientAddress }), NOW + FAIL_MS).server, home);
  });

  test('falls back when the home server was tried; still picks home when all are ejected', T, () => {
    const pool = makePool('ip');
    const address = '10.9.8.7';
    const home = pick(pool, input('http', { clientAddress: address })).server;
    assert.notEqual(pick(pool, input('http', { clientAddress: address, tried: [home] })).server, home);
    for (const server of pool.servers) pool.recordFailure(server, 'connect', NOW);
    assert.equal(pick(pool, input('http', { clientAddress: address })).server, home);
    assert.equal(pool.select(input('http', { clientAddress: address, tried: [...pool.servers] }), NOW), undefined);
  });
});

// --- helpers ---

function makeServers(urls: readonly string[]): UpstreamServer[] {
  const servers = urls.map((url) => new UpstreamServer(url, TIMEOUTS));
  closables.push(...servers);
  return servers;
}

function makePool(sticky: StickyMode, secret = 'test-secret', urls: readonly string[] = URLS): UpstreamPool {
  const config: UpstreamConfig = {
    name: 'test', servers: urls.map((url) => ({ url, weight: 1 })), policy: undefined,
    sticky, stickySecret: secret, stickyCookieName: 'sy_affinity', failTimeoutMs: FAIL_MS,
  };
  const pool = new UpstreamPool(config, TIMEOUTS);
  closables.push(pool);
  return pool;
}

function input(kind: SelectionInput['kind'], overrides: Partial<SelectionInput> = {}): SelectionInput {
  return { kind, clientAddress: '127.0.0.1', cookieHeader: undefined, secure: false, tried: undefined, ...overrides };
}

/** A selection that must name a server (not FULL, not undefined). */
function pick(pool: UpstreamPool, selectionInput: SelectionInput, now = NOW): Selection {
  const selection = pool.select(selectionInput, now);
  assert.ok(selection !== undefined && selection !== FULL, `expected a server, got ${String(selection)}`);
  return selection;
}

/** The "name=value" of a selection's Set-Cookie, as the browser sends it back. */
function cookiePair(selection: Selection): string {
  assert.ok(selection.setCookie, 'expected a Set-Cookie');
  return selection.setCookie.split(';')[0]!;
}

/** The value of a "name=value; attributes" Set-Cookie line. */
function cookieValue(setCookie: string): string {
  const pair = setCookie.split(';')[0] ?? '';
  return pair.slice(pair.indexOf('=') + 1);
}

function setActive(servers: readonly UpstreamServer[], counts: readonly number[]): void {
  servers.forEach((server, index) => { server.active = counts[index] ?? 0; });
}
