/** How a route maps client paths to upstream paths, and whom it forwards to. */
export interface ReverseRewriteSpec {
  /** The client-facing path prefix, e.g. '/app/' ('' or '/' when paths are kept). */
  readonly clientPrefix: string;
  /** What that prefix became upstream, e.g. '/' or '/backend/'. */
  readonly upstreamPrefix: string;
  /** The upstream's own names, host[:port], e.g. ['127.0.0.1:9000', 'backend.internal']. */
  readonly upstreamAuthorities: readonly string[];
  readonly upstreamSecure: boolean;
}

/** The URL the client used: its scheme and Host header (may include :port). */
export interface ClientView {
  readonly scheme: 'http' | 'https';
  readonly host: string;
}

const SLASH = 0x2f;
const QUESTION = 0x3f;
const HASH = 0x23;
/** The scheme family of an absolute URL: the client's scheme replaces it within the family. */
type Family = 0 | 1 | 2;
const RELATIVE = 0; // '//host/path'
const HTTP = 1;
const WS = 2;

/**
 * Apache's ProxyPassReverse and ProxyPassReverseCookieDomain/Path: maps what an
 * upstream says about its own URLs back to the URLs the client can reach. Values
 * that need no change come back as the same string, with nothing allocated.
 */
export class ReverseRewriter {
  /** Prefixes without a trailing slash: '/app/', '/app' → '/app'; '/', '' → ''. */
  private readonly clientBase: string;
  private readonly upstreamBase: string;
  /** Lower-case authorities a URL may name the upstream by (bare host when the port is the default). */
  private readonly authorities: string[] = [];
  /** Lower-case host names, without port, a cookie Domain may name the upstream by. */
  private readonly hostNames: string[] = [];

  constructor(spec: ReverseRewriteSpec) {
    this.clientBase = base(spec.clientPrefix);
    this.upstreamBase = base(spec.upstreamPrefix);
    const defaultPort = spec.upstreamSecure ? '443' : '80';
    for (const raw of spec.upstreamAuthorities) {
      const authority = raw.toLowerCase();
      const portAt = authority.lastIndexOf(':');
      const hasPort = portAt > authority.lastIndexOf(']');
      const host = hasPort ? authority.slice(0, portAt) : authority;
      const port = hasPort ? authority.slice(portAt + 1) : defaultPort;
      addOnce(this.hostNames, host);
      addOnce(this.authorities, `${host}:${port}`);
      // A backend may omit its default port in the URLs it writes.
      if (port === defaultPort) addOnce(this.authorities, host);
    }
  }

  /**
   * A Location, Content-Location or URI value: an absolute (or scheme-relative)
   * URL naming the upstream becomes the client-facing URL; an absolute path under
   * the upstream prefix gets the client prefix; anything else is returned as is.
   */
  url(value: string, client: ClientView): string {
    if (value.charCodeAt(0) === SLASH) {
      if (value.charCodeAt(1) === SLASH) return this.absolute(value, 2, RELATIVE, client);
      if (this.clientBase === this.upstreamBase) return value;
      return this.mapPath(value, 0) ?? value;
    }
    if (startsWithScheme(value, 'http')) return this.absolute(value, 7, HTTP, client);
    if (startsWithScheme(value, 'https')) return this.absolute(value, 8, HTTP, client);
    if (startsWithScheme(value, 'ws')) return this.absolute(value, 5, WS, client);
    if (startsWithScheme(value, 'wss')) return this.absolute(value, 6, WS, client);
    return value;
  }

  /**
   * One Set-Cookie line: a Domain naming the upstream becomes the client's host
   * name; a Path under the upstream prefix gets the client prefix. Everything
   * else, including attribute order and case, is kept.
   */
  setCookie(value: string, client: ClientView): string {
    let out = '';
    let copied = 0;
    // The first segment is name=value: a cookie named "Path" is not an attribute.
    let semicolon = value.indexOf(';');
    while (semicolon >= 0) {
      const start = semicolon + 1;
      const next = value.indexOf(';', start);
      const end = next < 0 ? value.length : next;
      const eq = value.indexOf('=', start);
      if (eq >= 0 && eq < end) {
        const nameStart = skipSpace(value, start, end);
        const nameEnd = trimEnd(value, nameStart, eq);
        const valueStart = skipSpace(value, eq + 1, end);
        const valueEnd = trimEnd(value, valueStart, end);
        let replacement: string | undefined;
        if (equalsLower(value, nameStart, nameEnd, 'domain')) replacement = this.domain(value, valueStart, valueEnd, client);
        else if (equalsLower(value, nameStart, nameEnd, 'path')) replacement = this.cookiePath(value.slice(valueStart, valueEnd));
        if (replacement !== undefined) {
          out += value.slice(copied, valueStart) + replacement;
          copied = valueEnd;
        }
      }
      semicolon = next;
    }
    return copied === 0 ? value : out + value.slice(copied);
  }

  /** value[from..] is host[:port] then path, query, fragment; family picks the scheme written back. */
  private absolute(value: string, from: number, family: Family, client: ClientView): string {
    let end = from;
    while (end < value.length) {
      const code = value.charCodeAt(end);
      if (code === SLASH || code === QUESTION || code === HASH) break;
      end++;
    }
    if (!this.isUpstream(value, from, end)) return value;
    const path = this.mapPath(value, end);
    if (path === undefined) return value;
    // Without a Host to name, a relative reference is the best the client can get.
    if (client.host === '') return path;
    const secure = client.scheme === 'https';
    const scheme = family === HTTP ? (secure ? 'https://' : 'http://') : family === WS ? (secure ? 'wss://' : 'ws://') : '//';
    return scheme + client.host + path;
  }

  /**
   * value[from..] as a client path, or undefined when it is not under the upstream
   * prefix. An empty path (a URL such as http://host?x) counts as '/'.
   */
  private mapPath(value: string, from: number): string | undefined {
    const upstreamBase = this.upstreamBase;
    let tail = from;
    if (upstreamBase !== '') {
      if (!value.startsWith(upstreamBase, from)) return undefined;
      tail = from + upstreamBase.length;
      const code = value.charCodeAt(tail);
      // Segment boundary: '/backend' covers '/backend/x' and '/backend?x', not '/backendx'.
      if (tail < value.length && code !== SLASH && code !== QUESTION && code !== HASH) return undefined;
    }
    const rest = value.slice(tail);
    if (value.charCodeAt(tail) === SLASH) return this.clientBase + rest;
    // '/backend' → '/app' (no slash either side), but '' (the root, '/') → '/app/'.
    if (upstreamBase === '' || this.clientBase === '') return `${this.clientBase}/${rest}`;
    return this.clientBase + rest;
  }

  private cookiePath(path: string): string | undefined {
    if (path.charCodeAt(0) !== SLASH || this.clientBase === this.upstreamBase) return undefined;
    return this.mapPath(path, 0);
  }

  private domain(value: string, start: number, end: number, client: ClientView): string | undefined {
    // RFC 6265 ignores a leading dot, so the replacement drops it.
    if (value.charCodeAt(start) === 0x2e) start++;
    const hostNames = this.hostNames;
    for (let i = 0; i < hostNames.length; i++) {
      if (equalsLower(value, start, end, hostNames[i] as string)) {
        const name = hostName(client.host);
        return name === '' ? undefined : name;
      }
    }
    return undefined;
  }

  private isUpstream(value: string, start: number, end: number): boolean {
    const authorities = this.authorities;
    for (let i = 0; i < authorities.length; i++) {
      if (equalsLower(value, start, end, authorities[i] as string)) return true;
    }
    return false;
  }
}

function base(prefix: string): string {
  if (prefix !== '' && prefix.charCodeAt(0) !== SLASH) throw new Error(`path prefix "${prefix}" must start with /`);
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === SLASH) end--;
  return prefix.slice(0, end);
}

function addOnce(list: string[], item: string): void {
  if (!list.includes(item)) list.push(item);
}

/** 'example.com:8443' → 'example.com'; '[::1]:8443' → '[::1]'. */
function hostName(host: string): string {
  const colon = host.lastIndexOf(':');
  return colon > host.lastIndexOf(']') ? host.slice(0, colon) : host;
}

/** Does value start with scheme + '://', the scheme in any case? */
function startsWithScheme(value: string, scheme: string): boolean {
  return value.startsWith('://', scheme.length) && equalsLower(value, 0, scheme.length, scheme);
}

/** Does text[start, end) equal lower (already lower-case), ignoring ASCII case? */
function equalsLower(text: string, start: number, end: number, lower: string): boolean {
  if (end - start !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let code = text.charCodeAt(start + i);
    if (code >= 0x41 && code <= 0x5a) code |= 0x20;
    if (code !== lower.charCodeAt(i)) return false;
  }
  return true;
}

function skipSpace(text: string, from: number, end: number): number {
  while (from < end && (text.charCodeAt(from) === 0x20 || text.charCodeAt(from) === 0x09)) from++;
  return from;
}

function trimEnd(text: string, start: number, end: number): number {
  while (end > start && (text.charCodeAt(end - 1) === 0x20 || text.charCodeAt(end - 1) === 0x09)) end--;
  return end;
}
