import type { TimeoutConfig } from '../config/model.js';
import type { Logger } from '../log/logger.js';
import type { ConnectionRegistry } from '../server/connection-registry.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';

/** What every phase of a request needs from the running proxy. */
export interface ProxyContext {
  readonly pool: UpstreamPool;
  readonly timeouts: TimeoutConfig;
  readonly registry: ConnectionRegistry;
  readonly log: Logger;
}
