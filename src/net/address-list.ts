import { BlockList, isIP } from 'node:net';

/**
 * A list of addresses and CIDR ranges ("10.0.0.0/8", "2001:db8::/32",
 * "127.0.0.1"), matched with Node's BlockList. IPv4-mapped IPv6 addresses
 * ("::ffff:10.1.2.3") match their IPv4 entries.
 */
export class AddressList {
  // One list per family: a BlockList checks IPv4 addresses against IPv6 rules
  // too (as ::ffff:a.b.c.d), so "::/0" would take in every IPv4 client.
  private readonly v4 = new BlockList();
  private readonly v6 = new BlockList();
  readonly size: number;

  constructor(readonly entries: readonly string[]) {
    for (const entry of entries) {
      const parsed = parseEntry(entry);
      if (!parsed) throw new Error(addressEntryProblem(entry) ?? `invalid address "${entry}"`);
      const list = parsed.family === 'ipv4' ? this.v4 : this.v6;
      if (parsed.prefix === undefined) list.addAddress(parsed.address, parsed.family);
      else list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    this.size = entries.length;
  }

  has(address: string): boolean {
    const plain = unmapped(address);
    const family = isIP(plain);
    if (family === 4) return this.v4.check(plain, 'ipv4');
    if (family === 6) return this.v6.check(plain, 'ipv6');
    return false;
  }
}

/** An IPv4-mapped IPv6 address ("::ffff:10.1.2.3", "::ffff:a01:203") as its IPv4 address; others unchanged. */
function unmapped(address: string): string {
  if (!address.toLowerCase().startsWith('::ffff:')) return address;
  const tail = address.slice(7);
  if (isIP(tail) === 4) return tail;
  const hex = /^([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(tail);
  if (!hex) return address;
  const high = parseInt(hex[1] ?? '0', 16);
  const low = parseInt(hex[2] ?? '0', 16);
  return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
}

/** Why an entry is not an address or CIDR range, or undefined when it is one. */
export function addressEntryProblem(entry: string): string | undefined {
  return parseEntry(entry) ? undefined : `expected an IP address or CIDR range such as 10.0.0.0/8 or 2001:db8::/32, found "${entry}"`;
}

function parseEntry(entry: string): { address: string; prefix: number | undefined; family: 'ipv4' | 'ipv6' } | undefined {
  const slash = entry.indexOf('/');
  const address = slash === -1 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return undefined;
  if (slash === -1) return { address, prefix: undefined, family: family === 4 ? 'ipv4' : 'ipv6' };
  const text = entry.slice(slash + 1);
  const prefix = Number(text);
  if (!/^\d{1,3}$/.test(text) || prefix > (family === 4 ? 32 : 128)) return undefined;
  return { address, prefix, family: family === 4 ? 'ipv4' : 'ipv6' };
}
