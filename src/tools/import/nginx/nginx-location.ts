import type { ConfigDraft, DraftRoute } from '../config-draft.js';
import type { ImportReport } from '../import-report.js';
import { sourceLabel } from '../source-location.js';
import { escapeRegex, formatDuration, parseDurationMs, toJsRegex } from '../values.js';
import type { NginxDirective } from './nginx-parser.js';
import { childScope, type NginxScope } from './nginx-scope.js';
import type { NginxUpstreams } from './nginx-upstreams.js';

/** A location's place in nginx's choice: exact, then ^~ prefixes, then regexes in order, then prefixes (longest first). */
export type LocationKind = 'exact' | 'slash-redirect' | 'priority-prefix' | 'regex' | 'prefix';

export interface TranslatedLocation {
  readonly kind: LocationKind;
  readonly path: string;
  readonly order: number;
  readonly route: DraftRoute;
  /** Routes of the same location that must come first (a WebSocket-only split, a rewrite). */
  readonly before: readonly DraftRoute[];
  readonly source: NginxDirective;
}

/** Below this, a read timeout cuts quiet WebSockets (nginx's 60 s default is the classic case). */
const SHORT_TUNNEL_MS = 5 * 60_000;
const HOP_BY_HOP = new Set(['upgrade', 'connection']);
const REDUNDANT_FORWARDED: Readonly<Record<string, RegExp>> = {
  'x-forwarded-for': /^\$(proxy_add_x_forwarded_for|remote_addr)$/,
  'x-forwarded-proto': /^\$scheme$/,
  'x-forwarded-host': /^\$(host|http_host|server_name)$/,
  'x-forwarded-port': /^\$server_port$/,
};

export class NginxLocationTranslator {
  /** The upstream group the last proxy_pass named (nginx sends its name as Host by default). */
  private upstreamGroup: string | undefined;
  /** Whether this server's first location without Upgrade headers was pointed out. */
  private webSocketsNoted = false;

  constructor(
    private readonly draft: ConfigDraft,
    private readonly report: ImportReport,
    private readonly handled: Set<NginxDirective>,
    private readonly upstreams: NginxUpstreams,
    private readonly firstServerName: string | undefined,
    /** http-level `map` blocks by the variable they define (without "$"). */
    private readonly maps: ReadonlyMap<string, NginxDirective>,
    /** Server-level `set $name constant` values. */
    private readonly variables: ReadonlyMap<string, string>,
    /** Each translated location's effective client_max_body_size (undefined: nginx's default 1m). */
    private readonly onBodyLimit: (directive: NginxDirective | undefined) => void,
  ) {}

  /** The route for `location [modifier] path { ... }`, or undefined (then it is reported). */
  location(directive: NginxDirective, parentScope: NginxScope, order: number, named: ReadonlyMap<string, NginxDirective>): TranslatedLocation[] {
    this.handled.add(directive);
    const text = `location ${directive.args.join(' ')}`;
    const [first, second] = directive.args;
    let kind: LocationKind;
    let path: string;
    if (second === undefined) {
      kind = 'prefix';
      path = first ?? '/';
    } else if (first === '=') {
      kind = 'exact';
      path = second;
    } else if (first === '^~') {
      kind = 'priority-prefix';
      path = second;
    } else if (first === '~' || first === '~*') {
      kind = 'regex';
      path = second;
    } else {
      this.report.skip(directive.location, text, `location modifier "${first ?? ''}" is not nginx's`);
      return [];
    }
    // Named locations are reached through try_files; the server lists those nothing used.
    if (path.startsWith('@')) return [];
    let block = directive.block ?? [];
    let scope = childScope(parentScope, block, this.handled);
    const route: DraftRoute = {};
    this.draft.comment(route, `${sourceLabel(directive.location)} ${text}`);
    if (kind === 'exact') route.match = { exact: path };
    else if (kind === 'regex') {
      const regex = toJsRegex(path, first === '~*');
      if (regex === undefined) {
        this.report.skip(directive.location, text, 'the regular expression is not valid in JavaScript');
        this.markAll(directive);
        return [];
      }
      route.match = { regex };
    } else if (path !== '/') {
      route.match = { prefix: path };
      if (!path.endsWith('/')) this.draft.comment(route, `nginx matched any path starting with "${path}" (also "${path}x"); Switchyard's prefix stops at a segment boundary`);
    }

    const nested = block.filter((inner) => inner.name === 'location');
    for (const inner of nested) {
      this.report.skip(inner.location, `location ${inner.args.join(' ')}`, 'nested locations are not translated (flatten them into the server)');
      this.markAll(inner);
    }
    // try_files $uri @app: nginx served files first, then the named location; Switchyard proxies it all.
    const tryFiles = block.find((inner) => inner.name === 'try_files');
    const fallback = tryFiles?.args[tryFiles.args.length - 1];
    const namedTarget = fallback?.startsWith('@') ? named.get(fallback) : undefined;
    if (tryFiles && namedTarget && !block.some((inner) => inner.name === 'proxy_pass' || inner.name === 'return')) {
      this.handled.add(tryFiles);
      this.markAll(namedTarget);
      this.report.advise(tryFiles.location, `try_files ${tryFiles.args.join(' ')}`, `nginx served existing files first; Switchyard sends every request here to ${fallback}'s backend (serve static files from the app or a file server)`);
      this.draft.comment(route, `${sourceLabel(namedTarget.location)} location ${fallback} (reached through try_files)`);
      scope = childScope(scope, namedTarget.block ?? [], this.handled);
      block = [...block, ...(namedTarget.block ?? [])];
    }
    const variables = new Map(this.variables);
    for (const inner of block) {
      if (inner.name === 'set' && inner.args[0]?.startsWith('$') && inner.args[1] !== undefined && !inner.args[1].includes('$')) {
        variables.set(inner.args[0].slice(1), inner.args[1]);
        this.handled.add(inner);
      }
    }
    for (const auth of block.filter((inner) => /^auth_(basic|request|jwt)$/.test(inner.name))) {
      this.handled.add(auth);
      if (auth.args[0] === 'off') continue;
      this.report.advise(auth.location, `${auth.name} ${auth.args.join(' ')}`, 'Switchyard does not authenticate: this path is now open to anyone who reaches it; put authentication in the app or in front');
    }
    for (const inner of block.filter((entry) => /^(auth_basic_user_file|auth_request_set)$/.test(entry.name))) this.handled.add(inner);

    const action = block.find((inner) => ['proxy_pass', 'return'].includes(inner.name));
    const unsupported = block.find((inner) => /^(root|alias|try_files|fastcgi_pass|uwsgi_pass|scgi_pass|grpc_pass|memcached_pass|index|autoindex)$/.test(inner.name));
    const denyAll = scope.access.length > 0 && scope.access.every((rule) => rule.name === 'deny') && scope.access.some((rule) => rule.args[0] === 'all');
    if (!action && denyAll) {
      // location ~ /\.ht { deny all; }: nginx answered 403.
      route.respond = { status: 403 };
      this.markAll(directive);
      return [{ kind, path, order, route, before: [], source: directive }];
    }
    if (!action) {
      const what = unsupported ? `serves with "${unsupported.name}"` : 'has no proxy_pass or return';
      this.report.skip(directive.location, text, `${what}: Switchyard proxies only; requests here go to the next matching route`);
      this.markAll(directive);
      return [];
    }
    const before: DraftRoute[] = [];
    if (action.name === 'return') {
      if (!this.returnAction(action, route)) {
        this.markAll(directive);
        return [];
      }
    } else {
      const target = substitute(action.args[0] ?? '', variables);
      const upgradeSplit = this.upgradeMapSplit(action, target, route, before);
      if (!upgradeSplit && !this.proxyPass(action, target, route, kind, path)) {
        this.markAll(directive);
        return [];
      }
    }
    this.handled.add(action);
    if (action.name === 'proxy_pass') {
      this.rewriteBreak(block, route, before);
      this.upgradeIfs(block, route, before, variables, kind, path);
    }
    const upgrades = scope.setHeaders.some((header) => (header.args[0] ?? '').toLowerCase() === 'upgrade');
    if (route.to !== undefined && !upgrades && before.length === 0 && !this.webSocketsNoted) {
      this.webSocketsNoted = true;
      this.report.advise(directive.location, text, 'nginx passed no WebSockets here (no Upgrade headers); Switchyard forwards them on every route (add match.upgrade: none to a route that must refuse them)');
    }
    for (const part of [...before, route]) {
      if (part.to !== undefined) this.proxySettings(part, scope);
      this.access(part, scope);
      this.responseHeaders(part, scope);
    }
    this.onBodyLimit(scope.single.get('client_max_body_size'));
    const translated: TranslatedLocation[] = [{ kind, path, order, route, before, source: directive }];
    // nginx answers "/app" with 301 to "/app/" when only a proxied "location /app/" takes it.
    if (action.name === 'proxy_pass' && (kind === 'prefix' || kind === 'priority-prefix') && path.length > 1 && path.endsWith('/')) {
      const redirect: DraftRoute = { match: { exact: path.slice(0, -1) }, redirect: { status: 301, location: path } };
      this.draft.comment(redirect, `${sourceLabel(directive.location)} nginx redirects ${path.slice(0, -1)} to ${path} for this location`);
      translated.push({ kind: 'slash-redirect', path: path.slice(0, -1), order, route: redirect, before: [], source: directive });
    }
    return translated;
  }

  /**
   * `map $http_upgrade $backend { default app; websocket ws; }` with
   * `proxy_pass http://$backend`: a WebSocket-only route to one, the rest to the other.
   */
  private upgradeMapSplit(directive: NginxDirective, target: string, route: DraftRoute, before: DraftRoute[]): boolean {
    const variable = /^(https?:\/\/)\$(\w+)$/.exec(target);
    const map = variable ? this.maps.get(variable[2]!) : undefined;
    if (!variable || !map || map.args[0] !== '$http_upgrade') return false;
    let fallback: string | undefined;
    let websocket: string | undefined;
    for (const entry of map.block ?? []) {
      if (entry.name === 'default') fallback = entry.args[0];
      else if (/^(~\*)?websocket$/i.test(entry.name)) websocket = entry.args[0];
    }
    if (fallback === undefined || websocket === undefined) return false;
    const wsRoute: DraftRoute = { ...structuredClone(route), match: { ...route.match, upgrade: 'websocket' } };
    this.draft.comment(wsRoute, `${sourceLabel(directive.location)} proxy_pass ${target} when $http_upgrade is websocket (${sourceLabel(map.location)} map)`);
    if (!this.proxyPass(directive, `${variable[1]!}${websocket}`, wsRoute, 'prefix', '/')) return false;
    if (!this.proxyPass(directive, `${variable[1]!}${fallback}`, route, 'prefix', '/')) return false;
    this.report.advise(map.location, `map $http_upgrade $${variable[2]!}`, 'translated as a route with match.upgrade: websocket before the route for other requests');
    before.push(wsRoute);
    return true;
  }

  /** `if ($http_upgrade = websocket) { proxy_pass ...; }` in a location: a WebSocket-only route first. */
  private upgradeIfs(block: readonly NginxDirective[], route: DraftRoute, before: DraftRoute[], variables: ReadonlyMap<string, string>, kind: LocationKind, path: string): void {
    for (const inner of block.filter((entry) => entry.name === 'if')) {
      const condition = inner.args.join(' ').replace(/^\(|\)$/g, '').trim();
      const pass = (inner.block ?? []).find((entry) => entry.name === 'proxy_pass');
      this.markAll(inner);
      if (!/^\$http_upgrade\s*(=|~\*?)\s*"?\^?websocket\$?"?$/i.test(condition) || !pass || (inner.block ?? []).length !== 1) {
        this.report.skip(inner.location, `if ${inner.args.join(' ')}`, 'if blocks are not translated (only "if ($http_upgrade = websocket) { proxy_pass ...; }")');
        continue;
      }
      const wsRoute: DraftRoute = { match: { ...route.match, upgrade: 'websocket' } };
      this.draft.comment(wsRoute, `${sourceLabel(inner.location)} if ${inner.args.join(' ')}`);
      if (this.proxyPass(pass, substitute(pass.args[0] ?? '', variables), wsRoute, kind, path)) before.push(wsRoute);
    }
  }

  /** `rewrite ^/app(/.*)$ $1 break;` beside proxy_pass: the path the backend sees, as a regex route before the location's own. */
  private rewriteBreak(block: readonly NginxDirective[], route: DraftRoute, before: DraftRoute[]): void {
    for (const rewrite of block.filter((entry) => entry.name === 'rewrite')) {
      this.handled.add(rewrite);
      const [pattern = '', replacement = '', flag] = rewrite.args;
      const text = `rewrite ${rewrite.args.join(' ')}`;
      const regex = toJsRegex(pattern, false);
      if ((flag !== 'break' && flag !== 'last') || regex === undefined || replacement.includes('://') || /\$[a-z_]/i.test(replacement.replace(/\$\{?\d\}?/g, ''))) {
        this.report.skip(rewrite.location, text, 'only "rewrite REGEX /path$1 break" beside proxy_pass is translated');
        continue;
      }
      const rewritten: DraftRoute = { ...structuredClone(route), match: { ...route.match, regex }, rewrite: replacement.replace(/\?$/, '') };
      if (rewritten.match) delete rewritten.match.prefix;
      if (rewritten.strip_prefix) delete rewritten.strip_prefix;
      this.draft.comment(rewritten, `${sourceLabel(rewrite.location)} ${text}${flag === 'last' ? ' (nginx then looked for a location again; here the same backend takes it)' : ''}`);
      before.push(rewritten);
    }
  }

  /** `return CODE [TEXT|URL]` or `return URL` as a redirect or a local answer. */
  returnAction(directive: NginxDirective, route: DraftRoute): boolean {
    const text = `return ${directive.args.join(' ')}`;
    const [first, second] = directive.args;
    const code = first !== undefined && /^\d{3}$/.test(first) ? Number(first) : 302;
    const target = first !== undefined && /^\d{3}$/.test(first) ? second : first;
    if ([301, 302, 303, 307, 308].includes(code)) {
      const location = target === undefined ? undefined : this.template(target);
      if (location === undefined) {
        this.report.skip(directive.location, text, 'the redirect target uses variables Switchyard has no equivalent for');
        return false;
      }
      route.redirect = { status: code as 301 | 302 | 303 | 307 | 308, location };
      return true;
    }
    if (code === 444) {
      this.report.skip(directive.location, text, 'closing without an answer (444) has no Switchyard equivalent');
      return false;
    }
    if (code < 100 || code > 599) return false;
    route.respond = { status: code, ...(target !== undefined ? { body: target } : {}) };
    return true;
  }

  /** nginx variables in a redirect target → Switchyard's template; undefined when one has no equivalent. */
  template(target: string): string | undefined {
    let unknown = false;
    const out = target.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => {
      if (/^\d$/.test(name)) return `$${name}`;
      switch (name) {
        case 'host': return '$hostname';
        case 'http_host': return '$host';
        case 'scheme': return '$scheme';
        case 'request_uri': case 'uri': case 'document_uri': return '$path';
        case 'is_args': return '';
        case 'args': case 'query_string': return '$query';
        case 'server_name': if (this.firstServerName) return this.firstServerName; break;
        default: break;
      }
      unknown = true;
      return whole;
    });
    // "$path?$query" became "$path?$query" with $query holding its own "?": drop the doubled one.
    return unknown ? undefined : out.replace('?$query', '$query');
  }

  private proxyPass(directive: NginxDirective, target: string, route: DraftRoute, kind: LocationKind, path: string): boolean {
    const text = `proxy_pass ${directive.args[0] ?? ''}`;
    const parsed = /^(https?):\/\/([^/$]+)(\/.*)?$/.exec(target);
    // In a regex location, captures in the URI name the whole path sent ("proxy_pass http://b/$1").
    if (parsed && kind === 'regex' && parsed[3] !== undefined && /^[^$]*(\$\{?\d\}?[^$]*)+$/.test(parsed[3])) {
      const base = this.target(parsed[1] as 'http' | 'https', parsed[2]!, route);
      if (base === undefined) return true;
      route.to = base;
      route.rewrite = parsed[3];
      this.draft.comment(route, 'nginx sent this path without the query (a proxy_pass with variables); Switchyard keeps the query');
      return true;
    }
    if (!parsed || target.includes('$')) {
      this.report.skip(directive.location, text, target.includes('$') ? 'a proxy_pass with variables is decided per request; Switchyard needs a fixed target' : 'not an http:// or https:// target');
      return false;
    }
    const scheme = parsed[1] as 'http' | 'https';
    const authority = parsed[2]!;
    const uri = parsed[3];
    if (scheme === 'https') {
      this.report.advise(directive.location, text, 'nginx does not verify backend certificates unless proxy_ssl_verify is on; Switchyard does: give the upstream tls.ca if the backend\'s certificate is not publicly trusted');
    }
    const base = this.target(scheme, authority, route);
    if (base === undefined) return true;
    if (uri === undefined) {
      route.to = base;
      return true;
    }
    // proxy_pass with a URI replaces the matched part of the path with it.
    if (kind === 'regex') {
      this.report.skip(directive.location, text, 'nginx does not allow a URI in proxy_pass inside a regex location');
      return false;
    }
    if (kind === 'exact') {
      route.to = base;
      route.rewrite = uri;
      return true;
    }
    if (!this.upstreams.has(authority) && path.endsWith('/') === uri.endsWith('/')) {
      route.to = `${base}${uri.replace(/\/$/, '')}`;
      if (path !== '/') route.strip_prefix = true;
      return true;
    }
    route.to = base;
    route.match = { regex: `^${escapeRegex(path)}(.*)$` };
    route.rewrite = `${uri}$1`;
    return true;
  }

  /** `to` for scheme://authority: an upstream group's name or a URL; undefined (and a 503 route) for a group without usable servers. */
  private target(scheme: 'http' | 'https', authority: string, route: DraftRoute): string | undefined {
    this.upstreamGroup = this.upstreams.has(authority) ? authority : undefined;
    if (!this.upstreams.has(authority)) return `${scheme}://${authority}`;
    const name = this.upstreams.use(authority, scheme);
    if (name === undefined) {
      route.respond = { status: 503 };
      this.draft.comment(route, `upstream ${authority} has no server Switchyard can use: 503`);
    }
    return name;
  }

  private proxySettings(route: DraftRoute, scope: NginxScope): void {
    const upgradeHeader = scope.setHeaders.find((header) => (header.args[0] ?? '').toLowerCase() === 'upgrade');
    const upgrades = upgradeHeader !== undefined;
    let preserveHost = false;
    for (const header of scope.setHeaders) {
      const [name = '', value = ''] = header.args;
      const lower = name.toLowerCase();
      const text = `proxy_set_header ${header.args.join(' ')}`;
      if (HOP_BY_HOP.has(lower)) {
        this.report.advise(header.location, text, 'redundant: Switchyard forwards WebSocket upgrades on every route by itself (hop-by-hop headers cannot be copied by hand)');
      } else if (lower === 'host') {
        if (/^\$(host|http_host)$/.test(value)) preserveHost = true;
        else if (!value.includes('$')) {
          // A fixed Host (a name-based virtual host behind): set it; preserve_host off would overwrite it.
          preserveHost = true;
          ((route.request_headers ??= {}).set ??= {}).Host = value;
        } else if (value !== '$proxy_host') this.report.skip(header.location, text, 'Switchyard sends the client\'s Host, the upstream\'s or a fixed one, not another variable');
      } else if (REDUNDANT_FORWARDED[lower]?.test(value)) {
        this.report.advise(header.location, text, `redundant: Switchyard sets ${name} itself`);
      } else if (!value.includes('$')) {
        route.request_headers ??= {};
        if (value === '') (route.request_headers.remove ??= []).push(name);
        else (route.request_headers.set ??= {})[name] = value;
      } else {
        this.report.skip(header.location, text, `header values with variables are not supported${lower === 'x-real-ip' ? ' (Switchyard sends the client in X-Forwarded-For)' : ''}`);
      }
    }
    // nginx sends the upstream's name ($proxy_host) unless told otherwise.
    if (!preserveHost && this.upstreamGroup !== undefined) {
      // $proxy_host of an upstream group is the group's name.
      ((route.request_headers ??= {}).set ??= {}).Host = this.upstreamGroup;
      this.draft.comment(route, `nginx sent the upstream group's name as Host (no "proxy_set_header Host $host"); remove request_headers.set.Host to send the client's`);
    } else if (!preserveHost) {
      route.preserve_host = false;
      this.draft.comment(route, 'nginx sent the upstream\'s host name (no "proxy_set_header Host $host"); preserve_host: true sends the client\'s');
    }
    const version = scope.single.get('proxy_http_version');
    if (version) this.report.advise(version.location, `proxy_http_version ${version.args.join(' ')}`, 'redundant: Switchyard speaks HTTP/1.1 to backends');
    for (const name of ['proxy_buffering', 'proxy_request_buffering', 'proxy_cache']) {
      const directive = scope.single.get(name);
      if (directive && directive.args[0] === 'off') this.report.advise(directive.location, `${name} off`, 'redundant: Switchyard never buffers or caches');
      else if (directive) this.report.skip(directive.location, `${name} ${directive.args.join(' ')}`, 'Switchyard neither buffers nor caches');
    }
    const redirect = scope.single.get('proxy_redirect');
    if (redirect?.args[0] === 'off') route.reverse_rewrite = false;
    else if (redirect && redirect.args[0] !== 'default') this.report.skip(redirect.location, `proxy_redirect ${redirect.args.join(' ')}`, 'Switchyard maps Location back automatically (reverse_rewrite) but takes no custom mapping');
    for (const name of ['proxy_cookie_domain', 'proxy_cookie_path']) {
      const directive = scope.single.get(name);
      if (directive) this.report.advise(directive.location, `${name} ${directive.args.join(' ')}`, 'Switchyard\'s reverse_rewrite maps cookie Domain and Path back to the client-facing ones automatically; custom mappings are not supported');
    }
    this.timeouts(route, scope, upgrades);
    if (upgradeHeader && !scope.single.has('proxy_read_timeout')) {
      this.report.advise(upgradeHeader.location, 'proxy_read_timeout (not set: 60s)', 'nginx closed WebSockets quiet for 60 s (its default read timeout); Switchyard keeps them for tunnel_idle (1h by default)');
    }
    const verify = scope.single.get('proxy_ssl_verify');
    if (verify) this.report.advise(verify.location, `proxy_ssl_verify ${verify.args.join(' ')}`, 'Switchyard always verifies https backends unless an upstream sets tls.insecure');
  }

  private timeouts(route: DraftRoute, scope: NginxScope, upgrades: boolean): void {
    const read = scope.single.get('proxy_read_timeout');
    const send = scope.single.get('proxy_send_timeout');
    const connect = scope.single.get('proxy_connect_timeout');
    const readMs = read ? parseDurationMs(read.args[0] ?? '', 's') : undefined;
    const timeouts: NonNullable<DraftRoute['timeouts']> = {};
    if (read && readMs !== undefined) {
      const text = `proxy_read_timeout ${read.args.join(' ')}`;
      if (upgrades && readMs < SHORT_TUNNEL_MS) {
        this.report.advise(read.location, text, `nginx closed WebSockets quiet for ${formatDuration(readMs)}; not carried over to tunnel_idle (Switchyard's default is 1h; add websocket.ping to keep NAT paths open)`);
        timeouts.response = formatDuration(readMs);
      } else if (upgrades) {
        // nginx's read timeout bounds HTTP responses on this location too.
        timeouts.tunnel_idle = formatDuration(readMs);
        timeouts.response = formatDuration(readMs);
      } else {
        timeouts.response = formatDuration(readMs);
      }
    }
    if (send) {
      const sendMs = parseDurationMs(send.args[0] ?? '', 's');
      if (sendMs !== readMs) this.report.skip(send.location, `proxy_send_timeout ${send.args.join(' ')}`, 'Switchyard has one idle timeout for both directions (tunnel_idle)');
    }
    const connectMs = connect ? parseDurationMs(connect.args[0] ?? '', 's') : undefined;
    if (connectMs !== undefined) timeouts.connect = formatDuration(connectMs);
    if (Object.keys(timeouts).length > 0) route.timeouts = timeouts;
  }

  private access(route: DraftRoute, scope: NginxScope): void {
    if (scope.access.length === 0) return;
    const rules = scope.access.map((directive) => ({ allow: directive.name === 'allow', value: directive.args[0] ?? '' }));
    const last = rules[rules.length - 1]!;
    const head = rules.slice(0, -1);
    const text = scope.access.map((directive) => `${directive.name} ${directive.args.join(' ')}`).join('; ');
    if (!last.allow && last.value === 'all' && head.every((rule) => rule.allow && rule.value !== 'all')) {
      if (head.length === 0) route.respond = { status: 403 };
      else route.allow = head.map((rule) => rule.value);
    } else if (rules.every((rule) => !rule.allow && rule.value !== 'all')) {
      route.deny = rules.map((rule) => rule.value);
    } else if (last.allow && last.value === 'all' && head.every((rule) => !rule.allow && rule.value !== 'all')) {
      if (head.length > 0) route.deny = head.map((rule) => rule.value);
    } else {
      this.report.skip(scope.access[0]!.location, text, 'this mix of allow and deny has no Switchyard equivalent (allow: list, deny: list)');
      return;
    }
    if (route.respond) {
      delete route.to;
      this.draft.comment(route, 'nginx denied everyone here');
    }
  }

  private responseHeaders(route: DraftRoute, scope: NginxScope): void {
    for (const header of scope.addHeaders) {
      const [name = '', value = ''] = header.args;
      if (value.includes('$')) {
        this.report.skip(header.location, `add_header ${header.args.join(' ')}`, 'header values with variables are not supported');
        continue;
      }
      route.response_headers ??= {};
      (route.response_headers.set ??= {})[name] = value;
    }
  }

  /** Marks a directive and everything inside it as dealt with (reported once, as a whole). */
  markAll(directive: NginxDirective): void {
    this.handled.add(directive);
    for (const inner of directive.block ?? []) this.markAll(inner);
  }
}

/**
 * Routes in the order nginx would pick them, for Switchyard's first match:
 * exact locations; `^~` prefixes (longest first); regexes as written; plain
 * prefixes (longest first). nginx takes the longest matching prefix first and
 * skips the regexes only when that one is `^~`, so a `^~` prefix with a longer
 * plain prefix inside it must not take that one's requests: its route becomes
 * a regex that leaves them out.
 */
export function orderLocations(all: readonly TranslatedLocation[], draft: ConfigDraft): DraftRoute[] {
  // A location of its own for "/app" takes that path; nginx does not redirect it then.
  const locations = all.filter((entry) => entry.kind !== 'slash-redirect' || !all.some((other) => other !== entry && other.kind !== 'regex' && other.kind !== 'slash-redirect' && other.path === entry.path));
  const exact = locations.filter((entry) => entry.kind === 'exact' || entry.kind === 'slash-redirect').sort((a, b) => a.order - b.order);
  const regexes = locations.filter((entry) => entry.kind === 'regex').sort((a, b) => a.order - b.order);
  const prefixes = locations.filter((entry) => entry.kind === 'prefix' || entry.kind === 'priority-prefix').sort((a, b) => b.path.length - a.path.length || a.order - b.order);
  const early: TranslatedLocation[] = [];
  const late: TranslatedLocation[] = [];
  for (const prefix of prefixes) {
    if (prefix.kind === 'prefix') {
      late.push(prefix);
      continue;
    }
    const inner = prefixes.filter((other) => other.kind === 'prefix' && other.path.length > prefix.path.length && other.path.startsWith(prefix.path));
    if (inner.length === 0 || regexes.length === 0) {
      early.push(prefix);
    } else if (prefix.route.strip_prefix || prefix.route.rewrite !== undefined) {
      draft.comment(prefix.route, `nginx checked regex locations first for paths under ${inner.map((other) => other.path).join(', ')}; here this route takes them after the regexes`);
      late.push(prefix);
    } else {
      const rest = inner.map((other) => escapeRegex(other.path.slice(prefix.path.length))).join('|');
      prefix.route.match = { ...prefix.route.match, regex: `^${escapeRegex(prefix.path)}(?!${rest})` };
      delete prefix.route.match.prefix;
      draft.comment(prefix.route, `^~ ${prefix.path} without the longer prefixes inside it (${inner.map((other) => other.path).join(', ')}), which nginx handled as ordinary prefixes`);
      early.push(prefix);
    }
  }
  return [...exact, ...early, ...regexes, ...late].flatMap((location) => [...location.before, location.route]);
}

/** `$name` / `${name}` replaced by constant `set` values; others stay. */
function substitute(text: string, variables: ReadonlyMap<string, string>): string {
  return text.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => variables.get(name) ?? whole);
}
