import { ImportError } from '../import-error.js';
import type { DraftRoute } from '../config-draft.js';
import type { SourceLocation } from '../source-location.js';
import { atomsOf, parseAclTest, predefinedAcl, type AclTable, type AclTest, type Atom, type HeaderCondition } from './haproxy-acl.js';
import type { Directive } from './haproxy-parser.js';

/**
 * Rule conditions (`if` / `unless` followed by ACL names, `!`, `or`/`||` and
 * anonymous `{ ... }` ACLs) brought to a disjunction of conjunctions of
 * atoms, then, per site and listener kind, to Switchyard `match` objects.
 */

export type DraftMatch = NonNullable<DraftRoute['match']>;

export interface Literal {
  readonly atom: Atom;
  readonly negated: boolean;
  readonly test: AclTest | undefined;
}

/** OR of ANDs. An empty conjunction is "always"; an empty list is "never". */
export type Dnf = Literal[][];

/** The rule's condition as written, plus the ACL lines it used (for comments). */
export interface Condition {
  readonly dnf: Dnf;
  readonly acls: readonly Directive[];
  /** The condition's words, for notes (empty when unconditional). */
  readonly text: string;
}

const MAX_TERMS = 64;

type Expr =
  | { readonly op: 'lit'; readonly literal: Literal }
  | { readonly op: 'and' | 'or'; readonly items: readonly Expr[] }
  | { readonly op: 'not'; readonly item: Expr };

/**
 * Splits `ACTION ARGS... [if|unless COND]` at the condition. `words` are the
 * directive's arguments; `from` where the action's own words end is found
 * by the first `if`/`unless`.
 */
export function splitCondition(words: readonly string[]): { head: string[]; keyword: 'if' | 'unless' | undefined; condition: string[] } {
  const at = words.findIndex((word) => word === 'if' || word === 'unless');
  if (at < 0) return { head: [...words], keyword: undefined, condition: [] };
  return { head: words.slice(0, at), keyword: words[at] as 'if' | 'unless', condition: words.slice(at + 1) };
}

/** The DNF of `if|unless WORDS`, with the ACLs of the section (unknown names: ImportError). */
export function parseCondition(keyword: 'if' | 'unless' | undefined, words: readonly string[], acls: AclTable, location: SourceLocation, baseDir: string, line: string): Condition {
  if (keyword === undefined) return { dnf: [[]], acls: [], text: '' };
  const used: Directive[] = [];
  const alternatives: Expr[] = [];
  let terms: Expr[] = [];
  for (let i = 0; i < words.length; i += 1) {
    let word = words[i]!;
    if (word === 'or' || word === '||') {
      if (terms.length === 0) throw new ImportError(location, `"${word}" without a condition before it`);
      alternatives.push({ op: 'and', items: terms });
      terms = [];
      continue;
    }
    let negated = false;
    while (word.startsWith('!')) {
      negated = !negated;
      word = word.slice(1);
      if (word === '') {
        i += 1;
        word = words[i] ?? '';
        if (word === '') throw new ImportError(location, '"!" without an ACL after it');
      }
    }
    let expr: Expr;
    if (word === '{') {
      const end = words.indexOf('}', i + 1);
      if (end < 0) throw new ImportError(location, 'an anonymous ACL "{" without its closing "}"');
      const test = parseAclTest(words.slice(i + 1, end), location, baseDir, line);
      expr = orOf(test);
      i = end;
    } else {
      const tests = acls.tests(word) ?? (() => {
        const predefined = predefinedAcl(word, location);
        return predefined ? [predefined] : undefined;
      })();
      if (!tests) throw new ImportError(location, `no ACL named "${word}" in this section`);
      used.push(...acls.directives(word));
      expr = { op: 'or', items: tests.map(orOf) };
    }
    terms.push(negated ? { op: 'not', item: expr } : expr);
  }
  if (terms.length === 0) throw new ImportError(location, `"${keyword}" without a condition after it`);
  alternatives.push({ op: 'and', items: terms });
  const root: Expr = { op: 'or', items: alternatives };
  const dnf = toDnf(keyword === 'unless' ? { op: 'not', item: root } : root);
  return { dnf, acls: used, text: `${keyword} ${words.join(' ')}` };
}

function orOf(test: AclTest): Expr {
  return { op: 'or', items: atomsOf(test).map((atom) => ({ op: 'lit', literal: { atom, negated: false, test } })) };
}

function toDnf(expr: Expr): Dnf {
  switch (expr.op) {
    case 'lit':
      return [[expr.literal]];
    case 'or':
      return limit(expr.items.flatMap(toDnf));
    case 'and': {
      let result: Dnf = [[]];
      for (const item of expr.items) {
        const next = toDnf(item);
        result = limit(result.flatMap((left) => next.map((right) => [...left, ...right])));
      }
      return result;
    }
    case 'not':
      return toDnf(pushNot(expr.item));
  }
}

function pushNot(expr: Expr): Expr {
  switch (expr.op) {
    case 'lit':
      return { op: 'lit', literal: { ...expr.literal, negated: !expr.literal.negated } };
    case 'or':
      return { op: 'and', items: expr.items.map(pushNot) };
    case 'and':
      return { op: 'or', items: expr.items.map(pushNot) };
    case 'not':
      return expr.item;
  }
}

function limit(dnf: Dnf): Dnf {
  if (dnf.length > MAX_TERMS) {
    return [[{ atom: { kind: 'unsupported', why: `the condition expands to more than ${MAX_TERMS} cases` }, negated: false, test: undefined }]];
  }
  return dnf;
}

/** Host names any literal of these conditions tests (in order of appearance). */
export function hostPatterns(conditions: readonly Condition[]): string[] {
  const patterns: string[] = [];
  for (const condition of conditions) {
    for (const conjunction of condition.dnf) {
      for (const literal of conjunction) {
        if (literal.atom.kind !== 'host') continue;
        for (const pattern of literal.atom.patterns) if (!patterns.includes(pattern)) patterns.push(pattern);
      }
    }
  }
  return patterns;
}

/** The site a route list is being built for: its host pattern ("*" = none of the named ones) and its listeners. */
export interface RuleContext {
  readonly host: string;
  readonly tls: 'yes' | 'no' | 'mixed';
}

/** Whether requests for site `site` (an exact name, `*.domain`, or `*` for the rest) pass a host test on `patterns`. */
export function hostPasses(site: string, patterns: readonly string[]): boolean {
  if (site === '*') return false;
  return patterns.some((pattern) => {
    if (pattern === site) return true;
    if (!pattern.startsWith('*.')) return false;
    const domain = pattern.slice(1);
    if (site.startsWith('*.')) return site.slice(1).endsWith(domain);
    return site.endsWith(domain);
  });
}

export interface MatchResult {
  /** Matches (OR) that state the condition in this context, each with notes for its route's comments (approximations); empty: it never holds here. */
  readonly matches: { readonly match: DraftMatch; readonly notes: readonly string[] }[];
  /** Conjunctions that cannot be stated, with the reason. */
  readonly unsupported: string[];
}

/**
 * The condition in this context as route matches: host and TLS tests are
 * decided here (sites split by host, listeners by TLS), everything else
 * becomes path, header, query, method and upgrade conditions.
 */
export function conditionMatches(condition: Condition, context: RuleContext): MatchResult {
  const matches: MatchResult['matches'] = [];
  const unsupported: string[] = [];
  for (const conjunction of condition.dnf) {
    const remaining: Literal[] = [];
    let holds = true;
    let reason: string | undefined;
    for (const literal of conjunction) {
      const value = decide(literal, context);
      if (value === 'unsupported') reason ??= describeUnsupported(literal);
      else if (value === false) holds = false;
      else if (value === 'keep') remaining.push(literal);
    }
    if (!holds) continue;
    if (reason !== undefined) {
      unsupported.push(reason);
      continue;
    }
    const built = buildMatch(remaining);
    if ('why' in built) {
      if (built.why !== 'never') unsupported.push(built.why);
      continue;
    }
    matches.push(built);
  }
  return { matches, unsupported };
}

function describeUnsupported(literal: Literal): string {
  const atom = literal.atom;
  if (atom.kind === 'unsupported') return atom.why;
  if (atom.kind === 'ssl') return `${literal.negated ? '!' : ''}ssl_fc on a frontend with both TLS and plain binds`;
  return `${literal.negated ? '!' : ''}${literal.test?.text ?? atom.kind}`;
}

/** true: holds here; false: never here; keep: a route condition; unsupported. */
function decide(literal: Literal, context: RuleContext): boolean | 'keep' | 'unsupported' {
  const flip = (value: boolean): boolean => (literal.negated ? !value : value);
  const atom = literal.atom;
  switch (atom.kind) {
    case 'true': return flip(true);
    case 'false': return flip(false);
    case 'host': return flip(hostPasses(context.host, atom.patterns));
    case 'ssl': return context.tls === 'mixed' ? 'unsupported' : flip(context.tls === 'yes');
    case 'unsupported': return 'unsupported';
    default: return 'keep';
  }
}

/** A conjunction of route-level literals as one match (or why it cannot be one). */
export function buildMatch(literals: readonly Literal[]): { match: DraftMatch; notes: string[] } | { why: string } {
  const match: DraftMatch = {};
  const notes: string[] = [];
  const pathParts: { regex: string; negated: boolean; prefix?: string; exact?: string }[] = [];
  const headers = new Map<string, { name: string; conditions: HeaderCondition[] }>();
  const query = new Map<string, HeaderCondition[]>();
  for (const literal of literals) {
    const atom = literal.atom;
    const text = `${literal.negated ? '!' : ''}${literal.test?.text ?? atom.kind}`;
    if ('note' in atom && atom.note !== undefined && !notes.includes(atom.note)) notes.push(atom.note);
    switch (atom.kind) {
      case 'upgrade': {
        const wanted = literal.negated ? 'none' : 'websocket';
        if (match.upgrade !== undefined && match.upgrade !== wanted) return { why: 'never' };
        match.upgrade = wanted;
        break;
      }
      case 'methods': {
        if (literal.negated) return { why: `${text}: a negated method test has no Switchyard match` };
        const methods = match.methods ? match.methods.filter((method) => atom.methods.includes(method)) : [...atom.methods];
        if (methods.length === 0) return { why: 'never' };
        match.methods = methods;
        break;
      }
      case 'path':
        pathParts.push({ regex: atom.regex, negated: literal.negated, ...(atom.prefix !== undefined ? { prefix: atom.prefix } : {}), ...(atom.exact !== undefined ? { exact: atom.exact } : {}) });
        break;
      case 'header': {
        let condition = atom.condition;
        if (literal.negated) {
          if (typeof condition === 'object' && 'present' in condition) condition = { present: !condition.present };
          else return { why: `${text}: a negated header value test has no Switchyard match (it would also have to match requests without the header)` };
        }
        const key = atom.name.toLowerCase();
        const entry = headers.get(key) ?? { name: atom.name, conditions: [] };
        entry.conditions.push(condition);
        headers.set(key, entry);
        break;
      }
      case 'query': {
        let condition = atom.condition;
        if (literal.negated) {
          if (typeof condition === 'object' && 'present' in condition) condition = { present: !condition.present };
          else return { why: `${text}: a negated query test has no Switchyard match` };
        }
        query.set(atom.name, [...(query.get(atom.name) ?? []), condition]);
        break;
      }
      case 'src':
        return { why: `${text}: a client address test in a routing rule (Switchyard's allow/deny answer 403 instead of trying the next rule)` };
      default:
        return { why: text };
    }
  }
  const path = combinePath(pathParts);
  if (path) Object.assign(match, path);
  if (headers.size > 0) {
    const record: Record<string, HeaderCondition> = {};
    for (const { name, conditions } of headers.values()) {
      const combined = combineConditions(conditions);
      if (combined === undefined) return { why: `several different tests on the ${name} header in one rule` };
      record[name] = combined;
    }
    match.headers = record;
  }
  if (query.size > 0) {
    const record: Record<string, HeaderCondition> = {};
    for (const [name, conditions] of query) {
      const combined = combineConditions(conditions);
      if (combined === undefined) return { why: `several different tests on the query parameter ${name} in one rule` };
      record[name] = combined;
    }
    match.query = record;
  }
  return { match, notes };
}

function combinePath(parts: readonly { regex: string; negated: boolean; prefix?: string; exact?: string }[]): Partial<DraftMatch> | undefined {
  if (parts.length === 0) return undefined;
  const unique = parts.filter((part, index) => parts.findIndex((other) => other.regex === part.regex && other.negated === part.negated) === index);
  if (unique.length === 1 && !unique[0]!.negated) {
    const only = unique[0]!;
    if (only.exact !== undefined) return { exact: only.exact };
    if (only.prefix !== undefined) return { prefix: only.prefix };
    return { regex: only.regex };
  }
  // Several tests on the path (or a negated one): one regex of lookaheads, each tested from the start.
  const lookahead = (part: { regex: string; negated: boolean }): string => {
    const body = part.regex.startsWith('^') && !hasTopLevelAlternation(part.regex) ? part.regex.slice(1) : `[\\s\\S]*?(?:${part.regex})`;
    return `(?${part.negated ? '!' : '='}${body})`;
  };
  return { regex: `^${unique.map(lookahead).join('')}` };
}

/** Whether a regex source has a `|` outside groups and classes (so a leading ^ anchors only its first branch). */
function hasTopLevelAlternation(source: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < source.length; i += 1) {
    const char = source[i];
    if (char === '\\') i += 1;
    else if (inClass) inClass = char !== ']';
    else if (char === '[') inClass = true;
    else if (char === '(') depth += 1;
    else if (char === ')') depth -= 1;
    else if (char === '|' && depth === 0) return true;
  }
  return false;
}

function combineConditions(conditions: readonly HeaderCondition[]): HeaderCondition | undefined {
  const unique = conditions.filter((condition, index) => conditions.findIndex((other) => JSON.stringify(other) === JSON.stringify(condition)) === index);
  if (unique.length === 1) return unique[0];
  const regexes = unique.map((condition) => (typeof condition === 'object' && 'regex' in condition ? condition.regex : undefined));
  if (regexes.every((regex): regex is string => regex !== undefined)) return { regex: `^${regexes.map((regex) => `(?=[\\s\\S]*?(?:${regex}))`).join('')}` };
  // A presence test next to a value test: the value test implies presence.
  const withoutPresence = unique.filter((condition) => !(typeof condition === 'object' && 'present' in condition && condition.present));
  if (withoutPresence.length === 1) return withoutPresence[0];
  return undefined;
}
