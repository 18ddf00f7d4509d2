import { BlockList, isIP } from 'node:net';

/**
 * A list of addresses and CIDR ranges ("10.0.0.0/8", "2001:db8::/32",
 * "127.0.0.1"), matched with Node's BlockList. IPv4-mapped IPv6 addresses
 * ("::ffff:10.1.2.3") match their IPv4 entries.
 */
export class AddressList {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(readonly entries: readonly string[]) {
    for (const entry of entries) {
      const parsed = parseEntry(entry);
      if (!parsed) throw new Error(addressEntryProblem(entry) ?? `invalid address "${entry}"`);
      if (parsed.prefix === undefined) this.list.addAddress(parsed.address, parsed.family);
      else this.list.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
    this.size = entries.length;
  }

  has(address: string): boolean {
    const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
    const family = isIP(plain);
    if (family === 0) return false;
    return this.list.check(plain, family === 4 ? 'ipv4' : 'ipv6');
  }
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
