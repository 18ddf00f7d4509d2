import type { RouteConfig } from '../config/model.js';
import { compileHeaderActions, type CompiledHeaderActions } from '../proxy/header-actions.js';
import { ReverseRewriter } from '../proxy/reverse-rewrite.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { UpstreamServer } from '../upstream/upstream-server.js';
import { RouteMatcher, type RequestFacts } from './route-matcher.js';
import { Template } from './template.js';
import { AddressList } from '../net/address-list.js';
import type { RouteStats } from '../observe/route-stats.js';

export type Captures = readonly (string | undefined)[];

/** A route ready to serve: matcher, upstream pool, templates and header actions built once. */
export class CompiledRoute {
  readonly matcher: RouteMatcher;
  readonly pool: UpstreamPool | undefined;
  readonly rewrite: Template | undefined;
  readonly redirectLocation: Template | undefined;
  readonly requestHeaders: CompiledHeaderActions | undefined;
  readonly responseHeaders: CompiledHeaderActions | undefined;
  private readonly reverseRewriters = new Map<UpstreamServer, ReverseRewriter | null>();
  /** The route as logs and metrics name it: its name, else its place in the config. */
  readonly name: string;
  private readonly allow: AddressList | undefined;
  private readonly deny: AddressList | undefined;
  /** Counters for metrics and the admin API; a reload hands the same object to the route of the same name. */
  stats: RouteStats | undefined;

  constructor(readonly config: RouteConfig, pools: ReadonlyMap<string, UpstreamPool>, readonly site = 'default') {
    this.name = config.name ?? config.id;
    this.matcher = new RouteMatcher(config.match);
    this.allow = config.allow && new AddressList(config.allow);
    this.deny = config.deny && new AddressList(config.deny);
    const action = config.action;
    if (action.kind === 'proxy') {
      const pool = pools.get(action.upstream);
      if (!pool) throw new Error(`${config.id}: no upstream named ${action.upstream}`);
      this.pool = pool;
      this.rewrite = action.rewrite === undefined ? undefined : new Template(action.rewrite);
      this.requestHeaders = compileHeaderActions(action.requestHeaders);
      this.responseHeaders = compileHeaderActions(action.responseHeaders);
    } else if (action.kind === 'redirect') {
      this.redirectLocation = new Template(action.location);
    }
  }

  /** The route's allow and deny lists (deny wins). */
  admitsClient(address: string): boolean {
    if (this.deny?.has(address)) return false;
    return this.allow === undefined || this.allow.has(address);
  }

  get label(): string {
    return this.config.name === undefined ? this.config.id : `${this.config.id} (${this.config.name})`;
  }

  /**
   * The path and query to request upstream: rewritten by the template or with the
   * matched prefix stripped, then under the server URL's own path.
   */
  upstreamTarget(facts: RequestFacts, captures: Captures, server: UpstreamServer, host: string, scheme: string): string {
    const action = this.config.action;
    let target: string;
    if (this.rewrite) {
      target = this.rewrite.expand({ captures, path: facts.path, query: facts.query, host, scheme });
      if (!target.includes('?')) target += facts.query;
    } else if (action.kind === 'proxy' && action.stripPrefix && this.config.match.prefix !== undefined) {
      const rest = facts.path.slice(this.config.match.prefix.replace(/\/$/, '').length);
      target = (rest.charCodeAt(0) === 0x2f ? rest : `/${rest}`) + facts.query;
    } else {
      target = facts.path + facts.query;
    }
    if (target.charCodeAt(0) !== 0x2f) target = `/${target}`;
    return server.basePath === '' ? target : server.basePath + target;
  }

  /**
   * The ProxyPassReverse mapping for responses from this server, or null when the
   * route keeps path and host as they are (or turned it off).
   */
  reverseRewriter(server: UpstreamServer): ReverseRewriter | null {
    let rewriter = this.reverseRewriters.get(server);
    if (rewriter !== undefined) return rewriter;
    rewriter = null;
    const action = this.config.action;
    if (action.kind === 'proxy') {
      const prefix = action.stripPrefix ? this.config.match.prefix : undefined;
      const changesPath = prefix !== undefined || action.rewrite !== undefined || server.basePath !== '';
      const enabled = action.reverseRewrite ?? (changesPath || !action.preserveHost);
      if (enabled) {
        const clientPrefix = prefix === undefined ? '/' : withSlash(prefix);
        const upstreamPrefix = prefix === undefined && server.basePath === '' ? '/' : withSlash(server.basePath || '/');
        rewriter = new ReverseRewriter({
          clientPrefix: action.rewrite === undefined ? clientPrefix : '/',
          upstreamPrefix: action.rewrite === undefined ? upstreamPrefix : '/',
          upstreamAuthorities: [server.authority],
          upstreamSecure: server.secure,
        });
      }
    }
    this.reverseRewriters.set(server, rewriter);
    return rewriter;
  }
}

function withSlash(path: string): string {
  return path.endsWith('/') ? path : `${path}/`;
}
