import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ConfigDraft, type DraftListener, type DraftRoute, type DraftSite } from '../config-draft.js';
import { ImportError } from '../import-error.js';
import { ImportReport } from '../import-report.js';
import type { Translation } from '../translation.js';
import { formatDuration, listenAddress, parseDurationMs } from '../values.js';
import { collectApacheModel, type ApacheModel, type LocationBlock, type Scope } from './apache-model.js';
import { parseApacheConfig, type ApacheDirective, type ApacheSection } from './apache-parser.js';
import { buildSiteRoutes, type SiteFacts } from './apache-routes.js';
import { sourceOf, TargetResolver, type BackendTls } from './apache-targets.js';

/**
 * `switchyard import apache FILE`: reads an Apache httpd 2.4 config (following
 * its includes) and writes the Switchyard config that does the same proxying:
 * each <VirtualHost> a site, its addresses listeners, ProxyPass / ProxyPassMatch
 * / <Location> ProxyPass / RewriteRule [P] / Redirect routes in Apache's order
 * of precedence, balancers upstreams. docs/import-apache.md says what is
 * translated how, and where Apache and Switchyard differ.
 */
export function translateApache(file: string): Translation {
  const report = new ImportReport();
  const draft = new ConfigDraft();
  const parsed = parseApacheConfig(file, report);
  const model = collectApacheModel(parsed.nodes, report);
  new ApacheTranslator(draft, report, model, parsed.mainDir, file).run();
  return { draft, report };
}

interface PlannedListener {
  readonly address: string;
  readonly port: number;
  readonly scopes: Scope[];
  readonly listens: ApacheDirective[];
}

const DEFAULT_RESPONSE_MS = 60_000;

class ApacheTranslator {
  private readonly resolver: TargetResolver;
  private readonly used = new Set<ApacheDirective>();
  private readonly listeners = new Map<string, PlannedListener>();
  private readonly siteNames = new Map<Scope, string>();
  private readonly reportedNotes = new Set<string>();

  constructor(private readonly draft: ConfigDraft, private readonly report: ImportReport, private readonly model: ApacheModel, private readonly mainDir: string, private readonly mainFile: string) {
    this.resolver = new TargetResolver(draft, report, model.balancers);
  }

  run(): void {
    this.planListeners();
    const globalResponse = this.globalSettings();
    const served = this.servedScopes();
    this.nameSites(served);
    for (const scope of served) this.site(scope, globalResponse);
    for (const planned of this.listeners.values()) this.listener(planned);
    this.accessLog();
    this.unusedSettings();
    this.unusedParts(served);
    // Like nginx and HAProxy: a file that proxies nothing is not a config worth writing.
    const proxies = this.draft.sites.some((site) => site.routes.some((route) => route.to !== undefined || route.redirect !== undefined));
    if (!proxies) throw new ImportError(this.model.listens[0]?.directive.location ?? { file: this.mainFile, line: 1, column: 1 }, 'no ProxyPass, RewriteRule [P] or Redirect: nothing to proxy (is this an Apache config?)');
  }

  /** Balancers no route uses, and main-server rewrite rules no site runs. */
  private unusedParts(served: readonly Scope[]): void {
    for (const balancer of this.model.balancers.values()) {
      if (this.resolver.usedBalancers.has(balancer.name)) continue;
      for (const member of balancer.members) this.skipOnce(member.directive, `no ProxyPass or RewriteRule uses balancer://${balancer.name}`);
    }
    const inherited = this.model.vhosts.some((vhost) => served.includes(vhost) && /\binherit(before)?\b/i.test(vhost.settings.get('rewriteoptions')?.text ?? ''));
    if (!served.includes(this.model.main) && !inherited) {
      for (const rule of this.model.main.rewriteRules) {
        this.skipOnce(rule.directive, 'a main-server RewriteRule applies only to requests no <VirtualHost> takes, and every address here has one (RewriteOptions Inherit in a <VirtualHost> would run it there)');
      }
    }
  }

  /** The setting in effect for a server: its own, else the main server's (httpd merges them so). */
  private setting(scope: Scope, name: string): ApacheDirective | undefined {
    const own = scope.settings.get(name);
    if (own) return own;
    return scope.kind === 'vhost' ? this.model.main.settings.get(name) : undefined;
  }

  private use(directive: ApacheDirective | undefined): ApacheDirective | undefined {
    if (directive) this.used.add(directive);
    return directive;
  }

  private isOn(directive: ApacheDirective | undefined): boolean {
    return (directive?.args[0] ?? '').toLowerCase() === 'on';
  }

  // ------------------------------------------------------------ listeners

  private planListeners(): void {
    const listens = this.model.listens;
    const add = (address: string, port: number, scope: Scope | undefined, listen: ApacheDirective | undefined): void => {
      let planned = this.listeners.get(address);
      if (!planned) {
        planned = { address, port, scopes: [], listens: [] };
        this.listeners.set(address, planned);
      }
      if (scope && !planned.scopes.includes(scope)) planned.scopes.push(scope);
      if (listen && !planned.listens.includes(listen)) planned.listens.push(listen);
    };
    for (const listen of listens) add(listenAddress(listen.host, listen.port), listen.port, undefined, listen.directive);
    for (const vhost of this.model.vhosts) {
      for (const address of vhost.addresses) {
        const ports = address.port !== undefined ? [address.port] : listens.length > 0 ? [...new Set(listens.map((listen) => listen.port))] : [80];
        for (const port of ports) {
          const wildcard = address.host === undefined || address.host === '*' || address.host === '_default_';
          const samePort = listens.filter((listen) => listen.port === port);
          if (wildcard) {
            if (samePort.length === 0) add(`:${port}`, port, vhost, undefined);
            for (const listen of samePort) add(listenAddress(listen.host, port), port, vhost, listen.directive);
            continue;
          }
          const anyInterface = samePort.find((listen) => listen.host === undefined || listen.host === '*' || listen.host === '0.0.0.0' || listen.host === '[::]');
          const isIp = /^[\d.]+$/.test(address.host!) || address.host!.startsWith('[');
          if (anyInterface || !isIp) {
            this.report.advise(vhost.section!.location, vhost.section!.text, `address ${address.text}: Switchyard chooses sites by Host name only, so this <VirtualHost> is served on every address of port ${port} for its names`);
            add(anyInterface ? listenAddress(anyInterface.host, port) : `:${port}`, port, vhost, anyInterface?.directive);
          } else {
            add(listenAddress(address.host, port), port, vhost, samePort.find((listen) => listen.host === address.host)?.directive);
          }
        }
      }
    }
    if (this.listeners.size === 0) {
      add(':80', 80, undefined, undefined);
      this.report.advise({ file: this.mainFile, line: 1, column: 1 }, 'Listen', 'no Listen and no <VirtualHost>: the translation listens on :80');
    }
  }

  /** Vhosts in order, and the main server where a listener has no vhost (or there are none). */
  private servedScopes(): Scope[] {
    const served: Scope[] = [];
    for (const vhost of this.model.vhosts) {
      if ([...this.listeners.values()].some((planned) => planned.scopes.includes(vhost))) served.push(vhost);
    }
    const bare = [...this.listeners.values()].filter((planned) => planned.scopes.length === 0);
    if (bare.length > 0) {
      for (const planned of bare) planned.scopes.push(this.model.main);
      served.push(this.model.main);
    }
    return served;
  }

  private nameSites(served: readonly Scope[]): void {
    const mainName = this.use(this.model.main.settings.get('servername'));
    if (mainName && served.includes(this.model.main)) this.draft.comment(this.draft.sites, `${sourceOf(mainName)}: the main server's name (its site takes every name)`);
    const bases = served.map((scope) => this.serverNames(scope, false)[0] ?? (scope.kind === 'main' ? 'main' : 'default'));
    served.forEach((scope, index) => {
      let base = bases[index]!;
      if (bases.filter((other) => other === base).length > 1) {
        const port = [...this.listeners.values()].find((planned) => planned.scopes.includes(scope))?.port;
        if (port !== undefined) base = `${base}_${port}`;
      }
      const name = this.draft.siteName(base);
      // Reserve the name now, so later sites do not take it.
      this.draft.sites.push({ name, routes: [] });
      this.siteNames.set(scope, name);
    });
    this.draft.sites.length = 0;
  }

  /** ServerName and ServerAlias as Switchyard host patterns (the unusable ones listed when `report`). */
  private serverNames(scope: Scope, report: boolean): string[] {
    if (scope.kind === 'main') return [];
    const names: string[] = [];
    // A <VirtualHost> without ServerName has the main server's, as in httpd.
    const serverName = this.use(scope.settings.get('servername')) ?? this.use(this.model.main.settings.get('servername'));
    if (serverName?.args[0]) {
      const host = serverName.args[0].replace(/^[a-z]+:\/\//i, '').replace(/:\d+$/, '').toLowerCase();
      names.push(host);
    }
    for (const alias of scope.aliases) {
      for (const name of alias.args) {
        const host = name.toLowerCase().replace(/:\d+$/, '');
        if (/^(\*\.)?[a-z0-9_.-]+$/.test(host) && !host.slice(2).includes('*')) {
          if (!names.includes(host)) names.push(host);
        } else if (report) {
          this.report.skip(alias.location, alias.text, `${name}: Switchyard hosts are exact names or *.example.com`);
        }
      }
    }
    return names;
  }

  private listener(planned: PlannedListener): void {
    const listener: DraftListener = this.draft.listener(planned.address);
    for (const listen of planned.listens) this.draft.comment(listener, sourceOf(listen));
    for (const scope of planned.scopes) {
      const name = this.siteNames.get(scope);
      if (name !== undefined) this.draft.serve(listener, name);
    }
    const tlsScopes = planned.scopes.filter((scope) => this.isOn(this.use(this.setting(scope, 'sslengine'))));
    if (tlsScopes.length === 0) {
      if (planned.port === 443) {
        const where = planned.scopes.find((scope) => scope.section)?.section ?? planned.listens[0];
        if (where) this.report.advise(where.location, where.text, 'port 443 without SSLEngine on: Apache spoke plain HTTP here, and so does the translation (add tls: { cert, key } to the listener if TLS was meant)');
      }
      return;
    }
    const plain = planned.scopes.filter((scope) => !tlsScopes.includes(scope));
    for (const scope of plain) {
      if (scope.section) this.report.skip(scope.section.location, scope.section.text, `shares ${planned.address} with TLS <VirtualHost>s but has no SSLEngine on: Switchyard listeners are TLS or not, so it is served over TLS`);
    }
    const tls: NonNullable<DraftListener['tls']> = {};
    let first: Scope | undefined;
    for (const scope of tlsScopes) {
      const certDirective = this.use(this.setting(scope, 'sslcertificatefile'));
      const keyDirective = this.use(this.setting(scope, 'sslcertificatekeyfile'));
      const chain = this.use(this.setting(scope, 'sslcertificatechainfile'));
      if (chain) this.skipOnce(chain, 'put the chain into the certificate file: Switchyard reads the whole chain (leaf first) from tls.cert');
      const cert = certDirective && this.filePath(certDirective);
      const key = keyDirective ? this.filePath(keyDirective) : cert;
      if (cert === undefined || key === undefined) {
        const engine = this.setting(scope, 'sslengine')!;
        this.skipOnce(engine, 'SSLEngine on without a usable SSLCertificateFile: no certificate for this server (Apache would not start); give the listener tls: { cert, key }');
        continue;
      }
      if (!first) {
        first = scope;
        tls.cert = cert;
        tls.key = key;
        this.draft.comment(listener, `TLS: ${sourceOf(certDirective!)}${keyDirective ? `; ${sourceOf(keyDirective)}` : ''}`);
        this.tlsOptions(scope, tls);
        continue;
      }
      if (cert === tls.cert && key === tls.key) continue;
      const hosts = this.serverNames(scope, false).filter((host) => host !== '*');
      if (hosts.length === 0) {
        this.skipOnce(certDirective!, 'a certificate for a <VirtualHost> without ServerName cannot be chosen by name (SNI)');
        continue;
      }
      const entry = { hosts, cert, key };
      (tls.certificates ??= []).push(entry);
      this.draft.comment(tls.certificates, `by name (SNI): ${sourceOf(certDirective!)}`);
      for (const name of ['sslprotocol', 'sslciphersuite']) {
        const own = scope.settings.get(name);
        const firstOwn = this.setting(first, name);
        if (own && own.text !== firstOwn?.text) this.skipOnce(own, `one ${name === 'sslprotocol' ? 'protocol range' : 'cipher list'} per listener in Switchyard: the first TLS <VirtualHost>'s applies`);
        else this.use(own);
      }
    }
    if (tls.cert === undefined && (tls.certificates?.length ?? 0) === 0) return;
    listener.tls = tls;
  }

  private tlsOptions(scope: Scope, tls: NonNullable<DraftListener['tls']>): void {
    const protocol = this.use(this.setting(scope, 'sslprotocol'));
    if (protocol) {
      const enabled = sslProtocols(protocol.args);
      if (enabled.size === 0) this.skipOnce(protocol, 'enables no protocol Switchyard knows');
      else if (!enabled.has('TLSv1.2') && enabled.has('TLSv1.3')) tls.min_version = 'TLSv1.3';
      else {
        const old = ['SSLv3', 'TLSv1', 'TLSv1.1'].filter((version) => enabled.has(version));
        if (old.length > 0) this.report.advise(protocol.location, protocol.text, `Switchyard speaks TLS 1.2 and 1.3 only: clients limited to ${old.join(', ')} cannot connect`);
        if (!enabled.has('TLSv1.3')) this.report.advise(protocol.location, protocol.text, 'TLS 1.3 is always offered too (Switchyard sets a minimum version, not a maximum)');
      }
    }
    const ciphers = this.use(this.setting(scope, 'sslciphersuite'));
    if (ciphers) {
      const list = ciphers.args.length === 2 && /^(SSL|TLSv1\.3)$/i.test(ciphers.args[0]!) ? ciphers.args : [ciphers.args[0] ?? ''];
      if (list.length === 2 && list[0]!.toUpperCase() !== 'SSL') this.skipOnce(ciphers, 'TLS 1.3 cipher suites are Node\'s defaults');
      else if (/PROFILE=/i.test(list[list.length - 1]!)) this.skipOnce(ciphers, 'system crypto profiles are not translated; Node\'s default ciphers apply');
      else tls.ciphers = list[list.length - 1]!;
    }
  }

  /** A file a directive names, absolute (relative names are taken from ServerRoot, else the imported file's folder). */
  private filePath(directive: ApacheDirective): string | undefined {
    const path = directive.args[0];
    if (path === undefined || path === '') return undefined;
    if (path.includes('${')) {
      this.skipOnce(directive, `${path} uses a variable that is not defined in these files (httpd's environment, e.g. Debian's envvars)`);
      return undefined;
    }
    if (isAbsolute(path)) return path;
    const fromRoot = resolve(directive.root, path);
    // A copied config whose ServerRoot (/etc/httpd) is elsewhere: its files may sit beside the imported file.
    const fromMain = resolve(this.mainDir, path);
    return existsSync(fromRoot) || !existsSync(fromMain) ? fromRoot : fromMain;
  }

  private skipOnce(node: ApacheDirective | ApacheSection, why: string): void {
    if (this.reportedSkips.has(node)) return;
    if (node.kind === 'directive') this.used.add(node);
    this.reportedSkips.add(node);
    this.report.skip(node.location, node.text, why);
  }

  private readonly reportedSkips = new Set<object>();

  // ------------------------------------------------------------ global settings

  /** Timeouts, limits and the proxy switches of the main server; returns the global response timeout (ms). */
  private globalSettings(): number {
    const main = this.model.main;
    const response = this.use(main.settings.get('proxytimeout')) ?? this.use(main.settings.get('timeout'));
    let globalResponse = DEFAULT_RESPONSE_MS;
    if (response) {
      const ms = parseDurationMs(response.args[0] ?? '', 's');
      if (ms === undefined) this.skipOnce(response, 'not a number of seconds');
      else {
        globalResponse = ms;
        if (ms !== DEFAULT_RESPONSE_MS) {
          this.draft.timeouts.response = formatDuration(ms);
          this.draft.comment(this.draft.timeouts, `response: ${sourceOf(response)} (time for a backend's response headers)`);
        }
      }
    }
    const keepAlive = this.use(main.settings.get('keepalivetimeout'));
    if (keepAlive) {
      const ms = parseDurationMs(keepAlive.args[0] ?? '', 's');
      if (ms === undefined) this.skipOnce(keepAlive, 'not a duration');
      else {
        this.draft.timeouts.keep_alive = formatDuration(ms);
        this.draft.comment(this.draft.timeouts, `keep_alive: ${sourceOf(keepAlive)}`);
      }
    }
    const limits: NonNullable<typeof this.draft.rest.limits> = {};
    const body = this.use(main.settings.get('limitrequestbody'));
    if (body) {
      const bytes = Number(body.args[0]);
      if (Number.isInteger(bytes) && bytes > 0) limits.max_body_bytes = bytes;
      else if (bytes !== 0) this.skipOnce(body, 'not a number of bytes');
    }
    const fields = this.use(main.settings.get('limitrequestfields'));
    if (fields) {
      const count = Number(fields.args[0]);
      if (Number.isInteger(count) && count >= 1 && count <= 10_000) limits.max_header_count = count;
      else this.skipOnce(fields, 'outside 1..10000');
    }
    if (Object.keys(limits).length > 0) this.draft.rest.limits = limits;
    for (const scope of [main, ...this.model.vhosts]) {
      const requests = this.use(scope.settings.get('proxyrequests'));
      if (requests) {
        if (this.isOn(requests)) this.report.advise(requests.location, requests.text, 'unsafe: an open forward proxy gets abused; Switchyard is never a forward proxy, so this is not translated');
        else this.report.advise(requests.location, requests.text, 'redundant: Switchyard is never a forward proxy');
      }
      const sslProxy = this.use(scope.settings.get('sslproxyengine'));
      if (sslProxy && this.isOn(sslProxy)) this.report.advise(sslProxy.location, sslProxy.text, 'redundant: Switchyard speaks TLS to https:// and wss:// backends by itself');
      const addHeaders = this.use(scope.settings.get('proxyaddheaders'));
      if (addHeaders && !this.isOn(addHeaders)) this.skipOnce(addHeaders, 'Switchyard always sends X-Forwarded-For, -Proto, -Host and -Port');
      const fallback = this.use(scope.settings.get('proxywebsocketfallbacktoproxyhttp'));
      if (fallback && this.isOn(fallback)) this.report.advise(fallback.location, fallback.text, 'redundant: Switchyard forwards plain requests and WebSocket handshakes on the same route');
      if (scope.kind === 'vhost') {
        for (const name of ['keepalivetimeout', 'limitrequestbody', 'limitrequestfields']) {
          const own = scope.settings.get(name);
          if (own) this.skipOnce(own, 'per-<VirtualHost> limits are not translated (Switchyard has one for all listeners)');
        }
      }
    }
    return globalResponse;
  }

  private accessLog(): void {
    let chosen: ApacheDirective | undefined;
    for (const log of this.model.customLogs) {
      if (chosen) {
        this.skipOnce(log, `Switchyard writes one access log (the one from line ${chosen.location.line} of ${chosen.location.file})`);
        continue;
      }
      if (log.lower === 'transferlog') {
        this.skipOnce(log, 'TransferLog uses the common format; Switchyard writes json or combined (access_log.format)');
        continue;
      }
      const [path = '', format = '', ...rest] = log.args;
      if (path.startsWith('|')) {
        this.skipOnce(log, 'piped logs are not translated: Switchyard writes a file or stdout (reopened on SIGUSR1 for logrotate)');
        continue;
      }
      const formatString = this.model.logFormats.get(format) ?? format;
      const combined = format.toLowerCase() === 'combined' || formatString.replace(/\\"/g, '"') === '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"';
      if (!combined) {
        this.skipOnce(log, `format ${format}: Switchyard writes json or combined (access_log.format)`);
        continue;
      }
      if (rest.length > 0) {
        this.skipOnce(log, `the condition ${rest.join(' ')} is not translated: every request is logged`);
      }
      const file = this.filePath(log);
      if (file === undefined) continue;
      chosen = log;
      this.used.add(log);
      const accessLog = { path: file, format: 'combined' as const };
      this.draft.rest.access_log = accessLog;
      this.draft.comment(accessLog, `${sourceOf(log)} (combined, plus Switchyard's rid= rt= upstream= and tunnel fields)`);
    }
  }

  /** Settings nobody used are listed, so that nothing disappears silently. */
  private unusedSettings(): void {
    for (const scope of [this.model.main, ...this.model.vhosts]) {
      for (const directive of scope.settings.values()) {
        if (this.used.has(directive)) continue;
        this.used.add(directive);
        let why = 'not used by the translation';
        if (directive.lower === 'sslprotocol' || directive.lower === 'sslciphersuite') why = 'not used: each TLS listener takes it from its first <VirtualHost>, which sets its own';
        else if (directive.lower === 'timeout' && (scope.settings.has('proxytimeout') || this.model.main.settings.has('proxytimeout'))) why = 'not used: ProxyTimeout sets the proxy\'s timeouts here';
        else if (scope.kind === 'main' && this.model.vhosts.length > 0) why = 'not used: nothing it applies to was translated';
        this.report.skip(directive.location, directive.text, why);
      }
    }
  }

  // ------------------------------------------------------------ sites

  private backendTls(scope: Scope): BackendTls {
    const insecure: ApacheDirective[] = [];
    const verify = this.use(this.setting(scope, 'sslproxyverify'));
    if (verify && (verify.args[0] ?? '').toLowerCase() === 'none') insecure.push(verify);
    for (const name of ['sslproxycheckpeername', 'sslproxycheckpeercn', 'sslproxycheckpeerexpire']) {
      const directive = this.use(this.setting(scope, name));
      if (directive && (directive.args[0] ?? '').toLowerCase() === 'off') insecure.push(directive);
    }
    const caDirective = this.use(this.setting(scope, 'sslproxycacertificatefile'));
    const clientDirective = this.use(this.setting(scope, 'sslproxymachinecertificatefile'));
    const ca = caDirective && this.filePath(caDirective);
    const client = clientDirective && this.filePath(clientDirective);
    return {
      insecure,
      ca: ca !== undefined ? { path: ca, directive: caDirective! } : undefined,
      client: client !== undefined ? { path: client, directive: clientDirective! } : undefined,
      verifySet: verify !== undefined,
    };
  }

  private site(scope: Scope, globalResponse: number): void {
    const name = this.siteNames.get(scope)!;
    const listenersOfScope = [...this.listeners.values()].filter((planned) => planned.scopes.includes(scope));
    const tls = listenersOfScope.some((planned) => planned.scopes.some((other) => this.isOn(this.setting(other, 'sslengine'))));
    const hosts = this.serverNames(scope, true);
    const isDefault = listenersOfScope.some((planned) => planned.scopes[0] === scope);
    const site: DraftSite = { name, hosts: [], routes: [] };
    if (scope.section) this.draft.comment(site, sourceOf(scope.section));
    if (hosts.length === 0) {
      site.hosts = ['*'];
      if (scope.kind === 'vhost' && !isDefault) this.skipOnce(scope.section!, 'no ServerName (here or in the main server): only the first <VirtualHost> of an address answers unknown names, so this one is never reached');
    } else {
      site.hosts = isDefault ? [...hosts, '*'] : hosts;
      if (isDefault && scope.kind === 'vhost') {
        this.draft.comment(site, `the first <VirtualHost> on ${listenersOfScope.filter((planned) => planned.scopes[0] === scope).map((planned) => planned.address).join(', ')}: Apache serves it for names no <VirtualHost> lists (and requests without Host), hence "*"`);
      }
    }
    const preserve = this.use(this.setting(scope, 'proxypreservehost'));
    const preserveHost = this.isOn(preserve);
    const preserveComment = (): void => {
      if (preserveHost || !site.routes.some((route) => route.preserve_host === false)) return;
      this.draft.comment(site, preserve
        ? `${sourceOf(preserve)}: backends get their own host:port as Host (preserve_host: false)`
        : 'no ProxyPreserveHost On (Apache\'s default is Off): backends get their own host:port as Host (preserve_host: false)');
    };

    const own = (name: string): ApacheDirective | undefined => scope.settings.get(name);
    const response = this.use(own('proxytimeout')) ?? this.use(this.model.main.settings.get('proxytimeout')) ?? this.use(own('timeout')) ?? this.use(this.model.main.settings.get('timeout'));
    const responseMs: number | undefined = response ? parseDurationMs(response.args[0] ?? '', 's') : undefined;
    if (response && responseMs === undefined) this.skipOnce(response, 'not a number of seconds');
    const fallback = this.setting(scope, 'proxywebsocketfallbacktoproxyhttp');
    const rewriteEngine = this.use(this.setting(scope, 'rewriteengine'));
    const rewriteOptions = this.use(this.setting(scope, 'rewriteoptions'));
    const wsIdle = this.use(this.setting(scope, 'proxywebsocketidletimeout'));

    const facts: SiteFacts = {
      scope,
      main: scope.kind === 'vhost' ? this.model.main : undefined,
      tls,
      ports: listenersOfScope.map((planned) => planned.port),
      hosts,
      preserveHost,
      backendTls: this.backendTls(scope),
      responseMs: responseMs !== undefined && responseMs !== globalResponse ? responseMs : undefined,
      responseDirective: response,
      responseWasSetMs: responseMs,
      websocketFallback: fallback ? this.isOn(fallback) : true,
      rewriteOn: this.isOn(rewriteEngine),
      rewriteEngine,
      rewriteOptions,
      wsIdleTimeout: wsIdle,
    };
    const routes = buildSiteRoutes(facts, { draft: this.draft, report: this.report, resolver: this.resolver, reported: this.reportedNotes });
    if (routes.length === 0) {
      const respond: DraftRoute = { respond: { status: 404, body: 'Not Found' } };
      this.draft.comment(respond, 'no ProxyPass, RewriteRule [P] or Redirect here: Apache served local content, which Switchyard does not (404)');
      site.routes = [respond];
      const where = scope.section ?? this.model.listens[0]?.directive;
      if (where) this.report.skip(where.location, where.text, 'nothing proxied here (Apache served local files): the site answers 404');
    } else {
      site.routes = routes;
    }
    preserveComment();
    this.draft.sites.push(site);
  }
}

/** SSLProtocol arguments → the protocol versions left on. */
function sslProtocols(args: readonly string[]): Set<string> {
  const all = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];
  const enabled = new Set<string>();
  for (const raw of args) {
    const sign = raw.startsWith('-') ? '-' : raw.startsWith('+') ? '+' : '';
    const name = raw.replace(/^[+-]/, '');
    const versions = name.toLowerCase() === 'all' ? all : [{ sslv3: 'SSLv3', tlsv1: 'TLSv1', 'tlsv1.1': 'TLSv1.1', 'tlsv1.2': 'TLSv1.2', 'tlsv1.3': 'TLSv1.3' }[name.toLowerCase()]].filter((v): v is string => v !== undefined);
    for (const version of versions) {
      if (sign === '-') enabled.delete(version);
      else enabled.add(version);
    }
  }
  return enabled;
}

export type { LocationBlock };
