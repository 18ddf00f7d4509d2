import { createHash, randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import net, { type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import tls, { type ConnectionOptions } from 'node:tls';
import { inflateRawSync } from 'node:zlib';
import { closeFrame, encodeFrame } from '../../proxy/frames/control-frames.js';
import type { ClientForm } from './client-forms.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

export interface ProbeTarget {
  readonly url: URL;
  readonly secure: boolean;
  readonly host: string;
  readonly port: number;
  /** Path and query sent in the request line. */
  readonly path: string;
}

export interface ProbeOptions {
  readonly origin?: string;
  readonly subprotocols: readonly string[];
  readonly headers: readonly (readonly [string, string])[];
  readonly tls: ConnectionOptions;
  readonly timeoutMs: number;
  /** How long to wait for an echo (or any frame) after sending. */
  readonly echoMs: number;
}

export interface Timings {
  dnsMs?: number;
  tcpMs?: number;
  tlsMs?: number;
  handshakeMs?: number;
  echoMs?: number;
}

/** What one handshake and its exchange showed. */
export interface SessionResult {
  /** HTTP/1.1 Upgrade, or HTTP/2 extended CONNECT (RFC 8441). */
  transport: 'http/1.1' | 'h2';
  timings: Timings;
  /**
   * Why this variant does not apply to the server (HTTP/2: ALPN did not choose
   * h2, or no SETTINGS_ENABLE_CONNECT_PROTOCOL): not a failure.
   */
  notApplicable?: string;
  /** The protocol ALPN chose (HTTP/2 variant), when any. */
  alpn?: string;
  /** HTTP/2: the error code's name when the server reset the CONNECT stream before answering. */
  resetCode?: string;
  /** The failure's class when it failed before an answer. */
  error?: { code: string; message: string; stage: 'dns' | 'tcp' | 'tls' | 'handshake' };
  status?: number;
  statusText?: string;
  responseHeaders?: Record<string, string>;
  /** 101 with the right Sec-WebSocket-Accept (HTTP/2: :status 200). */
  upgraded: boolean;
  acceptValid?: boolean;
  subprotocol?: string;
  extensions?: string;
  /** echoed: both messages came back; frames: other frames came; none: nothing within the wait. */
  echo?: 'echoed' | 'frames' | 'none';
  /** Close code the peer answered with, or undefined when it did not. */
  closeCode?: number;
  /** The connection ended before the exchange was over. */
  closedEarly?: boolean;
  /** The upgraded connection (a socket, or an HTTP/2 stream), kept open for the idle test when asked. */
  stream?: Duplex;
}

/** Parses ws/wss/http/https URLs into where to connect. */
export function probeTarget(text: string): ProbeTarget {
  const url = new URL(text);
  const scheme = url.protocol.replace(/:$/, '');
  if (!['ws', 'wss', 'http', 'https'].includes(scheme)) throw new Error(`expected a ws, wss, http or https URL, found "${text}"`);
  const secure = scheme === 'wss' || scheme === 'https';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return { url, secure, host, port: url.port === '' ? (secure ? 443 : 80) : Number(url.port), path: `${url.pathname || '/'}${url.search}` };
}

/**
 * One WebSocket handshake over HTTP/1.1 in a client's header form, then (when
 * upgraded) a text and a binary message and a clean close. Never throws:
 * failures are part of the result.
 */
export async function probeSession(target: ProbeTarget, form: ClientForm, options: ProbeOptions, keepOpen = false): Promise<SessionResult> {
  const result: SessionResult = { transport: 'http/1.1', timings: {}, upgraded: false };
  const socket = await openConnection(target, options, result, ['http/1.1']);
  if (!socket) return result;
  const reader = new FrameReader(socket, true);
  try {
    const key = randomBytes(16).toString('base64');
    const sentAt = performance.now();
    socket.write(handshakeRequest(target, form, key, options));
    const head = await reader.readHead(options.timeoutMs);
    result.timings.handshakeMs = round(performance.now() - sentAt);
    if (!head) {
      result.error = { code: 'ECLOSED', message: 'the connection closed before an answer', stage: 'handshake' };
      socket.destroy();
      return result;
    }
    Object.assign(result, parseHead(head));
    const accept = result.responseHeaders?.['sec-websocket-accept'];
    result.acceptValid = accept === createHash('sha1').update(key + GUID).digest('base64');
    result.upgraded = result.status === 101 && result.acceptValid;
    if (!result.upgraded) {
      socket.destroy();
      return result;
    }
    result.subprotocol = result.responseHeaders?.['sec-websocket-protocol'];
    result.extensions = result.responseHeaders?.['sec-websocket-extensions'];
    reader.deflate = /permessage-deflate/i.test(result.extensions ?? '');
    if (keepOpen) {
      result.stream = socket;
      return result;
    }
    await exchange(socket, reader, options, result);
  } catch (err) {
    result.error ??= { code: (err as NodeJS.ErrnoException).code ?? 'EPROBE', message: (err as Error).message, stage: 'handshake' };
  }
  socket.destroy();
  return result;
}

/**
 * DNS, then TCP, then (for wss/https) TLS offering `alpn`: the connection, or
 * undefined with the failure (and its stage) in `result.error`.
 */
export async function openConnection(target: ProbeTarget, options: ProbeOptions, result: SessionResult, alpn: readonly string[]): Promise<Socket | undefined> {
  let address: string;
  const started = performance.now();
  try {
    address = net.isIP(target.host) !== 0 ? target.host : (await lookup(target.host)).address;
    result.timings.dnsMs = round(performance.now() - started);
  } catch (err) {
    result.error = { code: (err as NodeJS.ErrnoException).code ?? 'EDNS', message: (err as Error).message, stage: 'dns' };
    return undefined;
  }
  try {
    return await connect(target, address, options, result.timings, alpn);
  } catch (err) {
    const stage = (err as { stage?: 'tcp' | 'tls' }).stage ?? 'tcp';
    result.error = { code: (err as NodeJS.ErrnoException).code ?? 'ECONNECT', message: (err as Error).message, stage };
    return undefined;
  }
}

/**
 * After the upgrade, on whatever carries the frames (a socket for HTTP/1.1, a
 * stream for HTTP/2): a text and a binary message, the echo, a clean close.
 */
export async function exchange(stream: Duplex, reader: FrameReader, options: ProbeOptions, result: SessionResult): Promise<void> {
  const text = `switchyard probe ${randomBytes(6).toString('hex')}`;
  const binary = randomBytes(16);
  const echoFrom = performance.now();
  stream.write(maskedFrame(0x1, Buffer.from(text)));
  stream.write(maskedFrame(0x2, binary));
  const first = await reader.nextMessage(options.echoMs);
  if (first === undefined) {
    result.echo = reader.ended ? undefined : 'none';
    if (reader.ended) result.closedEarly = true;
  } else {
    const second = first.opcode === 0x1 && first.payload.toString() === text ? await reader.nextMessage(options.echoMs) : undefined;
    const echoed = second !== undefined && second.opcode === 0x2 && second.payload.equals(binary);
    result.echo = echoed ? 'echoed' : 'frames';
    if (echoed) result.timings.echoMs = round(performance.now() - echoFrom);
  }
  if (reader.ended) {
    result.closedEarly = true;
    return;
  }
  stream.write(closeFrame(1000, '', true));
  result.closeCode = await reader.closeReply(options.echoMs);
}

function connect(target: ProbeTarget, address: string, options: ProbeOptions, timings: Timings, alpn: readonly string[]): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const raw = net.connect({ host: address, port: target.port });
    const timer = setTimeout(() => {
      raw.destroy();
      reject(Object.assign(new Error(`no TCP connection within ${options.timeoutMs} ms`), { code: 'ETIMEDOUT', stage: 'tcp' }));
    }, options.timeoutMs);
    raw.once('error', (err) => {
      clearTimeout(timer);
      reject(Object.assign(err, { stage: 'tcp' }));
    });
    raw.once('connect', () => {
      timings.tcpMs = round(performance.now() - started);
      if (!target.secure) {
        clearTimeout(timer);
        raw.removeAllListeners('error');
        resolve(raw);
        return;
      }
      const tlsStarted = performance.now();
      const servername = net.isIP(target.host) === 0 ? target.host : undefined;
      const secure = tls.connect({ ...options.tls, socket: raw, ...(servername ? { servername } : {}), ALPNProtocols: [...alpn] });
      raw.removeAllListeners('error');
      secure.once('error', (err) => {
        clearTimeout(timer);
        raw.destroy();
        reject(Object.assign(err, { stage: 'tls' }));
      });
      secure.once('secureConnect', () => {
        clearTimeout(timer);
        timings.tlsMs = round(performance.now() - tlsStarted);
        secure.removeAllListeners('error');
        resolve(secure);
      });
    });
  });
}

function handshakeRequest(target: ProbeTarget, form: ClientForm, key: string, options: ProbeOptions): string {
  const hostHeader = target.url.host;
  const lines = [`GET ${target.path} HTTP/1.1`, `Host: ${hostHeader}`];
  const origin = options.origin ?? `${target.secure ? 'https' : 'http'}://${hostHeader}`;
  for (const [name, value] of form.headers) {
    lines.push(`${name}: ${value}`);
    if (name.toLowerCase() === 'sec-websocket-version') {
      lines.push(`Sec-WebSocket-Key: ${key}`);
      if (form.origin) lines.push(`Origin: ${origin}`);
    }
  }
  if (!form.origin && options.origin !== undefined) lines.push(`Origin: ${options.origin}`);
  if (options.subprotocols.length > 0) lines.push(`Sec-WebSocket-Protocol: ${options.subprotocols.join(', ')}`);
  for (const [name, value] of options.headers) lines.push(`${name}: ${value}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}

function parseHead(head: string): Pick<SessionResult, 'status' | 'statusText' | 'responseHeaders'> {
  const [statusLine = '', ...lines] = head.split('\r\n');
  const match = /^HTTP\/\d(?:\.\d)? (\d{3}) ?(.*)$/.exec(statusLine);
  const responseHeaders: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    responseHeaders[name] = responseHeaders[name] === undefined ? value : `${responseHeaders[name]}, ${value}`;
  }
  return { status: match ? Number(match[1]) : 0, statusText: match?.[2] ?? statusLine, responseHeaders };
}

/** A client frame: masked, as RFC 6455 §5.3 requires. */
export function maskedFrame(opcode: number, payload: Buffer): Buffer {
  return encodeFrame(opcode, payload, true);
}

export interface Message {
  opcode: number;
  payload: Buffer;
}

/**
 * Reads server frames from a socket or an HTTP/2 stream (answers pings,
 * inflates permessage-deflate); over HTTP/1.1 the response head comes first.
 */
export class FrameReader {
  ended = false;
  deflate = false;
  private buffer: Buffer = Buffer.alloc(0);
  private readonly messages: Message[] = [];
  private closeCode: number | undefined;
  private closeSeen = false;
  private fragments: Buffer[] = [];
  private fragmentOpcode = 0;
  private fragmentCompressed = false;
  private wake: (() => void) | undefined;
  private headDone: boolean;

  /** `readsHead`: an HTTP/1.1 response head precedes the frames (readHead()). */
  constructor(private readonly stream: Duplex, readsHead: boolean) {
    this.headDone = !readsHead;
    stream.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      if (this.headDone) this.parseFrames();
      this.wake?.();
    });
    const end = (): void => {
      this.ended = true;
      this.wake?.();
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  }

  async readHead(timeoutMs: number): Promise<string | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end !== -1) {
        const head = this.buffer.toString('latin1', 0, end);
        this.buffer = this.buffer.subarray(end + 4);
        this.headDone = true;
        this.parseFrames();
        return head;
      }
      if (this.ended) return this.buffer.length > 0 ? this.buffer.toString('latin1') : undefined;
      if (!(await this.waitFor(deadline))) throw Object.assign(new Error(`no answer to the handshake within ${timeoutMs} ms`), { code: 'ETIMEDOUT' });
    }
  }

  async nextMessage(timeoutMs: number): Promise<Message | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const message = this.messages.shift();
      if (message) return message;
      if (this.ended || this.closeSeen) return undefined;
      if (!(await this.waitFor(deadline))) return undefined;
    }
  }

  async closeReply(timeoutMs: number): Promise<number | undefined> {
    const deadline = performance.now() + timeoutMs;
    while (!this.closeSeen && !this.ended) if (!(await this.waitFor(deadline))) break;
    return this.closeSeen ? this.closeCode ?? 1005 : undefined;
  }

  /** Resolves when the connection ends (true) or the deadline passes (false). */
  async waitForEnd(deadline: number): Promise<boolean> {
    while (!this.ended) if (!(await this.waitFor(deadline))) return false;
    return true;
  }

  private waitFor(deadline: number): Promise<boolean> {
    const left = deadline - performance.now();
    if (left <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wake = undefined;
        resolve(false);
      }, left);
      this.wake = () => {
        clearTimeout(timer);
        this.wake = undefined;
        resolve(true);
      };
    });
  }

  private parseFrames(): void {
    for (;;) {
      const buffer = this.buffer;
      if (buffer.length < 2) return;
      const b0 = buffer[0] as number;
      const b1 = buffer[1] as number;
      let length = b1 & 0x7f;
      let at = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        at = 4;
      } else if (length === 127) {
        if (buffer.length < 10) return;
        length = Number(buffer.readBigUInt64BE(2));
        at = 10;
      }
      if (b1 & 0x80) at += 4;
      if (buffer.length < at + length) return;
      let payload: Buffer = Buffer.from(buffer.subarray(at, at + length));
      if (b1 & 0x80) {
        const mask = buffer.subarray(at - 4, at);
        for (let i = 0; i < payload.length; i++) payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
      }
      this.buffer = buffer.subarray(at + length);
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode === 0x9) {
        this.stream.write(maskedFrame(0xa, payload));
      } else if (opcode === 0x8) {
        this.closeSeen = true;
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : undefined;
      } else if (opcode === 0x0 || opcode === 0x1 || opcode === 0x2) {
        if (opcode !== 0x0) {
          this.fragmentOpcode = opcode;
          this.fragmentCompressed = (b0 & 0x40) !== 0;
          this.fragments = [];
        }
        this.fragments.push(payload);
        if (fin) {
          payload = Buffer.concat(this.fragments);
          if (this.fragmentCompressed && this.deflate) {
            try {
              payload = inflateRawSync(Buffer.concat([payload, Buffer.from([0x00, 0x00, 0xff, 0xff])]));
            } catch {
              // Left as it came: the comparison then fails, which is what it is.
            }
          }
          this.messages.push({ opcode: this.fragmentOpcode, payload });
          this.fragments = [];
        }
      }
    }
  }
}

/** Holds an upgraded connection (socket or stream) without sending anything, until it ends or `maxMs` passes. */
export async function holdIdle(socket: Duplex, maxMs: number, progress: (elapsedMs: number) => void): Promise<{ endedAfterMs: number | undefined }> {
  const started = performance.now();
  let ended: number | undefined;
  const onEnd = (): void => { ended ??= performance.now() - started; };
  socket.on('end', onEnd);
  socket.on('close', onEnd);
  socket.on('error', onEnd);
  // The session's frame reader still answers pings from hops on the way.
  const tick = Math.min(1_000, Math.max(100, maxMs / 20));
  while (ended === undefined && performance.now() - started < maxMs) {
    await new Promise((resolve) => setTimeout(resolve, tick));
    if (ended === undefined) progress(performance.now() - started);
  }
  socket.destroy();
  return { endedAfterMs: ended === undefined ? undefined : round(ended) };
}

export function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
