import type { UpstreamServer } from '../upstream-server.js';

export type RequestKind = 'http' | 'upgrade';

/** What a policy may look at to choose. */
export interface BalanceRequest {
  readonly kind: RequestKind;
  readonly clientAddress: string;
  /** The key of the `hash` policy (a header, cookie or query value), when present. */
  readonly hashKey: string | undefined;
}

/**
 * A load-balancing policy (one per file, as Caddy's selection policies). It only
 * ever sees the servers that may take the request: healthy, not draining, below
 * their connection limit and not yet tried for it; `available` is never empty.
 */
export interface Balancer {
  select(available: readonly UpstreamServer[], request: BalanceRequest): UpstreamServer;
}
