/**
 * Value conversions the three translators share: durations in each format's
 * units to Switchyard's, PCRE-ish regexes to JavaScript ones, host:port forms.
 */

const UNIT_MS: Readonly<Record<string, number>> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000, y: 31_536_000_000 };

/**
 * Milliseconds of a duration such as `60s`, `1h30m`, `500ms` or a bare number
 * in `bareUnit` (nginx and Apache: seconds; HAProxy: milliseconds); undefined
 * when it is not one.
 */
export function parseDurationMs(text: string, bareUnit: 's' | 'ms'): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(?:\.\d+)?$/.test(trimmed)) return Number(trimmed) * (UNIT_MS[bareUnit] ?? 1);
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(us|ms|s|m|h|d|w|M|y)/gy)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== trimmed) return undefined;
  return parts.reduce((sum, part) => sum + Number(part[1]) * (UNIT_MS[part[2]!] ?? 0), 0);
}

/** Switchyard's form of a duration: the largest unit that states it exactly. */
export function formatDuration(ms: number): string {
  const whole = Math.max(0, Math.round(ms));
  if (whole === 0) return '0ms';
  if (whole % 3_600_000 === 0) return `${whole / 3_600_000}h`;
  if (whole % 60_000 === 0) return `${whole / 60_000}m`;
  if (whole % 1000 === 0) return `${whole / 1000}s`;
  return `${whole}ms`;
}

/**
 * A regex source that matches `text` literally. `/` is escaped too, unless
 * `keepSlashes` (for readable paths and hosts): the regex is the same either way.
 */
export function escapeRegex(text: string, options: { readonly keepSlashes?: boolean } = {}): string {
  return text.replace(options.keepSlashes ? /[.*+?^${}()|[\]\\]/g : /[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/**
 * A JavaScript regex source from a PCRE one (nginx, Apache, HAProxy all use
 * PCRE): `(?P<name>` becomes `(?<name>`; `caseless` (nginx `~*`, Apache
 * `[NC]`, HAProxy `-i`) spells each letter in both cases, as Switchyard's
 * path regexes have no flags. Undefined when the result is not a valid regex.
 */
export function toJsRegex(pcre: string, caseless: boolean): string | undefined {
  let source = pcre.replace(/\(\?P</g, '(?<');
  if (source.startsWith('(?i)')) {
    source = source.slice(4);
    caseless = true;
  }
  if (caseless) source = bothCases(source);
  try {
    new RegExp(source);
    return source;
  } catch {
    return undefined;
  }
}

/** `abc` → `[aA][bB][cC]` outside escapes and classes; letters inside classes get their other case added. */
function bothCases(source: string): string {
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
      const end = source[i + 2];
      // A letter range a-f becomes a-fA-F: "aA-fF" would be the range A-f.
      if (/[a-zA-Z]/.test(char) && source[i + 1] === '-' && end !== undefined && /[a-zA-Z]/.test(end)) {
        out += `${char.toLowerCase()}-${end.toLowerCase()}${char.toUpperCase()}-${end.toUpperCase()}`;
        i += 2;
        continue;
      }
      out += /[a-zA-Z]/.test(char) ? char.toLowerCase() + char.toUpperCase() : char;
      continue;
    }
    if (char === '[') {
      inClass = true;
      out += char;
      if (source[i + 1] === '^') {
        out += '^';
        i += 1;
      }
      continue;
    }
    // Group syntax such as (?<name> or (?: keeps its letters.
    if (char === '(' && source[i + 1] === '?') {
      const head = /^\(\?(?:<[A-Za-z_][A-Za-z0-9_]*>|[:=!]|<[=!])/.exec(source.slice(i));
      if (head) {
        out += head[0];
        i += head[0].length - 1;
        continue;
      }
    }
    out += /[a-zA-Z]/.test(char) ? `[${char.toLowerCase()}${char.toUpperCase()}]` : char;
  }
  return out;
}

/** `host:port` split; IPv6 in brackets kept with its brackets. Port undefined when absent. */
export function splitHostPort(text: string): { host: string; port: number | undefined } {
  const bracketed = /^(\[[^\]]+\])(?::(\d+))?$/.exec(text);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] === undefined ? undefined : Number(bracketed[2]) };
  const colon = text.lastIndexOf(':');
  if (colon > 0 && /^\d+$/.test(text.slice(colon + 1)) && !text.slice(0, colon).includes(':')) {
    return { host: text.slice(0, colon), port: Number(text.slice(colon + 1)) };
  }
  return { host: text, port: undefined };
}

/** A listener address in Switchyard's form: `*`, `0.0.0.0` and `[::]` mean every interface (`:PORT`). */
export function listenAddress(host: string | undefined, port: number): string {
  if (host === undefined || host === '' || host === '*' || host === '0.0.0.0' || host === '[::]') return `:${port}`;
  return `${host}:${port}`;
}
