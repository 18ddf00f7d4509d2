/**
 * Clients for the client-identity and limits tests: connections that start
 * with a PROXY protocol header (plain or with TLS on top), raw HTTP/1.1
 * exchanges, WebSocket attempts that report a refusal instead of throwing, and
 * the rejection counters scraped from /metrics.
 */
import http, { type IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { WebSocket } from 'ws';

/** A v1 header, written out as the spec shows it. */
export function v1Header(family: 'TCP4' | 'TCP6', source: string, destination: string, sourcePort: number, destinationPort: number): Buffer {
  return Buffer.from(`PROXY ${family} ${source} ${destination} ${sourcePort} ${destinationPort}\r\n`, 'latin1');
}

/** A v2 header built byte by byte (PROXY command; IPv4 or IPv6 by the addresses' form). */
export function v2Header(source: string, destination: string, sourcePort: number, destinationPort: number, options: { command?: 'PROXY' | 'LOCAL' } = {}): Buffer {
  const six = net.isIP(source) === 6;
  const body = Buffer.alloc(six ? 36 : 12);
  if (six) {
    ipv6Bytes(source).copy(body, 0);
    ipv6Bytes(destination).copy(body, 16);
    body.writeUInt16BE(sourcePort, 32);
    body.writeUInt16BE(destinationPort, 34);
  } else {
    Buffer.from(source.split('.').map(Number)).copy(body, 0);
    Buffer.from(destination.split('.').map(Number)).copy(body, 4);
    body.writeUInt16BE(sourcePort, 8);
    body.writeUInt16BE(destinationPort, 10);
  }
  const fixed = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, options.command === 'LOCAL' ? 0x20 : 0x21, six ? 0x21 : 0x11, 0, 0]);
  fixed.writeUInt16BE(body.length, 14);
  return Buffer.concat([fixed, body]);
}

/** 16 bytes of an IPv6 address, via the WHATWG URL parser (handles "::" and dotted tails). */
function ipv6Bytes(address: string): Buffer {
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const [head, tail] = canonical.includes('::') ? canonical.split('::') as [string, string] : [canonical, undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

/** Every socket these helpers open, so a test can destroy what it left behind. */
export const openedSockets = new Set<net.Socket>();

export function destroyOpenedSockets(): void {
  for (const socket of openedSockets) socket.destroy();
  openedSockets.clear();
}

function track<T extends net.Socket>(socket: T): T {
  openedSockets.add(socket);
  socket.once('close', () => openedSockets.delete(socket));
  return socket;
}

/**
 * Connects, writes `header` (possibly in pieces) and resolves once it is
 * written (and `settleMs` later: time for the proxy to read the header on its
 * own before anything else is sent).
 */
export function connectWithHeader(port: number, header: Buffer | Buffer[], settleMs = 0): Promise<net.Socket> {
  const pieces = Array.isArray(header) ? header : [header];
  return new Promise((resolve, reject) => {
    const socket = track(net.connect(port, '127.0.0.1'));
    socket.once('error', reject);
    socket.once('connect', async () => {
      try {
        for (const piece of pieces) {
          await new Promise<void>((done, fail) => socket.write(piece, (err) => (err ? fail(err) : done())));
          // Separate TCP segments, so the proxy reads the header in pieces.
          if (pieces.length > 1) await new Promise((done) => setTimeout(done, 20));
        }
        if (settleMs > 0) await new Promise((done) => setTimeout(done, settleMs));
        socket.removeListener('error', reject);
        resolve(socket);
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

/** TLS (HTTP/1.1 or h2 by ALPN) on top of a connection that already sent its PROXY header. */
export function tlsOver(socket: net.Socket, alpn: string[] = ['http/1.1']): tls.TLSSocket {
  return track(tls.connect({ socket, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: alpn }));
}

/**
 * TLS on a fresh connection whose first segment is the PROXY header and the
 * ClientHello together, as a balancer that forwards the client's first bytes
 * with its header sends them. The TLS client runs over an in-memory stream;
 * its first write goes out glued to the header in one socket write.
 */
export function tlsCoalescedWithHeader(connection: net.Socket, header: Buffer, alpn: string[] = ['http/1.1']): tls.TLSSocket {
  let first = true;
  const relay = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      const bytes = first ? Buffer.concat([header, chunk]) : chunk;
      first = false;
      connection.write(bytes, (err) => callback(err ?? null));
    },
    read() {
      // Pushed from the connection's 'data' below.
    },
    final(callback) {
      connection.end();
      callback();
    },
    destroy(err, callback) {
      connection.destroy();
      callback(err);
    },
  });
  connection.on('data', (chunk: Buffer) => relay.push(chunk));
  connection.on('end', () => relay.push(null));
  connection.on('close', () => relay.destroy());
  connection.on('error', () => undefined);
  return tls.connect({ socket: relay, servername: 'localhost', rejectUnauthorized: false, ALPNProtocols: alpn });
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP/1.1 request over the given connection (Connection: close). */
export function requestOver(connection: net.Socket, path: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; ms?: number } = {}): Promise<Reply> {
  const ms = options.ms ?? 5_000;
  return new Promise((resolve, reject) => {
    // The connection may carry TLS: http.request only writes bytes to it.
    const req = http.request({
      host: '127.0.0.1', path, method: options.method ?? 'GET', headers: { Connection: 'close', ...options.headers },
      createConnection: () => connection,
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error(`${path}: no answer within ${ms} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

/** One request on a fresh plain connection (no agent, Connection: close). */
export function httpRequest(port: number, path: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; ms?: number } = {}): Promise<Reply> {
  const ms = options.ms ?? 5_000;
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: options.method ?? 'GET', headers: { Connection: 'close', ...options.headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('socket', (socket) => track(socket));
    req.setTimeout(ms, () => req.destroy(new Error(`${path}: no answer within ${ms} ms`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

export interface RawReply {
  /** Everything received, as latin1 text. */
  readonly text: string;
  /** 0 when nothing (or no status line) came. */
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
  /** The server closed the connection (or reset it) before the time was up. */
  readonly closed: boolean;
}

/**
 * Sends bytes on a fresh connection (or one given) and collects everything until
 * the server closes it or `ms` passes.
 */
export function rawExchange(target: number | net.Socket, data: Buffer | string, ms = 3_000): Promise<RawReply> {
  return new Promise((resolve) => {
    const socket = typeof target === 'number' ? track(net.connect(target, '127.0.0.1')) : target;
    const chunks: Buffer[] = [];
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(parseRaw(Buffer.concat(chunks).toString('latin1'), closed));
    };
    const timer = setTimeout(() => finish(false), ms);
    const send = (): void => void socket.write(data, () => undefined);
    if (typeof target === 'number') socket.once('connect', send);
    else send();
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
  });
}

function parseRaw(text: string, closed: boolean): RawReply {
  const end = text.indexOf('\r\n\r\n');
  const head = end === -1 ? text : text.slice(0, end);
  const lines = head.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1];
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
  }
  let body = end === -1 ? '' : text.slice(end + 4);
  if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
  return { text, status: status ? Number(status) : 0, headers, body, closed };
}

function dechunk(data: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const lineEnd = data.indexOf('\r\n', at);
    if (lineEnd === -1) return out;
    const size = parseInt(data.slice(at, lineEnd), 16);
    if (!Number.isFinite(size) || size === 0) return out;
    out += data.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}

export type WsAttempt =
  | { readonly kind: 'open'; readonly ws: WebSocket }
  | { readonly kind: 'refused'; readonly status: number; readonly headers: IncomingHttpHeaders; readonly body: string };

/** Opens a WebSocket; a non-101 answer resolves as 'refused' with its status and headers. */
export function tryWebSocket(url: string, options: { createConnection?: () => net.Socket; headers?: Record<string, string>; ms?: number } = {}): Promise<WsAttempt> {
  const ms = options.ms ?? 3_000;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      handshakeTimeout: ms, rejectUnauthorized: false,
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.createConnection ? { createConnection: options.createConnection as never } : {}),
    });
    ws.once('open', () => resolve({ kind: 'open', ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => {
        resolve({ kind: 'refused', status: res.statusCode ?? 0, headers: res.headers, body });
        ws.terminate();
      });
      res.on('error', () => resolve({ kind: 'refused', status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    ws.once('error', (err) => reject(err));
  });
}

/** Sends a text message and waits for the echo. */
export function echo(ws: WebSocket, text: string, ms = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no echo of ${text} within ${ms} ms`)), ms);
    ws.once('message', (data) => {
      clearTimeout(timer);
      resolve(String(data));
    });
    ws.send(text);
  });
}

/** Closes a WebSocket and waits for its close event. */
export function closeWebSocket(ws: WebSocket, ms = 3_000): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      ws.terminate();
      resolve();
    }, ms);
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.close(1000, 'done');
  });
}

interface PromSample {
  value?: string;
  labels?: Record<string, string>;
}
interface PromFamily {
  name: string;
  metrics: PromSample[];
}
const parsePrometheusText = createRequire(import.meta.url)('parse-prometheus-text-format') as (text: string) => PromFamily[];

/** switchyard_rejections_total by reason, scraped from the admin listener's /metrics. */
export async function scrapeRejections(adminPort: number): Promise<Map<string, number>> {
  const reply = await httpRequest(adminPort, '/metrics');
  if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}: ${reply.body}`);
  // Histograms with labels confuse the parser; they are not needed here.
  const families = parsePrometheusText(reply.body.replace(/^# TYPE \S+ histogram\n/gm, ''));
  const rejections = new Map<string, number>();
  for (const sample of families.find((family) => family.name === 'switchyard_rejections_total')?.metrics ?? []) {
    const reason = sample.labels?.reason;
    if (reason !== undefined) rejections.set(reason, Number(sample.value));
  }
  return rejections;
}

/** How much each reason grew between two scrapes (reasons that did not grow are left out). */
export function grown(before: ReadonlyMap<string, number>, after: ReadonlyMap<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [reason, count] of after) {
    const delta = count - (before.get(reason) ?? 0);
    if (delta !== 0) out[reason] = delta;
  }
  return out;
}

/** A plain connection that sends nothing yet (held open to count against limits). */
export function connectPlain(port: number): Promise<net.Socket> {
  return connectWithHeader(port, []);
}
