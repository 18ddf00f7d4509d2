import type { IncomingHttpHeaders } from 'node:http';
import { DEFAULTS, UPSTREAM_DEFAULTS, type DrainConfig, type FailureKind, type UpstreamConfig } from '../config/model.js';
import type { RouteStats } from '../observe/route-stats.js';
import { closeTunnelsAtRate } from '../server/paced-close.js';
import type { Balancer, BalanceRequest, RequestKind } from './balancer/balancer.js';
import { byClientAddress, byHashKey, ConsistentHashBalancer } from './balancer/consistent-hash.js';
import { FirstBalancer } from './balancer/first.js';
import { LeastConnBalancer } from './balancer/least-conn.js';
import { RandomTwoBalancer } from './balancer/random-two.js';
import { RoundRobinBalancer } from './balancer/round-robin.js';
import { CookieAffinity, readCookie } from './sticky.js';
import { UpstreamServer, type ServerTimeouts } from './upstream-server.js';
import { WaitQueue, type Waiter } from './wait-queue.js';

export type { RequestKind };

export interface Selection {
  readonly server: UpstreamServer;
  /** Set-Cookie value to add to the response (cookie affinity re-pinning), if any. */
  readonly setCookie: string | undefined;
}

export interface SelectionInput {
  readonly kind: RequestKind;
  readonly clientAddress: string;
  readonly cookieHeader: string | undefined;
  readonly secure: boolean;
  readonly tried: readonly UpstreamServer[] | undefined;
  /** For policy hash: the request's headers and query ('' or '?a=b'). */
  readonly headers?: IncomingHttpHeaders;
  readonly query?: string;
}

/** Work a pool runs beside requests: active health checks, discovery. */
export interface Background {
  start(): void;
  stop(): void;
}

/** Every server that may take the request is at its connection limit. */
export const FULL = 'full';

/**
 * A pool of servers and how work is spread over them: the balancing policy
 * (weighted round robin for requests and least connections for tunnels unless
 * the config names one), cookie or source-IP affinity on top, passive health
 * (ejection after failures), connection limits with a bounded wait queue, and
 * draining. Policies only ever see the servers that may take the request.
 */
export class UpstreamPool {
  readonly servers: UpstreamServer[];
  /** Requests and handshakes sent to another server after a failure (metrics). */
  retries = 0;
  private readonly httpBalancer: Balancer;
  private readonly upgradeBalancer: Balancer;
  private readonly cookieAffinity: CookieAffinity | undefined;
  private readonly ipAffinity: Balancer | undefined;
  private readonly queue: WaitQueue;
  /** Reused for every selection (selection is synchronous), so picking allocates nothing. */
  private readonly scratch: UpstreamServer[] = [];
  /** Health checks and discovery: started by start(), stopped by close(). */
  private readonly background: Background[] = [];
  private readonly drainTimers = new Map<UpstreamServer, NodeJS.Timeout>();
  /** Stops the paced closing of a draining server's tunnels. */
  private readonly drainPacers = new Map<UpstreamServer, () => void>();
  /** How draining closes tunnels (the config's `drain`; set again on reload). */
  drainPacing: DrainConfig = DEFAULTS.drain;
  /** Servers discovery removed, waiting to be idle before they go. */
  private readonly removals = new Set<NodeJS.Timeout>();

  constructor(readonly config: UpstreamConfig, private readonly timeouts: ServerTimeouts) {
    this.servers = config.servers.map((server) => {
      const created = this.createServer(server.url, server.weight, server.maxConns);
      created.draining = server.drain ?? false;
      return created;
    });
    this.httpBalancer = balancerFor(config, config.policy ?? 'round_robin');
    this.upgradeBalancer = balancerFor(config, config.policy ?? 'least_conn');
    this.cookieAffinity = config.sticky === 'cookie'
      ? new CookieAffinity(config.stickyCookieName, config.stickySecret, this.servers)
      : undefined;
    this.ipAffinity = config.sticky === 'ip' ? new ConsistentHashBalancer(byClientAddress) : undefined;
    this.queue = new WaitQueue(config.queueSize ?? 0, config.queueTimeoutMs ?? UPSTREAM_DEFAULTS.queueTimeoutMs);
  }

  createServer(url: string, weight = 1, maxConns = 0, hostname?: string): UpstreamServer {
    return new UpstreamServer(url, this.timeouts, {
      weight, maxConns, ...(this.config.tls ? { tls: this.config.tls } : {}), ...(hostname !== undefined ? { hostname } : {}),
      http2: this.config.http2 ?? false,
    });
  }

  /**
   * The server for a request, undefined when none can take it, or FULL when the
   * servers that could are all at their connection limit (the caller may wait).
   */
  select(input: SelectionInput, now: number): Selection | typeof FULL | undefined {
    let available = this.collect(input.tried, now, true);
    if (available.length === 0) {
      // Healthy servers that are only full: wait for one rather than spill onto
      // servers that just failed.
      if (this.collect(input.tried, now, false).length > 0) return FULL;
      // Ejections are guesses from past failures: with nothing else left, an
      // ejected server is still worth a try (never a down or draining one).
      available = this.collect(input.tried, Number.POSITIVE_INFINITY, true);
      if (available.length === 0) return this.collect(input.tried, Number.POSITIVE_INFINITY, false).length > 0 ? FULL : undefined;
    }
    const request: BalanceRequest = { kind: input.kind, clientAddress: input.clientAddress, hashKey: this.hashKey(input) };
    if (this.cookieAffinity) {
      const pinned = this.cookieAffinity.pinned(input.cookieHeader);
      if (pinned && available.includes(pinned)) return { server: pinned, setCookie: undefined };
      const server = this.balancerFor(input.kind).select(available, request);
      return { server, setCookie: this.cookieAffinity.setCookie(server, input.secure) };
    }
    const balancer = this.ipAffinity ?? this.balancerFor(input.kind);
    return { server: balancer.select(available, request), setCookie: undefined };
  }

  /** Counts a request or tunnel against the server (and the route's gauge) until release(). */
  acquire(server: UpstreamServer, stats?: RouteStats): void {
    server.active++;
    stats?.serverAcquired(this, server);
  }

  release(server: UpstreamServer, stats?: RouteStats): void {
    server.active--;
    stats?.serverReleased(this, server);
    if (this.queue.length > 0 && server.hasCapacity()) this.queue.wakeOne();
  }

  /** false when the queue is full or off: answer 503 at once. */
  wait(waiter: Waiter): boolean {
    return this.queue.enqueue(waiter);
  }

  stopWaiting(waiter: Waiter): void {
    this.queue.remove(waiter);
  }

  /** Passive health: a failure of a kind the config counts may eject the server. */
  recordFailure(server: UpstreamServer, kind: FailureKind, now: number): void {
    const passive = this.config.passiveHealth ?? UPSTREAM_DEFAULTS.passiveHealth;
    // Requests that were in flight when the server was ejected fail too; they are
    // the same outage, not a repeat that should double the ejection.
    if (!passive.failOn.includes(kind) || server.ejectedUntil > now) return;
    server.consecutiveFailures++;
    if (server.consecutiveFailures >= passive.maxFails) server.eject(now, this.config.failTimeoutMs, passive.maxEjectMs);
  }

  recordSuccess(server: UpstreamServer): void {
    if (server.consecutiveFailures !== 0 || server.ejections !== 0) server.succeeded();
  }

  /** Starts the pool's background work (active health checks, discovery). */
  start(tasks: readonly Background[]): void {
    for (const task of tasks) {
      this.background.push(task);
      task.start();
    }
  }

  /** A server joins (discovery): eligible at once, known to cookie affinity. */
  addServer(server: UpstreamServer): void {
    this.servers.push(server);
    this.cookieAffinity?.add(server);
    this.wakeFor(server);
  }

  /**
   * A server leaves (discovery): it drains, and is dropped from the pool once its
   * last request or tunnel is gone or the drain deadline cut them.
   */
  removeServer(server: UpstreamServer): void {
    this.drain(server);
    const check = setInterval(() => {
      if (server.active > 0) return;
      clearInterval(check);
      this.removals.delete(check);
      const index = this.servers.indexOf(server);
      if (index >= 0) this.servers.splice(index, 1);
      this.cookieAffinity?.remove(server);
      this.undrainTimer(server);
      void server.close();
    }, 1_000);
    check.unref();
    this.removals.add(check);
  }

  /**
   * No new requests or tunnels for this server; its open tunnels are closed
   * with 1012 (Service Restart) close frames at the drain pace, and whatever is
   * still open at the pool's drain deadline is cut.
   */
  drain(server: UpstreamServer, deadlineMs = this.config.drainTimeoutMs ?? UPSTREAM_DEFAULTS.drainTimeoutMs): void {
    server.draining = true;
    this.undrainTimer(server);
    const deadline = performance.now() + deadlineMs;
    const stopPacing = closeTunnelsAtRate([...server.tunnels], this.drainPacing, 'drain', deadline);
    const timer = setTimeout(() => {
      this.drainTimers.delete(server);
      this.drainPacers.get(server)?.();
      this.drainPacers.delete(server);
      for (const tunnel of [...server.tunnels]) tunnel.destroy('drain');
    }, deadlineMs);
    timer.unref();
    this.drainTimers.set(server, timer);
    this.drainPacers.set(server, stopPacing);
  }

  undrain(server: UpstreamServer): void {
    server.draining = false;
    this.undrainTimer(server);
    this.wakeFor(server);
  }

  /** Active health checks took the server down: its tunnels go too if the pool says so. */
  serverWentDown(server: UpstreamServer): void {
    if (!this.config.closeTunnelsOnDown) return;
    for (const tunnel of [...server.tunnels]) tunnel.destroy('down');
  }

  close(): Promise<void[]> {
    for (const task of this.background.splice(0)) task.stop();
    for (const timer of this.drainTimers.values()) clearTimeout(timer);
    this.drainTimers.clear();
    for (const stop of this.drainPacers.values()) stop();
    this.drainPacers.clear();
    for (const timer of this.removals) clearInterval(timer);
    this.removals.clear();
    this.queue.clear();
    return Promise.all(this.servers.map((server) => server.close()));
  }

  /** Capacity appeared on a server (it joined or came back): wake as many waiters as it can take. */
  private wakeFor(server: UpstreamServer): void {
    let room = server.maxConns === 0 ? this.queue.length : server.maxConns - server.active;
    while (room-- > 0 && this.queue.length > 0) this.queue.wakeOne();
  }

  private undrainTimer(server: UpstreamServer): void {
    const timer = this.drainTimers.get(server);
    if (timer) clearTimeout(timer);
    this.drainTimers.delete(server);
    // Tunnels not yet asked to close stay open.
    this.drainPacers.get(server)?.();
    this.drainPacers.delete(server);
  }

  private balancerFor(kind: RequestKind): Balancer {
    return kind === 'upgrade' ? this.upgradeBalancer : this.httpBalancer;
  }

  /** Servers that may take the request, in config order, into the scratch array. */
  private collect(tried: readonly UpstreamServer[] | undefined, now: number, withCapacity: boolean): UpstreamServer[] {
    const out = this.scratch;
    out.length = 0;
    for (const server of this.servers) {
      if (!server.isAvailable(now) || (withCapacity && !server.hasCapacity())) continue;
      if (tried !== undefined && tried.includes(server)) continue;
      out.push(server);
    }
    return out;
  }

  private hashKey(input: SelectionInput): string | undefined {
    const key = this.config.hashKey;
    if (!key) return undefined;
    if ('header' in key) {
      const value = input.headers?.[key.header.toLowerCase()];
      return Array.isArray(value) ? value.join(', ') : value;
    }
    if ('cookie' in key) return input.cookieHeader === undefined ? undefined : readCookie(input.cookieHeader, key.cookie);
    return input.query ? new URLSearchParams(input.query).get(key.query) ?? undefined : undefined;
  }
}

function balancerFor(config: UpstreamConfig, policy: NonNullable<UpstreamConfig['policy']>): Balancer {
  switch (policy) {
    case 'round_robin':
      return new RoundRobinBalancer();
    case 'least_conn':
      return new LeastConnBalancer();
    case 'random_two':
      return new RandomTwoBalancer();
    case 'ip_hash':
      return new ConsistentHashBalancer(byClientAddress);
    case 'hash':
      return new ConsistentHashBalancer(config.hashKey ? byHashKey : byClientAddress);
    case 'first':
      return new FirstBalancer();
  }
}
