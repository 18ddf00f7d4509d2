import cluster, { type Worker } from 'node:cluster';
import { randomUUID } from 'node:crypto';
import { AggregatorRegistry } from 'prom-client';
import type { SwitchyardConfig } from '../config/model.js';
import type { AdminBackend, ReloadOutcome } from './admin-backend.js';
import { mergeSnapshots, type Snapshot, type TunnelSnapshot } from './snapshot.js';

/** Asked of a worker by the primary's admin listener. */
export type AdminRequest =
  | { op: 'snapshot' }
  | { op: 'tunnels' }
  | { op: 'drain'; upstream: string; server: string; drain: boolean }
  | { op: 'close-tunnel'; id: string }
  | { op: 'drain-route'; route: string }
  | { op: 'reload' };

export interface AdminRequestMessage {
  type: 'switchyard:admin';
  id: string;
  request: AdminRequest;
}

export interface AdminReplyMessage {
  type: 'switchyard:admin-reply';
  id: string;
  result: unknown;
}

const WORKER_ANSWER_MS = 3_000;

/**
 * The admin API of a cluster primary: it holds no traffic, so it asks every
 * worker (over the cluster's IPC channel) and sums the answers; metrics are
 * combined by prom-client's cluster aggregation.
 */
export class ClusterAdminBackend implements AdminBackend {
  private readonly aggregator = new AggregatorRegistry();
  private readonly pending = new Map<string, { replies: unknown[]; expected: number; done: (replies: unknown[]) => void }>();

  constructor(private currentConfig: SwitchyardConfig, private readonly reloadConfig: (() => ReloadOutcome & { config?: SwitchyardConfig }) | undefined) {
    cluster.on('message', (_worker: Worker, message: AdminReplyMessage) => {
      if (message?.type !== 'switchyard:admin-reply') return;
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      waiting.replies.push(message.result);
      if (waiting.replies.length === waiting.expected) {
        this.pending.delete(message.id);
        waiting.done(waiting.replies);
      }
    });
  }

  async metrics(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.aggregator.contentType, body: await this.aggregator.clusterMetrics() };
  }

  async snapshot(): Promise<Snapshot> {
    return mergeSnapshots(await this.ask({ op: 'snapshot' }) as Snapshot[]);
  }

  async tunnels(): Promise<TunnelSnapshot[]> {
    return (await this.ask({ op: 'tunnels' }) as TunnelSnapshot[][]).flat();
  }

  config(): SwitchyardConfig {
    return this.currentConfig;
  }

  /** A reload started elsewhere (SIGHUP, --watch) loaded this config. */
  configReloaded(config: SwitchyardConfig): void {
    this.currentConfig = config;
  }

  async setDrain(upstream: string, server: string, drain: boolean): Promise<boolean> {
    return (await this.ask({ op: 'drain', upstream, server, drain })).some(Boolean);
  }

  async drainRoute(route: string): Promise<number> {
    return (await this.ask({ op: 'drain-route', route }) as number[]).reduce((sum, count) => sum + count, 0);
  }

  async closeTunnel(id: string): Promise<boolean> {
    return (await this.ask({ op: 'close-tunnel', id })).some(Boolean);
  }

  async reload(): Promise<ReloadOutcome> {
    // The primary validates first, so a bad file is refused once, with its errors.
    const checked = this.reloadConfig?.();
    if (!checked) return { ok: false, errors: ['this proxy was not started from a config file'] };
    if (!checked.ok || !checked.config) return checked;
    this.currentConfig = checked.config;
    const outcomes = await this.ask({ op: 'reload' }) as ReloadOutcome[];
    const errors = outcomes.flatMap((outcome) => outcome.errors ?? []);
    return errors.length === 0 ? { ok: true } : { ok: false, errors };
  }

  private ask(request: AdminRequest): Promise<unknown[]> {
    const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => Boolean(worker?.isConnected()));
    if (workers.length === 0) return Promise.resolve([]);
    const id = randomUUID();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        // A worker that died or hangs does not hold the API: answer with what came.
        const waiting = this.pending.get(id);
        this.pending.delete(id);
        resolve(waiting?.replies ?? []);
      }, WORKER_ANSWER_MS);
      this.pending.set(id, { replies: [], expected: workers.length, done: (replies) => { clearTimeout(timer); resolve(replies); } });
      for (const worker of workers) worker.send({ type: 'switchyard:admin', id, request } satisfies AdminRequestMessage);
    });
  }
}
