import type { UpstreamServer } from '../upstream-server.js';
import { isEligible, type Balancer } from './balancer.js';

/**
 * Smooth weighted round robin (nginx's): each pick adds every eligible server's
 * weight to its running score, takes the highest, and subtracts the total from
 * it. Weights 5,1,1 give a a a b a c a ... rather than a burst of five.
 * With equal weights it is plain round robin.
 */
export class RoundRobinBalancer implements Balancer {
  private readonly scores = new Map<UpstreamServer, number>();

  select(servers: readonly UpstreamServer[], now: number, tried: readonly UpstreamServer[] | undefined): UpstreamServer | undefined {
    let best: UpstreamServer | undefined;
    let bestScore = 0;
    let total = 0;
    for (const server of servers) {
      if (!isEligible(server, now, tried)) continue;
      const score = (this.scores.get(server) ?? 0) + server.weight;
      this.scores.set(server, score);
      total += server.weight;
      if (best === undefined || score > bestScore) {
        best = server;
        bestScore = score;
      }
    }
    if (best !== undefined) this.scores.set(best, bestScore - total);
    return best;
  }
}
