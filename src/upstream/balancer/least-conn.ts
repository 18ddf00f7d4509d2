import type { UpstreamServer } from '../upstream-server.js';
import type { Balancer } from './balancer.js';

/**
 * Fewest open tunnels plus in-flight requests, relative to weight; ties go round
 * robin so that an idle pool still spreads new tunnels.
 */
export class LeastConnBalancer implements Balancer {
  private cursor = 0;

  select(available: readonly UpstreamServer[]): UpstreamServer {
    const count = available.length;
    const start = this.cursor++ % count;
    let best = available[start] as UpstreamServer;
    for (let step = 1; step < count; step++) {
      const server = available[(start + step) % count] as UpstreamServer;
      if (server.active * best.weight < best.active * server.weight) best = server;
    }
    return best;
  }
}
