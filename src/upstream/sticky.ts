import { createHash, createHmac } from 'node:crypto';
import type { UpstreamServer } from './upstream-server.js';

/**
 * Cookie affinity: the cookie names the server by a digest of its URL, signed with
 * an HMAC of the shared secret, so every instance with the same secret and servers
 * agrees, and a forged or stale value is simply ignored. Values are computed once
 * per server at start, so a request costs a string lookup, not an HMAC.
 */
export class CookieAffinity {
  private readonly byValue = new Map<string, UpstreamServer>();
  private readonly setCookieByServer = new Map<UpstreamServer, { plain: string; secure: string }>();

  constructor(readonly cookieName: string, private readonly secret: string, servers: readonly UpstreamServer[]) {
    for (const server of servers) this.add(server);
  }

  /** Computes a server's cookie value once (also for servers discovery adds). */
  add(server: UpstreamServer): void {
    const key = createHash('sha256').update(server.url).digest('base64url').slice(0, 12);
    const signature = createHmac('sha256', this.secret).update(key).digest('base64url').slice(0, 22);
    const value = `${key}.${signature}`;
    this.byValue.set(value, server);
    const base = `${this.cookieName}=${value}; Path=/; HttpOnly; SameSite=Lax`;
    this.setCookieByServer.set(server, { plain: base, secure: `${base}; Secure` });
  }

  /** Forgets a server that left the pool (its cookies then re-pin). */
  remove(server: UpstreamServer): void {
    this.setCookieByServer.delete(server);
    for (const [value, pinned] of this.byValue) if (pinned === server) this.byValue.delete(value);
  }

  /** The server a request's cookie pins it to, if the cookie is present and valid. */
  pinned(cookieHeader: string | undefined): UpstreamServer | undefined {
    if (!cookieHeader) return undefined;
    const value = readCookie(cookieHeader, this.cookieName);
    return value === undefined ? undefined : this.byValue.get(value);
  }

  setCookie(server: UpstreamServer, secure: boolean): string {
    const entry = this.setCookieByServer.get(server);
    if (!entry) throw new Error('server is not in this pool');
    return secure ? entry.secure : entry.plain;
  }
}

/** Finds one cookie's value in a Cookie header ("a=1; b=2"). */
export function readCookie(header: string, name: string): string | undefined {
  let from = 0;
  while (from < header.length) {
    const at = header.indexOf(name, from);
    if (at < 0) return undefined;
    const end = at + name.length;
    const startsPair = at === 0 || header.charCodeAt(at - 1) === 0x20 || header.charCodeAt(at - 1) === 0x3b;
    if (startsPair && header.charCodeAt(end) === 0x3d) {
      const stop = header.indexOf(';', end + 1);
      return header.slice(end + 1, stop < 0 ? header.length : stop).trim();
    }
    from = end;
  }
  return undefined;
}
