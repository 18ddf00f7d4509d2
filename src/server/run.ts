import cluster from 'node:cluster';
import type { SwitchyardConfig } from '../config/model.js';
import { createLogger, type Logger } from '../log/logger.js';
import { Switchyard, type BoundAddress } from './switchyard.js';

export interface RunOptions {
  /** Called once every listener is bound (in the primary, with workers). */
  readonly onListening?: (addresses: BoundAddress[]) => void;
}

/**
 * Runs a config until SIGTERM/SIGINT: in this process, or with `workers > 1` as a
 * node:cluster primary whose workers share the listening ports. Resolves with the
 * exit code.
 */
export async function runProxy(config: SwitchyardConfig, options: RunOptions = {}): Promise<number> {
  const log = createLogger();
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config, log, options);
  const proxy = await Switchyard.start(config, log);
  if (cluster.isWorker) process.send?.({ type: 'switchyard:listening', addresses: proxy.addresses });
  else options.onListening?.(proxy.addresses);
  return new Promise((resolve) => {
    let signals = 0;
    const stop = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals === 1) {
        log.info({ signal, drainMs: config.timeouts.drainMs }, 'shutting down: draining requests and tunnels');
        void proxy.shutdown().then(() => resolve(0));
      } else {
        log.warn({ signal }, 'second signal: closing everything now');
        void proxy.shutdown(0).then(() => resolve(0));
        proxy.registry.destroyAll('shutdown');
      }
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

function runPrimary(config: SwitchyardConfig, log: Logger, options: RunOptions): Promise<number> {
  // Workers must agree on the sticky secret, so the primary fixes it for all.
  const env = { SWITCHYARD_SECRET: config.upstream.stickySecret };
  let listening = 0;
  let stopping = false;
  const fork = (): void => {
    cluster.fork(env).on('message', (message: { type?: string; addresses?: BoundAddress[] }) => {
      if (message?.type !== 'switchyard:listening' || !message.addresses) return;
      listening++;
      if (listening === config.workers) options.onListening?.(message.addresses);
    });
  };
  for (let i = 0; i < config.workers; i++) fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) return;
    log.error({ worker: worker.process.pid, code, signal }, 'worker died; starting a new one');
    fork();
  });
  return new Promise((resolve) => {
    const stop = (signal: NodeJS.Signals): void => {
      stopping = true;
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill(signal);
      const check = (): void => {
        if (Object.keys(cluster.workers ?? {}).length === 0) resolve(0);
      };
      cluster.on('exit', check);
      check();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

export function describeStart(addresses: readonly BoundAddress[], config: SwitchyardConfig): string {
  const listen = addresses.map((address) => `${address.secure ? 'https' : 'http'}://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`).join(', ');
  const workers = config.workers > 1 ? ` (${config.workers} workers)` : '';
  return `switchyard listening on ${listen}${workers} -> ${config.upstream.servers.join(', ')}`;
}
