import { promises as dns } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { DiscoveryConfig, ServerConfig } from '../config/model.js';
import type { Logger } from '../log/logger.js';
import type { Background, UpstreamPool } from './upstream-pool.js';
import type { UpstreamServer } from './upstream-server.js';

/** A configured server given by host name, and what discovery made of it. */
interface Entry {
  readonly config: ServerConfig;
  /** The host name as written (lower case, no brackets). */
  readonly name: string;
  /** 'http:', 'https:', 'ws:' or 'wss:'. */
  readonly protocol: string;
  /** The URL's port ('' for the scheme's default). */
  readonly port: string;
  /** The URL's path ('' for '/'). */
  readonly path: string;
  /** The server built from the config (name in its URL), until the first resolution replaces it. */
  configured: UpstreamServer | undefined;
  /** Servers discovery added for this entry, by URL. */
  readonly current: Map<string, UpstreamServer>;
  /** The last round failed (a warning was logged; the next ones stay quiet until it recovers). */
  failing: boolean;
}

/** One server a resolution asks for. */
interface Wanted {
  readonly weight: number;
  /** Name for TLS (SNI, certificate check). */
  readonly hostname: string;
}

/** Codes meaning "this name has no records of that type" rather than "the lookup failed". */
const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND']);

/**
 * Re-resolves the pool's servers that are given by host name: every A/AAAA
 * address (or, with srv, every target of the lowest SRV priority, with its port
 * and weight) becomes a server; addresses that vanish are drained and dropped by
 * the pool, new ones join. A failed lookup keeps the current servers. Rounds run
 * at start and then every intervalMs after the previous round ended, so they
 * never overlap; timers are unref'd. Nothing here throws.
 */
export class Discovery implements Background {
  private readonly entries: Entry[] = [];
  private readonly resolver: Resolver;
  /** Set when config.resolver is unusable: discovery stays off. */
  private readonly resolverError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Bumped by stop(): a round that started before it changes nothing after. */
  private generation = 0;

  constructor(private readonly pool: UpstreamPool, private readonly config: DiscoveryConfig, private readonly log: Logger) {
    const timeout = Math.min(Math.max(config.intervalMs, 500), 5_000);
    this.resolver = new Resolver({ timeout, tries: 2 });
    let resolverError: string | undefined;
    if (config.resolver !== undefined) {
      try {
        this.resolver.setServers([config.resolver]);
      } catch (err) {
        resolverError = errorText(err);
      }
    }
    this.resolverError = resolverError;
    const claimed = new Set<UpstreamServer>();
    for (const server of pool.config.servers) {
      let url: URL;
      try {
        url = new URL(server.url);
      } catch {
        continue;
      }
      const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      if (host === '' || isIP(host) !== 0) continue;
      const configured = pool.servers.find((candidate) => candidate.url === server.url && !claimed.has(candidate));
      if (configured) claimed.add(configured);
      this.entries.push({
        config: server,
        name: host,
        protocol: url.protocol,
        port: url.port,
        path: url.pathname === '/' ? '' : url.pathname,
        configured,
        current: new Map(),
        failing: false,
      });
    }
  }

  start(): void {
    if (this.running || this.entries.length === 0) return;
    if (this.resolverError !== undefined) {
      this.log.warn({ upstream: this.pool.config.name, resolver: this.config.resolver, err: this.resolverError },
        `discovery for upstream "${this.pool.config.name}" is off: resolver "${this.config.resolver ?? ''}" is not an IP address with an optional port`);
      return;
    }
    this.running = true;
    void this.loop(this.generation);
  }

  stop(): void {
    if (!this.running) return;
    this.running = false;
    this.generation++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    try {
      this.resolver.cancel();
    } catch {
      // nothing in flight
    }
  }

  private async loop(generation: number): Promise<void> {
    try {
      await Promise.all(this.entries.map((entry) => this.refresh(entry, generation)));
    } catch (err) {
      // refresh() catches everything; this is a last guard so a bug cannot crash the process.
      this.log.error({ upstream: this.pool.config.name, err: errorText(err) }, 'discovery round failed');
    }
    if (generation !== this.generation) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.loop(generation);
    }, this.config.intervalMs);
    this.timer.unref();
  }

  private async refresh(entry: Entry, generation: number): Promise<void> {
    let wanted: Map<string, Wanted>;
    try {
      wanted = this.config.srv ? await this.resolveSrv(entry, generation) : await this.resolveAddresses(entry);
      if (wanted.size === 0) throw new Error('no addresses');
    } catch (err) {
      if (generation !== this.generation) return;
      const fields = { upstream: this.pool.config.name, host: entry.name, err: errorText(err) };
      if (entry.failing) {
        this.log.debug(fields, 'discovery: resolution still failing');
      } else {
        entry.failing = true;
        this.log.warn(fields, `discovery: resolving "${entry.name}" failed; keeping the current servers`);
      }
      return;
    }
    if (generation !== this.generation) return;
    if (entry.failing) {
      entry.failing = false;
      this.log.info({ upstream: this.pool.config.name, host: entry.name }, `discovery: "${entry.name}" resolves again`);
    }
    this.apply(entry, wanted);
  }

  /** Servers join and leave so that the entry's servers are exactly `wanted`. */
  private apply(entry: Entry, wanted: Map<string, Wanted>): void {
    const added: string[] = [];
    const removed: string[] = [];
    const leaving: UpstreamServer[] = [];
    for (const [url, server] of entry.current) {
      const want = wanted.get(url);
      if (want !== undefined && want.weight === server.weight) continue;
      // Gone, or its weight changed (a server's weight is fixed): it drains, a new one joins.
      entry.current.delete(url);
      leaving.push(server);
      if (want === undefined) removed.push(url);
    }
    for (const [url, want] of wanted) {
      if (entry.current.has(url)) continue;
      let server: UpstreamServer;
      try {
        server = this.pool.createServer(url, want.weight, entry.config.maxConns ?? 0, want.hostname);
      } catch (err) {
        this.log.warn({ upstream: this.pool.config.name, host: entry.name, url, err: errorText(err) }, 'discovery: cannot use a resolved address');
        continue;
      }
      server.draining = entry.config.drain ?? false;
      this.pool.addServer(server);
      entry.current.set(url, server);
      added.push(url);
    }
    // New servers join before old ones leave, so the pool is never empty in between.
    for (const server of leaving) this.pool.removeServer(server);
    const configured = entry.configured;
    if (configured !== undefined && entry.current.size > 0) {
      entry.configured = undefined;
      if (this.pool.servers.includes(configured)) {
        this.pool.removeServer(configured);
        removed.push(configured.url);
      }
    }
    if (added.length > 0 || removed.length > 0) {
      this.log.info({ upstream: this.pool.config.name, host: entry.name, added, removed }, 'discovery: servers changed');
    }
  }

  /** A/AAAA: every address with the entry's scheme, port, path and weight. */
  private async resolveAddresses(entry: Entry): Promise<Map<string, Wanted>> {
    const addresses = await this.addressesOf(entry.name, false);
    const hostname = tlsName(entry.name);
    const wanted = new Map<string, Wanted>();
    for (const address of addresses) {
      wanted.set(this.urlFor(entry, address, entry.port), { weight: entry.config.weight, hostname });
    }
    return wanted;
  }

  /** SRV: every target of the lowest priority, each address with the record's port and weight. */
  private async resolveSrv(entry: Entry, generation: number): Promise<Map<string, Wanted>> {
    const records = await this.resolver.resolveSrv(entry.name);
    // Stopped meanwhile: no more queries.
    if (generation !== this.generation || records.length === 0) return new Map();
    const lowest = Math.min(...records.map((record) => record.priority));
    const chosen = records.filter((record) => record.priority === lowest);
    const resolved = await Promise.all(chosen.map(async (record) => ({ record, addresses: await this.addressesOf(record.name, true) })));
    const wanted = new Map<string, Wanted>();
    for (const { record, addresses } of resolved) {
      for (const address of addresses) {
        const url = this.urlFor(entry, address, String(record.port));
        if (!wanted.has(url)) wanted.set(url, { weight: record.weight === 0 ? 1 : record.weight, hostname: tlsName(record.name) });
      }
    }
    return wanted;
  }

  /**
   * Every address of a name: through the configured DNS server (A and AAAA), or
   * the system resolver (getaddrinfo, so /etc/hosts counts). With `tolerant`
   * (an SRV target), a name that does not exist just has no addresses.
   */
  private async addressesOf(name: string, tolerant: boolean): Promise<string[]> {
    const host = name.endsWith('.') ? name.slice(0, -1) : name;
    if (isIP(host) !== 0) return [host];
    try {
      if (this.config.resolver === undefined) {
        const found = await dns.lookup(host, { all: true });
        return [...new Set(found.map((entry) => entry.address))];
      }
      const results = await Promise.allSettled([this.resolver.resolve4(host), this.resolver.resolve6(host)]);
      const addresses: string[] = [];
      let failure: unknown;
      let failures = 0;
      for (const result of results) {
        if (result.status === 'fulfilled') {
          addresses.push(...result.value);
          continue;
        }
        failures++;
        // A family without records is fine; any other failure (SERVFAIL, timeout)
        // fails the round, so a half answer never drains the other family's servers.
        if (!NO_RECORDS.has(errorCode(result.reason))) throw result.reason;
        failure ??= result.reason;
      }
      if (failures === results.length) throw failure;
      return [...new Set(addresses)];
    } catch (err) {
      if (tolerant && NO_RECORDS.has(errorCode(err))) return [];
      throw err;
    }
  }

  private urlFor(entry: Entry, address: string, port: string): string {
    const host = isIP(address) === 6 ? `[${address}]` : address;
    return `${entry.protocol}//${host}${port === '' ? '' : `:${port}`}${entry.path}`;
  }
}

/** The name for SNI and the certificate check: no trailing dot. */
function tlsName(name: string): string {
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

function errorCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : '';
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = errorCode(err);
    return code !== '' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}
