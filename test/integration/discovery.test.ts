import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import type { DiscoveryConfig, ServerConfig, UpstreamConfig } from '../../src/config/model.js';
import type { Logger } from '../../src/log/logger.js';
import { Discovery } from '../../src/upstream/discovery.js';
import { UpstreamPool } from '../../src/upstream/upstream-pool.js';
import type { UpstreamServer } from '../../src/upstream/upstream-server.js';
import { sleep, waitFor } from '../helpers/raw.js';
import { startDnsServer, type DnsTestServer } from './dns-test-server.js';

const TIMEOUTS = { connectMs: 1_000, responseMs: 2_000, bodyIdleMs: 2_000 };
const INTERVAL = 100;

interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

const WARN = 40;

function recordingLogger(): { log: Logger; lines: LogLine[]; warnings: () => LogLine[] } {
  const lines: LogLine[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { log, lines, warnings: () => lines.filter((line) => line.level === WARN) };
}

function upstream(servers: ServerConfig[], discovery: DiscoveryConfig): UpstreamConfig {
  return {
    name: 'app', servers, policy: undefined, sticky: 'none', stickySecret: 'secret', stickyCookieName: 'sy', failTimeoutMs: 10_000, discovery,
  };
}

interface Setup {
  dns: DnsTestServer;
  pool: UpstreamPool;
  discovery: Discovery;
  log: ReturnType<typeof recordingLogger>;
  close(): Promise<void>;
}

/** A DNS server, a pool of `servers`, and Discovery on it (not started). */
async function setup(servers: ServerConfig[], options: { srv?: boolean; resolver?: string | null } = {}): Promise<Setup> {
  const dns = await startDnsServer();
  const log = recordingLogger();
  const discoveryConfig: DiscoveryConfig = {
    intervalMs: INTERVAL,
    resolver: options.resolver === null ? undefined : options.resolver ?? dns.address,
    srv: options.srv ?? false,
  };
  const config = upstream(servers, discoveryConfig);
  const pool = new UpstreamPool(config, TIMEOUTS);
  const discovery = new Discovery(pool, discoveryConfig, log.log);
  return {
    dns, pool, discovery, log,
    async close() {
      discovery.stop();
      await pool.close();
      await dns.close();
    },
  };
}

const urls = (pool: UpstreamPool): string[] => pool.servers.map((server) => server.url).sort();
const available = (pool: UpstreamPool): string[] => pool.servers.filter((server) => server.isAvailable(Date.now())).map((server) => server.url).sort();
const byUrl = (pool: UpstreamPool, url: string): UpstreamServer | undefined => pool.servers.find((server) => server.url === url);
const sameSet = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && [...a].sort().every((value, index) => value === [...b].sort()[index]);

/** The URLs pool.select hands out over `rounds` selections. */
function selectable(pool: UpstreamPool, rounds = 30): string[] {
  const seen = new Set<string>();
  for (let i = 0; i < rounds; i++) {
    const selection = pool.select({ kind: 'http', clientAddress: 'x', cookieHeader: undefined, secure: false, tried: undefined }, Date.now());
    if (selection !== undefined && selection !== 'full') seen.add(selection.server.url);
  }
  return [...seen].sort();
}

interface Origins {
  readonly port: number;
  close(): Promise<void>;
}

/** HTTP origins on the same port of several loopback addresses, each answering with its own address. */
async function startOrigins(hosts: readonly string[]): Promise<Origins> {
  for (let attempt = 0; ; attempt++) {
    const servers: http.Server[] = [];
    const closeAll = (): Promise<void> => Promise.all(servers.map((server) => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }))).then(() => undefined);
    try {
      let port = 0;
      for (const host of hosts) {
        const server = http.createServer((req, res) => res.end(req.socket.localAddress));
        server.keepAliveTimeout = 100;
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(port, host, () => resolve());
        });
        servers.push(server);
        port = (server.address() as AddressInfo).port;
      }
      return { port, close: closeAll };
    } catch (err) {
      await closeAll();
      if (attempt >= 5) throw err;
    }
  }
}

/** GET / through the server's own connection pool: the address of the origin that answered. */
async function ask(server: UpstreamServer): Promise<string> {
  const response = await server.dispatcherFor(1_000).request({ path: '/', method: 'GET' });
  assert.equal(response.statusCode, 200);
  return response.body.text();
}

describe('discovery: A/AAAA records', () => {
  test('every A record becomes a server that takes requests; the configured name-based server is replaced', { timeout: 10_000 }, async () => {
    const origins = await startOrigins(['127.0.0.1', '127.0.0.2', '127.0.0.3']);
    const s = await setup([{ url: `http://app.test:${origins.port}`, weight: 1 }]);
    try {
      const named = s.pool.servers[0]!;
      s.dns.table.set('app.test', { a: ['127.0.0.2', '127.0.0.3'] });
      s.pool.start([s.discovery]);
      const want = [`http://127.0.0.2:${origins.port}`, `http://127.0.0.3:${origins.port}`];
      await waitFor(() => sameSet(available(s.pool), want), 3_000, 'the resolved servers');
      assert.ok(named.draining, 'the name-based server was not drained');
      assert.deepEqual(selectable(s.pool), want);
      const discovered = want.map((url) => byUrl(s.pool, url)!);
      assert.deepEqual(await Promise.all(discovered.map(ask)), ['127.0.0.2', '127.0.0.3']);
      for (const server of discovered) {
        assert.equal(server.weight, 1);
        assert.equal(server.tlsOptions, undefined);
      }
      // Idle, the name-based server leaves the pool altogether.
      await waitFor(() => !s.pool.servers.includes(named), 3_000, 'the name-based server to leave');
      assert.deepEqual(urls(s.pool), want);
    } finally {
      await s.close();
      await origins.close();
    }
  });

  test('re-resolution: a new address joins, a vanished one drains (busy: stays until released), then leaves', { timeout: 15_000 }, async () => {
    const origins = await startOrigins(['127.0.0.1', '127.0.0.2', '127.0.0.3']);
    const s = await setup([{ url: `http://app.test:${origins.port}`, weight: 2 }]);
    try {
      s.dns.table.set('app.test', { a: ['127.0.0.1', '127.0.0.2'] });
      s.pool.start([s.discovery]);
      const one = `http://127.0.0.1:${origins.port}`;
      const two = `http://127.0.0.2:${origins.port}`;
      const three = `http://127.0.0.3:${origins.port}`;
      await waitFor(() => sameSet(available(s.pool), [one, two]), 3_000, 'the first resolution');
      const leaving = byUrl(s.pool, one)!;
      const staying = byUrl(s.pool, two)!;
      s.pool.acquire(leaving); // an open tunnel, say

      s.dns.table.set('app.test', { a: ['127.0.0.2', '127.0.0.3'] });
      await waitFor(() => byUrl(s.pool, three) !== undefined, 3_000, 'the new address to join');
      assert.equal(byUrl(s.pool, three)!.weight, 2);
      assert.equal(await ask(byUrl(s.pool, three)!), '127.0.0.3');
      assert.equal(byUrl(s.pool, two), staying, 'an address still resolved was replaced');
      assert.ok(leaving.draining, 'the vanished address is not draining');
      assert.deepEqual(selectable(s.pool), [two, three]);

      // Busy, it stays (draining) past the pool's idle check...
      await sleep(1_300);
      assert.ok(s.pool.servers.includes(leaving), 'a busy draining server was dropped');
      // ...and goes once its last tunnel is gone.
      s.pool.release(leaving);
      await waitFor(() => !s.pool.servers.includes(leaving), 3_000, 'the drained server to leave');
      assert.deepEqual(urls(s.pool), [two, three]);
      assert.equal(staying.draining, false);
    } finally {
      await s.close();
      await origins.close();
    }
  });

  test('AAAA records (brackets), scheme, port, path, weight and connection limit carried; TLS names the host', { timeout: 10_000 }, async () => {
    const s = await setup([{ url: 'https://app.test:8443/base', weight: 3, maxConns: 7 }]);
    try {
      s.dns.table.set('app.test', { a: ['127.0.0.2'], aaaa: ['::1'] });
      s.pool.start([s.discovery]);
      const want = ['https://127.0.0.2:8443/base', 'https://[::1]:8443/base'];
      await waitFor(() => sameSet(available(s.pool), want), 3_000, 'the resolved servers');
      const v4 = byUrl(s.pool, want[0]!)!;
      const v6 = byUrl(s.pool, want[1]!)!;
      assert.equal(v4.hostname, '127.0.0.2');
      assert.equal(v6.hostname, '::1');
      for (const server of [v4, v6]) {
        assert.equal(server.secure, true);
        assert.equal(server.port, 8443);
        assert.equal(server.basePath, '/base');
        assert.equal(server.weight, 3);
        assert.equal(server.maxConns, 7);
        assert.equal(server.tlsOptions?.servername, 'app.test');
      }
    } finally {
      await s.close();
    }
  });

  test('IP-literal servers are left alone; only the name-based one is resolved', { timeout: 10_000 }, async () => {
    const s = await setup([{ url: 'http://127.0.0.1:9001', weight: 1 }, { url: 'http://app.test:9002', weight: 1 }]);
    try {
      const literal = s.pool.servers[0]!;
      s.dns.table.set('app.test', { a: ['127.0.0.5'] });
      s.pool.start([s.discovery]);
      await waitFor(() => sameSet(available(s.pool), ['http://127.0.0.1:9001', 'http://127.0.0.5:9002']), 3_000, 'the resolved server');
      await sleep(3 * INTERVAL);
      assert.equal(s.pool.servers[0], literal);
      assert.equal(literal.draining, false);
      assert.ok(s.dns.queries.every((query) => query.startsWith('app.test ')), `unexpected queries: ${s.dns.queries.join(', ')}`);
    } finally {
      await s.close();
    }
  });

  test('no resolver configured: the system resolver (/etc/hosts) is used', { timeout: 10_000 }, async () => {
    const origins = await startOrigins(['127.0.0.1']);
    const s = await setup([{ url: `http://localhost:${origins.port}`, weight: 1 }], { resolver: null });
    try {
      const named = s.pool.servers[0]!;
      s.pool.start([s.discovery]);
      const local = `http://127.0.0.1:${origins.port}`;
      await waitFor(() => byUrl(s.pool, local) !== undefined, 3_000, 'localhost to resolve');
      assert.ok(named.draining);
      assert.equal(await ask(byUrl(s.pool, local)!), '127.0.0.1');
      assert.equal(s.dns.queries.length, 0, 'the test DNS server was asked though no resolver is configured');
    } finally {
      await s.close();
      await origins.close();
    }
  });
});

describe('discovery: SRV records', () => {
  test('targets of the lowest priority become servers with their ports and weights (0 counts as 1)', { timeout: 10_000 }, async () => {
    const first = await startOrigins(['127.0.0.2']);
    const second = await startOrigins(['127.0.0.3']);
    const third = await startOrigins(['127.0.0.4']);
    const s = await setup([{ url: 'http://_app._tcp.svc.test/api', weight: 9 }], { srv: true });
    try {
      s.dns.table.set('_app._tcp.svc.test', {
        srv: [
          { priority: 10, weight: 5, port: first.port, target: 'a.svc.test' },
          { priority: 10, weight: 0, port: second.port, target: 'b.svc.test' },
          { priority: 20, weight: 1, port: third.port, target: 'c.svc.test' },
        ],
      });
      s.dns.table.set('a.svc.test', { a: ['127.0.0.2'] });
      s.dns.table.set('b.svc.test', { a: ['127.0.0.3'] });
      s.dns.table.set('c.svc.test', { a: ['127.0.0.4'] });
      s.pool.start([s.discovery]);
      const a = `http://127.0.0.2:${first.port}/api`;
      const b = `http://127.0.0.3:${second.port}/api`;
      const c = `http://127.0.0.4:${third.port}/api`;
      await waitFor(() => sameSet(available(s.pool), [a, b]), 3_000, 'the SRV targets');
      assert.equal(byUrl(s.pool, a)!.weight, 5);
      assert.equal(byUrl(s.pool, b)!.weight, 1);
      assert.equal(byUrl(s.pool, c), undefined, 'a target of a higher priority was used');
      assert.equal(byUrl(s.pool, a)!.basePath, '/api');
      assert.equal(await ask(byUrl(s.pool, a)!), '127.0.0.2');
      assert.equal(await ask(byUrl(s.pool, b)!), '127.0.0.3');
      assert.deepEqual(selectable(s.pool), [a, b]);

      // The lower priority goes away: the next one takes over, the old targets drain.
      const old = [byUrl(s.pool, a)!, byUrl(s.pool, b)!];
      s.dns.table.set('_app._tcp.svc.test', { srv: [{ priority: 20, weight: 4, port: third.port, target: 'c.svc.test' }] });
      await waitFor(() => sameSet(available(s.pool), [c]), 3_000, 'the priority-20 target');
      assert.equal(byUrl(s.pool, c)!.weight, 4);
      assert.equal(await ask(byUrl(s.pool, c)!), '127.0.0.4');
      assert.ok(old.every((server) => server.draining));

      // A changed weight replaces the server (weights are fixed per server).
      const before = byUrl(s.pool, c)!;
      s.dns.table.set('_app._tcp.svc.test', { srv: [{ priority: 20, weight: 7, port: third.port, target: 'c.svc.test' }] });
      await waitFor(() => available(s.pool).length === 1 && s.pool.servers.some((server) => server.url === c && server.weight === 7 && !server.draining), 3_000, 'the new weight');
      assert.ok(before.draining);
    } finally {
      await s.close();
      await Promise.all([first.close(), second.close(), third.close()]);
    }
  });

  test('a target with several addresses gives one server each; a target that does not resolve is skipped; TLS names the target', { timeout: 10_000 }, async () => {
    const s = await setup([{ url: 'wss://_ws._tcp.svc.test', weight: 1 }], { srv: true });
    try {
      s.dns.table.set('_ws._tcp.svc.test', {
        srv: [
          { priority: 1, weight: 2, port: 7001, target: 'multi.svc.test' },
          { priority: 1, weight: 2, port: 7002, target: 'ghost.svc.test' },
        ],
      });
      s.dns.table.set('multi.svc.test', { a: ['127.0.0.6', '127.0.0.7'] });
      s.pool.start([s.discovery]);
      const want = ['wss://127.0.0.6:7001', 'wss://127.0.0.7:7001'];
      await waitFor(() => sameSet(available(s.pool), want), 3_000, 'the SRV target addresses');
      for (const url of want) {
        const server = byUrl(s.pool, url)!;
        assert.equal(server.weight, 2);
        assert.equal(server.tlsOptions?.servername, 'multi.svc.test');
      }
      assert.equal(s.log.warnings().length, 0, JSON.stringify(s.log.warnings()));

      // No target resolves any more: that is a failure, the servers stay.
      s.dns.table.delete('multi.svc.test');
      await waitFor(() => s.log.warnings().length > 0, 3_000, 'the warning');
      await sleep(3 * INTERVAL);
      assert.deepEqual(available(s.pool), want);
      assert.equal(s.log.warnings().length, 1, JSON.stringify(s.log.warnings()));
    } finally {
      await s.close();
    }
  });
});

describe('discovery: failures and stopping', () => {
  test('SERVFAIL and NXDOMAIN keep the current servers and warn once per failing streak', { timeout: 10_000 }, async () => {
    const s = await setup([{ url: 'http://app.test:8080', weight: 1 }]);
    try {
      s.dns.table.set('app.test', { a: ['127.0.0.2'] });
      s.pool.start([s.discovery]);
      const two = 'http://127.0.0.2:8080';
      await waitFor(() => sameSet(available(s.pool), [two]), 3_000, 'the first resolution');
      const server = byUrl(s.pool, two)!;

      s.dns.table.set('app.test', { a: ['127.0.0.3'], fail: 'servfail' });
      const asked = s.dns.queries.length;
      await waitFor(() => s.dns.queries.length >= asked + 10, 5_000, 'several failing rounds');
      assert.deepEqual(available(s.pool), [two]);
      assert.equal(server.draining, false);
      assert.equal(s.log.warnings().length, 1, JSON.stringify(s.log.warnings()));
      assert.equal(s.log.warnings()[0]!.host, 'app.test');

      // Half an answer (AAAA fine, A SERVFAIL) is a failure too: the A servers are not drained.
      s.dns.table.set('app.test', { a: ['127.0.0.3'], aaaa: ['::1'], fail: 'servfail', failType: 'A' });
      const half = s.dns.queries.length;
      await waitFor(() => s.dns.queries.length >= half + 10, 5_000, 'several half-failing rounds');
      assert.deepEqual(available(s.pool), [two]);
      assert.equal(s.log.warnings().length, 1, JSON.stringify(s.log.warnings()));

      // It recovers: changes apply again.
      s.dns.table.set('app.test', { a: ['127.0.0.3'] });
      await waitFor(() => sameSet(available(s.pool), ['http://127.0.0.3:8080']), 3_000, 'the change after recovery');
      assert.ok(server.draining);
      assert.ok(s.log.lines.some((line) => line.msg.includes('resolves again')));

      // NXDOMAIN: a new streak, one more warning, servers kept.
      s.dns.table.delete('app.test');
      const again = s.dns.queries.length;
      await waitFor(() => s.dns.queries.length >= again + 10, 5_000, 'several NXDOMAIN rounds');
      assert.deepEqual(available(s.pool), ['http://127.0.0.3:8080']);
      assert.equal(s.log.warnings().length, 2, JSON.stringify(s.log.warnings()));
    } finally {
      await s.close();
    }
  });

  test('a name that fails from the start keeps the configured server until it resolves', { timeout: 10_000 }, async () => {
    const s = await setup([{ url: 'http://app.test:8080', weight: 1 }]);
    try {
      const named = s.pool.servers[0]!;
      s.pool.start([s.discovery]);
      await waitFor(() => s.dns.queries.length >= 8, 3_000, 'several failing rounds');
      assert.deepEqual(urls(s.pool), ['http://app.test:8080']);
      assert.equal(named.draining, false);
      assert.equal(s.log.warnings().length, 1);

      // A name with no A/AAAA records at all (NODATA) counts as a failure too.
      s.dns.table.set('app.test', {});
      const asked = s.dns.queries.length;
      await waitFor(() => s.dns.queries.length >= asked + 6, 3_000, 'NODATA rounds');
      assert.deepEqual(urls(s.pool), ['http://app.test:8080']);
      assert.equal(named.draining, false);

      s.dns.table.set('app.test', { a: ['127.0.0.2'] });
      await waitFor(() => sameSet(available(s.pool), ['http://127.0.0.2:8080']), 3_000, 'the resolution');
      assert.ok(named.draining);
    } finally {
      await s.close();
    }
  });

  test('a DNS server that never answers: servers kept, one warning, rounds never overlap', { timeout: 15_000 }, async () => {
    const s = await setup([{ url: 'http://app.test:8080', weight: 1 }]);
    try {
      s.dns.table.set('app.test', { a: ['127.0.0.2'] });
      s.pool.start([s.discovery]);
      await waitFor(() => sameSet(available(s.pool), ['http://127.0.0.2:8080']), 3_000, 'the first resolution');
      s.dns.table.set('app.test', { a: ['127.0.0.3'], fail: 'drop' });
      const asked = s.dns.queries.length;
      const started = Date.now();
      await waitFor(() => s.log.warnings().length > 0, 8_000, 'the timeout warning');
      await sleep(2_000);
      const elapsed = Date.now() - started;
      assert.deepEqual(available(s.pool), ['http://127.0.0.2:8080']);
      assert.equal(s.log.warnings().length, 1, JSON.stringify(s.log.warnings()));
      // Rounds started every 100 ms regardless would ask about 4 questions per 100 ms.
      const questions = s.dns.queries.length - asked;
      assert.ok(questions < elapsed / 100, `${questions} questions in ${elapsed} ms: rounds overlap`);
    } finally {
      await s.close();
    }
  });

  test('stop() stops re-resolving; pool.close() stops it too', { timeout: 10_000 }, async () => {
    const s = await setup([{ url: 'http://app.test:8080', weight: 1 }]);
    try {
      s.dns.table.set('app.test', { a: ['127.0.0.2'] });
      s.discovery.start();
      s.discovery.start(); // twice: still one loop
      await waitFor(() => sameSet(available(s.pool), ['http://127.0.0.2:8080']), 3_000, 'the first resolution');
      await waitFor(() => s.dns.queries.length >= 6, 3_000, 'a few rounds');
      s.discovery.stop();
      const asked = s.dns.queries.length;
      s.dns.table.set('app.test', { a: ['127.0.0.3'] });
      await sleep(6 * INTERVAL);
      assert.equal(s.dns.queries.length, asked, 'queries after stop()');
      assert.deepEqual(available(s.pool), ['http://127.0.0.2:8080']);

      // Started again it picks up the change; the pool's close() stops it for good.
      s.pool.start([s.discovery]);
      await waitFor(() => sameSet(available(s.pool), ['http://127.0.0.3:8080']), 3_000, 'the change after a restart');
      await s.pool.close();
      const closedAt = s.dns.queries.length;
      s.dns.table.set('app.test', { a: ['127.0.0.4'] });
      await sleep(6 * INTERVAL);
      assert.equal(s.dns.queries.length, closedAt, 'queries after pool.close()');
    } finally {
      await s.close();
    }
  });

  test('stop() during a round in flight: the round changes nothing, warns nothing, and no round follows', { timeout: 10_000 }, async () => {
    const s = await setup([{ url: 'http://app.test:8080', weight: 1 }]);
    try {
      s.dns.table.set('app.test', { a: ['127.0.0.2'] });
      s.pool.start([s.discovery]);
      await waitFor(() => sameSet(available(s.pool), ['http://127.0.0.2:8080']), 3_000, 'the first resolution');
      s.dns.table.set('app.test', { a: ['127.0.0.3'], fail: 'drop' });
      const asked = s.dns.queries.length;
      await waitFor(() => s.dns.queries.length > asked, 3_000, 'a question left unanswered');
      s.discovery.stop();
      s.dns.table.set('app.test', { a: ['127.0.0.3'] });
      const stoppedAt = s.dns.queries.length;
      await sleep(1_500);
      assert.ok(s.dns.queries.length <= stoppedAt + 1, `questions after stop(): ${s.dns.queries.slice(stoppedAt).join(', ')}`);
      assert.deepEqual(available(s.pool), ['http://127.0.0.2:8080']);
      assert.equal(s.log.warnings().length, 0, JSON.stringify(s.log.warnings()));
    } finally {
      await s.close();
    }
  });

  test('a resolver that is not an IP address: one warning, no discovery, nothing thrown', { timeout: 5_000 }, async () => {
    const s = await setup([{ url: 'http://app.test:8080', weight: 1 }], { resolver: 'dns.invalid:53' });
    try {
      s.dns.table.set('app.test', { a: ['127.0.0.2'] });
      s.pool.start([s.discovery]);
      await sleep(3 * INTERVAL);
      assert.deepEqual(urls(s.pool), ['http://app.test:8080']);
      assert.equal(s.log.warnings().length, 1);
      assert.equal(s.dns.queries.length, 0);
    } finally {
      await s.close();
    }
  });
});
