import { readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { ImportError } from '../import-error.js';
import { describeReadError } from '../read-config-file.js';
import type { SourceLocation } from '../source-location.js';
import { escapeRegex, toJsRegex } from '../values.js';
import type { Directive } from './haproxy-parser.js';

/**
 * HAProxy ACLs: `acl NAME CRITERION [flags] VALUES...` and anonymous
 * `{ CRITERION [flags] VALUES... }`, read into atoms, the conditions a
 * Switchyard route can state (or a reason why not).
 */

export type MatchMethod = 'str' | 'beg' | 'end' | 'sub' | 'reg' | 'found' | 'dom' | 'dir' | 'len' | 'int' | 'ip' | 'bool' | 'meth';

/** One ACL test: an `acl` line or an anonymous `{ ... }` block. */
export interface AclTest {
  /** Fetch name without `req.` and without the derivative suffix: hdr, fhdr, path, url, method, src, ... */
  readonly fetch: string;
  readonly arg: string | undefined;
  readonly converters: readonly string[];
  readonly method: MatchMethod;
  readonly caseless: boolean;
  readonly values: readonly string[];
  readonly location: SourceLocation;
  /** The criterion and values as written, for notes. */
  readonly text: string;
  /** The whole line it was written on (the acl line, or the rule holding an anonymous ACL). */
  readonly line: string;
}

export type HeaderCondition = string | { present: boolean } | { equals: string } | { regex: string };

export type Atom =
  | { readonly kind: 'true' }
  | { readonly kind: 'false' }
  /** A WebSocket handshake test (on Upgrade or Connection); advice: what the original missed. */
  | { readonly kind: 'upgrade'; readonly header: string; readonly misses: readonly string[] }
  /** Host names (exact or *.domain): decided per site. */
  | { readonly kind: 'host'; readonly patterns: readonly string[]; readonly note?: string }
  /** A path test; `regex` states it alone (for combinations and negation). */
  | { readonly kind: 'path'; readonly regex: string; readonly prefix?: string; readonly exact?: string; readonly note?: string }
  | { readonly kind: 'header'; readonly name: string; readonly condition: HeaderCondition; readonly note?: string }
  | { readonly kind: 'query'; readonly name: string; readonly condition: HeaderCondition }
  | { readonly kind: 'methods'; readonly methods: readonly string[] }
  /** ssl_fc: the connection came over a TLS listener. */
  | { readonly kind: 'ssl' }
  | { readonly kind: 'src'; readonly ranges: readonly string[] }
  | { readonly kind: 'unsupported'; readonly why: string };

export interface SourcedAtom {
  readonly atom: Atom;
  readonly test: AclTest | undefined;
}

const DERIVATIVES = new Set(['beg', 'end', 'sub', 'reg', 'dom', 'dir', 'len', 'cnt', 'val', 'ip']);
const STRING_FETCHES = new Set(['hdr', 'fhdr', 'path', 'url', 'base', 'urlp', 'url_param', 'cook', 'ssl_fc_sni', 'ssl_sni', 'query', 'pathq', 'ver']);

/**
 * Parses `CRITERION [flags] VALUES...` (the words after `acl NAME`, or inside
 * braces). `-f FILE` patterns are read from the file (relative paths from
 * the config's folder); a file that cannot be read is an ImportError at the line.
 */
export function parseAclTest(words: readonly string[], location: SourceLocation, baseDir: string, line: string): AclTest {
  const criterion = words[0];
  if (criterion === undefined) throw new ImportError(location, 'an ACL needs a criterion (such as hdr(host) or path_beg)');
  const { name, arg, converters } = splitCriterion(criterion);
  let fetch = name.replace(/^req\./, '').replace(/^req_/, '');
  let method: MatchMethod | undefined;
  const suffix = /^(hdr|fhdr|path|url|base|urlp|url_param|cook)_([a-z]+)$/.exec(fetch);
  if (suffix && DERIVATIVES.has(suffix[2]!)) {
    fetch = suffix[1]!;
    const derivative = suffix[2]!;
    if (derivative === 'cnt' || derivative === 'val') {
      fetch = `${fetch}_${derivative}`;
      method = 'int';
    } else if (derivative === 'ip') {
      fetch = `${fetch}_ip`;
      method = 'ip';
    } else method = derivative as MatchMethod;
  }
  let caseless = false;
  const values: string[] = [];
  let index = 1;
  for (; index < words.length; index += 1) {
    const word = words[index]!;
    if (word === '--') {
      index += 1;
      break;
    }
    if (!word.startsWith('-') || values.length > 0) break;
    if (word === '-i') caseless = true;
    else if (word === '-n' || word === '-M') continue;
    else if (word === '-m') {
      const next = words[index + 1];
      if (next === undefined) throw new ImportError(location, '-m needs a match method');
      method = next as MatchMethod;
      index += 1;
    } else if (word === '-u') index += 1;
    else if (word === '-f') {
      const next = words[index + 1];
      if (next === undefined) throw new ImportError(location, '-f needs a file name');
      values.push(...readPatternFile(next, location, baseDir));
      index += 1;
    } else break;
  }
  values.push(...words.slice(index));
  if (converters.some((converter) => converter === 'lower' || converter === 'upper')) caseless = true;
  method ??= defaultMethod(fetch);
  return { fetch, arg, converters, method, caseless, values, location, text: words.join(' '), line };
}

function defaultMethod(fetch: string): MatchMethod {
  if (fetch === 'method') return 'meth';
  if (fetch === 'src' || fetch === 'dst' || fetch.endsWith('_ip')) return 'ip';
  if (fetch === 'ssl_fc' || fetch === 'always_true' || fetch === 'always_false') return 'bool';
  if (STRING_FETCHES.has(fetch)) return 'str';
  return 'int';
}

function readPatternFile(name: string, location: SourceLocation, baseDir: string): string[] {
  const file = isAbsolute(name) ? name : resolve(baseDir, name);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ImportError(location, `cannot read the pattern file ${file} named by -f (${describeReadError(err)})`);
  }
  return text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
}

/** `req.hdr(host),lower,field(1,:)` → name req.hdr, arg host, converters [lower, field(1,:)]. */
export function splitCriterion(criterion: string): { name: string; arg: string | undefined; converters: string[] } {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < criterion.length; i += 1) {
    const char = criterion[i];
    if (char === '(') depth += 1;
    else if (char === ')') depth -= 1;
    else if (char === ',' && depth === 0) {
      parts.push(criterion.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(criterion.slice(start));
  const head = parts[0]!;
  const open = head.indexOf('(');
  const name = open < 0 ? head : head.slice(0, open);
  const arg = open < 0 ? undefined : head.slice(open + 1, head.lastIndexOf(')'));
  return { name, arg: arg === '' ? undefined : arg, converters: parts.slice(1).map((part) => part.replace(/\(\)$/, '')) };
}

/** HAProxy's predefined ACLs, as tests. */
export function predefinedAcl(name: string, location: SourceLocation): AclTest | undefined {
  const test = (fetch: string, method: MatchMethod, values: string[], arg?: string): AclTest => ({ fetch, arg, converters: [], method, caseless: false, values, location, text: name, line: name });
  switch (name) {
    case 'TRUE': return test('always_true', 'bool', []);
    case 'FALSE': return test('always_false', 'bool', []);
    case 'HTTP': return test('always_true', 'bool', []);
    case 'WAIT_END': return test('always_true', 'bool', []);
    case 'HTTP_URL_SLASH': return test('path', 'beg', ['/']);
    case 'LOCALHOST': return test('src', 'ip', ['127.0.0.1/8', '::1']);
    case 'METH_GET': return test('method', 'meth', ['GET', 'HEAD']);
    case 'METH_CONNECT': case 'METH_DELETE': case 'METH_HEAD': case 'METH_OPTIONS': case 'METH_POST': case 'METH_PUT': case 'METH_TRACE':
      return test('method', 'meth', [name.slice(5)]);
    case 'HTTP_1.0': case 'HTTP_1.1': case 'HTTP_2.0': case 'HTTP_3.0': case 'HTTP_CONTENT': case 'HTTP_URL_ABS': case 'HTTP_URL_STAR': case 'REQ_CONTENT': case 'RDP_COOKIE':
      return test(name, 'bool', []);
    default: return undefined;
  }
}


/**
 * The atoms an ACL test is the OR of: one per value, except that methods and
 * host names are merged, and path or header regexes become one alternation
 * (one route instead of several).
 */
export function atomsOf(test: AclTest): Atom[] {
  return mergeAlternatives(valueAtoms(test));
}

function mergeAlternatives(atoms: Atom[]): Atom[] {
  if (atoms.length < 2) return atoms;
  const group = (source: string): string => `(?:${source})`;
  if (atoms.every((atom) => atom.kind === 'path' && atom.prefix === undefined && atom.exact === undefined)) {
    const paths = atoms as Extract<Atom, { kind: 'path' }>[];
    const note = paths.find((atom) => atom.note !== undefined)?.note;
    return [{ kind: 'path', regex: paths.map((atom) => group(atom.regex)).join('|'), ...(note !== undefined ? { note } : {}) }];
  }
  const first = atoms[0]!;
  if (first.kind === 'header' && atoms.every((atom) => atom.kind === 'header' && atom.name === first.name && typeof atom.condition === 'object' && 'regex' in atom.condition)) {
    const headers = atoms as Extract<Atom, { kind: 'header' }>[];
    const regexes = headers.map((atom) => (atom.condition as { regex: string }).regex);
    return [{ kind: 'header', name: first.name, condition: { regex: regexes.map(group).join('|') }, ...(first.note !== undefined ? { note: first.note } : {}) }];
  }
  return atoms;
}

function valueAtoms(test: AclTest): Atom[] {
  const unsupported = (why: string): Atom[] => [{ kind: 'unsupported', why }];
  const { fetch, method } = test;
  if (fetch === 'always_true') return [{ kind: 'true' }];
  if (fetch === 'always_false') return [{ kind: 'false' }];
  if (method === 'found' && test.values.length === 0) return foundAtoms(test);
  if (method !== 'found' && method !== 'bool' && test.values.length === 0 && fetch !== 'ssl_fc') return unsupported(`${test.text}: no value to compare with`);
  switch (fetch) {
    case 'hdr':
    case 'fhdr':
      return headerAtoms(test);
    case 'hdr_cnt':
    case 'fhdr_cnt':
      return countAtoms(test);
    case 'path':
    case 'url':
    case 'pathq':
      return pathAtoms(test);
    case 'method':
      return [{ kind: 'methods', methods: [...new Set(test.values.map((value) => value.toUpperCase()))] }];
    case 'urlp':
    case 'url_param':
      if (test.arg === undefined) return unsupported(`${fetch} without a parameter name`);
      return test.values.map((value) => valueAtom(test, value, (condition) => ({ kind: 'query', name: test.arg!, condition })));
    case 'cook':
      return cookieAtoms(test);
    case 'src':
      return [{ kind: 'src', ranges: [...test.values] }];
    case 'ssl_fc':
      return [{ kind: 'ssl' }];
    case 'ssl_fc_sni':
    case 'ssl_sni':
      return hostAtoms(test, 'the TLS name (SNI) was tested; Switchyard picks the site by the Host header');
    default:
      return unsupported(`${test.text}: the fetch ${fetch} has no Switchyard match`);
  }
}

function foundAtoms(test: AclTest): Atom[] {
  if ((test.fetch === 'hdr' || test.fetch === 'fhdr') && test.arg !== undefined) {
    const name = test.arg.toLowerCase();
    if (name === 'upgrade') return [{ kind: 'upgrade', header: 'Upgrade', misses: [] }];
    return [{ kind: 'header', name: test.arg, condition: { present: true } }];
  }
  if ((test.fetch === 'urlp' || test.fetch === 'url_param') && test.arg !== undefined) return [{ kind: 'query', name: test.arg, condition: { present: true } }];
  if (test.fetch === 'cook' && test.arg !== undefined) {
    return [{ kind: 'header', name: 'Cookie', condition: { regex: `(?:^|;\\s*)${escapeRegex(test.arg, { keepSlashes: true })}=` }, note: 'cookie test written as a Cookie header regex (case-insensitive)' }];
  }
  if (test.fetch === 'path' || test.fetch === 'url') return [{ kind: 'true' }];
  return [{ kind: 'unsupported', why: `${test.text}: -m found on ${test.fetch} has no Switchyard match` }];
}

function countAtoms(test: AclTest): Atom[] {
  if (test.arg === undefined) return [{ kind: 'unsupported', why: `${test.text}: header count without a name` }];
  const [operator, operand] = test.values.length === 2 ? test.values : ['eq', test.values[0]];
  const n = Number(operand);
  const present = (operator === 'gt' && n === 0) || (operator === 'ge' && n === 1);
  const absent = (operator === 'eq' && n === 0) || (operator === 'lt' && n === 1) || (operator === 'le' && n === 0);
  if (!present && !absent) return [{ kind: 'unsupported', why: `${test.text}: only "gt 0" and "eq 0" header counts translate` }];
  if (test.arg.toLowerCase() === 'upgrade' && present) return [{ kind: 'upgrade', header: 'Upgrade', misses: [] }];
  return [{ kind: 'header', name: test.arg, condition: { present } }];
}

/**
 * Whether HAProxy's test accepts a request whose header `name` is `headerLine`.
 * As HAProxy 2.x reads it: hdr() tests each comma-separated item, fhdr() the
 * whole line, and the HTTP/1 parser has already dropped the keep-alive and
 * close tokens from Connection (so Firefox's `keep-alive, Upgrade` arrives
 * as `Upgrade`).
 */
function haproxyMatches(test: AclTest, pattern: string, name: string, headerLine: string): boolean {
  const line = name === 'connection'
    ? headerLine.split(',').map((item) => item.trim()).filter((item) => !/^(keep-alive|close)$/i.test(item)).join(', ')
    : headerLine;
  const items = test.fetch === 'hdr' ? line.split(',').map((item) => item.trim()) : [line];
  const fold = (text: string): string => (test.caseless ? text.toLowerCase() : text);
  return items.some((item) => {
    const value = fold(item);
    const wanted = fold(pattern);
    switch (test.method) {
      case 'str': return value === wanted;
      case 'beg': return value.startsWith(wanted);
      case 'end': return value.endsWith(wanted);
      case 'sub': return value.includes(wanted);
      case 'reg': {
        const source = toJsRegex(pattern, false);
        return source !== undefined && new RegExp(source, test.caseless ? 'i' : '').test(item);
      }
      case 'found': return true;
      default: return false;
    }
  });
}

const UPGRADE_SAMPLES: readonly { line: string; who: string }[] = [
  { line: 'websocket', who: '`Upgrade: websocket`' },
  { line: 'WebSocket', who: '`Upgrade: WebSocket` (the value is case-insensitive and some clients capitalise it)' },
];
const CONNECTION_SAMPLES: readonly { line: string; who: string }[] = [
  { line: 'Upgrade', who: '`Connection: Upgrade`' },
  { line: 'upgrade', who: '`Connection: upgrade` (lower case, as nginx and many libraries send it)' },
  { line: 'keep-alive, Upgrade', who: '`Connection: keep-alive, Upgrade` (Firefox)' },
];

function headerAtoms(test: AclTest): Atom[] {
  if (test.arg === undefined) return [{ kind: 'unsupported', why: `${test.text}: a header test without a header name` }];
  const name = test.arg.toLowerCase();
  const unknownConverter = test.converters.find((converter) => !/^(lower|upper|field\(1,:\)|host_only)$/.test(converter));
  if (unknownConverter !== undefined) return [{ kind: 'unsupported', why: `${test.text}: the converter ${unknownConverter} has no Switchyard match` }];
  if (name === 'upgrade' || name === 'connection') {
    const samples = name === 'upgrade' ? UPGRADE_SAMPLES : CONNECTION_SAMPLES;
    const accepted = test.values.flatMap((value) => samples.filter((sample) => haproxyMatches(test, value, name, sample.line)));
    if (accepted.length > 0) {
      const misses = samples.filter((sample) => !accepted.includes(sample)).map((sample) => sample.who);
      return [{ kind: 'upgrade', header: name === 'upgrade' ? 'Upgrade' : 'Connection', misses }];
    }
  }
  if (name === 'host') return hostAtoms(test, undefined);
  return test.values.map((value) => valueAtom(test, value, (condition, note) => ({ kind: 'header', name: test.arg!, condition, ...(note ? { note } : {}) })));
}

/** A string test on a header or query value as a Switchyard condition. */
function valueAtom(test: AclTest, value: string, make: (condition: HeaderCondition, note?: string) => Atom): Atom {
  const literal = escapeRegex(value, { keepSlashes: true });
  const caseNote = test.caseless ? undefined : 'Switchyard header and query regexes ignore case; HAProxy compared case-sensitively';
  switch (test.method) {
    case 'str': return test.caseless ? make({ regex: `^${literal}$` }) : make(value);
    case 'beg': return make({ regex: `^${literal}` }, caseNote);
    case 'end': return make({ regex: `${literal}$` }, caseNote);
    case 'sub': return make({ regex: literal }, caseNote);
    case 'dom': return make({ regex: `(?:^|[./:])${literal}(?:[./:]|$)` }, caseNote);
    case 'dir': return make({ regex: `(?:^|/)${literal}(?:/|$)` }, caseNote);
    case 'reg': {
      const source = toJsRegex(value, false);
      if (source === undefined) return { kind: 'unsupported', why: `${test.text}: ${value} is not a regular expression JavaScript can run` };
      return make({ regex: source }, caseNote);
    }
    default: return { kind: 'unsupported', why: `${test.text}: -m ${test.method} has no Switchyard match` };
  }
}

const HOST_NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?$/;

/** Host header tests that name hosts become site names; the others stay header conditions. */
function hostAtoms(test: AclTest, sniNote: string | undefined): Atom[] {
  return test.values.map((raw): Atom => {
    const value = raw.toLowerCase().replace(/\.$/, '');
    const withNote = (patterns: string[], note?: string): Atom => {
      const notes = [sniNote, note].filter((text): text is string => text !== undefined);
      return { kind: 'host', patterns, ...(notes.length > 0 ? { note: notes.join('; ') } : {}) };
    };
    if (test.method === 'str' && HOST_NAME.test(value)) return withNote([value]);
    if (test.method === 'dom' && HOST_NAME.test(value)) return withNote([value, `*.${value}`]);
    if (test.method === 'end' && value.startsWith('.') && HOST_NAME.test(value.slice(1))) return withNote([`*${value}`]);
    if (test.method === 'end' && HOST_NAME.test(value)) return withNote([value, `*.${value}`], `HAProxy's hdr_end(host) ${raw} also matched names such as x${value}`);
    if (sniNote !== undefined) return { kind: 'unsupported', why: `${test.text}: only exact TLS names translate` };
    return valueAtom({ ...test, caseless: true }, raw, (condition) => ({ kind: 'header', name: 'Host', condition }));
  });
}

function pathAtoms(test: AclTest): Atom[] {
  const isUrl = test.fetch === 'url' || test.fetch === 'pathq';
  const urlNote = isUrl ? `HAProxy's ${test.fetch} test also saw the query string; Switchyard tests the path` : undefined;
  const unknownConverter = test.converters.find((converter) => converter !== 'lower' && converter !== 'upper');
  if (unknownConverter !== undefined) return [{ kind: 'unsupported', why: `${test.text}: the converter ${unknownConverter} has no Switchyard match` }];
  return test.values.map((value): Atom => {
    if (isUrl && value.includes('?')) return { kind: 'unsupported', why: `${test.text}: tests the query string` };
    const literal = test.caseless ? toJsRegex(escapeRegex(value, { keepSlashes: true }), true)! : escapeRegex(value, { keepSlashes: true });
    const note = (text: string | undefined): { note?: string } => {
      const notes = [urlNote, text].filter((item): item is string => item !== undefined);
      return notes.length > 0 ? { note: notes.join('; ') } : {};
    };
    switch (test.method) {
      case 'str':
        if (isUrl) return { kind: 'unsupported', why: `${test.text}: an exact URL test also requires an empty query` };
        if (!test.caseless && value.startsWith('/')) return { kind: 'path', regex: `^${literal}$`, exact: value };
        return { kind: 'path', regex: `^${literal}$` };
      case 'beg': {
        if (!test.caseless && value.startsWith('/')) {
          if (value.endsWith('/')) return { kind: 'path', regex: `^${literal}`, prefix: value, ...note(undefined) };
          return {
            kind: 'path', regex: `^${literal}(?:/|$)`, prefix: value,
            ...note(`HAProxy's ${test.fetch}_beg ${value} is a plain string prefix (it also matched ${value}x...); Switchyard's prefix stops at segment boundaries (${value}, ${value}/...)`),
          };
        }
        return { kind: 'path', regex: `^${literal}`, ...note(undefined) };
      }
      case 'end': return { kind: 'path', regex: `${literal}$`, ...note(undefined) };
      case 'sub': return { kind: 'path', regex: literal, ...note(undefined) };
      case 'dir': {
        const inner = test.caseless ? toJsRegex(escapeRegex(value.replace(/^\/+|\/+$/g, ''), { keepSlashes: true }), true)! : escapeRegex(value.replace(/^\/+|\/+$/g, ''), { keepSlashes: true });
        return { kind: 'path', regex: `(?:^|/)${inner}(?:/|$)`, ...note(undefined) };
      }
      case 'reg': {
        const source = toJsRegex(value, test.caseless);
        if (source === undefined) return { kind: 'unsupported', why: `${test.text}: ${value} is not a regular expression JavaScript can run` };
        return { kind: 'path', regex: source, ...note(undefined) };
      }
      default: return { kind: 'unsupported', why: `${test.text}: -m ${test.method} on the path has no Switchyard match` };
    }
  });
}

function cookieAtoms(test: AclTest): Atom[] {
  if (test.arg === undefined) return [{ kind: 'unsupported', why: `${test.text}: a cookie test without a cookie name` }];
  if (test.method !== 'str') return [{ kind: 'unsupported', why: `${test.text}: only exact cookie values translate` }];
  return test.values.map((value) => ({
    kind: 'header', name: 'Cookie', condition: { regex: `(?:^|;\\s*)${escapeRegex(test.arg!, { keepSlashes: true })}=${escapeRegex(value, { keepSlashes: true })}(?:;|$)` },
    note: 'cookie test written as a Cookie header regex (case-insensitive)',
  }));
}

/** The ACLs of one proxy section: a name declared several times is the OR of its lines. */
export class AclTable {
  private readonly byName = new Map<string, AclTest[]>();
  private readonly lines = new Map<string, Directive[]>();

  add(name: string, test: AclTest, directive: Directive): void {
    this.byName.set(name, [...(this.byName.get(name) ?? []), test]);
    this.lines.set(name, [...(this.lines.get(name) ?? []), directive]);
  }

  tests(name: string): AclTest[] | undefined {
    return this.byName.get(name);
  }

  directives(name: string): readonly Directive[] {
    return this.lines.get(name) ?? [];
  }
}
