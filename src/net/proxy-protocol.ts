import { isIP } from 'node:net';

/**
 * The PROXY protocol (HAProxy, versions 1 and 2): a header an L4 load
 * balancer puts before the client's bytes to say who the client is.
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V1_MAX = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;

export interface ProxySource {
  readonly address: string;
  readonly port: number;
}

export type ProxyHeaderParse =
  /** The bytes do not start a PROXY header. */
  | { readonly kind: 'none' }
  /** A header has begun; more bytes are needed. */
  | { readonly kind: 'incomplete' }
  | { readonly kind: 'invalid'; readonly reason: string }
  /** `source` is undefined for LOCAL / UNKNOWN (a health check by the balancer itself). */
  | { readonly kind: 'header'; readonly length: number; readonly version: 1 | 2; readonly source: ProxySource | undefined };

export function parseProxyHeader(data: Buffer): ProxyHeaderParse {
  if (startsWithPrefixOf(data, V1_PREFIX)) return data.length < V1_PREFIX.length ? { kind: 'incomplete' } : parseV1(data);
  if (startsWithPrefixOf(data, V2_SIGNATURE)) return data.length < V2_FIXED ? { kind: 'incomplete' } : parseV2(data);
  return { kind: 'none' };
}

/** Are the first bytes of `data` (all of them, or the whole prefix) the prefix? */
function startsWithPrefixOf(data: Buffer, prefix: Buffer): boolean {
  const n = Math.min(data.length, prefix.length);
  return n > 0 && data.compare(prefix, 0, n, 0, n) === 0;
}

function parseV1(data: Buffer): ProxyHeaderParse {
  const end = data.indexOf('\r\n', 0, 'latin1');
  if (end === -1) return data.length >= V1_MAX ? { kind: 'invalid', reason: 'v1 header longer than 107 bytes' } : { kind: 'incomplete' };
  if (end + 2 > V1_MAX) return { kind: 'invalid', reason: 'v1 header longer than 107 bytes' };
  const line = data.toString('latin1', 0, end);
  const parts = line.split(' ');
  const length = end + 2;
  if (parts[1] === 'UNKNOWN') return { kind: 'header', length, version: 1, source: undefined };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6')) return { kind: 'invalid', reason: `v1 header "${line.slice(0, 60)}" is not PROXY TCP4|TCP6 SRC DST SPORT DPORT` };
  const [, family, source, destination, sourcePort, destinationPort] = parts as [string, string, string, string, string, string];
  const want = family === 'TCP4' ? 4 : 6;
  if (isIP(source) !== want || isIP(destination) !== want) return { kind: 'invalid', reason: `v1 addresses are not ${family}` };
  const port = parsePort(sourcePort);
  if (port === undefined || parsePort(destinationPort) === undefined) return { kind: 'invalid', reason: 'v1 ports must be 0-65535' };
  return { kind: 'header', length, version: 1, source: { address: source, port } };
}

function parsePort(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function parseV2(data: Buffer): ProxyHeaderParse {
  if (data.compare(V2_SIGNATURE, 0, V2_SIGNATURE.length, 0, V2_SIGNATURE.length) !== 0) return { kind: 'invalid', reason: 'bad v2 signature' };
  const versionCommand = data[12] ?? 0;
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', reason: `v2 version ${versionCommand >> 4}` };
  const command = versionCommand & 0x0f;
  if (command > 1) return { kind: 'invalid', reason: `v2 command ${command}` };
  const family = data[13] ?? 0;
  const length = V2_FIXED + data.readUInt16BE(14);
  if (data.length < length) return { kind: 'incomplete' };
  // LOCAL: the balancer's own connection (health checks); addresses are ignored.
  if (command === 0) return { kind: 'header', length, version: 2, source: undefined };
  const body = data.subarray(V2_FIXED, length);
  if (family === 0x11 || family === 0x12) {
    if (body.length < 12) return { kind: 'invalid', reason: 'v2 IPv4 addresses truncated' };
    return { kind: 'header', length, version: 2, source: { address: `${body[0]}.${body[1]}.${body[2]}.${body[3]}`, port: body.readUInt16BE(8) } };
  }
  if (family === 0x21 || family === 0x22) {
    if (body.length < 36) return { kind: 'invalid', reason: 'v2 IPv6 addresses truncated' };
    return { kind: 'header', length, version: 2, source: { address: ipv6Text(body.subarray(0, 16)), port: body.readUInt16BE(32) } };
  }
  // AF_UNSPEC or AF_UNIX: no address the proxy can use; the connection's own stands.
  return { kind: 'header', length, version: 2, source: undefined };
}

/** 16 address bytes as Node prints them: "2001:db8::1", and IPv4-mapped as "::ffff:1.2.3.4". */
function ipv6Text(bytes: Buffer): string {
  let mapped = bytes.readUInt16BE(10) === 0xffff;
  for (let i = 0; i < 10 && mapped; i++) if (bytes[i] !== 0) mapped = false;
  if (mapped) return `::ffff:${bytes[12]}.${bytes[13]}.${bytes[14]}.${bytes[15]}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return compressIpv6(groups);
}

/** "2001:db8:0:0:0:0:0:1" → "2001:db8::1" (the longest zero run), as Node prints addresses. */
function compressIpv6(groups: readonly string[]): string {
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLength && j - i > 1) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}

/** A v1 header telling the next hop who the client is (and which address it reached). */
export function proxyHeaderV1(source: ProxySource, destination: ProxySource): Buffer {
  const family = isIP(source.address) === 6 || isIP(destination.address) === 6 ? 'TCP6' : 'TCP4';
  const [from, to] = family === 'TCP6' ? [asIpv6(source.address), asIpv6(destination.address)] : [source.address, destination.address];
  return Buffer.from(`PROXY ${family} ${from} ${to} ${source.port} ${destination.port}\r\n`, 'latin1');
}

/** The same as a v2 (binary) header. */
export function proxyHeaderV2(source: ProxySource, destination: ProxySource): Buffer {
  const six = isIP(source.address) === 6 || isIP(destination.address) === 6;
  const addressLength = six ? 36 : 12;
  const header = Buffer.alloc(V2_FIXED + addressLength);
  V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21;
  header[13] = six ? 0x21 : 0x11;
  header.writeUInt16BE(addressLength, 14);
  if (six) {
    ipv6Bytes(asIpv6(source.address)).copy(header, 16);
    ipv6Bytes(asIpv6(destination.address)).copy(header, 32);
    header.writeUInt16BE(source.port, 48);
    header.writeUInt16BE(destination.port, 50);
  } else {
    source.address.split('.').forEach((part, i) => { header[16 + i] = Number(part); });
    destination.address.split('.').forEach((part, i) => { header[20 + i] = Number(part); });
    header.writeUInt16BE(source.port, 24);
    header.writeUInt16BE(destination.port, 26);
  }
  return header;
}

function asIpv6(address: string): string {
  return isIP(address) === 4 ? `::ffff:${address}` : address;
}

function ipv6Bytes(address: string): Buffer {
  const bytes = Buffer.alloc(16);
  let text = address;
  // An embedded IPv4 tail ("::ffff:1.2.3.4") becomes two groups.
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}
