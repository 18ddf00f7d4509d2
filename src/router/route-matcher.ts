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
  private readonly headers: readonly [string, CompiledCondition][];
  private readonly query: readonly [string, CompiledCondition][];
  private readonly exact: string | null;
  private readonly prefix: string | null;
  /** 1: only upgrades, -1: only plain HTTP, 0: both. */
  private readonly upgrade: number;

  constructor(readonly match: MatchConfig) {
    this.regex = match.regex === undefined ? null : new RegExp(match.regex);
    this.methods = match.methods ? new Set(match.methods) : null;
    this.headers = compileConditions(match.headers);
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
    for (const [name, condition] of this.headers) {
      if (!holds(condition, headerValue(facts.req, name))) return null;
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
   * The first path segment every path this route matches starts with ("api" for
   * prefix /api/v1, exact /api, regex ^/api/...), or null when it can match
   * under any first segment. The router indexes routes by it.
   */
  firstSegment(): string | null {
    const fixed = this.exact ?? this.prefix ?? (this.regex !== null ? anchoredLiteral(this.regex.source) : null);
    if (fixed === null || fixed.charCodeAt(0) !== 0x2f) return null;
    const end = fixed.indexOf('/', 1);
    if (end > 1) return fixed.slice(1, end);
    // "/api" as an exact path or a segment-bounded prefix still fixes the segment;
    // as a regex literal it could continue ("^/api" matches "/apix").
    if (end < 0 && fixed.length > 1 && this.regex === null) return fixed.slice(1);
    return null;
  }
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

/** "/api/v1/x" → "api"; "/" → "". */
export function firstPathSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end < 0 ? path.slice(1) : path.slice(1, end);
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

function headerValue(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}
