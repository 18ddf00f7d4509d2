import type { DraftListener, DraftRoute, DraftSite } from '../config-draft.js';
import { covers } from '../route-coverage.js';
import type { AclTable } from './haproxy-acl.js';
import { addAccessRule, legacyAdd, newAccessRules, srcRule, type AccessRules, type BackendTranslation } from './haproxy-backend.js';
import { readBind, type Bind } from './haproxy-bind.js';
import { conditionMatches, hostPatterns, parseCondition, splitCondition, type Condition, type DraftMatch, type RuleContext } from './haproxy-condition.js';
import { comment, sourceComment, type Context } from './haproxy-context.js';
import { constantValue, HeaderEdits, readHeaderEdit } from './haproxy-headers.js';
import type { Directive, Section } from './haproxy-parser.js';
import { sameAction } from './haproxy-routes.js';
import { noteCommon, type ProxySettings } from './haproxy-settings.js';

/**
 * A frontend (or the frontend half of a listen section): its binds become
 * listeners, its rules routes. One site per frontend, split by host when the
 * rules test the Host header against names: each name gets a site whose
 * routes are the rules with those tests decided for that name, and a default
 * site (hosts "*") gets the rules as they stand for every other host.
 */

export interface FrontendSource {
  readonly section: Section;
  readonly settings: ProxySettings;
  /** The section's directives (inherited settings already applied). */
  readonly directives: readonly Directive[];
  readonly acls: AclTable;
  /** listen: the section's own servers, when it has any. */
  readonly self: (() => BackendTranslation | undefined) | undefined;
}

export interface FrontendHooks {
  /** The backend named NAME, translated on first use; a string says why it cannot be used. */
  backend(name: string): BackendTranslation | string;
  /** A route to a backend was made (for the timeouts pass). */
  routed(route: DraftRoute, backend: BackendTranslation, websocket: boolean): void;
}

type Action =
  | { readonly kind: 'backend'; readonly name: string }
  | { readonly kind: 'redirect'; readonly status: 301 | 302 | 303 | 307 | 308; readonly location: string }
  | { readonly kind: 'respond'; readonly status: number; readonly body: string; readonly contentType?: string };

interface Rule {
  readonly action: Action;
  readonly condition: Condition;
  readonly directive: Directive;
}

/** Keywords of the backend half of a listen section (left to the backend translation). */
const BACKEND_KEYWORDS = new Set(['server', 'http-check', 'stick', 'stick-table', 'server-template', 'use-server', 'dynamic-cookie-key', 'default-server']);

/** Whether a directive of a listen section belongs to its backend half. */
export function isBackendDirective(directive: Directive): boolean {
  return BACKEND_KEYWORDS.has(directive.keyword) || (directive.keyword === 'option' && directive.args[0] === 'httpchk');
}
const SETTING_KEYWORDS = new Set(['mode', 'timeout', 'contimeout', 'clitimeout', 'srvtimeout', 'balance', 'hash-type', 'cookie', 'retries', 'default_backend']);

/** Translates the frontend (a listen section's backend half, isBackendDirective, is left alone). */
export function translateFrontend(source: FrontendSource, context: Context, hooks: FrontendHooks): void {
  const { report } = context;
  const { section, settings, acls } = source;
  const isListen = section.kind === 'listen';
  const binds: Bind[] = [];
  const requestFinals: Rule[] = [];
  const legacyRedirects: Rule[] = [];
  const backendRules: Rule[] = [];
  const requestHeaders = new HeaderEdits();
  const responseHeaders = new HeaderEdits();
  const access = newAccessRules();
  let redirectHttps: { directive: Directive; code: number } | undefined;
  let monitor: Directive | undefined;

  const condition = (keyword: 'if' | 'unless' | undefined, words: readonly string[], directive: Directive): Condition => {
    const parsed = parseCondition(keyword, words, acls, directive.location, context.baseDir, directive.text);
    adviseUpgradeTests(parsed, context);
    return parsed;
  };

  for (const directive of source.directives) {
    const { keyword, args } = directive;
    if (isListen && isBackendDirective(directive)) continue;
    switch (keyword) {
      case 'bind':
        binds.push(...readBind(directive, context));
        continue;
      case 'acl':
        continue;
      case 'use_backend': {
        const { head, keyword: cond, condition: words } = splitCondition(args);
        const name = head[0];
        if (name === undefined) report.skip(directive.location, directive.text, 'use_backend needs a backend name');
        else if (name.includes('%[')) report.skip(directive.location, directive.text, 'a backend name computed from the request (%[...]) has no equivalent: write one use_backend per backend');
        else backendRules.push({ action: { kind: 'backend', name }, condition: condition(cond, words, directive), directive });
        continue;
      }
      case 'http-request': {
        const result = httpRequestRule(directive, condition, { requestHeaders, access, acls }, context);
        if (result === 'redirect-https') redirectHttps = { directive, code: redirectCode(args) };
        else if (result) requestFinals.push(result);
        continue;
      }
      case 'redirect': {
        const result = redirectRule(directive, args, condition, context);
        if (result === 'redirect-https') redirectHttps = { directive, code: redirectCode(args) };
        else if (result) legacyRedirects.push(result);
        continue;
      }
      case 'block': {
        const { keyword: cond, condition: words } = splitCondition(args);
        requestFinals.push({ action: denyAction(403), condition: condition(cond, words, directive), directive });
        continue;
      }
      case 'http-response': {
        const { head, keyword: cond } = splitCondition(args);
        const [action = '', ...words] = head;
        if (action === 'set-header' || action === 'add-header' || action === 'del-header') {
          const edit = readHeaderEdit(directive, action, words, cond !== undefined, 'response', report);
          if (edit && !responseHeaders.apply(edit.kind, edit.name, edit.value)) report.skip(directive.location, directive.text, `a second add-header ${edit.name}: Switchyard adds one value per header name`);
        } else report.skip(directive.location, directive.text, `http-response ${action} is not translated`);
        continue;
      }
      case 'reqadd':
      case 'rspadd':
        legacyAdd(directive, keyword === 'reqadd' ? requestHeaders : responseHeaders, context);
        continue;
      case 'monitor-uri':
        monitor = directive;
        continue;
      case 'maxconn':
        continue;
      default:
        break;
    }
    if (SETTING_KEYWORDS.has(keyword) || (keyword === 'no' && args[0] === 'option')) continue;
    if (keyword === 'option' && args[0] === 'httpchk') continue;
    if (noteCommon(directive, report)) continue;
    report.skip(directive.location, directive.text, `"${keyword}" is not translated`);
  }

  if (binds.length === 0) {
    report.skip(section.header.location, section.header.text, 'no bind line that could be carried over: nothing listens for it');
    return;
  }

  // Plain listeners of a frontend that sends http to https only redirect.
  const tlsBinds = binds.filter((bind) => bind.tls !== undefined);
  const plainBinds = binds.filter((bind) => bind.tls === undefined);
  const redirecting = redirectHttps ? plainBinds : [];
  const serving = redirectHttps ? tlsBinds : binds;
  for (const bind of redirecting) {
    const listener = context.draft.listener(bind.address);
    const port = tlsBinds[0]?.port ?? 443;
    listener.redirect_to_https = port === 443 ? true : { port };
    comment(context, listener, bind.directive);
    comment(context, listener, redirectHttps!.directive);
    if (redirectHttps!.code !== 308) context.draft.comment(listener, `HAProxy answered ${redirectHttps!.code}; redirect_to_https answers 308 (the method and body are kept)`);
  }
  if (serving.length === 0) return;

  const rules = [...requestFinals, ...legacyRedirects, ...backendRules];
  const defaultBackend = settings.defaultBackend;
  const tlsKind: RuleContext['tls'] = serving.every((bind) => bind.tls) ? 'yes' : serving.every((bind) => !bind.tls) ? 'no' : 'mixed';
  const patterns = hostPatterns(rules.map((rule) => rule.condition));
  const reported = new Set<string>();
  // A rule shadowed in one site may be live in another: only rules reached nowhere are listed.
  const reached = new Set<Directive>();
  const shadowed = new Map<Directive, string>();

  const buildRoutes = (host: string, tls: RuleContext['tls']): DraftRoute[] => {
    const ruleContext: RuleContext = { host, tls };
    const routes: DraftRoute[] = [];
    const add = (route: DraftRoute, directive: Directive): void => {
      const shadow = routes.find((earlier) => covers(earlier.match, route.match));
      if (shadow && !sameAction(shadow, route)) {
        if (!shadowed.has(directive)) shadowed.set(directive, `never reached: an earlier rule (${context.draft.commentsOf(shadow)[0] ?? 'above'}) takes every request it would`);
        return;
      }
      reached.add(directive);
      if (!shadow) routes.push(route);
    };
    if (monitor) {
      const uri = monitor.args[0];
      if (uri?.startsWith('/')) {
        const route: DraftRoute = { match: { exact: uri }, respond: { status: 200, body: 'Service ready.\n' } };
        comment(context, route, monitor);
        add(route, monitor);
      }
    }
    for (const rule of rules) {
      const result = conditionMatches(rule.condition, ruleContext);
      for (const why of result.unsupported) {
        const key = `${rule.directive.location.line}:${why}`;
        if (reported.has(key)) continue;
        reported.add(key);
        report.skip(rule.directive.location, rule.directive.text, `${why}: ${result.matches.length > 0 || rule.condition.dnf.length > 1 ? 'that part of the condition is left out (those requests go on to the next rules)' : 'the rule is left out (its requests go on to the next rules)'}`);
      }
      for (const { match, notes } of result.matches) {
        const route = routeFor(rule.action, rule.directive, match, hooks, context);
        if (!route) continue;
        comment(context, route, rule.directive);
        for (const acl of rule.condition.acls) comment(context, route, acl);
        for (const note of notes) context.draft.comment(route, note);
        if (rule.action.kind === 'backend' && route.respond) context.draft.comment(route, `backend ${rule.action.name} has no server that could be carried over: HAProxy answers 503`);
        add(route, rule.directive);
      }
    }
    if (defaultBackend) {
      const route = routeFor({ kind: 'backend', name: defaultBackend.value }, defaultBackend.directive, {}, hooks, context);
      if (route) {
        comment(context, route, defaultBackend.directive);
        if (route.respond) context.draft.comment(route, `backend ${defaultBackend.value} has no server that could be carried over: HAProxy answers 503`);
        add(route, defaultBackend.directive);
      }
    } else if (source.self) {
      const self = source.self();
      const route: DraftRoute = self?.upstream !== undefined ? { to: self.upstream } : noServer();
      if (self) decorate(route, self, hooks, context);
      comment(context, route, section.header);
      add(route, section.header);
    } else {
      const route: DraftRoute = noServer();
      comment(context, route, section.header);
      context.draft.comment(route, 'no default_backend: HAProxy answers 503 to requests no use_backend takes');
      add(route, section.header);
    }
    for (const route of routes) {
      const requestActions = route.to !== undefined ? mergeHeaders(requestHeaders, route.request_headers) : undefined;
      const responseActions = route.to !== undefined ? mergeHeaders(responseHeaders, route.response_headers) : undefined;
      if (requestActions) route.request_headers = requestActions;
      if (responseActions) route.response_headers = responseActions;
      if (access.allow !== undefined) {
        if (route.allow === undefined) route.allow = [...access.allow];
        else {
          const first = access.directives[0]!;
          const key = `allow:${first.location.line}`;
          if (!context.noted.has(key)) {
            context.noted.add(key);
            report.skip(first.location, first.text, 'the backend has its own "deny unless" address list: HAProxy lets through only addresses in both, a route has one allow list (the backend\'s is kept)');
          }
        }
      }
      if (access.deny.length > 0) route.deny = [...new Set([...(route.deny ?? []), ...access.deny])];
      for (const directive of access.directives) comment(context, route, directive);
    }
    return routes;
  };

  // ssl_fc in a rule of a frontend with plain and TLS binds: each kind of listener gets its own sites.
  const usesSsl = rules.some((rule) => rule.condition.dnf.some((conjunction) => conjunction.some((literal) => literal.atom.kind === 'ssl')));
  let classes: { binds: Bind[]; tls: RuleContext['tls']; suffix: string }[] = tlsKind === 'mixed' && usesSsl
    ? [{ binds: serving.filter((bind) => !bind.tls), tls: 'no', suffix: '_http' }, { binds: serving.filter((bind) => bind.tls), tls: 'yes', suffix: '_https' }]
    : [{ binds: serving, tls: tlsKind, suffix: '' }];
  const built = classes.map((entry) => ({
    named: patterns.map((pattern) => ({ pattern, routes: buildRoutes(pattern, entry.tls) })),
    fallback: buildRoutes('*', entry.tls),
  }));
  if (built.length === 2 && JSON.stringify(built[0]) === JSON.stringify(built[1])) {
    classes = [{ binds: serving, tls: tlsKind, suffix: '' }];
    built.pop();
  }
  for (const [directive, why] of shadowed) if (!reached.has(directive)) report.skip(directive.location, directive.text, why);

  const maxconn = settings.maxconn;
  classes.forEach((entry, index) => {
    const { named, fallback: defaultRoutes } = built[index]!;
    const sites: DraftSite[] = [];
    for (const { pattern, routes } of named) {
      if (JSON.stringify(routes) === JSON.stringify(defaultRoutes)) continue;
      const site: DraftSite = { name: context.draft.siteName(`${section.name ?? 'frontend'}_${pattern.replace(/^\*\./, 'wildcard.')}${entry.suffix}`), hosts: [pattern], routes };
      comment(context, site, section.header);
      sites.push(site);
    }
    const fallback: DraftSite = { name: context.draft.siteName(`${section.name ?? 'frontend'}${entry.suffix}`), hosts: ['*'], routes: defaultRoutes };
    comment(context, fallback, section.header);
    if (sites.length > 0) context.draft.comment(fallback, 'every host the rules do not name');
    if (entry.suffix !== '') context.draft.comment(fallback, `the rules as they stand on the ${entry.tls === 'yes' ? 'TLS' : 'plain'} listeners (they test ssl_fc)`);
    sites.push(fallback);
    context.draft.sites.push(...sites);

    for (const bind of entry.binds) {
      const listener: DraftListener = context.draft.listener(bind.address);
      if (bind.tls) listener.tls = bind.tls;
      if (bind.http2 === false) listener.http2 = false;
      const limit = bind.maxconn ?? maxconn?.value;
      if (limit !== undefined) listener.max_connections = limit;
      for (const site of sites) context.draft.serve(listener, site.name!);
      comment(context, listener, bind.directive);
      if (bind.maxconn === undefined && maxconn) context.draft.comment(listener, `${sourceComment(maxconn.directive)} (HAProxy counts it for the whole frontend; here per listener)`);
    }
  });

  function noServer(): DraftRoute {
    return { respond: { status: 503, body: 'No server is available to handle this request.\n' } };
  }
}

/**
 * WebSocket tests written by hand (on Upgrade or Connection) become
 * `upgrade: websocket`; say so once per ACL line, and what the original
 * missed when it was stricter than the protocol.
 */
function adviseUpgradeTests(condition: Condition, context: Context): void {
  for (const conjunction of condition.dnf) {
    for (const literal of conjunction) {
      const { atom, test } = literal;
      if (atom.kind !== 'upgrade' || !test) continue;
      const key = `upgrade:${test.location.file}:${test.location.line}:${test.text}`;
      if (context.noted.has(key)) continue;
      context.noted.add(key);
      if (atom.misses.length > 0) {
        context.report.advise(test.location, test.line, `${atom.header === 'Connection' ? 'strict Connection match' : 'strict Upgrade match'}: it misses ${atom.misses.join(' and ')}; translated as upgrade: websocket, which checks the handshake the way browsers send it`);
      } else if (atom.header === 'Connection') {
        context.report.advise(test.location, test.line, 'redundant: upgrade: websocket checks the Connection header\'s upgrade token itself (any case, among other tokens such as keep-alive)');
      }
    }
  }
}

function mergeHeaders(frontend: HeaderEdits, backend: DraftRoute['request_headers']): DraftRoute['request_headers'] {
  const edits = new HeaderEdits();
  if (backend) {
    for (const name of backend.remove ?? []) edits.apply('del', name, '');
    for (const [name, value] of Object.entries(backend.set ?? {})) edits.apply('set', name, value);
    for (const [name, value] of Object.entries(backend.add ?? {})) edits.apply('add', name, value);
  }
  return frontend.merged(edits).toDraft();
}

function routeFor(action: Action, directive: Directive, match: DraftMatch, hooks: FrontendHooks, context: Context): DraftRoute | undefined {
  // match first, so the YAML reads "when, then where".
  const route: DraftRoute = Object.keys(match).length > 0 ? { match } : {};
  switch (action.kind) {
    case 'redirect':
      return Object.assign(route, { redirect: { status: action.status, location: action.location } });
    case 'respond':
      return Object.assign(route, { respond: { status: action.status, body: action.body, ...(action.contentType ? { content_type: action.contentType } : {}) } });
    case 'backend': {
      const backend = hooks.backend(action.name);
      if (typeof backend === 'string') {
        const key = `backend:${directive.location.file}:${directive.location.line}`;
        if (!context.noted.has(key)) {
          context.noted.add(key);
          context.report.skip(directive.location, directive.text, backend);
        }
        return undefined;
      }
      if (backend.upstream !== undefined) route.to = backend.upstream;
      else route.respond = { status: 503, body: 'No server is available to handle this request.\n' };
      decorate(route, backend, hooks, context, match.upgrade === 'websocket');
      return route;
    }
  }
}

function decorate(route: DraftRoute, backend: BackendTranslation, hooks: FrontendHooks, context: Context, websocket = false): void {
  const request = backend.requestHeaders.toDraft();
  const response = backend.responseHeaders.toDraft();
  if (request) route.request_headers = request;
  if (response) route.response_headers = response;
  if (backend.access.allow !== undefined) route.allow = [...backend.access.allow];
  if (backend.access.deny.length > 0) route.deny = [...backend.access.deny];
  for (const directive of backend.access.directives) context.draft.comment(route, sourceComment(directive));
  if (route.to !== undefined) hooks.routed(route, backend, websocket);
}

function redirectCode(args: readonly string[]): number {
  const at = args.indexOf('code');
  const code = at >= 0 ? Number(args[at + 1]) : 302;
  return [301, 302, 303, 307, 308].includes(code) ? code : 302;
}

function denyAction(status: number): Action {
  const bodies: Record<number, string> = {
    403: 'Request forbidden by administrative rules.\n',
    429: 'You have sent too many requests in a given amount of time.\n',
    401: 'This server could not verify that you are authorized to access the document requested.\n',
  };
  return { kind: 'respond', status, body: bodies[status] ?? '' };
}

interface FrontendTargets {
  readonly requestHeaders: HeaderEdits;
  readonly access: AccessRules;
  readonly acls: AclTable;
}

type ConditionReader = (keyword: 'if' | 'unless' | undefined, words: readonly string[], directive: Directive) => Condition;

/** http-request in a frontend: header edits, client address rules, or a rule (deny, return, redirect). */
function httpRequestRule(directive: Directive, condition: ConditionReader, targets: FrontendTargets, context: Context): Rule | 'redirect-https' | undefined {
  const { report } = context;
  const { head, keyword, condition: words } = splitCondition(directive.args);
  const [action = '', ...rest] = head;
  switch (action) {
    case 'set-header':
    case 'add-header':
    case 'del-header': {
      const edit = readHeaderEdit(directive, action, rest, keyword !== undefined, 'request', report);
      if (edit && !targets.requestHeaders.apply(edit.kind, edit.name, edit.value)) {
        report.skip(directive.location, directive.text, `a second add-header ${edit.name}: Switchyard adds one value per header name`);
      }
      return undefined;
    }
    case 'redirect':
      return redirectRule(directive, rest, condition, context, keyword, words);
    case 'deny':
    case 'reject':
    case 'tarpit': {
      if (keyword !== undefined) {
        const ranges = srcRule(keyword, words, targets.acls, directive, context);
        if (ranges) {
          addAccessRule(targets.access, ranges, directive, context);
          return undefined;
        }
      }
      const at = rest.indexOf('deny_status');
      const status = at >= 0 ? Number(rest[at + 1]) : 403;
      if (action === 'reject') report.advise(directive.location, directive.text, 'reject closes the connection without an answer; translated as a 403 answer');
      if (action === 'tarpit') report.advise(directive.location, directive.text, 'tarpit holds the connection before answering; translated as an immediate answer');
      return { action: denyAction(Number.isInteger(status) && status >= 200 && status <= 599 ? status : 403), condition: condition(keyword, words, directive), directive };
    }
    case 'return': {
      let status = 200;
      let body = '';
      let contentType: string | undefined;
      for (let i = 0; i < rest.length; i += 1) {
        const word = rest[i];
        const value = rest[i + 1];
        if (word === 'status' && value) status = Number(value);
        else if (word === 'content-type' && value !== undefined) contentType = value;
        else if (word === 'string' && value !== undefined) body = value;
        else if (word === 'lf-string' && value !== undefined) {
          const constant = constantValue(value);
          if (constant === undefined) {
            report.skip(directive.location, directive.text, 'the body uses samples (%[...]); Switchyard answers with a constant body');
            return undefined;
          }
          body = constant;
        } else if (word === 'file' || word === 'lf-file' || word === 'errorfile' || word === 'errorfiles' || word === 'hdr') {
          report.skip(directive.location, directive.text, `return with ${word} is not translated`);
          return undefined;
        } else continue;
        i += 1;
      }
      if (!Number.isInteger(status) || status < 100 || status > 599) status = 200;
      return { action: { kind: 'respond', status, body, ...(contentType !== undefined ? { contentType } : {}) }, condition: condition(keyword, words, directive), directive };
    }
    case 'allow':
      report.skip(directive.location, directive.text, 'http-request allow (stop the http-request rules here) has no equivalent; the rules after it apply to every request');
      return undefined;
    case 'set-path':
    case 'replace-path':
    case 'set-uri':
    case 'replace-uri':
    case 'set-pathq':
    case 'set-query':
      report.skip(directive.location, directive.text, 'path rewriting by http-request has no direct equivalent: use the route\'s strip_prefix or a match.regex with rewrite');
      return undefined;
    case 'auth':
      report.skip(directive.location, directive.text, 'HTTP authentication has no equivalent');
      return undefined;
    default:
      report.skip(directive.location, directive.text, `http-request ${action} is not translated`);
      return undefined;
  }
}

/**
 * `redirect scheme|location|prefix TARGET [code N] [options] [if|unless COND]`
 * (legacy keyword, or after http-request). `scheme https` guarded by
 * `!{ ssl_fc }` (or unconditional) is the listener's redirect_to_https.
 */
function redirectRule(directive: Directive, words: readonly string[], condition: ConditionReader, context: Context, keyword?: 'if' | 'unless', conditionWords?: readonly string[]): Rule | 'redirect-https' | undefined {
  const { report } = context;
  let head = words;
  let cond = keyword;
  let condWords = conditionWords ?? [];
  if (keyword === undefined) {
    const split = splitCondition(words);
    head = split.head;
    cond = split.keyword;
    condWords = split.condition;
  }
  const [type, target] = head;
  const options = head.slice(2);
  const unsupportedOption = options.find((option, index) => option !== 'code' && options[index - 1] !== 'code' && option !== 'keep-query');
  if (type === undefined || target === undefined) {
    report.skip(directive.location, directive.text, 'redirect needs a type (location, prefix, scheme) and a target');
    return undefined;
  }
  if (unsupportedOption !== undefined) {
    report.skip(directive.location, directive.text, `redirect option ${unsupportedOption} is not translated`);
    return undefined;
  }
  const parsed = condition(cond, condWords, directive);
  if (type === 'scheme' && target === 'https') {
    const plainOnly = parsed.dnf.length === 1 && parsed.dnf[0]!.length <= 1 && parsed.dnf[0]!.every((literal) => literal.atom.kind === 'ssl' && literal.negated);
    if (plainOnly) return 'redirect-https';
  }
  const status = redirectCode(head) as 301 | 302 | 303 | 307 | 308;
  const constant = constantValue(target);
  if (constant === undefined) {
    report.skip(directive.location, directive.text, 'the target uses samples (%[...]); Switchyard\'s redirect templates know $host, $path, $query and $scheme');
    return undefined;
  }
  const literal = constant.replace(/\$/g, '$$$$');
  let location: string;
  if (type === 'location') location = literal;
  else if (type === 'prefix') location = `${literal.replace(/\/$/, '')}$path`;
  else if (type === 'scheme') location = `${literal}://$host$path`;
  else {
    report.skip(directive.location, directive.text, `redirect ${type} is not translated`);
    return undefined;
  }
  return { action: { kind: 'redirect', status, location }, condition: parsed, directive };
}
