import type { UpstreamServer } from '../upstream-server.js';
import type { Balancer } from './balancer.js';

/**
 * Power of two choices: two distinct servers at random (by weight), the less
 * loaded wins. Nearly as even as least_conn without every instance herding onto
 * the same idlest server.
 */
export class RandomTwoBalancer implements Balancer {
  constructor(private readonly random: () => number = Math.random) {}

  select(available: readonly UpstreamServer[]): UpstreamServer {
    if (available.length === 1) return available[0] as UpstreamServer;
    const first = this.pick(available, undefined);
    const second = this.pick(available, first);
    return second.active * first.weight < first.active * second.weight ? second : first;
  }

  private pick(available: readonly UpstreamServer[], except: UpstreamServer | undefined): UpstreamServer {
    let total = 0;
    for (const server of available) if (server !== except) total += server.weight;
    let point = this.random() * total;
    for (const server of available) {
      if (server === except) continue;
      point -= server.weight;
      if (point < 0) return server;
    }
    return available.find((server) => server !== except) as UpstreamServer;
  }
}
