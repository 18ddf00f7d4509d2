import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';
import { dirname, resolve } from 'node:path';
import { compileHeaderActions } from '../proxy/header-actions.js';
import { Template } from '../router/template.js';
import { parseServerUrl } from '../upstream/upstream-server.js';
import { isLoopbackHost, parseAddress } from './address.js';
import { didYouMean, formatPath, type ConfigIssue } from './config-error.js';
import { parseDuration } from './duration.js';
import { countGroups } from './regex-groups.js';
import type { Locate } from './load.js';
import {
  DEFAULTS, type AdminConfig, UPSTREAM_DEFAULTS, type ActiveHealthConfig, type Condition, type ListenerConfig, type MatchConfig, type RouteAction, type RouteConfig,
  type ServerConfig, type SiteConfig, type SwitchyardConfig, type TimeoutConfig, type TlsFiles, type UpstreamConfig,
  type WebSocketPolicyConfig, type LimitConfig,
} from './model.js';
import { addressEntryProblem } from '../net/address-list.js';
import { UpstreamSchema, type ConfigFile, type MatchFile, type RouteFile, type UpstreamFile } from './schema.js';
import { findShadowedRoutes } from './shadowing.js';

interface ModelContext {
  readonly file: string;
  readonly locate: Locate;
  readonly env: NodeJS.ProcessEnv;
  readonly defaultSecret: string;
}

type Path = readonly PropertyKey[];

/**
 * The schema-valid file → the runtime model, with the checks no schema can do:
 * URLs, regexes, templates, references between sections, files on disk, and
 * routes that can never match.
 */
export function toModel(file: ConfigFile, context: ModelContext): { config: SwitchyardConfig; issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const report = (path: Path, message: string, severity: ConfigIssue['severity'] = 'error'): void => {
    issues.push({ severity, file: context.file, ...context.locate(path), path: formatPath(path), message });
  };
  const timeouts = globalTimeouts(file, report);
  const upstreams = new Map<string, UpstreamConfig>();
  for (const [name, upstream] of Object.entries(file.upstreams)) {
    upstreams.set(name, upstreamModel(name, upstream, ['upstreams', name], context, report));
  }
  const siteNames = new Set(file.sites.map((site) => site.name).filter((name): name is string => name !== undefined));
  const sites: SiteConfig[] = file.sites.map((site, siteIndex) => ({
    id: `sites[${siteIndex}]`,
    name: site.name,
    hosts: site.hosts,
    routes: site.routes.map((route, routeIndex) => routeModel(route, ['sites', siteIndex, 'routes', routeIndex], timeouts, upstreams, context, report)),
  }));
  const listeners = file.listeners.map((listener, index): ListenerConfig => {
    const address = parseAddress(listener.address);
    if (!address) report(['listeners', index, 'address'], `expected HOST:PORT, found "${listener.address}"`);
    for (const [siteIndex, name] of (listener.sites ?? []).entries()) {
      if (!siteNames.has(name)) {
        const suggestion = didYouMean(name, siteNames);
        report(['listeners', index, 'sites', siteIndex], `no site named "${name}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`);
      }
    }
    const tls = listener.tls && listenerTls(listener.tls, ['listeners', index, 'tls'], context, report);
    if (listener.hsts !== undefined && !listener.tls) report(['listeners', index, 'hsts'], 'HSTS is for TLS listeners (browsers ignore it over plain HTTP)');
    if (listener.redirect_to_https !== undefined && listener.tls) report(['listeners', index, 'redirect_to_https'], 'a TLS listener is already https');
    const hsts = listener.hsts === undefined || listener.hsts === false ? undefined : hstsValue(listener.hsts, ['listeners', index, 'hsts'], report);
    const redirectPort = listener.redirect_to_https === undefined ? undefined : listener.redirect_to_https === true ? 443 : listener.redirect_to_https.port;
    return {
      host: address?.host ?? '0.0.0.0', port: address?.port ?? 0, ...(tls ? { tls } : {}), ...(listener.sites ? { sites: listener.sites } : {}),
      ...(hsts !== undefined ? { hsts } : {}), ...(redirectPort !== undefined ? { redirectToHttpsPort: redirectPort } : {}),
      http2: listener.http2 ?? tls !== undefined, websocketOverHttp2: listener.websocket_over_http2,
      ...(listener.proxy_protocol ? { proxyProtocolFrom: addressList(listener.proxy_protocol, ['listeners', index, 'proxy_protocol'], report) } : {}),
      ...(listener.max_connections !== undefined ? { maxConnections: listener.max_connections } : {}),
    };
  });
  const admin = file.admin && adminModel(file.admin, report);
  for (const shadow of findShadowedRoutes(sites)) {
    const path = shadow.site.split(/[[\].]+/).filter(Boolean).map((part) => (/^\d+$/.test(part) ? Number(part) : part));
    report([...path, 'routes', shadow.routeIndex], shadow.message, shadow.certain ? 'error' : 'warning');
  }
  return {
    config: {
      listeners, sites, upstreams, timeouts, limits: limitsModel(file.limits), workers: file.workers,
      ...(file.trusted_proxies ? { trustedProxies: addressList(file.trusted_proxies, ['trusted_proxies'], report) } : {}),
      drain: { rate: file.drain.rate, jitter: file.drain.jitter },
      ...(file.access_log === false ? {} : { accessLog: { path: file.access_log.path === '-' ? '-' : resolve(dirname(resolve(context.file)), file.access_log.path), format: file.access_log.format } }),
      ...(admin ? { admin } : {}),
    },
    issues,
  };
}

type Report = (path: Path, message: string, severity?: ConfigIssue['severity']) => void;

function duration(text: string | undefined, fallback: number, path: Path, report: Report): number {
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === undefined) {
    report(path, `expected a duration such as 500ms, 30s, 5m or 1h, found "${text}"`);
    return fallback;
  }
  return ms;
}

function globalTimeouts(file: ConfigFile, report: Report): TimeoutConfig {
  const t = file.timeouts;
  const d = DEFAULTS.timeouts;
  return {
    connectMs: duration(t.connect, d.connectMs, ['timeouts', 'connect'], report),
    responseMs: duration(t.response, d.responseMs, ['timeouts', 'response'], report),
    tunnelIdleMs: duration(t.tunnel_idle, d.tunnelIdleMs, ['timeouts', 'tunnel_idle'], report),
    headerMs: duration(t.header, d.headerMs, ['timeouts', 'header'], report),
    keepAliveMs: duration(t.keep_alive, d.keepAliveMs, ['timeouts', 'keep_alive'], report),
    drainMs: duration(t.drain, d.drainMs, ['timeouts', 'drain'], report),
  };
}

function upstreamModel(name: string, upstream: UpstreamFile, path: Path, context: ModelContext, report: Report): UpstreamConfig {
  const servers = upstream.servers.map((entry, index): ServerConfig => {
    const server = typeof entry === 'string' ? { url: entry, weight: 1 } : entry;
    checkUrl(server.url, [...path, 'servers', index, ...(typeof entry === 'string' ? [] : ['url'])], report);
    if (typeof entry === 'string') return { url: entry, weight: 1 };
    return { url: entry.url, weight: entry.weight, maxConns: entry.max_conns ?? 0, drain: entry.drain };
  });
  if (upstream.policy === 'hash' && !upstream.hash_key) report([...path, 'policy'], 'policy hash needs hash_key: { header: NAME }, { cookie: NAME } or { query: NAME }');
  if (upstream.hash_key && upstream.policy !== 'hash') report([...path, 'hash_key'], 'hash_key is used by policy: hash only');
  if (upstream.queue.size > 0 && !servers.some((server) => (server.maxConns ?? 0) > 0)) {
    report([...path, 'queue'], 'a queue only fills when servers have max_conns', 'warning');
  }
  const active = upstream.health.active;
  const passive = upstream.health.passive;
  const tls = upstream.tls && {
    ...(upstream.tls.ca !== undefined ? { ca: readPem(upstream.tls.ca, [...path, 'tls', 'ca'], context, report) } : {}),
    ...(upstream.tls.cert !== undefined ? { cert: readPem(upstream.tls.cert, [...path, 'tls', 'cert'], context, report) } : {}),
    ...(upstream.tls.key !== undefined ? { key: readPem(upstream.tls.key, [...path, 'tls', 'key'], context, report) } : {}),
    ...(upstream.tls.servername !== undefined ? { servername: upstream.tls.servername } : {}),
    insecure: upstream.tls.insecure,
  };
  if (upstream.tls && (upstream.tls.cert === undefined) !== (upstream.tls.key === undefined)) report([...path, 'tls'], 'cert and key go together (mTLS)');
  if (upstream.tls?.insecure) report([...path, 'tls', 'insecure'], 'certificate verification is off for this upstream', 'warning');
  if (upstream.discovery?.resolver !== undefined && !parseAddress(upstream.discovery.resolver)) {
    report([...path, 'discovery', 'resolver'], `expected HOST:PORT of a DNS server, found "${upstream.discovery.resolver}"`);
  }
  const sticky = typeof upstream.sticky === 'string' ? { mode: upstream.sticky } : upstream.sticky;
  const cookie = typeof upstream.sticky === 'string' ? undefined : upstream.sticky.cookie;
  const secret = typeof upstream.sticky === 'string' ? undefined : upstream.sticky.secret;
  if (sticky.mode === 'cookie' && secret === undefined && context.env.SWITCHYARD_SECRET === undefined) {
    report([...path, 'sticky'], 'the affinity cookie\'s secret is random per start: after a restart, and on other instances, cookies stop pinning; set sticky.secret (or SWITCHYARD_SECRET) to the same value everywhere', 'warning');
  }
  return {
    name,
    servers,
    policy: upstream.policy,
    sticky: sticky.mode,
    stickySecret: secret ?? context.env.SWITCHYARD_SECRET ?? context.defaultSecret,
    stickyCookieName: cookie ?? DEFAULTS.stickyCookieName,
    failTimeoutMs: duration(upstream.fail_timeout, DEFAULTS.failTimeoutMs, [...path, 'fail_timeout'], report),
    ...(upstream.hash_key ? { hashKey: upstream.hash_key } : {}),
    ...(active ? { activeHealth: activeHealthModel(active, [...path, 'health', 'active'], report) } : {}),
    passiveHealth: {
      maxFails: passive.max_fails,
      failOn: passive.fail_on,
      maxEjectMs: duration(passive.max_eject, UPSTREAM_DEFAULTS.passiveHealth.maxEjectMs, [...path, 'health', 'passive', 'max_eject'], report),
    },
    closeTunnelsOnDown: upstream.health.on_down === 'close',
    retries: upstream.retries,
    retryDeadlineMs: duration(upstream.retry_deadline, UPSTREAM_DEFAULTS.retryDeadlineMs, [...path, 'retry_deadline'], report),
    queueSize: upstream.queue.size,
    queueTimeoutMs: duration(upstream.queue.timeout, UPSTREAM_DEFAULTS.queueTimeoutMs, [...path, 'queue', 'timeout'], report),
    ...(tls ? { tls } : {}),
    ...(upstream.discovery ? {
      discovery: {
        intervalMs: duration(upstream.discovery.interval, 30_000, [...path, 'discovery', 'interval'], report),
        resolver: upstream.discovery.resolver,
        srv: upstream.discovery.srv,
      },
    } : {}),
    drainTimeoutMs: duration(upstream.drain_timeout, UPSTREAM_DEFAULTS.drainTimeoutMs, [...path, 'drain_timeout'], report),
    http2: upstream.http2,
    ...(upstream.send_proxy_protocol ? { sendProxyProtocol: upstream.send_proxy_protocol } : {}),
  };
}

function activeHealthModel(active: NonNullable<UpstreamFile['health']['active']>, path: Path, report: Report): ActiveHealthConfig {
  const range = typeof active.expect_status === 'number' ? [active.expect_status, active.expect_status] : active.expect_status.split('-').map(Number);
  const low = range[0] as number;
  const high = range[1] ?? low;
  if (low > high) report([...path, 'expect_status'], `the range ${active.expect_status} is empty`);
  const intervalMs = duration(active.interval, 5_000, [...path, 'interval'], report);
  const timeoutMs = duration(active.timeout, 2_000, [...path, 'timeout'], report);
  if (timeoutMs > intervalMs) report([...path, 'timeout'], 'a check timeout longer than the interval lets checks pile up; make it shorter', 'warning');
  return {
    type: active.type, path: active.path, method: active.method, headers: active.headers ?? {},
    expectStatus: [low, high], expectBody: active.expect_body, intervalMs, timeoutMs, rise: active.rise, fall: active.fall,
  };
}

function checkHeaderAction(actions: Parameters<typeof compileHeaderActions>[0], path: Path, report: Report): boolean {
  try {
    compileHeaderActions(actions);
    return true;
  } catch (err) {
    report(path, (err as Error).message);
    return false;
  }
}

function checkUrl(url: string, path: Path, report: Report): boolean {
  try {
    parseServerUrl(url);
    return true;
  } catch (err) {
    report(path, (err as Error).message.replace(/^invalid configuration: /, ''));
    return false;
  }
}

function routeModel(route: RouteFile, path: Path, timeouts: TimeoutConfig, upstreams: Map<string, UpstreamConfig>, context: ModelContext, report: Report): RouteConfig {
  const match = matchModel(route.match, [...path, 'match'], report);
  const regexGroups = match.regex === undefined ? 0 : countGroups(match.regex);
  const checkTemplate = (source: string, at: Path): void => {
    try {
      const template = new Template(source);
      if (template.usesAnyCapture && match.regex === undefined) report(at, 'uses $N captures, but the route has no match.regex');
      else if (template.usesCaptures > regexGroups) report(at, `uses $${template.usesCaptures}, but match.regex has ${regexGroups} capture group${regexGroups === 1 ? '' : 's'}`);
    } catch (err) {
      report(at, (err as Error).message);
    }
  };
  let action: RouteAction;
  if (route.to !== undefined) {
    const upstream = resolveTarget(route.to, [...path, 'to'], upstreams, context, report);
    if (route.rewrite !== undefined) checkTemplate(route.rewrite, [...path, 'rewrite']);
    if (route.strip_prefix && match.prefix === undefined) report([...path, 'strip_prefix'], 'needs match.prefix (the prefix to strip)');
    if (route.strip_prefix && route.rewrite !== undefined) report([...path, 'rewrite'], 'use either rewrite or strip_prefix, not both');
    for (const key of ['request_headers', 'response_headers'] as const) {
      const actions = route[key];
      if (!actions) continue;
      // One entry at a time, so each problem is reported at its own header; then
      // the whole (a name set twice in different case).
      let fine = true;
      for (const kind of ['set', 'add'] as const) {
        for (const [name, value] of Object.entries(actions[kind] ?? {})) fine = checkHeaderAction({ [kind]: { [name]: value } }, [...path, key, kind, name], report) && fine;
      }
      for (const [index, name] of (actions.remove ?? []).entries()) fine = checkHeaderAction({ remove: [name] }, [...path, key, 'remove', index], report) && fine;
      if (fine) checkHeaderAction(actions, [...path, key], report);
    }
    action = {
      kind: 'proxy', upstream, stripPrefix: route.strip_prefix ?? false, rewrite: route.rewrite, preserveHost: route.preserve_host ?? true,
      reverseRewrite: route.reverse_rewrite, requestHeaders: route.request_headers, responseHeaders: route.response_headers,
    };
  } else if (route.redirect !== undefined) {
    checkTemplate(route.redirect.location, [...path, 'redirect', 'location']);
    action = { kind: 'redirect', status: route.redirect.status, location: route.redirect.location };
  } else {
    const respond = route.respond!;
    action = { kind: 'respond', status: respond.status, body: respond.body, contentType: respond.content_type };
  }
  const t = route.timeouts ?? {};
  const tunnelIdleMs = duration(t.tunnel_idle, timeouts.tunnelIdleMs, [...path, 'timeouts', 'tunnel_idle'], report);
  if (action.kind === 'proxy' && match.upgrade !== 'none') lintWebSocketRoute(route, path, tunnelIdleMs, upstreams.get(action.upstream), report);
  return {
    id: formatPath(path),
    name: route.name,
    match,
    action,
    timeouts: {
      connectMs: duration(t.connect, timeouts.connectMs, [...path, 'timeouts', 'connect'], report),
      responseMs: duration(t.response, timeouts.responseMs, [...path, 'timeouts', 'response'], report),
      tunnelIdleMs,
    },
    websocketOverHttp2: route.websocket_over_http2 ?? true,
    ...(route.websocket ? { websocket: websocketPolicy(route.websocket, [...path, 'websocket'], report) } : {}),
    ...(route.allow ? { allow: addressList(route.allow, [...path, 'allow'], report) } : {}),
    ...(route.deny ? { deny: addressList(route.deny, [...path, 'deny'], report) } : {}),
    ...(route.max_tunnels !== undefined ? { maxTunnels: route.max_tunnels } : {}),
  };
}

const SHORT_TUNNEL_IDLE_MS = 5 * 60_000;

/** Lint of a route that takes WebSockets: settings that work in a test and fail in use. */
function lintWebSocketRoute(route: RouteFile, path: Path, tunnelIdleMs: number, upstream: UpstreamConfig | undefined, report: Report): void {
  const policy = route.websocket;
  const pingMs = policy?.ping ? parseDuration(policy.ping.interval) : undefined;
  if (tunnelIdleMs < SHORT_TUNNEL_IDLE_MS && (pingMs === undefined || pingMs >= tunnelIdleMs)) {
    const at = route.timeouts?.tunnel_idle !== undefined ? [...path, 'timeouts', 'tunnel_idle'] : path;
    report(at, `WebSocket tunnels quiet for ${Math.round(tunnelIdleMs / 1000)} s are cut (nginx's 60 s is the classic cause of dropped sockets); use 5m or more, or websocket.ping to keep them alive`, 'warning');
  }
  if (upstream?.sticky === 'cookie' && policy?.allowed_origins === undefined) {
    report(path, 'WebSocket handshakes carry this site\'s cookies from any web page (cross-site WebSocket hijacking); set websocket.allowed_origins', 'warning');
  }
}

/** Addresses and CIDR ranges, each checked where it stands. */
function addressList(entries: readonly string[], path: Path, report: Report): string[] {
  for (const [index, entry] of entries.entries()) {
    const problem = addressEntryProblem(entry);
    if (problem) report([...path, index], problem);
  }
  return [...entries];
}

function limitsModel(limits: ConfigFile['limits']): LimitConfig {
  const d = DEFAULTS.limits;
  return {
    maxHeaderBytes: limits.max_header_bytes ?? d.maxHeaderBytes,
    maxHeaderCount: limits.max_header_count ?? d.maxHeaderCount,
    ...(limits.max_body_bytes !== undefined ? { maxBodyBytes: limits.max_body_bytes } : {}),
    ...(limits.max_connections !== undefined ? { maxConnections: limits.max_connections } : {}),
    ...(limits.max_connections_per_ip !== undefined ? { maxConnectionsPerIp: limits.max_connections_per_ip } : {}),
    ...(limits.handshakes_per_ip_per_second !== undefined ? { handshakesPerIpPerSecond: limits.handshakes_per_ip_per_second } : {}),
  };
}

function websocketPolicy(policy: NonNullable<RouteFile['websocket']>, path: Path, report: Report): WebSocketPolicyConfig {
  const ping = policy.ping && {
    intervalMs: duration(policy.ping.interval, 0, [...path, 'ping', 'interval'], report),
    timeoutMs: duration(policy.ping.timeout, 10_000, [...path, 'ping', 'timeout'], report),
    client: policy.ping.to !== 'backend',
    backend: policy.ping.to !== 'client',
  };
  if (ping && ping.intervalMs < 100) report([...path, 'ping', 'interval'], 'must be at least 100ms');
  for (const [index, origin] of (policy.allowed_origins ?? []).entries()) {
    if (!/^[a-z][a-z0-9+.-]*:\/\/[^/]+$/i.test(origin) && origin !== 'null') report([...path, 'allowed_origins', index], `expected an origin such as https://app.example.com (scheme and host, no path), found "${origin}"`);
  }
  return {
    ...(ping ? { ping } : {}),
    ...(policy.max_age !== undefined ? { maxAgeMs: duration(policy.max_age, 0, [...path, 'max_age'], report) } : {}),
    maxAgeJitter: policy.max_age_jitter,
    ...(policy.max_message_bytes !== undefined ? { maxMessageBytes: policy.max_message_bytes } : {}),
    ...(policy.max_messages_per_second !== undefined ? { maxMessagesPerSecond: policy.max_messages_per_second } : {}),
    ...(policy.allowed_origins ? { allowedOrigins: policy.allowed_origins.map((origin) => origin.toLowerCase()) } : {}),
    ...(policy.allowed_subprotocols ? { allowedSubprotocols: policy.allowed_subprotocols } : {}),
  };
}

/** `to`: a URL (an inline upstream named after it) or the name of an upstream. */
function resolveTarget(to: string, path: Path, upstreams: Map<string, UpstreamConfig>, context: ModelContext, report: Report): string {
  if (to.includes('://')) {
    if (checkUrl(to, path, report) && !upstreams.has(to)) {
      // An inline URL is an upstream of one server with every default.
      upstreams.set(to, upstreamModel(to, UpstreamSchema.parse({ servers: [to] }), path, context, report));
    }
    return to;
  }
  if (!upstreams.has(to)) {
    const names = [...upstreams.keys()].filter((name) => !name.includes('://'));
    const suggestion = didYouMean(to, names);
    report(path, `no upstream named "${to}"${suggestion ? ` (did you mean "${suggestion}"?)` : names.length ? ` (upstreams: ${names.join(', ')})` : ' (define it under upstreams, or give a URL such as http://127.0.0.1:3000)'}`);
  }
  return to;
}

function matchModel(match: MatchFile, path: Path, report: Report): MatchConfig {
  if (match.regex !== undefined) {
    try {
      new RegExp(match.regex);
    } catch (err) {
      report([...path, 'regex'], `not a valid regular expression: ${(err as Error).message}`);
    }
  }
  const conditions = (record: Record<string, string | { present: boolean } | { equals: string } | { regex: string }> | undefined, at: Path, lower: boolean): Map<string, Condition> | undefined => {
    if (!record) return undefined;
    const out = new Map<string, Condition>();
    for (const [name, value] of Object.entries(record)) {
      let condition: Condition;
      if (typeof value === 'string') condition = { kind: 'equals', value };
      else if ('present' in value) condition = { kind: value.present ? 'present' : 'absent' };
      else if ('equals' in value) condition = { kind: 'equals', value: value.equals };
      else {
        try {
          new RegExp(value.regex);
        } catch (err) {
          report([...at, name, 'regex'], `not a valid regular expression: ${(err as Error).message}`);
        }
        condition = { kind: 'regex', source: value.regex };
      }
      out.set(lower ? name.toLowerCase() : name, condition);
    }
    return out;
  };
  return {
    ...(match.prefix !== undefined ? { prefix: match.prefix } : {}),
    ...(match.exact !== undefined ? { exact: match.exact } : {}),
    ...(match.regex !== undefined ? { regex: match.regex } : {}),
    ...(match.methods ? { methods: match.methods } : {}),
    ...(match.headers ? { headers: conditions(match.headers, [...path, 'headers'], true) } : {}),
    ...(match.query ? { query: conditions(match.query, [...path, 'query'], false) } : {}),
    upgrade: match.upgrade ?? 'any',
  };
}

function hstsValue(hsts: true | { max_age: string; include_subdomains: boolean; preload: boolean }, path: Path, report: Report): string {
  const options = hsts === true ? { max_age: '8760h', include_subdomains: false, preload: false } : hsts;
  const seconds = Math.floor(duration(options.max_age, 31_536_000_000, [...path, 'max_age'], report) / 1000);
  return `max-age=${seconds}${options.include_subdomains ? '; includeSubDomains' : ''}${options.preload ? '; preload' : ''}`;
}

function listenerTls(tls: NonNullable<ConfigFile['listeners'][number]['tls']>, path: Path, context: ModelContext, report: Report): TlsFiles {
  const pair = (certFile: string, keyFile: string, at: Path): { cert: Buffer; key: Buffer } => {
    const cert = readPem(certFile, [...at, 'cert'], context, report);
    const key = readPem(keyFile, [...at, 'key'], context, report);
    if (cert.length > 0 && key.length > 0) {
      try {
        // Fails at load, not at the first handshake, for a bad PEM or a key that is not the certificate's.
        createSecureContext({ cert, key });
      } catch (err) {
        report(at, `${certFile} and ${keyFile} are not a usable certificate and key: ${(err as Error).message}`);
      }
    }
    return { cert, key };
  };
  const certificates = (tls.certificates ?? []).map((entry, index) => ({ hosts: entry.hosts, ...pair(entry.cert, entry.key, [...path, 'certificates', index]) }));
  const main = tls.cert !== undefined && tls.key !== undefined ? pair(tls.cert, tls.key, path) : certificates[0];
  const base = dirname(resolve(context.file));
  const files = [tls.cert, tls.key, ...(tls.certificates ?? []).flatMap((entry) => [entry.cert, entry.key])]
    .filter((file): file is string => file !== undefined).map((file) => resolve(base, file));
  return {
    files,
    cert: main?.cert ?? Buffer.alloc(0),
    key: main?.key ?? Buffer.alloc(0),
    ...(certificates.length > 0 ? { certificates } : {}),
    minVersion: tls.min_version,
    ...(tls.ciphers !== undefined ? { ciphers: tls.ciphers } : {}),
  };
}

function readPem(file: string, path: Path, context: ModelContext, report: Report): Buffer {
  const full = resolve(dirname(resolve(context.file)), file);
  try {
    return readFileSync(full);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    report(path, `cannot read ${full} (${code === 'ENOENT' ? 'no such file' : (code ?? String(err))})`);
    return Buffer.alloc(0);
  }
}

function adminModel(admin: NonNullable<ConfigFile['admin']>, report: Report): AdminConfig | undefined {
  const address = parseAddress(admin.address);
  if (!address) {
    report(['admin', 'address'], `expected HOST:PORT, found "${admin.address}"`);
    return undefined;
  }
  if (!isLoopbackHost(address.host) && admin.token === undefined) report(['admin', 'address'], 'the admin listener is reachable from other hosts without a token; set admin.token', 'warning');
  return { host: address.host, port: address.port, ...(admin.token !== undefined ? { token: admin.token } : {}) };
}
