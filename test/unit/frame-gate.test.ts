/**
 * FrameGate (src/proxy/frames/frame-gate.ts): one direction of a tunnel cut at
 * frame boundaries. A stream of real frames (text, binary with 7-, 16- and
 * 64-bit lengths, an empty binary frame, a fragmented message with a ping
 * between its fragments, pongs and a close) goes through a gate split at every
 * byte offset (two chunks) and in 1-byte chunks, in both directions (masked
 * client frames, unmasked server frames), into a fake destination that keeps
 * every write. The output is checked byte for byte and parsed back into frames.
 */
import assert from 'node:assert/strict';
import type { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import { closeFrame, pingFrame } from '../../src/proxy/frames/control-frames.js';
import { FrameGate, type GateEvents } from '../../src/proxy/frames/frame-gate.js';
import { FrameTracker } from '../../src/proxy/frames/frame-tracker.js';

const CONTINUATION = 0x0;
const TEXT = 0x1;
const BINARY = 0x2;
const CLOSE = 0x8;
const PING = 0x9;
const PONG = 0xa;

// ---------------------------------------------------------------- frames

interface FrameSpec {
  opcode: number;
  payload: Buffer;
  fin?: boolean;
  /** Force a length encoding (default: the shortest). */
  lengthForm?: 7 | 16 | 64;
}

let maskSeed = 1;

/** An RFC 6455 frame; masked with a key whose bytes are all non-zero. */
function encode(spec: FrameSpec, masked: boolean): Buffer {
  const data = spec.payload;
  const n = data.length;
  const form = spec.lengthForm ?? (n < 126 ? 7 : n < 65536 ? 16 : 64);
  const extended = form === 7 ? 0 : form === 16 ? 2 : 8;
  const header = Buffer.alloc(2 + extended + (masked ? 4 : 0));
  header[0] = ((spec.fin ?? true) ? 0x80 : 0) | spec.opcode;
  header[1] = (masked ? 0x80 : 0) | (form === 7 ? n : form === 16 ? 126 : 127);
  if (form === 16) header.writeUInt16BE(n, 2);
  else if (form === 64) header.writeBigUInt64BE(BigInt(n), 2);
  if (!masked) return Buffer.concat([header, data]);
  const key = [0x11 + (maskSeed % 200), 0xfa, 0x21 + (maskSeed++ % 100), 0x3d];
  const body = Buffer.alloc(n);
  for (let i = 0; i < 4; i++) header[2 + extended + i] = key[i] as number;
  for (let i = 0; i < n; i++) body[i] = (data[i] as number) ^ (key[i & 3] as number);
  return Buffer.concat([header, body]);
}

function pattern(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

function closePayload(code: number, reason: string): Buffer {
  const text = Buffer.from(reason);
  const payload = Buffer.alloc(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return payload;
}

const OWN_PONG = Buffer.from('switchyard:own-pong');

/** Frames of the test stream, with the payloads they carry. */
function streamSpecs(options: { big: boolean }): FrameSpec[] {
  return [
    { opcode: TEXT, payload: Buffer.from('hello, gate') },
    { opcode: BINARY, payload: pattern(300, 1) }, // 16-bit length
    // 64-bit length: a real one (>= 65536 bytes), or a small payload in the 64-bit form.
    options.big ? { opcode: BINARY, payload: pattern(65_600, 2) } : { opcode: BINARY, payload: pattern(40, 2), lengthForm: 64 },
    { opcode: BINARY, payload: Buffer.alloc(0) }, // empty data frame: header and end at once
    { opcode: TEXT, payload: Buffer.from('frag-1 '), fin: false },
    { opcode: PING, payload: Buffer.from('between fragments') },
    { opcode: CONTINUATION, payload: pattern(130, 3), fin: false },
    { opcode: CONTINUATION, payload: Buffer.from(' frag-3'), fin: true },
    { opcode: PONG, payload: Buffer.from('not ours') },
    { opcode: PONG, payload: OWN_PONG },
    { opcode: TEXT, payload: Buffer.from('after the pong') },
    { opcode: PONG, payload: OWN_PONG }, // the same payload again: only the first is the proxy's
    { opcode: PING, payload: Buffer.alloc(0) },
    { opcode: CLOSE, payload: closePayload(1000, 'bye') },
  ];
}

interface Stream {
  readonly bytes: Buffer;
  readonly specs: readonly FrameSpec[];
  /** Offset where each frame starts; the last entry is the stream's length. */
  readonly starts: readonly number[];
  /** Header length of each frame. */
  readonly headerLengths: readonly number[];
  readonly masked: boolean;
}

function buildStream(masked: boolean, big: boolean): Stream {
  const specs = streamSpecs({ big });
  const frames = specs.map((spec) => encode(spec, masked));
  const starts: number[] = [0];
  for (const frame of frames) starts.push(starts[starts.length - 1]! + frame.length);
  const headerLengths = frames.map((frame, index) => frame.length - specs[index]!.payload.length);
  return { bytes: Buffer.concat(frames), specs, starts, headerLengths, masked };
}

interface ParsedFrame {
  start: number;
  end: number;
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/**
 * Parses a whole byte stream into frames; throws when it does not end at a
 * frame boundary. Data payloads are unmasked only when asked (it is slow).
 */
function parseFrames(bytes: Buffer, unmaskData = false): ParsedFrame[] {
  const frames: ParsedFrame[] = [];
  let at = 0;
  while (at < bytes.length) {
    const start = at;
    assert.ok(bytes.length - at >= 2, `partial header at ${at}`);
    const b0 = bytes[at]!;
    const b1 = bytes[at + 1]!;
    at += 2;
    let length = b1 & 0x7f;
    if (length === 126) {
      assert.ok(bytes.length - at >= 2, `partial 16-bit length at ${start}`);
      length = bytes.readUInt16BE(at);
      at += 2;
    } else if (length === 127) {
      assert.ok(bytes.length - at >= 8, `partial 64-bit length at ${start}`);
      length = Number(bytes.readBigUInt64BE(at));
      at += 8;
    }
    const masked = (b1 & 0x80) !== 0;
    let key: Buffer | undefined;
    if (masked) {
      assert.ok(bytes.length - at >= 4, `partial mask at ${start}`);
      key = bytes.subarray(at, at + 4);
      at += 4;
    }
    assert.ok(bytes.length - at >= length, `frame at ${start} cut: ${length} payload bytes declared, ${bytes.length - at} left`);
    const payload = Buffer.from(bytes.subarray(at, at + length));
    if (key && (unmaskData || (b0 & 0x0f) >= CLOSE)) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ key[i & 3]!;
    at += length;
    frames.push({ start, end: at, fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload });
  }
  return frames;
}

// ---------------------------------------------------------------- the gate

/** A destination that keeps a copy of every write. */
class Sink {
  readonly writes: Buffer[] = [];
  destroyed = false;
  write(chunk: Buffer): boolean {
    this.writes.push(Buffer.from(chunk));
    return true;
  }
  get bytes(): Buffer {
    return Buffer.concat(this.writes);
  }
}

interface Harness {
  readonly gate: FrameGate;
  readonly sink: Sink;
  readonly events: { ownPong: number; closeArrived: number; dataFrames: number; malformed: number };
}

function makeGate(stream: Stream, hooks: { dataFrame?: (gate: FrameGate, index: number) => boolean } = {}): Harness {
  const sink = new Sink();
  const counts = { ownPong: 0, closeArrived: 0, dataFrames: 0, malformed: 0 };
  const events: GateEvents = {
    ownPong: () => { counts.ownPong++; },
    closeArrived: () => { counts.closeArrived++; },
    dataFrame: (gate) => {
      const index = counts.dataFrames++;
      return hooks.dataFrame ? hooks.dataFrame(gate, index) : true;
    },
    malformed: () => { counts.malformed++; },
  };
  const tracker = new FrameTracker({ expectMasked: stream.masked });
  const source = {} as Duplex;
  const gate = new FrameGate(tracker, source, sink as unknown as Duplex, events);
  return { gate, sink, events: counts };
}

/** Chunkings of the stream: two chunks split at every offset, then 1-byte chunks. */
function* chunkings(bytes: Buffer): Generator<{ label: string; chunks: Buffer[] }> {
  for (let split = 0; split <= bytes.length; split++) {
    yield { label: `split at ${split}`, chunks: [bytes.subarray(0, split), bytes.subarray(split)] };
  }
  const ones: Buffer[] = [];
  for (let i = 0; i < bytes.length; i++) ones.push(bytes.subarray(i, i + 1));
  yield { label: '1-byte chunks', chunks: ones };
}

function feed(gate: FrameGate, chunks: readonly Buffer[]): void {
  for (const chunk of chunks) if (chunk.length > 0) gate.forward(chunk);
}

/** Index of the frame holding byte `offset` (offset < stream length). */
function frameAt(stream: Stream, offset: number): number {
  let index = 0;
  while (stream.starts[index + 1]! <= offset) index++;
  return index;
}

/**
 * Where a frame injected after `offset` bytes must land: at `offset` when that
 * is a boundary; inside a data frame whose header is complete, after that frame
 * (its payload streams through); inside a header or a control frame (held back
 * until complete), before that frame.
 */
function expectedCut(stream: Stream, offset: number): number {
  if (stream.starts.includes(offset)) return offset;
  const index = frameAt(stream, offset);
  const start = stream.starts[index]!;
  const isData = stream.specs[index]!.opcode < CLOSE;
  if (isData && offset >= start + stream.headerLengths[index]!) return stream.starts[index + 1]!;
  return start;
}

/**
 * Every offset of the stream, except deep inside payloads longer than 1000
 * bytes, where every 97th is enough (they all behave alike, and every offset
 * of a 65600-byte payload would make the test quadratic).
 */
function injectionOffsets(stream: Stream): number[] {
  const offsets: number[] = [];
  for (let offset = 0; offset <= stream.bytes.length; offset++) {
    const index = offset < stream.bytes.length ? frameAt(stream, offset) : -1;
    const deep = index >= 0 && stream.specs[index]!.payload.length > 1000
      && offset > stream.starts[index]! + stream.headerLengths[index]! + 20 && offset < stream.starts[index + 1]! - 20;
    if (!deep || offset % 97 === 0) offsets.push(offset);
  }
  return offsets;
}

const DIRECTIONS = [
  { name: 'client → backend (masked)', masked: true },
  { name: 'backend → client (unmasked)', masked: false },
] as const;

// ---------------------------------------------------------------- (a) pass-through

describe('FrameGate forwards the stream unchanged', () => {
  for (const direction of DIRECTIONS) {
    for (const big of [false, true]) {
      test(`${direction.name}, ${big ? 'with a 65600-byte frame' : 'small frames'}: every split and 1-byte chunks`, () => {
        const stream = buildStream(direction.masked, big);
        let runs = 0;
        for (const { label, chunks } of chunkings(stream.bytes)) {
          const { gate, sink, events } = makeGate(stream);
          feed(gate, chunks);
          const out = sink.bytes;
          if (!out.equals(stream.bytes)) {
            assert.fail(`${label}: output (${out.length} bytes) differs from input (${stream.bytes.length} bytes)`);
          }
          assert.equal(events.ownPong, 0, label);
          assert.equal(events.malformed, 0, label);
          assert.equal(events.closeArrived, 1, `${label}: one close frame`);
          assert.equal(events.dataFrames, 8, `${label}: dataFrame() once per data frame`);
          assert.equal(gate.closedToDestination, false, label);
          runs++;
        }
        assert.equal(runs, stream.bytes.length + 2);
      });
    }
  }

  test('the parser used by these tests reads the stream back frame by frame', () => {
    for (const direction of DIRECTIONS) {
      const stream = buildStream(direction.masked, true);
      const frames = parseFrames(stream.bytes, true);
      assert.deepEqual(frames.map((f) => f.start), stream.starts.slice(0, -1));
      assert.deepEqual(frames.map((f) => f.opcode), stream.specs.map((s) => s.opcode));
      frames.forEach((frame, index) => assert.ok(frame.payload.equals(stream.specs[index]!.payload)));
      assert.ok(frames.every((frame) => frame.masked === direction.masked));
    }
  });
});

// ---------------------------------------------------------------- (b) injection

/** Checks `out` = stream[0, cut) + injected frame (+ stream[cut, end) when the injected frame is not a close). */
function checkInjected(stream: Stream, out: Buffer, injected: Buffer, cut: number, label: string, rest: boolean): void {
  const frames = parseFrames(out); // every frame intact, nothing cut
  const expected = Buffer.concat([stream.bytes.subarray(0, cut), injected, rest ? stream.bytes.subarray(cut) : Buffer.alloc(0)]);
  if (!out.equals(expected)) {
    const injectedAt = frames.findIndex((frame) => out.subarray(frame.start, frame.end).equals(injected));
    assert.fail(`${label}: expected the frame at offset ${cut} (${rest ? 'rest forwarded' : 'nothing after it'}), `
      + `got ${out.length} bytes with the injected frame at ${injectedAt === -1 ? 'nowhere' : `offset ${frames[injectedAt]!.start}`}`);
  }
  // The injected frame sits between two of the original frames.
  assert.ok(stream.starts.includes(cut), `${label}: ${cut} is not a frame boundary of the input`);
}

describe('FrameGate.inject places a frame at the next frame boundary', () => {
  for (const direction of DIRECTIONS) {
    for (const big of [false, true]) {
      test(`${direction.name}, ${big ? 'with a 65600-byte frame' : 'small frames'}: close injected after every offset; nothing forwarded after it`, () => {
        const stream = buildStream(direction.masked, big);
        const injected = closeFrame(1001, 'proxy shutting down', direction.masked);
        for (const offset of injectionOffsets(stream)) {
          const { gate, sink } = makeGate(stream);
          feed(gate, [stream.bytes.subarray(0, offset)]);
          gate.inject(injected);
          feed(gate, [stream.bytes.subarray(offset)]);
          checkInjected(stream, sink.bytes, injected, expectedCut(stream, offset), `close after ${offset} bytes`, false);
          assert.equal(gate.closedToDestination, true);
        }
      });
    }

    test(`${direction.name}: close injected after every offset of a stream fed in 1-byte chunks`, () => {
      const stream = buildStream(direction.masked, false);
      const injected = closeFrame(1012, 'tunnel reached its max age', direction.masked);
      for (let offset = 0; offset <= stream.bytes.length; offset++) {
        const { gate, sink } = makeGate(stream);
        for (let i = 0; i < stream.bytes.length; i++) {
          if (i === offset) gate.inject(injected);
          gate.forward(stream.bytes.subarray(i, i + 1));
        }
        if (offset === stream.bytes.length) gate.inject(injected);
        checkInjected(stream, sink.bytes, injected, expectedCut(stream, offset), `1-byte chunks, close after ${offset} bytes`, false);
      }
    });

    test(`${direction.name}: a ping injected after every offset lands at a boundary and the stream goes on around it`, () => {
      const stream = buildStream(direction.masked, false);
      const injected = pingFrame(Buffer.from('switchyard:12345678'), direction.masked);
      for (let offset = 0; offset <= stream.bytes.length; offset++) {
        for (const oneByte of [false, true]) {
          const { gate, sink } = makeGate(stream);
          if (oneByte) {
            for (let i = 0; i < stream.bytes.length; i++) {
              if (i === offset) gate.inject(injected);
              gate.forward(stream.bytes.subarray(i, i + 1));
            }
            if (offset === stream.bytes.length) gate.inject(injected);
          } else {
            feed(gate, [stream.bytes.subarray(0, offset)]);
            gate.inject(injected);
            feed(gate, [stream.bytes.subarray(offset)]);
          }
          checkInjected(stream, sink.bytes, injected, expectedCut(stream, offset), `${oneByte ? '1-byte chunks, ' : ''}ping after ${offset} bytes`, true);
          assert.equal(gate.closedToDestination, false);
        }
      }
    });
  }

  test('a close injected inside a big data payload waits for the payload to end, then nothing more passes', () => {
    const stream = buildStream(false, true);
    const big = 2; // the 65600-byte frame
    const start = stream.starts[big]!;
    const end = stream.starts[big + 1]!;
    const { gate, sink } = makeGate(stream);
    // Chunks of 1000 bytes: the close is asked for while the payload streams.
    const injected = closeFrame(1001, 'going away', false);
    let asked = false;
    for (let at = 0; at < stream.bytes.length; at += 1000) {
      if (!asked && at > start + 5000) {
        gate.inject(injected);
        asked = true;
        // Not sent yet: the payload is still on its way.
        assert.equal(sink.bytes.includes(injected), false);
      }
      gate.forward(stream.bytes.subarray(at, at + 1000));
    }
    assert.ok(asked);
    assert.ok(sink.bytes.equals(Buffer.concat([stream.bytes.subarray(0, end), injected])));
  });

  test('frames injected while one is pending all go out, in order, at the same boundary', () => {
    const stream = buildStream(true, false);
    const offset = stream.starts[1]! + 10; // inside the 300-byte payload
    const { gate, sink } = makeGate(stream);
    const ping = pingFrame(Buffer.from('switchyard:aaaaaaaa'), true);
    const close = closeFrame(1001, 'bye', true);
    gate.forward(stream.bytes.subarray(0, offset));
    gate.inject(ping);
    gate.inject(close);
    gate.inject(pingFrame(Buffer.from('after close'), true)); // after a close: never sent
    gate.forward(stream.bytes.subarray(offset));
    const cut = stream.starts[2]!;
    assert.ok(sink.bytes.equals(Buffer.concat([stream.bytes.subarray(0, cut), ping, close])));
  });
});

// ---------------------------------------------------------------- (c) own pongs

describe('FrameGate drops the pong that answers the proxy\'s ping', () => {
  for (const direction of DIRECTIONS) {
    test(`${direction.name}: every split and 1-byte chunks`, () => {
      const stream = buildStream(direction.masked, false);
      const ownPong = stream.specs.findIndex((spec) => spec.opcode === PONG && spec.payload.equals(OWN_PONG));
      const expected = Buffer.concat([stream.bytes.subarray(0, stream.starts[ownPong]), stream.bytes.subarray(stream.starts[ownPong + 1])]);
      for (const { label, chunks } of chunkings(stream.bytes)) {
        const { gate, sink, events } = makeGate(stream);
        gate.expectedPong = Buffer.from(OWN_PONG);
        feed(gate, chunks);
        const out = sink.bytes;
        if (!out.equals(expected)) assert.fail(`${label}: got ${out.length} bytes, expected ${expected.length} (the stream without its first own pong)`);
        assert.equal(events.ownPong, 1, label);
        assert.equal(gate.expectedPong, undefined, `${label}: expectedPong is cleared`);
        // The other pongs passed: the one with another payload, and the second copy.
        const pongs = parseFrames(out).filter((frame) => frame.opcode === PONG).map((frame) => frame.payload.toString());
        assert.deepEqual(pongs, ['not ours', OWN_PONG.toString()], label);
      }
    });
  }

  test('a pong with a different payload (or a prefix of the expected one) is forwarded', () => {
    for (const payload of [Buffer.from('switchyard:other'), OWN_PONG.subarray(0, OWN_PONG.length - 1), Buffer.concat([OWN_PONG, Buffer.from('x')])]) {
      const pong = encode({ opcode: PONG, payload }, true);
      const { gate, sink, events } = makeGate({ bytes: pong, specs: [], starts: [], headerLengths: [], masked: true });
      gate.expectedPong = Buffer.from(OWN_PONG);
      gate.forward(pong);
      assert.ok(sink.bytes.equals(pong));
      assert.equal(events.ownPong, 0);
      assert.ok(gate.expectedPong?.equals(OWN_PONG), 'still waiting for its own pong');
    }
  });

  test('a pong is not swallowed when no pong is expected', () => {
    const stream = buildStream(false, false);
    const { gate, sink, events } = makeGate(stream);
    gate.forward(stream.bytes);
    assert.ok(sink.bytes.equals(stream.bytes));
    assert.equal(events.ownPong, 0);
  });
});

// ---------------------------------------------------------------- (d) refused frames

describe('FrameGate: dataFrame() returning false drops that frame entirely', () => {
  for (const direction of DIRECTIONS) {
    test(`${direction.name}: refusing each data frame in turn, every split and 1-byte chunks`, () => {
      const stream = buildStream(direction.masked, false);
      const dataIndexes = stream.specs.map((spec, index) => (spec.opcode < CLOSE ? index : -1)).filter((index) => index >= 0);
      dataIndexes.forEach((frameIndex, nth) => {
        const expected = stream.bytes.subarray(0, stream.starts[frameIndex]);
        for (const { label, chunks } of chunkings(stream.bytes)) {
          let calls = 0;
          const { gate, sink } = makeGate(stream, {
            dataFrame: (_gate, index) => {
              calls++;
              return index !== nth;
            },
          });
          feed(gate, chunks);
          const out = sink.bytes;
          if (!out.equals(expected)) {
            assert.fail(`refusing data frame #${nth} (frame ${frameIndex}), ${label}: got ${out.length} bytes, expected exactly the ${expected.length} before it`);
          }
          parseFrames(out); // no partial header or payload reached the destination
          assert.equal(gate.closedToDestination, true, label);
          assert.ok(calls >= nth + 1, label);
        }
      });
    });
  }

  test('the refused frame\'s header is never written, even when earlier frames share its chunk', () => {
    const stream = buildStream(true, false);
    const refused = 1; // the 300-byte binary frame (16-bit length)
    const { gate, sink } = makeGate(stream, { dataFrame: (_gate, index) => index !== refused });
    gate.forward(stream.bytes.subarray(0, stream.starts[1]! + 3)); // first frame whole, 3 header bytes of the second
    assert.ok(sink.bytes.equals(stream.bytes.subarray(0, stream.starts[1])), 'the partial header is held back');
    gate.forward(stream.bytes.subarray(stream.starts[1]! + 3));
    assert.ok(sink.bytes.equals(stream.bytes.subarray(0, stream.starts[1])));
  });

  /*
   * After a refusal the gate forwards nothing more, but the tunnel still needs
   * to see the source's close frame (the answer to the proxy's close) to end
   * the tunnel cleanly instead of cutting it after CLOSE_REPLY_MS.
   */
  for (const direction of DIRECTIONS) {
    test(`${direction.name}: after a refused frame the source's close frame is still recognised (closeArrived)`, () => {
      const stream = buildStream(direction.masked, false);
      for (const { label, chunks } of chunkings(stream.bytes)) {
        const { gate, sink, events } = makeGate(stream, { dataFrame: (_gate, index) => index !== 1 });
        feed(gate, chunks);
        assert.ok(sink.bytes.equals(stream.bytes.subarray(0, stream.starts[1])), label);
        assert.equal(events.closeArrived, 1, `${label}: the close frame at the end of the stream was not seen`);
        assert.equal(gate.tracker.closeSeen, true, label);
        assert.equal(events.malformed, 0, `${label}: the tracker lost the frame boundaries (${gate.tracker.malformed})`);
      }
    });
  }

  /*
   * TunnelControl's policies (max_message_bytes, max_messages_per_second)
   * inject a close frame toward the destination from inside dataFrame() and
   * then refuse the frame ("the other side gets 1001"). That close must reach
   * the destination where the refused frame would have started.
   */
  for (const direction of DIRECTIONS) {
    test(`${direction.name}: a close injected from inside dataFrame() before refusing goes out in place of the refused frame`, () => {
      const stream = buildStream(direction.masked, false);
      const injected = closeFrame(1001, 'message too big', direction.masked);
      const refusedFrame = 1; // the 300-byte binary frame
      for (const { label, chunks } of chunkings(stream.bytes)) {
        const { gate, sink } = makeGate(stream, {
          dataFrame: (self, index) => {
            if (index !== refusedFrame) return true;
            self.inject(injected);
            return false;
          },
        });
        feed(gate, chunks);
        const expected = Buffer.concat([stream.bytes.subarray(0, stream.starts[refusedFrame]), injected]);
        const out = sink.bytes;
        if (!out.equals(expected)) {
          const frames = parseFrames(out);
          assert.fail(`${label}: expected the ${stream.starts[refusedFrame]} bytes before the refused frame then the close frame; `
            + `got ${out.length} bytes, frames ${JSON.stringify(frames.map((f) => f.opcode))}`);
        }
      }
    });
  }
});

describe('FrameGate made while a frame is passing (a plain tunnel turned graceful)', () => {
  for (const masked of [true, false]) {
    test(`${masked ? 'masked' : 'unmasked'}: a close asked for at once lands at the first boundary after the bytes already sent, at every offset`, () => {
      const stream = buildStream(masked, false);
      for (let sent = 0; sent < stream.bytes.length; sent++) {
        for (const oneByte of [false, true]) {
          // The plain pipe forwarded bytes [0, sent) while its tracker followed them.
          const tracker = new FrameTracker({ expectMasked: masked });
          tracker.feed(stream.bytes.subarray(0, sent));
          const sink = new Sink();
          const events: GateEvents = { ownPong: () => undefined, closeArrived: () => undefined, dataFrame: () => true, malformed: () => undefined };
          const gate = new FrameGate(tracker, {} as Duplex, sink as unknown as Duplex, events);
          gate.inject(closeFrame(1001, 'bye', !masked));
          const rest = stream.bytes.subarray(sent);
          if (oneByte) for (let i = 0; i < rest.length; i++) gate.forward(rest.subarray(i, i + 1));
          else gate.forward(rest);
          const wire = Buffer.concat([stream.bytes.subarray(0, sent), sink.bytes]);
          const label = `sent ${sent}${oneByte ? ', then 1-byte chunks' : ''}`;
          const frames = parseFrames(wire);
          const boundary = stream.starts.find((start) => start >= sent)!;
          const close = frames.findIndex((frame) => frame.opcode === CLOSE && frame.start === boundary);
          assert.ok(close >= 0, `${label}: the close at ${boundary}: ${JSON.stringify(frames.map((f) => [f.start, f.opcode]))}`);
          assert.equal(close, frames.length - 1, `${label}: nothing after the close`);
          assert.ok(wire.subarray(0, boundary).equals(stream.bytes.subarray(0, boundary)), `${label}: the stream is intact up to the close`);
        }
      }
    });
  }
});
