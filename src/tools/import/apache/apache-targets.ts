import type { ConfigDraft, DraftServer, DraftUpstream } from '../config-draft.js';
import type { ImportReport } from '../import-report.js';
import { sourceLabel } from '../source-location.js';
import { formatDuration, parseDurationMs } from '../values.js';
import type { BalancerDef } from './apache-model.js';
import type { ApacheDirective } from './apache-parser.js';

/**
 * Backend URLs of ProxyPass, ProxyPassMatch and RewriteRule [P] → what a route's
 * `to` names: the URL itself, or an upstream (a balancer:// with its members,
 * or a URL that needs TLS settings from SSLProxy* directives).
 */

export interface BackendUrl {
  /** http, https, ws, wss or balancer. */
  readonly scheme: string;
  /** host:port, or the balancer's name. */
  readonly authority: string;
  /** The path, '' when none. */
  readonly path: string;
}

/** SSLProxy* settings of a server, for its https and wss backends. */
export interface BackendTls {
  /** SSLProxyVerify none, SSLProxyCheckPeerName off, ...: the directives that turned checks off. */
  readonly insecure: readonly ApacheDirective[];
  readonly ca: { readonly path: string; readonly directive: ApacheDirective } | undefined;
  readonly client: { readonly path: string; readonly directive: ApacheDirective } | undefined;
  /** SSLProxyVerify was written (so Apache's default of not verifying does not apply). */
  readonly verifySet: boolean;
}

export interface Target {
  /** What `to:` says: a URL or an upstream name. */
  readonly to: string;
  /** Compares backends: the same servers give the same identity (ws:// and http:// alike). */
  readonly identity: string;
  /** ws:// or wss:// (or a balancer of such members). */
  readonly websocketScheme: boolean;
  /** host:port of each server. */
  readonly authorities: readonly string[];
  readonly upstreamName: string | undefined;
}

const SCHEME_PROBLEMS: Readonly<Record<string, string>> = {
  ajp: 'AJP is not spoken by Switchyard: give the backend an HTTP connector (Tomcat: <Connector port="8080" protocol="HTTP/1.1">) and use http://',
  fcgi: 'FastCGI is not spoken by Switchyard: put an HTTP server in front of the FastCGI backend',
  scgi: 'SCGI is not spoken by Switchyard',
  uwsgi: 'uwsgi is not spoken by Switchyard: use uWSGI\'s --http socket',
  h2: 'HTTP/2 backends: use https:// with upstream http2: true',
  h2c: 'h2c backends: use http:// with upstream http2: true',
  ftp: 'FTP is not proxied by Switchyard',
  unix: 'Unix-socket backends are not supported: listen on a TCP port',
  connect: 'CONNECT tunnels are not offered',
};

export function parseBackendUrl(url: string): BackendUrl | string {
  if (/^unix:/i.test(url)) return SCHEME_PROBLEMS.unix!;
  const parsed = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)([^?#]*)(\?[^#]*)?$/i.exec(url);
  if (!parsed) return `${JSON.stringify(url)} is not a URL`;
  const scheme = parsed[1]!.toLowerCase();
  if (SCHEME_PROBLEMS[scheme] !== undefined) return SCHEME_PROBLEMS[scheme]!;
  if (!['http', 'https', 'ws', 'wss', 'balancer'].includes(scheme)) return `the scheme ${scheme}:// is not one Switchyard proxies to (http, https, ws, wss)`;
  if (parsed[4] !== undefined) return 'a backend URL with a query is not translated (Switchyard backend URLs take none)';
  if (parsed[2] === '') return `${JSON.stringify(url)} names no host`;
  return { scheme, authority: parsed[2]!, path: parsed[3] ?? '' };
}

function httpScheme(scheme: string): string {
  return scheme === 'ws' ? 'http' : scheme === 'wss' ? 'https' : scheme;
}

function isSecure(scheme: string): boolean {
  return scheme === 'https' || scheme === 'wss';
}

/** `file:line directive` for comments. */
export function sourceOf(directive: { readonly location: { readonly file: string; readonly line: number }; readonly text: string }): string {
  return `${sourceLabel(directive.location)} ${directive.text.replace(/\s+/g, ' ')}`;
}

const REDUNDANT_KEYS: Readonly<Record<string, string>> = {
  keepalive: 'redundant: Switchyard keeps TCP keepalive on for tunnels and pools backend connections',
  enablereuse: 'redundant: Switchyard pools backend connections',
  flushpackets: 'redundant: Switchyard never buffers responses or tunnels',
  flushwait: 'redundant: Switchyard never buffers responses or tunnels',
};

export class TargetResolver {
  private readonly tlsUpstreams = new Map<string, string>();
  private readonly balancerUpstreams = new Map<string, string>();
  private readonly noted = new Set<string>();
  /** Balancer names some route proxies to. */
  readonly usedBalancers = new Set<string>();

  constructor(private readonly draft: ConfigDraft, private readonly report: ImportReport, private readonly balancers: ReadonlyMap<string, BalancerDef>) {}

  /** A parameter of a worker that has no counterpart (once per directive and key). */
  noteKey(directive: ApacheDirective, key: string, value: string): void {
    const id = `${directive.location.file}:${directive.location.line}:${key}`;
    if (this.noted.has(id)) return;
    this.noted.add(id);
    if (REDUNDANT_KEYS[key] !== undefined) this.report.advise(directive.location, directive.text, `${key}=${value}: ${REDUNDANT_KEYS[key]}`);
    else this.report.skip(directive.location, directive.text, `${key}=${value}: no Switchyard counterpart`);
  }

  private once(directive: ApacheDirective, what: string, note: () => void): void {
    const id = `${directive.location.file}:${directive.location.line}:${what}`;
    if (this.noted.has(id)) return;
    this.noted.add(id);
    note();
  }

  /**
   * The route target for `url` (already split; `path` is what the route's `to`
   * should carry). `balancerKeys` are ProxyPass parameters that configure a
   * balancer (stickysession, lbmethod, ...).
   */
  resolve(url: BackendUrl, tls: BackendTls, at: ApacheDirective, balancerKeys: readonly (readonly [string, string])[] = []): Target | string {
    if (url.scheme === 'balancer') return this.balancer(url, tls, at, balancerKeys);
    const secure = isSecure(url.scheme);
    const authority = url.authority.toLowerCase();
    const full = `${url.scheme}://${url.authority}${url.path}`;
    const identity = `${httpScheme(url.scheme)}://${authority}${url.path.replace(/\/$/, '')}`;
    const websocketScheme = url.scheme === 'ws' || url.scheme === 'wss';
    if (secure) this.adviseVerification(tls, at, authority);
    const upstreamTls = secure ? this.upstreamTls(tls) : undefined;
    if (!upstreamTls) return { to: full, identity, websocketScheme, authorities: [authority], upstreamName: undefined };
    const key = JSON.stringify([full, upstreamTls]);
    let name = this.tlsUpstreams.get(key);
    if (name === undefined) {
      const upstream: DraftUpstream = { servers: [full], tls: upstreamTls };
      name = this.draft.addUpstream(url.authority.replace(/:/g, '_'), upstream);
      this.draft.comment(upstream, `${full}: its own upstream for the TLS settings of ${[...tls.insecure, tls.ca?.directive, tls.client?.directive].filter((d) => d !== undefined).map((d) => sourceOf(d!)).join(', ')}`);
      this.tlsUpstreams.set(key, name);
    }
    return { to: name, identity, websocketScheme, authorities: [authority], upstreamName: name };
  }

  private adviseVerification(tls: BackendTls, at: ApacheDirective, authority: string): void {
    if (tls.verifySet || tls.insecure.length > 0 || tls.ca !== undefined) return;
    this.once(at, `verify:${authority}`, () => this.report.advise(at.location, at.text,
      `Apache does not check ${authority}'s certificate by default (SSLProxyVerify none); Switchyard does: if it is self-signed or from a private CA, give its upstream tls.ca`));
  }

  private upstreamTls(tls: BackendTls): DraftUpstream['tls'] | undefined {
    if (tls.insecure.length === 0 && !tls.ca && !tls.client) return undefined;
    for (const directive of tls.insecure) {
      this.once(directive, 'insecure', () => this.report.advise(directive.location, directive.text,
        'unsafe: the backend\'s certificate is not checked (tls.insecure: true on its upstream), so anyone on the path can pose as it; give tls.ca instead'));
    }
    return {
      ...(tls.insecure.length > 0 ? { insecure: true } : {}),
      ...(tls.ca ? { ca: tls.ca.path } : {}),
      ...(tls.client ? { cert: tls.client.path, key: tls.client.path } : {}),
    };
  }

  private balancer(url: BackendUrl, tls: BackendTls, at: ApacheDirective, proxyPassKeys: readonly (readonly [string, string])[]): Target | string {
    const def = this.balancers.get(url.authority.toLowerCase());
    if (!def || def.members.length === 0) return `balancer://${url.authority} has no BalancerMember`;
    this.usedBalancers.add(def.name);
    const settings = new Map<string, { value: string; directive: ApacheDirective }>(def.settings);
    for (const [key, value] of proxyPassKeys) settings.set(key, { value, directive: at });
    const servers: DraftServer[] = [];
    const normalised: unknown[] = [];
    const authorities: string[] = [];
    let websocketScheme = false;
    let anySecure = false;
    let health: NonNullable<DraftUpstream['health']>['active'] | undefined;
    const routes: string[] = [];
    const comments: string[] = [];
    for (const member of def.members) {
      const parsed = parseBackendUrl(member.url);
      if (typeof parsed === 'string' || parsed.scheme === 'balancer') {
        this.once(member.directive, 'member', () => this.report.skip(member.directive.location, member.directive.text, typeof parsed === 'string' ? parsed : 'a balancer as a member is not translated'));
        continue;
      }
      comments.push(sourceOf(member.directive));
      websocketScheme ||= parsed.scheme === 'ws' || parsed.scheme === 'wss';
      anySecure ||= isSecure(parsed.scheme);
      if (isSecure(parsed.scheme)) this.adviseVerification(tls, member.directive, parsed.authority.toLowerCase());
      const memberPath = parsed.path.replace(/\/$/, '');
      const extra = url.path === '/' ? '' : url.path;
      const serverUrl = `${parsed.scheme}://${parsed.authority}${memberPath}${extra}`;
      let weight = 1;
      let drain = false;
      for (const [key, value] of member.params) {
        switch (key) {
          case 'loadfactor':
            weight = Math.min(1000, Math.max(1, Math.round(Number(value) || 1)));
            break;
          case 'route':
            routes.push(value);
            break;
          case 'status': {
            const letters = value.replace(/[+-]/g, '').toUpperCase();
            const on = !value.startsWith('-');
            if (on && /[DS]/.test(letters)) drain = true;
            else if (on && letters.includes('H')) {
              this.once(member.directive, 'status', () => this.report.skip(member.directive.location, member.directive.text, 'status=+H (hot standby): Switchyard has no standby servers; this one takes its share of traffic'));
            } else this.noteKey(member.directive, key, value);
            break;
          }
          case 'hcmethod':
          case 'hcuri':
          case 'hcinterval':
          case 'hcpasses':
          case 'hcfails':
            health = this.healthCheck(member.params, member.directive) ?? health;
            break;
          default:
            this.noteKey(member.directive, key, value);
        }
      }
      authorities.push(parsed.authority.toLowerCase());
      servers.push(weight === 1 && !drain ? serverUrl : { url: serverUrl, ...(weight !== 1 ? { weight } : {}), ...(drain ? { drain: true } : {}) });
      normalised.push([`${httpScheme(parsed.scheme)}://${parsed.authority.toLowerCase()}${memberPath}${extra}`, weight, drain]);
    }
    if (servers.length === 0) return `balancer://${url.authority} has no member Switchyard can reach`;

    const upstream: DraftUpstream = { servers };
    const upstreamComments = [`balancer://${def.name}${url.path === '' || url.path === '/' ? '' : url.path}: ${comments.join('; ')}`];
    let sticky: string | undefined;
    for (const [key, { value, directive }] of settings) {
      switch (key) {
        case 'lbmethod': {
          const method = value.toLowerCase();
          if (method === 'byrequests') {
            upstream.policy = 'round_robin';
            upstreamComments.push(`lbmethod=byrequests (${sourceOf(directive)}) → round_robin (weighted by loadfactor)`);
          } else if (method === 'bybusyness') {
            upstream.policy = 'least_conn';
            upstreamComments.push(`lbmethod=bybusyness (${sourceOf(directive)}) → least_conn`);
          } else {
            this.once(directive, key, () => this.report.skip(directive.location, directive.text, `lbmethod=${value}: no Switchyard counterpart; the default policy (round_robin, least_conn for WebSockets) is used`));
          }
          break;
        }
        case 'stickysession':
          sticky = value;
          break;
        case 'maxattempts':
          upstream.retries = Math.min(20, Math.max(0, Math.round(Number(value) || 0)));
          upstreamComments.push(`maxattempts=${value} → retries`);
          break;
        case 'nofailover':
          this.once(directive, key, () => this.report.skip(directive.location, directive.text, `nofailover=${value}: a pinned server that is down falls back to another in Switchyard (sessions held only on it are lost either way)`));
          break;
        case 'timeout':
          this.once(directive, key, () => this.report.skip(directive.location, directive.text, `timeout=${value} (waiting for a free member): use queue: { size, timeout } with max_conns`));
          break;
        default:
          this.noteKey(directive, key, value);
      }
    }
    if (sticky !== undefined) {
      upstream.sticky = 'cookie';
      const directive = settings.get('stickysession')!.directive;
      upstreamComments.push(`stickysession=${sticky} (${sourceOf(directive)}) → sticky: cookie, Switchyard's own signed cookie`);
      this.once(directive, 'stickysession', () => this.report.advise(directive.location, directive.text,
        `stickysession=${sticky}: Switchyard pins clients with its own signed cookie (sy_affinity) instead of the ${routes.length > 0 ? `route suffix (${routes.join(', ')}) ` : 'route '}Apache read from ${sticky}; the application's cookies pass untouched and a backend's jvmRoute is no longer needed; set SWITCHYARD_SECRET alike on every instance`));
    } else if (routes.length > 0) {
      this.once(def.members[0]!.directive, 'route', () => this.report.skip(def.members[0]!.directive.location, def.members[0]!.directive.text, 'route= is only used with stickysession, which this balancer does not set'));
    }
    if (health) upstream.health = { active: health };
    const upstreamTls = anySecure ? this.upstreamTls(tls) : undefined;
    if (upstreamTls) upstream.tls = upstreamTls;

    // ws:// and http:// members name the same origins: one upstream, so a cookie pins both (Socket.IO polling and WebSocket).
    const key = JSON.stringify([normalised, upstream.policy, upstream.sticky, upstream.retries, health, upstreamTls]);
    const known = this.balancerUpstreams.get(key);
    const identity = `upstream:${key}`;
    if (known !== undefined) {
      const existing = this.draft.upstreams[known]!;
      this.draft.comment(existing, `also balancer://${def.name}: the same servers (ws:// and http:// name the same origins), so one affinity cookie pins both`);
      return { to: known, identity, websocketScheme, authorities, upstreamName: known };
    }
    const name = this.draft.addUpstream(def.name, upstream);
    for (const comment of upstreamComments) this.draft.comment(upstream, comment);
    this.balancerUpstreams.set(key, name);
    return { to: name, identity, websocketScheme, authorities, upstreamName: name };
  }

  /** mod_proxy_hcheck's hc* parameters of a member → an active health check. */
  private healthCheck(params: readonly (readonly [string, string])[], directive: ApacheDirective): NonNullable<DraftUpstream['health']>['active'] | undefined {
    const get = (name: string): string | undefined => params.find(([key]) => key === name)?.[1];
    const method = (get('hcmethod') ?? 'TCP').toUpperCase();
    if (method === 'TCP') {
      this.once(directive, 'hcmethod', () => this.report.skip(directive.location, directive.text, 'hcmethod=TCP (connect only): Switchyard\'s active checks send a request; passive health covers refused connections'));
      return undefined;
    }
    const path = get('hcuri') ?? '/';
    const intervalMs = parseDurationMs(get('hcinterval') ?? '30', 's') ?? 30_000;
    return {
      type: 'http',
      method: method === 'GET11' || method === 'HEAD11' || method === 'OPTIONS11' ? method.slice(0, -2) : method,
      path: path.startsWith('/') ? path : `/${path}`,
      interval: formatDuration(intervalMs),
      rise: Math.max(1, Math.min(100, Number(get('hcpasses') ?? '1') || 1)),
      fall: Math.max(1, Math.min(100, Number(get('hcfails') ?? '1') || 1)),
    };
  }
}
