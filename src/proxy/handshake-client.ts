import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerResponse, Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { ProxyError } from '../errors.js';
import { destroyAfterGrace, errorHeaders, writeRawResponse } from './raw-response.js';

/**
 * The client half of a WebSocket handshake. Over HTTP/1.1 it is the upgraded
 * connection: the 101 and any refusal are written as raw bytes. Over HTTP/2
 * (RFC 8441) it is the extended-CONNECT stream: acceptance is a 200 response and
 * the stream then carries the frames.
 */
export interface HandshakeClient {
  /** What the tunnel pipes to and from; its 'close' and 'end' end the handshake. */
  readonly stream: Socket | Http2Stream;
  /** The backend said 101: tell the client, with the backend's headers. */
  accept(statusMessage: string, headers: readonly string[]): void;
  /** The backend answered something else: relay it, then close. */
  refuse(status: number, statusMessage: string, headers: readonly string[], body: IncomingMessage): void;
  /** No backend answer to relay: answer with this error. */
  fail(error: ProxyError): void;
}

export class Http1HandshakeClient implements HandshakeClient {
  constructor(readonly stream: Socket) {}

  accept(statusMessage: string, headers: readonly string[]): void {
    let head = `HTTP/1.1 101 ${statusMessage || 'Switching Protocols'}\r\n`;
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    this.stream.write(`${head}\r\n`);
  }

  refuse(status: number, statusMessage: string, headers: readonly string[], body: IncomingMessage): void {
    const client = this.stream;
    let head = `HTTP/1.1 ${status} ${statusMessage}\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (name.toLowerCase() === 'content-length') continue;
      head += `${name}: ${headers[i + 1]}\r\n`;
    }
    // The body is relayed close-delimited (no Content-Length, Connection: close),
    // which stays correct whatever framing the backend used.
    client.write(`${head}Connection: close\r\n\r\n`);
    body.pipe(client);
    body.on('error', () => client.destroy());
    body.on('end', () => destroyAfterGrace(client));
  }

  fail(error: ProxyError): void {
    writeRawResponse(this.stream, error.status, `${error.status} ${error.message}`, errorHeaders(error));
  }
}

/** Headers a 200 to an extended CONNECT must not carry (RFC 8441 §5, RFC 9113 §8.2.2). */
const NOT_IN_HTTP2 = new Set(['sec-websocket-accept', 'connection', 'upgrade', 'keep-alive', 'transfer-encoding', 'proxy-connection']);

export class Http2HandshakeClient implements HandshakeClient {
  readonly stream: Http2Stream;

  constructor(private readonly response: Http2ServerResponse) {
    this.stream = response.stream;
  }

  accept(_statusMessage: string, headers: readonly string[]): void {
    this.response.writeHead(200, withoutHttp1Only(headers));
  }

  refuse(status: number, _statusMessage: string, headers: readonly string[], body: IncomingMessage): void {
    const response = this.response;
    response.writeHead(status, withoutHttp1Only(headers));
    body.pipe(response);
    body.on('error', () => response.stream.destroy());
  }

  fail(error: ProxyError): void {
    const response = this.response;
    if (response.headersSent || response.stream.destroyed) {
      response.stream.destroy();
      return;
    }
    const body = `${error.status} ${error.message}\n`;
    response.writeHead(error.status, withoutHttp1Only(errorHeaders(error, ['content-type', 'text/plain; charset=utf-8'])));
    response.end(body);
  }
}

/** HTTP/2 header object (lower-case names, repeated ones as lists) without HTTP/1-only fields. */
function withoutHttp1Only(headers: readonly string[]): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = (headers[i] as string).toLowerCase();
    if (NOT_IN_HTTP2.has(name)) continue;
    const value = headers[i + 1] as string;
    const known = out[name];
    out[name] = known === undefined ? value : Array.isArray(known) ? [...known, value] : [known, value];
  }
  return out;
}
