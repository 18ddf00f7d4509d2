import type { UpstreamServer } from '../upstream-server.js';
import type { Balancer, BalanceRequest } from './balancer.js';
import { fnv1a, rendezvousScore } from './hashing.js';
import { RoundRobinBalancer } from './round-robin.js';

/**
 * Consistent hashing by rendezvous (highest random weight): the key goes to the
 * available server with the highest score for it. A server leaving moves only
 * its own keys; a fifth server joining four takes about a fifth of them.
 * `ip_hash` keys by client address, `hash` by a header, cookie or query value;
 * a request without the key goes round robin.
 */
export class ConsistentHashBalancer implements Balancer {
  private readonly fallback = new RoundRobinBalancer();

  constructor(private readonly keyOf: (request: BalanceRequest) => string | undefined) {}

  select(available: readonly UpstreamServer[], request: BalanceRequest): UpstreamServer {
    const key = this.keyOf(request);
    if (key === undefined || key === '') return this.fallback.select(available);
    const keyHash = fnv1a(key);
    let best = available[0] as UpstreamServer;
    let bestScore = -Infinity;
    for (const server of available) {
      const score = rendezvousScore(keyHash, server.seed, server.weight);
      if (score > bestScore) {
        best = server;
        bestScore = score;
      }
    }
    return best;
  }
}

export const byClientAddress = (request: BalanceRequest): string => request.clientAddress;
export const byHashKey = (request: BalanceRequest): string | undefined => request.hashKey;
