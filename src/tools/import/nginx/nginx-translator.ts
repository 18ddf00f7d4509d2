import { dirname, isAbsolute, resolve } from 'node:path';
import { ConfigDraft, type DraftListener, type DraftRoute, type DraftSite } from '../config-draft.js';
import { ImportError } from '../import-error.js';
import { ImportReport } from '../import-report.js';
import { sourceLabel } from '../source-location.js';
import type { Translation } from '../translation.js';
import { escapeRegex, formatDuration, listenAddress, parseDurationMs, splitHostPort, toJsRegex } from '../values.js';
import { NginxLocationTranslator, orderLocations, type TranslatedLocation } from './nginx-location.js';
import { parseNginxFile, type NginxDirective } from './nginx-parser.js';
import { childScope, EMPTY_SCOPE, type NginxScope } from './nginx-scope.js';
import { NginxUpstreams } from './nginx-upstreams.js';

/** Directives that only matter to a server of files, to nginx's own processes, or to logging detail. */
const NOT_FOR_A_PROXY = /^(sendfile|tcp_nopush|tcp_nodelay|types_hash_max_size|types|default_type|gzip.*|server_tokens|charset|index|root|autoindex|expires|etag|open_file_cache.*|log_format|error_log|pid|user|worker_connections|worker_rlimit_nofile|multi_accept|use|error_page|ssl_session_.*|ssl_stapling.*|ssl_dhparam|ssl_ecdh_curve|ssl_trusted_certificate|resolver.*|server_names_hash_.*|client_body_buffer_size|proxy_buffers?|proxy_buffer_size|proxy_busy_buffers_size|proxy_temp_.*|load_module|include)$/;

/**
 * Translates an nginx config (a whole nginx.conf, or a sites-enabled file of
 * `server` blocks) into a Switchyard config.
 */
export function translateNginx(file: string): Translation {
  const report = new ImportReport();
  const draft = new ConfigDraft();
  const directives = parseNginxFile(file, report);
  new NginxTranslator(file, draft, report).translate(directives);
  return { draft, report };
}

interface ServerListen {
  readonly address: string;
  readonly tls: boolean;
  readonly isDefault: boolean;
}

class NginxTranslator {
  private readonly handled = new Set<NginxDirective>();
  private readonly upstreams: NginxUpstreams;
  /** Per listener address: the site nginx used for unknown names (default_server, else the first). */
  private readonly defaults = new Map<string, { site: DraftSite; explicit: boolean }>();
  private readonly siteListens = new Map<DraftSite, ServerListen[]>();
  private readonly realIpFrom: string[] = [];
  private readonly bodyLimits = new Set<NginxDirective>();
  private readonly maps = new Map<string, NginxDirective>();
  /** Effective client_max_body_size of every translated location, in bytes (0: no limit). */
  private readonly locationBodyLimits: { bytes: number; directive: NginxDirective | undefined }[] = [];
  /** Per TLS listener: the names of the server whose certificate is the default, and whether a default_server set it. */
  private readonly tlsOwners = new Map<DraftListener, string[]>();
  private readonly explicitTlsDefault = new Set<DraftListener>();

  constructor(
    private readonly file: string,
    private readonly draft: ConfigDraft,
    private readonly report: ImportReport,
  ) {
    this.upstreams = new NginxUpstreams(draft, report, this.handled);
  }

  translate(main: readonly NginxDirective[]): void {
    const http = main.filter((directive) => directive.name === 'http');
    if (http.length === 0 && !main.some((directive) => directive.name === 'server')) {
      const first = main[0];
      throw new ImportError(first?.location ?? { file: this.file, line: 1, column: 1 }, 'no http or server block: not an nginx config with anything to proxy');
    }
    for (const directive of main) this.mainDirective(directive);
    // A sites-enabled file is the inside of http: its servers and upstreams sit at the top.
    const blocks = http.length > 0 ? http.map((directive) => directive.block ?? []) : [main];
    for (const block of blocks) this.http(block);
    this.upstreams.reportUnused();
    this.applyDefaults();
    this.applyBodyLimit();
    if (this.draft.sites.length === 0) {
      throw new ImportError(http[0]?.location ?? main[0]?.location ?? { file: this.file, line: 1, column: 1 }, 'no server block with a location Switchyard can translate');
    }
    this.reportUnhandled(main);
  }

  private mainDirective(directive: NginxDirective): void {
    const text = `${directive.name} ${directive.args.join(' ')}`;
    if (directive.name === 'worker_processes') {
      this.handled.add(directive);
      const count = Number(directive.args[0]);
      if (Number.isInteger(count) && count > 1 && count <= 256) this.draft.rest.workers = count;
      else if (directive.args[0] === 'auto') this.report.skip(directive.location, text, 'Switchyard runs one process unless workers: N is set (one per core is a good start)');
      else this.handled.add(directive);
    } else if (directive.name === 'stream') {
      this.report.skip(directive.location, 'stream { ... }', 'TCP/UDP proxying (stream) is not HTTP: not translated');
      this.markAll(directive);
    } else if (directive.name === 'events') {
      this.markAll(directive);
    }
  }

  private http(block: readonly NginxDirective[]): void {
    const scope = childScope(EMPTY_SCOPE, block, this.handled);
    for (const directive of block) if (directive.name === 'upstream') this.upstreams.add(directive);
    for (const directive of block) this.httpDirective(directive);
    for (const directive of block) if (directive.name === 'server') this.server(directive, scope);
  }

  private httpDirective(directive: NginxDirective): void {
    const text = `${directive.name} ${directive.args.join(' ')}`;
    switch (directive.name) {
      case 'map': {
        this.markAll(directive);
        const defined = (directive.args[1] ?? '').replace(/^\$/, '');
        this.maps.set(defined, directive);
        const values = (directive.block ?? []).map((entry) => entry.args[0] ?? '');
        // The Connection idiom (values "upgrade"/"close"/"") is redundant; a map choosing backends is used by proxy_pass.
        if ((directive.args[0] ?? '') === '$http_upgrade' && values.every((value) => /^(upgrade|close|keep-alive|)$/i.test(value))) {
          this.report.advise(directive.location, text, 'redundant: the Connection header for upgrades is handled by Switchyard');
        } else if ((directive.args[0] ?? '') !== '$http_upgrade') {
          this.report.skip(directive.location, text, 'maps of variables have no Switchyard equivalent');
        }
        break;
      }
      case 'keepalive_timeout':
        this.duration(directive, (value) => { this.draft.timeouts.keep_alive = value; });
        break;
      case 'client_header_timeout':
        this.duration(directive, (value) => { this.draft.timeouts.header = value; });
        break;
      case 'access_log':
        this.handled.add(directive);
        if (directive.args[0] === 'off') this.draft.rest.access_log = false;
        else if (directive.args[0] !== undefined) {
          const format = directive.args[1];
          this.draft.rest.access_log = { path: this.path(directive.args[0]), format: format === undefined || format === 'combined' ? 'combined' : 'json' };
          if (format !== undefined && format !== 'combined') this.report.skip(directive.location, text, `custom log format "${format}": Switchyard writes json (or combined)`);
        }
        break;
      case 'set_real_ip_from':
        this.handled.add(directive);
        if (directive.args[0] !== undefined) this.realIpFrom.push(directive.args[0]);
        break;
      case 'real_ip_header':
        this.handled.add(directive);
        if (/^x-forwarded-for$/i.test(directive.args[0] ?? '')) this.draft.rest.trusted_proxies = this.realIpFrom;
        else if (directive.args[0] !== 'proxy_protocol') this.report.skip(directive.location, text, 'Switchyard believes X-Forwarded-For (trusted_proxies) or the PROXY protocol only');
        break;
      case 'real_ip_recursive':
        this.handled.add(directive);
        break;
      default:
        break;
    }
  }

  private noteBodyLimit(size: NginxDirective | undefined): void {
    const bytes = size ? parseSize(size.args[0] ?? '') : 1024 * 1024;
    if (bytes === undefined) {
      if (size && !this.bodyLimits.has(size)) this.report.skip(size.location, `client_max_body_size ${size.args.join(' ')}`, 'not a size');
      if (size) this.bodyLimits.add(size);
      return;
    }
    this.locationBodyLimits.push({ bytes, directive: size });
  }

  /**
   * nginx limits request bodies per location (1m unless told); Switchyard's
   * limit is global, so the largest one any translated location had applies.
   */
  private applyBodyLimit(): void {
    if (this.locationBodyLimits.length === 0) return;
    if (this.locationBodyLimits.some((entry) => entry.bytes === 0)) {
      const unlimited = this.locationBodyLimits.find((entry) => entry.bytes === 0)?.directive;
      if (this.locationBodyLimits.some((entry) => entry.bytes > 0) && unlimited) this.report.advise(unlimited.location, `client_max_body_size ${unlimited.args.join(' ')}`, 'Switchyard\'s body limit is global (limits.max_body_bytes): no limit, as here, applies to every route');
      return;
    }
    const largest = this.locationBodyLimits.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    this.draft.rest.limits = { ...this.draft.rest.limits, max_body_bytes: largest.bytes };
    if (this.locationBodyLimits.some((entry) => entry.bytes !== largest.bytes)) {
      const where = largest.directive?.location ?? { file: this.file, line: 1, column: 1 };
      this.report.advise(where, `client_max_body_size ${largest.directive?.args.join(' ') ?? '(default 1m)'}`, 'Switchyard\'s body limit is global (limits.max_body_bytes): the largest of the locations\' limits applies to every route');
    }
    if (!largest.directive) this.draft.comment(this.draft.rest.limits, 'nginx\'s default client_max_body_size (1m): no location set another');
  }

  private server(directive: NginxDirective, httpScope: NginxScope): void {
    this.handled.add(directive);
    const block = directive.block ?? [];
    const scope = childScope(httpScope, block, this.handled);
    const { names, unsupportedOnly } = this.serverNames(block);
    const listens = this.listens(block);
    if (unsupportedOnly) {
      this.report.skip(directive.location, `server ${directive.args.join(' ')}`.trim(), 'its only names are regular expressions Switchyard cannot take: the server is left out');
      this.markAll(directive);
      return;
    }
    // "if ($scheme = http)" tells the two kinds of listener apart: one site for each.
    const schemeIf = block.some((inner) => inner.name === 'if' && /\$scheme\b/.test(inner.args.join(' ')));
    const plain = listens.filter((listen) => !listen.tls);
    const secure = listens.filter((listen) => listen.tls);
    const groups: { listens: ServerListen[]; scheme: 'http' | 'https' | undefined }[] = schemeIf && plain.length > 0 && secure.length > 0
      ? [{ listens: secure, scheme: 'https' }, { listens: plain, scheme: 'http' }]
      : [{ listens, scheme: listens.every((listen) => listen.tls) ? 'https' : listens.every((listen) => !listen.tls) ? 'http' : undefined }];
    for (const group of groups) this.serverSite(directive, scope, names, group.listens, group.scheme, groups.length > 1);
  }

  private serverSite(directive: NginxDirective, scope: NginxScope, names: readonly string[], listens: ServerListen[], scheme: 'http' | 'https' | undefined, split: boolean): void {
    const block = directive.block ?? [];
    const primary = names.find((name) => name !== '*');
    const base = primary ?? `default_${listens[0]?.address.replace(/^:/, '') ?? '80'}`;
    const site: DraftSite = { name: this.draft.siteName(split && scheme === 'http' ? `${base}_http` : base), hosts: names.length > 0 ? [...names] : ['*'], routes: [] };
    this.draft.comment(site, `${sourceLabel(directive.location)} server${primary ? ` (${names.join(' ')})` : ''}${split ? `, its ${scheme ?? ''} listeners` : ''}`);
    const variables = new Map<string, string>();
    for (const inner of block) {
      if (inner.name === 'set' && inner.args[0]?.startsWith('$') && inner.args[1] !== undefined && !inner.args[1].includes('$')) {
        variables.set(inner.args[0].slice(1), inner.args[1]);
        this.handled.add(inner);
      }
    }
    const locations = new NginxLocationTranslator(this.draft, this.report, this.handled, this.upstreams, primary, this.maps, variables, (size) => this.noteBodyLimit(size));

    const routes: DraftRoute[] = [];
    const found: TranslatedLocation[] = [];
    for (const auth of block.filter((inner) => /^auth_(basic|request|jwt)$/.test(inner.name))) {
      this.handled.add(auth);
      if (auth.args[0] !== 'off') this.report.advise(auth.location, `${auth.name} ${auth.args.join(' ')}`, 'Switchyard does not authenticate: this server is now open to anyone who reaches it; put authentication in the app or in front');
    }
    for (const inner of block.filter((entry) => /^(auth_basic_user_file|auth_request_set)$/.test(entry.name))) this.handled.add(inner);
    const named = new Map(block.filter((inner) => inner.name === 'location' && inner.args[0]?.startsWith('@')).map((inner) => [inner.args[0]!, inner]));
    let order = 0;
    for (const inner of block) {
      if (routes.some((route) => route.match === undefined)) break;
      if (inner.name === 'location') {
        found.push(...locations.location(inner, scope, order++, named));
      } else if (inner.name === 'http2') {
        this.handled.add(inner);
        this.report.advise(inner.location, `http2 ${inner.args.join(' ')}`, 'redundant: Switchyard\'s TLS listeners speak HTTP/2 and HTTP/1.1 (ALPN)');
      } else if (inner.name === 'if') {
        const route = this.serverIf(inner, locations, scheme);
        if (route) routes.push(route);
      } else if (inner.name === 'return' || (inner.name === 'rewrite' && /^(permanent|redirect)$/.test(inner.args[2] ?? ''))) {
        const route = this.serverRedirect(inner, locations);
        if (route) routes.push(route);
      }
    }
    for (const [name, location] of named) {
      if (!this.handled.has(location)) {
        this.report.skip(location.location, `location ${name}`, 'a named location no translated try_files reaches');
        this.markAll(location);
      }
    }
    // A server-level return or redirecting rewrite for every request answers before any location is chosen.
    const serverReturns = routes.some((route) => route.match === undefined);
    if (!serverReturns) routes.push(...orderLocations(found, this.draft));
    else if (!split || scheme === 'http') {
      for (const location of found.filter((entry) => entry.kind !== 'slash-redirect')) this.report.skip(location.source.location, `location ${location.path}`, 'the server returns before any location is chosen');
    }
    if (routes.length === 0) {
      // A default server that only served files still owns its names and the unknown ones: nginx answered from it.
      if (!listens.some((listen) => listen.isDefault)) {
        this.report.skip(directive.location, `server ${names.join(' ')}`, 'no location Switchyard can translate: the server is left out');
        return;
      }
      const notFound: DraftRoute = { respond: { status: 404 } };
      this.draft.comment(notFound, 'nginx served files here (nothing to proxy); Switchyard answers 404 for its names, and for unknown ones as the default server');
      routes.push(notFound);
    }
    site.routes = routes;
    this.draft.sites.push(site);
    this.siteListens.set(site, listens);
    for (const listen of listens) this.bind(listen, site, scope, names, directive);
  }

  private serverNames(block: readonly NginxDirective[]): { names: string[]; unsupportedOnly: boolean } {
    const names: string[] = [];
    let unsupported = 0;
    for (const directive of block.filter((inner) => inner.name === 'server_name')) {
      this.handled.add(directive);
      for (const name of directive.args) {
        if (name === '_' || name === '' || name === '*' || name === 'localhost.localdomain') names.push('*');
        else if (name.startsWith('~')) {
          const wildcard = regexNameAsWildcard(name.slice(1));
          if (wildcard !== undefined) {
            names.push(wildcard);
            this.report.advise(directive.location, `server_name ${name}`, `translated as ${wildcard} (Switchyard's wildcard also takes deeper names)`);
          } else {
            unsupported += 1;
            this.report.skip(directive.location, `server_name ${name}`, 'regular expression server names are not supported (list the names, or use *.example.com)');
          }
        }
        else if (name.startsWith('.')) names.push(name.slice(1), `*${name}`);
        else if (name.endsWith('.*')) this.report.skip(directive.location, `server_name ${name}`, 'trailing wildcards are not supported');
        else names.push(name.toLowerCase());
      }
    }
    return { names: [...new Set(names)], unsupportedOnly: names.length === 0 && unsupported > 0 };
  }

  private listens(block: readonly NginxDirective[]): ServerListen[] {
    const listens: ServerListen[] = [];
    const sslOn = block.some((inner) => inner.name === 'ssl' && inner.args[0] === 'on');
    for (const directive of block.filter((inner) => inner.name === 'listen')) {
      this.handled.add(directive);
      const [target = '', ...flags] = directive.args;
      if (target.startsWith('unix:')) {
        this.report.skip(directive.location, `listen ${directive.args.join(' ')}`, 'unix socket listeners are not supported');
        continue;
      }
      const { host, port } = /^\d+$/.test(target) ? { host: undefined, port: Number(target) } : splitHostPort(target);
      const address = listenAddress(host, port ?? 80);
      const tls = flags.includes('ssl') || sslOn;
      if (flags.includes('proxy_protocol')) {
        if (this.realIpFrom.length > 0) this.draft.listener(address).proxy_protocol = [...this.realIpFrom];
        else this.report.skip(directive.location, `listen ${directive.args.join(' ')}`, 'proxy_protocol without set_real_ip_from: Switchyard needs the balancers\' addresses (listener proxy_protocol)');
      }
      if (!listens.some((listen) => listen.address === address)) listens.push({ address, tls, isDefault: flags.includes('default_server') || flags.includes('default') });
    }
    if (listens.length === 0) listens.push({ address: ':80', tls: sslOn, isDefault: false });
    return listens;
  }

  private bind(listen: ServerListen, site: DraftSite, scope: NginxScope, names: readonly string[], server: NginxDirective): void {
    const listener = this.draft.listener(listen.address);
    if (!this.draft.commentsOf(listener).length) this.draft.comment(listener, `${sourceLabel(server.location)} listen ${listen.address.replace(/^:/, '')}${listen.tls ? ' ssl' : ''}`);
    this.draft.serve(listener, site.name!);
    const current = this.defaults.get(listen.address);
    if (!current || (listen.isDefault && !current.explicit)) this.defaults.set(listen.address, { site, explicit: listen.isDefault });
    if (listen.tls) this.tls(listener, scope, names, server, listen.isDefault);
  }

  private tls(listener: DraftListener, scope: NginxScope, names: readonly string[], server: NginxDirective, isDefault: boolean): void {
    const certificate = scope.single.get('ssl_certificate');
    const key = scope.single.get('ssl_certificate_key');
    if (!certificate || !key) {
      this.report.skip(server.location, 'listen ... ssl', 'no ssl_certificate and ssl_certificate_key for this server');
      return;
    }
    const cert = this.path(certificate.args[0] ?? '');
    const keyFile = this.path(key.args[0] ?? '');
    const hosts = names.filter((name) => name !== '*');
    const tls = listener.tls ?? { cert, key: keyFile };
    if (!listener.tls) this.tlsOwners.set(listener, hosts);
    listener.tls = tls;
    if (tls.cert !== cert || tls.key !== keyFile) {
      // The default server's certificate is the one clients without SNI (or with unknown names) get.
      const owner = this.tlsOwners.get(listener) ?? [];
      const becomesDefault = isDefault && !this.explicitTlsDefault.has(listener);
      const entry = becomesDefault ? { hosts: owner, cert: tls.cert!, key: tls.key! } : { hosts, cert, key: keyFile };
      if (becomesDefault) {
        tls.cert = cert;
        tls.key = keyFile;
        this.tlsOwners.set(listener, hosts);
      }
      if (entry.hosts.length === 0) this.report.skip(certificate.location, `ssl_certificate ${certificate.args.join(' ')}`, 'a second certificate for a server without names: Switchyard picks certificates by name (SNI)');
      else (tls.certificates ??= []).push(entry);
    }
    if (isDefault) this.explicitTlsDefault.add(listener);
    const protocols = scope.single.get('ssl_protocols');
    if (protocols) {
      const lowest = protocols.args.includes('TLSv1.2') ? 'TLSv1.2' : protocols.args.includes('TLSv1.3') ? 'TLSv1.3' : undefined;
      if (lowest === 'TLSv1.3') tls.min_version = 'TLSv1.3';
      if (protocols.args.some((protocol) => /^(SSLv\d|TLSv1(\.1)?)$/.test(protocol))) {
        this.report.advise(protocols.location, `ssl_protocols ${protocols.args.join(' ')}`, 'Switchyard accepts TLS 1.2 at least: the older protocols listed are not offered');
      }
    }
    const ciphers = scope.single.get('ssl_ciphers');
    if (ciphers?.args[0] !== undefined && ciphers.args[0] !== 'HIGH:!aNULL:!MD5') tls.ciphers = ciphers.args[0];
  }

  /**
   * Server-level `if` with one return: `($host = NAME)` (certbot's redirect) →
   * a redirect for that Host; `($scheme = http)` / `($scheme != https)` → a
   * redirect for every request on the site of the plain listeners (none on the
   * TLS one). Other conditions are listed.
   */
  private serverIf(directive: NginxDirective, locations: NginxLocationTranslator, scheme: 'http' | 'https' | undefined): DraftRoute | undefined {
    const text = `if ${directive.args.join(' ')}`;
    const condition = directive.args.join(' ').replace(/^\(|\)$/g, '').trim();
    const host = /^\$host\s*=\s*"?([^"\s]+)"?$/.exec(condition)?.[1];
    const schemeTest = /^\$scheme\s*(!?=)\s*"?(https?)"?$/.exec(condition);
    const inner = directive.block ?? [];
    const action = inner[0];
    this.markAll(directive);
    if ((host === undefined && !schemeTest) || inner.length !== 1 || action?.name !== 'return' || (schemeTest && scheme === undefined)) {
      this.report.skip(directive.location, text, 'if blocks are not translated (only "if ($host = NAME)" and "if ($scheme = http)" with a return)');
      return undefined;
    }
    const route: DraftRoute = {};
    if (schemeTest) {
      const holds = (schemeTest[1] === '=') === (schemeTest[2] === scheme);
      if (!holds) return undefined;
    } else {
      route.match = { headers: { Host: { regex: `^${escapeRegex(host!, { keepSlashes: true })}(:\\d+)?$` } } };
    }
    this.draft.comment(route, `${sourceLabel(directive.location)} ${text}`);
    return locations.returnAction(action, route) ? route : undefined;
  }

  private serverRedirect(directive: NginxDirective, locations: NginxLocationTranslator): DraftRoute | undefined {
    const route: DraftRoute = {};
    this.draft.comment(route, `${sourceLabel(directive.location)} ${directive.name} ${directive.args.join(' ')}`);
    if (directive.name === 'return') {
      this.handled.add(directive);
      return locations.returnAction(directive, route) ? route : undefined;
    }
    // rewrite REGEX REPLACEMENT permanent|redirect
    const [pattern = '', replacement = ''] = directive.args;
    const location = locations.template(replacement.replace(/\?$/, ''));
    if (location === undefined) {
      this.report.skip(directive.location, `rewrite ${directive.args.join(' ')}`, 'the target uses variables Switchyard has no equivalent for');
      this.handled.add(directive);
      return undefined;
    }
    const everything = ['^', '^/', '^(.*)$', '^/(.*)$', '^.*$', '^/.*$'].includes(pattern) && !/\$\{?\d/.test(location);
    const regex = toJsRegex(pattern, false);
    if (!everything) {
      if (regex === undefined) {
        this.report.skip(directive.location, `rewrite ${directive.args.join(' ')}`, 'the regular expression is not valid in JavaScript');
        this.handled.add(directive);
        return undefined;
      }
      route.match = { regex };
    }
    route.redirect = { status: directive.args[2] === 'permanent' ? 301 : 302, location };
    this.handled.add(directive);
    return route;
  }

  /** nginx's default server for an address takes unknown names: give that site "*" when it is the default everywhere it listens. */
  private applyDefaults(): void {
    for (const [address, { site }] of this.defaults) {
      if (site.hosts?.includes('*')) continue;
      const everywhere = (this.siteListens.get(site) ?? []).every((listen) => this.defaults.get(listen.address)?.site === site);
      const otherStar = this.draft.sites.some((other) => other !== site && other.hosts?.includes('*') && (this.siteListens.get(other) ?? []).some((listen) => listen.address === address));
      if (everywhere && !otherStar) {
        site.hosts = [...(site.hosts ?? []), '*'];
        this.draft.comment(site, `nginx's default server on ${address}: it also takes requests for names no server lists ("*")`);
      }
    }
  }

  private duration(directive: NginxDirective, apply: (value: string) => void): void {
    this.handled.add(directive);
    const ms = parseDurationMs(directive.args[0] ?? '', 's');
    if (ms === undefined) this.report.skip(directive.location, `${directive.name} ${directive.args.join(' ')}`, 'not a duration');
    else apply(formatDuration(ms));
  }

  /** Files named in the config, absolute (nginx takes relative ones from its prefix; the config's folder stands in). */
  private path(file: string): string {
    return isAbsolute(file) ? file : resolve(dirname(this.file), file);
  }

  private markAll(directive: NginxDirective): void {
    this.handled.add(directive);
    for (const inner of directive.block ?? []) this.markAll(inner);
  }

  private reportUnhandled(directives: readonly NginxDirective[]): void {
    for (const directive of directives) {
      if (!this.handled.has(directive) && !['http', 'events'].includes(directive.name)) {
        const text = `${directive.name} ${directive.args.join(' ')}`;
        this.report.skip(directive.location, text, NOT_FOR_A_PROXY.test(directive.name) ? 'not needed by Switchyard (file serving, process or log detail)' : 'no Switchyard equivalent');
      }
      if (directive.block && directive.name !== 'upstream') this.reportUnhandled(directive.block);
    }
  }
}

/** `^(?<t>[a-z0-9-]+)\.preview\.example\.com$`: one label of any name, then a fixed domain → `*.preview.example.com`. */
function regexNameAsWildcard(regex: string): string | undefined {
  const match = /^\^?\((?:\?<\w+>|\?P<\w+>)?(?:\[[^\].]*\][+*]|\.[+*]|\\w[+*]|\[\^\.\][+*])\)((?:\\\.[A-Za-z0-9-]+)+)\$$/.exec(regex);
  if (!match) return undefined;
  return `*${match[1]!.replace(/\\\./g, '.')}`.toLowerCase();
}

/** nginx sizes: 10m, 512k, 1g, bytes. */
function parseSize(text: string): number | undefined {
  const match = /^(\d+)([kKmMgG]?)$/.exec(text);
  if (!match) return undefined;
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[match[2]!.toLowerCase()] ?? 1;
  return Number(match[1]) * unit;
}
