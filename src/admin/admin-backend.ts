import type { SwitchyardConfig } from '../config/model.js';
import type { Switchyard } from '../server/switchyard.js';
import { describeTunnels, takeSnapshot, type Snapshot, type TunnelSnapshot } from './snapshot.js';

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly errors?: readonly string[];
}

/**
 * What the admin listener asks of the proxy: one process (LocalAdminBackend), or
 * a cluster primary that asks every worker and merges the answers.
 */
export interface AdminBackend {
  metrics(): Promise<{ contentType: string; body: string }>;
  snapshot(): Promise<Snapshot>;
  tunnels(): Promise<TunnelSnapshot[]>;
  config(): SwitchyardConfig;
  /** false: no such upstream or server. */
  setDrain(upstream: string, server: string, drain: boolean): Promise<boolean>;
  /** false: no open tunnel with that id. */
  closeTunnel(id: string): Promise<boolean>;
  /** Closes the route's open tunnels with 1012 at the drain pace; how many. */
  drainRoute(route: string): Promise<number>;
  reload(): Promise<ReloadOutcome>;
}

export class LocalAdminBackend implements AdminBackend {
  constructor(private readonly proxy: Switchyard, private readonly reloader: (() => ReloadOutcome) | undefined) {}

  async metrics(): Promise<{ contentType: string; body: string }> {
    const registry = this.proxy.observer.metrics.registry;
    return { contentType: registry.contentType, body: await registry.metrics() };
  }

  async snapshot(): Promise<Snapshot> {
    return takeSnapshot(this.proxy);
  }

  async tunnels(): Promise<TunnelSnapshot[]> {
    return describeTunnels(this.proxy);
  }

  config(): SwitchyardConfig {
    return this.proxy.config;
  }

  async setDrain(upstream: string, server: string, drain: boolean): Promise<boolean> {
    return drain ? this.proxy.drainServer(upstream, server) : this.proxy.undrainServer(upstream, server);
  }

  async closeTunnel(id: string): Promise<boolean> {
    return this.proxy.closeTunnel(id);
  }

  async drainRoute(route: string): Promise<number> {
    return this.proxy.drainRoute(route);
  }

  async reload(): Promise<ReloadOutcome> {
    if (!this.reloader) return { ok: false, errors: ['this proxy was not started from a config file'] };
    return this.reloader();
  }
}
