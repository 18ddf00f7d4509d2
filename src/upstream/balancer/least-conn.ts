import type { UpstreamServer } from '../upstream-server.js';
import { isEligible, type Balancer } from './balancer.js';

/**
 * Fewest open tunnels plus in-flight requests; ties go round robin so that an
 * idle pool still spreads new tunnels.
 */
export class LeastConnBalancer implements Balancer {
  private cursor = 0;

  select(servers: readonly UpstreamServer[], now: number, tried: readonly UpstreamServer[] | undefined): UpstreamServer | undefined {
    const count = servers.length;
    let best: UpstreamServer | undefined;
    let bestIndex = 0;
    for (let step = 0; step < count; step++) {
      const index = (this.cursor + step) % count;
      const server = servers[index] as UpstreamServer;
      if (!isEligible(server, now, tried)) continue;
      if (best === undefined || server.active < best.active) {
        best = server;
        bestIndex = index;
      }
    }
    if (best !== undefined) this.cursor = bestIndex + 1;
    return best;
  }
}
