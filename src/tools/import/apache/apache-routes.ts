import { countGroups } from '../../../config/regex-groups.js';
import { anchoredLiteral, hasPathPrefix } from '../../../router/route-matcher.js';
import type { ConfigDraft, DraftRoute } from '../config-draft.js';
import type { ImportReport } from '../import-report.js';
import { covers } from '../route-coverage.js';
import { sourceLabel } from '../source-location.js';
import { escapeRegex, formatDuration, parseDurationMs, toJsRegex } from '../values.js';
import type { HeaderEdit, LocationBlock, ProxyPassEntry, RedirectEntry, RewriteRuleEntry, Scope } from './apache-model.js';
import type { ApacheDirective, ApacheSection } from './apache-parser.js';
import { RewriteSkip, simplifyRewrite, translateRewriteRule, type DraftMatch } from './apache-rewrite.js';
import { parseBackendUrl, sourceOf, type BackendTls, type BackendUrl, type Target, type TargetResolver } from './apache-targets.js';

/**
 * One server's routes, in the order Apache decides: RewriteRule [P] first
 * (mod_rewrite's translate hook runs before mod_proxy's), then ProxyPass from
 * <Location> sections (the last matching section wins, so they are written in
 * reverse), then ProxyPass / ProxyPassMatch outside <Location> (the first match
 * wins), then Redirect (mod_alias runs after mod_proxy). A route that an
 * earlier one takes every request of is left out and listed, as Apache never
 * reaches it either.
 */

export interface SiteFacts {
  readonly scope: Scope;
  /** The main server, whose ProxyPass, <Location> and headers a <VirtualHost> inherits. */
  readonly main: Scope | undefined;
  readonly tls: boolean;
  readonly ports: readonly number[];
  readonly hosts: readonly string[];
  readonly preserveHost: boolean;
  readonly backendTls: BackendTls;
  /** Response timeout for this site's routes when it differs from the global one. */
  readonly responseMs: number | undefined;
  /** The ProxyTimeout or Timeout in effect, and its value. */
  readonly responseDirective: ApacheDirective | undefined;
  readonly responseWasSetMs: number | undefined;
  /** ProxyWebsocketFallbackToProxyHttp (On unless set Off). */
  readonly websocketFallback: boolean;
  readonly rewriteOn: boolean;
  readonly rewriteEngine: ApacheDirective | undefined;
  readonly rewriteOptions: ApacheDirective | undefined;
  readonly wsIdleTimeout: ApacheDirective | undefined;
}

export interface RouteDeps {
  readonly draft: ConfigDraft;
  readonly report: ImportReport;
  readonly resolver: TargetResolver;
  /** Notes already reported (a main-server directive is seen by every site that inherits it). */
  readonly reported: Set<string>;
}

type Kind = 'rewrite' | 'location' | 'proxypass' | 'redirect';

interface PendingRoute {
  route: DraftRoute;
  readonly comments: string[];
  readonly directive: ApacheDirective;
  /** "ProxyPass / (site.conf:12)" */
  readonly label: string;
  readonly kind: Kind;
  readonly location: LocationBlock | undefined;
  /** The Apache path for prefix routes ('/' for a catch-all); undefined for regex routes. */
  readonly apachePrefix: string | undefined;
  readonly target: Target | undefined;
  /** The path `to` carries ('' when none). */
  readonly backendPath: string;
  /** The backend URL's path as Apache wrote it ('' when none), for ProxyPassReverseCookiePath. */
  readonly urlPath: string;
  /** Apache tunneled WebSockets on this route (ws://, upgrade=, a WebSocket RewriteCond). */
  readonly apacheWebSocket: boolean;
  /** `path|normalised URL` of its ProxyPass, for ProxyPassReverse. */
  readonly reverseKey: string | undefined;
  /** The route-level timeout= it got, if any. */
  readonly timeoutKey: { directive: ApacheDirective; ms: number } | undefined;
  /** Header edits of the <Location> sections around it, in config order. */
  locationEdits?: HeaderEdit[];
}

const BALANCER_KEYS = new Set(['stickysession', 'lbmethod', 'maxattempts', 'nofailover', 'stickysessionsep', 'scolonpathdelim', 'failonstatus', 'failontimeout', 'nonce', 'growth', 'forcerecovery', 'timeout']);
const TUNNEL_SHORT_MS = 5 * 60_000;
const DEFAULT_TUNNEL_MS = 60 * 60_000;

export function buildSiteRoutes(facts: SiteFacts, deps: RouteDeps): DraftRoute[] {
  return new SiteRoutes(facts, deps).build();
}

class SiteRoutes {
  private readonly draft: ConfigDraft;
  private readonly report: ImportReport;
  private readonly resolver: TargetResolver;
  private readonly advised: Set<string>;

  constructor(private readonly facts: SiteFacts, deps: RouteDeps) {
    this.advised = deps.reported;
    this.draft = deps.draft;
    this.report = deps.report;
    this.resolver = deps.resolver;
  }

  private adviseOnce(directive: ApacheDirective | ApacheSection, message: string): void {
    const key = `${directive.location.file}:${directive.location.line}:${message}`;
    if (this.advised.has(key)) return;
    this.advised.add(key);
    this.report.advise(directive.location, directive.text, message);
  }

  private skipOnce(directive: ApacheDirective | ApacheSection, message: string): void {
    const key = `skip:${directive.location.file}:${directive.location.line}:${message}`;
    if (this.advised.has(key)) return;
    this.advised.add(key);
    this.report.skip(directive.location, directive.text, message);
  }

  build(): DraftRoute[] {
    const { scope, main } = this.facts;
    const pending: PendingRoute[] = [];
    for (const rule of this.rewriteRules()) pending.push(...this.rewriteRoutes(rule));
    const locations = [...(main?.locations ?? []), ...scope.locations];
    for (const location of [...locations].reverse()) {
      if (location.proxyPass) {
        const route = this.proxyPassRoute(location.proxyPass, 'location', false);
        if (route) pending.push(route);
      } else if (location.redirect) {
        const route = this.redirectRoute(location.redirect, 'location', location);
        if (route) pending.push(route);
      }
    }
    const proxyPasses = [...(main?.proxyPasses ?? []), ...scope.proxyPasses];
    proxyPasses.forEach((entry, index) => {
      const route = this.proxyPassRoute(entry, 'proxypass', this.websocketOnly(entry, proxyPasses.slice(index + 1)));
      if (route) pending.push(route);
    });
    for (const redirect of [...scope.redirects, ...(main?.redirects ?? [])]) {
      const route = this.redirectRoute(redirect, 'redirect', undefined);
      if (route) pending.push(route);
    }

    const kept = this.dropShadowed(pending);
    if (kept.some((entry) => entry.kind === 'location' || entry.kind === 'proxypass')) {
      for (const entry of kept) {
        if (entry.kind === 'rewrite' && entry.route.to !== undefined) entry.comments.push('RewriteRule [P] comes before ProxyPass in Apache (mod_rewrite maps the URL first), so this route comes first');
      }
    }
    this.decorateFromLocations(kept, locations);
    this.headers(kept);
    this.timeouts(kept);
    this.reverseRewrites(kept, locations);
    this.redundantRewrites(kept);
    return kept.map((entry) => {
      for (const comment of entry.comments) this.draft.comment(entry.route, comment);
      return entry.route;
    });
  }

  // ------------------------------------------------------------ rewrite

  private rewriteRules(): RewriteRuleEntry[] {
    const { scope, main } = this.facts;
    const options = (this.facts.rewriteOptions?.args ?? []).map((option) => option.toLowerCase());
    let rules = [...scope.rewriteRules];
    if (main && options.includes('inherit')) rules = [...rules, ...main.rewriteRules];
    else if (main && options.includes('inheritbefore')) rules = [...main.rewriteRules, ...rules];
    const otherOptions = options.filter((option) => option !== 'inherit' && option !== 'inheritbefore');
    if (this.facts.rewriteOptions && otherOptions.length > 0) this.skipOnce(this.facts.rewriteOptions, `RewriteOptions ${otherOptions.join(' ')} is not translated`);
    if (!this.facts.rewriteOn) {
      for (const rule of rules) this.skipOnce(rule.directive, 'RewriteEngine is not On for this server: Apache ignores the rule');
      return [];
    }
    return rules;
  }

  private rewriteRoutes(rule: RewriteRuleEntry): PendingRoute[] {
    let translated;
    try {
      translated = translateRewriteRule(rule, { tls: this.facts.tls, ports: this.facts.ports });
    } catch (err) {
      if (err instanceof RewriteSkip) {
        this.skipOnce(rule.directive, err.message);
        return [];
      }
      throw err;
    }
    for (const remark of translated.remarks) {
      if (remark.kind === 'advise') this.adviseOnce(remark.directive, remark.message);
      else this.skipOnce(remark.directive, remark.message);
    }
    const comments = [...rule.conditions.map((condition) => sourceOf(condition.directive)), sourceOf(rule.directive)];
    const action = translated.action;
    let target: Target | undefined;
    if (action.kind === 'proxy') {
      const url = parseBackendUrl(action.url);
      if (typeof url === 'string') {
        this.skipOnce(rule.directive, url);
        return [];
      }
      const resolved = this.resolver.resolve({ ...url, path: '' }, this.facts.backendTls, rule.directive);
      if (typeof resolved === 'string') {
        this.skipOnce(rule.directive, resolved);
        return [];
      }
      target = resolved;
    }
    return translated.matches.map((match): PendingRoute => {
      const route: DraftRoute = {};
      if (Object.keys(match).length > 0) route.match = match;
      if (action.kind === 'proxy') {
        route.to = target!.to;
        if (action.rewrite !== undefined) route.rewrite = action.rewrite;
      } else if (action.kind === 'redirect') {
        route.redirect = { status: action.status, location: action.location };
      } else {
        route.respond = { status: action.status };
      }
      return {
        route, comments: [...comments], directive: rule.directive, label: `RewriteRule ${rule.pattern} (${sourceLabel(rule.directive.location)})`, kind: 'rewrite',
        location: undefined, apachePrefix: undefined, target, backendPath: '', urlPath: '',
        apacheWebSocket: action.kind === 'proxy' && (translated.websocketConditions || target!.websocketScheme), reverseKey: undefined, timeoutKey: undefined,
      };
    });
  }

  // ------------------------------------------------------------ ProxyPass

  /**
   * A ws:// entry that a later entry for the same path sends elsewhere over
   * http:// takes only WebSocket handshakes (the pre-2.4.47 split, and the
   * evident intent); with ProxyWebsocketFallbackToProxyHttp Off, every ws://
   * entry does.
   */
  private websocketOnly(entry: ProxyPassEntry, later: readonly ProxyPassEntry[]): boolean {
    if (!/^wss?:\/\//i.test(entry.url)) return false;
    if (!this.facts.websocketFallback) return true;
    const samePath = later.find((other) => other.regex === entry.regex && normalisePath(other.path) === normalisePath(entry.path) && /^https?:\/\//i.test(other.url));
    if (samePath) {
      this.adviseOnce(entry.directive, `the same path has an http:// ProxyPass (${sourceLabel(samePath.directive.location)}): translated as the split Apache made before 2.4.47 — WebSocket handshakes here (upgrade: websocket), other requests there (since 2.4.47 Apache sent both here)`);
      return true;
    }
    return false;
  }

  private proxyPassRoute(entry: ProxyPassEntry, kind: Kind, websocketOnly: boolean): PendingRoute | undefined {
    const directive = entry.directive;
    const where = sourceLabel(directive.location);
    const comments = entry.location ? [sourceOf(entry.location.section), sourceOf(directive)] : [sourceOf(directive)];
    const label = `${entry.location ? `<${entry.location.section.name} ${entry.path}> ProxyPass` : `${directive.name} ${entry.path}`} (${where})`;
    if (!entry.regex && /[*?[]/.test(entry.path) && entry.location) {
      this.skipOnce(entry.location.section, 'wildcards in <Location> are not translated; use <LocationMatch>');
      return undefined;
    }
    let match: DraftMatch = {};
    if (entry.regex) {
      const regex = toJsRegex(entry.path, false);
      if (regex === undefined) {
        this.skipOnce(directive, `${JSON.stringify(entry.path)} is not a regular expression JavaScript reads`);
        return undefined;
      }
      match.regex = regex;
    } else if (!entry.path.startsWith('/')) {
      this.skipOnce(directive, 'the path must start with /');
      return undefined;
    } else if (entry.path !== '/') {
      match.prefix = entry.path;
    }
    const base = {
      directive, label, kind, location: entry.location, apachePrefix: entry.regex ? undefined : entry.path,
      reverseKey: `${entry.path}|${normaliseUrl(entry.url)}`,
    };

    if (entry.url === '!') {
      const route: DraftRoute = { ...(Object.keys(match).length > 0 ? { match } : {}), respond: { status: 404, body: 'Not Found' } };
      comments.push('"!": Apache does not proxy these paths (it serves them from local files); Switchyard serves no files, so they get 404');
      this.skipOnce(directive, 'not proxied ("!"): Apache served these paths itself; Switchyard serves no files, so the route answers 404 — point it at a server that has them');
      return { ...base, route, comments, target: undefined, backendPath: '', urlPath: '', apacheWebSocket: false, timeoutKey: undefined };
    }
    const url = parseBackendUrl(entry.url);
    if (typeof url === 'string') {
      this.skipOnce(directive, url);
      return undefined;
    }
    if (url.authority.includes('$')) {
      this.skipOnce(directive, 'the backend host comes from a capture; Switchyard backends are fixed');
      return undefined;
    }
    const isBalancer = url.scheme === 'balancer';
    const balancerKeys: [string, string][] = [];
    const timeouts: NonNullable<DraftRoute['timeouts']> = {};
    let timeoutKey: PendingRoute['timeoutKey'];
    let apacheWebSocket = url.scheme === 'ws' || url.scheme === 'wss';
    for (const [key, value] of entry.keys) {
      if (isBalancer && BALANCER_KEYS.has(key)) {
        balancerKeys.push([key, value]);
        continue;
      }
      if (key === 'timeout' || key === 'connectiontimeout') {
        const ms = parseDurationMs(value, 's');
        if (ms === undefined) {
          this.skipOnce(directive, `${key}=${value}: not a number of seconds`);
          continue;
        }
        if (key === 'timeout') {
          timeouts.response = formatDuration(ms);
          timeoutKey = { directive, ms };
        } else timeouts.connect = formatDuration(ms);
        comments.push(`${key}=${value} → timeouts.${key === 'timeout' ? 'response' : 'connect'}`);
        continue;
      }
      if (key === 'upgrade') {
        const protocol = value.toLowerCase();
        if (protocol === 'websocket') {
          apacheWebSocket = true;
          this.adviseOnce(directive, 'upgrade=websocket is redundant: Switchyard forwards WebSocket upgrades on every route by itself');
        } else if (protocol === 'any') {
          apacheWebSocket = true;
          this.adviseOnce(directive, 'upgrade=ANY is unsafe: Apache tunneled whatever protocol a client asked for; Switchyard tunnels only WebSocket upgrades (other Upgrade requests go on as plain HTTP)');
        } else if (protocol === 'none') {
          apacheWebSocket = true;
          this.adviseOnce(directive, 'upgrade=NONE is unsafe (mod_proxy_wstunnel then tunneled without checking the Upgrade header; httpd 2.4.47+ with ProxyWebsocketFallbackToProxyHttp On passes requests on as plain HTTP instead): Switchyard tunnels real WebSocket handshakes only, on every route');
        } else {
          this.adviseOnce(directive, `upgrade=${value}: Switchyard tunnels only WebSocket upgrades, so ${value} upgrades are not tunneled`);
        }
        continue;
      }
      this.resolver.noteKey(directive, key, value);
    }
    for (const flag of entry.flags) {
      if (flag === 'nocanon') this.adviseOnce(directive, 'nocanon is redundant: Switchyard forwards the path as the client sent it');
      else if (flag === 'noquery') this.skipOnce(directive, 'noquery is not translated: the query is forwarded');
      else if (flag === 'interpolate') this.skipOnce(directive, 'interpolate (environment variables in the URL) is not translated');
      else this.skipOnce(directive, `${flag}: not a ProxyPass option this translation knows`);
    }

    const route: DraftRoute = {};
    let backendPath = url.path;
    let toPath = url.path;
    if (entry.regex) {
      const template = this.matchTemplate(url.path, match.regex!, directive);
      if (template === null) return undefined;
      if (template !== undefined) {
        const simplified = simplifyRewrite(match, template);
        match = simplified.match;
        if (simplified.rewrite !== undefined) route.rewrite = simplified.rewrite;
        toPath = '';
        backendPath = '';
      }
    } else {
      const prefix = entry.path;
      const mismatch = url.path !== '' && prefix.endsWith('/') !== url.path.endsWith('/') || (url.path === '' && prefix.endsWith('/') && prefix !== '/');
      if (mismatch) this.adviseOnce(directive, 'the path and the URL differ in their trailing slash (Apache then joins them with no slash, or two): translated as if both ended in /');
      if (prefix === '/') {
        toPath = url.path === '/' ? '' : url.path;
      } else if (withSlash(url.path || '/') === withSlash(prefix)) {
        toPath = '';
      } else if (!prefix.endsWith('/') && url.path !== '' && !url.path.endsWith('/')) {
        // /push/ws → /ws and /push/ws/x → /ws/x (strip_prefix would send /ws/ for the bare path).
        delete match.prefix;
        match.regex = `^${escapeRegex(prefix, { keepSlashes: true })}((?:/.*)?)$`;
        route.rewrite = `${escapeTemplate(url.path)}$1`;
        toPath = '';
      } else {
        route.strip_prefix = true;
      }
      backendPath = toPath;
    }
    const target = this.resolver.resolve({ ...url, path: toPath }, this.facts.backendTls, directive, balancerKeys);
    if (typeof target === 'string') {
      this.skipOnce(directive, target);
      return undefined;
    }
    if (websocketOnly) match.upgrade = 'websocket';
    const ordered: DraftRoute = {};
    if (Object.keys(match).length > 0) ordered.match = match;
    ordered.to = target.to;
    Object.assign(ordered, route);
    if (Object.keys(timeouts).length > 0) ordered.timeouts = timeouts;
    if ((url.scheme === 'ws' || url.scheme === 'wss') && !websocketOnly) {
      comments.push(`${url.scheme}:// target: plain HTTP requests here go to the same backend too (as in Apache 2.4.47+)`);
    }
    return { ...base, route: ordered, comments, target, backendPath, urlPath: url.path, apacheWebSocket: apacheWebSocket || target.websocketScheme, timeoutKey };
  }

  /**
   * ProxyPassMatch's URL path as a rewrite template: $1..$9 stay, a literal $
   * doubles. Undefined when it has no $N (Apache then appends the whole path,
   * as Switchyard does with a URL path); null when not translatable.
   */
  private matchTemplate(path: string, regex: string, directive: ApacheDirective): string | undefined | null {
    if (!/\$\d/.test(path)) return undefined;
    const groups = countGroups(regex);
    let out = '';
    for (let i = 0; i < path.length; i += 1) {
      const char = path[i]!;
      if (char === '$' && /\d/.test(path[i + 1] ?? '')) {
        const index = Number(path[i + 1]);
        if (index > groups) {
          this.skipOnce(directive, `$${index} but the regex has ${groups} group(s)`);
          return null;
        }
        out += /\d/.test(path[i + 2] ?? '') ? `\${${index}}` : `$${index}`;
        i += 1;
      } else if (char === '$') out += '$$';
      else out += char;
    }
    return out.startsWith('/') || out.startsWith('$') ? out : `/${out}`;
  }

  // ------------------------------------------------------------ Redirect

  private redirectRoute(entry: RedirectEntry, kind: Kind, location: LocationBlock | undefined): PendingRoute | undefined {
    const directive = entry.directive;
    const where = sourceLabel(directive.location);
    const comments = location ? [sourceOf(location.section), sourceOf(directive)] : [sourceOf(directive)];
    let match: DraftMatch;
    let location_: string | undefined;
    if (entry.regex) {
      const regex = toJsRegex(entry.path, false);
      if (regex === undefined) {
        this.skipOnce(directive, `${JSON.stringify(entry.path)} is not a regular expression JavaScript reads`);
        return undefined;
      }
      match = { regex };
      if (entry.url !== undefined) {
        const template = this.matchTemplate(entry.url, regex, directive);
        if (template === null) return undefined;
        location_ = template === undefined ? escapeTemplate(entry.url) : template.replace(/^\/(?=[a-z][a-z0-9+.-]*:\/\/)/i, '');
      }
    } else {
      const path = entry.path;
      if (!path.startsWith('/')) {
        this.skipOnce(directive, 'the path must start with /');
        return undefined;
      }
      // mod_alias matches whole segments and appends the rest of the path to the URL.
      const trimmed = path.replace(/\/$/, '');
      match = path === '/' ? { regex: '^/(.*)$' } : { regex: `^${escapeRegex(trimmed, { keepSlashes: true })}((?:/.*)?)$` };
      if (entry.url !== undefined) location_ = path === '/' ? `${escapeTemplate(entry.url.replace(/\/$/, ''))}/$1` : `${escapeTemplate(entry.url.replace(/\/$/, ''))}$1`;
    }
    const route: DraftRoute = { match };
    const status = entry.status;
    if (status === 301 || status === 302 || status === 303 || status === 307 || status === 308) {
      if (location_ === undefined) {
        this.skipOnce(directive, 'a redirect without a URL');
        return undefined;
      }
      route.redirect = { status, location: location_ };
    } else if (status >= 400 && status < 600) {
      route.respond = { status };
    } else {
      this.skipOnce(directive, `status ${status} is not one Switchyard redirects with (301, 302, 303, 307, 308)`);
      return undefined;
    }
    return {
      route, comments, directive, label: `${directive.name} ${entry.path} (${where})`, kind, location, apachePrefix: undefined, target: undefined,
      backendPath: '', urlPath: '', apacheWebSocket: false, reverseKey: undefined, timeoutKey: undefined,
    };
  }

  // ------------------------------------------------------------ order

  private dropShadowed(pending: readonly PendingRoute[]): PendingRoute[] {
    const kept: PendingRoute[] = [];
    for (const entry of pending) {
      const earlier = kept.find((other) => covers(other.route.match, entry.route.match)) ?? this.coveredByPair(kept, entry);
      if (!earlier) {
        kept.push(entry);
        continue;
      }
      this.skipOnce(entry.location && entry.kind === 'location' ? entry.location.section : entry.directive, `never used: ${earlier.label} takes every request it would, first (${precedence(earlier.kind, entry.kind)})`);
    }
    return kept;
  }

  /** A route that takes WebSocket handshakes and one that takes the rest, both ahead of it (the RewriteCond =websocket / !=websocket pair). */
  private coveredByPair(kept: readonly PendingRoute[], entry: PendingRoute): PendingRoute | undefined {
    const upgrade = entry.route.match?.upgrade ?? 'any';
    if (upgrade !== 'any') return undefined;
    const asKind = (kind: 'websocket' | 'none'): DraftRoute => ({ ...entry.route, match: { ...entry.route.match, upgrade: kind } });
    const websocket = kept.find((other) => other.route.match?.upgrade === 'websocket' && covers(other.route.match, asKind('websocket').match));
    const plain = kept.find((other) => other.route.match?.upgrade === 'none' && covers(other.route.match, asKind('none').match));
    return websocket && plain ? { ...plain, label: `${websocket.label} with ${plain.label}` } : undefined;
  }

  // ------------------------------------------------------------ decoration

  /** Headers, ProxyPreserveHost and access rules of <Location> sections, on the routes inside them. */
  private decorateFromLocations(routes: PendingRoute[], locations: readonly LocationBlock[]): void {
    for (const route of routes) {
      if (route.route.to !== undefined && !this.facts.preserveHost) route.route.preserve_host = false;
    }
    for (const location of locations) {
      const relevant = location.headers.length > 0 || location.requires.length > 0 || location.auth.length > 0 || location.settings.size > 0;
      if (!relevant) continue;
      const covered: PendingRoute[] = [];
      const partial: PendingRoute[] = [];
      const whole: DraftRoute = { match: location.regex ? { regex: location.path } : location.path === '/' ? {} : { prefix: location.path } };
      routes.forEach((route, index) => {
        const coverage = locationCoverage(location, route);
        if (coverage === 'all') covered.push(route);
        // Part of the Location's requests reach this route only if no route before it takes them all.
        else if (coverage === 'part' && route.route.to !== undefined && !routes.slice(0, index).some((earlier) => covers(earlier.route.match, whole.match))) partial.push(route);
      });
      if (location.auth.length > 0 || location.requires.some((require) => isAuthRequire(require))) {
        if (covered.length + partial.length > 0) this.adviseOnce(location.section, 'unsafe: Apache asked for authentication here (AuthType / Require user, group, valid-user, ...); Switchyard does not authenticate, so these requests reach the backend unchecked: put the check in the backend, or limit the route with allow:');
      }
      for (const route of partial) {
        this.skipOnce(location.section, `its headers or access rules apply to only part of what ${route.label} proxies: not translated (add a route for ${location.path} above it to carry them)`);
      }
      if (covered.length === 0 && partial.length === 0) {
        this.skipOnce(location.section, 'no route of this server falls under this <Location>: its settings are not translated');
        continue;
      }
      const preserve = location.settings.get('proxypreservehost');
      for (const route of covered) {
        if (route.route.to === undefined) continue;
        if (preserve) {
          const on = (preserve.args[0] ?? '').toLowerCase() === 'on';
          if (on) delete route.route.preserve_host;
          else route.route.preserve_host = false;
          route.comments.push(sourceOf(preserve));
        }
        route.locationEdits = [...(route.locationEdits ?? []), ...location.headers];
        this.applyAccess(route, location);
      }
      for (const [, directive] of location.settings) if (directive.lower !== 'proxypreservehost') this.skipOnce(directive, 'not translated inside <Location>');
    }
  }

  /** Server-level header edits, then those of the <Location> sections around each route (Apache merges them in that order). */
  private headers(routes: PendingRoute[]): void {
    const edits = [...(this.facts.main?.headers ?? []), ...this.facts.scope.headers];
    for (const route of routes) this.applyHeaders(route, [...edits, ...(route.locationEdits ?? [])]);
    if (edits.length > 0 && !routes.some((route) => route.route.to !== undefined)) {
      for (const edit of edits) this.skipOnce(edit.directive, 'no proxied route here for the header to go on');
    }
  }

  private applyHeaders(route: PendingRoute, edits: readonly HeaderEdit[]): void {
    if (route.route.to === undefined || edits.length === 0) return;
    const request = new HeaderFold(route.route.request_headers);
    const response = new HeaderFold(route.route.response_headers);
    for (const edit of edits) {
      const verdict = this.headerVerdict(edit);
      if (verdict === undefined) continue;
      (edit.request ? request : response).apply(edit.action, edit.name, edit.value ?? '');
      route.comments.push(sourceOf(edit.directive));
    }
    const requestActions = request.actions();
    const responseActions = response.actions();
    if (requestActions) route.route.request_headers = requestActions;
    else delete route.route.request_headers;
    if (responseActions) route.route.response_headers = responseActions;
    else delete route.route.response_headers;
  }

  /** Whether an edit can be carried over (true), or why not (reported; undefined). */
  private headerVerdict(edit: HeaderEdit): true | undefined {
    const directive = edit.directive;
    const lower = edit.name.toLowerCase();
    if (edit.request && (lower === 'upgrade' || lower === 'connection')) {
      this.adviseOnce(directive, `redundant: Switchyard forwards a WebSocket handshake's ${edit.name} itself (hop-by-hop headers cannot be set); set by hand on every request it also made plain requests look like upgrades`);
      return undefined;
    }
    if (!edit.request && (lower === 'upgrade' || lower === 'connection')) {
      this.adviseOnce(directive, `redundant: Switchyard manages ${edit.name} on responses (the backend's 101 passes through as is)`);
      return undefined;
    }
    if (['keep-alive', 'te', 'transfer-encoding', 'content-length', 'trailer', 'proxy-connection'].includes(lower)) {
      this.skipOnce(directive, `${edit.name} belongs to the connection: Switchyard manages it`);
      return undefined;
    }
    if (edit.request && ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-port', 'x-forwarded-server'].includes(lower)) {
      if (edit.action === 'unset') this.skipOnce(directive, `Switchyard always sends ${edit.name === 'X-Forwarded-Server' ? 'X-Forwarded-For, -Host and -Port' : edit.name}`);
      else this.adviseOnce(directive, `redundant: Switchyard sets ${edit.name === 'X-Forwarded-Server' ? 'X-Forwarded-Host' : edit.name} itself`);
      return undefined;
    }
    if (edit.request && lower === 'x-forwarded-proto' && edit.action !== 'unset' && ((edit.value ?? '').toLowerCase() === (this.facts.tls ? 'https' : 'http') || /%\{(REQUEST_SCHEME|HTTPS)\}/i.test(edit.value ?? ''))) {
      this.adviseOnce(directive, `redundant: Switchyard sets X-Forwarded-Proto (${this.facts.tls ? 'https' : 'http'} here) itself`);
      return undefined;
    }
    if (!['set', 'add', 'append', 'unset'].includes(edit.action)) {
      this.skipOnce(directive, `${edit.action}: only set, add, append and unset are translated`);
      return undefined;
    }
    if (edit.value !== undefined && /%\{|%[a-zA-Z]/.test(edit.value)) {
      this.skipOnce(directive, 'the value uses variables (%{...}); Switchyard header values are constants');
      return undefined;
    }
    const extra = edit.extra.filter((word) => word.toLowerCase() !== 'early');
    if (extra.length > 0) {
      this.skipOnce(directive, `conditional (${extra.join(' ')}): Switchyard header edits apply to every request of the route`);
      return undefined;
    }
    if (edit.value !== undefined && edit.value.includes('${')) {
      this.skipOnce(directive, 'the value uses ${...}, which is not defined in these files');
      return undefined;
    }
    return true;
  }

  private applyAccess(route: PendingRoute, location: LocationBlock): void {
    if (route.route.to === undefined) return;
    if (location.auth.length > 0 || location.requires.some((require) => isAuthRequire(require))) return;
    const allow: string[] = [];
    const deny: string[] = [];
    let denied = false;
    for (const require of location.requires) {
      const [first = '', ...rest] = require.args.map((arg) => arg);
      const lower = first.toLowerCase();
      if (lower === 'all') {
        if ((rest[0] ?? '').toLowerCase() === 'denied') denied = true;
        continue;
      }
      if (lower === 'ip') allow.push(...rest);
      else if (lower === 'local') allow.push('127.0.0.1', '::1');
      else if (lower === 'not' && (rest[0] ?? '').toLowerCase() === 'ip') deny.push(...rest.slice(1));
      route.comments.push(sourceOf(require));
    }
    if (denied && allow.length === 0) {
      const match = route.route.match;
      route.route = { ...(match ? { match } : {}), respond: { status: 403, body: 'Forbidden' } };
      route.comments.push(`${sourceOf(location.section)}: Require all denied → 403`);
      return;
    }
    if (allow.length > 0) route.route.allow = [...new Set(allow)];
    if (deny.length > 0) route.route.deny = [...new Set(deny)];
  }

  // ------------------------------------------------------------ timeouts

  private timeouts(routes: PendingRoute[]): void {
    const { responseMs, responseDirective, responseWasSetMs, wsIdleTimeout } = this.facts;
    for (const route of routes) {
      if (route.route.to === undefined) continue;
      if (responseMs !== undefined && route.route.timeouts?.response === undefined) {
        route.route.timeouts = { ...route.route.timeouts, response: formatDuration(responseMs) };
        if (responseDirective) route.comments.push(`timeouts.response: ${sourceOf(responseDirective)}`);
      }
    }
    const carries = routes.filter((route) => route.apacheWebSocket && route.route.to !== undefined && route.route.match?.upgrade !== 'none');
    if (carries.length === 0) return;
    const tunnelAdvice = (directive: ApacheDirective, seconds: number): void => {
      this.adviseOnce(directive, `Apache also closed WebSocket tunnels quiet for ${seconds} s (the proxy timeout is the tunnel's idle timeout too): Switchyard keeps tunnel_idle at 1h for them and uses ${seconds} s only for responses`);
    };
    if (responseDirective && responseWasSetMs !== undefined) {
      if (responseWasSetMs < TUNNEL_SHORT_MS) tunnelAdvice(responseDirective, Math.round(responseWasSetMs / 1000));
      else if (responseWasSetMs > DEFAULT_TUNNEL_MS) {
        for (const route of carries) route.route.timeouts = { ...route.route.timeouts, tunnel_idle: formatDuration(responseWasSetMs) };
      }
    }
    for (const route of carries) {
      if (route.timeoutKey && route.timeoutKey.ms < TUNNEL_SHORT_MS) tunnelAdvice(route.timeoutKey.directive, Math.round(route.timeoutKey.ms / 1000));
    }
    if (wsIdleTimeout) {
      const ms = parseDurationMs(wsIdleTimeout.args[0] ?? '', 's');
      if (ms !== undefined && ms < TUNNEL_SHORT_MS) tunnelAdvice(wsIdleTimeout, Math.round(ms / 1000));
      else if (ms !== undefined) for (const route of carries) route.route.timeouts = { ...route.route.timeouts, tunnel_idle: formatDuration(ms) };
    }
  }

  // ------------------------------------------------------------ ProxyPassReverse

  private reverseRewrites(routes: PendingRoute[], locations: readonly LocationBlock[]): void {
    const entries: { directive: ApacheDirective; path: string | undefined }[] = [
      ...[...(this.facts.main?.reverse ?? []), ...this.facts.scope.reverse].map((directive) => ({ directive, path: undefined })),
      ...locations.flatMap((location) => location.reverse.map((directive) => ({ directive, path: location.path }))),
    ];
    const enable = (route: PendingRoute, note: string): void => {
      route.comments.push(note);
      if (!reverseRewriteByDefault(route)) route.route.reverse_rewrite = true;
    };
    for (const { directive, path: locationPath } of entries) {
      const proxied = routes.filter((route) => route.route.to !== undefined);
      if (directive.lower === 'proxypassreverse') {
        const [path, url] = locationPath === undefined ? directive.args : [locationPath, directive.args[0]];
        if (path === undefined || url === undefined) {
          this.skipOnce(directive, 'needs a path and a URL');
          continue;
        }
        const key = `${path}|${normaliseUrl(url)}`;
        let matched = proxied.filter((route) => route.reverseKey === key);
        if (matched.length === 0) {
          const authority = authorityOf(url);
          matched = proxied.filter((route) => authority !== undefined && (route.target?.authorities.includes(authority) ?? false));
        }
        if (matched.length === 0) {
          this.skipOnce(directive, `no route proxies to ${url}: Switchyard maps only its backends' own URLs back (reverse_rewrite)`);
          continue;
        }
        for (const route of matched) enable(route, `${sourceOf(directive)} → reverse_rewrite${reverseRewriteByDefault(route) ? ' (on by default for this route)' : ''}`);
        continue;
      }
      const [internal = '', external = ''] = directive.args;
      if (directive.lower === 'proxypassreversecookiedomain') {
        const matched = proxied.filter((route) => route.target?.authorities.some((authority) => hostOf(authority) === internal.toLowerCase()) ?? false);
        if (matched.length === 0) {
          this.skipOnce(directive, `no route proxies to ${internal}: Switchyard rewrites only Domain=<the backend's host> (to the host the client asked for)`);
          continue;
        }
        if (external !== '' && !this.facts.hosts.includes(external.toLowerCase().replace(/^\./, ''))) {
          this.adviseOnce(directive, `Switchyard rewrites Domain=${internal} to the host the client asked for, not to ${external} as written`);
        }
        for (const route of matched) enable(route, `${sourceOf(directive)} → reverse_rewrite (Domain=${internal} becomes the client's host)`);
        continue;
      }
      const matched = proxied.filter((route) => route.apachePrefix !== undefined && withSlash(route.apachePrefix) === withSlash(external || '/') && withSlash(route.urlPath || '/') === withSlash(internal || '/'));
      if (matched.length === 0) {
        this.skipOnce(directive, `no route maps ${external} to ${internal}: Switchyard rewrites cookie paths only between a route's prefix and its backend path`);
        continue;
      }
      for (const route of matched) {
        if (withSlash(internal) === withSlash(external)) route.comments.push(`${sourceOf(directive)}: the same path on both sides, nothing to rewrite`);
        else enable(route, `${sourceOf(directive)} → reverse_rewrite (Path=${internal} becomes ${external})`);
      }
    }
  }

  /** A WebSocket rewrite route whose job a later catch-all route does anyway. */
  private redundantRewrites(routes: PendingRoute[]): void {
    routes.forEach((route, index) => {
      if (route.kind !== 'rewrite' || route.route.to === undefined || route.route.rewrite !== undefined) return;
      const match = route.route.match ?? {};
      if (match.upgrade !== 'websocket' || Object.keys(match).length !== 1) return;
      const later = routes.slice(index + 1).find((other) => {
        const otherMatch = other.route.match ?? {};
        return other.route.to !== undefined && (otherMatch.upgrade === undefined || otherMatch.upgrade === 'any')
          && otherMatch.prefix === undefined && otherMatch.regex === undefined && otherMatch.exact === undefined && otherMatch.headers === undefined && otherMatch.methods === undefined;
      });
      if (!later || later.target?.identity !== route.target?.identity || later.route.strip_prefix || later.route.rewrite !== undefined) return;
      this.adviseOnce(route.directive, `redundant: the route for ${later.label} takes WebSocket handshakes to the same backend by itself; this rule and its RewriteCond lines can go (kept, it does no harm)`);
    });
  }
}

/** Sequential Apache header edits folded into Switchyard's remove / set / add. */
class HeaderFold {
  private readonly set = new Map<string, { name: string; value: string }>();
  private readonly add = new Map<string, { name: string; values: string[] }>();
  private readonly remove = new Map<string, string>();

  constructor(initial: DraftRoute['request_headers']) {
    for (const [name, value] of Object.entries(initial?.set ?? {})) this.set.set(name.toLowerCase(), { name, value });
    for (const [name, value] of Object.entries(initial?.add ?? {})) this.add.set(name.toLowerCase(), { name, values: [value] });
    for (const name of initial?.remove ?? []) this.remove.set(name.toLowerCase(), name);
  }

  apply(action: string, name: string, value: string): void {
    const lower = name.toLowerCase();
    if (action === 'unset') {
      this.set.delete(lower);
      this.add.delete(lower);
      this.remove.set(lower, name);
      return;
    }
    if (action === 'set') {
      this.set.set(lower, { name, value });
      this.add.delete(lower);
      this.remove.delete(lower);
      return;
    }
    const current = this.set.get(lower);
    if (current) {
      current.value = `${current.value}, ${value}`;
      return;
    }
    const entry = this.add.get(lower) ?? { name, values: [] };
    entry.values.push(value);
    this.add.set(lower, entry);
  }

  actions(): DraftRoute['request_headers'] | undefined {
    if (this.set.size === 0 && this.add.size === 0 && this.remove.size === 0) return undefined;
    const out: NonNullable<DraftRoute['request_headers']> = {};
    if (this.remove.size > 0) out.remove = [...this.remove.values()];
    if (this.set.size > 0) out.set = Object.fromEntries([...this.set.values()].map((entry) => [entry.name, entry.value]));
    if (this.add.size > 0) out.add = Object.fromEntries([...this.add.values()].map((entry) => [entry.name, entry.values.join(', ')]));
    return out;
  }
}

function isAuthRequire(require: ApacheDirective): boolean {
  const first = (require.args[0] ?? '').toLowerCase();
  if (first === 'all' || first === 'ip' || first === 'local') return false;
  if (first === 'not') return (require.args[1] ?? '').toLowerCase() !== 'ip';
  return true;
}

function precedence(earlier: Kind, later: Kind): string {
  if (earlier === 'rewrite') return 'RewriteRule runs before ProxyPass and Redirect';
  if (later === 'redirect') return 'mod_proxy maps a URL before mod_alias (Redirect) sees it';
  if (earlier === 'location' && later === 'location') return 'Apache merges <Location> sections in order and the last one that matches wins: put the more specific <Location> after the general one';
  if (earlier === 'location') return 'a ProxyPass inside <Location> takes precedence over ProxyPass outside';
  return 'the first matching ProxyPass wins: put longer paths first';
}

/** Whether a <Location> holds all of a route's requests, part of them, or none. */
function locationCoverage(location: LocationBlock, route: PendingRoute): 'all' | 'part' | 'none' {
  if (route.location === location) return 'all';
  if (location.regex) return 'none';
  const path = location.path;
  if (route.apachePrefix !== undefined) {
    if (hasPathPrefix(route.apachePrefix, path) || path === '/') return 'all';
    return hasPathPrefix(path, route.apachePrefix) || route.apachePrefix === '/' ? 'part' : 'none';
  }
  if (path === '/') return 'all';
  const regex = route.route.match?.regex;
  if (regex === undefined) return route.route.match?.prefix === undefined ? 'part' : 'none';
  const literal = anchoredLiteral(regex) ?? '';
  if (literal !== '' && hasPathPrefix(literal, path) && (path.endsWith('/') || literal.length === path.length || literal[path.length] === '/')) return 'all';
  return literal === '' || path.startsWith(literal) ? 'part' : 'none';
}

function reverseRewriteByDefault(route: PendingRoute): boolean {
  return route.route.strip_prefix === true || route.route.rewrite !== undefined || route.backendPath.replace(/\/$/, '') !== '' || route.route.preserve_host === false;
}

function withSlash(path: string): string {
  return path.endsWith('/') ? path : `${path}/`;
}

function normalisePath(path: string): string {
  return path.replace(/\/+$/, '') || '/';
}

function normaliseUrl(url: string): string {
  const parsed = parseBackendUrl(url);
  if (typeof parsed === 'string') return url;
  const scheme = parsed.scheme === 'ws' ? 'http' : parsed.scheme === 'wss' ? 'https' : parsed.scheme;
  return `${scheme}://${parsed.authority.toLowerCase()}${parsed.path.replace(/\/+$/, '')}`;
}

function authorityOf(url: string): string | undefined {
  const parsed = parseBackendUrl(url);
  return typeof parsed === 'string' ? undefined : parsed.authority.toLowerCase();
}

function hostOf(authority: string): string {
  return authority.startsWith('[') ? authority.slice(0, authority.indexOf(']') + 1) : authority.replace(/:\d+$/, '');
}

/** A literal URL in a redirect template: $ doubles. */
function escapeTemplate(text: string): string {
  return text.replace(/\$/g, '$$$$');
}

export type { BackendUrl };
