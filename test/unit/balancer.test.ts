/**
 * Balancing policies behind Balancer.select(available, request) — each one only
 * ever sees the servers that may take the request — and the UpstreamPool around
 * them: which servers are offered (health, ejection, draining, connection
 * limits, tried), FULL and the wait queue, acquire/release, passive health,
 * draining with a deadline, servers joining and leaving, and the hash policy's
 * key taken from a header, a cookie or the query.
 *
 * Distributions over many picks live in balance-distribution.test.ts; cookie and
 * source-IP affinity in sticky.test.ts.
 */
import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { FailureKind, UpstreamConfig } from '../../src/config/model.js';
import type { Closable } from '../../src/server/connection-registry.js';
import type { Balancer, BalanceRequest } from '../../src/upstream/balancer/balancer.js';
import { byClientAddress, byHashKey, ConsistentHashBalancer } from '../../src/upstream/balancer/consistent-hash.js';
import { FirstBalancer } from '../../src/upstream/balancer/first.js';
import { LeastConnBalancer } from '../../src/upstream/balancer/least-conn.js';
import { RandomTwoBalancer } from '../../src/upstream/balancer/random-two.js';
import { RoundRobinBalancer } from '../../src/upstream/balancer/round-robin.js';
import { FULL, UpstreamPool, type Selection, type SelectionInput } from '../../src/upstream/upstream-pool.js';
import { UpstreamServer } from '../../src/upstream/upstream-server.js';
import type { Waiter } from '../../src/upstream/wait-queue.js';

const T = { timeout: 5_000 };
const URLS = ['http://127.0.0.1:3001', 'http://127.0.0.1:3002', 'http://127.0.0.1:3003'];
const TIMEOUTS = { connectMs: 1_000, responseMs: 1_000, bodyIdleMs: 1_000 };
const NOW = 1_000_000;
const FAIL_MS = 10_000;
const closables: { close(): Promise<unknown> }[] = [];

// Servers and pools own undici Pools (no socket until used); destroy them at the end.
after(async () => {
  await Promise.all(closables.map((item) => item.close()));
});

describe('RoundRobinBalancer', () => {
  test('cycles through the servers in order, evenly', T, () => {
    const servers = makeServers(URLS);
    const balancer: Balancer = new RoundRobinBalancer();
    const picks = Array.from({ length: 9 }, () => balancer.select(servers, request()));
    assert.deepEqual(indexes(servers, picks), [0, 1, 2, 0, 1, 2, 0, 1, 2]);
  });

  test('goes round robin over exactly the servers it is given', T, () => {
    const servers = makeServers(URLS);
    const balancer: Balancer = new RoundRobinBalancer();
    const subset = [servers[0]!, servers[2]!];
    const picks = Array.from({ length: 4 }, () => balancer.select(subset, request()));
    assert.deepEqual(indexes(servers, picks), [0, 2, 0, 2]);
    assert.equal(balancer.select([servers[1]!], request()), servers[1], 'a single server is the pick');
  });

  test('weights 5,1,1 give the smooth sequence a a b a c a a, repeating every 7 picks', T, () => {
    const servers = makeServers(URLS, { weights: [5, 1, 1] });
    const balancer: Balancer = new RoundRobinBalancer();
    const picks = indexes(servers, Array.from({ length: 21 }, () => balancer.select(servers, request())));
    const cycle = [0, 0, 1, 0, 2, 0, 0];
    assert.deepEqual(picks, [...cycle, ...cycle, ...cycle]);
  });

  test('weights 2,1 interleave (a b a), not a burst', T, () => {
    const servers = makeServers(URLS.slice(0, 2), { weights: [2, 1] });
    const balancer: Balancer = new RoundRobinBalancer();
    const picks = indexes(servers, Array.from({ length: 9 }, () => balancer.select(servers, request())));
    assert.deepEqual(picks, [0, 1, 0, 0, 1, 0, 0, 1, 0]);
  });
});

describe('LeastConnBalancer', () => {
  test('picks the server with the fewest active connections', T, () => {
    const servers = makeServers(URLS);
    const balancer: Balancer = new LeastConnBalancer();
    setActive(servers, [5, 1, 3]);
    assert.equal(balancer.select(servers, request()), servers[1]);
    setActive(servers, [0, 4, 3]);
    assert.equal(balancer.select(servers, request()), servers[0]);
    setActive(servers, [2, 4, 1]);
    assert.equal(balancer.select(servers, request()), servers[2]);
  });

  test('counts load relative to weight', T, () => {
    const servers = makeServers(URLS, { weights: [2, 1, 1] });
    const balancer: Balancer = new LeastConnBalancer();
    // 3/2 = 1.5 beats 2/1 and 2/1: the heavier server wins with more connections.
    setActive(servers, [3, 2, 2]);
    for (let i = 0; i < 3; i++) assert.equal(balancer.select(servers, request()), servers[0]);
    // 4/2 = 2 loses to 1/1.
    setActive(servers, [4, 2, 1]);
    for (let i = 0; i < 3; i++) assert.equal(balancer.select(servers, request()), servers[2]);
  });

  test('spreads ties round robin (an idle pool still spreads new tunnels)', T, () => {
    const servers = makeServers(URLS);
    const balancer: Balancer = new LeastConnBalancer();
    const picks = indexes(servers, Array.from({ length: 6 }, () => balancer.select(servers, request())));
    assert.deepEqual(picks.slice().sort(), [0, 0, 1, 1, 2, 2]);
    assert.deepEqual(picks.slice(0, 3).sort(), [0, 1, 2]);
  });

  test('spreads ties of equal load relative to weight too', T, () => {
    const servers = makeServers(URLS, { weights: [2, 1, 1] });
    const balancer: Balancer = new LeastConnBalancer();
    setActive(servers, [2, 1, 1]);
    const picks = indexes(servers, Array.from({ length: 3 }, () => balancer.select(servers, request())));
    assert.deepEqual(picks.slice().sort(), [0, 1, 2]);
  });

  test('follows the counts as tunnels open (each pick counted as active)', T, () => {
    const servers = makeServers(URLS);
    const balancer: Balancer = new LeastConnBalancer();
    setActive(servers, [3, 0, 0]);
    for (let i = 0; i < 6; i++) balancer.select(servers, request()).active++;
    // Servers 1 and 2 catch up with server 0 first: all end at 3.
    assert.deepEqual(servers.map((server) => server.active), [3, 3, 3]);
  });

  test('fills by weight as tunnels open: 2,1,1 end at 20,10,10 after 40', T, () => {
    const servers = makeServers(URLS, { weights: [2, 1, 1] });
    const balancer: Balancer = new LeastConnBalancer();
    for (let i = 0; i < 40; i++) balancer.select(servers, request()).active++;
    assert.deepEqual(servers.map((server) => server.active), [20, 10, 10]);
  });

  test('chooses only among the servers it is given, even when another is idler', T, () => {
    const servers = makeServers(URLS);
    const balancer: Balancer = new LeastConnBalancer();
    setActive(servers, [0, 1, 9]);
    assert.equal(balancer.select([servers[1]!, servers[2]!], request()), servers[1]);
    assert.equal(balancer.select([servers[2]!], request()), servers[2]);
  });
});

describe('RandomTwoBalancer', () => {
  test('a single server is returned without drawing', T, () => {
    const servers = makeServers(URLS.slice(0, 1));
    const balancer: Balancer = new RandomTwoBalancer(() => {
      throw new Error('no draw expected');
    });
    assert.equal(balancer.select(servers, request()), servers[0]);
  });

  test('the less loaded of the two drawn wins', T, () => {
    const servers = makeServers(URLS.slice(0, 2));
    const balancer: Balancer = new RandomTwoBalancer(seededRandom(1));
    // With two servers both are always drawn: the idle one always wins.
    setActive(servers, [5, 0]);
    for (let i = 0; i < 100; i++) assert.equal(balancer.select(servers, request()), servers[1]);
    setActive(servers, [0, 5]);
    for (let i = 0; i < 100; i++) assert.equal(balancer.select(servers, request()), servers[0]);
  });

  test('the two draws are distinct servers', T, () => {
    const servers = makeServers(URLS);
    // random() = 0 draws the first server, then the first of the others.
    const balancer: Balancer = new RandomTwoBalancer(() => 0);
    setActive(servers, [5, 3, 0]);
    assert.equal(balancer.select(servers, request()), servers[1], 'server 0 against server 1, not against itself');
  });

  test('a server more loaded than every other is never picked', T, () => {
    const servers = makeServers([...URLS, 'http://127.0.0.1:3004']);
    const balancer: Balancer = new RandomTwoBalancer(seededRandom(7));
    setActive(servers, [1, 1, 1, 9]);
    for (let i = 0; i < 2_000; i++) assert.notEqual(balancer.select(servers, request()), servers[3]);
  });

  test('draws with the injected random: the same seed gives the same picks, another seed others', T, () => {
    const servers = makeServers([...URLS, 'http://127.0.0.1:3004']);
    const run = (seed: number): number[] => {
      const balancer: Balancer = new RandomTwoBalancer(seededRandom(seed));
      return indexes(servers, Array.from({ length: 200 }, () => balancer.select(servers, request())));
    };
    assert.deepEqual(run(42), run(42));
    assert.notDeepEqual(run(42), run(43));
  });
});

describe('ConsistentHashBalancer', () => {
  test('the same key always goes to the same server, whatever the order of the servers', T, () => {
    const servers = makeServers([...URLS, 'http://127.0.0.1:3004']);
    const balancer: Balancer = new ConsistentHashBalancer(byHashKey);
    const reversed = servers.slice().reverse();
    for (let i = 0; i < 100; i++) {
      const key = `user-${i}`;
      const home = balancer.select(servers, request({ hashKey: key }));
      for (let j = 0; j < 3; j++) assert.equal(balancer.select(servers, request({ hashKey: key })), home);
      assert.equal(balancer.select(reversed, request({ hashKey: key })), home, `order changed the home of ${key}`);
    }
  });

  test('different keys reach every server', T, () => {
    const servers = makeServers(URLS);
    const balancer: Balancer = new ConsistentHashBalancer(byHashKey);
    const reached = new Set(Array.from({ length: 100 }, (_, i) => balancer.select(servers, request({ hashKey: `k${i}` }))));
    assert.equal(reached.size, 3);
  });

  test('a request without the key (missing or empty) goes round robin', T, () => {
    const servers = makeServers(URLS);
    const balancer: Balancer = new ConsistentHashBalancer(byHashKey);
    const missing = Array.from({ length: 6 }, () => balancer.select(servers, request({ hashKey: undefined })));
    assert.deepEqual(indexes(servers, missing), [0, 1, 2, 0, 1, 2]);
    const empty = Array.from({ length: 3 }, () => balancer.select(servers, request({ hashKey: '' })));
    assert.deepEqual(indexes(servers, empty), [0, 1, 2]);
  });

  test('byClientAddress keys by the client address, byHashKey by the hash key', T, () => {
    const servers = makeServers(URLS);
    const byAddress: Balancer = new ConsistentHashBalancer(byClientAddress);
    const byKey: Balancer = new ConsistentHashBalancer(byHashKey);
    for (let i = 0; i < 50; i++) {
      const address = `10.0.0.${i}`;
      // The address decides, whatever the hash key; and the key alone decides for byHashKey.
      assert.equal(
        byAddress.select(servers, request({ clientAddress: address, hashKey: 'a' })),
        byAddress.select(servers, request({ clientAddress: address, hashKey: 'b' })),
      );
      assert.equal(
        byKey.select(servers, request({ clientAddress: '10.9.9.9', hashKey: address })),
        byAddress.select(servers, request({ clientAddress: address, hashKey: undefined })),
      );
    }
  });
});

describe('FirstBalancer', () => {
  test('takes the first server it is given', T, () => {
    const servers = makeServers(URLS);
    const balancer: Balancer = new FirstBalancer();
    for (let i = 0; i < 3; i++) assert.equal(balancer.select(servers, request()), servers[0]);
    setActive(servers, [9, 0, 0]);
    assert.equal(balancer.select(servers, request()), servers[0], 'load does not matter');
    assert.equal(balancer.select([servers[1]!, servers[2]!], request()), servers[1]);
  });
});

describe('UpstreamPool.select: policies and which servers they see', () => {
  test('HTTP requests go round robin, evenly, with no Set-Cookie', T, () => {
    const pool = makePool();
    const counts = new Map<UpstreamServer, number>();
    for (let i = 0; i < 30; i++) {
      const selection = pick(pool, input('http'));
      assert.equal(selection.setCookie, undefined);
      counts.set(selection.server, (counts.get(selection.server) ?? 0) + 1);
    }
    assert.deepEqual(pool.servers.map((server) => counts.get(server)), [10, 10, 10]);
  });

  test('upgrades go to the least loaded server by default', T, () => {
    const pool = makePool();
    setActive(pool.servers, [4, 2, 0]);
    assert.equal(pick(pool, input('upgrade')).server, pool.servers[2]);
    setActive(pool.servers, [1, 2, 3]);
    assert.equal(pick(pool, input('upgrade')).server, pool.servers[0]);
  });

  test('a configured policy applies to requests and upgrades alike', T, () => {
    const first = makePool({ policy: 'first' });
    setActive(first.servers, [5, 0, 0]);
    assert.equal(pick(first, input('http')).server, first.servers[0]);
    assert.equal(pick(first, input('upgrade')).server, first.servers[0], 'not least_conn');
    const roundRobin = makePool({ policy: 'round_robin' });
    setActive(roundRobin.servers, [5, 0, 0]);
    const upgrades = Array.from({ length: 3 }, () => pick(roundRobin, input('upgrade')).server);
    assert.deepEqual(indexes(roundRobin.servers, upgrades), [0, 1, 2]);
    const leastConn = makePool({ policy: 'least_conn' });
    setActive(leastConn.servers, [5, 0, 3]);
    for (let i = 0; i < 3; i++) assert.equal(pick(leastConn, input('http')).server, leastConn.servers[1]);
  });

  test('unhealthy, draining, ejected and full servers are never offered to the policy', T, () => {
    const urls = Array.from({ length: 6 }, (_, i) => `http://127.0.0.1:${3001 + i}`);
    const servers = urls.map((url, i) => ({ url, weight: 1, ...(i === 3 ? { maxConns: 1 } : {}) }));
    for (const policy of ['first', 'round_robin', 'least_conn', 'random_two', 'ip_hash', 'hash'] as const) {
      const pool = makePool({ policy, servers });
      const [down, draining, ejected, full, ok4, ok5] = pool.servers as [UpstreamServer, ...UpstreamServer[]];
      down.healthy = false;
      pool.drain(draining!, 60_000);
      pool.recordFailure(ejected!, 'connect', NOW);
      pool.acquire(full!);
      const seen = new Set<UpstreamServer>();
      for (let i = 0; i < 60; i++) {
        for (const kind of ['http', 'upgrade'] as const) {
          seen.add(pick(pool, input(kind, { clientAddress: `10.0.0.${i}` })).server);
        }
      }
      assert.ok([...seen].every((server) => server === ok4 || server === ok5), `${policy} picked ${[...seen].map((s) => s.url).join(', ')}`);
      if (policy === 'first') assert.deepEqual([...seen], [ok4]);
      if (policy !== 'first') assert.equal(seen.size, 2, `${policy} should use both remaining servers`);
    }
  });

  test('round robin stays even over the remaining servers', T, () => {
    const pool = makePool();
    pool.servers[1]!.healthy = false;
    const picks = Array.from({ length: 4 }, () => pick(pool, input('http')).server);
    assert.deepEqual(indexes(pool.servers, picks), [0, 2, 0, 2]);
  });

  test('a server configured with drain: true starts drained', T, () => {
    const pool = makePool({ servers: URLS.map((url, i) => ({ url, weight: 1, drain: i === 0 })) });
    assert.equal(pool.servers[0]!.draining, true);
    for (let i = 0; i < 6; i++) assert.notEqual(pick(pool, input('http')).server, pool.servers[0]);
    pool.undrain(pool.servers[0]!);
    const later = new Set(Array.from({ length: 3 }, () => pick(pool, input('http')).server));
    assert.ok(later.has(pool.servers[0]!), 'takes work once undrained');
  });

  test('an ejected server is skipped until its ejection ends', T, () => {
    const pool = makePool();
    pool.recordFailure(pool.servers[0]!, 'connect', NOW);
    assert.equal(pool.servers[0]!.ejectedUntil, NOW + FAIL_MS);
    for (let i = 0; i < 6; i++) assert.notEqual(pick(pool, input('http'), NOW + FAIL_MS - 1).server, pool.servers[0]);
    const later = new Set(Array.from({ length: 3 }, () => pick(pool, input('http'), NOW + FAIL_MS).server));
    assert.ok(later.has(pool.servers[0]!), 'back in rotation after failTimeoutMs');
  });

  test('when every server is ejected, one not yet tried is still chosen (no 503)', T, () => {
    const pool = makePool();
    for (const server of pool.servers) pool.recordFailure(server, 'connect', NOW);
    const first = pick(pool, input('http'));
    const second = pick(pool, input('http', { tried: [first.server] }));
    assert.notEqual(second.server, first.server);
    assert.ok(pick(pool, input('upgrade')), 'upgrades too');
    assert.equal(pool.select(input('http', { tried: [...pool.servers] }), NOW), undefined);
  });

  test('with everything ejected, a down or draining server is still never chosen', T, () => {
    const pool = makePool();
    const [ejected, down, draining] = pool.servers as [UpstreamServer, UpstreamServer, UpstreamServer];
    pool.recordFailure(ejected, 'connect', NOW);
    down.healthy = false;
    pool.drain(draining, 60_000);
    for (let i = 0; i < 6; i++) {
      assert.equal(pick(pool, input('http')).server, ejected);
      assert.equal(pick(pool, input('upgrade')).server, ejected);
    }
    assert.equal(pool.select(input('http', { tried: [ejected] }), NOW), undefined);
    pool.recordFailure(down, 'connect', NOW);
    ejected.healthy = false;
    assert.equal(pool.select(input('http'), NOW), undefined, 'down and ejected: no server');
  });

  test('undefined once every server has been tried', T, () => {
    const pool = makePool();
    assert.equal(pool.select(input('http', { tried: [...pool.servers] }), NOW), undefined);
    assert.equal(pool.select(input('upgrade', { tried: [...pool.servers] }), NOW), undefined);
  });

  test('FULL when the only servers that could take the request are at max_conns', T, () => {
    const pool = makePool({ servers: URLS.map((url) => ({ url, weight: 1, maxConns: 1 })) });
    const [a, b, c] = pool.servers as [UpstreamServer, UpstreamServer, UpstreamServer];
    pool.acquire(a);
    pool.acquire(b);
    assert.equal(pick(pool, input('http')).server, c, 'the one with room');
    pool.acquire(c);
    assert.equal(pool.select(input('http'), NOW), FULL);
    assert.equal(pool.select(input('upgrade'), NOW), FULL);
    assert.equal(pool.select(input('http', { tried: [a] }), NOW), FULL, 'untried servers are full');
    assert.equal(pool.select(input('http', { tried: [a, b, c] }), NOW), undefined, 'all tried: nothing to wait for');
    b.healthy = false;
    pool.drain(c, 60_000);
    assert.equal(pool.select(input('http'), NOW), FULL, 'a full healthy server is worth waiting for');
    a.healthy = false;
    assert.equal(pool.select(input('http'), NOW), undefined, 'down or draining servers are not worth waiting for');
  });

  test('FULL, not an ejected server, when the servers that are not ejected are only full', T, () => {
    // Ejected servers are a last resort for when every server is ejected; a healthy
    // server at max_conns is worth waiting for (the queue), not a reason to use them.
    const pool = makePool({ servers: URLS.slice(0, 2).map((url, i) => ({ url, weight: 1, ...(i === 0 ? { maxConns: 1 } : {}) })) });
    const [full, ejected] = pool.servers as [UpstreamServer, UpstreamServer];
    pool.acquire(full);
    pool.recordFailure(ejected, 'connect', NOW);
    const selection = pool.select(input('http'), NOW);
    assert.equal(selection === FULL || selection === undefined ? selection : selection.server.url, FULL);
  });

  test('acquire and release count requests and tunnels against max_conns', T, () => {
    const pool = makePool({ servers: [{ url: URLS[0]!, weight: 1, maxConns: 2 }] });
    const server = pool.servers[0]!;
    pool.acquire(server);
    assert.equal(server.active, 1);
    assert.equal(pick(pool, input('http')).server, server);
    pool.acquire(server);
    assert.equal(server.active, 2);
    assert.equal(server.hasCapacity(), false);
    assert.equal(pool.select(input('http'), NOW), FULL);
    pool.release(server);
    assert.equal(server.active, 1);
    assert.equal(pick(pool, input('upgrade')).server, server);
    pool.release(server);
    assert.equal(server.active, 0);
  });
});

describe('UpstreamPool wait queue', () => {
  test('release wakes the longest waiter, one per release', T, () => {
    const pool = makePool({ servers: [{ url: URLS[0]!, weight: 1, maxConns: 1 }], queueSize: 2, queueTimeoutMs: 60_000 });
    const server = pool.servers[0]!;
    pool.acquire(server);
    assert.equal(pool.select(input('http'), NOW), FULL);
    const first = new TestWaiter();
    const second = new TestWaiter();
    assert.equal(pool.wait(first), true);
    assert.equal(pool.wait(second), true);
    pool.release(server);
    assert.deepEqual([first.readyCalls, second.readyCalls], [1, 0]);
    // The woken request takes the slot, then finishes.
    assert.equal(pick(pool, input('http')).server, server);
    pool.acquire(server);
    pool.release(server);
    assert.deepEqual([first.readyCalls, second.readyCalls], [1, 1]);
    assert.deepEqual([first.expiredCalls, second.expiredCalls], [0, 0]);
  });

  test('a release that leaves the server full wakes no one', T, () => {
    const pool = makePool({ servers: [{ url: URLS[0]!, weight: 1, maxConns: 1 }], queueSize: 1, queueTimeoutMs: 60_000 });
    const server = pool.servers[0]!;
    pool.acquire(server);
    pool.acquire(server);
    const waiter = new TestWaiter();
    assert.equal(pool.wait(waiter), true);
    pool.release(server);
    assert.equal(waiter.readyCalls, 0, 'still at max_conns');
    pool.release(server);
    assert.equal(waiter.readyCalls, 1);
  });

  test('a full queue refuses at once; no queue (queueSize 0, the default) always refuses', T, () => {
    const pool = makePool({ queueSize: 1, queueTimeoutMs: 60_000 });
    assert.equal(pool.wait(new TestWaiter()), true);
    assert.equal(pool.wait(new TestWaiter()), false);
    const noQueue = makePool();
    assert.equal(noQueue.wait(new TestWaiter()), false);
  });

  test('a waiter expires after queueTimeoutMs, and is not woken afterwards', T, async () => {
    const pool = makePool({ servers: [{ url: URLS[0]!, weight: 1, maxConns: 1 }], queueSize: 1, queueTimeoutMs: 300 });
    const server = pool.servers[0]!;
    pool.acquire(server);
    const waiter = new TestWaiter();
    const started = Date.now();
    assert.equal(pool.wait(waiter), true);
    await sleep(20);
    assert.equal(waiter.expiredCalls, 0, 'not yet');
    await waiter.expiredOnce;
    assert.ok(Date.now() - started >= 290, `expired after ${Date.now() - started} ms`);
    pool.release(server);
    assert.deepEqual([waiter.readyCalls, waiter.expiredCalls], [0, 1]);
    assert.equal(pool.wait(new TestWaiter()), true, 'its place in the queue is free again');
  });

  test('stopWaiting removes a waiter: it neither expires nor wakes', T, async () => {
    const pool = makePool({ servers: [{ url: URLS[0]!, weight: 1, maxConns: 1 }], queueSize: 1, queueTimeoutMs: 30 });
    const server = pool.servers[0]!;
    pool.acquire(server);
    const waiter = new TestWaiter();
    assert.equal(pool.wait(waiter), true);
    pool.stopWaiting(waiter);
    await sleep(80);
    pool.release(server);
    assert.deepEqual([waiter.readyCalls, waiter.expiredCalls], [0, 0]);
  });

  test('close() ends the waiters still queued', T, async () => {
    const pool = makePool({ queueSize: 2, queueTimeoutMs: 60_000 });
    const waiter = new TestWaiter();
    assert.equal(pool.wait(waiter), true);
    await pool.close();
    assert.deepEqual([waiter.readyCalls, waiter.expiredCalls], [0, 1]);
  });
});

describe('UpstreamPool passive health', () => {
  const passive = (maxFails: number, failOn: readonly FailureKind[], maxEjectMs = 60_000): Partial<UpstreamConfig> =>
    ({ passiveHealth: { maxFails, failOn, maxEjectMs } });

  test('maxFails consecutive failures eject the server for failTimeoutMs', T, () => {
    const pool = makePool(passive(3, ['connect', 'reset', 'timeout', '5xx']));
    const server = pool.servers[0]!;
    pool.recordFailure(server, 'connect', NOW);
    pool.recordFailure(server, '5xx', NOW);
    assert.equal(server.ejectedUntil, 0);
    assert.equal(server.isAvailable(NOW), true);
    pool.recordFailure(server, 'timeout', NOW);
    assert.equal(server.ejectedUntil, NOW + FAIL_MS);
    for (let i = 0; i < 6; i++) assert.notEqual(pick(pool, input('http')).server, server);
  });

  test('a success in between resets the count', T, () => {
    const pool = makePool(passive(3, ['connect']));
    const server = pool.servers[0]!;
    pool.recordFailure(server, 'connect', NOW);
    pool.recordFailure(server, 'connect', NOW);
    pool.recordSuccess(server);
    pool.recordFailure(server, 'connect', NOW);
    pool.recordFailure(server, 'connect', NOW);
    assert.equal(server.ejectedUntil, 0, 'two in a row since the success');
    pool.recordFailure(server, 'connect', NOW);
    assert.equal(server.ejectedUntil, NOW + FAIL_MS);
  });

  test('failOn filters the kinds that count', T, () => {
    const pool = makePool(passive(1, ['5xx']));
    const server = pool.servers[0]!;
    for (const kind of ['connect', 'reset', 'timeout'] as const) pool.recordFailure(server, kind, NOW);
    assert.equal(server.ejectedUntil, 0);
    assert.equal(server.consecutiveFailures, 0, 'uncounted kinds do not add up either');
    pool.recordFailure(server, '5xx', NOW);
    assert.equal(server.ejectedUntil, NOW + FAIL_MS);
  });

  test('by default one connect, reset or timeout failure ejects, a 5xx does not', T, () => {
    const pool = makePool();
    const [a, b, c] = pool.servers as [UpstreamServer, UpstreamServer, UpstreamServer];
    pool.recordFailure(a, '5xx', NOW);
    pool.recordFailure(a, '5xx', NOW);
    assert.equal(a.ejectedUntil, 0);
    pool.recordFailure(a, 'connect', NOW);
    pool.recordFailure(b, 'reset', NOW);
    pool.recordFailure(c, 'timeout', NOW);
    for (const server of [a, b, c]) assert.equal(server.ejectedUntil, NOW + FAIL_MS);
  });

  test('after an ejection the failure count starts over', T, () => {
    const pool = makePool(passive(3, ['connect']));
    const server = pool.servers[0]!;
    for (let i = 0; i < 3; i++) pool.recordFailure(server, 'connect', NOW);
    assert.equal(server.ejectedUntil, NOW + FAIL_MS);
    const back = NOW + FAIL_MS;
    pool.recordFailure(server, 'connect', back);
    pool.recordFailure(server, 'connect', back);
    assert.equal(server.isAvailable(back), true, 'two failures after the ejection are not three');
    pool.recordFailure(server, 'connect', back);
    assert.equal(server.isAvailable(back), false);
  });

  test('failures of requests already in flight when the server was ejected do not lengthen the ejection', T, () => {
    // Ten requests in flight when the backend dies all fail at about the same time: that is
    // one outage, one ejection of failTimeoutMs; "doubles on repeat" is for the server
    // failing again after it came back.
    const pool = makePool();
    const server = pool.servers[0]!;
    for (let i = 0; i < 10; i++) pool.recordFailure(server, 'connect', NOW + i);
    assert.equal(server.ejectedUntil, NOW + FAIL_MS, `ejected for ${server.ejectedUntil - NOW} ms`);
    pool.recordFailure(server, 'connect', NOW + FAIL_MS);
    assert.equal(server.ejectedUntil, NOW + 3 * FAIL_MS, 'the next ejection, after it came back, doubles');
  });

  test('the ejection doubles on repeat up to maxEjectMs; a success starts over', T, () => {
    const pool = makePool({ failTimeoutMs: 1_000, ...passive(1, ['connect'], 5_000) });
    const server = pool.servers[0]!;
    const periods: number[] = [];
    let now = NOW;
    for (let i = 0; i < 5; i++) {
      pool.recordFailure(server, 'connect', now);
      periods.push(server.ejectedUntil - now);
      now = server.ejectedUntil;
    }
    assert.deepEqual(periods, [1_000, 2_000, 4_000, 5_000, 5_000]);
    pool.recordSuccess(server);
    pool.recordFailure(server, 'connect', now);
    assert.equal(server.ejectedUntil - now, 1_000);
  });
});

describe('UpstreamPool draining', () => {
  test('drain takes no new work at once, asks every tunnel to close gracefully at the drain pace, and destroys what is left at the deadline', T, async () => {
    const pool = makePool();
    pool.drainPacing = { rate: 50, jitter: 0 };
    const server = pool.servers[0]!;
    // Polite tunnels that never finish their close handshake (the deadline cuts them).
    const staying = Array.from({ length: 5 }, () => new FakeTunnel(server, true));
    const leaving = new FakeTunnel(server, true);
    leaving.end();
    const startedAt = performance.now();
    pool.drain(server, 400);
    // The first slot is now (synchronously); the others follow at 20 ms steps.
    assert.equal(staying.filter((tunnel) => tunnel.graceful.length > 0).length, 1, 'one close at once, the rest paced at 50/s');
    assert.equal(server.draining, true);
    for (let i = 0; i < 6; i++) assert.notEqual(pick(pool, input('http')).server, server);
    await sleep(150);
    const asked = staying.flatMap((tunnel) => tunnel.graceful);
    assert.equal(asked.length, 5, 'all five asked within 5 slots of 20 ms');
    const times = asked.map((call) => call.at - startedAt).sort((a, b) => a - b);
    // Paced: close i never comes before its slot (i × 20 ms at 50/s, no jitter); a late
    // timer may close two due slots together, never one early.
    times.forEach((time, i) => assert.ok(time >= i * 20 - 1, `paced: ${times.map((t) => t.toFixed(0)).join(', ')} ms`));
    assert.ok(asked.every((call) => call.reason === 'drain' && call.leftMs <= 400 && call.leftMs > 200), JSON.stringify(asked));
    assert.deepEqual(staying.map((tunnel) => tunnel.reasons), [[], [], [], [], []], 'not destroyed before the deadline');
    await sleep(350);
    assert.deepEqual(staying.map((tunnel) => tunnel.reasons), [['drain'], ['drain'], ['drain'], ['drain'], ['drain']]);
    assert.deepEqual(leaving.reasons, [], 'a tunnel that ended is not touched');
    assert.deepEqual(leaving.graceful, []);
    assert.equal(server.tunnels.size, 0);
  });

  test('a tunnel that cannot close gracefully is destroyed at its paced slot', T, async () => {
    const pool = makePool();
    pool.drainPacing = { rate: 0, jitter: 0 };
    const server = pool.servers[0]!;
    const blunt = new FakeTunnel(server);
    pool.drain(server, 10_000);
    assert.deepEqual(blunt.reasons, ['drain']);
    pool.undrain(server);
  });

  test('undrain cancels the deadline and the closes not yet paced out, and the server takes work again', T, async () => {
    const pool = makePool();
    pool.drainPacing = { rate: 10, jitter: 0 };
    const server = pool.servers[0]!;
    const tunnels = [new FakeTunnel(server, true), new FakeTunnel(server, true)];
    pool.drain(server, 40);
    pool.undrain(server);
    assert.equal(server.draining, false);
    await sleep(150);
    assert.equal(tunnels.flatMap((tunnel) => tunnel.graceful).length, 1, 'the first was asked at once; the second slot (100 ms) was cancelled');
    assert.deepEqual(tunnels.map((tunnel) => tunnel.reasons), [[], []]);
    assert.equal(server.tunnels.size, 2);
    const picks = new Set(Array.from({ length: 3 }, () => pick(pool, input('http')).server));
    assert.ok(picks.has(server));
  });

  test('serverWentDown closes tunnels only when closeTunnelsOnDown is set', T, () => {
    const keep = makePool();
    const kept = new FakeTunnel(keep.servers[0]!);
    keep.serverWentDown(keep.servers[0]!);
    assert.deepEqual(kept.reasons, []);
    const close = makePool({ closeTunnelsOnDown: true });
    const closed = new FakeTunnel(close.servers[0]!);
    close.serverWentDown(close.servers[0]!);
    assert.deepEqual(closed.reasons, ['down']);
  });
});

describe('UpstreamPool servers joining and leaving', () => {
  test('addServer: the new server takes its share at once', T, () => {
    const pool = makePool();
    const added = pool.createServer('http://127.0.0.1:3004', 1, 0);
    pool.addServer(added);
    const counts = new Map<UpstreamServer, number>();
    for (let i = 0; i < 40; i++) {
      const server = pick(pool, input('http')).server;
      counts.set(server, (counts.get(server) ?? 0) + 1);
    }
    assert.deepEqual(pool.servers.map((server) => counts.get(server)), [10, 10, 10, 10]);
  });

  test('removeServer drains at once and drops the server once its last request is released', { timeout: 10_000 }, async () => {
    const pool = makePool();
    const server = pool.servers[0]!;
    pool.acquire(server);
    pool.removeServer(server);
    assert.equal(server.draining, true);
    for (let i = 0; i < 6; i++) assert.notEqual(pick(pool, input('http')).server, server);
    await sleep(1_200);
    assert.ok(pool.servers.includes(server), 'kept while a request is in flight');
    pool.release(server);
    await sleep(1_500);
    assert.ok(!pool.servers.includes(server), 'dropped once idle');
    assert.equal(pool.servers.length, 2);
  });
});

describe('UpstreamPool hash keys (policy hash, ip_hash)', () => {
  // What rendezvous hashing over the pool's servers gives for the key alone.
  const byKey: Balancer = new ConsistentHashBalancer(byHashKey);
  const reference = (servers: readonly UpstreamServer[], key: string): UpstreamServer => byKey.select(servers, request({ hashKey: key }));

  test('a header value is the key (the header name matched case-insensitively)', T, () => {
    const pool = makePool({ policy: 'hash', hashKey: { header: 'X-Tenant' } });
    const reached = new Set<UpstreamServer>();
    for (let i = 0; i < 60; i++) {
      const tenant = `tenant-${i}`;
      const home = reference(pool.servers, tenant);
      reached.add(home);
      for (const kind of ['http', 'upgrade'] as const) {
        for (let j = 0; j < 2; j++) {
          const selection = pick(pool, input(kind, { headers: { 'x-tenant': tenant }, clientAddress: `10.0.${j}.${i}` }));
          assert.equal(selection.server, home, `${tenant} (${kind})`);
        }
      }
    }
    assert.equal(reached.size, 3, 'keys spread over the servers');
  });

  test('a cookie value is the key', T, () => {
    const pool = makePool({ policy: 'hash', hashKey: { cookie: 'uid' } });
    for (let i = 0; i < 60; i++) {
      const uid = `u${i}`;
      const home = reference(pool.servers, uid);
      for (const cookieHeader of [`uid=${uid}`, `a=1; uid=${uid}; b=2`, `xuid=zzz; uid=${uid}`]) {
        assert.equal(pick(pool, input('http', { headers: { cookie: cookieHeader }, cookieHeader })).server, home, cookieHeader);
      }
    }
  });

  test('a query parameter is the key', T, () => {
    const pool = makePool({ policy: 'hash', hashKey: { query: 'user' } });
    for (let i = 0; i < 60; i++) {
      const user = `u${i}`;
      const home = reference(pool.servers, user);
      for (const query of [`?user=${user}`, `?x=1&user=${user}`, `?user=${user}&y=2`]) {
        assert.equal(pick(pool, input('http', { headers: {}, query })).server, home, query);
      }
    }
  });

  test('without the key the request goes round robin', T, () => {
    const cases: { hashKey: NonNullable<UpstreamConfig['hashKey']>; extra: Partial<SelectionInput> }[] = [
      { hashKey: { header: 'X-Tenant' }, extra: { headers: { 'x-other': 'a' } } },
      { hashKey: { cookie: 'uid' }, extra: { headers: { cookie: 'other=1' }, cookieHeader: 'other=1' } },
      { hashKey: { cookie: 'uid' }, extra: { headers: {}, cookieHeader: undefined } },
      { hashKey: { query: 'user' }, extra: { headers: {}, query: '?other=1' } },
      { hashKey: { query: 'user' }, extra: { headers: {}, query: '' } },
      { hashKey: { query: 'user' }, extra: { headers: {}, query: '?user=' } },
    ];
    for (const { hashKey, extra } of cases) {
      const pool = makePool({ policy: 'hash', hashKey });
      const picks = Array.from({ length: 6 }, () => pick(pool, input('http', extra)).server);
      assert.deepEqual(indexes(pool.servers, picks), [0, 1, 2, 0, 1, 2], JSON.stringify(extra));
    }
  });

  test('policy hash without a key setting hashes the client address', T, () => {
    const pool = makePool({ policy: 'hash' });
    const byAddress: Balancer = new ConsistentHashBalancer(byClientAddress);
    for (let i = 0; i < 30; i++) {
      const clientAddress = `192.168.0.${i}`;
      const home = byAddress.select(pool.servers, request({ clientAddress }));
      assert.equal(pick(pool, input('http', { clientAddress, headers: { 'x-tenant': 'same' } })).server, home);
    }
  });

  test('ip_hash keeps an address on one server for requests and upgrades; moves it only while that one is down', T, () => {
    const pool = makePool({ policy: 'ip_hash' });
    const reached = new Set<UpstreamServer>();
    for (let i = 0; i < 30; i++) {
      const clientAddress = `172.16.${i}.1`;
      const home = pick(pool, input('http', { clientAddress })).server;
      reached.add(home);
      for (let j = 0; j < 3; j++) {
        assert.equal(pick(pool, input('http', { clientAddress })).server, home);
        assert.equal(pick(pool, input('upgrade', { clientAddress })).server, home);
      }
      home.healthy = false;
      const fallback = pick(pool, input('http', { clientAddress })).server;
      assert.notEqual(fallback, home);
      assert.equal(pick(pool, input('http', { clientAddress })).server, fallback, 'the fallback is stable');
      home.healthy = true;
      assert.equal(pick(pool, input('http', { clientAddress })).server, home, 'back home');
    }
    assert.equal(reached.size, 3);
  });
});

describe('UpstreamPool policy first', () => {
  test('fills in order and moves on when the first is full', T, () => {
    const pool = makePool({ policy: 'first', servers: URLS.map((url) => ({ url, weight: 1, maxConns: 2 })) });
    const order: number[] = [];
    for (let i = 0; i < 6; i++) {
      const server = pick(pool, input('http')).server;
      pool.acquire(server);
      order.push(pool.servers.indexOf(server));
    }
    assert.deepEqual(order, [0, 0, 1, 1, 2, 2]);
    assert.equal(pool.select(input('http'), NOW), FULL);
    pool.release(pool.servers[1]!);
    assert.equal(pick(pool, input('http')).server, pool.servers[1], 'the first with room');
    pool.release(pool.servers[0]!);
    assert.equal(pick(pool, input('upgrade')).server, pool.servers[0], 'back to the first as soon as it has room');
  });

  test('moves on when the first is down, ejected, draining or tried', T, () => {
    const pool = makePool({ policy: 'first' });
    const [a, b] = pool.servers as [UpstreamServer, UpstreamServer];
    assert.equal(pick(pool, input('http')).server, a);
    assert.equal(pick(pool, input('http', { tried: [a] })).server, b);
    a.healthy = false;
    assert.equal(pick(pool, input('http')).server, b);
    a.healthy = true;
    pool.recordFailure(a, 'connect', NOW);
    assert.equal(pick(pool, input('http')).server, b);
    assert.equal(pick(pool, input('http'), NOW + FAIL_MS).server, a);
    pool.drain(a, 60_000);
    assert.equal(pick(pool, input('http'), NOW + FAIL_MS).server, b);
  });
});

// --- helpers ---

class TestWaiter implements Waiter {
  readyCalls = 0;
  expiredCalls = 0;
  readonly expiredOnce: Promise<void>;
  private onExpired: () => void = () => {};

  constructor() {
    this.expiredOnce = new Promise((resolve) => { this.onExpired = resolve; });
  }

  ready(): void {
    this.readyCalls++;
  }

  expired(): void {
    this.expiredCalls++;
    this.onExpired();
  }
}

/** A tunnel as the pool sees it: registered in server.tunnels, destroyed with a reason. */
class FakeTunnel implements Closable {
  readonly reasons: string[] = [];
  readonly graceful: { reason: string; leftMs: number; at: number }[] = [];
  closeGracefully?: (reason: 'shutdown' | 'drain', leftMs: number) => void;

  constructor(private readonly server: UpstreamServer, polite = false) {
    server.tunnels.add(this);
    if (polite) this.closeGracefully = (reason, leftMs) => { this.graceful.push({ reason, leftMs, at: performance.now() }); };
  }

  destroy(reason: 'shutdown' | 'drain' | 'down'): void {
    this.reasons.push(reason);
    this.end();
  }

  /** The tunnel closed by itself. */
  end(): void {
    this.server.tunnels.delete(this);
  }
}

function makeServers(urls: readonly string[], options: { weights?: readonly number[] } = {}): UpstreamServer[] {
  const servers = urls.map((url, i) => new UpstreamServer(url, TIMEOUTS, { weight: options.weights?.[i] ?? 1 }));
  closables.push(...servers);
  return servers;
}

function makePool(overrides: Partial<UpstreamConfig> = {}): UpstreamPool {
  const config: UpstreamConfig = {
    name: 'test', servers: URLS.map((url) => ({ url, weight: 1 })), policy: undefined,
    sticky: 'none', stickySecret: 'test-secret', stickyCookieName: 'sy_affinity', failTimeoutMs: FAIL_MS,
    ...overrides,
  };
  const pool = new UpstreamPool(config, TIMEOUTS);
  closables.push(pool);
  return pool;
}

function input(kind: SelectionInput['kind'], overrides: Partial<SelectionInput> = {}): SelectionInput {
  return { kind, clientAddress: '127.0.0.1', cookieHeader: undefined, secure: false, tried: undefined, ...overrides };
}

function request(overrides: Partial<BalanceRequest> = {}): BalanceRequest {
  return { kind: 'http', clientAddress: '127.0.0.1', hashKey: undefined, ...overrides };
}

/** A selection that must name a server (not FULL, not undefined). */
function pick(pool: UpstreamPool, selectionInput: SelectionInput, now = NOW): Selection {
  const selection = pool.select(selectionInput, now);
  assert.ok(selection !== undefined && selection !== FULL, `expected a server, got ${String(selection)}`);
  return selection;
}

function indexes(servers: readonly UpstreamServer[], picks: readonly UpstreamServer[]): number[] {
  return picks.map((server) => servers.indexOf(server));
}

function setActive(servers: readonly UpstreamServer[], counts: readonly number[]): void {
  servers.forEach((server, index) => { server.active = counts[index] ?? 0; });
}

/** mulberry32: a small seeded PRNG, so random_two runs are reproducible. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
