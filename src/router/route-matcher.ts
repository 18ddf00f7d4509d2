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

/** One route's match conditions, compiled once (regexes built, names lower-cased). */
export class RouteMatcher {
  private readonly regex: RegExp | undefined;
  private readonly methods: ReadonlySet<string> | undefined;
  private readonly headers: readonly [string, CompiledCondition][];
  private readonly query: readonly [string, CompiledCondition][];

  constructor(readonly match: MatchConfig) {
    this.regex = match.regex === undefined ? undefined : new RegExp(match.regex);
    this.methods = match.methods && new Set(match.methods);
    this.headers = compileConditions(match.headers);
    this.query = compileConditions(match.query);
  }

  /**
   * null when the route does not match; otherwise the regex captures (an empty
   * array when the route has no regex).
   */
  test(facts: RequestFacts): readonly (string | undefined)[] | null {
    const { match } = this;
    if (match.upgrade === 'websocket' ? !facts.upgrade : match.upgrade === 'none' && facts.upgrade) return null;
    if (this.methods && !this.methods.has(facts.method)) return null;
    if (match.exact !== undefined && facts.path !== match.exact) return null;
    if (match.prefix !== undefined && !hasPathPrefix(facts.path, match.prefix)) return null;
    for (const [name, condition] of this.headers) {
      if (!holds(condition, headerValue(facts.req, name))) return null;
    }
    if (this.query.length > 0) {
      const params = new URLSearchParams(facts.query);
      for (const [name, condition] of this.query) {
        if (!holds(condition, params.has(name) ? (params.get(name) as string) : undefined)) return null;
      }
    }
    if (this.regex) return this.regex.exec(facts.path);
    return NO_CAPTURES;
  }
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
