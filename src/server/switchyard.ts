import type { AddressInfo } from 'node:net';
import type { SwitchyardConfig } from '../config/model.js';
import type { Logger } from '../log/logger.js';
import { ProxyPipeline } from '../proxy/pipeline.js';
import type { ProxyContext } from '../proxy/proxy-context.js';
import { ConnectionRegistry } from './connection-registry.js';
import { closeIdleConnections, createListenerServer, updateCertificates, type ListenerServer } from './listener.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import { Runtime } from './runtime.js';
import { closeTunnelsAtRate } from './paced-close.js';
import { ClientLimits } from './client-limits.js';
import { closeWaitingForProxyHeader } from './proxy-protocol-listener.js';
import { Observer } from '../observe/observer.js';
import type { AccessLog } from '../observe/access-log.js';

export interface SwitchyardOptions {
  /** Where request and tunnel lines go; none: no access log (embedding, tests). */
  readonly accessLog?: AccessLog;
}

export interface BoundAddress {
  readonly host: string;
  readonly port: number;
  readonly secure: boolean;
}

/** A running proxy: its listeners, its current runtime (routes, pools) and its connection registry. */
export class Switchyard {
  readonly registry = new ConnectionRegistry();
  private readonly context: ProxyContext;
  private readonly servers: ListenerServer[] = [];
  /** Pools a reload dropped that still close once unused. */
  private readonly closing = new Set<Promise<void>>();
  private stopping: Promise<void> | undefined;

  private constructor(config: SwitchyardConfig, private readonly log: Logger, options: SwitchyardOptions) {
    const observer = new Observer(this.registry, () => this.context.runtime.pools.values(), options.accessLog, log);
    this.context = { runtime: new Runtime(config, log), registry: this.registry, log, observer, limits: new ClientLimits() };
  }

  static async start(config: SwitchyardConfig, log: Logger, options: SwitchyardOptions = {}): Promise<Switchyard> {
    const proxy = new Switchyard(config, log, options);
    try {
      await proxy.listen();
    } catch (err) {
      await proxy.shutdown(0);
      throw err;
    }
    return proxy;
  }

  get runtime(): Runtime {
    return this.context.runtime;
  }

  get observer(): Observer {
    return this.context.observer;
  }

  get config(): SwitchyardConfig {
    return this.context.runtime.config;
  }

  get addresses(): BoundAddress[] {
    return this.servers.map((server, index) => {
      const address = server.address() as AddressInfo;
      return { host: address.address, port: address.port, secure: Boolean(this.config.listeners[index]?.tls) };
    });
  }

  /**
   * Swaps in a new config for new requests; open connections, requests and
   * tunnels keep the routes and pools they started with. Listeners, timeouts of
   * the listening sockets and workers come from the first config (a restart
   * changes those); unchanged upstream pools carry over.
   */
  reload(config: SwitchyardConfig): void {
    // Certificates of a listener at the same address are swapped in place.
    this.servers.forEach((server, index) => {
      const before = this.config.listeners[index];
      const after = config.listeners[index];
      if (before && after?.tls && before.host === after.host && before.port === after.port && updateCertificates(server, after.tls)) {
        this.log.info({ listener: `${after.host}:${after.port}` }, 'TLS certificates reloaded');
      }
    });
    const previous = this.context.runtime;
    const next = new Runtime(config, this.log, previous);
    this.context.runtime = next;
    const dropped = previous.poolsDroppedBy(next);
    if (dropped.length === 0) return;
    // Dropped pools close once nothing uses them any more.
    const closing = this.closeWhenUnused(dropped);
    this.closing.add(closing);
    void closing.finally(() => this.closing.delete(closing));
  }

  /**
   * Drains one server of an upstream (for deploys): no new requests or tunnels;
   * open tunnels stay until they end or the upstream's drain_timeout (or
   * `deadlineMs`). Returns false when no such server exists.
   */
  drainServer(upstream: string, url: string, deadlineMs?: number): boolean {
    const pool = this.runtime.pools.get(upstream);
    const server = pool?.servers.find((candidate) => candidate.url === url);
    if (!pool || !server) return false;
    pool.drain(server, deadlineMs);
    this.log.info({ upstream, server: url }, 'server draining');
    return true;
  }

  /**
   * Recycles a route's open tunnels: each gets 1012 (Service Restart) close
   * frames, at the drain pace, so its clients reconnect, and then follow the
   * current config (say, a new upstream after a reload). New tunnels are still
   * taken. Returns how many tunnels were asked to close.
   */
  drainRoute(route: string): number {
    const tunnels = [...this.registry.tunnels].filter((tunnel) => (tunnel as { stats?: { route?: string } }).stats?.route === route);
    const drainMs = this.config.timeouts.drainMs;
    const deadline = performance.now() + drainMs;
    const stopPacing = closeTunnelsAtRate(tunnels, this.config.drain, 'drain', deadline);
    // What is still open at the deadline (a peer that never answers) is cut.
    setTimeout(() => {
      stopPacing();
      for (const tunnel of tunnels) if (this.registry.tunnels.has(tunnel)) tunnel.destroy('drain');
    }, drainMs).unref();
    this.log.info({ route, tunnels: tunnels.length }, 'route draining');
    return tunnels.length;
  }

  /** Closes one open tunnel by its id ("pid:n", as the admin API lists it). */
  closeTunnel(id: string): boolean {
    const [pid, number] = id.split(':');
    if (pid !== String(process.pid)) return false;
    for (const tunnel of this.registry.tunnels) {
      if (String((tunnel as { id?: number }).id) === number) {
        tunnel.destroy('admin');
        this.log.info({ tunnel: id }, 'tunnel closed by the admin API');
        return true;
      }
    }
    return false;
  }

  undrainServer(upstream: string, url: string): boolean {
    const pool = this.runtime.pools.get(upstream);
    const server = pool?.servers.find((candidate) => candidate.url === url);
    if (!pool || !server) return false;
    pool.undrain(server);
    this.log.info({ upstream, server: url }, 'server back from draining');
    return true;
  }

  /**
   * Graceful stop: no new connections, idle keep-alive connections closed, in-flight
   * requests and tunnels get up to drainMs, then whatever is left is cut.
   */
  shutdown(drainMs = this.config.timeouts.drainMs): Promise<void> {
    this.stopping ??= this.stop(drainMs);
    return this.stopping;
  }

  private async closeWhenUnused(pools: readonly UpstreamPool[]): Promise<void> {
    for (const pool of pools) {
      while (pool.servers.some((server) => server.active > 0) && !this.stopping) await new Promise((resolve) => setTimeout(resolve, 1_000).unref());
      await pool.close();
    }
  }

  private async stop(drainMs: number): Promise<void> {
    const { registry } = this;
    registry.draining = true;
    const closed = Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    for (const server of this.servers) {
      closeIdleConnections(server);
      closeWaitingForProxyHeader(server);
    }
    registry.closeSessions();
    // Keep-alive connections that finish a response while draining are closed by
    // "Connection: close"; poll for ones that just went idle.
    const sweeper = setInterval(() => this.servers.forEach(closeIdleConnections), 250);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, drainMs); });
    // Tunnels are told to go (1001 close frames), paced so their clients do not reconnect at once.
    const ends = performance.now() + drainMs;
    const stopPacing = closeTunnelsAtRate([...registry.tunnels], this.config.drain, 'shutdown', ends);
    await Promise.race([registry.whenIdle(), deadline]);
    stopPacing();
    // An HTTP/2 response is complete when its session wrote it, not when the
    // exchange ended: let the closing sessions flush before anything is cut.
    await Promise.race([registry.whenSessionsClosed(), deadline]);
    clearTimeout(timer);
    clearInterval(sweeper);
    registry.destroyAll('shutdown');
    await closed;
    this.context.limits.close();
    await Promise.all([this.context.runtime.close(), ...this.closing]);
  }

  private async listen(): Promise<void> {
    const config = this.config;
    for (const [index, listener] of config.listeners.entries()) {
      const pipeline = new ProxyPipeline(this.context, Boolean(listener.tls), index);
      const server = createListenerServer(listener, config, pipeline, this.registry, this.log);
      this.servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: listener.host, port: listener.port, exclusive: false }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      server.on('error', (err) => this.log.error({ err }, 'listener error'));
    }
  }
}
