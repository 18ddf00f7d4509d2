import type { UpstreamConfig } from '../config/model.js';
import type { Balancer } from './balancer/balancer.js';
import { isEligible } from './balancer/balancer.js';
import { LeastConnBalancer } from './balancer/least-conn.js';
import { RoundRobinBalancer } from './balancer/round-robin.js';
import { CookieAffinity, ipHashIndex } from './sticky.js';
import { UpstreamServer, type ServerTimeouts } from './upstream-server.js';

export type RequestKind = 'http' | 'upgrade';

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
}

/**
 * A pool of servers with its policies: (weighted) round robin for HTTP requests,
 * least open connections for tunnels unless the config names one policy for
 * both, optional cookie or source-IP affinity on top.
 */
export class UpstreamPool {
  readonly servers: readonly UpstreamServer[];
  private readonly httpBalancer: Balancer;
  private readonly upgradeBalancer: Balancer;
  private readonly cookieAffinity: CookieAffinity | undefined;

  constructor(readonly config: UpstreamConfig, timeouts: ServerTimeouts) {
    this.servers = config.servers.map((server) => new UpstreamServer(server.url, timeouts, server.weight));
    this.httpBalancer = config.policy === 'least_conn' ? new LeastConnBalancer() : new RoundRobinBalancer();
    this.upgradeBalancer = config.policy === 'round_robin' ? new RoundRobinBalancer() : new LeastConnBalancer();
    this.cookieAffinity = config.sticky === 'cookie'
      ? new CookieAffinity(config.stickyCookieName, config.stickySecret, this.servers)
      : undefined;
  }

  select(input: SelectionInput, now: number): Selection | undefined {
    const { tried } = input;
    if (this.cookieAffinity) {
      const pinned = this.cookieAffinity.pinned(input.cookieHeader);
      if (pinned && isEligible(pinned, now, tried)) return { server: pinned, setCookie: undefined };
      const server = this.pickByPolicy(input.kind, now, tried);
      return server && { server, setCookie: this.cookieAffinity.setCookie(server, input.secure) };
    }
    if (this.config.sticky === 'ip') {
      const server = this.pickByAddress(input.clientAddress, now, tried);
      return server && { server, setCookie: undefined };
    }
    const server = this.pickByPolicy(input.kind, now, tried);
    return server && { server, setCookie: undefined };
  }

  markFailed(server: UpstreamServer, now: number): void {
    server.markFailed(now, this.config.failTimeoutMs);
  }

  close(): Promise<void[]> {
    return Promise.all(this.servers.map((server) => server.close()));
  }

  private pickByPolicy(kind: RequestKind, now: number, tried: readonly UpstreamServer[] | undefined): UpstreamServer | undefined {
    const balancer = kind === 'upgrade' ? this.upgradeBalancer : this.httpBalancer;
    // When every server is marked down, still try one not yet tried (an "at" of
    // +Infinity ignores passive health):
    // a stale "down" must not turn into a 503 when a server is back.
    return balancer.select(this.servers, now, tried) ?? balancer.select(this.servers, Number.POSITIVE_INFINITY, tried);
  }

  private pickByAddress(address: string, now: number, tried: readonly UpstreamServer[] | undefined): UpstreamServer | undefined {
    const count = this.servers.length;
    const home = ipHashIndex(address, count);
    for (const at of [now, Number.POSITIVE_INFINITY]) {
      for (let step = 0; step < count; step++) {
        const server = this.servers[(home + step) % count] as UpstreamServer;
        if (isEligible(server, at, tried)) return server;
      }
    }
    return undefined;
  }
}
