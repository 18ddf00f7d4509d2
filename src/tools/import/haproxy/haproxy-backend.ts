import type { DraftServer, DraftUpstream } from '../config-draft.js';
import { formatDuration, parseDurationMs } from '../values.js';
import type { AclTable } from './haproxy-acl.js';
import { parseCondition, splitCondition } from './haproxy-condition.js';
import { comment, configPath, sourceComment, type Context } from './haproxy-context.js';
import { HeaderEdits, readHeaderEdit } from './haproxy-headers.js';
import type { Directive, Section } from './haproxy-parser.js';
import { noteCommon, type ProxySettings } from './haproxy-settings.js';

/**
 * A backend (or the backend half of a listen section) as an upstream, plus
 * what its routes carry: header edits, client address rules, timeouts.
 */
export interface BackendTranslation {
  readonly name: string;
  readonly section: Section;
  /** The upstream's name, or undefined when no server could be carried over (HAProxy answers 503). */
  readonly upstream: string | undefined;
  readonly requestHeaders: HeaderEdits;
  readonly responseHeaders: HeaderEdits;
  readonly access: AccessRules;
  readonly settings: ProxySettings;
  /** Why this backend is known to carry WebSockets (option http-tunnel, timeout tunnel), if it is. */
  readonly websocketHint: Directive | undefined;
}

interface ServerLine {
  readonly name: string;
  readonly address: string;
  readonly params: Map<string, string | true>;
  readonly directive: Directive;
}

/** Server keywords that take a value. */
const VALUE_PARAMS = new Set([
  'weight', 'maxconn', 'maxqueue', 'minconn', 'cookie', 'inter', 'fastinter', 'downinter', 'rise', 'fall', 'port', 'addr', 'ca-file', 'crl-file',
  'crt', 'verify', 'sni', 'alpn', 'npn', 'ciphers', 'ciphersuites', 'id', 'slowstart', 'on-error', 'on-marked-down', 'on-marked-up', 'error-limit',
  'observe', 'resolvers', 'resolve-prefer', 'resolve-net', 'resolve-opts', 'init-addr', 'check-sni', 'check-alpn', 'check-proto', 'proto',
  'pool-max-conn', 'pool-low-conn', 'pool-purge-delay', 'max-reuse', 'source', 'namespace', 'agent-port', 'agent-inter', 'agent-send', 'agent-addr',
  'redir', 'track', 'ws', 'usesrc', 'ssl-min-ver', 'ssl-max-ver', 'verifyhost', 'curves', 'sigalgs', 'client-sigalgs', 'set-proxy-v2-tlv-fmt',
  'proxy-v2-options', 'tcp-ut', 'hash-key', 'log-proto', 'shard', 'guid', 'socks4', 'check-pool-conn-name', 'pool-conn-name', 'init-state',
]);
/** Server keywords with a value that have no translation (listed). The others are used, or only tune what Switchyard does its own way (fastinter, id, ...). */
const UNTRANSLATED_PARAMS = [
  'maxqueue', 'minconn', 'slowstart', 'track', 'redir', 'resolvers', 'init-addr', 'source', 'observe', 'on-error', 'on-marked-down', 'on-marked-up',
  'error-limit', 'alpn', 'npn', 'ciphers', 'ciphersuites', 'ssl-min-ver', 'ssl-max-ver', 'check-sni', 'check-alpn', 'check-proto', 'proto', 'max-reuse',
  'namespace', 'agent-port', 'agent-inter', 'agent-send', 'agent-addr', 'ws', 'usesrc', 'crl-file', 'verifyhost', 'curves', 'sigalgs', 'client-sigalgs',
  'set-proxy-v2-tlv-fmt', 'proxy-v2-options', 'tcp-ut', 'hash-key', 'socks4',
];
const IGNORED_FLAGS = new Set([
  'enabled', 'no-backup', 'non-stick', 'stick', 'allow-0rtt', 'no-tls-tickets', 'tls-tickets', 'no-sslv3', 'no-tlsv10', 'no-tlsv11', 'force-tlsv12',
  'no-tfo', 'tfo', 'no-send-proxy', 'no-send-proxy-v2', 'no-check', 'no-check-ssl', 'no-agent-check', 'ignore-persist', 'no-verifyhost',
]);

/** Translates a backend section into an upstream (registered in the draft under its name). */
export function translateBackend(section: Section, settings: ProxySettings, context: Context, acls: AclTable, ownDirectives: readonly Directive[]): BackendTranslation {
  const { report } = context;
  const name = section.name ?? 'backend';
  const servers: ServerLine[] = [];
  const requestHeaders = new HeaderEdits();
  const responseHeaders = new HeaderEdits();
  const access = newAccessRules();
  let stickIp: Directive | undefined;
  const ownHttpCheck: Directive[] = [];

  for (const directive of ownDirectives) {
    const [first] = directive.args;
    switch (directive.keyword) {
      case 'server':
        if (directive.args.length < 2) report.skip(directive.location, directive.text, 'a server needs a name and an address');
        else servers.push({ name: directive.args[0]!, address: directive.args[1]!, params: serverParams([...settings.defaultServer.map((entry) => entry.value), directive.args.slice(2)]), directive });
        continue;
      case 'http-check':
        ownHttpCheck.push(directive);
        continue;
      case 'acl':
        continue;
      case 'http-request':
      case 'http-response':
        backendHttpRule(directive, directive.keyword === 'http-request' ? 'request' : 'response', { requestHeaders, responseHeaders, access, table: acls }, context);
        continue;
      case 'reqadd':
      case 'rspadd':
        legacyAdd(directive, directive.keyword === 'reqadd' ? requestHeaders : responseHeaders, context);
        continue;
      case 'stick-table':
        continue;
      case 'stick':
        if (first === 'on' && directive.args[1] === 'src') stickIp = directive;
        else report.skip(directive.location, directive.text, 'only "stick on src" translates (as sticky: ip)');
        continue;
      case 'server-template':
        report.skip(directive.location, directive.text, 'server templates (DNS-filled slots): list the servers, or use discovery on one server name');
        continue;
      case 'use-server':
        report.skip(directive.location, directive.text, 'choosing a server by rule has no equivalent');
        continue;
      case 'dynamic-cookie-key':
        report.skip(directive.location, directive.text, 'Switchyard signs its sticky cookies with sticky.secret or SWITCHYARD_SECRET');
        continue;
      case 'maxconn':
        report.skip(directive.location, directive.text, 'a backend maxconn has no equivalent; servers\' maxconn become max_conns');
        continue;
      default:
        break;
    }
    if (noteCommon(directive, report)) continue;
    if (isSettingKeyword(directive)) continue;
    report.skip(directive.location, directive.text, `"${directive.keyword}" is not translated`);
  }

  const upstream = buildUpstream(name, section, servers, settings, ownHttpCheck, stickIp, context);
  const tunnel = settings.timeouts.tunnel;
  const websocketHint = settings.options.get('http-tunnel')?.directive ?? tunnel?.directive;
  return { name, section, upstream, requestHeaders, responseHeaders, access, settings, websocketHint };
}

/** Keywords the settings pass already took (applySetting) that need no note here. */
function isSettingKeyword(directive: Directive): boolean {
  return ['mode', 'timeout', 'contimeout', 'clitimeout', 'srvtimeout', 'balance', 'hash-type', 'default-server', 'cookie', 'retries', 'default_backend'].includes(directive.keyword)
    || (directive.keyword === 'no' && directive.args[0] === 'option');
}

/** Merges default-server words and the server's own: later keywords win; `no-X` clears X. */
function serverParams(lists: readonly (readonly string[])[]): Map<string, string | true> {
  const params = new Map<string, string | true>();
  for (const words of lists) {
    for (let i = 0; i < words.length; i += 1) {
      const word = words[i]!;
      if (VALUE_PARAMS.has(word)) {
        params.set(word, words[i + 1] ?? '');
        i += 1;
        continue;
      }
      if (word === 'no-ssl') params.delete('ssl');
      else if (word === 'no-check') params.delete('check');
      else if (word === 'no-backup') params.delete('backup');
      else if (word === 'enabled') params.delete('disabled');
      params.set(word, true);
    }
  }
  return params;
}

/** `host:port` of a server address in URL form, or why not. */
function serverAuthority(address: string): { authority: string } | { why: string } {
  if (address.includes('${')) return { why: 'the address uses an environment variable' };
  let text = address;
  const family = /^(ipv4|ipv6)@/.exec(text);
  if (family) text = text.slice(family[0].length);
  else if (/^[a-z0-9-]+@/.test(text) || text.startsWith('/')) return { why: 'a UNIX socket or special address family (Switchyard connects over TCP)' };
  let host: string;
  let port: string;
  const bracketed = /^\[([^\]]+)\]:(.*)$/.exec(text);
  if (bracketed) {
    host = `[${bracketed[1]!}]`;
    port = bracketed[2]!;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return { why: 'no port (HAProxy then uses the port the client connected to)' };
    host = text.slice(0, colon);
    port = text.slice(colon + 1);
    if (host.includes(':')) host = `[${host}]`;
  }
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) return { why: port === '' ? 'no port (HAProxy then uses the port the client connected to)' : `the port "${port}" is a port offset or not a number` };
  if (host === '' || host === '*') return { why: 'no host' };
  return { authority: `${host}:${port}` };
}

function buildUpstream(name: string, section: Section, servers: readonly ServerLine[], settings: ProxySettings, ownHttpCheck: readonly Directive[], stickIp: Directive | undefined, context: Context): string | undefined {
  const { report, draft } = context;
  const usable: { line: ServerLine; url: string }[] = [];
  for (const line of servers) {
    const authority = serverAuthority(line.address);
    if ('why' in authority) {
      report.skip(line.directive.location, line.directive.text, authority.why);
      continue;
    }
    const tls = line.params.has('ssl');
    usable.push({ line, url: `${tls ? 'https' : 'http'}://${authority.authority}` });
  }
  let chosen = usable.filter(({ line }) => !line.params.has('backup'));
  const backups = usable.filter(({ line }) => line.params.has('backup'));
  if (chosen.length === 0 && backups.length > 0) {
    for (const { line } of backups) report.skip(line.directive.location, line.directive.text, 'Switchyard has no backup servers; with no other server in the backend it is used as a regular one');
    chosen = backups;
  } else {
    for (const { line } of backups) report.skip(line.directive.location, line.directive.text, 'Switchyard has no backup servers (used only when all others are down): left out');
  }
  if (chosen.length === 0) {
    report.skip(section.header.location, section.header.text, 'no server could be carried over: its routes answer 503 as HAProxy does for a backend without servers');
    return undefined;
  }

  const upstream: DraftUpstream = { servers: [] };
  const serverComments: Directive[] = [];
  for (const { line, url } of chosen) {
    serverComments.push(line.directive);
    upstream.servers.push(serverEntry(line, url, name, context));
  }

  const tls = upstreamTls(chosen.map(({ line }) => line), context);
  const policy = balancePolicy(settings, upstream, context);
  const sticky = stickiness(settings, stickIp, chosen.map(({ line }) => line), context);
  if (sticky) upstream.sticky = sticky;
  if (policy) Object.assign(upstream, policy);
  const health = activeHealth(chosen.map(({ line }) => line), settings, ownHttpCheck, context);
  if (health) upstream.health = { active: health };
  if (settings.retries) upstream.retries = Math.min(settings.retries.value, 20);
  if (tls) upstream.tls = tls;
  const proxyProtocol = sendProxyProtocol(chosen.map(({ line }) => line), context);
  if (proxyProtocol) upstream.send_proxy_protocol = proxyProtocol;
  if (upstream.servers.some((server) => typeof server === 'object' && server.max_conns !== undefined)) {
    const queueTimeout = settings.timeouts.queue?.value ?? settings.timeouts.connect?.value;
    upstream.queue = { size: 100000, ...(queueTimeout !== undefined ? { timeout: formatDuration(queueTimeout) } : {}) };
    draft.comment(upstream.queue, `HAProxy queues requests for servers at maxconn without a size limit${settings.timeouts.queue ? `, for ${sourceComment(settings.timeouts.queue.directive)}` : settings.timeouts.connect ? ' for timeout connect (no timeout queue set)' : ''}`);
  }

  const cookieServers = chosen.filter(({ line }) => line.params.get('cookie') !== undefined);
  if (cookieServers.length > 0 && upstream.sticky !== undefined) {
    const first = cookieServers[0]!.line.directive;
    report.advise(first.location, first.text, `the servers' cookie values (${cookieServers.map(({ line }) => String(line.params.get('cookie'))).join(', ')}) are not used: Switchyard signs its own affinity cookie values, so cookies set by HAProxy will not match (those clients are pinned afresh once)`);
  }
  const upstreamName = draft.addUpstream(name, upstream);
  comment(context, upstream, section.header);
  if (settings.hashType) draft.comment(upstream, `${sourceComment(settings.hashType.directive)} (Switchyard's hashing is always consistent: rendezvous hashing)`);
  for (const directive of [settings.balance?.directive, settings.cookie?.directive, stickIp, settings.retries?.directive]) {
    if (directive) comment(context, upstream, directive);
  }
  for (const directive of serverComments) draft.comment(upstream.servers, sourceComment(directive));
  return upstreamName;
}

function serverEntry(line: ServerLine, url: string, backend: string, context: Context): DraftServer {
  const { report } = context;
  const entry: { url: string; weight?: number; max_conns?: number; drain?: boolean } = { url };
  const location = line.directive.location;
  const text = line.directive.text;
  const weight = line.params.get('weight');
  if (typeof weight === 'string') {
    const n = Number(weight.replace(/%$/, ''));
    if (weight.endsWith('%') || !Number.isInteger(n) || n < 0) report.skip(location, text, `weight ${weight}: only whole-number weights translate`);
    else if (n === 0) {
      entry.drain = true;
      report.advise(location, text, 'weight 0 (no new traffic): translated as drain: true');
    } else if (n !== 1) entry.weight = Math.min(n, 1000);
  }
  const maxconn = line.params.get('maxconn');
  if (typeof maxconn === 'string') {
    const n = Number(maxconn);
    if (Number.isInteger(n) && n > 0) entry.max_conns = n;
    else report.skip(location, text, `maxconn ${maxconn} is not a connection count`);
  }
  if (line.params.has('disabled')) entry.drain = true;
  for (const key of UNTRANSLATED_PARAMS) {
    if (!line.params.has(key)) continue;
    // Once per backend and keyword: default-server puts the same words on every server.
    const noteKey = `server-param:${backend}:${key}`;
    if (context.noted.has(noteKey)) continue;
    context.noted.add(noteKey);
    report.skip(location, text, `server option ${key} is not translated`);
  }
  for (const [key, value] of line.params) {
    if (value === true && !['check', 'backup', 'disabled', 'ssl', 'check-ssl', 'send-proxy', 'send-proxy-v2', 'agent-check', 'send-proxy-v2-ssl', 'send-proxy-v2-ssl-cn'].includes(key) && !IGNORED_FLAGS.has(key)) {
      report.skip(location, text, `server option ${key} is not translated`);
    }
  }
  const simple = entry.weight === undefined && entry.max_conns === undefined && entry.drain === undefined;
  return simple ? url : entry;
}

function upstreamTls(servers: readonly ServerLine[], context: Context): DraftUpstream['tls'] {
  const { report, global } = context;
  const tlsServers = servers.filter((server) => server.params.has('ssl'));
  if (tlsServers.length === 0) return undefined;
  const first = tlsServers[0]!;
  const tls: NonNullable<DraftUpstream['tls']> = {};
  const verify = first.params.get('verify');
  if (verify === 'none' || (verify === undefined && global.serverVerifyNone)) {
    tls.insecure = true;
    report.advise((verify === 'none' ? first.directive : global.serverVerifyNone!).location, verify === 'none' ? first.directive.text : global.serverVerifyNone!.text,
      'unsafe: verify none turns off certificate checks toward the servers (translated as tls.insecure: true); give tls.ca the CA that signed them instead');
  }
  const ca = first.params.get('ca-file');
  if (typeof ca === 'string' && ca !== '@system-ca') tls.ca = configPath(context, ca, global.caBase);
  const sni = first.params.get('sni');
  if (typeof sni === 'string') {
    const constant = /^str\((.+)\)$/.exec(sni);
    if (constant) tls.servername = constant[1]!;
    else report.skip(first.directive.location, first.directive.text, `sni ${sni}: only a constant str(NAME) translates (Switchyard sends the server's host name otherwise)`);
  }
  const crt = first.params.get('crt');
  if (typeof crt === 'string') {
    const file = configPath(context, crt, global.crtBase);
    tls.cert = file;
    tls.key = file;
  }
  const differs = tlsServers.some((server) => ['verify', 'ca-file', 'sni', 'crt'].some((key) => server.params.get(key) !== first.params.get(key)));
  if (differs) report.skip(first.directive.location, first.directive.text, 'the servers of this backend have different TLS settings; Switchyard has one tls block per upstream: the first server\'s are used');
  return Object.keys(tls).length > 0 ? tls : undefined;
}

function balancePolicy(settings: ProxySettings, upstream: DraftUpstream, context: Context): Pick<DraftUpstream, 'policy' | 'hash_key'> | undefined {
  const balance = settings.balance;
  if (!balance) return undefined;
  const { report } = context;
  const [algorithm = '', argument] = balance.value;
  const location = balance.directive.location;
  const text = balance.directive.text;
  const hdr = /^hdr\((.+)\)$/.exec(algorithm);
  if (hdr) return { policy: 'hash', hash_key: { header: hdr[1]! } };
  const rdp = /^rdp-cookie(?:\((.+)\))?$/.exec(algorithm);
  switch (algorithm) {
    case 'roundrobin':
    case 'static-rr':
      return { policy: 'round_robin' };
    case 'leastconn':
      return { policy: 'least_conn' };
    case 'first':
      if (!upstream.servers.some((server) => typeof server === 'object' && server.max_conns !== undefined)) {
        report.advise(location, text, 'balance first fills servers up to their maxconn; no server has one, so every request goes to the first server');
      }
      return { policy: 'first' };
    case 'source':
      return { policy: 'ip_hash' };
    case 'random':
      return { policy: 'random_two' };
    case 'url_param':
      if (argument === undefined) break;
      return { policy: 'hash', hash_key: { query: argument } };
    case 'uri':
    case 'hash':
      report.skip(location, text, `balance ${algorithm}: Switchyard hashes on a header, cookie or query parameter only; the policy stays the default`);
      return undefined;
    default:
      if (rdp) {
        report.skip(location, text, 'rdp-cookie is for RDP over TCP');
        return undefined;
      }
  }
  report.skip(location, text, `balance ${balance.value.join(' ')} is not translated`);
  return undefined;
}

function stickiness(settings: ProxySettings, stickIp: Directive | undefined, servers: readonly ServerLine[], context: Context): DraftUpstream['sticky'] | undefined {
  const { report } = context;
  const cookie = settings.cookie;
  if (cookie) {
    const [name = '', ...options] = cookie.value;
    const location = cookie.directive.location;
    const text = cookie.directive.text;
    const mode = options.find((option) => option === 'insert' || option === 'rewrite' || option === 'prefix') ?? 'rewrite';
    if (!servers.some((server) => server.params.has('cookie'))) {
      report.skip(location, text, 'no server has a cookie value, so HAProxy never pinned anyone with it');
    } else if (mode === 'insert' && /^[A-Za-z0-9_.-]+$/.test(name)) {
      report.advise(location, text, `translated as sticky: { mode: cookie, cookie: ${name} }: Switchyard sets ${name} to its own signed value; set sticky.secret (or SWITCHYARD_SECRET) so pins survive restarts and are shared between instances`);
      return { mode: 'cookie', cookie: name };
    } else {
      report.advise(location, text, `cookie ${mode} ${name}: HAProxy ${mode === 'insert' ? 'inserted' : 'reused the application\'s'} cookie ${name}; Switchyard pins with its own cookie (sy_affinity) instead, so the application's cookie is left alone`);
      return 'cookie';
    }
  }
  if (stickIp) {
    report.advise(stickIp.location, stickIp.text, 'translated as sticky: ip (consistent hashing of the client address; no table to expire or share with peers)');
    return 'ip';
  }
  return undefined;
}

function sendProxyProtocol(servers: readonly ServerLine[], context: Context): 'v1' | 'v2' | undefined {
  const versions = servers.map((server) => (server.params.has('send-proxy-v2') || server.params.has('send-proxy-v2-ssl') || server.params.has('send-proxy-v2-ssl-cn') ? 'v2' : server.params.has('send-proxy') ? 'v1' : undefined));
  const first = versions[0];
  if (versions.every((version) => version === first)) return first;
  const server = servers[0]!;
  context.report.skip(server.directive.location, server.directive.text, 'only some servers get a PROXY protocol header; Switchyard sets it per upstream: left off');
  return undefined;
}

type ActiveHealth = NonNullable<NonNullable<DraftUpstream['health']>['active']>;

function activeHealth(servers: readonly ServerLine[], settings: ProxySettings, ownHttpCheck: readonly Directive[], context: Context): ActiveHealth | undefined {
  const { report } = context;
  const checked = servers.filter((server) => server.params.has('check'));
  if (checked.length === 0) return undefined;
  const first = checked[0]!;
  if (checked.length < servers.length) {
    report.skip(first.directive.location, first.directive.text, 'only some servers are checked; Switchyard checks every server of an upstream or none: all are checked');
  }
  for (const server of checked) {
    if (server.params.has('port') || server.params.has('addr')) report.skip(server.directive.location, server.directive.text, 'checks on another port or address: Switchyard checks the server\'s own address');
    if (server.params.has('agent-check')) report.skip(server.directive.location, server.directive.text, 'agent checks have no equivalent');
  }
  const health: ActiveHealth = {};
  const ms = (key: string): number | undefined => {
    const value = first.params.get(key);
    return typeof value === 'string' ? parseDurationMs(value, 'ms') : undefined;
  };
  const count = (key: string): number | undefined => {
    const value = Number(first.params.get(key));
    return Number.isInteger(value) && value >= 1 && value <= 100 ? value : undefined;
  };
  const interval = ms('inter') ?? 2000;
  health.interval = formatDuration(interval);
  const rise = count('rise');
  const fall = count('fall');
  if (rise !== undefined && rise !== 2) health.rise = rise;
  if (fall !== undefined && fall !== 3) health.fall = fall;
  const checkTimeout = settings.timeouts.check?.value;
  const timeout = Math.min(checkTimeout ?? 2000, interval);
  if (timeout !== 2000) health.timeout = formatDuration(timeout);

  const httpchk = settings.options.get('httpchk');
  const checkLines = ownHttpCheck.length > 0 ? ownHttpCheck : settings.httpCheck;
  if (!httpchk && checkLines.length === 0) {
    // A plain `check` is a TCP connect; the nearest HTTP check takes any answer.
    health.expect_status = '100-599';
    context.draft.comment(health, `${sourceComment(first.directive)}: HAProxy's check without option httpchk only connects; here any HTTP answer to GET / counts as up`);
    return health;
  }
  if (httpchk) {
    context.draft.comment(health, sourceComment(httpchk.directive));
    const words = httpchk.value;
    // option httpchk [URI] | METHOD URI [VERSION [headers]]
    if (words.length === 1) health.path = words[0]!;
    else if (words.length >= 2) {
      health.method = words[0]!.toUpperCase();
      health.path = words[1]!;
      const extra = words.slice(2).join(' ');
      const headerText = extra.includes('\n') || extra.includes('\r') ? extra.slice(extra.search(/[\r\n]/)) : '';
      const headers = parseHeaderLines(headerText);
      if (Object.keys(headers).length > 0) health.headers = headers;
    } else health.method = 'OPTIONS';
  }
  for (const directive of checkLines) {
    context.draft.comment(health, sourceComment(directive));
    const [kind, ...rest] = directive.args;
    if (kind === 'send') {
      for (let i = 0; i < rest.length; i += 1) {
        const key = rest[i];
        const value = rest[i + 1];
        if (key === 'meth' && value) health.method = value.toUpperCase();
        else if (key === 'uri' && value) health.path = value;
        else if (key === 'hdr' && value && rest[i + 2] !== undefined) {
          health.headers = { ...health.headers, [value]: rest[i + 2]! };
          i += 1;
        } else if (key === 'ver') {
          // HTTP version: Switchyard checks with HTTP/1.1.
        } else {
          report.skip(directive.location, directive.text, `http-check send ${key ?? ''} is not translated`);
          break;
        }
        i += 1;
      }
    } else if (kind === 'expect') {
      const [how, value] = rest;
      if (how === 'status' && value !== undefined && /^\d{3}(-\d{3})?$/.test(value)) health.expect_status = /^\d{3}$/.test(value) ? Number(value) : value;
      else if (how === 'string' && value !== undefined) health.expect_body = value;
      else report.skip(directive.location, directive.text, 'only "expect status N[-M]" and "expect string TEXT" translate');
    } else if (kind === 'connect' || kind === 'disable-on-404') {
      // connect: the check's own connection (Switchyard opens one per check); disable-on-404: nothing to do.
      if (kind === 'disable-on-404') report.skip(directive.location, directive.text, 'no equivalent');
    } else report.skip(directive.location, directive.text, `http-check ${kind ?? ''} is not translated`);
  }
  if (health.path !== undefined && !health.path.startsWith('/')) {
    report.skip(first.directive.location, first.directive.text, `the check path ${health.path} does not start with /: checking / instead`);
    delete health.path;
  }
  return health;
}

function parseHeaderLines(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

interface BackendRuleTargets {
  readonly requestHeaders: HeaderEdits;
  readonly responseHeaders: HeaderEdits;
  readonly access: AccessRules;
  readonly table: AclTable;
}

/** Client address rules (`http-request deny if|unless src ...`) of a section, as a route's allow and deny lists. */
export interface AccessRules {
  allow: string[] | undefined;
  readonly deny: string[];
  readonly directives: Directive[];
}

export function newAccessRules(): AccessRules {
  return { allow: undefined, deny: [], directives: [] };
}

/**
 * Adds a src rule. Two allow lists would mean "in both" (HAProxy checks one
 * rule after the other), which one list cannot say: the second is listed.
 */
export function addAccessRule(access: AccessRules, rule: { allow: boolean; ranges: string[] }, directive: Directive, context: Context): void {
  if (rule.allow && access.allow !== undefined) {
    context.report.skip(directive.location, directive.text, 'a second "deny unless" address list: HAProxy lets through only addresses in both, a route has one allow list (the first is kept)');
    return;
  }
  if (rule.allow) access.allow = [...rule.ranges];
  else access.deny.push(...rule.ranges);
  access.directives.push(directive);
}

/** http-request / http-response in a backend: header edits and client address rules. */
function backendHttpRule(directive: Directive, direction: 'request' | 'response', targets: BackendRuleTargets, context: Context): void {
  const { report } = context;
  const { head, keyword, condition } = splitCondition(directive.args);
  const [action = '', ...words] = head;
  if (action === 'set-header' || action === 'add-header' || action === 'del-header') {
    const edit = readHeaderEdit(directive, action, words, keyword !== undefined, direction, report);
    if (edit && !(direction === 'request' ? targets.requestHeaders : targets.responseHeaders).apply(edit.kind, edit.name, edit.value)) {
      report.skip(directive.location, directive.text, `a second add-header ${edit.name}: Switchyard adds one value per header name`);
    }
    return;
  }
  if (direction === 'request' && action === 'deny' && keyword !== undefined) {
    const ranges = srcRule(keyword, condition, targets.table, directive, context);
    if (ranges) {
      addAccessRule(targets.access, ranges, directive, context);
      return;
    }
  }
  report.skip(directive.location, directive.text, `http-${direction} ${action} in a backend is not translated`);
}

/**
 * `http-request deny if SRC` / `if !SRC` / `unless SRC` with SRC a client
 * address test only: the ranges for a route's deny or allow list.
 */
export function srcRule(keyword: 'if' | 'unless', words: readonly string[], table: AclTable, directive: Directive, context: Context): { allow: boolean; ranges: string[] } | undefined {
  const parsed = parseCondition(keyword, words, table, directive.location, context.baseDir, directive.text);
  if (parsed.dnf.length === 1) {
    // deny if A and not... : one conjunction; allow only when it is a single negated src test.
    const conjunction = parsed.dnf[0]!;
    if (conjunction.length > 0 && conjunction.every((literal) => literal.atom.kind === 'src' && literal.negated)) {
      // deny unless (x or y): allow x, y.
      const ranges = conjunction.flatMap((literal) => (literal.atom.kind === 'src' ? literal.atom.ranges : []));
      return { allow: true, ranges };
    }
  }
  if (parsed.dnf.length > 0 && parsed.dnf.every((conjunction) => conjunction.length === 1 && conjunction[0]!.atom.kind === 'src' && !conjunction[0]!.negated)) {
    return { allow: false, ranges: parsed.dnf.flatMap((conjunction) => (conjunction[0]!.atom.kind === 'src' ? conjunction[0]!.atom.ranges : [])) };
  }
  return undefined;
}

/** `reqadd Name:\ value` / `rspadd ...` (HAProxy 1.x): an added header. */
export function legacyAdd(directive: Directive, edits: HeaderEdits, context: Context): void {
  const { head, keyword } = splitCondition(directive.args);
  const line = head.join(' ');
  const colon = line.indexOf(':');
  if (keyword !== undefined || colon <= 0) {
    context.report.skip(directive.location, directive.text, keyword !== undefined ? 'a header added under a condition' : 'expected "Name: value"');
    return;
  }
  const name = line.slice(0, colon).trim();
  const value = line.slice(colon + 1).trim();
  const edit = readHeaderEdit(directive, 'add-header', [name, value], false, directive.keyword === 'reqadd' ? 'request' : 'response', context.report);
  if (edit) edits.apply('add', edit.name, edit.value);
}

