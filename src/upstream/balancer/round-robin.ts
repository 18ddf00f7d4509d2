import type { UpstreamServer } from '../upstream-server.js';
import type { Balancer } from './balancer.js';

/**
 * Smooth weighted round robin (nginx's): each pick adds every available server's
 * weight to its running score, takes the highest, and subtracts the total from
 * it. Weights 5,1,1 give a a b a c a a rather than a burst of five; equal
 * weights give plain round robin.
 */
export class RoundRobinBalancer implements Balancer {
  private readonly scores = new Map<UpstreamServer, number>();

  select(available: readonly UpstreamServer[]): UpstreamServer {
    let best = available[0] as UpstreamServer;
    let bestScore = -Infinity;
    let total = 0;
    for (const server of available) {
      const score = (this.scores.get(server) ?? 0) + server.weight;
      this.scores.set(server, score);
      total += server.weight;
      if (score > bestScore) {
        best = server;
        bestScore = score;
      }
    }
    this.scores.set(best, bestScore - total);
    return best;
  }
}
