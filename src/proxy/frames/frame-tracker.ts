/**
 * Follows the frames of one direction of a WebSocket tunnel (RFC 6455 §5) while
 * the proxy passes the bytes through untouched. It only reads: data payloads are
 * skipped by arithmetic, never copied or unmasked; only a close frame's payload
 * (at most 125 bytes) is copied and unmasked, into a buffer the tracker owns.
 */

const OP_CONTINUATION = 0x0;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** The longest payload a control frame may carry (RFC 6455 §5.5). */
const MAX_CONTROL_PAYLOAD = 125;
/** A 64-bit length at or above this has its most significant bit set (RFC 6455 §5.2). */
const HIGH_BIT_64 = 2 ** 63;

/** What stopped scan(): the chunk ran out, a header completed (payload to come), or a frame ended. */
export const SCAN_CHUNK_END = 0;
export const SCAN_HEADER = 1;
export const SCAN_FRAME_END = 2;

const EXPECT_ANY = -1;
const EXPECT_UNMASKED = 0;
const EXPECT_MASKED = 1;

/** Built once, so a violation costs no string building; indexed by opcode. */
const RESERVED_OPCODE: readonly string[] = Array.from({ length: 16 }, (_, opcode) => `reserved opcode ${opcode}`);

export interface FrameTrackerOptions {
  /**
   * true for the client→server direction (every frame must be masked), false for
   * server→client (no frame may be masked); undefined = not checked.
   */
  expectMasked?: boolean;
  /** A data message whose declared size, summed across its fragments, exceeds this sets messageTooBig. */
  maxMessageBytes?: number;
}

/**
 * One direction of a WebSocket byte stream, fed chunk by chunk. Header bytes are
 * read one at a time (so a header may straddle any chunk boundary) and kept in
 * numeric fields; payloads are skipped with a countdown. feed() allocates nothing
 * except the close reason string, once, when a close frame is complete.
 *
 * Counters count frames that have been fully seen (header and payload), except
 * currentMessageBytes and messageTooBig, which follow the headers, and
 * payloadBytes, which counts data payload bytes as they pass.
 */
export class FrameTracker {
  /** Complete data messages (a text/binary frame with FIN, or the final continuation). */
  messages = 0;
  /** Data frames of any kind, incl. continuations, fully seen. */
  frames = 0;
  /** Ping frames fully seen. */
  pings = 0;
  /** Pong frames fully seen. */
  pongs = 0;
  /** Payload bytes of data frames seen so far (not headers), counted as they pass, partial frames included. */
  payloadBytes = 0;
  /**
   * Set when a close frame has been fully seen: the status code, or undefined when
   * the close frame had no payload (1005 semantics, RFC 6455 §7.1.5).
   */
  closeCode: number | undefined = undefined;
  /**
   * Set when a close frame has been fully seen: its reason decoded as UTF-8 (invalid
   * sequences become U+FFFD), '' when it had none or no payload at all.
   */
  closeReason: string | undefined = undefined;
  /** A close frame has been fully seen. */
  closeSeen = false;
  /**
   * First protocol violation, as a short stable string (e.g. 'reserved opcode 3',
   * 'control frame too long', 'continuation without a message', 'new message inside
   * a fragmented message', 'fragmented control frame', 'mask bit wrong for direction',
   * '64-bit length with high bit set', 'length above 2^53', 'close payload of 1 byte',
   * 'data after close'). Once set, feed() returns immediately; the proxy still passes
   * the bytes through unchanged.
   */
  malformed: string | undefined = undefined;
  /**
   * Size in payload bytes of the data message currently being received, summed across
   * fragments and counted from each header as soon as it is parsed; 0 between messages.
   */
  currentMessageBytes = 0;
  /**
   * A data message's declared size (from its frame headers, summed across fragments)
   * has exceeded maxMessageBytes. Stays true; the proxy will close with 1009.
   */
  messageTooBig = false;

  // Every field starts with a value of its final type (numbers as numbers), so all
  // trackers share one shape and V8 keeps numeric fields unboxed: no allocation
  // when a counter grows past the small-integer range.
  /** EXPECT_ANY, EXPECT_UNMASKED or EXPECT_MASKED. */
  private readonly expectMasked: number = EXPECT_ANY;
  private readonly maxMessageBytes: number = Number.POSITIVE_INFINITY;
  /** Opcode of the last frame fully seen; -1 before the first. */
  lastOpcode = -1;
  /** Why the last scan() returned: SCAN_CHUNK_END, SCAN_HEADER or SCAN_FRAME_END. */
  scanStop = SCAN_CHUNK_END;

  /** Owned by the tracker: the unmasked payload of the control frame (close, ping, pong) being read. */
  private readonly controlPayload = Buffer.alloc(MAX_CONTROL_PAYLOAD);

  /** Header bytes of the current frame read so far; 0 at a frame boundary or inside a payload. */
  private headerRead = 0;
  /** Header length of the current frame (2 until its second byte is read). */
  private headerLength = 2;
  /** Payload bytes of the current frame still to come; > 0 only inside a payload. */
  private remaining = 0;
  private fin = false;
  private opcode = 0;
  private masked = false;
  /** The 7-bit length field: 0-125, or 126 / 127 for a 16-bit / 64-bit extended length. */
  private lengthField = 0;
  /** Declared payload length of the current frame (exact up to 2^53 - 1). */
  private payloadLength = 0;
  /** The 4-byte masking key as an unsigned 32-bit number, most significant byte first. */
  private maskKey = 0;
  /** Bytes of the current control frame's payload copied so far. */
  private controlLength = 0;
  /** Inside a fragmented message: its first frame (FIN=0) was seen, its final frame not yet. */
  private fragmented = false;

  constructor(options?: FrameTrackerOptions) {
    const expectMasked = options?.expectMasked;
    if (expectMasked !== undefined) this.expectMasked = expectMasked ? EXPECT_MASKED : EXPECT_UNMASKED;
    const maxMessageBytes = options?.maxMessageBytes;
    if (maxMessageBytes !== undefined) this.maxMessageBytes = maxMessageBytes;
  }

  /**
   * true when the bytes fed so far end exactly at a frame boundary (nothing of a frame
   * pending), so a frame could be injected here. false once the stream is malformed.
   */
  get atFrameBoundary(): boolean {
    return this.headerRead === 0 && this.remaining === 0 && this.malformed === undefined;
  }

  /**
   * true when the bytes fed so far end at a message boundary: a frame boundary not inside
   * a fragmented message. Control frames may be injected at any frame boundary, data
   * frames only here.
   */
  get atMessageBoundary(): boolean {
    return this.atFrameBoundary && !this.fragmented;
  }

  /** The opcode of the frame being read (valid once its first byte was seen). */
  get currentOpcode(): number {
    return this.opcode;
  }

  /** Inside a frame's header (some of it seen, not all). */
  get inHeader(): boolean {
    return this.headerRead > 0;
  }

  /** Declared payload length of the current (or, between frames, the last) frame. */
  get lastPayloadLength(): number {
    return this.payloadLength;
  }

  /** Inside a frame (some of its header or payload seen, not all). */
  get inFrame(): boolean {
    return this.headerRead > 0 || this.remaining > 0;
  }

  /** Does the last control frame's payload (a pong's, say) equal these bytes? */
  controlPayloadEquals(expected: Buffer): boolean {
    const length = this.controlLength;
    return length === expected.length && this.controlPayload.compare(expected, 0, length, 0, length) === 0;
  }

  /** Follows the frames in the next chunk of the stream. Reads the chunk, never changes it. */
  feed(chunk: Buffer): void {
    this.run(chunk, 0, false);
  }

  /**
   * Like feed(), from chunk[from], but returns after a frame header completes
   * (SCAN_HEADER, with payload to come) or a frame ends (SCAN_FRAME_END): the
   * index where it stopped, with the reason in scanStop. For a proxy that must
   * act at frame boundaries (inject a close or a ping, drop its own pongs).
   */
  scan(chunk: Buffer, from: number): number {
    return this.run(chunk, from, true);
  }

  private run(chunk: Buffer, from: number, stop: boolean): number {
    this.scanStop = SCAN_CHUNK_END;
    const end = chunk.length;
    if (this.malformed !== undefined) return end;
    let i = from;
    while (i < end) {
      const remaining = this.remaining;
      if (remaining > 0) {
        const available = end - i;
        const n = available < remaining ? available : remaining;
        const opcode = this.opcode;
        if (opcode <= OP_BINARY) this.payloadBytes += n;
        else this.copyControl(chunk, i, n);
        i += n;
        this.remaining = remaining - n;
        if (remaining === n) {
          this.endFrame();
          if (stop) {
            this.scanStop = SCAN_FRAME_END;
            return i;
          }
        }
        continue;
      }

      const b = chunk[i++] as number;
      const at = this.headerRead++;
      if (at === 0) {
        this.fin = (b & 0x80) !== 0;
        // RSV1-3 (0x70) are left alone: extensions such as permessage-deflate set them.
        this.opcode = b & 0x0f;
      } else if (at === 1) {
        const masked = (b & 0x80) !== 0;
        const lengthField = b & 0x7f;
        this.masked = masked;
        this.lengthField = lengthField;
        this.payloadLength = lengthField < 126 ? lengthField : 0;
        this.maskKey = 0;
        this.headerLength = 2 + (lengthField === 126 ? 2 : lengthField === 127 ? 8 : 0) + (masked ? 4 : 0);
      } else if (at < this.headerLength - (this.masked ? 4 : 0)) {
        // Extended length, big-endian. Number arithmetic is exact up to 2^53 - 1 and
        // never rounds a larger value below 2^53 (or one with the high bit below 2^63).
        this.payloadLength = this.payloadLength * 256 + b;
      } else {
        this.maskKey = this.maskKey * 256 + b;
      }
      if (this.headerRead === this.headerLength) {
        this.headerDone();
        if (this.malformed !== undefined) return end;
        if (stop) {
          this.scanStop = this.remaining === 0 ? SCAN_FRAME_END : SCAN_HEADER;
          return i;
        }
      }
    }
    return end;
  }

  /** A complete header: check it, account for it, then expect its payload. */
  private headerDone(): void {
    const opcode = this.opcode;
    // Only a whole header counts: stray bytes at TCP teardown do not.
    if (this.closeSeen) return this.fail('data after close');
    if ((opcode > OP_BINARY && opcode < OP_CLOSE) || opcode > OP_PONG) {
      return this.fail(RESERVED_OPCODE[opcode] ?? 'reserved opcode');
    }
    if (this.expectMasked !== EXPECT_ANY && this.masked !== (this.expectMasked === EXPECT_MASKED)) {
      return this.fail('mask bit wrong for direction');
    }
    const length = this.payloadLength;
    if (opcode >= OP_CLOSE) {
      if (!this.fin) return this.fail('fragmented control frame');
      if (this.lengthField > MAX_CONTROL_PAYLOAD) return this.fail('control frame too long');
      if (opcode === OP_CLOSE && length === 1) return this.fail('close payload of 1 byte');
      this.controlLength = 0;
    } else {
      if (this.lengthField === 127) {
        if (length >= HIGH_BIT_64) return this.fail('64-bit length with high bit set');
        if (length > Number.MAX_SAFE_INTEGER) return this.fail('length above 2^53');
      }
      if (opcode === OP_CONTINUATION) {
        if (!this.fragmented) return this.fail('continuation without a message');
        this.currentMessageBytes += length;
      } else {
        if (this.fragmented) return this.fail('new message inside a fragmented message');
        this.currentMessageBytes = length;
        if (!this.fin) this.fragmented = true;
      }
      if (this.currentMessageBytes > this.maxMessageBytes) this.messageTooBig = true;
    }
    this.headerRead = 0;
    this.headerLength = 2;
    this.remaining = length;
    if (length === 0) this.endFrame();
  }

  /** Copies and unmasks n bytes of the control payload starting at chunk[from]. */
  private copyControl(chunk: Buffer, from: number, n: number): void {
    const target = this.controlPayload;
    const key = this.maskKey;
    let at = this.controlLength;
    for (let i = from, last = from + n; i < last; i++, at++) {
      target[at] = (chunk[i] as number) ^ ((key >>> ((3 - (at & 3)) << 3)) & 0xff);
    }
    this.controlLength = at;
  }

  /** The current frame's header and payload have been fully seen. */
  private endFrame(): void {
    const opcode = this.opcode;
    this.lastOpcode = opcode;
    if (opcode <= OP_BINARY) {
      this.frames++;
      if (this.fin) {
        this.messages++;
        this.fragmented = false;
        this.currentMessageBytes = 0;
      }
    } else if (opcode === OP_PING) {
      this.pings++;
    } else if (opcode === OP_PONG) {
      this.pongs++;
    } else {
      const length = this.controlLength;
      const payload = this.controlPayload;
      this.closeCode = length >= 2 ? ((payload[0] as number) << 8) | (payload[1] as number) : undefined;
      this.closeReason = length > 2 ? payload.toString('utf8', 2, length) : '';
      this.closeSeen = true;
    }
  }

  private fail(reason: string): void {
    this.malformed = reason;
  }
}
