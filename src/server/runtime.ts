import { AddressList } from '../net/address-list.js';
import type { SwitchyardConfig, UpstreamConfig } from '../config/model.js';
import { Router } from '../router/router.js';
import type { Logger } from '../log/logger.js';
import { backgroundTasks } from '../upstream/background.js';
import { UpstreamPool } from '../upstream/upstream-pool.js';

/**
 * What one config version serves with: its router and upstream pools. A reload
 * builds a new Runtime and swaps it in; requests and tunnels that started on the
 * old one keep their route and pool. Pools whose definition did not change are
 * carried over, so keep-alive connections, counters and health survive a reload.
 */
export class Runtime {
  readonly router: Router;
  readonly pools: ReadonlyMap<string, UpstreamPool>;
  /** Peers whose X-Forwarded-For is believed; undefined: none. */
  readonly trustedProxies: AddressList | undefined;
  private readonly poolKeys = new Map<UpstreamPool, string>();

  constructor(readonly config: SwitchyardConfig, log: Logger, previous?: Runtime) {
    const reusable = new Map<string, UpstreamPool>();
    if (previous) for (const [pool, key] of previous.poolKeys) reusable.set(key, pool);
    const pools = new Map<string, UpstreamPool>();
    for (const [name, upstream] of config.upstreams) {
      const key = poolKey(upstream, config);
      let pool = reusable.get(key);
      if (!pool) {
        pool = new UpstreamPool(upstream, {
          connectMs: config.timeouts.connectMs,
          responseMs: config.timeouts.responseMs,
          bodyIdleMs: config.timeouts.tunnelIdleMs,
        });
        // Health checks and discovery run once per pool, so a reused pool keeps its own.
        pool.start(backgroundTasks(pool, log));
      }
      pool.drainPacing = config.drain;
      pools.set(name, pool);
      this.poolKeys.set(pool, key);
    }
    this.pools = pools;
    this.router = new Router(config, pools);
    this.trustedProxies = config.trustedProxies && new AddressList(config.trustedProxies);
  }

  /** Pools of this runtime that `next` no longer uses. */
  poolsDroppedBy(next: Runtime): UpstreamPool[] {
    const kept = new Set(next.pools.values());
    return [...this.poolKeys.keys()].filter((pool) => !kept.has(pool));
  }

  close(): Promise<unknown> {
    return Promise.all([...this.poolKeys.keys()].map((pool) => pool.close()));
  }
}

function poolKey(upstream: UpstreamConfig, config: SwitchyardConfig): string {
  const { connectMs, responseMs, tunnelIdleMs } = config.timeouts;
  return JSON.stringify([upstream, connectMs, responseMs, tunnelIdleMs]);
}
