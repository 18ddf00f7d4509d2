import cluster from 'node:cluster';
import { watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError, formatIssue, type ConfigIssue } from '../config/config-error.js';
import { describeUpstreams, type SwitchyardConfig } from '../config/model.js';
import { createLogger, type Logger } from '../log/logger.js';
import { Switchyard, type BoundAddress } from './switchyard.js';
import { AccessLog } from '../observe/access-log.js';
import { AdminServer } from '../admin/admin-server.js';
import { LocalAdminBackend, type ReloadOutcome } from '../admin/admin-backend.js';
import { ClusterAdminBackend } from '../admin/cluster-admin-backend.js';
import { answerAdminRequests } from '../admin/worker-admin.js';

export interface ReloadSource {
  /** Reads and validates the config again; throws ConfigError when it is unusable. */
  readonly load: () => { config: SwitchyardConfig; warnings: readonly ConfigIssue[] };
  readonly file: string;
  /** Reload when the file changes, not only on SIGHUP. */
  readonly watch: boolean;
}

export interface RunOptions {
  /** Called once every listener is bound (in the primary, with workers). */
  readonly onListening?: (addresses: BoundAddress[]) => void;
  /** Where a reload (SIGHUP, --watch) reads the new config from. */
  readonly reload?: ReloadSource;
}

type ControlMessage =
  | { type: 'switchyard:listening'; addresses: BoundAddress[] }
  | { type: 'switchyard:stop'; now: boolean }
  | { type: 'switchyard:reload' }
  | { type: 'switchyard:reopen-logs' };

/**
 * Runs a config until SIGTERM/SIGINT: in this process, or with `workers > 1` as a
 * node:cluster primary whose workers share the listening ports. The first stop
 * request drains; a second signal cuts everything. Resolves with the exit code.
 */
export async function runProxy(config: SwitchyardConfig, options: RunOptions = {}): Promise<number> {
  const log = createLogger();
  if (config.workers > 1 && cluster.isPrimary) return runPrimary(config, log, options);
  const accessLog = config.accessLog && new AccessLog(config.accessLog, log);
  const proxy = await Switchyard.start(config, log, accessLog ? { accessLog } : {});
  const reload = options.reload && ((): ReloadOutcome => reloadFrom(options.reload as ReloadSource, proxy, log));
  const admin = config.admin && !cluster.isWorker ? await AdminServer.start(config.admin, new LocalAdminBackend(proxy, reload), log) : undefined;
  if (admin) log.info({ admin: `http://${config.admin!.host.includes(':') ? `[${config.admin!.host}]` : config.admin!.host}:${admin.port}/` }, 'admin listener ready');
  if (cluster.isWorker && config.admin) answerAdminRequests(proxy, reload);
  if (cluster.isWorker) sendToPrimary({ type: 'switchyard:listening', addresses: proxy.addresses });
  else options.onListening?.(proxy.addresses);
  // logrotate moved the file: write to a new one under the same name.
  process.on('SIGUSR1', () => accessLog?.reopen());
  return new Promise((resolve) => {
    let draining = false;
    const stop = (now: boolean, why: string): void => {
      if (!draining) {
        draining = true;
        log.info({ why, drainMs: now ? 0 : config.timeouts.drainMs }, 'shutting down: draining requests and tunnels');
        void Promise.all([proxy.shutdown(now ? 0 : undefined), admin?.close()]).then(() => {
          accessLog?.close();
          resolve(0);
        });
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
      else if (message?.type === 'switchyard:reload') reload?.();
      else if (message?.type === 'switchyard:reopen-logs') accessLog?.reopen();
    });
    if (reload) {
      process.on('SIGHUP', () => reload());
      if (!cluster.isWorker) watchConfig(options.reload as ReloadSource, config, reload, log);
    }
  });
}

/** Loads the config again and swaps it in; a config that fails validation changes nothing. */
function reloadFrom(source: ReloadSource, proxy: Switchyard, log: Logger): ReloadOutcome {
  let config: SwitchyardConfig;
  try {
    const loaded = source.load();
    config = loaded.config;
    if (loaded.warnings.length > 0) log.warn({ file: source.file, warnings: loaded.warnings.map(formatIssue) }, 'the reloaded config has warnings');
  } catch (err) {
    const issues = err instanceof ConfigError ? err.issues.map(formatIssue) : [(err as Error).message];
    log.error({ file: source.file, issues }, 'reload rejected: the new config is invalid; the old one keeps serving');
    return { ok: false, errors: issues };
  }
  const restartOnly = restartOnlyChanges(proxy.config, config);
  proxy.reload(config);
  log.info({ file: source.file }, 'config reloaded');
  if (restartOnly.length > 0) log.warn({ file: source.file, settings: restartOnly }, `${restartOnly.join(', ')} changed: these apply after a restart`);
  return { ok: true };
}

/** Settings a reload cannot apply to running listeners and processes. */
function restartOnlyChanges(before: SwitchyardConfig, after: SwitchyardConfig): string[] {
  const changed: string[] = [];
  // Certificates, HSTS and redirects apply at once; addresses, TLS on/off and sites need a restart.
  const listeners = (config: SwitchyardConfig): string => JSON.stringify(config.listeners.map(({ host, port, tls, sites, http2, proxyProtocolFrom, maxConnections }) =>
    [host, port, Boolean(tls), sites ?? null, http2 ?? null, proxyProtocolFrom ?? null, maxConnections ?? null]));
  if (listeners(before) !== listeners(after)) changed.push('listeners');
  if (before.workers !== after.workers) changed.push('workers');
  if (JSON.stringify(before.accessLog) !== JSON.stringify(after.accessLog)) changed.push('access_log');
  if (JSON.stringify(before.admin) !== JSON.stringify(after.admin)) changed.push('admin');
  // Other limits apply to new connections and requests at once.
  if (before.limits.maxHeaderBytes !== after.limits.maxHeaderBytes) changed.push('limits.max_header_bytes');
  const { headerMs, keepAliveMs } = before.timeouts;
  if (headerMs !== after.timeouts.headerMs || keepAliveMs !== after.timeouts.keepAliveMs) changed.push('timeouts.header/keep_alive');
  return changed;
}

/** Calls `onChange` (debounced) when the file changes, also when an editor replaces it. */
function watchFiles(files: readonly string[], onChange: () => void, log: Logger, what: string): void {
  let timer: NodeJS.Timeout | undefined;
  const changed = (): void => {
    clearTimeout(timer);
    timer = setTimeout(onChange, 200);
  };
  // Watching each folder sees rename-and-replace saves (editors, certbot) that a
  // file watch misses.
  const namesByFolder = new Map<string, Set<string>>();
  for (const file of files) {
    const folder = dirname(resolve(file));
    (namesByFolder.get(folder) ?? namesByFolder.set(folder, new Set()).get(folder)!).add(basename(file));
  }
  for (const [folder, names] of namesByFolder) {
    try {
      watch(folder, (_event, changedName) => {
        if (changedName === null || names.has(changedName)) changed();
      }).unref();
    } catch (err) {
      log.error({ err, folder }, `cannot watch the ${what}; SIGHUP still reloads`);
    }
  }
}

/** What a running config watches: the file itself with --watch, and always its certificate files. */
function watchConfig(source: ReloadSource, config: SwitchyardConfig, onChange: () => void, log: Logger): void {
  if (source.watch) watchFiles([source.file], onChange, log, 'config file');
  const certificates = config.listeners.flatMap((listener) => listener.tls?.files ?? []);
  if (certificates.length > 0) watchFiles(certificates, onChange, log, 'certificate files');
}

async function runPrimary(config: SwitchyardConfig, log: Logger, options: RunOptions): Promise<number> {
  const source = options.reload;
  const checkReload = source && ((): ReloadOutcome & { config?: SwitchyardConfig } => {
    try {
      return { ok: true, config: source.load().config };
    } catch (err) {
      return { ok: false, errors: err instanceof ConfigError ? err.issues.map(formatIssue) : [(err as Error).message] };
    }
  });
  const adminBackend = config.admin ? new ClusterAdminBackend(config, checkReload) : undefined;
  const admin = config.admin && adminBackend ? await AdminServer.start(config.admin, adminBackend, log) : undefined;
  if (admin) log.info({ admin: `http://${config.admin!.host}:${admin.port}/` }, 'admin listener ready');
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
  process.on('SIGUSR1', () => {
    for (const worker of Object.values(cluster.workers ?? {})) if (worker?.isConnected()) worker.send({ type: 'switchyard:reopen-logs' } satisfies ControlMessage);
  });
  if (options.reload) {
    const reloadAll = (): void => {
      // The primary's own view (the admin API's /api/config) follows the file too.
      const checked = adminBackend && checkReload?.();
      if (checked?.ok && checked.config) adminBackend?.configReloaded(checked.config);
      for (const worker of Object.values(cluster.workers ?? {})) if (worker?.isConnected()) worker.send({ type: 'switchyard:reload' } satisfies ControlMessage);
    };
    process.on('SIGHUP', reloadAll);
    watchConfig(options.reload, config, reloadAll, log);
  }
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
      if (stopping && Object.keys(cluster.workers ?? {}).length === 0) void Promise.resolve(admin?.close()).then(() => resolve(0));
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
