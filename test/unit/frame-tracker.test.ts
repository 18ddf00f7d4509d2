import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FrameTracker } from '../../src/proxy/frames/frame-tracker.js';

const TEXT = 0x1;
const BINARY = 0x2;
const CONTINUATION = 0x0;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

/** The masking key from RFC 6455 §5.7: every byte non-zero, so an unmasking mistake shows. */
const KEY = [0x37, 0xfa, 0x21, 0x3d] as const;

interface FrameOptions {
  fin?: boolean;
  rsv?: number;
  mask?: boolean;
  /** Force a length encoding (defaults to the shortest). */
  lengthForm?: 7 | 16 | 64;
}

/** A small RFC 6455 frame encoder for the tests. */
function frame(opcode: number, payload: Buffer | string = Buffer.alloc(0), options: FrameOptions = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const n = data.length;
  const masked = options.mask ?? false;
  const form = options.lengthForm ?? (n < 126 ? 7 : n < 65536 ? 16 : 64);
  const extended = form === 7 ? 0 : form === 16 ? 2 : 8;
  const header = Buffer.alloc(2 + extended + (masked ? 4 : 0));
  header[0] = ((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode;
  header[1] = (masked ? 0x80 : 0) | (form === 7 ? n : form === 16 ? 126 : 127);
  if (form === 16) header.writeUInt16BE(n, 2);
  else if (form === 64) header.writeBigUInt64BE(BigInt(n), 2);
  if (!masked) return Buffer.concat([header, data]);
  const body = Buffer.alloc(n);
  for (let i = 0; i < 4; i++) header[2 + extended + i] = KEY[i] as number;
  for (let i = 0; i < n; i++) body[i] = (data[i] as number) ^ (KEY[i & 3] as number);
  return Buffer.concat([header, body]);
}

function closePayload(code: number, reason = ''): Buffer {
  const reasonBytes = Buffer.from(reason, 'utf8');
  const payload = Buffer.alloc(2 + reasonBytes.length);
  payload.writeUInt16BE(code, 0);
  reasonBytes.copy(payload, 2);
  return payload;
}

function bytes(n: number, seed = 0): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

function snapshot(tracker: FrameTracker) {
  return {
    messages: tracker.messages,
    frames: tracker.frames,
    pings: tracker.pings,
    pongs: tracker.pongs,
    payloadBytes: tracker.payloadBytes,
    closeCode: tracker.closeCode,
    closeReason: tracker.closeReason,
    closeSeen: tracker.closeSeen,
    malformed: tracker.malformed,
    atFrameBoundary: tracker.atFrameBoundary,
    atMessageBoundary: tracker.atMessageBoundary,
    currentMessageBytes: tracker.currentMessageBytes,
    messageTooBig: tracker.messageTooBig,
  };
}
type Snapshot = ReturnType<typeof snapshot>;

const INITIAL: Snapshot = {
  messages: 0, frames: 0, pings: 0, pongs: 0, payloadBytes: 0,
  closeCode: undefined, closeReason: undefined, closeSeen: false, malformed: undefined,
  atFrameBoundary: true, atMessageBoundary: true, currentMessageBytes: 0, messageTooBig: false,
};

type Options = ConstructorParameters<typeof FrameTracker>[0];

function track(chunks: readonly Buffer[], options?: Options): FrameTracker {
  const tracker = new FrameTracker(options);
  for (const chunk of chunks) tracker.feed(chunk);
  return tracker;
}

/** Feeds the stream whole, split in two at every offset, and byte by byte; every way must give `expected`. */
function assertEverySplit(stream: Buffer, expected: Snapshot, options?: Options): void {
  assert.deepEqual(snapshot(track([stream], options)), expected, 'whole');
  for (let i = 0; i <= stream.length; i++) {
    const actual = snapshot(track([stream.subarray(0, i), stream.subarray(i)], options));
    assert.deepEqual(actual, expected, `split at ${i}`);
  }
  const tracker = new FrameTracker(options);
  for (let i = 0; i < stream.length; i++) tracker.feed(stream.subarray(i, i + 1));
  assert.deepEqual(snapshot(tracker), expected, 'byte by byte');
}

test('a new tracker is at a frame and a message boundary with nothing counted', () => {
  assert.deepEqual(snapshot(new FrameTracker()), INITIAL);
  assert.deepEqual(snapshot(track([Buffer.alloc(0)])), INITIAL);
});

test('counts a single unmasked text frame', () => {
  assert.deepEqual(snapshot(track([frame(TEXT, 'hello')])), { ...INITIAL, messages: 1, frames: 1, payloadBytes: 5 });
});

test('a stream of several frames gives the same result split at every offset and byte by byte', () => {
  for (const mask of [false, true]) {
    const stream = Buffer.concat([
      frame(TEXT, 'hi', { mask }),
      frame(BINARY, bytes(200), { mask }), // 16-bit length
      frame(PING, 'p', { mask }),
      frame(TEXT, 'frag-1 ', { mask, fin: false }),
      frame(PONG, '', { mask }),
      frame(CONTINUATION, bytes(130), { mask, fin: false }),
      frame(PING, bytes(125), { mask }),
      frame(CONTINUATION, 'end', { mask }),
      frame(BINARY, bytes(70), { mask, lengthForm: 64 }), // 64-bit length, non-minimal but legal to parse
      frame(BINARY, '', { mask }),
      frame(CLOSE, closePayload(4001, 'bye ünïcødé'), { mask }),
    ]);
    assertEverySplit(stream, {
      ...INITIAL,
      messages: 5, frames: 7, pings: 2, pongs: 1, payloadBytes: 2 + 200 + 7 + 130 + 3 + 70,
      closeCode: 4001, closeReason: 'bye ünïcødé', closeSeen: true,
    }, { expectMasked: mask });
  }
});

test('every pair of split points (three chunks) across headers and a close payload', () => {
  const stream = Buffer.concat([
    frame(TEXT, 'a', { mask: true }),
    frame(BINARY, bytes(126), { mask: true }),
    frame(PING, 'x', { mask: true }),
    frame(CLOSE, closePayload(1001, 'going'), { mask: true }),
  ]);
  const expected = {
    ...INITIAL, messages: 2, frames: 2, pings: 1, payloadBytes: 127, closeCode: 1001, closeReason: 'going', closeSeen: true,
  };
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j++) {
      const chunks = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)];
      assert.deepEqual(snapshot(track(chunks, { expectMasked: true })), expected, `split at ${i} and ${j}`);
    }
  }
});

test('payload sizes around the length encodings: 0, 1, 125, 126, 65535, 65536 and 70000 bytes', () => {
  const cases: [size: number, headerLength: number][] = [[0, 2], [1, 2], [125, 2], [126, 4], [65535, 4], [65536, 10], [70000, 10]];
  for (const [size, headerLength] of cases) {
    for (const mask of [false, true]) {
      const encoded = frame(BINARY, bytes(size), { mask });
      const header = headerLength + (mask ? 4 : 0);
      assert.equal(encoded.length, header + size, 'encoder sanity');
      const done = { ...INITIAL, messages: 1, frames: 1, payloadBytes: size };

      assert.deepEqual(snapshot(track([encoded])), done, `${size} whole`);
      // Split at every offset inside and just after the header, and near the end.
      const offsets = new Set<number>();
      for (let i = 0; i <= Math.min(encoded.length, header + 3); i++) offsets.add(i);
      for (let i = Math.max(0, encoded.length - 3); i <= encoded.length; i++) offsets.add(i);
      for (const i of offsets) {
        assert.deepEqual(snapshot(track([encoded.subarray(0, i), encoded.subarray(i)])), done, `${size} masked=${mask} split at ${i}`);
      }

      if (size > 0) {
        const partial = track([encoded.subarray(0, encoded.length - 1)]);
        assert.deepEqual(snapshot(partial), {
          ...INITIAL, payloadBytes: size - 1, currentMessageBytes: size, atFrameBoundary: false, atMessageBoundary: false,
        }, `${size} all but the last byte`);
        partial.feed(encoded.subarray(encoded.length - 1));
        assert.deepEqual(snapshot(partial), done);
      }
    }
  }
});

test('a 70000-byte payload spread over many small chunks is skipped, not misread as headers', () => {
  // The payload is full of bytes that would be invalid headers (0x83 = FIN + reserved opcode 3).
  const payload = Buffer.alloc(70000, 0x83);
  const stream = Buffer.concat([frame(BINARY, payload, { mask: true }), frame(TEXT, 'after', { mask: true })]);
  const tracker = new FrameTracker({ expectMasked: true });
  for (let i = 0; i < stream.length; i += 1000) tracker.feed(stream.subarray(i, i + 1000));
  assert.deepEqual(snapshot(tracker), { ...INITIAL, messages: 2, frames: 2, payloadBytes: 70005 });
});

test('a fragmented message with pings and pongs interleaved is one message of three frames', () => {
  const parts = [
    frame(TEXT, 'one ', { fin: false }),
    frame(PING, 'ping'),
    frame(CONTINUATION, 'two ', { fin: false }),
    frame(PONG, 'pong'),
    frame(CONTINUATION, 'three'),
  ];
  const tracker = new FrameTracker({ expectMasked: false });
  const seen: Snapshot[] = [];
  for (const part of parts) {
    tracker.feed(part);
    seen.push(snapshot(tracker));
  }
  const inside = { ...INITIAL, atMessageBoundary: false };
  assert.deepEqual(seen, [
    { ...inside, frames: 1, payloadBytes: 4, currentMessageBytes: 4 },
    { ...inside, frames: 1, payloadBytes: 4, currentMessageBytes: 4, pings: 1 },
    { ...inside, frames: 2, payloadBytes: 8, currentMessageBytes: 8, pings: 1 },
    { ...inside, frames: 2, payloadBytes: 8, currentMessageBytes: 8, pings: 1, pongs: 1 },
    { ...INITIAL, messages: 1, frames: 3, payloadBytes: 13, pings: 1, pongs: 1 },
  ]);
  assertEverySplit(Buffer.concat(parts), { ...INITIAL, messages: 1, frames: 3, payloadBytes: 13, pings: 1, pongs: 1 });
});

test('RSV bits (e.g. permessage-deflate RSV1) are not a violation', () => {
  const stream = Buffer.concat([
    frame(TEXT, 'compressed', { rsv: 0b100, fin: false }),
    frame(CONTINUATION, 'more', { rsv: 0b011 }),
    frame(BINARY, 'x', { rsv: 0b111 }),
  ]);
  assert.deepEqual(snapshot(track([stream])), { ...INITIAL, messages: 2, frames: 3, payloadBytes: 15 });
});

test('close code and reason are read from masked and unmasked close frames split inside the payload', () => {
  const reason = 'ß€ server restarting 😀'; // multi-byte UTF-8, so a split may fall inside a character
  for (const mask of [false, true]) {
    const stream = frame(CLOSE, closePayload(1012, reason), { mask });
    const expected = { ...INITIAL, closeCode: 1012, closeReason: reason, closeSeen: true };
    assertEverySplit(stream, expected, { expectMasked: mask });

    const header = 2 + (mask ? 4 : 0);
    const partial = track([stream.subarray(0, header + 3)]);
    assert.equal(partial.closeSeen, false);
    assert.equal(partial.closeCode, undefined);
    assert.equal(partial.closeReason, undefined);
    assert.equal(partial.atFrameBoundary, false);
    partial.feed(stream.subarray(header + 3));
    assert.deepEqual(snapshot(partial), expected);
  }
});

test('close with a code only, a 125-byte payload, and no payload', () => {
  assert.deepEqual(snapshot(track([frame(CLOSE, closePayload(1000), { mask: true })])), {
    ...INITIAL, closeCode: 1000, closeReason: '', closeSeen: true,
  });
  const longReason = 'r'.repeat(123);
  assert.deepEqual(snapshot(track([frame(CLOSE, closePayload(3000, longReason), { mask: true })])), {
    ...INITIAL, closeCode: 3000, closeReason: longReason, closeSeen: true,
  });
  for (const mask of [false, true]) {
    assert.deepEqual(snapshot(track([frame(CLOSE, '', { mask })])), {
      ...INITIAL, closeCode: undefined, closeReason: '', closeSeen: true,
    });
  }
});

test('a close frame after a fragmented message started is allowed (control frames interleave)', () => {
  const stream = Buffer.concat([frame(TEXT, 'part', { fin: false }), frame(CLOSE, closePayload(1001))]);
  const tracker = track([stream]);
  assert.equal(tracker.malformed, undefined);
  assert.equal(tracker.closeCode, 1001);
  assert.equal(tracker.atFrameBoundary, true);
  assert.equal(tracker.atMessageBoundary, false);
});

/** The 8 bytes of a 64-bit extended length, from its two 32-bit halves. */
function length64(high: number, low: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeUInt32BE(high, 0);
  out.writeUInt32BE(low, 4);
  return out;
}

const MALFORMED: [name: string, stream: Buffer, expected: string, options?: Options][] = [
  ['reserved data opcode 3', frame(0x3, 'x'), 'reserved opcode 3'],
  ['reserved data opcode 7', frame(0x7), 'reserved opcode 7'],
  ['reserved control opcode 11', frame(0xb, 'x'), 'reserved opcode 11'],
  ['reserved control opcode 15', frame(0xf), 'reserved opcode 15'],
  ['ping of 126 bytes', frame(PING, bytes(126)), 'control frame too long'],
  ['close of 200 bytes', frame(CLOSE, closePayload(1000, 'x'.repeat(198))), 'control frame too long'],
  ['pong with a 16-bit length', frame(PONG, 'x', { lengthForm: 16 }), 'control frame too long'],
  ['continuation first', frame(CONTINUATION, 'x'), 'continuation without a message'],
  [
    'continuation after a complete message',
    Buffer.concat([frame(TEXT, 'done'), frame(CONTINUATION, 'x')]),
    'continuation without a message',
  ],
  [
    'text inside a fragmented message',
    Buffer.concat([frame(TEXT, 'a', { fin: false }), frame(TEXT, 'b')]),
    'new message inside a fragmented message',
  ],
  [
    'binary inside a fragmented message',
    Buffer.concat([frame(BINARY, 'a', { fin: false }), frame(PING), frame(BINARY, 'b', { fin: false })]),
    'new message inside a fragmented message',
  ],
  ['ping without FIN', frame(PING, 'x', { fin: false }), 'fragmented control frame'],
  ['close without FIN', frame(CLOSE, closePayload(1000), { fin: false }), 'fragmented control frame'],
  ['unmasked from a client', frame(TEXT, 'x'), 'mask bit wrong for direction', { expectMasked: true }],
  ['masked from a server', frame(TEXT, 'x', { mask: true }), 'mask bit wrong for direction', { expectMasked: false }],
  ['unmasked ping from a client', frame(PING), 'mask bit wrong for direction', { expectMasked: true }],
  [
    '64-bit length with the high bit set',
    Buffer.concat([Buffer.from([0x82, 127]), length64(0x80000000, 0), Buffer.from('xx')]),
    '64-bit length with high bit set',
  ],
  [
    '64-bit length of 2^53',
    Buffer.concat([Buffer.from([0x82, 127]), length64(0x00200000, 0)]),
    'length above 2^53',
  ],
  ['close payload of 1 byte', frame(CLOSE, Buffer.from([0x03])), 'close payload of 1 byte'],
  ['masked close payload of 1 byte', frame(CLOSE, Buffer.from([0x03]), { mask: true }), 'close payload of 1 byte'],
  ['text after close', Buffer.concat([frame(CLOSE, closePayload(1000)), frame(TEXT, 'late')]), 'data after close'],
  ['empty binary after close', Buffer.concat([frame(CLOSE), frame(BINARY)]), 'data after close'],
  ['ping after close', Buffer.concat([frame(CLOSE), frame(PING)]), 'data after close'],
];

for (const [name, stream, expected, options] of MALFORMED) {
  test(`malformed: ${name} -> '${expected}' at every split offset`, () => {
    const whole = track([stream], options);
    assert.equal(whole.malformed, expected);
    assert.equal(whole.atFrameBoundary, false);
    assert.equal(whole.atMessageBoundary, false);
    assertEverySplit(stream, snapshot(whole), options);
  });
}

test('the largest length below 2^53 is accepted and its payload skipped', () => {
  const tracker = track([Buffer.concat([Buffer.from([0x82, 127]), length64(0x001fffff, 0xffffffff)]), bytes(1000)]);
  assert.equal(tracker.malformed, undefined);
  assert.equal(tracker.currentMessageBytes, Number.MAX_SAFE_INTEGER);
  assert.equal(tracker.payloadBytes, 1000);
  assert.equal(tracker.atFrameBoundary, false);
});

test('once malformed, feed() stops parsing and counts nothing more', () => {
  const tracker = track([frame(TEXT, 'ok'), frame(0x3, 'bad')]);
  const before = snapshot(tracker);
  assert.equal(before.malformed, 'reserved opcode 3');
  assert.equal(before.messages, 1);
  tracker.feed(Buffer.concat([frame(TEXT, 'ignored'), frame(PING), frame(CLOSE, closePayload(1000))]));
  assert.deepEqual(snapshot(tracker), before);
});

test('the first violation is kept when a stream has several', () => {
  const tracker = track([frame(CONTINUATION, 'x'), frame(0x4), frame(PING, 'x', { fin: false })]);
  assert.equal(tracker.malformed, 'continuation without a message');
});

test('bytes after a close that do not complete a frame header are not a violation', () => {
  const closeFrame = frame(CLOSE, closePayload(1000, 'bye'), { mask: true });
  const late = frame(TEXT, 'late', { mask: true });
  const tracker = track([closeFrame, late.subarray(0, 5)], { expectMasked: true }); // header is 6 bytes
  assert.equal(tracker.closeSeen, true);
  assert.equal(tracker.malformed, undefined);
  tracker.feed(late.subarray(5, 6));
  assert.equal(tracker.malformed, 'data after close');
  assert.equal(tracker.messages, 0);
});

test('expectMasked undefined accepts masked and unmasked frames; set, it holds every frame to it', () => {
  const mixed = Buffer.concat([frame(TEXT, 'a', { mask: true }), frame(TEXT, 'b'), frame(PING, '', { mask: true })]);
  assert.deepEqual(snapshot(track([mixed])), { ...INITIAL, messages: 2, frames: 2, pings: 1, payloadBytes: 2 });

  const client = Buffer.concat([frame(TEXT, 'a', { mask: true }), frame(PONG, 'p', { mask: true }), frame(BINARY, 'late')]);
  const fromClient = track([client], { expectMasked: true });
  assert.equal(fromClient.malformed, 'mask bit wrong for direction');
  assert.equal(fromClient.messages, 1);
  assert.equal(fromClient.pongs, 1);

  const server = Buffer.concat([frame(TEXT, 'a'), frame(CLOSE, closePayload(1000), { mask: true })]);
  const fromServer = track([server], { expectMasked: false });
  assert.equal(fromServer.malformed, 'mask bit wrong for direction');
  assert.equal(fromServer.closeSeen, false);
  assert.equal(track([server.subarray(0, 3)], { expectMasked: false }).malformed, undefined);
});

test('atFrameBoundary and atMessageBoundary follow headers, payloads and fragments', () => {
  const first = frame(TEXT, 'abc', { fin: false, mask: true }); // 6-byte header + 3
  const ping = frame(PING, 'p', { mask: true });
  const last = frame(CONTINUATION, 'de', { mask: true });
  const tracker = new FrameTracker({ expectMasked: true });
  const boundaries = (): [boolean, boolean] => [tracker.atFrameBoundary, tracker.atMessageBoundary];

  assert.deepEqual(boundaries(), [true, true]);
  tracker.feed(first.subarray(0, 1));
  assert.deepEqual(boundaries(), [false, false], 'inside the base header');
  tracker.feed(first.subarray(1, 4));
  assert.deepEqual(boundaries(), [false, false], 'inside the mask key');
  tracker.feed(first.subarray(4, 6));
  assert.deepEqual(boundaries(), [false, false], 'header done, payload pending');
  tracker.feed(first.subarray(6, 8));
  assert.deepEqual(boundaries(), [false, false], 'inside the payload');
  tracker.feed(first.subarray(8));
  assert.deepEqual(boundaries(), [true, false], 'between fragments');
  tracker.feed(ping.subarray(0, 2));
  assert.deepEqual(boundaries(), [false, false], 'inside a control frame mid-message');
  tracker.feed(ping.subarray(2));
  assert.deepEqual(boundaries(), [true, false], 'after a control frame mid-message');
  tracker.feed(last);
  assert.deepEqual(boundaries(), [true, true], 'after the final fragment');

  const empty = track([frame(BINARY, '', { fin: false })]);
  assert.deepEqual([empty.atFrameBoundary, empty.atMessageBoundary], [true, false], 'empty first fragment');
});

test('maxMessageBytes: declared sizes summed over fragments set messageTooBig as soon as a header exceeds it', () => {
  const options = { maxMessageBytes: 100 };
  const exact = track([frame(TEXT, bytes(100))], options);
  assert.equal(exact.messageTooBig, false, 'exactly at the limit');

  const tracker = new FrameTracker(options);
  tracker.feed(frame(BINARY, bytes(60), { fin: false }));
  tracker.feed(frame(PING, bytes(50)));
  tracker.feed(frame(CONTINUATION, bytes(30), { fin: false }));
  assert.equal(tracker.messageTooBig, false, 'control frames do not count');
  assert.equal(tracker.currentMessageBytes, 90);
  const over = frame(CONTINUATION, bytes(20));
  tracker.feed(over.subarray(0, 2)); // header only, payload not yet sent
  assert.equal(tracker.messageTooBig, true);
  assert.equal(tracker.currentMessageBytes, 110);
  tracker.feed(over.subarray(2));
  assert.equal(tracker.messageTooBig, true, 'stays set');
  assert.equal(tracker.currentMessageBytes, 0);
  assert.equal(tracker.messages, 1);
  assert.equal(tracker.malformed, undefined);

  const declared = track([Buffer.from([0x82, 127, 0, 0, 0, 0, 0, 0x01, 0, 0])], { maxMessageBytes: 65535 });
  assert.equal(declared.messageTooBig, true, 'from a 64-bit header alone');
  assert.equal(track([frame(BINARY, bytes(70000))]).messageTooBig, false, 'no limit by default');
});

test('maxMessageBytes counts each message afresh', () => {
  const tracker = track([frame(TEXT, bytes(80)), frame(TEXT, bytes(80), { fin: false }), frame(CONTINUATION, bytes(20))], {
    maxMessageBytes: 100,
  });
  assert.equal(tracker.messageTooBig, false);
  assert.equal(tracker.messages, 2);
});

test('feed() never changes the bytes it reads', () => {
  const stream = Buffer.concat([
    frame(TEXT, 'masked text', { mask: true }),
    frame(BINARY, bytes(300), { mask: true }),
    frame(PING, 'ping', { mask: true }),
    frame(CLOSE, closePayload(1000, 'normal closure'), { mask: true }),
  ]);
  const copy = Buffer.from(stream);
  for (let i = 0; i <= stream.length; i++) {
    const tracker = track([stream.subarray(0, i), stream.subarray(i)], { expectMasked: true });
    assert.equal(tracker.closeReason, 'normal closure');
    assert.ok(stream.equals(copy), `bytes changed with a split at ${i}`);
  }
});
