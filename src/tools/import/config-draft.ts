import type { z } from 'zod';
import type { ConfigFileSchema } from '../../config/schema.js';

/** The config being written, in the file's own (input) shape, so tsc checks every field a translator sets. */
export type DraftConfig = z.input<typeof ConfigFileSchema>;
export type DraftListener = DraftConfig['listeners'][number];
export type DraftSite = DraftConfig['sites'][number];
export type DraftRoute = DraftSite['routes'][number];
export type DraftUpstream = NonNullable<DraftConfig['upstreams']>[string];
export type DraftServer = DraftUpstream['servers'][number];
export type DraftTimeouts = NonNullable<DraftConfig['timeouts']>;

/**
 * A Switchyard config under construction plus the comments that go above its
 * parts in the generated YAML (keyed by the object or array they describe).
 */
export class ConfigDraft {
  readonly listeners: DraftListener[] = [];
  readonly sites: DraftSite[] = [];
  readonly upstreams: Record<string, DraftUpstream> = {};
  readonly timeouts: DraftTimeouts = {};
  readonly rest: Omit<DraftConfig, 'listeners' | 'sites' | 'upstreams' | 'timeouts'> = {};
  private readonly comments = new WeakMap<object, string[]>();

  /** Adds a comment line above `part` in the output. */
  comment(part: object, text: string): void {
    const lines = this.comments.get(part) ?? [];
    if (!lines.includes(text)) lines.push(text);
    this.comments.set(part, lines);
  }

  commentsOf(part: object): readonly string[] {
    return this.comments.get(part) ?? [];
  }

  /** The listener on `address`, created on first use. */
  listener(address: string): DraftListener {
    let listener = this.listeners.find((candidate) => candidate.address === address);
    if (!listener) {
      listener = { address };
      this.listeners.push(listener);
    }
    return listener;
  }

  /** Lets `listener` serve `siteName` (listeners list their sites explicitly). */
  serve(listener: DraftListener, siteName: string): void {
    const sites = listener.sites ?? [];
    if (!sites.includes(siteName)) sites.push(siteName);
    listener.sites = sites;
  }

  /** A site name not used yet, derived from `base`. */
  siteName(base: string): string {
    return uniqueName(sanitizeName(base), (name) => this.sites.some((site) => site.name === name));
  }

  /** Adds an upstream under a name not used yet (derived from `base`); returns the name. */
  addUpstream(base: string, upstream: DraftUpstream): string {
    const name = uniqueName(sanitizeName(base), (candidate) => candidate in this.upstreams);
    this.upstreams[name] = upstream;
    return name;
  }

  /** The config in the file's shape, omitting empty sections. */
  toConfig(): DraftConfig {
    const config: DraftConfig = { listeners: this.listeners, sites: this.sites };
    if (Object.keys(this.upstreams).length > 0) config.upstreams = this.upstreams;
    if (Object.keys(this.timeouts).length > 0) config.timeouts = this.timeouts;
    return { ...config, ...this.rest };
  }
}

/** Upstream and site names use letters, digits, _ . - */
export function sanitizeName(text: string): string {
  const name = text.replace(/[^A-Za-z0-9_.-]+/g, '_').replace(/^_+|_+$/g, '');
  return name === '' ? 'default' : name;
}

function uniqueName(base: string, taken: (name: string) => boolean): string {
  if (!taken(base)) return base;
  for (let n = 2; ; n += 1) if (!taken(`${base}_${n}`)) return `${base}_${n}`;
}
