import type { ImportReport } from '../import-report.js';
import { isKnownDirective } from './apache-directives.js';
import type { ApacheDirective, ApacheNode, ApacheSection } from './apache-parser.js';

/**
 * What an Apache config says, grouped the way httpd applies it: the main server
 * and each <VirtualHost> (a Scope), their <Location> blocks, ProxyPass lists,
 * rewrite rules, header edits and settings, plus the server-wide parts (Listen,
 * balancers, logs). Nothing here is Switchyard yet; apache-translator.ts turns
 * it into a config.
 */

export interface ProxyPassEntry {
  readonly directive: ApacheDirective;
  /** ProxyPassMatch, or ProxyPass inside <LocationMatch>. */
  readonly regex: boolean;
  /** The path prefix or the regex. */
  readonly path: string;
  /** The backend URL, or "!" (do not proxy). */
  readonly url: string;
  /** key=value parameters, keys lower case, in order. */
  readonly keys: readonly (readonly [string, string])[];
  /** nocanon, interpolate, noquery (lower case). */
  readonly flags: readonly string[];
  /** The <Location> it came from, if any. */
  readonly location: LocationBlock | undefined;
}

export interface HeaderEdit {
  readonly directive: ApacheDirective;
  /** RequestHeader (true) or Header (false). */
  readonly request: boolean;
  /** set, append, add, unset, merge, edit, edit*, echo, setifempty, note (lower case). */
  readonly action: string;
  readonly name: string;
  readonly value: string | undefined;
  /** Anything after the value: early, env=..., expr=... */
  readonly extra: readonly string[];
}

export interface RewriteCondition {
  readonly directive: ApacheDirective;
  readonly test: string;
  readonly pattern: string;
  /** nc, or, nv (lower case). */
  readonly flags: readonly string[];
}

export interface RewriteRuleEntry {
  readonly directive: ApacheDirective;
  readonly conditions: readonly RewriteCondition[];
  readonly pattern: string;
  readonly substitution: string;
  /** Flag name (lower case, long names shortened) → value ("" when none). */
  readonly flags: ReadonlyMap<string, string>;
}

export interface RedirectEntry {
  readonly directive: ApacheDirective;
  readonly regex: boolean;
  /** Status as written or implied (301, 302, 303, 307, 308, 410, ...). */
  readonly status: number;
  readonly path: string;
  readonly url: string | undefined;
}

export interface LocationBlock {
  readonly section: ApacheSection;
  readonly regex: boolean;
  readonly path: string;
  proxyPass: ProxyPassEntry | undefined;
  readonly reverse: ApacheDirective[];
  readonly headers: HeaderEdit[];
  readonly settings: Map<string, ApacheDirective>;
  readonly requires: ApacheDirective[];
  readonly auth: ApacheDirective[];
  redirect: RedirectEntry | undefined;
}

export interface VhostAddress {
  /** `*`, `_default_`, an IP address or a name; undefined when only a port was given. */
  readonly host: string | undefined;
  /** Undefined for `<VirtualHost *>` (every port). */
  readonly port: number | undefined;
  readonly text: string;
}

export interface Scope {
  readonly kind: 'main' | 'vhost';
  readonly section: ApacheSection | undefined;
  readonly addresses: VhostAddress[];
  /** Single-valued settings by lower-case name; the last one written wins, as in httpd. */
  readonly settings: Map<string, ApacheDirective>;
  readonly aliases: ApacheDirective[];
  readonly proxyPasses: ProxyPassEntry[];
  readonly locations: LocationBlock[];
  readonly rewriteRules: RewriteRuleEntry[];
  readonly redirects: RedirectEntry[];
  readonly reverse: ApacheDirective[];
  readonly headers: HeaderEdit[];
}

export interface BalancerMember {
  readonly directive: ApacheDirective;
  readonly url: string;
  readonly params: readonly (readonly [string, string])[];
}

export interface BalancerDef {
  /** As written after balancer:// (lower case: httpd compares it so). */
  readonly name: string;
  readonly members: BalancerMember[];
  /** ProxySet parameters, lower-case keys, with the directive that set each. */
  readonly settings: Map<string, { value: string; directive: ApacheDirective }>;
}

export interface ListenEntry {
  readonly directive: ApacheDirective;
  readonly host: string | undefined;
  readonly port: number;
}

export interface ApacheModel {
  readonly main: Scope;
  readonly vhosts: Scope[];
  readonly listens: ListenEntry[];
  readonly balancers: Map<string, BalancerDef>;
  readonly customLogs: ApacheDirective[];
  readonly logFormats: Map<string, string>;
}

/** Settings kept for the translator (last one wins). */
const SETTINGS = new Set([
  'servername', 'sslengine', 'sslcertificatefile', 'sslcertificatekeyfile', 'sslcertificatechainfile', 'sslprotocol', 'sslciphersuite',
  'sslproxyengine', 'sslproxyverify', 'sslproxycheckpeername', 'sslproxycheckpeercn', 'sslproxycheckpeerexpire', 'sslproxycacertificatefile',
  'sslproxymachinecertificatefile', 'proxypreservehost', 'proxytimeout', 'timeout', 'rewriteengine', 'rewriteoptions', 'proxyrequests',
  'proxywebsocketfallbacktoproxyhttp', 'proxywebsocketidletimeout', 'keepalivetimeout', 'limitrequestbody', 'limitrequestfields',
  'proxyaddheaders',
]);

/** Why common directives have no Switchyard counterpart. */
const SKIP_REASONS: Readonly<Record<string, string>> = {
  loadmodule: 'modules: Switchyard has proxying, TLS and WebSockets built in',
  loadfile: 'modules: Switchyard has proxying, TLS and WebSockets built in',
  serveradmin: 'no error pages with a contact address in Switchyard',
  documentroot: 'Switchyard serves no files',
  alias: 'Switchyard serves no files',
  aliasmatch: 'Switchyard serves no files',
  scriptalias: 'Switchyard runs no scripts',
  directoryindex: 'Switchyard serves no files',
  errorlog: 'Switchyard logs errors to stderr',
  loglevel: 'Switchyard logs errors to stderr (SWITCHYARD_LOG_LEVEL)',
  options: 'file-serving options: Switchyard serves no files',
  allowoverride: '.htaccess files: Switchyard serves no files',
  user: 'process user: run Switchyard as the user you want (systemd, container)',
  group: 'process group: run Switchyard as the group you want',
  pidfile: 'Switchyard has no PID file (it runs in the foreground)',
  serverroot: 'only used to find files here',
  servertokens: 'Switchyard adds no Server header of its own',
  serversignature: 'no Apache error pages in Switchyard',
  traceenable: 'Switchyard forwards TRACE like any method',
  keepalive: 'Switchyard always keeps client connections alive (timeouts.keep_alive)',
  maxkeepaliverequests: 'Switchyard does not cap requests per connection',
  startservers: 'process model: Switchyard uses workers: N',
  minspareservers: 'process model: Switchyard uses workers: N',
  maxspareservers: 'process model: Switchyard uses workers: N',
  minsparethreads: 'process model: Switchyard uses workers: N',
  maxsparethreads: 'process model: Switchyard uses workers: N',
  threadsperchild: 'process model: Switchyard uses workers: N',
  maxrequestworkers: 'process model: Switchyard uses workers: N (limits.max_connections caps connections)',
  maxconnectionsperchild: 'process model: Switchyard uses workers: N',
  serverlimit: 'process model: Switchyard uses workers: N',
  hostnamelookups: 'Switchyard logs addresses, not names',
  usecanonicalname: 'Switchyard keeps the client\'s Host',
  addtype: 'MIME types: Switchyard serves no files',
  addhandler: 'handlers: Switchyard serves no files',
  sethandler: 'handlers: Switchyard serves no files',
  addoutputfilterbytype: 'output filters: Switchyard passes bodies unchanged',
  setoutputfilter: 'output filters: Switchyard passes bodies unchanged',
  typesconfig: 'MIME types: Switchyard serves no files',
  errordocument: 'Switchyard has no custom error pages',
  setenv: 'environment variables for modules: nothing reads them in Switchyard',
  setenvif: 'environment variables for modules: nothing reads them in Switchyard',
  setenvifnocase: 'environment variables for modules: nothing reads them in Switchyard',
  browsermatch: 'environment variables for modules: nothing reads them in Switchyard',
  unsetenv: 'environment variables for modules: nothing reads them in Switchyard',
  passenv: 'environment variables for modules: nothing reads them in Switchyard',
  sslsessioncache: 'Switchyard keeps Node\'s TLS session handling',
  sslsessioncachetimeout: 'Switchyard keeps Node\'s TLS session handling',
  sslrandomseed: 'Node seeds OpenSSL itself',
  sslpassphrasedialog: 'Switchyard reads unencrypted PEM keys',
  sslhonorcipherorder: 'Node prefers the server\'s cipher order',
  sslcompression: 'TLS compression is off in Node',
  sslsessiontickets: 'Switchyard keeps Node\'s TLS session handling',
  sslusestapling: 'OCSP stapling is not offered',
  sslstaplingcache: 'OCSP stapling is not offered',
  ssloptions: 'SSL environment variables: nothing reads them in Switchyard',
  sslverifyclient: 'client certificates are not checked by Switchyard listeners',
  sslcacertificatefile: 'client certificates are not checked by Switchyard listeners',
  sslopensslconfcmd: 'raw OpenSSL settings are not offered',
  mutex: 'process model: not needed',
  listenbacklog: 'Node\'s default backlog is used',
  protocols: 'a TLS listener offers h2 and http/1.1 (listeners[].http2)',
  h2websockets: 'WebSockets over HTTP/2 are on by default (websocket_over_http2)',
  proxyvia: 'Switchyard adds Via to requests itself',
  proxyerroroverride: 'Switchyard passes backend error pages through',
  proxyiobuffersize: 'Switchyard streams without a fixed buffer',
  proxyreceivebuffersize: 'Switchyard streams without a fixed buffer',
  proxybadheader: 'Switchyard refuses malformed headers',
  proxystatus: 'see the admin listener (docs/observability.md)',
  proxyhtmlenable: 'Switchyard does not rewrite bodies',
  proxyhtmlurlmap: 'Switchyard does not rewrite bodies',
  rewritelog: 'no rewrite log in Switchyard',
  rewriteloglevel: 'no rewrite log in Switchyard',
  rewritemap: 'rewrite maps are not translated',
  rewritebase: 'only used by per-directory rewrite rules',
  authtype: 'authentication is not translated',
  authname: 'authentication is not translated',
  authuserfile: 'authentication is not translated',
  authbasicprovider: 'authentication is not translated',
  order: 'old (2.2) access control is not translated; use allow/deny on the route',
  allow: 'old (2.2) access control is not translated; use allow/deny on the route',
  deny: 'old (2.2) access control is not translated; use allow/deny on the route',
  satisfy: 'old (2.2) access control is not translated',
  expiresactive: 'Switchyard passes Cache-Control/Expires from the backend unchanged',
  expiresbytype: 'Switchyard passes Cache-Control/Expires from the backend unchanged',
  expiresdefault: 'Switchyard passes Cache-Control/Expires from the backend unchanged',
  namevirtualhost: 'name-based hosting is how Switchyard sites always work',
  allowencodedslashes: 'Switchyard forwards paths as received, encoded slashes included',
  accessfilename: '.htaccess files: Switchyard serves no files',
  defaultruntimedir: 'Switchyard keeps no runtime files',
};

interface WalkContext {
  readonly scope: Scope;
  readonly location: LocationBlock | undefined;
  readonly balancer: BalancerDef | undefined;
  /** Inside <Directory>, <Files>, <If>, ...: nothing is translated. */
  readonly skipped: boolean;
}

/** Groups the parsed tree into scopes; directives with no translation at all are listed as skipped here. */
export function collectApacheModel(nodes: readonly ApacheNode[], report: ImportReport): ApacheModel {
  const model: ApacheModel = { main: newScope('main', undefined), vhosts: [], listens: [], balancers: new Map(), customLogs: [], logFormats: new Map() };
  const walker = new Walker(model, report);
  walker.walk(nodes, { scope: model.main, location: undefined, balancer: undefined, skipped: false });
  return model;
}

function newScope(kind: Scope['kind'], section: ApacheSection | undefined): Scope {
  return { kind, section, addresses: [], settings: new Map(), aliases: [], proxyPasses: [], locations: [], rewriteRules: [], redirects: [], reverse: [], headers: [] };
}

const REWRITE_FLAG_NAMES: Readonly<Record<string, string>> = {
  proxy: 'p', last: 'l', nocase: 'nc', redirect: 'r', forbidden: 'f', gone: 'g', qsappend: 'qsa', qsdiscard: 'qsd', qslast: 'qsl', noescape: 'ne',
  passthrough: 'pt', chain: 'c', skip: 's', next: 'n', env: 'e', cookie: 'co', type: 't', handler: 'h', nosubreq: 'ns', discardpath: 'dpi',
};

export function parseRewriteFlags(text: string | undefined): Map<string, string> {
  const flags = new Map<string, string>();
  if (text === undefined) return flags;
  const inner = text.replace(/^\[/, '').replace(/\]$/, '');
  for (const part of inner.split(',')) {
    const trimmed = part.trim();
    if (trimmed === '') continue;
    const eq = trimmed.indexOf('=');
    const rawName = (eq < 0 ? trimmed : trimmed.slice(0, eq)).toLowerCase();
    const name = REWRITE_FLAG_NAMES[rawName] ?? rawName;
    flags.set(name, eq < 0 ? '' : trimmed.slice(eq + 1));
  }
  return flags;
}

/** `key=value` parameters after a URL (ProxyPass, BalancerMember, ProxySet). */
export function splitKeys(args: readonly string[]): { keys: [string, string][]; flags: string[] } {
  const keys: [string, string][] = [];
  const flags: string[] = [];
  for (const arg of args) {
    const eq = arg.indexOf('=');
    if (eq > 0) keys.push([arg.slice(0, eq).toLowerCase(), arg.slice(eq + 1)]);
    else flags.push(arg.toLowerCase());
  }
  return { keys, flags };
}

class Walker {
  private pendingConditions: RewriteCondition[] = [];

  constructor(private readonly model: ApacheModel, private readonly report: ImportReport) {}

  walk(nodes: readonly ApacheNode[], context: WalkContext): void {
    for (const node of nodes) {
      if (node.kind === 'section') this.section(node, context);
      else this.directive(node, context);
    }
  }

  private skip(node: ApacheNode, why: string): void {
    this.report.skip(node.location, node.text, why);
  }

  private section(node: ApacheSection, context: WalkContext): void {
    switch (node.lower) {
      case 'ifmodule': {
        if ((node.args[0] ?? '').startsWith('!')) {
          this.skip(node, 'the translation assumes every module is loaded, so the contents of a negated <IfModule> are left out');
          return;
        }
        this.walk(node.children, context);
        return;
      }
      case 'ifdefine':
      case 'ifversion':
      case 'iffile':
      case 'ifdirective':
      case 'ifsection':
        this.walk(node.children, context);
        return;
      case 'virtualhost': {
        if (context.scope.kind !== 'main' || context.location || context.skipped) {
          this.skip(node, '<VirtualHost> belongs at the top level');
          return;
        }
        const scope = newScope('vhost', node);
        for (const arg of node.args) scope.addresses.push(parseVhostAddress(arg));
        this.model.vhosts.push(scope);
        this.pendingConditions = [];
        this.walk(node.children, { scope, location: undefined, balancer: undefined, skipped: false });
        this.dropPendingConditions();
        return;
      }
      case 'location':
      case 'locationmatch': {
        if (context.location || context.balancer || context.skipped) {
          this.skip(node, `<${node.name}> inside another section is not translated`);
          return;
        }
        const regex = node.lower === 'locationmatch' || node.args[0] === '~';
        const path = node.args[0] === '~' ? node.args[1] ?? '' : node.args[0] ?? '';
        const location: LocationBlock = {
          section: node, regex, path, proxyPass: undefined, reverse: [], headers: [], settings: new Map(), requires: [], auth: [], redirect: undefined,
        };
        context.scope.locations.push(location);
        this.walk(node.children, { ...context, location });
        return;
      }
      case 'proxy': {
        const target = node.args[0] ?? '';
        if (/^balancer:\/\//i.test(target) && !context.location && !context.skipped) {
          const balancer = this.balancer(target);
          this.walk(node.children, { ...context, balancer });
          return;
        }
        this.skip(node, target === '*' ? 'forward-proxy access control: Switchyard is never a forward proxy' : 'per-backend settings are not translated (only <Proxy balancer://...>)');
        return;
      }
      case 'directory':
      case 'directorymatch':
      case 'files':
      case 'filesmatch':
        this.skip(node, 'Switchyard serves no files: file-system sections are not translated');
        return;
      case 'if':
      case 'elseif':
      case 'else':
        this.skip(node, 'expressions (<If>) are not translated');
        return;
      case 'limit':
      case 'limitexcept':
        this.skip(node, 'per-method access control is not translated (match.methods selects methods)');
        return;
      case 'requireall':
      case 'requireany':
      case 'requirenone':
        if (context.location) {
          context.location.auth.push(sectionAsDirective(node));
          return;
        }
        this.skip(node, 'access control outside <Location> is not translated');
        return;
      default:
        this.skip(node, `<${node.name}> is not translated`);
    }
  }

  private balancer(url: string): BalancerDef {
    const name = url.replace(/^balancer:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
    let balancer = this.model.balancers.get(name);
    if (!balancer) {
      balancer = { name, members: [], settings: new Map() };
      this.model.balancers.set(name, balancer);
    }
    return balancer;
  }

  /** RewriteCond lines waiting for their RewriteRule; left over ones are listed. */
  private dropPendingConditions(): void {
    for (const condition of this.pendingConditions) this.report.skip(condition.directive.location, condition.directive.text, 'no RewriteRule follows this RewriteCond');
    this.pendingConditions = [];
  }

  private directive(node: ApacheDirective, context: WalkContext): void {
    const { scope, location } = context;
    const args = node.args;
    if (context.balancer && node.lower !== 'balancermember' && node.lower !== 'proxyset') {
      this.skip(node, 'only BalancerMember and ProxySet are translated inside <Proxy balancer://...>');
      return;
    }
    switch (node.lower) {
      case 'servername':
        if (location) break;
        scope.settings.set('servername', node);
        return;
      case 'serveralias':
        if (location) break;
        scope.aliases.push(node);
        return;
      case 'listen': {
        if (scope.kind !== 'main') break;
        const listen = parseListen(args[0] ?? '');
        if (!listen) {
          this.skip(node, 'not an address or port');
          return;
        }
        this.model.listens.push({ directive: node, ...listen });
        return;
      }
      case 'proxypass':
      case 'proxypassmatch':
        this.proxyPass(node, context);
        return;
      case 'proxypassreverse':
      case 'proxypassreversecookiedomain':
      case 'proxypassreversecookiepath':
        (location ? location.reverse : scope.reverse).push(node);
        return;
      case 'rewritecond': {
        if (location) {
          this.skip(node, 'per-directory rewriting (inside <Location>) is not translated');
          return;
        }
        const [test = '', pattern = '', flagText] = args;
        const flags = flagText === undefined ? [] : flagText.replace(/^\[|\]$/g, '').split(',').map((flag) => flag.trim().toLowerCase()).filter((flag) => flag !== '');
        this.pendingConditions.push({ directive: node, test, pattern, flags: flags.map((flag) => (flag === 'nocase' ? 'nc' : flag === 'ornext' ? 'or' : flag === 'novary' ? 'nv' : flag)) });
        return;
      }
      case 'rewriterule': {
        if (location) {
          this.skip(node, 'per-directory rewriting (inside <Location>) is not translated');
          return;
        }
        scope.rewriteRules.push({ directive: node, conditions: this.pendingConditions, pattern: args[0] ?? '', substitution: args[1] ?? '-', flags: parseRewriteFlags(args[2]) });
        this.pendingConditions = [];
        return;
      }
      case 'requestheader':
      case 'header': {
        const edit = parseHeaderEdit(node);
        if (!edit) {
          this.skip(node, 'not a header edit this translation reads');
          return;
        }
        (location ? location.headers : scope.headers).push(edit);
        return;
      }
      case 'redirect':
      case 'redirectpermanent':
      case 'redirecttemp':
      case 'redirectmatch': {
        const entry = parseRedirect(node, location);
        if (!entry) {
          this.skip(node, 'not a redirect this translation reads');
          return;
        }
        if (location) location.redirect = entry;
        else scope.redirects.push(entry);
        return;
      }
      case 'balancermember': {
        let balancer = context.balancer;
        let rest = args;
        if (!balancer && /^balancer:\/\//i.test(args[0] ?? '')) {
          balancer = this.balancer(args[0]!);
          rest = args.slice(1);
        }
        if (!balancer || rest[0] === undefined) {
          this.skip(node, 'BalancerMember outside <Proxy balancer://...> without a balancer:// name');
          return;
        }
        balancer.members.push({ directive: node, url: rest[0], params: splitKeys(rest.slice(1)).keys });
        return;
      }
      case 'proxyset': {
        let balancer = context.balancer;
        let rest = args;
        if (!balancer && /^balancer:\/\//i.test(args[0] ?? '')) {
          balancer = this.balancer(args[0]!);
          rest = args.slice(1);
        }
        if (!balancer) {
          this.skip(node, 'ProxySet for a single backend is not translated (only for balancer://)');
          return;
        }
        for (const [key, value] of splitKeys(rest).keys) balancer.settings.set(key, { value, directive: node });
        return;
      }
      case 'customlog':
      case 'transferlog':
        this.model.customLogs.push(node);
        return;
      case 'logformat':
        if (args.length >= 2) this.model.logFormats.set(args[1]!, args[0]!);
        else if (args.length === 1) this.model.logFormats.set('', args[0]!);
        return;
      case 'require':
        if (location) {
          location.requires.push(node);
          return;
        }
        this.skip(node, 'access control outside <Location> is not translated');
        return;
      case 'authtype':
      case 'authname':
      case 'authuserfile':
      case 'authbasicprovider':
      case 'authgroupfile':
        if (location) {
          location.auth.push(node);
          return;
        }
        break;
      case 'proxypreservehost':
        if (location) {
          location.settings.set(node.lower, node);
          return;
        }
        scope.settings.set(node.lower, node);
        return;
      default:
        if (SETTINGS.has(node.lower)) {
          if (location) {
            this.skip(node, 'only allowed per server (outside <Location>)');
            return;
          }
          scope.settings.set(node.lower, node);
          return;
        }
    }
    if (SKIP_REASONS[node.lower] !== undefined) this.skip(node, SKIP_REASONS[node.lower]!);
    else if (isKnownDirective(node.name)) this.skip(node, location ? 'not translated inside <Location>' : 'no Switchyard counterpart');
    else this.skip(node, 'unknown directive (not Apache httpd 2.4, or from a module this translation does not know)');
  }

  private proxyPass(node: ApacheDirective, context: WalkContext): void {
    const { scope, location } = context;
    const regex = node.lower === 'proxypassmatch' || (location?.regex ?? false);
    if (location) {
      if (node.args.length === 0 || node.args[0]!.startsWith('/')) {
        this.skip(node, 'inside <Location>, ProxyPass takes the URL only (the path is the Location\'s)');
        return;
      }
      if (location.proxyPass) this.skip(location.proxyPass.directive, `a later ProxyPass in the same <Location> (line ${node.location.line}) replaces this one`);
      const { keys, flags } = splitKeys(node.args.slice(1));
      location.proxyPass = { directive: node, regex, path: location.path, url: node.args[0]!, keys, flags, location };
      return;
    }
    const [path, url] = node.args;
    if (path === undefined || url === undefined) {
      this.skip(node, `${node.name} needs a path and a URL (or !)`);
      return;
    }
    const { keys, flags } = splitKeys(node.args.slice(2));
    scope.proxyPasses.push({ directive: node, regex, path, url, keys, flags, location: undefined });
  }
}

function sectionAsDirective(node: ApacheSection): ApacheDirective {
  return { kind: 'directive', name: node.name, lower: node.lower, args: node.args, text: node.text, location: node.location, root: node.root };
}

function parseVhostAddress(text: string): VhostAddress {
  const bracketed = /^(\[[^\]]+\])(?::(\d+|\*))?$/.exec(text);
  if (bracketed) return { host: bracketed[1], port: bracketed[2] === undefined || bracketed[2] === '*' ? undefined : Number(bracketed[2]), text };
  const colon = text.lastIndexOf(':');
  if (colon >= 0) {
    const port = text.slice(colon + 1);
    return { host: text.slice(0, colon), port: /^\d+$/.test(port) ? Number(port) : undefined, text };
  }
  return { host: text, port: undefined, text };
}

function parseListen(text: string): { host: string | undefined; port: number } | undefined {
  if (/^\d+$/.test(text)) return { host: undefined, port: Number(text) };
  const bracketed = /^(\[[^\]]+\]):(\d+)$/.exec(text);
  if (bracketed) return { host: bracketed[1], port: Number(bracketed[2]) };
  const plain = /^([^:]+):(\d+)$/.exec(text);
  if (plain) return { host: plain[1], port: Number(plain[2]) };
  return undefined;
}

const HEADER_ACTIONS = new Set(['set', 'append', 'add', 'unset', 'merge', 'edit', 'edit*', 'echo', 'setifempty', 'note']);

function parseHeaderEdit(node: ApacheDirective): HeaderEdit | undefined {
  const args = [...node.args];
  const request = node.lower === 'requestheader';
  // Header [always|onsuccess] action ...
  if (!request && (args[0]?.toLowerCase() === 'always' || args[0]?.toLowerCase() === 'onsuccess')) args.shift();
  const action = args.shift()?.toLowerCase();
  if (action === undefined || !HEADER_ACTIONS.has(action)) return undefined;
  const name = args.shift();
  if (name === undefined) return undefined;
  const takesValue = action !== 'unset' && action !== 'echo';
  const value = takesValue ? args.shift() : undefined;
  return { directive: node, request, action, name, value, extra: args };
}

const REDIRECT_STATUS: Readonly<Record<string, number>> = { permanent: 301, temp: 302, seeother: 303, gone: 410 };

function parseRedirect(node: ApacheDirective, location: LocationBlock | undefined): RedirectEntry | undefined {
  const args = [...node.args];
  let status = node.lower === 'redirectpermanent' ? 301 : 302;
  if (node.lower === 'redirect' || node.lower === 'redirectmatch') {
    const first = args[0]?.toLowerCase();
    if (first !== undefined && (REDIRECT_STATUS[first] !== undefined || /^\d{3}$/.test(first))) {
      status = REDIRECT_STATUS[first] ?? Number(first);
      args.shift();
    }
  }
  const regex = node.lower === 'redirectmatch' || (location?.regex ?? false);
  if (location && (args.length === 1 || (args.length === 0 && status === 410))) {
    return { directive: node, regex, status, path: location.path, url: args[0] };
  }
  const [path, url] = args;
  if (path === undefined) return undefined;
  if (url === undefined && status >= 300 && status < 400) return undefined;
  return { directive: node, regex, status, path, url };
}
