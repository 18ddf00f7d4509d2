import type { UpstreamServer } from '../upstream-server.js';
import { isEligible, type Balancer } from './balancer.js';

/** Plain round robin over the eligible servers. */
export class RoundRobinBalancer implements Balancer {
  private cursor = 0;

  select(servers: readonly UpstreamServer[], now: number, tried: readonly UpstreamServer[] | undefined): UpstreamServer | undefined {
    const count = servers.length;
    for (let step = 0; step < count; step++) {
      const index = (this.cursor + step) % count;
      const server = servers[index] as UpstreamServer;
      if (isEligible(server, now, tried)) {
        this.cursor = index + 1;
        return server;
      }
    }
    return undefined;
  }
}
