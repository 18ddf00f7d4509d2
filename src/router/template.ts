import { normaliseHost } from './host-map.js';

/** What a template can refer to, for one request. */
export interface TemplateVars {
  /** A regex exec result: [0] the whole match, [1].. the groups; null when the route has no regex. */
  readonly captures: readonly (string | undefined)[] | null;
  /** The request path without the query, as received. */
  readonly path: string;
  /** '' or the query with its leading '?'. */
  readonly query: string;
  /** The client's Host header ('' if none). */
  readonly host: string;
  readonly scheme: string;
}

// Slots 0..9 are captures; the named variables follow.
const PATH = 10;
const QUERY = 11;
const HOST = 12;
const SCHEME = 13;
const HOSTNAME = 14;
const NAMES: ReadonlyMap<string, number> = new Map([['path', PATH], ['query', QUERY], ['host', HOST], ['hostname', HOSTNAME], ['scheme', SCHEME]]);
const SYNTAX = 'use $0..$9 or ${0}..${9} for regex captures, $path, $query, $host, $hostname, $scheme (or ${path}.. when letters follow), $$ for a literal $';

/**
 * A rewrite or redirect template, parsed once at config load so that expand() is
 * a plain join. Syntax: $0..$9 (one digit; "${1}0" is capture 1 then "0"), $path,
 * $query, $host, $scheme, their braced forms ${1}, ${path}, and $$ for "$".
 * Anything else after a $ is an error rather than a silent literal.
 */
export class Template {
  /** Highest capture index used (0 if none), to check the regex has that many groups. */
  readonly usesCaptures: number;
  /** Any of $0..$9 used: meaningless on a route without a regex. */
  readonly usesAnyCapture: boolean;
  /** literals[i] precedes slots[i]; literals has one more entry than slots. */
  private readonly literals: string[] = [];
  private readonly slots: number[] = [];

  constructor(readonly source: string) {
    let literal = '';
    let highest = -1;
    let i = 0;
    while (i < source.length) {
      const dollar = source.indexOf('$', i);
      if (dollar < 0) {
        literal += source.slice(i);
        break;
      }
      literal += source.slice(i, dollar);
      const next = source.charCodeAt(dollar + 1);
      let slot: number;
      if (next === 0x24) { // '$$'
        literal += '$';
        i = dollar + 2;
        continue;
      } else if (isDigit(next)) {
        // "$10" would silently mean capture 1 then "0"; make the author say so.
        if (isDigit(source.charCodeAt(dollar + 2))) this.fail(`"${source.slice(dollar, dollar + 3)}" is ambiguous: only $0..$9 exist (write \${1}0 for capture 1 then "0")`);
        slot = next - 0x30;
        i = dollar + 2;
      } else if (next === 0x7b) { // '${'
        const close = source.indexOf('}', dollar + 2);
        if (close < 0) this.fail(`unclosed \${ at offset ${dollar}`);
        slot = this.slotOf(source.slice(dollar + 2, close), `\${${source.slice(dollar + 2, close)}}`);
        i = close + 1;
      } else if (isNameStart(next)) {
        let end = dollar + 2;
        while (isNamePart(source.charCodeAt(end))) end++;
        const named = NAMES.get(source.slice(dollar + 1, end));
        if (named === undefined) this.fail(`unknown variable ${source.slice(dollar, end)}`);
        slot = named;
        i = end;
      } else {
        this.fail(`a lone $ at offset ${dollar}`);
      }
      if (slot < 10 && slot > highest) highest = slot;
      this.literals.push(literal);
      this.slots.push(slot);
      literal = '';
    }
    this.literals.push(literal);
    this.usesAnyCapture = highest >= 0;
    this.usesCaptures = Math.max(highest, 0);
  }

  /** The template filled in; a capture that did not participate expands to ''. */
  expand(vars: TemplateVars): string {
    const { literals, slots } = this;
    let out = literals[0] as string;
    for (let i = 0; i < slots.length; i++) out += valueOf(slots[i] as number, vars) + (literals[i + 1] as string);
    return out;
  }

  private slotOf(inner: string, written: string): number {
    if (/^\d+$/.test(inner)) {
      const index = Number(inner);
      if (index > 9) this.fail(`capture ${written} is out of range: only $0..$9 exist`);
      return index;
    }
    const slot = NAMES.get(inner);
    if (slot === undefined) this.fail(`unknown variable ${written}`);
    return slot;
  }

  private fail(problem: string): never {
    throw new Error(`template "${this.source}": ${problem}; ${SYNTAX}`);
  }
}

function valueOf(slot: number, vars: TemplateVars): string {
  switch (slot) {
    case PATH: return vars.path;
    case QUERY: return vars.query;
    case HOST: return vars.host;
    // nginx's $host: the name without the port, lower case.
    case HOSTNAME: return normaliseHost(vars.host);
    case SCHEME: return vars.scheme;
    default: return vars.captures?.[slot] ?? '';
  }
}

function isDigit(code: number): boolean {
  return code >= 0x30 && code <= 0x39;
}

function isNameStart(code: number): boolean {
  return (code >= 0x61 && code <= 0x7a) || (code >= 0x41 && code <= 0x5a) || code === 0x5f;
}

function isNamePart(code: number): boolean {
  return isNameStart(code) || isDigit(code);
}
