import type { UpstreamServer } from '../upstream-server.js';
import type { Balancer } from './balancer.js';

/**
 * Fill in order: the first server as written that may take the request. With
 * max_conns set, the next one only gets traffic once the first is full, which
 * keeps spare servers idle (HAProxy's `balance first`).
 */
export class FirstBalancer implements Balancer {
  select(available: readonly UpstreamServer[]): UpstreamServer {
    return available[0] as UpstreamServer;
  }
}
