/**
 * A small client for WebSockets over HTTP/2 (RFC 8441 extended CONNECT) with
 * node:http2, for tests that need a few short messages each way: open the
 * stream, send masked frames, read the server's (unmasked) frames back.
 */
import http2 from 'node:http2';
import { withTimeout } from './cli.js';
import { clientFrame } from './websocket-frames.js';

export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;

export interface WsMessage {
  readonly opcode: number;
  readonly data: Buffer;
}

/**
 * Server frames from a stream's DATA, split anywhere across chunks (7, 16 and
 * 64-bit lengths), fragments joined; messages queue for next().
 */
export class ServerFrames {
  private buffer: Buffer = Buffer.alloc(0);
  private fragments: Buffer[] = [];
  private fragmentOpcode = -1;
  private readonly queue: WsMessage[] = [];
  private waiter: ((message: WsMessage | Error) => void) | undefined;
  /** Protocol problems seen (a masked server frame, a stray continuation). */
  readonly errors: string[] = [];
  ended = false;

  constructor(stream: http2.ClientHttp2Stream) {
    stream.on('data', (chunk: Buffer) => this.push(chunk));
    const finish = (): void => {
      this.ended = true;
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter?.(new Error(`the stream ended before the next message (rst code ${stream.rstCode ?? 'none'})`));
    };
    stream.on('end', finish);
    stream.on('close', finish);
  }

  /** The next message; rejects on timeout or when the stream ends first. */
  next(ms = 3_000): Promise<WsMessage> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.ended) return Promise.reject(new Error('the stream has ended: no more messages'));
    if (this.waiter) return Promise.reject(new Error('one next() at a time'));
    return withTimeout(new Promise<WsMessage>((resolve, reject) => {
      this.waiter = (message) => (message instanceof Error ? reject(message) : resolve(message));
    }), ms, 'a WebSocket message over HTTP/2').finally(() => { this.waiter = undefined; });
  }

  private push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.buffer.length < 2) return;
      const b0 = this.buffer[0]!;
      const b1 = this.buffer[1]!;
      const masked = (b1 & 0x80) !== 0;
      if (masked) this.errors.push('a masked frame from the server');
      const len7 = b1 & 0x7f;
      const lengthBytes = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
      const headerLength = 2 + lengthBytes + (masked ? 4 : 0);
      if (this.buffer.length < headerLength) return;
      const length = len7 === 126 ? this.buffer.readUInt16BE(2) : len7 === 127 ? Number(this.buffer.readBigUInt64BE(2)) : len7;
      if (this.buffer.length < headerLength + length) return;
      let payload = Buffer.from(this.buffer.subarray(headerLength, headerLength + length));
      if (masked) {
        const mask = this.buffer.subarray(2 + lengthBytes, headerLength);
        payload = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
      }
      this.buffer = this.buffer.subarray(headerLength + length);
      this.frame((b0 & 0x80) !== 0, b0 & 0x0f, payload);
    }
  }

  private frame(fin: boolean, opcode: number, payload: Buffer): void {
    if (opcode >= 0x8) {
      this.deliver({ opcode, data: payload });
      return;
    }
    if (opcode === 0) {
      if (this.fragmentOpcode < 0) this.errors.push('a continuation frame outside a message');
    } else {
      this.fragmentOpcode = opcode;
      this.fragments = [];
    }
    this.fragments.push(payload);
    if (!fin) return;
    const message = { opcode: this.fragmentOpcode, data: Buffer.concat(this.fragments) };
    this.fragments = [];
    this.fragmentOpcode = -1;
    this.deliver(message);
  }

  private deliver(message: WsMessage): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) waiter(message);
    else this.queue.push(message);
  }
}

/** An HTTP/2 session to https://127.0.0.1:PORT, once the server's SETTINGS have arrived. */
export async function h2Connect(port: number, options: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`https://127.0.0.1:${port}`, options);
  const failed = new Promise<never>((_resolve, reject) => session.once('error', reject));
  failed.catch(() => undefined);
  session.on('error', () => undefined);
  try {
    await withTimeout(Promise.race([new Promise<void>((resolve) => session.once('remoteSettings', () => resolve())), failed]), 5_000, 'the server SETTINGS');
  } catch (err) {
    session.destroy();
    throw err;
  }
  return session;
}

/** Destroys the session and waits for its 'close'. */
export function closeSession(session: http2.ClientHttp2Session): Promise<void> {
  if (session.destroyed) return Promise.resolve();
  return withTimeout(new Promise<void>((resolve) => {
    session.once('close', () => resolve());
    session.destroy();
  }), 5_000, 'the HTTP/2 session to close').catch(() => undefined);
}

export interface H2WebSocket {
  readonly stream: http2.ClientHttp2Stream;
  readonly status: number;
  readonly headers: http2.IncomingHttpHeaders;
  readonly frames: ServerFrames;
  /** Sends one masked text message. */
  sendText(text: string): void;
  /** Sends a text message and resolves with the next message's text (which must be text). */
  echo(text: string, ms?: number): Promise<string>;
}

/** Opens `:method CONNECT, :protocol websocket` on `path` and resolves with the response (any status). */
export function openH2WebSocket(session: http2.ClientHttp2Session, path: string, authority: string, ms = 5_000): Promise<H2WebSocket> {
  const stream = session.request({
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':path': path,
    ':scheme': 'https',
    ':authority': authority,
    'sec-websocket-version': '13',
  });
  stream.on('error', () => undefined);
  return withTimeout(new Promise<H2WebSocket>((resolve, reject) => {
    stream.once('response', (headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader) => {
      // Attached in this callback, so no DATA is missed.
      const frames = new ServerFrames(stream);
      const ws: H2WebSocket = {
        stream,
        status: Number(headers[':status']),
        headers,
        frames,
        sendText: (text) => void stream.write(clientFrame(OP_TEXT, text)),
        echo: async (text, timeout = 3_000) => {
          ws.sendText(text);
          const reply = await frames.next(timeout);
          if (reply.opcode !== OP_TEXT) throw new Error(`expected a text message in reply to ${JSON.stringify(text)}, got opcode ${reply.opcode}`);
          return reply.data.toString('utf8');
        },
      };
      resolve(ws);
    });
    stream.once('close', () => reject(new Error(`the CONNECT stream closed without a response (rst code ${stream.rstCode})`)));
  }), ms, `the response to CONNECT ${path}`).catch((err: unknown) => {
    stream.destroy();
    throw err;
  });
}

/** A plain GET on an open session: status, headers and body. */
export function h2Get(session: http2.ClientHttp2Session, path: string, authority: string, ms = 5_000): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  const stream = session.request({ ':method': 'GET', ':path': path, ':scheme': 'https', ':authority': authority });
  stream.on('error', () => undefined);
  return withTimeout(new Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    let headers: http2.IncomingHttpHeaders = {};
    let body = '';
    stream.setEncoding('utf8');
    stream.once('response', (h) => { headers = h; });
    stream.on('data', (chunk: string) => { body += chunk; });
    stream.once('end', () => resolve({ status: Number(headers[':status']), headers, body }));
    stream.once('close', () => {
      if (!stream.readableEnded) reject(new Error(`GET ${path} over HTTP/2: the stream closed before its end (rst code ${stream.rstCode})`));
    });
  }), ms, `GET ${path} over HTTP/2`).catch((err: unknown) => {
    stream.destroy();
    throw err;
  });
}
