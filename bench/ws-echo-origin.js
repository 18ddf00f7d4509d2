#!/usr/bin/env node
// A small, fast WebSocket echo origin for the bench: raw TCP, no library, no
// extensions. It answers an Upgrade with 101 and echoes every data frame back
// (same FIN/opcode, unmasked), answers ping with pong and close with close.
// A plain GET gets "hello". It runs as its own process, one per bench run,
// shared by every target.
//
//   node bench/ws-echo-origin.js --port 0     prints "listening PORT" once bound

import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const MAX_HEADER = 16 * 1024;
const acceptCache = new Map();

function acceptFor(key) {
  let accept = acceptCache.get(key);
  if (accept === undefined) {
    accept = createHash('sha1').update(key + GUID).digest('base64');
    if (acceptCache.size > 10_000) acceptCache.clear();
    acceptCache.set(key, accept);
  }
  return accept;
}

/** XORs `payload` in place with the 4-byte mask (payload starts at offset 0 of its own ArrayBuffer when large). */
function unmask(payload, mask) {
  const length = payload.length;
  let i = 0;
  if (length >= 64 && payload.byteOffset % 4 === 0) {
    const words = new Uint32Array(payload.buffer, payload.byteOffset, length >>> 2);
    const maskWord = mask.readUInt32LE(0);
    for (let w = 0; w < words.length; w++) words[w] ^= maskWord;
    i = words.length << 2;
  }
  for (; i < length; i++) payload[i] ^= mask[i & 3];
}

function frameHeader(first, length) {
  if (length < 126) return Buffer.from([first, length]);
  if (length < 65536) {
    const header = Buffer.allocUnsafe(4);
    header[0] = first;
    header[1] = 126;
    header.writeUInt16BE(length, 2);
    return header;
  }
  const header = Buffer.allocUnsafe(10);
  header[0] = first;
  header[1] = 127;
  header.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  header.writeUInt32BE(length >>> 0, 6);
  return header;
}

class Conn {
  constructor(socket) {
    this.socket = socket;
    this.upgraded = false;
    this.head = null; // bytes of an incomplete request head or frame header
    this.first = 0; // current frame: FIN + opcode byte
    this.mask = null;
    this.payload = null; // payload being filled
    this.filled = 0;
    this.closing = false;
  }

  onData(chunk) {
    if (!this.upgraded) return this.onHead(chunk);
    let offset = 0;
    while (offset < chunk.length) {
      if (this.payload) {
        const take = Math.min(this.payload.length - this.filled, chunk.length - offset);
        chunk.copy(this.payload, this.filled, offset, offset + take);
        this.filled += take;
        offset += take;
        if (this.filled === this.payload.length) this.frameDone();
        continue;
      }
      // Frame header: need at least 2 bytes, then up to 14.
      let buf = chunk;
      let start = offset;
      if (this.head) {
        buf = Buffer.concat([this.head, chunk.subarray(offset)]);
        start = 0;
        this.head = null;
      }
      const avail = buf.length - start;
      if (avail < 2) return this.keep(buf, start);
      const b1 = buf[start + 1];
      const len7 = b1 & 0x7f;
      const masked = (b1 & 0x80) !== 0;
      const extra = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
      const headerLen = 2 + extra + (masked ? 4 : 0);
      if (avail < headerLen) return this.keep(buf, start);
      let length = len7;
      if (len7 === 126) length = buf.readUInt16BE(start + 2);
      else if (len7 === 127) length = buf.readUInt32BE(start + 2) * 2 ** 32 + buf.readUInt32BE(start + 6);
      this.first = buf[start];
      this.mask = masked ? Buffer.from(buf.subarray(start + 2 + extra, start + headerLen)) : null;
      this.payload = length >= 1024 ? Buffer.allocUnsafeSlow(length) : Buffer.allocUnsafe(length);
      this.filled = 0;
      // Continue with the rest of `buf` (which may be a concatenation).
      if (buf !== chunk) {
        chunk = buf;
      }
      offset = start + headerLen;
      if (length === 0) this.frameDone();
    }
  }

  keep(buf, start) {
    this.head = Buffer.from(buf.subarray(start));
  }

  frameDone() {
    const payload = this.payload;
    this.payload = null;
    if (this.mask) unmask(payload, this.mask);
    const opcode = this.first & 0x0f;
    if (this.closing) return;
    if (opcode === 0x8) {
      this.closing = true;
      const body = payload.length >= 2 ? payload.subarray(0, 2) : Buffer.alloc(0);
      this.socket.end(Buffer.concat([frameHeader(0x88, body.length), body]));
      return;
    }
    if (opcode === 0xa) return; // pong
    const first = opcode === 0x9 ? (this.first & 0xf0) | 0xa : this.first;
    if (payload.length < 4096) {
      this.socket.write(Buffer.concat([frameHeader(first, payload.length), payload]));
    } else {
      this.socket.cork();
      this.socket.write(frameHeader(first, payload.length));
      this.socket.write(payload);
      this.socket.uncork();
    }
  }

  onHead(chunk) {
    const buf = this.head ? Buffer.concat([this.head, chunk]) : chunk;
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > MAX_HEADER) this.socket.destroy();
      else this.head = Buffer.from(buf);
      return;
    }
    this.head = null;
    const text = buf.toString('latin1', 0, end);
    const rest = buf.subarray(end + 4);
    const key = /\r\nsec-websocket-key:[ \t]*([^\r\n]+?)[ \t]*(?:\r\n|$)/i.exec(text);
    const upgrade = /\r\nupgrade:[ \t]*websocket/i.test(text);
    if (!upgrade || !key) {
      // Plain HTTP: a small fixed body, keep-alive; pipelining is not needed here.
      this.socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 5\r\n\r\nhello');
      if (rest.length) this.onHead(rest);
      return;
    }
    this.upgraded = true;
    this.socket.setNoDelay(true);
    this.socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${acceptFor(key[1])}\r\n\r\n`,
    );
    if (rest.length) this.onData(rest);
  }
}

const { values } = parseArgs({ options: { port: { type: 'string', default: '0' }, host: { type: 'string', default: '127.0.0.1' } } });
const server = createServer({ noDelay: true }, (socket) => {
  const conn = new Conn(socket);
  socket.on('data', (chunk) => conn.onData(chunk));
  socket.on('error', () => {});
});
server.on('error', (err) => {
  console.error(`ws-echo-origin: ${err.message}`);
  process.exit(1);
});
server.listen({ port: Number(values.port), host: values.host, backlog: 4096 }, () => {
  console.log(`listening ${server.address().port}`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
