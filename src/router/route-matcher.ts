import type { IncomingMessage } from 'node:http';
import type { Condition, MatchConfig } from '../config/model.js';

/** What routing looks at, computed once per request. */
export interface RequestFacts {
  readonly method: string;
  /** The path as received, without the query. */
  readonly path: string;
  /** '' or the query with its leading '?'. */
  readonly query: string;
  readonly upgrade: boolean;
  readonly req: IncomingMessage;
  /** req.headers, read once (it is a getter on IncomingMessage). */
  readonly headers: IncomingMessage['headers'];
}

type CompiledCondition =
  | { kind: 'present' }
  | { kind: 'absent' }
  | { kind: 'equals'; value: string }
  | { kind: 'regex'; regex: RegExp };

/**
 * One route's match conditions, compiled once (regexes built, names lower-cased)
 * into fields every matcher has, so the per-request checks stay monomorphic.
 */
export class RouteMatcher {
  private readonly regex: RegExp | null;
  private readonly methods: ReadonlySet<string> | null;
  private readonly headerNames: readonly string[];
  private readonly headerConditions: readonly CompiledCondition[];
  private readonly query: readonly [string, CompiledCondition][];
  private readonly exact: string | null;
  private readonly prefix: string | null;
  /** 1: only upgrades, -1: only plain HTTP, 0: both. */
  private readonly upgrade: number;

  constructor(readonly match: MatchConfig) {
    this.regex = match.regex === undefined ? null : new RegExp(match.regex);
    this.methods = match.methods ? new Set(match.methods) : null;
    const headers = compileConditions(match.headers);
    this.headerNames = headers.map(([name]) => name);
    this.headerConditions = headers.map(([, condition]) => condition);
    this.query = compileConditions(match.query);
    this.exact = match.exact ?? null;
    this.prefix = match.prefix ?? null;
    this.upgrade = match.upgrade === 'websocket' ? 1 : match.upgrade === 'none' ? -1 : 0;
  }

  /**
   * null when the route does not match; otherwise the regex captures (an empty
   * array when the route has no regex).
   */
  test(facts: RequestFacts): readonly (string | undefined)[] | null {
    if (this.upgrade !== 0 && (this.upgrade === 1) !== facts.upgrade) return null;
    if (this.exact !== null && facts.path !== this.exact) return null;
    if (this.prefix !== null && !hasPathPrefix(facts.path, this.prefix)) return null;
    if (this.methods !== null && !this.methods.has(facts.method)) return null;
    for (let i = 0; i < this.headerNames.length; i++) {
      if (!holds(this.headerConditions[i] as CompiledCondition, headerValue(facts.headers, this.headerNames[i] as string))) return null;
    }
    if (this.query.length > 0) {
      const params = new URLSearchParams(facts.query);
      for (const [name, condition] of this.query) {
        if (!holds(condition, params.has(name) ? (params.get(name) as string) : undefined)) return null;
      }
    }
    if (this.regex !== null) return this.regex.exec(facts.path);
    return NO_CAPTURES;
  }

  /**
   * The path segments every path this route matches starts with: ["api", "v1"]
   * for prefix /api/v1 or exact /api/v1, ["api"] for regex ^/api/(.*), [] when it
   * can match anywhere. The router indexes routes by them.
   */
  boundSegments(): string[] {
    if (this.exact !== null || this.prefix !== null) return segmentsOf((this.exact ?? this.prefix) as string, true);
    if (this.regex === null) return [];
    const literal = anchoredLiteral(this.regex.source);
    // A regex literal may continue its last segment ("^/api" matches "/apix"):
    // only segments closed by a "/" are certain.
    return literal === null ? [] : segmentsOf(literal, false);
  }
}

function segmentsOf(path: string, lastIsWhole: boolean): string[] {
  if (path.charCodeAt(0) !== 0x2f) return [];
  const parts = path.slice(1).split('/');
  const last = parts.pop();
  if (lastIsWhole && last !== undefined && last !== '') parts.push(last);
  return parts;
}

/** The literal text an anchored regex starts with ("^/api/(.*)" → "/api/"); null when unanchored. */
export function anchoredLiteral(source: string): string | null {
  if (!source.startsWith('^')) return null;
  let out = '';
  for (let i = 1; i < source.length; i++) {
    const char = source[i] as string;
    if (char === '\\' && /[/.-]/.test(source[i + 1] ?? '')) {
      out += source[++i];
      continue;
    }
    if (/[\\^$.|?*+()[\]{}]/.test(char)) {
      // A quantifier makes the character before it optional.
      if (/[?*{]/.test(char)) out = out.slice(0, -1);
      break;
    }
    out += char;
  }
  return out;
}



const NO_CAPTURES: readonly (string | undefined)[] = [];

/**
 * Prefix match at path-segment boundaries: "/ws" matches "/ws" and "/ws/x" but
 * not "/wsx"; "/ws/" matches "/ws/" and "/ws/x".
 */
export function hasPathPrefix(path: string, prefix: string): boolean {
  if (!path.startsWith(prefix)) return false;
  if (path.length === prefix.length || prefix.endsWith('/')) return true;
  return path.charCodeAt(prefix.length) === 0x2f;
}

function compileConditions(conditions: ReadonlyMap<string, Condition> | undefined): [string, CompiledCondition][] {
  if (!conditions) return [];
  return [...conditions].map(([name, condition]) => [name, condition.kind === 'regex' ? { kind: 'regex', regex: new RegExp(condition.source, 'i') } : condition]);
}

function holds(condition: CompiledCondition, value: string | undefined): boolean {
  switch (condition.kind) {
    case 'present':
      return value !== undefined;
    case 'absent':
      return value === undefined;
    case 'equals':
      return value === condition.value;
    case 'regex':
      return value !== undefined && condition.regex.test(value);
  }
}

function headerValue(headers: IncomingMessage['headers'], name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}
