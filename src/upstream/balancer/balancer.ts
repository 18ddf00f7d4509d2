import type { UpstreamServer } from '../upstream-server.js';

/**
 * A load-balancing policy. It sees every server of the pool and picks among the
 * eligible ones (available and not already tried for this request).
 */
export interface Balancer {
  select(servers: readonly UpstreamServer[], now: number, tried: readonly UpstreamServer[] | undefined): UpstreamServer | undefined;
}

export function isEligible(server: UpstreamServer, now: number, tried: readonly UpstreamServer[] | undefined): boolean {
  return server.isAvailable(now) && (tried === undefined || !tried.includes(server));
}
