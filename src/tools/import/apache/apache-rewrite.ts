import { countGroups } from '../../../config/regex-groups.js';
import { anchoredLiteral } from '../../../router/route-matcher.js';
import { Template } from '../../../router/template.js';
import type { DraftRoute } from '../config-draft.js';
import { escapeRegex, toJsRegex } from '../values.js';
import type { RewriteCondition, RewriteRuleEntry } from './apache-model.js';

/**
 * mod_rewrite in server context → Switchyard route parts. A rule becomes one
 * route per way its conditions can hold ([OR] groups multiplied out); the
 * WebSocket conditions on Upgrade and Connection become `upgrade: websocket`
 * (or `none` when negated), other header conditions `match.headers`, path
 * conditions part of the path regex. The substitution becomes a proxy target
 * with a rewrite template ([P]), a redirect ([R], or an absolute URL), or a
 * local answer ([F], [G]).
 */

export type DraftMatch = NonNullable<DraftRoute['match']>;
type HeaderCondition = NonNullable<DraftMatch['headers']>[string];

export interface RewriteFacts {
  /** The server this rule belongs to is a TLS one (%{HTTPS} is "on"). */
  readonly tls: boolean;
  /** Its ports (%{SERVER_PORT}). */
  readonly ports: readonly number[];
}

export interface Remark {
  readonly directive: RewriteCondition['directive'] | RewriteRuleEntry['directive'];
  readonly kind: 'advise' | 'skip';
  readonly message: string;
}

export type RewriteAction =
  | { readonly kind: 'proxy'; readonly url: string; readonly scheme: string; readonly authority: string; readonly rewrite: string | undefined }
  | { readonly kind: 'redirect'; readonly status: 301 | 302 | 303 | 307 | 308; readonly location: string }
  | { readonly kind: 'respond'; readonly status: number };

export interface RewriteTranslation {
  /** One match per way the conditions can hold. */
  readonly matches: DraftMatch[];
  readonly action: RewriteAction;
  /** Notes to report (strict WebSocket conditions, ignored flags, ...). */
  readonly remarks: Remark[];
  /** The rule's conditions decide on WebSocket handshakes (Upgrade/Connection). */
  readonly websocketConditions: boolean;
}

/** Why a rule is not translated, reported by the caller as a skip. */
export class RewriteSkip extends Error {}

const UNSUPPORTED_FLAGS: Readonly<Record<string, string>> = {
  c: 'chained rules ([C]) are not translated',
  s: 'skipping rules ([S]) is not translated',
  n: 'looping rules ([N]) are not translated',
  pt: '[PT] hands the path to Alias/ProxyPass mapping, which is not translated',
};

const IGNORED_FLAGS = new Set(['l', 'end', 'nc', 'ne', 'ns', 'p', 'r', 'f', 'g', 'qsa', 'qsd', 'b', 'bnp', 'bctls', 'bne', 'dpi', 'unsafeallow3f', 'unsafeprefixstat']);

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE'];

/** A translated condition: what it requires, or that it always / never holds here. */
type Condition =
  | { readonly kind: 'upgrade'; readonly value: 'websocket' | 'none' }
  | { readonly kind: 'header'; readonly name: string; readonly regex: string }
  | { readonly kind: 'present'; readonly name: string }
  | { readonly kind: 'path'; readonly regex: string; readonly negated: boolean }
  | { readonly kind: 'methods'; readonly methods: readonly string[] }
  | { readonly kind: 'true' }
  | { readonly kind: 'false'; readonly why: string };

export function translateRewriteRule(rule: RewriteRuleEntry, facts: RewriteFacts): RewriteTranslation {
  const remarks: Remark[] = [];
  for (const [flag, value] of rule.flags) {
    if (UNSUPPORTED_FLAGS[flag] !== undefined) throw new RewriteSkip(UNSUPPORTED_FLAGS[flag]);
    if (flag === 'e' || flag === 'co' || flag === 't' || flag === 'h') {
      remarks.push({ directive: rule.directive, kind: 'skip', message: `flag [${flag.toUpperCase()}=${value}] is not translated (the rest of the rule is)` });
    } else if (!IGNORED_FLAGS.has(flag)) {
      remarks.push({ directive: rule.directive, kind: 'skip', message: `flag [${flag.toUpperCase()}${value === '' ? '' : `=${value}`}] is not translated (the rest of the rule is)` });
    }
  }
  const caseless = rule.flags.has('nc');
  let pattern = rule.pattern;
  const negatedPattern = pattern.startsWith('!');
  if (negatedPattern) pattern = pattern.slice(1);
  const ruleRegex = toJsRegex(pattern, caseless);
  if (ruleRegex === undefined) throw new RewriteSkip(`the pattern ${JSON.stringify(rule.pattern)} is not a regular expression JavaScript reads`);
  const groups = negatedPattern ? 0 : countGroups(ruleRegex);
  const pathRegex = negatedPattern ? `^(?![\\s\\S]*?(?:${ruleRegex}))` : ruleRegex;

  const action = ruleAction(rule, groups, remarks);

  // [OR] binds a condition to the next one: (a OR b) AND c.
  const groupsOfConditions: Condition[][] = [];
  let orOpen = false;
  let websocketConditions = false;
  for (const condition of rule.conditions) {
    const translated = translateCondition(condition, facts, remarks);
    if (translated.kind === 'upgrade') websocketConditions = true;
    if (orOpen) groupsOfConditions[groupsOfConditions.length - 1]!.push(translated);
    else groupsOfConditions.push([translated]);
    orOpen = condition.flags.includes('or');
  }
  const conjuncts = multiply(groupsOfConditions);
  if (conjuncts.length > 8) throw new RewriteSkip(`its [OR] conditions make ${conjuncts.length} cases (8 at most are translated)`);
  const matches: DraftMatch[] = [];
  const never: string[] = [];
  for (const conjunct of conjuncts) {
    const match = combine(conjunct, pathRegex);
    if (typeof match === 'string') never.push(match);
    else if (!matches.some((known) => JSON.stringify(known) === JSON.stringify(match))) matches.push(match);
  }
  if (matches.length === 0) throw new RewriteSkip(`its conditions never hold here (${[...new Set(never)].join('; ')})`);
  if (action.kind === 'proxy' && action.rewrite !== undefined) {
    // A template that gives back the path it was given changes nothing: drop it (and a regex that takes every path).
    const simplified = matches.map((match) => simplifyPath(match, action.rewrite!));
    const everything = simplified.find((entry) => entry.identity && Object.keys(entry.match).length === 0);
    if (everything) return { matches: [everything.match], action: { ...action, rewrite: undefined }, remarks, websocketConditions };
    if (simplified.every((entry) => entry.identity)) {
      return { matches: collapse(simplified.map((entry) => entry.match)), action: { ...action, rewrite: undefined }, remarks, websocketConditions };
    }
  }
  if (action.kind !== 'proxy' && (action.kind !== 'redirect' || !/\$\{?\d/.test(action.location))) {
    // A redirect or answer that uses no capture needs no regex that takes every path.
    return { matches: collapse(matches.map((match) => (match.regex !== undefined && matchesEveryPath(match.regex) ? withoutRegex(match) : match))), action, remarks, websocketConditions };
  }
  return { matches, action, remarks, websocketConditions };
}

/** When one way the conditions can hold takes every request, the others add nothing. */
function collapse(matches: DraftMatch[]): DraftMatch[] {
  const everything = matches.find((match) => Object.keys(match).length === 0);
  return everything ? [everything] : matches;
}

function withoutRegex(match: DraftMatch): DraftMatch {
  const rest = { ...match };
  delete rest.regex;
  return rest;
}

function matchesEveryPath(source: string): boolean {
  try {
    const regex = new RegExp(source);
    return SAMPLE_PATHS.every((path) => regex.test(path));
  } catch {
    return false;
  }
}

function ruleAction(rule: RewriteRuleEntry, groups: number, remarks: Remark[]): RewriteAction {
  const flags = rule.flags;
  const substitution = rule.substitution;
  if (flags.has('f')) return { kind: 'respond', status: 403 };
  if (flags.has('g')) return { kind: 'respond', status: 410 };
  if (substitution === '-') throw new RewriteSkip('a rule with no substitution ("-") and no [F] or [G] changes nothing Switchyard can carry over');
  const template = substitutionTemplate(substitution, groups);
  const absolute = /^([a-z][a-z0-9+.-]*):\/\/([^/$]*)(.*)$/i.exec(template);
  if (flags.has('p')) {
    if (!absolute) throw new RewriteSkip('[P] needs an absolute URL (scheme://host/...)');
    const scheme = absolute[1]!.toLowerCase();
    const authority = absolute[2]!;
    if (authority === '' || /^\$\{?(host|scheme|query)\b/.test(absolute[3]!)) throw new RewriteSkip('the backend host comes from a variable; Switchyard backends are fixed');
    const path = absolute[3] === '' ? '/' : absolute[3]!;
    if (flags.has('qsa') && path.includes('?')) throw new RewriteSkip('[QSA] with a query in the substitution (merging two queries) is not translated');
    return { kind: 'proxy', url: `${scheme}://${authority}`, scheme, authority, rewrite: path };
  }
  const redirectFlag = flags.get('r');
  if (redirectFlag !== undefined || absolute) {
    let status = 302;
    if (redirectFlag !== undefined && redirectFlag !== '') {
      const named: Readonly<Record<string, number>> = { permanent: 301, temp: 302, seeother: 303 };
      status = named[redirectFlag.toLowerCase()] ?? Number(redirectFlag);
    }
    if (redirectFlag === undefined) remarks.push({ directive: rule.directive, kind: 'advise', message: 'an absolute URL without [P] or [R] is an external redirect (302) in Apache; translated as one' });
    if (status === 301 || status === 302 || status === 303 || status === 307 || status === 308) {
      if (flags.has('qsd')) remarks.push({ directive: rule.directive, kind: 'skip', message: '[QSD] is not translated: the redirect keeps the query' });
      return { kind: 'redirect', status, location: template };
    }
    if (status >= 400 && status < 600) return { kind: 'respond', status };
    throw new RewriteSkip(`redirect status ${redirectFlag} is not one Switchyard sends (301, 302, 303, 307, 308)`);
  }
  throw new RewriteSkip('rewrites to a local path: Switchyard serves no files and does not rewrite for a later ProxyPass; add a route with rewrite: if it fed one');
}

/** Apache's substitution → a Switchyard template ($N, %{REQUEST_URI} → $path, %{HTTP_HOST} → $host, ...). */
export function substitutionTemplate(substitution: string, groups: number): string {
  let out = '';
  const isNamePart = (char: string | undefined): boolean => char !== undefined && /[\w]/.test(char);
  const variable = (name: string, next: string | undefined): string => (isNamePart(next) ? `\${${name}}` : `$${name}`);
  for (let i = 0; i < substitution.length; i += 1) {
    const char = substitution[i]!;
    if (char === '\\' && i + 1 < substitution.length) {
      const next = substitution[i + 1]!;
      out += next === '$' ? '$$' : next;
      i += 1;
      continue;
    }
    if (char === '$') {
      const digit = substitution[i + 1];
      if (digit !== undefined && /\d/.test(digit)) {
        const index = Number(digit);
        // A group the pattern does not have is empty in Apache.
        if (index <= groups) out += /\d/.test(substitution[i + 2] ?? '') ? `\${${index}}` : `$${index}`;
        i += 1;
        continue;
      }
      out += '$$';
      continue;
    }
    if (char === '%') {
      const next = substitution[i + 1];
      if (next !== undefined && /\d/.test(next)) throw new RewriteSkip(`%${next} (a RewriteCond capture) is not translated`);
      if (next === '{') {
        const close = substitution.indexOf('}', i + 2);
        if (close < 0) throw new RewriteSkip('unclosed %{ in the substitution');
        const name = substitution.slice(i + 2, close).toUpperCase();
        const after = substitution[close + 1];
        i = close;
        switch (name) {
          case 'REQUEST_URI':
            out += variable('path', after);
            continue;
          case 'HTTP_HOST':
            out += variable('host', after);
            continue;
          case 'SERVER_NAME':
            // The name the client asked for, without its port (UseCanonicalName Off, the default).
            out += variable('hostname', after);
            continue;
          case 'REQUEST_SCHEME':
            out += variable('scheme', after);
            continue;
          case 'QUERY_STRING':
            if (!out.endsWith('?')) throw new RewriteSkip('%{QUERY_STRING} outside "?%{QUERY_STRING}" is not translated');
            out = out.slice(0, -1) + variable('query', after);
            continue;
          default:
            throw new RewriteSkip(`%{${name}} in the substitution is not translated`);
        }
      }
    }
    out += char;
  }
  return out;
}

function translateCondition(condition: RewriteCondition, facts: RewriteFacts, remarks: Remark[]): Condition {
  const caseless = condition.flags.includes('nc');
  let pattern = condition.pattern;
  const negated = pattern.startsWith('!');
  if (negated) pattern = pattern.slice(1);
  const test = condition.test;
  const text = condition.directive.text;

  // File tests: Switchyard has no files, so "no such file" always holds.
  if (/^-[dfFsUlLhx]$/.test(pattern)) {
    if (negated) {
      remarks.push({ directive: condition.directive, kind: 'advise', message: `file test ${pattern}: Switchyard serves no files, so it is taken as "no such file" (always true)` });
      return { kind: 'true' };
    }
    return { kind: 'false', why: `${text}: Switchyard serves no files` };
  }
  const variable = /^%\{([^}]+)\}$/.exec(test)?.[1];
  if (variable === undefined) throw new RewriteSkip(`${text}: the test string ${JSON.stringify(test)} is not translated`);
  const upper = variable.toUpperCase();
  if (upper === 'SERVER_NAME') {
    // With UseCanonicalName Off (the default) this is the name the client asked for: the Host header without its port.
    const matcher = conditionMatcher(pattern, caseless, text);
    const regex = pattern.startsWith('=') ? matcher.regex.replace(/\$$/, '(?::\\d+)?$') : matcher.regex;
    if (negated) return { kind: 'header', name: 'Host', regex: `^(?![\\s\\S]*?(?:${regex}))` };
    return { kind: 'header', name: 'Host', regex };
  }
  const header = upper.startsWith('HTTP:') ? variable.slice(5) : HTTP_VARIABLES[upper];
  if (upper.startsWith('HTTP_') && header === undefined) {
    throw new RewriteSkip(`${text}: %{${variable}} is not a mod_rewrite variable (Apache reads it as empty); %{HTTP:Name} reads a header`);
  }
  const matcher = conditionMatcher(pattern, caseless, text);

  if (header !== undefined) {
    const lower = header.toLowerCase();
    if (lower === 'upgrade') {
      const lowerCase = matcher.test('websocket');
      const capitalised = matcher.test('WebSocket');
      if (lowerCase || capitalised) {
        if (!lowerCase || !capitalised) {
          remarks.push({
            directive: condition.directive, kind: 'advise',
            message: `strict Upgrade match: the original accepted only ${lowerCase ? '"websocket"' : '"WebSocket"'} (browsers differ: Firefox sends "websocket"); upgrade: websocket takes any case`,
          });
        }
        return { kind: 'upgrade', value: negated ? 'none' : 'websocket' };
      }
    }
    if (lower === 'connection') {
      const plain = matcher.test('Upgrade') || matcher.test('upgrade');
      if (plain) {
        const firefox = matcher.test('keep-alive, Upgrade');
        const lowerCase = matcher.test('upgrade');
        const capitalised = matcher.test('Upgrade');
        if (!firefox || !lowerCase || !capitalised) {
          const rejected = [!firefox ? '"keep-alive, Upgrade" (Firefox)' : '', !lowerCase ? '"upgrade"' : '', !capitalised ? '"Upgrade"' : ''].filter((item) => item !== '');
          remarks.push({
            directive: condition.directive, kind: 'advise',
            message: `strict Connection match: the original rejected Connection: ${rejected.join(' and ')}, so those WebSockets failed; upgrade: websocket checks the Connection tokens properly`,
          });
        }
        return { kind: 'upgrade', value: negated ? 'none' : 'websocket' };
      }
    }
    if (lower === 'proxy-connection') throw new RewriteSkip(`${text}: hop-by-hop header conditions are not translated`);
    if (negated) {
      if (matcher.emptyOnly) return { kind: 'present', name: header };
      if (lower === 'host') return { kind: 'header', name: 'Host', regex: `^(?![\\s\\S]*?(?:${matcher.regex}))` };
      throw new RewriteSkip(`${text}: a negated header condition also holds when the header is absent, which a header match cannot say`);
    }
    if (matcher.emptyOnly) throw new RewriteSkip(`${text}: "header is empty or absent" is not translated`);
    return { kind: 'header', name: header, regex: matcher.regex };
  }
  switch (upper) {
    case 'REQUEST_URI':
    case 'REQUEST_FILENAME':
    case 'SCRIPT_FILENAME':
      return { kind: 'path', regex: matcher.pathRegex, negated };
    case 'REQUEST_METHOD': {
      const methods = METHODS.filter((method) => matcher.test(method) !== negated);
      if (methods.length === 0) return { kind: 'false', why: `${text}: no method matches` };
      return methods.length === METHODS.length ? { kind: 'true' } : { kind: 'methods', methods };
    }
    case 'HTTPS':
      return matcher.test(facts.tls ? 'on' : 'off') !== negated ? { kind: 'true' } : { kind: 'false', why: `${text}: this server is ${facts.tls ? '' : 'not '}TLS` };
    case 'REQUEST_SCHEME':
      return matcher.test(facts.tls ? 'https' : 'http') !== negated ? { kind: 'true' } : { kind: 'false', why: `${text}: this server is ${facts.tls ? '' : 'not '}TLS` };
    case 'SERVER_PORT': {
      const results = new Set(facts.ports.map((port) => matcher.test(String(port)) !== negated));
      if (results.size === 1) return results.has(true) ? { kind: 'true' } : { kind: 'false', why: `${text}: this server listens on ${facts.ports.join(', ')}` };
      throw new RewriteSkip(`${text}: the server listens on several ports, which a route cannot tell apart`);
    }
    default:
      throw new RewriteSkip(`${text}: conditions on %{${variable}} are not translated`);
  }
}

/** mod_rewrite's HTTP_* variables and the header each reads. */
const HTTP_VARIABLES: Readonly<Record<string, string>> = {
  HTTP_HOST: 'Host', HTTP_USER_AGENT: 'User-Agent', HTTP_REFERER: 'Referer', HTTP_COOKIE: 'Cookie', HTTP_ACCEPT: 'Accept',
  HTTP_FORWARDED: 'Forwarded', HTTP_PROXY_CONNECTION: 'Proxy-Connection',
};

interface Matcher {
  /** The JavaScript regex source the condition tests (letters as written; header matches ignore case anyway). */
  readonly regex: string;
  /** The same, with [NC] spelled into the regex (for paths, which match with case). */
  readonly pathRegex: string;
  /** The pattern matches only the empty string (`^$`, `=""`). */
  readonly emptyOnly: boolean;
  test(value: string): boolean;
}

/** A CondPattern: `=text` (string equality), `<text`/`>text` (not translated), or a regex. */
function conditionMatcher(pattern: string, caseless: boolean, text: string): Matcher {
  if (pattern.startsWith('=') && !pattern.startsWith('==')) {
    const literal = pattern.slice(1).replace(/^"(.*)"$/, '$1');
    const regex = literal === '' ? '^$' : `^${escapeRegex(literal)}$`;
    const compiled = new RegExp(regex, caseless ? 'i' : '');
    return { regex, pathRegex: toJsRegex(regex, caseless) ?? regex, emptyOnly: literal === '', test: (value) => compiled.test(value) };
  }
  if (/^(<|>|<=|>=|-eq|-ne|-lt|-le|-gt|-ge|-ipmatch|-strmatch|-strcmatch|-fnmatch)/.test(pattern)) {
    throw new RewriteSkip(`${text}: the comparison ${JSON.stringify(pattern)} is not translated`);
  }
  const regex = toJsRegex(pattern, false);
  if (regex === undefined) throw new RewriteSkip(`${text}: ${JSON.stringify(pattern)} is not a regular expression JavaScript reads`);
  const compiled = new RegExp(regex, caseless ? 'i' : '');
  return { regex, pathRegex: toJsRegex(pattern, caseless) ?? regex, emptyOnly: regex === '^$', test: (value) => compiled.test(value) };
}

/** Capturing groups made non-capturing, so a condition's regex can sit in a lookahead without renumbering $1.. */
function neutralise(source: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < source.length; i += 1) {
    const char = source[i]!;
    if (char === '\\') {
      out += source.slice(i, i + 2);
      i += 1;
      continue;
    }
    if (inClass) {
      if (char === ']') inClass = false;
      out += char;
      continue;
    }
    if (char === '[') inClass = true;
    if (char === '(' && source[i + 1] !== '?') {
      out += '(?:';
      continue;
    }
    if (char === '(' && source[i + 1] === '?' && source[i + 2] === '<' && source[i + 3] !== '=' && source[i + 3] !== '!') {
      const close = source.indexOf('>', i);
      out += '(?:';
      i = close;
      continue;
    }
    out += char;
  }
  return out;
}

function multiply(groups: readonly Condition[][]): Condition[][] {
  let result: Condition[][] = [[]];
  for (const group of groups) {
    const next: Condition[][] = [];
    for (const partial of result) for (const choice of group) next.push([...partial, choice]);
    result = next;
    if (result.length > 64) break;
  }
  return result;
}

/** The match for one conjunct of conditions, or why it never holds. */
function combine(conditions: readonly Condition[], pathRegex: string): DraftMatch | string {
  const match: DraftMatch = {};
  const pathParts: { regex: string; negated: boolean }[] = [];
  const headerParts = new Map<string, { name: string; regexes: string[]; present: boolean }>();
  let methods: string[] | undefined;
  for (const condition of conditions) {
    switch (condition.kind) {
      case 'true':
        break;
      case 'false':
        return condition.why;
      case 'upgrade':
        if (match.upgrade !== undefined && match.upgrade !== condition.value) return 'a WebSocket handshake and not one at once';
        match.upgrade = condition.value;
        break;
      case 'path':
        pathParts.push(condition);
        break;
      case 'methods':
        methods = methods === undefined ? [...condition.methods] : methods.filter((method) => condition.methods.includes(method));
        if (methods.length === 0) return 'no method meets every condition';
        break;
      case 'header':
      case 'present': {
        const key = condition.name.toLowerCase();
        const entry = headerParts.get(key) ?? { name: condition.name, regexes: [], present: false };
        if (condition.kind === 'header') entry.regexes.push(condition.regex);
        else entry.present = true;
        headerParts.set(key, entry);
        break;
      }
    }
  }
  if (methods !== undefined) match.methods = methods;
  if (headerParts.size > 0) {
    const headers: Record<string, HeaderCondition> = {};
    for (const entry of headerParts.values()) {
      if (entry.regexes.length === 0) headers[entry.name] = { present: true };
      else if (entry.regexes.length === 1) headers[entry.name] = { regex: entry.regexes[0]! };
      else headers[entry.name] = { regex: `^${entry.regexes.map((regex) => `(?=[\\s\\S]*?(?:${neutralise(regex)}))`).join('')}` };
    }
    match.headers = headers;
  }
  const ruleTakesAll = countGroups(pathRegex) === 0 && matchesEveryPath(pathRegex);
  if (pathParts.length === 0) {
    match.regex = pathRegex;
  } else if (ruleTakesAll && pathParts.length === 1 && !pathParts[0]!.negated) {
    // RewriteCond %{REQUEST_URI} X + RewriteRule .* → the condition's regex is the route's.
    match.regex = pathParts[0]!.regex;
  } else {
    // Lookaheads at the start keep the rule's own groups first ($1 stays $1).
    const lookaheads = pathParts.map((part) => `(?${part.negated ? '!' : '='}[\\s\\S]*?(?:${neutralise(part.regex)}))`).join('');
    match.regex = ruleTakesAll ? `^${lookaheads}` : `^${lookaheads}[\\s\\S]*?(?:${pathRegex})`;
  }
  return match;
}

/** A match and rewrite template, without the template when it gives back the path it got (and without a regex that takes every path). */
export function simplifyRewrite(match: DraftMatch, rewrite: string): { match: DraftMatch; rewrite: string | undefined } {
  const simplified = simplifyPath(match, rewrite);
  return simplified.identity ? { match: simplified.match, rewrite: undefined } : { match, rewrite };
}

const SAMPLE_PATHS = [
  '/', '/a', '/a/b', '/ws', '/ws/', '/ws/x', '/x/y.z', '/socket.io/', '/api/kernels/1/channels', '/myApp/ws', '/liveviewhandler/x',
  '/A1', '/%20x', '/-_~!$&\'()*+,;=:@', '/a//b', '/\u00e4', '/.hidden',
];

/**
 * Whether a rewrite template gives back the very path it got, for every path
 * its match takes (then it can go), and the match without a regex that takes
 * every path, or with a prefix when the regex is one in disguise.
 */
function simplifyPath(match: DraftMatch, rewrite: string): { match: DraftMatch; identity: boolean } {
  const source = match.regex;
  if (source === undefined) return { match, identity: rewrite === '$path' || rewrite === '${path}' };
  if (rewrite === '$path' || rewrite === '${path}') {
    // %{REQUEST_URI} gives back the path whatever the regex.
    return { match: matchesEveryPath(source) ? withoutRegex(match) : match, identity: true };
  }
  let regex: RegExp;
  let template: Template;
  try {
    regex = new RegExp(source);
    template = new Template(rewrite);
  } catch {
    return { match, identity: false };
  }
  // Paths the regex is about: its anchored literal, and those of its lookaheads.
  const literals = [anchoredLiteral(source) ?? '', ...[...source.matchAll(/\^((?:\\[/.-]|[\w/-])+)/g)].map((found) => found[1]!.replace(/\\([/.-])/g, '$1'))];
  const samples = [...SAMPLE_PATHS, ...literals.flatMap((literal) => [literal, `${literal}x`, `${literal}x/y`, `${literal}/x`])].filter((path) => path.startsWith('/'));
  let matched = 0;
  let all = true;
  for (const path of samples) {
    const captures = regex.exec(path);
    if (!captures) {
      all = false;
      continue;
    }
    matched += 1;
    let expanded = template.expand({ captures, path, query: '', host: 'h', scheme: 'http' });
    if (!expanded.startsWith('/')) expanded = `/${expanded}`;
    if (expanded !== path) return { match, identity: false };
  }
  if (matched === 0) return { match, identity: false };
  const rest: DraftMatch = { ...match };
  delete rest.regex;
  if (all) return { match: rest, identity: true };
  // ^/literal/(.*)$ or ^/literal/ is a prefix match.
  const prefix = /^\^((?:\\[/.-]|[^\\^$.|?*+()[\]{}])*\/)(?:\(\.\*\)|\.\*)?\$?$/.exec(source)?.[1];
  if (prefix !== undefined) return { match: { ...rest, prefix: prefix.replace(/\\([/.-])/g, '$1') }, identity: true };
  return { match, identity: true };
}
