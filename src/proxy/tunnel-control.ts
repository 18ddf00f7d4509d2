import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import type { WebSocketPolicyConfig } from '../config/model.js';
import { closeFrame, pingFrame, CLOSE_GOING_AWAY, CLOSE_MESSAGE_TOO_BIG, CLOSE_POLICY_VIOLATION } from './frames/control-frames.js';
import type { FrameTracker } from './frames/frame-tracker.js';
import { FrameGate, type GateEvents } from './frames/frame-gate.js';

/** How long the proxy waits for the close frames it asked for before it cuts. */
export const CLOSE_REPLY_MS = 5_000;

/** Why the proxy itself ends a tunnel with close frames. */
export type GracefulReason = 'shutdown' | 'drain' | 'max_age' | 'ping_timeout' | 'policy' | 'admin';

/** What the control needs of its tunnel. */
export interface ControlledTunnel {
  readonly client: Duplex;
  readonly upstream: Duplex;
  readonly fromClient: FrameTracker;
  readonly fromUpstream: FrameTracker;
  /** Ends both sockets at once, for this reason. */
  destroy(reason: GracefulReason): void;
  /** Records why the tunnel is ending (the first reason wins). */
  ending(reason: GracefulReason): void;
}

/**
 * The proxy acting inside a tunnel: it closes both sides with real close
 * frames at frame boundaries (drain, shutdown, max age, policies), pings quiet
 * peers and swallows their pongs, and enforces message size and rate limits.
 * Made only for tunnels that need it (a route with `websocket` policies, or
 * one being closed gracefully); other tunnels stay plain byte pipes.
 */
export class TunnelControl implements GateEvents {
  /** Client → backend. */
  readonly toUpstream: FrameGate;
  /** Backend → client. */
  readonly toClient: FrameGate;
  private closing: GracefulReason | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private ageTimer: NodeJS.Timeout | undefined;
  /** performance.now() of the last bytes from each side. */
  private lastFromClient = performance.now();
  private lastFromUpstream = performance.now();
  /** performance.now() when the pong to the proxy's ping is due, per side; 0: none awaited. */
  private clientPongDue = 0;
  private upstreamPongDue = 0;
  private windowStart = 0;
  private messagesInWindow = 0;

  constructor(private readonly tunnel: ControlledTunnel, private readonly policy: WebSocketPolicyConfig | undefined) {
    this.toUpstream = new FrameGate(tunnel.fromClient, tunnel.client, tunnel.upstream, this);
    this.toClient = new FrameGate(tunnel.fromUpstream, tunnel.upstream, tunnel.client, this);
    const ping = policy?.ping;
    if (ping) {
      // Checked at a fraction of the interval, so a ping goes out at most a quarter late.
      this.pingTimer = setInterval(() => this.checkPings(ping), Math.max(25, Math.min(ping.intervalMs, ping.timeoutMs) / 4));
      this.pingTimer.unref();
    }
    if (policy?.maxAgeMs !== undefined && policy.maxAgeMs > 0) {
      const age = policy.maxAgeMs * (1 - policy.maxAgeJitter * Math.random());
      this.ageTimer = setTimeout(() => this.closeGracefully('max_age', 1012, 'tunnel reached its max age'), age);
      this.ageTimer.unref();
    }
  }

  fromClient(chunk: Buffer): void {
    this.lastFromClient = performance.now();
    this.toUpstream.forward(chunk);
  }

  fromUpstream(chunk: Buffer): void {
    this.lastFromUpstream = performance.now();
    this.toClient.forward(chunk);
  }

  /**
   * Sends a close frame to each side at its next frame boundary (masked toward
   * the backend), forwards nothing more, and ends both connections once both
   * sides answered with their close, or cuts them after `replyMs`.
   */
  closeGracefully(reason: GracefulReason, code: number, text: string, replyMs = CLOSE_REPLY_MS, backendCode = code): void {
    if (this.closing !== undefined) return;
    this.closing = reason;
    this.tunnel.ending(reason);
    this.stopTimers();
    const { toClient, toUpstream, tunnel } = this;
    if (toClient.passThrough || toUpstream.passThrough) {
      // Frames cannot be placed safely in a malformed stream.
      tunnel.destroy(reason);
      return;
    }
    // A side whose own close already went through has started the closing
    // handshake: the other side got a close frame, and one is enough.
    if (tunnel.fromUpstream.closeSeen) toClient.stopForwarding();
    else toClient.inject(closeFrame(code, text, false));
    if (tunnel.fromClient.closeSeen) toUpstream.stopForwarding();
    else toUpstream.inject(closeFrame(backendCode, text, true));
    this.closeTimer = setTimeout(() => this.tunnel.destroy(reason), replyMs);
    this.closeTimer.unref();
    this.maybeFinished();
  }

  /** The tunnel ended: no timer may outlive it. */
  dispose(): void {
    this.stopTimers();
    clearTimeout(this.closeTimer);
  }

  get isClosing(): boolean {
    return this.closing !== undefined;
  }

  // ------------------------------------------------------------ GateEvents

  ownPong(gate: FrameGate): void {
    if (gate === this.toUpstream) this.clientPongDue = 0;
    else this.upstreamPongDue = 0;
  }

  closeArrived(): void {
    this.maybeFinished();
  }

  dataFrame(gate: FrameGate): boolean {
    if (this.closing !== undefined) return true;
    const policy = this.policy;
    if (!policy) return true;
    const tracker = gate.tracker;
    if (tracker.messageTooBig) {
      this.policyClose(gate, CLOSE_MESSAGE_TOO_BIG, 'message too big');
      return false;
    }
    const limit = policy.maxMessagesPerSecond;
    // Only the client's messages are rate-limited; a new message starts with opcode 1 or 2.
    if (limit !== undefined && gate === this.toUpstream && tracker.currentOpcode !== 0) {
      const now = performance.now();
      if (now - this.windowStart >= 1_000) {
        this.windowStart = now;
        this.messagesInWindow = 0;
      }
      if (++this.messagesInWindow > limit) {
        this.policyClose(gate, CLOSE_POLICY_VIOLATION, 'message rate limit');
        return false;
      }
    }
    return true;
  }

  malformed(): void {
    // Bytes keep flowing unchanged; acts that need frame boundaries are off.
    this.stopTimers();
    if (this.closing !== undefined) {
      this.tunnel.destroy(this.closing);
      return;
    }
    // Limits that cannot be enforced any more must not be bypassed by breaking the protocol.
    const policy = this.policy;
    if (policy && (policy.maxMessageBytes !== undefined || policy.maxMessagesPerSecond !== undefined)) {
      this.tunnel.ending('policy');
      this.tunnel.destroy('policy');
    }
  }

  // ------------------------------------------------------------ inside

  /** The sender of a refused message gets the policy's code, the other side 1001. */
  private policyClose(gate: FrameGate, code: number, text: string): void {
    const clientCode = gate === this.toUpstream ? code : CLOSE_GOING_AWAY;
    const backendCode = gate === this.toUpstream ? CLOSE_GOING_AWAY : code;
    this.closeGracefully('policy', clientCode, text, CLOSE_REPLY_MS, backendCode);
  }

  /** Both sides have sent their close frame after the proxy sent its own: end both. */
  private maybeFinished(): void {
    if (this.closing === undefined) return;
    const { toClient, toUpstream, tunnel } = this;
    if (!toClient.closedToDestination || !toUpstream.closedToDestination) return;
    if (!tunnel.fromClient.closeSeen || !tunnel.fromUpstream.closeSeen) return;
    // The proxy speaks as the server to the client (it closes TCP first) and as
    // the client to the backend (whose server closes first; our FIN is fine too).
    tunnel.client.end();
    tunnel.upstream.end();
  }

  private checkPings(ping: NonNullable<WebSocketPolicyConfig['ping']>): void {
    const now = performance.now();
    // A ping still waiting behind a long frame has not been sent: its pong is not due yet.
    if (this.clientPongDue > 0 && this.toClient.hasPending) this.clientPongDue = now + ping.timeoutMs;
    if (this.upstreamPongDue > 0 && this.toUpstream.hasPending) this.upstreamPongDue = now + ping.timeoutMs;
    if ((this.clientPongDue > 0 && now > this.clientPongDue) || (this.upstreamPongDue > 0 && now > this.upstreamPongDue)) {
      this.closeGracefully('ping_timeout', CLOSE_GOING_AWAY, 'no pong to the proxy\'s ping', Math.min(CLOSE_REPLY_MS, ping.timeoutMs));
      return;
    }
    if (ping.client && this.clientPongDue === 0 && now - this.lastFromClient >= ping.intervalMs) {
      this.clientPongDue = now + ping.timeoutMs;
      this.toUpstream.expectedPong = this.ping(this.toClient, false);
    }
    if (ping.backend && this.upstreamPongDue === 0 && now - this.lastFromUpstream >= ping.intervalMs) {
      this.upstreamPongDue = now + ping.timeoutMs;
      this.toClient.expectedPong = this.ping(this.toUpstream, true);
    }
  }

  /** A ping through `gate` to its destination; returns the payload its pong must echo. */
  private ping(gate: FrameGate, masked: boolean): Buffer {
    const payload = Buffer.concat([PING_PREFIX, randomBytes(8)]);
    gate.inject(pingFrame(payload, masked));
    return payload;
  }

  private stopTimers(): void {
    clearInterval(this.pingTimer);
    clearTimeout(this.ageTimer);
    this.pingTimer = undefined;
    this.ageTimer = undefined;
  }
}

/** Marks the proxy's pings, for whoever reads a capture. */
const PING_PREFIX = Buffer.from('switchyard:');
