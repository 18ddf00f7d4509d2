/**
 * The PROXY protocol parser and writers (src/net/proxy-protocol.ts), address
 * lists (src/net/address-list.ts) and the client behind trusted proxies
 * (src/proxy/client-address.ts). Expected values come from the spec
 * (https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt) and from how
 * Node itself prints addresses, not from the code under test.
 */
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { describe, test } from 'node:test';
import { AddressList, addressEntryProblem } from '../../src/net/address-list.js';
import { parseProxyHeader, proxyHeaderV1, proxyHeaderV2, type ProxyHeaderParse } from '../../src/net/proxy-protocol.js';
import { clientBehindProxies } from '../../src/proxy/client-address.js';

const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A v2 header built byte by byte from the spec (independent of proxyHeaderV2). */
function v2(versionCommand: number, family: number, body: Buffer): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = versionCommand;
  fixed[1] = family;
  fixed.writeUInt16BE(body.length, 2);
  return Buffer.concat([SIGNATURE, fixed, body]);
}

function ipv4Body(source: [number, number, number, number], destination: [number, number, number, number], sourcePort: number, destinationPort: number): Buffer {
  const body = Buffer.alloc(12);
  Buffer.from(source).copy(body, 0);
  Buffer.from(destination).copy(body, 4);
  body.writeUInt16BE(sourcePort, 8);
  body.writeUInt16BE(destinationPort, 10);
  return body;
}

function ipv6Body(source: readonly number[], destination: readonly number[], sourcePort: number, destinationPort: number): Buffer {
  const body = Buffer.alloc(36);
  source.forEach((group, i) => body.writeUInt16BE(group, i * 2));
  destination.forEach((group, i) => body.writeUInt16BE(group, 16 + i * 2));
  body.writeUInt16BE(sourcePort, 32);
  body.writeUInt16BE(destinationPort, 34);
  return body;
}

/** A TLV: type, 16-bit length, value. */
function tlv(type: number, value: Buffer): Buffer {
  const head = Buffer.alloc(3);
  head[0] = type;
  head.writeUInt16BE(value.length, 1);
  return Buffer.concat([head, value]);
}

function expectHeader(parsed: ProxyHeaderParse, version: 1 | 2, length: number, source: { address: string; port: number } | undefined): void {
  assert.equal(parsed.kind, 'header', `expected a header, got ${JSON.stringify(parsed)}`);
  if (parsed.kind !== 'header') return;
  assert.equal(parsed.version, version, 'version');
  assert.equal(parsed.length, length, 'length');
  assert.deepEqual(parsed.source, source, 'source');
}

function expectInvalid(data: Buffer | string, what: string): void {
  const parsed = parseProxyHeader(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  assert.equal(parsed.kind, 'invalid', `${what}: expected invalid, got ${JSON.stringify(parsed)}`);
  if (parsed.kind === 'invalid') assert.ok(parsed.reason.length > 0, `${what}: a reason`);
}

/** Every strict prefix of a whole header (1..length-1 bytes) needs more bytes. */
function expectIncompleteAtEveryPrefix(header: Buffer, what: string): void {
  for (let n = 1; n < header.length; n++) {
    const parsed = parseProxyHeader(header.subarray(0, n));
    assert.equal(parsed.kind, 'incomplete', `${what}: ${n} of ${header.length} bytes gave ${JSON.stringify(parsed)}`);
  }
}

/** How Node / WHATWG URL print an IPv6 address (RFC 5952: lowercase, longest zero run compressed). */
function canonicalIpv6(address: string): string {
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}

// ===================================================================== v1

describe('parseProxyHeader, version 1', () => {
  test('TCP4: source address and port, length up to and including CRLF, the rest left alone', () => {
    const line = 'PROXY TCP4 192.0.2.10 198.51.100.20 56324 443\r\n';
    const data = Buffer.from(`${line}GET / HTTP/1.1\r\n\r\n`, 'latin1');
    expectHeader(parseProxyHeader(data), 1, Buffer.byteLength(line), { address: '192.0.2.10', port: 56324 });
  });

  test('TCP6: compressed and full IPv6 addresses', () => {
    const line = 'PROXY TCP6 2001:db8::7 2001:db8::1 1024 80\r\n';
    expectHeader(parseProxyHeader(Buffer.from(line, 'latin1')), 1, line.length, { address: '2001:db8::7', port: 1024 });
    const full = 'PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
    expectHeader(parseProxyHeader(Buffer.from(full, 'latin1')), 1, full.length, { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 });
  });

  test('ports 0 and 65535 are in range', () => {
    const line = 'PROXY TCP4 10.0.0.1 10.0.0.2 0 65535\r\n';
    expectHeader(parseProxyHeader(Buffer.from(line, 'latin1')), 1, line.length, { address: '10.0.0.1', port: 0 });
  });

  test('UNKNOWN: a header without a source, with or without addresses (up to the 107-byte maximum)', () => {
    const bare = 'PROXY UNKNOWN\r\n';
    expectHeader(parseProxyHeader(Buffer.from(`${bare}GET /`, 'latin1')), 1, bare.length, undefined);
    // The spec's worst case is exactly 107 bytes and must be accepted.
    const longest = 'PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n';
    assert.equal(longest.length, 107);
    expectHeader(parseProxyHeader(Buffer.from(longest, 'latin1')), 1, 107, undefined);
  });

  test('incomplete at every prefix length (TCP4, TCP6, UNKNOWN)', () => {
    expectIncompleteAtEveryPrefix(Buffer.from('PROXY TCP4 192.0.2.10 198.51.100.20 56324 443\r\n', 'latin1'), 'TCP4');
    expectIncompleteAtEveryPrefix(Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 1024 80\r\n', 'latin1'), 'TCP6');
    expectIncompleteAtEveryPrefix(Buffer.from('PROXY UNKNOWN\r\n', 'latin1'), 'UNKNOWN');
  });

  test('bytes that do not start a PROXY header are "none" (HTTP/1.1, HTTP/2 preface, TLS ClientHello)', () => {
    for (const text of ['GET / HTTP/1.1\r\n', 'POST / HTTP/1.1\r\n', 'PUT /', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'PROXX TCP4', 'proxy TCP4 1.2.3.4 1.2.3.4 1 1\r\n']) {
      assert.deepEqual(parseProxyHeader(Buffer.from(text, 'latin1')), { kind: 'none' }, JSON.stringify(text));
    }
    assert.deepEqual(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])), { kind: 'none' }, 'TLS record');
    // A single "P" could still be either.
    assert.equal(parseProxyHeader(Buffer.from('P', 'latin1')).kind, 'incomplete');
  });

  test('bad ports are invalid', () => {
    for (const [source, destination] of [['65536', '80'], ['80', '65536'], ['-1', '80'], ['abc', '80'], ['123456', '80'], ['', '80'], ['8 0', '80'], ['0x50', '80'], ['1e3', '80']]) {
      expectInvalid(`PROXY TCP4 192.0.2.1 192.0.2.2 ${source} ${destination}\r\n`, `ports ${source}/${destination}`);
    }
  });

  test('a family that does not match the addresses, or an unknown family, is invalid', () => {
    expectInvalid('PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n', 'TCP4 with IPv6');
    expectInvalid('PROXY TCP4 192.0.2.1 2001:db8::2 1 2\r\n', 'TCP4 with an IPv6 destination');
    expectInvalid('PROXY TCP6 192.0.2.1 192.0.2.2 1 2\r\n', 'TCP6 with IPv4');
    expectInvalid('PROXY TCP5 192.0.2.1 192.0.2.2 1 2\r\n', 'TCP5');
    expectInvalid('PROXY UDP4 192.0.2.1 192.0.2.2 1 2\r\n', 'UDP4');
    expectInvalid('PROXY tcp4 192.0.2.1 192.0.2.2 1 2\r\n', 'lower-case family');
    expectInvalid('PROXY TCP4 192.0.2.300 192.0.2.2 1 2\r\n', 'octet over 255');
    expectInvalid('PROXY TCP4 example.com 192.0.2.2 1 2\r\n', 'a name, not an address');
  });

  test('wrong number of fields is invalid', () => {
    expectInvalid('PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n', 'no destination port');
    expectInvalid('PROXY TCP4 192.0.2.1 192.0.2.2 1 2 3\r\n', 'one field too many');
    expectInvalid('PROXY TCP4  192.0.2.1 192.0.2.2 1 2\r\n', 'two spaces');
    expectInvalid('PROXY \r\n', 'no family');
  });

  test('longer than 107 bytes is invalid, with or without a CRLF', () => {
    // No CRLF within the first 107 bytes: invalid as soon as 107 bytes are there.
    const endless = Buffer.from(`PROXY TCP4 ${'1'.repeat(200)}`, 'latin1');
    expectInvalid(endless.subarray(0, 107), '107 bytes without CRLF');
    expectInvalid(endless, '211 bytes without CRLF');
    // A CRLF that ends the line at byte 108.
    const long = `PROXY UNKNOWN ${'x'.repeat(92)}\r\n`;
    assert.equal(long.length, 108);
    expectInvalid(long, '108-byte line');
    assert.equal(parseProxyHeader(Buffer.from(long.slice(0, 106), 'latin1')).kind, 'incomplete', '106 bytes, no CRLF yet');
  });
});

// ===================================================================== v2

describe('parseProxyHeader, version 2', () => {
  test('PROXY over TCP4', () => {
    const header = v2(0x21, 0x11, ipv4Body([203, 0, 113, 7], [10, 0, 0, 1], 40000, 443));
    assert.equal(header.length, 28);
    expectHeader(parseProxyHeader(Buffer.concat([header, Buffer.from('GET / HTTP/1.1\r\n')])), 2, 28, { address: '203.0.113.7', port: 40000 });
  });

  test('PROXY over TCP6, printed as Node prints IPv6 addresses', () => {
    const header = v2(0x21, 0x21, ipv6Body([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0x0007], [0x2001, 0x0db8, 0, 0, 0, 0, 0, 1], 1234, 80));
    assert.equal(header.length, 52);
    expectHeader(parseProxyHeader(header), 2, 52, { address: '2001:db8::7', port: 1234 });
    const cases: number[][] = [
      [0, 0, 0, 0, 0, 0, 0, 1], // ::1
      [0, 0, 0, 0, 0, 0, 0, 0], // ::
      [0xfe80, 0, 0, 0, 1, 0, 0, 1], // fe80::1:0:0:1 (first of two runs: the longer one)
      [1, 0, 0, 2, 0, 0, 3, 4], // two equal runs: the first is compressed
      [1, 0, 2, 3, 4, 5, 6, 7], // a single zero group stays
      [0xabcd, 0xef01, 0x2345, 0x6789, 0xabcd, 0xef01, 0x2345, 0x6789],
      [1, 2, 3, 4, 5, 6, 7, 0], // trailing zero group
      [0, 0, 1, 2, 3, 4, 5, 6],
      [1, 2, 3, 4, 5, 0, 0, 0],
    ];
    for (const groups of cases) {
      const full = groups.map((group) => group.toString(16)).join(':');
      const parsed = parseProxyHeader(v2(0x21, 0x21, ipv6Body(groups, [0, 0, 0, 0, 0, 0, 0, 1], 9, 80)));
      assert.equal(parsed.kind, 'header', full);
      if (parsed.kind === 'header') assert.equal(parsed.source?.address, canonicalIpv6(full), full);
    }
  });

  test('TLVs after the addresses are part of the header length and skipped', () => {
    const tlvs = Buffer.concat([
      tlv(0x01, Buffer.from('h2')), // PP2_TYPE_ALPN
      tlv(0x02, Buffer.from('example.com')), // PP2_TYPE_AUTHORITY
      tlv(0x04, Buffer.alloc(0)), // PP2_TYPE_NOOP
    ]);
    const four = v2(0x21, 0x11, Buffer.concat([ipv4Body([198, 51, 100, 9], [10, 0, 0, 1], 5555, 443), tlvs]));
    const after = Buffer.from('GET / HTTP/1.1\r\n\r\n');
    expectHeader(parseProxyHeader(Buffer.concat([four, after])), 2, 16 + 12 + tlvs.length, { address: '198.51.100.9', port: 5555 });
    const six = v2(0x21, 0x21, Buffer.concat([ipv6Body([0x2001, 0xdb8, 0, 0, 0, 0, 0, 9], [0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 6666, 443), tlvs]));
    expectHeader(parseProxyHeader(Buffer.concat([six, after])), 2, 16 + 36 + tlvs.length, { address: '2001:db8::9', port: 6666 });
    expectIncompleteAtEveryPrefix(four, 'TCP4 with TLVs');
  });

  test('LOCAL: a header without a source, addresses or not', () => {
    expectHeader(parseProxyHeader(v2(0x20, 0x00, Buffer.alloc(0))), 2, 16, undefined);
    expectHeader(parseProxyHeader(v2(0x20, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))), 2, 28, undefined);
  });

  test('PROXY with AF_UNSPEC (and AF_UNIX): a header without a source', () => {
    expectHeader(parseProxyHeader(v2(0x21, 0x00, Buffer.alloc(0))), 2, 16, undefined);
    expectHeader(parseProxyHeader(v2(0x21, 0x00, Buffer.from('some tlvs'))), 2, 25, undefined);
    expectHeader(parseProxyHeader(v2(0x21, 0x31, Buffer.alloc(216))), 2, 16 + 216, undefined);
  });

  test('incomplete at every prefix length (TCP4, TCP6, LOCAL, UNSPEC)', () => {
    expectIncompleteAtEveryPrefix(v2(0x21, 0x11, ipv4Body([203, 0, 113, 7], [10, 0, 0, 1], 40000, 443)), 'TCP4');
    expectIncompleteAtEveryPrefix(v2(0x21, 0x21, ipv6Body([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7], [0, 0, 0, 0, 0, 0, 0, 1], 1, 2)), 'TCP6');
    expectIncompleteAtEveryPrefix(v2(0x20, 0x11, ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)), 'LOCAL');
    expectIncompleteAtEveryPrefix(v2(0x21, 0x00, Buffer.from('abc')), 'UNSPEC with bytes');
  });

  test('a bad version or command is invalid', () => {
    const body = ipv4Body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2);
    expectInvalid(v2(0x11, 0x11, body), 'version 1 in a v2 header');
    expectInvalid(v2(0x31, 0x11, body), 'version 3');
    expectInvalid(v2(0x01, 0x11, body), 'version 0');
    expectInvalid(v2(0x22, 0x11, body), 'command 2');
    expectInvalid(v2(0x2f, 0x11, body), 'command 15');
    // Version and command are known from the 13th byte: no need to wait for the body.
    expectInvalid(v2(0x31, 0x11, body).subarray(0, 16), 'version 3, fixed part only');
  });

  test('addresses shorter than their family needs are invalid', () => {
    expectInvalid(v2(0x21, 0x11, Buffer.alloc(8)), 'TCP4 with 8 bytes');
    expectInvalid(v2(0x21, 0x21, Buffer.alloc(12)), 'TCP6 with 12 bytes');
    expectInvalid(v2(0x21, 0x21, Buffer.alloc(35)), 'TCP6 with 35 bytes');
  });
});

// ===================================================================== writers

describe('proxyHeaderV1 / proxyHeaderV2 round trip through parseProxyHeader', () => {
  const cases: { name: string; source: { address: string; port: number }; destination: { address: string; port: number }; expected: string }[] = [
    { name: 'IPv4', source: { address: '203.0.113.7', port: 40000 }, destination: { address: '10.0.0.1', port: 8080 }, expected: '203.0.113.7' },
    { name: 'IPv4 extremes', source: { address: '255.255.255.255', port: 65535 }, destination: { address: '0.0.0.0', port: 0 }, expected: '255.255.255.255' },
    { name: 'compressed IPv6', source: { address: '2001:db8::7', port: 1 }, destination: { address: '2001:db8::1', port: 443 }, expected: '2001:db8::7' },
    { name: 'loopback IPv6', source: { address: '::1', port: 2 }, destination: { address: '::1', port: 3 }, expected: '::1' },
    { name: 'IPv6 with a trailing run', source: { address: 'fe80:1::', port: 4 }, destination: { address: '::', port: 5 }, expected: 'fe80:1::' },
    { name: 'full IPv6', source: { address: '2001:db8:1:2:3:4:5:6', port: 7 }, destination: { address: '::1', port: 8 }, expected: '2001:db8:1:2:3:4:5:6' },
    // Node prints an IPv4 client on a dual-stack socket as ::ffff:a.b.c.d.
    { name: 'IPv4-mapped IPv6', source: { address: '::ffff:192.0.2.33', port: 9 }, destination: { address: '::ffff:10.0.0.1', port: 80 }, expected: '::ffff:192.0.2.33' },
    { name: 'IPv4 client, IPv6 destination', source: { address: '192.0.2.44', port: 10 }, destination: { address: '2001:db8::1', port: 80 }, expected: '::ffff:192.0.2.44' },
  ];

  for (const { name, source, destination, expected } of cases) {
    test(`v1: ${name}`, () => {
      const header = proxyHeaderV1(source, destination);
      const text = header.toString('latin1');
      assert.match(text, /^PROXY TCP[46] \S+ \S+ \d+ \d+\r\n$/, text);
      assert.equal(text.startsWith(isIP(source.address) === 4 && isIP(destination.address) === 4 ? 'PROXY TCP4 ' : 'PROXY TCP6 '), true, text);
      expectHeader(parseProxyHeader(Buffer.concat([header, Buffer.from('GET /')])), 1, header.length, { address: expected, port: source.port });
      expectIncompleteAtEveryPrefix(header, `v1 ${name}`);
    });

    test(`v2: ${name}`, () => {
      const header = proxyHeaderV2(source, destination);
      const six = isIP(source.address) === 6 || isIP(destination.address) === 6;
      assert.equal(header.length, six ? 52 : 28);
      assert.deepEqual(header.subarray(0, 12), SIGNATURE);
      assert.equal(header[12], 0x21, 'version 2, PROXY');
      assert.equal(header[13], six ? 0x21 : 0x11, 'family');
      expectHeader(parseProxyHeader(Buffer.concat([header, Buffer.from('GET /')])), 2, header.length, { address: expected, port: source.port });
      expectIncompleteAtEveryPrefix(header, `v2 ${name}`);
    });
  }

  test('v2 writes the spec layout (addresses, then ports, big endian)', () => {
    const header = proxyHeaderV2({ address: '1.2.3.4', port: 0x1234 }, { address: '5.6.7.8', port: 0xabcd });
    assert.deepEqual([...header.subarray(14)], [0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 0x12, 0x34, 0xab, 0xcd]);
    const six = proxyHeaderV2({ address: '2001:db8::7', port: 1 }, { address: '::1', port: 2 });
    assert.equal(six.readUInt16BE(14), 36);
    assert.equal(six.subarray(16, 32).toString('hex'), '20010db8000000000000000000000007');
    assert.equal(six.subarray(32, 48).toString('hex'), '00000000000000000000000000000001');
    assert.equal(six.readUInt16BE(48), 1);
    assert.equal(six.readUInt16BE(50), 2);
  });
});

// ===================================================================== AddressList

describe('AddressList', () => {
  test('IPv4 addresses and CIDR ranges', () => {
    const list = new AddressList(['127.0.0.1', '10.0.0.0/8', '192.168.1.0/24', '198.51.100.7/32']);
    assert.equal(list.size, 4);
    for (const inside of ['127.0.0.1', '10.0.0.0', '10.255.255.255', '10.1.2.3', '192.168.1.0', '192.168.1.255', '198.51.100.7']) assert.equal(list.has(inside), true, inside);
    for (const outside of ['127.0.0.2', '11.0.0.0', '9.255.255.255', '192.168.2.1', '192.168.0.255', '198.51.100.8']) assert.equal(list.has(outside), false, outside);
  });

  test('IPv6 addresses and CIDR ranges', () => {
    const list = new AddressList(['::1', '2001:db8::/32', 'fe80::/10']);
    for (const inside of ['::1', '2001:db8::', '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff', '2001:0db8:0000::1', 'fe80::1', 'febf::1']) assert.equal(list.has(inside), true, inside);
    for (const outside of ['::2', '2001:db9::', '2001:db7:ffff::', 'fec0::1', '127.0.0.1']) assert.equal(list.has(outside), false, outside);
  });

  test('families do not mix: an IPv4 entry never matches a plain IPv6 address and vice versa', () => {
    const v4 = new AddressList(['0.0.0.0/0']);
    assert.equal(v4.has('1.2.3.4'), true);
    assert.equal(v4.has('2001:db8::1'), false);
    const v6 = new AddressList(['2001:db8::/32', '::/96']);
    assert.equal(v6.has('2001:db8::1'), true);
    assert.equal(v6.has('1.2.3.4'), false);
  });

  test('an IPv6 range covering ::ffff:0:0/96 (::/0, ::/1) does not take in IPv4 clients', () => {
    // "deny: ['::/0']" reads as "no IPv6 clients"; IPv4 clients are not IPv6 addresses.
    const v6 = new AddressList(['::/0']);
    assert.equal(v6.has('2001:db8::1'), true);
    assert.equal(v6.has('1.2.3.4'), false, '::/0 matched the IPv4 address 1.2.3.4');
    assert.equal(new AddressList(['::/1']).has('203.0.113.7'), false, '::/1 matched the IPv4 address 203.0.113.7');
  });

  test('IPv4-mapped IPv6 addresses match their IPv4 entries', () => {
    const list = new AddressList(['127.0.0.1', '10.0.0.0/8']);
    assert.equal(list.has('::ffff:127.0.0.1'), true);
    assert.equal(list.has('::ffff:10.9.8.7'), true);
    assert.equal(list.has('::ffff:11.9.8.7'), false);
    assert.equal(list.has('::ffff:7f00:1'), true, 'hex form of ::ffff:127.0.0.1');
  });

  test('anything that is not an address never matches', () => {
    const list = new AddressList(['0.0.0.0/0', '::/0']);
    for (const text of ['', 'unknown', 'localhost', '1.2.3', '1.2.3.4:80', '[::1]', '::ffff:', '10.0.0.0/8']) assert.equal(list.has(text), false, JSON.stringify(text));
  });

  test('bad entries are refused with a message naming them', () => {
    for (const entry of ['', 'localhost', '10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '10.0.0.0/ 8', '1.2.3.4.5', '10.0.0.0/0x8', '300.1.1.1']) {
      assert.throws(() => new AddressList([entry]), (err: Error) => err.message.includes(`"${entry}"`), JSON.stringify(entry));
      assert.notEqual(addressEntryProblem(entry), undefined, JSON.stringify(entry));
    }
    for (const entry of ['10.0.0.0/0', '10.0.0.0/32', '::/0', '::/128', '2001:db8::/32', '1.2.3.4', '::1']) assert.equal(addressEntryProblem(entry), undefined, entry);
  });

  test('an empty list matches nothing', () => {
    const list = new AddressList([]);
    assert.equal(list.size, 0);
    assert.equal(list.has('127.0.0.1'), false);
  });
});

// ===================================================================== clientBehindProxies

describe('clientBehindProxies', () => {
  const trusted = new AddressList(['127.0.0.1', '10.0.0.0/8', '2001:db8:ffff::/48']);

  test('an untrusted peer: X-Forwarded-For is ignored', () => {
    assert.equal(clientBehindProxies('203.0.113.50', '198.51.100.1', trusted), '203.0.113.50');
    assert.equal(clientBehindProxies('203.0.113.50', '10.0.0.1', trusted), '203.0.113.50', 'not even a trusted-looking entry');
    assert.equal(clientBehindProxies('2001:db8::5', '198.51.100.1', trusted), '2001:db8::5');
  });

  test('a trusted peer without X-Forwarded-For is the client', () => {
    assert.equal(clientBehindProxies('127.0.0.1', undefined, trusted), '127.0.0.1');
  });

  test('a trusted peer: the rightmost entry that is not trusted is the client', () => {
    assert.equal(clientBehindProxies('127.0.0.1', '203.0.113.7', trusted), '203.0.113.7');
    assert.equal(clientBehindProxies('10.1.1.1', '198.51.100.1, 203.0.113.7, 10.0.0.2, 10.0.0.3', trusted), '203.0.113.7', 'walks over trusted hops, stops at the first untrusted');
    assert.equal(clientBehindProxies('127.0.0.1', '203.0.113.7,10.0.0.2', trusted), '203.0.113.7', 'no spaces');
    assert.equal(clientBehindProxies('127.0.0.1', '  203.0.113.7  ,   10.0.0.2 ', trusted), '203.0.113.7', 'extra spaces');
    assert.equal(clientBehindProxies('::ffff:127.0.0.1', '203.0.113.7', trusted), '203.0.113.7', 'IPv4-mapped peer');
    assert.equal(clientBehindProxies('2001:db8:ffff::1', '2001:db8::77, 2001:db8:ffff::2', trusted), '2001:db8::77', 'IPv6 chain');
  });

  test('every hop trusted: the leftmost is the client', () => {
    assert.equal(clientBehindProxies('127.0.0.1', '10.0.0.1, 10.0.0.2', trusted), '10.0.0.1');
  });

  test('entries with ports', () => {
    assert.equal(clientBehindProxies('127.0.0.1', '203.0.113.7:5555', trusted), '203.0.113.7');
    assert.equal(clientBehindProxies('127.0.0.1', '203.0.113.7:5555, 10.0.0.2:80', trusted), '203.0.113.7');
    assert.equal(clientBehindProxies('127.0.0.1', '[2001:db8::7]:443', trusted), '2001:db8::7');
    assert.equal(clientBehindProxies('127.0.0.1', '[2001:db8::7]', trusted), '2001:db8::7', 'brackets without a port');
    assert.equal(clientBehindProxies('127.0.0.1', '2001:db8::7', trusted), '2001:db8::7', 'bare IPv6 keeps its colons');
  });

  test('a garbage entry stops the walk at the hop before it', () => {
    assert.equal(clientBehindProxies('127.0.0.1', '203.0.113.7, unknown', trusted), '127.0.0.1', 'garbage rightmost: the peer stands');
    assert.equal(clientBehindProxies('127.0.0.1', '203.0.113.7, garbage, 10.0.0.2', trusted), '10.0.0.2');
    assert.equal(clientBehindProxies('127.0.0.1', '198.51.100.1, , 10.0.0.2', trusted), '10.0.0.2', 'an empty entry');
    assert.equal(clientBehindProxies('127.0.0.1', '', trusted), '127.0.0.1', 'an empty header');
    assert.equal(clientBehindProxies('127.0.0.1', '1.2.3.4.5', trusted), '127.0.0.1', 'not quite an address');
    assert.equal(clientBehindProxies('127.0.0.1', '_hidden, 10.0.0.2', trusted), '10.0.0.2', 'an obfuscated node name (RFC 7239 style)');
  });
});
