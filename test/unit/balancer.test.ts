import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { StickyMode, UpstreamConfig } from '../../src/config/model.js';
import { LeastConnBalancer } from '../../src/upstream/balancer/least-conn.js';
import { RoundRobinBalancer } from '../../src/upstream/balancer/round-robin.js';
import { ipHashIndex } from '../../src/upstream/sticky.js';
import { UpstreamPool, type SelectionInput } from '../../src/upstream/upstream-pool.js';
import { UpstreamServer } from '../../src/upstream/upstream-server.js';

const URLS = ['http://127.0.0.1:3001', 'http://127.0.0.1:3002', 'http://127.0.0.1:3003'];
const NOW = 1_000_000;
const FAIL_MS = 10_000;
const closables: { close(): Promise<unknown> }[] = [];

// Servers and pools own undici Pools (no socket until used); destroy them at the end.
after(async () => {
  await Promise.all(closables.map((item) => item.close()));
});

describe('RoundRobinBalancer', () => {
  test('cycles through the servers in order, evenly', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS);
    const balancer = new RoundRobinBalancer();
    const picks = Array.from({ length: 9 }, () => balancer.select(servers, NOW, undefined));
    assert.deepEqual(picks.map((server) => servers.indexOf(server!)), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
  });

  test('skips servers marked down and servers already tried', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS);
    const balancer = new RoundRobinBalancer();
    servers[1]!.markFailed(NOW, FAIL_MS);
    const picks = Array.from({ length: 4 }, () => servers.indexOf(balancer.select(servers, NOW, undefined)!));
    assert.deepEqual(picks, [0, 2, 0, 2]);
    assert.equal(balancer.select(servers, NOW, [servers[0]!, servers[2]!]), undefined);
  });

  test('a server is eligible again once its fail timeout has passed', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS.slice(0, 1));
    const balancer = new RoundRobinBalancer();
    servers[0]!.markFailed(NOW, FAIL_MS);
    assert.equal(balancer.select(servers, NOW + FAIL_MS - 1, undefined), undefined);
    assert.equal(balancer.select(servers, NOW + FAIL_MS, undefined), servers[0]);
  });
});

describe('LeastConnBalancer', () => {
  test('picks the server with the fewest active connections', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS);
    const balancer = new LeastConnBalancer();
    setActive(servers, [5, 1, 3]);
    assert.equal(balancer.select(servers, NOW, undefined), servers[1]);
    setActive(servers, [0, 4, 3]);
    assert.equal(balancer.select(servers, NOW, undefined), servers[0]);
    setActive(servers, [2, 4, 1]);
    assert.equal(balancer.select(servers, NOW, undefined), servers[2]);
  });

  test('spreads ties round robin (an idle pool still spreads new tunnels)', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS);
    const balancer = new LeastConnBalancer();
    const picks = Array.from({ length: 6 }, () => servers.indexOf(balancer.select(servers, NOW, undefined)!));
    assert.deepEqual(picks.slice().sort(), [0, 0, 1, 1, 2, 2]);
    assert.deepEqual(picks.slice(0, 3).sort(), [0, 1, 2]);
  });

  test('follows the counts as tunnels open (each pick counted as active)', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS);
    const balancer = new LeastConnBalancer();
    setActive(servers, [3, 0, 0]);
    for (let i = 0; i < 6; i++) balancer.select(servers, NOW, undefined)!.active++;
    // Servers 1 and 2 catch up with server 0 first: all end at 3.
    assert.deepEqual(servers.map((server) => server.active), [3, 3, 3]);
  });

  test('ignores down and tried servers even when they are least loaded', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS);
    const balancer = new LeastConnBalancer();
    setActive(servers, [0, 1, 9]);
    servers[0]!.markFailed(NOW, FAIL_MS);
    assert.equal(balancer.select(servers, NOW, undefined), servers[1]);
    assert.equal(balancer.select(servers, NOW, [servers[1]!]), servers[2]);
    assert.equal(balancer.select(servers, NOW, [servers[1]!, servers[2]!]), undefined);
  });
});

describe('UpstreamPool.select without affinity', () => {
  test('HTTP requests go round robin, evenly', { timeout: 5_000 }, () => {
    const pool = makePool('none');
    const counts = new Map<UpstreamServer, number>();
    for (let i = 0; i < 30; i++) {
      const selection = pool.select(input('http'), NOW)!;
      assert.equal(selection.setCookie, undefined);
      counts.set(selection.server, (counts.get(selection.server) ?? 0) + 1);
    }
    assert.deepEqual(pool.servers.map((server) => counts.get(server)), [10, 10, 10]);
  });

  test('upgrades go to the least loaded server', { timeout: 5_000 }, () => {
    const pool = makePool('none');
    setActive(pool.servers, [4, 2, 0]);
    assert.equal(pool.select(input('upgrade'), NOW)!.server, pool.servers[2]);
    setActive(pool.servers, [1, 2, 3]);
    assert.equal(pool.select(input('upgrade'), NOW)!.server, pool.servers[0]);
  });

  test('a server marked failed is skipped for failTimeoutMs', { timeout: 5_000 }, () => {
    const pool = makePool('none');
    pool.markFailed(pool.servers[0]!, NOW);
    for (let i = 0; i < 6; i++) assert.notEqual(pool.select(input('http'), NOW)!.server, pool.servers[0]);
    const later = new Set(Array.from({ length: 3 }, () => pool.select(input('http'), NOW + FAIL_MS)!.server));
    assert.ok(later.has(pool.servers[0]!), 'back in rotation after failTimeoutMs');
  });

  test('when every server is marked down, one not yet tried is still chosen (no 503)', { timeout: 5_000 }, () => {
    const pool = makePool('none');
    for (const server of pool.servers) pool.markFailed(server, NOW);
    const first = pool.select(input('http'), NOW);
    assert.ok(first, 'a stale "down" must not turn into no server at all');
    const second = pool.select(input('http', { tried: [first.server] }), NOW);
    assert.ok(second);
    assert.notEqual(second.server, first.server);
    assert.ok(pool.select(input('upgrade'), NOW), 'upgrades too');
  });

  test('undefined once every server has been tried', { timeout: 5_000 }, () => {
    const pool = makePool('none');
    assert.equal(pool.select(input('http', { tried: [...pool.servers] }), NOW), undefined);
    assert.equal(pool.select(input('upgrade', { tried: [...pool.servers] }), NOW), undefined);
  });
});

describe('UpstreamPool.select with cookie affinity', () => {
  test('no cookie: a server by policy, and a Set-Cookie that pins to it', { timeout: 5_000 }, () => {
    const pool = makePool('cookie');
    const first = pool.select(input('http'), NOW)!;
    assert.ok(first.setCookie);
    const cookie = first.setCookie.split(';')[0]!;
    for (let i = 0; i < 5; i++) {
      const again = pool.select(input('http', { cookieHeader: `a=1; ${cookie}; b=2` }), NOW)!;
      assert.equal(again.server, first.server);
      assert.equal(again.setCookie, undefined, 'a valid pin is not re-sent');
    }
  });

  test('the pin holds for upgrades as well', { timeout: 5_000 }, () => {
    const pool = makePool('cookie');
    const cookie = pool.select(input('http'), NOW)!.setCookie!.split(';')[0]!;
    const pinned = pool.select(input('http', { cookieHeader: cookie }), NOW)!.server;
    setActive(pool.servers, pool.servers.map((server) => (server === pinned ? 50 : 0)));
    assert.equal(pool.select(input('upgrade', { cookieHeader: cookie }), NOW)!.server, pinned);
  });

  test('a pool with the same secret and servers honours the cookie; another secret does not', { timeout: 5_000 }, () => {
    const minted = makePool('cookie', 'shared');
    const selection = minted.select(input('http'), NOW)!;
    const cookie = selection.setCookie!.split(';')[0]!;
    const index = minted.servers.indexOf(selection.server);
    const twin = makePool('cookie', 'shared');
    for (let i = 0; i < 3; i++) {
      const pick = twin.select(input('http', { cookieHeader: cookie }), NOW)!;
      assert.equal(twin.servers.indexOf(pick.server), index);
      assert.equal(pick.setCookie, undefined);
    }
    const stranger = makePool('cookie', 'different');
    const picks = Array.from({ length: 3 }, () => stranger.select(input('http', { cookieHeader: cookie }), NOW)!);
    // Ignored: round robin decides and every answer re-pins with a fresh cookie.
    assert.equal(new Set(picks.map((pick) => pick.server)).size, 3);
    for (const pick of picks) assert.ok(pick.setCookie && pick.setCookie.split(';')[0] !== cookie);
  });

  test('a forged cookie is ignored and replaced', { timeout: 5_000 }, () => {
    const pool = makePool('cookie');
    const picks = Array.from({ length: 3 }, () => pool.select(input('http', { cookieHeader: 'sy_affinity=forged.value' }), NOW)!);
    assert.equal(new Set(picks.map((pick) => pick.server)).size, 3, 'round robin, not a pin');
    for (const pick of picks) assert.match(pick.setCookie ?? '', /^sy_affinity=(?!forged)/);
  });

  test('a pinned server that is down or already tried falls back, re-pinning', { timeout: 5_000 }, () => {
    const pool = makePool('cookie');
    const first = pool.select(input('http'), NOW)!;
    const cookie = first.setCookie!.split(';')[0]!;
    pool.markFailed(first.server, NOW);
    const fallback = pool.select(input('http', { cookieHeader: cookie }), NOW)!;
    assert.notEqual(fallback.server, first.server);
    assert.ok(fallback.setCookie && fallback.setCookie.split(';')[0] !== cookie, 'the new server is pinned');
    const tried = pool.select(input('http', { cookieHeader: cookie, tried: [first.server] }), NOW + FAIL_MS)!;
    assert.notEqual(tried.server, first.server);
  });

  test('Secure is added to the cookie on a TLS listener only', { timeout: 5_000 }, () => {
    const pool = makePool('cookie');
    assert.doesNotMatch(pool.select(input('http', { secure: false }), NOW)!.setCookie!, /Secure/);
    assert.match(pool.select(input('http', { secure: true }), NOW)!.setCookie!, /; Secure/);
  });
});

describe('UpstreamPool.select with ip affinity', () => {
  test('the same address always lands on its home server', { timeout: 5_000 }, () => {
    const pool = makePool('ip');
    for (const address of ['10.0.0.1', '10.0.0.2', '192.168.1.77', '::1']) {
      const home = pool.servers[ipHashIndex(address, pool.servers.length)];
      for (let i = 0; i < 5; i++) {
        const selection = pool.select(input('http', { clientAddress: address }), NOW)!;
        assert.equal(selection.server, home);
        assert.equal(selection.setCookie, undefined);
        assert.equal(pool.select(input('upgrade', { clientAddress: address }), NOW)!.server, home);
      }
    }
  });

  test('falls back to the next server when the home server is down, and returns when it is back', { timeout: 5_000 }, () => {
    const pool = makePool('ip');
    const address = '10.1.2.3';
    const homeIndex = ipHashIndex(address, pool.servers.length);
    const home = pool.servers[homeIndex]!;
    pool.markFailed(home, NOW);
    const fallback = pool.select(input('http', { clientAddress: address }), NOW)!.server;
    assert.notEqual(fallback, home);
    assert.equal(fallback, pool.servers[(homeIndex + 1) % pool.servers.length], 'the next one, stable');
    assert.equal(pool.select(input('http', { clientAddress: address }), NOW)!.server, fallback);
    assert.equal(pool.select(input('http', { clientAddress: address }), NOW + FAIL_MS)!.server, home);
  });

  test('falls back when the home server was tried; still picks one when all are down', { timeout: 5_000 }, () => {
    const pool = makePool('ip');
    const address = '10.9.8.7';
    const home = pool.servers[ipHashIndex(address, pool.servers.length)]!;
    assert.notEqual(pool.select(input('http', { clientAddress: address, tried: [home] }), NOW)!.server, home);
    for (const server of pool.servers) pool.markFailed(server, NOW);
    assert.equal(pool.select(input('http', { clientAddress: address }), NOW)!.server, home);
    assert.equal(pool.select(input('http', { clientAddress: address, tried: [...pool.servers] }), NOW), undefined);
  });
});

// --- helpers ---

function makeServers(urls: readonly string[]): UpstreamServer[] {
  const servers = urls.map((url) => new UpstreamServer(url, { connectMs: 1_000, responseMs: 1_000, bodyIdleMs: 1_000 }));
  closables.push(...servers);
  return servers;
}

function makePool(sticky: StickyMode, secret = 'test-secret'): UpstreamPool {
  const config: UpstreamConfig = {
    name: 'test', servers: URLS.map((url) => ({ url, weight: 1 })), policy: undefined,
    sticky, stickySecret: secret, stickyCookieName: 'sy_affinity', failTimeoutMs: FAIL_MS,
  };
  const pool = new UpstreamPool(config, { connectMs: 1_000, responseMs: 1_000, bodyIdleMs: 1_000 });
  closables.push(pool);
  return pool;
}

function input(kind: SelectionInput['kind'], overrides: Partial<SelectionInput> = {}): SelectionInput {
  return { kind, clientAddress: '127.0.0.1', cookieHeader: undefined, secure: false, tried: undefined, ...overrides };
}

function setActive(servers: readonly UpstreamServer[], counts: readonly number[]): void {
  servers.forEach((server, index) => { server.active = counts[index] ?? 0; });
}
