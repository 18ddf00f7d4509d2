import dgram from 'node:dgram';
import { isIPv4, isIPv6 } from 'node:net';

export interface SrvRecord {
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
}

/** What a name answers; a name missing from the table is NXDOMAIN. */
export interface DnsName {
  a?: string[];
  aaaa?: string[];
  srv?: SrvRecord[];
  /** servfail: answer SERVFAIL; drop: never answer (the client times out). */
  fail?: 'servfail' | 'drop';
  /** Only questions of this type get `fail` (default: all). */
  failType?: 'A' | 'AAAA' | 'SRV';
}

export interface DnsTestServer {
  /** 127.0.0.1:PORT, for Discovery's resolver setting. */
  readonly address: string;
  /** Lower-case name → records; change it at any time. */
  readonly table: Map<string, DnsName>;
  /** Every question received, as "name TYPE" (e.g. "app.test A"). */
  readonly queries: string[];
  close(): Promise<void>;
}

const TYPE_A = 1;
const TYPE_AAAA = 28;
const TYPE_SRV = 33;
const TYPE_NAMES: Record<number, string> = { [TYPE_A]: 'A', [TYPE_AAAA]: 'AAAA', [TYPE_SRV]: 'SRV' };
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;

/**
 * A tiny authoritative DNS server on UDP 127.0.0.1:0 answering A, AAAA and SRV
 * from a table: a known name without records of the asked type gets an empty
 * answer (NODATA), an unknown name NXDOMAIN. TTLs are 0.
 */
export async function startDnsServer(): Promise<DnsTestServer> {
  const table = new Map<string, DnsName>();
  const queries: string[] = [];
  const socket = dgram.createSocket('udp4');
  socket.on('message', (message, remote) => {
    const reply = answer(message, table, queries);
    if (reply) socket.send(reply, remote.port, remote.address);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, '127.0.0.1', () => {
      socket.off('error', reject);
      resolve();
    });
  });
  const { port } = socket.address();
  return {
    address: `127.0.0.1:${port}`,
    table,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function answer(message: Buffer, table: Map<string, DnsName>, queries: string[]): Buffer | undefined {
  if (message.length < 12 || message.readUInt16BE(4) < 1) return undefined;
  // The question: labels, then type and class.
  let at = 12;
  const labels: string[] = [];
  while (at < message.length) {
    const length = message[at]!;
    if (length === 0 || length >= 0xc0) break;
    labels.push(message.toString('latin1', at + 1, at + 1 + length));
    at += 1 + length;
  }
  if (at + 5 > message.length) return undefined;
  const questionEnd = at + 5;
  const type = message.readUInt16BE(at + 1);
  const name = labels.join('.').toLowerCase();
  queries.push(`${name} ${TYPE_NAMES[type] ?? String(type)}`);
  const entry = table.get(name);
  const failing = entry?.fail !== undefined && (entry.failType === undefined || entry.failType === TYPE_NAMES[type]);
  if (failing && entry?.fail === 'drop') return undefined;

  const answers: Buffer[] = [];
  let rcode = 0;
  if (!entry) rcode = RCODE_NXDOMAIN;
  else if (failing) rcode = RCODE_SERVFAIL;
  else if (type === TYPE_A) for (const address of entry.a ?? []) answers.push(record(TYPE_A, ipv4Bytes(address)));
  else if (type === TYPE_AAAA) for (const address of entry.aaaa ?? []) answers.push(record(TYPE_AAAA, ipv6Bytes(address)));
  else if (type === TYPE_SRV) {
    for (const srv of entry.srv ?? []) {
      const fixed = Buffer.alloc(6);
      fixed.writeUInt16BE(srv.priority, 0);
      fixed.writeUInt16BE(srv.weight, 2);
      fixed.writeUInt16BE(srv.port, 4);
      answers.push(record(TYPE_SRV, Buffer.concat([fixed, encodeName(srv.target)])));
    }
  }

  const header = Buffer.alloc(12);
  header.writeUInt16BE(message.readUInt16BE(0), 0); // id
  const recursionDesired = message[2]! & 0x01;
  header[2] = 0x80 | 0x04 | recursionDesired; // QR, AA, RD as asked
  header[3] = 0x80 | rcode; // RA, rcode
  header.writeUInt16BE(1, 4); // one question
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, message.subarray(12, questionEnd), ...answers]);
}

/** An answer record named by a pointer to the question's name, class IN, TTL 0. */
function record(type: number, data: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt32BE(0, 6);
  head.writeUInt16BE(data.length, 10);
  return Buffer.concat([head, data]);
}

function encodeName(name: string): Buffer {
  const parts = name.split('.').filter((label) => label !== '');
  return Buffer.concat([...parts.map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label, 'latin1')])), Buffer.from([0])]);
}

function ipv4Bytes(address: string): Buffer {
  if (!isIPv4(address)) throw new Error(`not an IPv4 address: ${address}`);
  return Buffer.from(address.split('.').map(Number));
}

function ipv6Bytes(address: string): Buffer {
  if (!isIPv6(address)) throw new Error(`not an IPv6 address: ${address}`);
  const [head = '', tail = ''] = address.split('::');
  const groups = (part: string): number[] => (part === '' ? [] : part.split(':').map((group) => parseInt(group, 16)));
  const before = groups(head);
  const after = address.includes('::') ? groups(tail) : [];
  const all = [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
  const out = Buffer.alloc(16);
  all.forEach((group, index) => out.writeUInt16BE(group, index * 2));
  return out;
}
