import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ServerResponse } from 'node:http';
import type { ProxyError } from '../errors.js';

/**
 * Writes a complete HTTP/1.1 response straight onto a socket that no ServerResponse
 * owns (an upgrade request, a parse error) and ends the connection. The ws library
 * calls this abortHandshake.
 */
export function writeRawResponse(socket: Duplex, status: number, body: string, extraHeaders: readonly string[] = []): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const reason = STATUS_CODES[status] ?? 'Unknown';
  const text = `${body}\n`;
  let head = `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n`;
  for (let i = 0; i + 1 < extraHeaders.length; i += 2) head += `${extraHeaders[i]}: ${extraHeaders[i + 1]}\r\n`;
  socket.end(`${head}\r\n${text}`);
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
    res.destroy();
    return;
  }
  const body = `${error.status} ${error.message}\n`;
  if (error.status >= 500 || error.source === 'client') res.shouldKeepAlive = false;
  res.writeHead(error.status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'X-Switchyard-Error': error.code });
  res.end(body);
}
