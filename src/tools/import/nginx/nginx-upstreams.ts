import type { ConfigDraft, DraftServer, DraftUpstream } from '../config-draft.js';
import type { ImportReport } from '../import-report.js';
import { sourceLabel } from '../source-location.js';
import { formatDuration, parseDurationMs, splitHostPort } from '../values.js';
import type { NginxDirective } from './nginx-parser.js';

/**
 * nginx `upstream` blocks, translated when a proxy_pass first names them
 * (the scheme comes from proxy_pass: `https://name` makes https servers).
 */
export class NginxUpstreams {
  private readonly blocks = new Map<string, NginxDirective>();
  private readonly translated = new Map<string, string | undefined>();

  constructor(
    private readonly draft: ConfigDraft,
    private readonly report: ImportReport,
    private readonly handled: Set<NginxDirective>,
  ) {}

  add(block: NginxDirective): void {
    const name = block.args[0];
    if (name === undefined) return;
    this.blocks.set(name, block);
    this.handled.add(block);
  }

  has(name: string): boolean {
    return this.blocks.has(name);
  }

  /** The Switchyard upstream name for `proxy_pass scheme://name`; undefined when it has no server Switchyard can use. */
  use(name: string, scheme: 'http' | 'https'): string | undefined {
    const key = `${scheme}://${name}`;
    if (this.translated.has(key)) return this.translated.get(key);
    const block = this.blocks.get(name)!;
    const upstream = this.translate(block, scheme);
    if (!upstream) {
      this.translated.set(key, undefined);
      return undefined;
    }
    const upstreamName = this.draft.addUpstream(scheme === 'https' && this.translated.has(`http://${name}`) ? `${name}_tls` : name, upstream);
    this.draft.comment(upstream, `${sourceLabel(block.location)} upstream ${name}`);
    this.translated.set(key, upstreamName);
    return upstreamName;
  }

  /** Upstreams no proxy_pass named: listed, not emitted. */
  reportUnused(): void {
    for (const [name, block] of this.blocks) {
      if (!this.translated.has(`http://${name}`) && !this.translated.has(`https://${name}`)) {
        this.report.skip(block.location, `upstream ${name}`, 'no proxy_pass uses it');
      }
    }
  }

  private translate(block: NginxDirective, scheme: 'http' | 'https'): DraftUpstream | undefined {
    const servers: DraftServer[] = [];
    const upstream: DraftUpstream = { servers };
    const failures: { maxFails?: number; failTimeout?: string }[] = [];
    for (const directive of block.block ?? []) {
      this.handled.add(directive);
      const text = `${directive.name} ${directive.args.join(' ')}`;
      switch (directive.name) {
        case 'server': {
          const server = this.server(directive, scheme, failures);
          if (server) servers.push(server);
          break;
        }
        case 'least_conn':
          upstream.policy = 'least_conn';
          break;
        case 'ip_hash':
          upstream.policy = 'ip_hash';
          break;
        case 'random':
          upstream.policy = 'random_two';
          if (directive.args[0] !== 'two') this.draft.comment(upstream, 'nginx "random" picked one server at random; random_two picks the less loaded of two');
          break;
        case 'hash':
          this.hash(directive, upstream);
          break;
        case 'keepalive':
        case 'keepalive_timeout':
        case 'keepalive_requests':
        case 'keepalive_time':
          this.report.advise(directive.location, text, 'redundant: Switchyard keeps idle upstream connections in a pool by itself');
          break;
        case 'zone':
          this.report.advise(directive.location, text, 'redundant: every Switchyard process shares one view of its upstreams');
          break;
        default:
          this.report.skip(directive.location, text, 'no Switchyard equivalent in an upstream');
      }
    }
    const first = failures[0];
    if (first?.maxFails !== undefined) upstream.health = { passive: { max_fails: first.maxFails } };
    if (first?.failTimeout !== undefined) upstream.fail_timeout = first.failTimeout;
    if (failures.some((entry) => entry.maxFails !== first?.maxFails || entry.failTimeout !== first?.failTimeout)) {
      this.report.skip(block.location, `upstream ${block.args[0] ?? ''}`, 'max_fails/fail_timeout differ per server; Switchyard sets them per upstream: the first server\'s were used');
    }
    if (servers.length === 0) {
      this.report.skip(block.location, `upstream ${block.args[0] ?? ''}`, 'no server Switchyard can use (unix sockets and backup servers are not translated): its locations answer 503');
      return undefined;
    }
    return upstream;
  }

  private server(directive: NginxDirective, scheme: 'http' | 'https', failures: { maxFails?: number; failTimeout?: string }[]): DraftServer | undefined {
    const [address, ...params] = directive.args;
    const text = `server ${directive.args.join(' ')}`;
    if (address === undefined) return undefined;
    if (address.startsWith('unix:')) {
      this.report.skip(directive.location, text, 'unix socket servers are not supported');
      return undefined;
    }
    const { host, port } = splitHostPort(address);
    const url = `${scheme}://${host}${port === undefined ? '' : `:${port}`}`;
    const entry: { url: string; weight?: number; max_conns?: number; drain?: boolean } = { url };
    const failure: { maxFails?: number; failTimeout?: string } = {};
    for (const param of params) {
      const [key, value = ''] = param.split('=', 2) as [string, string?];
      if (key === 'weight' && /^\d+$/.test(value)) entry.weight = Math.min(1000, Math.max(1, Number(value)));
      else if (key === 'max_conns' && /^\d+$/.test(value) && Number(value) > 0) entry.max_conns = Number(value);
      else if (key === 'max_fails' && /^\d+$/.test(value)) {
        if (Number(value) > 0) failure.maxFails = Number(value);
      } else if (key === 'fail_timeout') {
        const ms = parseDurationMs(value, 's');
        if (ms !== undefined) failure.failTimeout = formatDuration(ms);
      } else if (key === 'down') entry.drain = true;
      else if (key === 'backup') {
        this.report.skip(directive.location, text, 'backup servers are not supported: this one is left out (Switchyard spreads over every healthy server)');
        return undefined;
      } else this.report.skip(directive.location, text, `server parameter "${param}" has no Switchyard equivalent`);
    }
    failures.push(failure);
    return entry.weight === undefined && entry.max_conns === undefined && entry.drain === undefined ? url : entry;
  }

  private hash(directive: NginxDirective, upstream: DraftUpstream): void {
    const key = directive.args[0] ?? '';
    const text = `hash ${directive.args.join(' ')}`;
    const variable = /^\$(\w+)$/.exec(key)?.[1];
    if (variable === 'remote_addr' || variable === 'binary_remote_addr') upstream.policy = 'ip_hash';
    else if (variable?.startsWith('http_')) {
      upstream.policy = 'hash';
      upstream.hash_key = { header: variable.slice(5).replace(/_/g, '-') };
    } else if (variable?.startsWith('cookie_')) {
      upstream.policy = 'hash';
      upstream.hash_key = { cookie: variable.slice(7) };
    } else if (variable?.startsWith('arg_')) {
      upstream.policy = 'hash';
      upstream.hash_key = { query: variable.slice(4) };
    } else {
      this.report.skip(directive.location, text, 'Switchyard hashes on a header, cookie, query parameter or the client address only; this upstream balances round robin');
      return;
    }
    if (directive.args[1] !== 'consistent') this.draft.comment(upstream, `${sourceLabel(directive.location)} hash without "consistent": Switchyard's hashing is always consistent`);
  }
}
