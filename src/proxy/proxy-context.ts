import type { Logger } from '../log/logger.js';
import type { Observer } from '../observe/observer.js';
import type { ConnectionRegistry } from '../server/connection-registry.js';
import type { Runtime } from '../server/runtime.js';
import type { ClientLimits } from '../server/client-limits.js';

/** What every phase of a request needs from the running proxy. */
export interface ProxyContext {
  /** The config version new requests use; a reload swaps it. */
  runtime: Runtime;
  readonly registry: ConnectionRegistry;
  readonly log: Logger;
  /** Access log, metrics and recent errors. */
  readonly observer: Observer;
  /** Connection counts and handshake rates per client address. */
  readonly limits: ClientLimits;
}
