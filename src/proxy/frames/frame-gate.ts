import type { Duplex } from 'node:stream';
import { SCAN_FRAME_END, SCAN_HEADER, type FrameTracker } from './frame-tracker.js';

const OP_CLOSE = 0x8;
const OP_PONG = 0xa;
const FIRST_CONTROL_OPCODE = 0x8;

/** What a gate tells its owner about the frames passing through it. */
export interface GateEvents {
  /** A pong answering the proxy's own ping arrived (it was not forwarded). */
  ownPong(gate: FrameGate): void;
  /** A close frame from the source arrived. */
  closeArrived(gate: FrameGate): void;
  /**
   * A data frame's header is complete and nothing of the frame was forwarded
   * yet; false: drop it and forward nothing more (a policy closes the tunnel).
   */
  dataFrame(gate: FrameGate): boolean;
  /** The stream broke the protocol: frames can no longer be followed. */
  malformed(gate: FrameGate): void;
}

/**
 * One direction of a tunnel when the proxy must act at frame boundaries: it
 * forwards the source's bytes unchanged but cut at frame edges, so it can
 * insert its own frames (close, ping) between two frames, drop the pongs that
 * answer its own pings, refuse a frame by its header, and stop forwarding
 * after it sent a close. A partial header (at most 14 bytes) or partial
 * control frame (at most 131) is held back until complete; data payloads
 * stream through as they come.
 */
export class FrameGate {
  /** The proxy sent a close frame to the destination: nothing more is forwarded. */
  closedToDestination = false;
  /** Payload of the proxy's ping to the source, until its pong arrives. */
  expectedPong: Buffer | undefined;
  /** The tunnel stopped following this direction (malformed): bytes pass as they come. */
  passThrough = false;
  private held: Buffer | undefined;
  private readonly pending: Buffer[] = [];
  /** Inside forward(): frames injected now (by an event handler) wait for their place. */
  private forwarding = false;
  /**
   * The gate was made while a frame was passing (a plain tunnel turned
   * graceful): its first bytes already went, so the rest must follow as they
   * come, and nothing may be put before it ends.
   */
  private frameBeganBefore: boolean;

  constructor(
    readonly tracker: FrameTracker,
    readonly source: Duplex,
    readonly destination: Duplex,
    private readonly events: GateEvents,
  ) {
    this.frameBeganBefore = tracker.inFrame;
    this.passThrough = tracker.malformed !== undefined;
  }

  /** Nothing of a frame is on its way to the destination: a frame could go now. */
  get atBoundary(): boolean {
    return !this.tracker.inFrame || (this.held !== undefined && !this.frameBeganBefore);
  }

  /** A frame of the proxy's own waits for the next boundary. */
  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /**
   * Sends a frame of the proxy's own to the destination at the next frame
   * boundary (now, if the stream is between frames). A close ends forwarding.
   */
  inject(frame: Buffer): void {
    if (this.closedToDestination || this.destination.destroyed || this.destination.writableEnded) return;
    // With boundaries unknown (malformed) a frame of ours could land inside one of theirs.
    if (this.passThrough) return;
    if (this.atBoundary && !this.forwarding) this.send(frame);
    else this.pending.push(frame);
  }

  /** Forwards nothing more (a close already went to the destination). */
  stopForwarding(): void {
    this.pending.length = 0;
    this.closedToDestination = true;
  }

  /** The next bytes from the source. */
  forward(chunk: Buffer): void {
    if (this.passThrough) {
      this.write(chunk);
      return;
    }
    this.forwarding = true;
    try {
      this.forwardFrames(chunk);
    } finally {
      this.forwarding = false;
    }
  }

  private forwardFrames(chunk: Buffer): void {
    const tracker = this.tracker;
    let data = chunk;
    let position = 0;
    let frameStart = 0;
    // Bytes before `from` are written (or dropped); [from, position) waits to be written.
    let from = 0;
    if (this.held) {
      data = Buffer.concat([this.held, chunk]);
      position = this.held.length;
      this.held = undefined;
    }
    while (position < data.length) {
      if (!tracker.inFrame) {
        this.frameBeganBefore = false;
        frameStart = position;
        if (this.pending.length > 0) {
          this.write(data.subarray(from, position));
          from = position;
          this.flushPending();
        }
      }
      position = tracker.scan(data, position);
      if (tracker.malformed !== undefined) {
        this.passThrough = true;
        // The owner decides first: it may cut the tunnel rather than pass on what it cannot check.
        this.events.malformed(this);
        this.write(data.subarray(from));
        return;
      }
      const stop = tracker.scanStop;
      const opcode = stop === SCAN_HEADER ? tracker.currentOpcode : tracker.lastOpcode;
      // A frame that began before the gate is passed on whole: its start is gone.
      const whole = !this.frameBeganBefore;
      const headerJustDone = whole && (stop === SCAN_HEADER || (stop === SCAN_FRAME_END && tracker.lastPayloadLength === 0));
      if (headerJustDone && opcode < FIRST_CONTROL_OPCODE && !this.closedToDestination && !this.events.dataFrame(this)) {
        // The refused frame does not reach the destination at all; what the
        // handler queued (a close) goes in its place, then nothing more. The
        // rest is still read, so the source's own close is recognised.
        this.write(data.subarray(from, frameStart));
        this.flushPending();
        this.closedToDestination = true;
        from = data.length;
        continue;
      }
      if (stop !== SCAN_FRAME_END) continue;
      if (whole && opcode === OP_PONG && this.expectedPong && tracker.controlPayloadEquals(this.expectedPong)) {
        this.write(data.subarray(from, frameStart));
        from = position;
        this.expectedPong = undefined;
        this.events.ownPong(this);
      } else if (opcode === OP_CLOSE) {
        this.events.closeArrived(this);
      }
    }
    // A partial header, or a partial control frame, waits for the rest.
    if (tracker.inFrame && !this.frameBeganBefore && (tracker.inHeader || tracker.currentOpcode >= FIRST_CONTROL_OPCODE)) {
      this.write(data.subarray(from, frameStart));
      this.held = data.subarray(frameStart);
      // The destination is between frames while the rest of this one is awaited.
      if (this.pending.length > 0) this.flushPending();
      return;
    }
    this.write(data.subarray(from));
    if (this.pending.length > 0 && !tracker.inFrame) this.flushPending();
  }

  private flushPending(): void {
    for (const frame of this.pending.splice(0)) this.send(frame);
  }

  private send(frame: Buffer): void {
    if (this.closedToDestination || this.destination.destroyed || this.destination.writableEnded) return;
    this.destination.write(frame);
    if (((frame[0] ?? 0) & 0x0f) === OP_CLOSE) this.closedToDestination = true;
  }

  private write(bytes: Buffer): void {
    if (bytes.length === 0 || this.closedToDestination || this.destination.destroyed || this.destination.writableEnded) return;
    this.destination.write(bytes);
  }
}
