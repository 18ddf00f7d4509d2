import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** A masked client frame (RFC 6455 §5.2), for raw-socket tests. */
export function clientFrame(opcode: number, payload: Buffer | string, fin = true): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const mask = randomBytes(4);
  const length = data.length;
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = Buffer.alloc(headerLength + 4 + length);
  frame[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) frame[1] = 0x80 | length;
  else if (length < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  mask.copy(frame, headerLength);
  for (let i = 0; i < length; i++) frame[headerLength + 4 + i] = data[i]! ^ mask[i % 4]!;
  return frame;
}

/** The handshake bytes a client sends, with a caller-chosen Connection/Upgrade form. */
export function handshakeRequest(path: string, host: string, options: { connection?: string; upgrade?: string; extra?: string[] } = {}): string {
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}`,
    `Connection: ${options.connection ?? 'Upgrade'}`,
    `Upgrade: ${options.upgrade ?? 'websocket'}`,
    'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    ...(options.extra ?? []),
  ];
  return `${lines.join('\r\n')}\r\n\r\n`;
}

/** A backend's side of the handshake written by hand: the 101 with the right Accept, nothing else (the socket is the test's). */
export function acceptByHand(req: IncomingMessage, socket: Socket): void {
  const accept = createHash('sha1').update(`${String(req.headers['sec-websocket-key'])}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
}
