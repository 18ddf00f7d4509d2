import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SwitchyardConfig } from '../config/model.js';
import type { Logger } from '../log/logger.js';
import { ProxyPipeline } from '../proxy/pipeline.js';
import type { ProxyContext } from '../proxy/proxy-context.js';
import { UpstreamPool } from '../upstream/upstream-pool.js';
import { ConnectionRegistry } from './connection-registry.js';
import { createListenerServer } from './listener.js';

export interface BoundAddress {
  readonly host: string;
  readonly port: number;
  readonly secure: boolean;
}

/** A running proxy: its listeners, upstream pool and connection registry. */
export class Switchyard {
  readonly registry = new ConnectionRegistry();
  readonly pool: UpstreamPool;
  private readonly servers: http.Server[] = [];
  private stopping: Promise<void> | undefined;

  private constructor(readonly config: SwitchyardConfig, private readonly log: Logger) {
    const { timeouts } = config;
    this.pool = new UpstreamPool(config.upstream, {
      connectMs: timeouts.connectMs,
      responseMs: timeouts.responseMs,
      bodyIdleMs: timeouts.tunnelIdleMs,
    });
  }

  static async start(config: SwitchyardConfig, log: Logger): Promise<Switchyard> {
    const proxy = new Switchyard(config, log);
    try {
      await proxy.listen();
    } catch (err) {
      await proxy.shutdown(0);
      throw err;
    }
    return proxy;
  }

  get addresses(): BoundAddress[] {
    return this.servers.map((server, index) => {
      const address = server.address() as AddressInfo;
      return { host: address.address, port: address.port, secure: Boolean(this.config.listeners[index]?.tls) };
    });
  }

  /**
   * Graceful stop: no new connections, idle keep-alive connections closed, in-flight
   * requests and tunnels get up to drainMs, then whatever is left is cut.
   */
  shutdown(drainMs = this.config.timeouts.drainMs): Promise<void> {
    this.stopping ??= this.stop(drainMs);
    return this.stopping;
  }

  private async stop(drainMs: number): Promise<void> {
    const { registry } = this;
    registry.draining = true;
    const closed = Promise.all(this.servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    for (const server of this.servers) server.closeIdleConnections();
    // Keep-alive connections that finish a response while draining are closed by
    // "Connection: close"; poll for ones that just went idle.
    const sweeper = setInterval(() => this.servers.forEach((server) => server.closeIdleConnections()), 250);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<void>((resolve) => { timer = setTimeout(resolve, drainMs); });
    await Promise.race([registry.whenIdle(), deadline]);
    clearTimeout(timer);
    clearInterval(sweeper);
    registry.destroyAll('shutdown');
    await closed;
    await this.pool.close();
  }

  private async listen(): Promise<void> {
    const context: ProxyContext = { pool: this.pool, timeouts: this.config.timeouts, registry: this.registry, log: this.log };
    for (const listener of this.config.listeners) {
      const pipeline = new ProxyPipeline(context, Boolean(listener.tls));
      const server = createListenerServer(listener, this.config, pipeline, this.registry, this.log);
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
