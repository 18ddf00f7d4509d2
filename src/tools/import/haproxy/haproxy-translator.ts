import { dirname, resolve } from 'node:path';
import { statSync } from 'node:fs';
import { ConfigDraft, type DraftRoute } from '../config-draft.js';
import { ImportError } from '../import-error.js';
import { ImportReport } from '../import-report.js';
import type { Translation } from '../translation.js';
import { formatDuration } from '../values.js';
import { AclTable, parseAclTest } from './haproxy-acl.js';
import { translateBackend, type BackendTranslation } from './haproxy-backend.js';
import { sourceComment, type Context, type GlobalSettings } from './haproxy-context.js';
import { isBackendDirective, translateFrontend } from './haproxy-frontend.js';
import { readHaproxyConfig, type Directive, type Section } from './haproxy-parser.js';
import { applySetting, copySettings, emptySettings, noteCommon, type ProxySettings, type Setting } from './haproxy-settings.js';

/**
 * `switchyard import haproxy FILE`: global, defaults, frontend, backend and
 * listen sections into listeners, sites, routes and upstreams. What each
 * directive becomes, and the choices made where the two differ, are in
 * docs/import-haproxy.md.
 */
export function translateHaproxy(file: string): Translation {
  const config = readHaproxyConfig(file);
  const draft = new ConfigDraft();
  const report = new ImportReport();
  dropEnvironmentDirectives(config.sections, report);
  const baseDir = isDirectory(file) ? resolve(file) : dirname(resolve(file));
  const global: GlobalSettings = { maxconn: undefined, ciphers: undefined, minVersion: undefined, crtBase: undefined, caBase: undefined, serverVerifyNone: undefined, maxHeaderCount: undefined };
  const context: Context = { draft, report, baseDir, global, noted: new Set() };

  // Pass 1: global settings, and the defaults each proxy inherits.
  interface Proxy { readonly section: Section; readonly settings: ProxySettings; readonly acls: AclTable }
  const proxies: Proxy[] = [];
  const named = new Map<string, ProxySettings>();
  let current = emptySettings();
  for (const section of config.sections) {
    if (section.kind === 'global') {
      translateGlobal(section, context);
      continue;
    }
    if (section.kind === 'other') {
      report.skip(section.header.location, section.header.text, OTHER_SECTION_NOTES[section.keyword] ?? `the ${section.keyword} section is not translated`);
      continue;
    }
    const from = fromDefaults(section, named, current);
    if (section.kind === 'defaults') {
      const settings = copySettings(from);
      for (const directive of section.directives) {
        if (applySetting(settings, directive, report)) {
          if (directive.keyword === 'option') noteCommon(directive, report);
          continue;
        }
        if (noteCommon(directive, report)) continue;
        report.skip(directive.location, directive.text, `"${directive.keyword}" in defaults is not translated`);
      }
      current = settings;
      if (section.name !== undefined && section.name !== 'from') named.set(section.name, settings);
      continue;
    }
    const settings = copySettings(from);
    const acls = new AclTable();
    for (const directive of section.directives) {
      applySetting(settings, directive, report);
      if (directive.keyword === 'acl') {
        const name = directive.args[0];
        if (name === undefined) throw new ImportError(directive.location, 'acl needs a name and a criterion');
        acls.add(name, parseAclTest(directive.args.slice(1), directive.location, baseDir, directive.text), directive);
      }
    }
    proxies.push({ section, settings, acls });
  }

  // Pass 2: frontends and listens, translating the backends they use on first use.
  const backends = new Map<string, { proxy: Proxy; translation?: BackendTranslation }>();
  for (const proxy of proxies) {
    if (proxy.section.kind === 'backend' || proxy.section.kind === 'listen') backends.set(proxy.section.name!, { proxy });
  }
  const timeouts = new TimeoutPlan(context);
  const backendFor = (name: string): BackendTranslation | string => {
    const entry = backends.get(name);
    if (!entry) return `no backend named "${name}"`;
    if (isTcp(entry.proxy.settings)) return `the backend ${name} is mode ${entry.proxy.settings.mode!.value} (not translated)`;
    if (!entry.translation) {
      const section = entry.proxy.section;
      const own = section.kind === 'listen' ? section.directives.filter(isBackendDirective) : section.directives;
      entry.translation = translateBackend(section, entry.proxy.settings, context, entry.proxy.acls, own);
    }
    return entry.translation;
  };
  for (const proxy of proxies) {
    const { section, settings } = proxy;
    if (section.kind === 'backend') continue;
    if (isTcp(settings)) {
      report.skip(section.header.location, section.header.text, `mode ${settings.mode!.value}: Switchyard proxies HTTP (and WebSockets over it); a TCP pass-through has no equivalent, so this ${section.kind} is left out`);
      continue;
    }
    if (isStatsOnly(section, settings)) {
      report.skip(section.header.location, section.header.text, 'a statistics page: Switchyard has the admin listener instead (admin: { address: 127.0.0.1:9901 }: dashboard, /metrics, /api/)');
      continue;
    }
    if (!settings.mode) noMode(section, report);
    const hasServers = section.kind === 'listen' && section.directives.some((directive) => directive.keyword === 'server');
    translateFrontend({
      section, settings, directives: section.directives, acls: proxy.acls,
      self: section.kind === 'listen' && (hasServers || !settings.defaultBackend) ? () => {
        const result = backendFor(section.name!);
        return typeof result === 'string' ? undefined : result;
      } : undefined,
    }, context, {
      backend: backendFor,
      routed: (route, backend, websocket) => timeouts.add(route, settings, backend, websocket),
    });
  }
  for (const [name, entry] of backends) {
    const section = entry.proxy.section;
    if (entry.translation) continue;
    if (isTcp(entry.proxy.settings)) {
      if (section.kind === 'backend') report.skip(section.header.location, section.header.text, `mode ${entry.proxy.settings.mode!.value}: Switchyard proxies HTTP; this backend is left out`);
      continue;
    }
    if (section.kind === 'listen' && !section.directives.some((directive) => directive.keyword === 'server')) continue;
    report.skip(section.header.location, section.header.text, `no translated frontend routes to ${name}: left out`);
  }
  timeouts.apply();

  if (draft.sites.length === 0 || draft.listeners.length === 0) {
    const first = config.sections[0]!;
    throw new ImportError(first.header.location, 'nothing to translate: no frontend or listen section in mode http with a bind line');
  }
  return { draft, report };
}

/**
 * Directives whose words use environment variables ("${NAME}") are listed
 * and left out: their values are only known where HAProxy runs.
 */
function dropEnvironmentDirectives(sections: readonly Section[], report: ImportReport): void {
  for (const section of sections) {
    const kept = section.directives.filter((directive) => {
      const names = directive.words.flatMap((word) => word.env);
      if (names.length === 0) return true;
      report.skip(directive.location, directive.text, `uses the environment variable${names.length > 1 ? 's' : ''} ${names.map((name) => `\${${name}}`).join(', ')}, whose value is only known where HAProxy runs: substitute it and import again`);
      return false;
    });
    section.directives.splice(0, section.directives.length, ...kept);
  }
}

/** A frontend or listen that only serves HAProxy's statistics page (stats enable / stats uri, nowhere to send requests). */
function isStatsOnly(section: Section, settings: ProxySettings): boolean {
  const has = (keyword: string): boolean => section.directives.some((directive) => directive.keyword === keyword);
  return has('stats') && !has('server') && !has('use_backend') && !settings.defaultBackend;
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

function isTcp(settings: ProxySettings): boolean {
  return settings.mode !== undefined && settings.mode.value !== 'http';
}

const reportedNoMode = new WeakSet<ImportReport>();
function noMode(section: Section, report: ImportReport): void {
  if (reportedNoMode.has(report)) return;
  reportedNoMode.add(report);
  report.advise(section.header.location, section.header.text, 'no "mode" is set: HAProxy\'s default is mode tcp (a plain byte pipe); translated as mode http');
}

/** `frontend NAME from DEFAULTS`: the named defaults, else the last defaults section. */
function fromDefaults(section: Section, named: Map<string, ProxySettings>, current: ProxySettings): ProxySettings {
  const args = section.header.args;
  const at = args.indexOf('from');
  if (at < 0) return section.kind === 'defaults' ? emptySettings() : current;
  const name = args[at + 1];
  const settings = name === undefined ? undefined : named.get(name);
  if (!settings) throw new ImportError(section.header.location, `no defaults section named "${name ?? ''}" before this one`);
  return settings;
}

const OTHER_SECTION_NOTES: Readonly<Record<string, string>> = {
  resolvers: 'DNS resolvers: Switchyard re-resolves server names with upstream discovery (discovery: { resolver: HOST:PORT })',
  peers: 'stick-table replication has no equivalent (sticky cookies are signed, so instances sharing a secret agree without it)',
  userlist: 'HTTP authentication has no equivalent',
  cache: 'Switchyard does not cache responses',
  program: 'Switchyard does not start other programs',
  'http-errors': 'custom error pages have no equivalent',
  mailers: 'email alerts have no equivalent',
  ring: 'log rings have no equivalent (access_log writes to a file or stdout)',
  'log-forward': 'log forwarding has no equivalent',
};

function translateGlobal(section: Section, context: Context): void {
  const { report, global, draft } = context;
  for (const directive of section.directives) {
    const [first] = directive.args;
    const skip = (why: string): void => report.skip(directive.location, directive.text, why);
    switch (directive.keyword) {
      case 'maxconn': {
        const n = Number(first);
        if (Number.isInteger(n) && n > 0) {
          global.maxconn = { value: n, directive };
          draft.rest.limits = { ...draft.rest.limits, max_connections: n };
        } else skip('not a connection count');
        break;
      }
      case 'tune.http.maxhdr': {
        const n = Number(first);
        if (Number.isInteger(n) && n > 0 && n <= 10_000) {
          global.maxHeaderCount = { value: n, directive };
          draft.rest.limits = { ...draft.rest.limits, max_header_count: n };
        } else skip('not a header count Switchyard takes (1-10000)');
        break;
      }
      case 'nbthread':
      case 'nbproc':
      case 'cpu-map':
      case 'thread-groups':
        skip('threads and processes: Switchyard runs one process; set workers: N to share the ports between N processes');
        break;
      case 'ssl-default-bind-ciphers':
        if (first !== undefined) global.ciphers = { value: first, directive } as Setting<string>;
        break;
      case 'ssl-default-bind-options':
        for (const option of directive.args) {
          if (option === 'no-tlsv12' || option === 'force-tlsv13') global.minVersion = { value: 'TLSv1.3', directive };
          else if (option === 'ssl-min-ver') continue;
          else if (option === 'TLSv1.3' && directive.args[directive.args.indexOf(option) - 1] === 'ssl-min-ver') global.minVersion = { value: 'TLSv1.3', directive };
          else if (['no-sslv3', 'no-tlsv10', 'no-tlsv11', 'TLSv1.2', 'TLSv1.1', 'TLSv1.0', 'no-tls-tickets', 'prefer-client-ciphers'].includes(option)) continue;
          else skip(`bind option ${option} is not translated`);
        }
        break;
      case 'ssl-default-bind-ciphersuites':
        skip('TLS 1.3 cipher suites are not configurable (Node\'s defaults)');
        break;
      case 'ssl-server-verify':
        if (first === 'none') global.serverVerifyNone = directive;
        break;
      case 'crt-base':
        global.crtBase = first;
        break;
      case 'ca-base':
        global.caBase = first;
        break;
      case 'stats':
        skip('the stats socket: Switchyard has the admin listener (admin: { address, token }) with a JSON API');
        break;
      case 'log':
      case 'log-tag':
      case 'log-send-hostname':
        skip('logging: Switchyard writes one access-log line per request and per tunnel (access_log)');
        break;
      case 'lua-load':
      case 'lua-prepend-path':
        skip('Lua scripts have no equivalent');
        break;
      default:
        skip('process setting with no equivalent in Switchyard\'s config');
    }
  }
}

/**
 * Timeouts per route, from the backend (connect, server, tunnel) and the
 * frontend (client), written once globally (the most common value) and per
 * route where a route differs.
 */
class TimeoutPlan {
  private readonly entries: { route: DraftRoute; connect?: Setting<number>; response?: Setting<number>; tunnel?: number; tunnelFrom: Directive[] }[] = [];
  private readonly frontendHeader: { header?: Setting<number>; keepAlive?: Setting<number> }[] = [];
  private readonly advised = new Set<string>();

  constructor(private readonly context: Context) {}

  add(route: DraftRoute, frontend: ProxySettings, backend: BackendTranslation, websocket: boolean): void {
    const b = backend.settings.timeouts;
    const f = frontend.timeouts;
    let tunnel: number | undefined;
    let tunnelFrom: Directive[] = [];
    if (b.tunnel) {
      tunnel = b.tunnel.value;
      tunnelFrom = [b.tunnel.directive];
    } else if (f.client && b.server) {
      tunnel = Math.min(f.client.value, b.server.value);
      tunnelFrom = [f.client.directive, b.server.directive];
    } else if (f.client || b.server) {
      const one = (f.client ?? b.server)!;
      tunnel = one.value;
      tunnelFrom = [one.directive];
    }
    const carriesWebSockets = websocket || backend.websocketHint !== undefined;
    if (tunnel !== undefined && tunnel < 300_000 && carriesWebSockets) {
      const key = `${backend.name}:${tunnel}`;
      if (!this.advised.has(key)) {
        this.advised.add(key);
        const decisive = tunnelFrom[tunnelFrom.length - 1]!;
        const from = b.tunnel ? `timeout tunnel ${formatDuration(tunnel)}` : tunnelFrom.map((directive) => directive.text).join(' and ') + ', no timeout tunnel';
        this.context.report.advise(decisive.location, decisive.text,
          `WebSocket tunnels to ${backend.name} were closed after ${formatDuration(tunnel)} without traffic (${from}), the "60 s read timeout" problem: not copied; Switchyard keeps quiet tunnels for timeouts.tunnel_idle (default 1h); add websocket.ping to the route to find dead peers sooner`);
      }
      tunnel = undefined;
    } else if (tunnel !== undefined && tunnel < 300_000) tunnel = undefined;
    this.entries.push({ route, ...(b.connect ? { connect: b.connect } : {}), ...(b.server ? { response: b.server } : {}), ...(tunnel !== undefined ? { tunnel } : {}), tunnelFrom });
    this.frontendHeader.push({ ...(f['http-request'] ? { header: f['http-request'] } : {}), ...(f['http-keep-alive'] ?? f['http-request'] ? { keepAlive: f['http-keep-alive'] ?? f['http-request'] } : {}) });
  }

  apply(): void {
    const { draft } = this.context;
    // Routes of sites dropped as duplicates do not count.
    const kept = new Set(draft.sites.flatMap((site) => site.routes));
    this.entries.splice(0, this.entries.length, ...this.entries.filter((entry) => kept.has(entry.route)));
    const field = (name: 'connect' | 'response' | 'tunnel_idle', value: (entry: typeof this.entries[number]) => number | undefined, directives: (entry: typeof this.entries[number]) => Directive[]): void => {
      const counts = new Map<number, number>();
      for (const entry of this.entries) {
        const ms = value(entry);
        if (ms !== undefined) counts.set(ms, (counts.get(ms) ?? 0) + 1);
      }
      if (counts.size === 0) return;
      const common = [...counts].sort((a, b) => b[1] - a[1])[0]![0];
      draft.timeouts[name] = formatDuration(common);
      const commented = new Set<string>();
      for (const entry of this.entries) {
        const ms = value(entry);
        if (ms === common) {
          for (const directive of directives(entry)) {
            const text = sourceComment(directive);
            if (!commented.has(text)) {
              commented.add(text);
              draft.comment(draft.timeouts, text);
            }
          }
        } else if (ms !== undefined) {
          entry.route.timeouts = { ...entry.route.timeouts, [name]: formatDuration(ms) };
          for (const directive of directives(entry)) draft.comment(entry.route, sourceComment(directive));
        }
      }
    };
    field('connect', (entry) => entry.connect?.value, (entry) => (entry.connect ? [entry.connect.directive] : []));
    field('response', (entry) => entry.response?.value, (entry) => (entry.response ? [entry.response.directive] : []));
    field('tunnel_idle', (entry) => entry.tunnel, (entry) => entry.tunnelFrom);
    const header = this.frontendHeader.find((entry) => entry.header)?.header;
    const keepAlive = this.frontendHeader.find((entry) => entry.keepAlive)?.keepAlive;
    if (header) {
      draft.timeouts.header = formatDuration(header.value);
      draft.comment(draft.timeouts, sourceComment(header.directive));
    }
    if (keepAlive) {
      draft.timeouts.keep_alive = formatDuration(keepAlive.value);
      draft.comment(draft.timeouts, sourceComment(keepAlive.directive));
    }
    const otherHeader = this.frontendHeader.find((entry) => entry.header && header && entry.header.value !== header.value)?.header;
    if (otherHeader) this.context.report.skip(otherHeader.directive.location, otherHeader.directive.text, `Switchyard has one timeouts.header for every listener: ${formatDuration(header!.value)} is used`);
  }
}
