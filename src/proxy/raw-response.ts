import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ServerResponse } from 'node:http';
import http2, { type Http2ServerResponse } from 'node:http2';
import type { ProxyError } from '../errors.js';

/**
 * Writes a complete HTTP/1.1 response straight onto a socket that no ServerResponse
 * owns (an upgrade request, a parse error) and ends the connection. The ws library
 * calls this abortHandshake.
 */
export function writeRawResponse(socket: Duplex, status: number, body: string, extraHeaders: readonly string[] = []): void {
  const text = `${body}\n`;
  writeRawAnswer(socket, status, ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(Buffer.byteLength(text)), ...extraHeaders], text);
}

/** Writes exactly these headers (plus Connection: close) and body, then ends the connection. */
export function writeRawAnswer(socket: Duplex, status: number, headers: readonly string[], body: string): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  socket.end(`${head}Connection: close\r\n\r\n${body}`);
  destroyAfterGrace(socket);
}

const CLOSE_GRACE_MS = 5_000;

/**
 * After end(): a peer that never reads or never sends its FIN must not keep the
 * socket open, so it is destroyed after a short grace period.
 */
export function destroyAfterGrace(socket: Duplex): void {
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * Answers with the error's status when no header was sent yet; otherwise the only
 * honest signal left is to cut the response short. A 5xx also ends keep-alive.
 */
export function respondWithError(res: ServerResponse, error: ProxyError): void {
  if (res.headersSent || res.destroyed) {
    // HTTP/2: a plain destroy resets with NO_ERROR, which a client reads as a
    // complete response; an error code says it was cut.
    const stream = (res as unknown as Partial<Http2ServerResponse>).stream;
    if (stream) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    else res.destroy();
    return;
  }
  const body = `${error.status} ${error.message}\n`;
  if (error.status >= 500 || error.source === 'client') res.shouldKeepAlive = false;
  res.writeHead(error.status, errorHeaders(error, ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(Buffer.byteLength(body))]));
  res.end(body);
}

/** X-Switchyard-Error, and Retry-After when the error says when to come back. */
export function errorHeaders(error: ProxyError, base: string[] = []): string[] {
  base.push('X-Switchyard-Error', error.code);
  if (error.retryAfter !== undefined) base.push('Retry-After', String(error.retryAfter));
  return base;
}
