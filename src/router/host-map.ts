/**
 * Host name → site, the way nginx picks a server block: an exact name first,
 * then the longest matching "*.example.com" wildcard, then the default ("*").
 */
export class HostMap<T> {
  private readonly exact = new Map<string, T>();
  /** [".example.com", site], longest suffix first. */
  private readonly wildcards: [string, T][] = [];
  private fallback: T | undefined;

  add(pattern: string, value: T): void {
    const name = pattern.toLowerCase().replace(/\.$/, '');
    if (name === '*') this.fallback ??= value;
    else if (name.startsWith('*.')) {
      if (!this.wildcards.some(([suffix]) => suffix === name.slice(1))) this.wildcards.push([name.slice(1), value]);
      this.wildcards.sort((a, b) => b[0].length - a[0].length);
    } else if (!this.exact.has(name)) this.exact.set(name, value);
  }

  /** The site for a Host header value ("Example.COM:8080" works), or undefined. */
  find(hostHeader: string | undefined): T | undefined {
    const name = hostHeader === undefined ? '' : normaliseHost(hostHeader);
    const exact = this.exact.get(name);
    if (exact !== undefined) return exact;
    for (const [suffix, value] of this.wildcards) {
      if (name.length > suffix.length && name.endsWith(suffix)) return value;
    }
    return this.fallback;
  }
}

/** Lower case, no port, no trailing dot; "[::1]:80" becomes "[::1]". */
export function normaliseHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 0x5b) {
    const close = host.indexOf(']');
    end = close < 0 ? end : close + 1;
  } else {
    const colon = host.lastIndexOf(':');
    if (colon >= 0) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 0x2e) end--;
  return host.slice(0, end).toLowerCase();
}
