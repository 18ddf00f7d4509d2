import cluster from 'node:cluster';
import { describeUpstreams, type SwitchyardConfig } from '../config/model.js';
import { createLogger, type Logger } from '../log/logger.js';
import { Switchyard, type BoundAddress } from './switchyard.js';

export interface RunOptions {
  /** Called once every listener is bound (in the primary, with workers). */
  readonly onListening?: (addresses: BoundAddress[]) => void;
}

type ControlMessage =
  | { type: 'switchyard:listening'; addresses: BoundAddress[] }
  | { type: 'switchyard:stop'; now: boolean };

/**
 * Runs a config until SIGTERM/SIGINT: in this process, or with `workers > 1` as a
 * node:cluster primary whose workers share the listening ports. The first stop
 * request drains; a second signal cuts everything. Resolves with the exit code.
 */
export async function runProxy(config: SwitchyardConfig, options: RunOptions = {}): Promise<number> {
  const log = createLogger();
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config, log, options);
  const proxy = await Switchyard.start(config, log);
  if (cluster.isWorker) sendToPrimary({ type: 'switchyard:listening', addresses: proxy.addresses });
  else options.onListening?.(proxy.addresses);
  return new Promise((resolve) => {
    let draining = false;
    const stop = (now: boolean, why: string): void => {
      if (!draining) {
        draining = true;
        log.info({ why, drainMs: now ? 0 : config.timeouts.drainMs }, 'shutting down: draining requests and tunnels');
        void proxy.shutdown(now ? 0 : undefined).then(() => resolve(0));
      } else if (now) {
        log.warn({ why }, 'closing everything now');
        proxy.registry.destroyAll('shutdown');
      }
    };
    // A terminal's Ctrl-C reaches the whole process group, and the primary asks
    // too; only a second OS signal to this process means "now".
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => stop(++signals > 1, signal);
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    process.on('message', (message: ControlMessage) => {
      if (message?.type === 'switchyard:stop') stop(message.now, 'primary');
    });
  });
}

function runPrimary(config: SwitchyardConfig, log: Logger, options: RunOptions): Promise<number> {
  // Workers must agree on the sticky secret, so the primary fixes it for all.
  const env = { SWITCHYARD_SECRET: [...config.upstreams.values()][0]?.stickySecret ?? '' };
  let listening = 0;
  let stopping = false;
  const fork = (): void => {
    cluster.fork(env).on('message', (message: ControlMessage) => {
      if (message?.type !== 'switchyard:listening') return;
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
    let signals = 0;
    const onSignal = (): void => {
      stopping = true;
      const message: ControlMessage = { type: 'switchyard:stop', now: ++signals > 1 };
      for (const worker of Object.values(cluster.workers ?? {})) {
        if (worker?.isConnected()) worker.send(message);
      }
    };
    const checkDone = (): void => {
      if (stopping && Object.keys(cluster.workers ?? {}).length === 0) resolve(0);
    };
    cluster.on('exit', checkDone);
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

function sendToPrimary(message: ControlMessage): void {
  process.send?.(message);
}

export function describeStart(addresses: readonly BoundAddress[], config: SwitchyardConfig): string {
  const listen = addresses.map((address) => `${address.secure ? 'https' : 'http'}://${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`).join(', ');
  const workers = config.workers > 1 ? ` (${config.workers} workers)` : '';
  return `switchyard listening on ${listen}${workers} -> ${describeUpstreams(config)}`;
}
