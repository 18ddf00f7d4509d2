#!/usr/bin/env node
// The frame tracker alone (no sockets): CPU per MB of 64 KiB masked frames fed in
// 64 KiB chunks, and per 64-byte frame. Run after `npm run build`:
//   node bench/tracker-cost.js

import { FrameTracker } from '../dist/src/proxy/frames/frame-tracker.js';
// 64 KiB masked binary frames (header 14 bytes), streamed in 64 KiB chunks, 256 MiB in total.
const payload = 65536, frame = Buffer.alloc(14 + payload);
frame[0] = 0x82; frame[1] = 0x80 | 127; frame.writeUInt32BE(0, 2); frame.writeUInt32BE(payload, 6); frame.writeUInt32BE(0x01020304, 10);
const stream = Buffer.concat(Array.from({ length: 64 }, () => frame));
const chunks = []; for (let i = 0; i < stream.length; i += 65536) chunks.push(stream.subarray(i, i + 65536));
for (let rep = 0; rep < 3; rep++) {
  const t = new FrameTracker({ expectMasked: true });
  const t0 = process.hrtime.bigint();
  let mb = 0;
  for (let k = 0; k < 64; k++) { for (const c of chunks) t.feed(c); mb += stream.length / 1e6; }
  const us = Number(process.hrtime.bigint() - t0) / 1000;
  console.log(`64 KiB frames: ${(us / mb).toFixed(2)} µs per MB, messages ${t.messages}, malformed ${t.malformed}`);
}
// 64-byte frames (echo-like), one frame per chunk.
const small = Buffer.alloc(6 + 64); small[0] = 0x82; small[1] = 0x80 | 64;
const t = new FrameTracker({ expectMasked: true });
const t0 = process.hrtime.bigint();
for (let i = 0; i < 5_000_000; i++) t.feed(small);
console.log(`64 B frames: ${(Number(process.hrtime.bigint() - t0) / 5_000_000).toFixed(1)} ns per frame, messages ${t.messages}`);
