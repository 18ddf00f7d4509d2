import { isIP } from 'node:net';
import type { AddressList } from '../net/address-list.js';

/**
 * The client's address when the connection comes from a trusted proxy: the
 * X-Forwarded-For entries are read right to left, skipping trusted hops, and
 * the first one that is not trusted is the client (nginx's real_ip_recursive).
 * An entry that is not an IP address stops the walk at the hop before it.
 */
export function clientBehindProxies(peer: string, forwardedFor: string | undefined, trusted: AddressList): string {
  if (forwardedFor === undefined || !trusted.has(peer)) return peer;
  const hops = forwardedFor.split(',');
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = withoutPort((hops[i] ?? '').trim());
    if (isIP(hop) === 0) break;
    client = hop;
    if (!trusted.has(hop)) break;
  }
  return client;
}

/** "1.2.3.4:5678" → "1.2.3.4"; "[2001:db8::1]:80" → "2001:db8::1". */
function withoutPort(hop: string): string {
  if (hop.startsWith('[')) {
    const end = hop.indexOf(']');
    return end === -1 ? hop : hop.slice(1, end);
  }
  const colon = hop.indexOf(':');
  return colon !== -1 && colon === hop.lastIndexOf(':') ? hop.slice(0, colon) : hop;
}
