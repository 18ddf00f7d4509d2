import type { Socket } from 'node:net';
import type { LimitConfig } from '../config/model.js';
import type { ErrorCode } from '../errors.js';

const kRefusal = Symbol('switchyard.refusal');
type MarkedSocket = Socket & { [kRefusal]?: ErrorCode };

/** Why this connection's requests are refused (it came in over a limit), if it did. */
export function connectionRefusal(socket: Socket | undefined): ErrorCode | undefined {
  return socket ? (socket as MarkedSocket)[kRefusal] : undefined;
}

/** Counts open connections of one listener (its max_connections). */
export interface ListenerCount {
  open: number;
  readonly max: number | undefined;
}

const SWEEP_MS = 10_000;

/**
 * Connection counts (all listeners, per listener, per client address) and the
 * per-address WebSocket handshake rate. A connection over a limit is still
 * accepted, so its first request can be answered with a status (503 or 429)
 * and a reason rather than a silent reset; then it is closed.
 */
export class ClientLimits {
  private total = 0;
  private readonly perAddress = new Map<string, number>();
  /** Token buckets of the handshake rate: tokens left, and when they were counted. */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor() {
    // Full buckets carry no information: drop them now and then.
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  connectionOpened(socket: Socket, address: string, listener: ListenerCount, limits: LimitConfig): void {
    this.total++;
    listener.open++;
    const count = (this.perAddress.get(address) ?? 0) + 1;
    this.perAddress.set(address, count);
    socket.once('close', () => {
      this.total--;
      listener.open--;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left === 0) this.perAddress.delete(address);
      else this.perAddress.set(address, left);
    });
    const refusal = limits.maxConnections !== undefined && this.total > limits.maxConnections ? 'SY_PROXY_CONNECTION_LIMIT'
      : listener.max !== undefined && listener.open > listener.max ? 'SY_PROXY_CONNECTION_LIMIT'
        : limits.maxConnectionsPerIp !== undefined && count > limits.maxConnectionsPerIp ? 'SY_CLIENT_CONNECTION_LIMIT'
          : undefined;
    if (refusal) (socket as MarkedSocket)[kRefusal] = refusal;
  }

  /** One handshake from this address: false when it is over the rate (a token bucket, burst = rate). */
  handshakeAllowed(address: string, perSecond: number | undefined): boolean {
    if (perSecond === undefined) return true;
    const now = performance.now();
    let bucket = this.buckets.get(address);
    if (!bucket) {
      bucket = { tokens: perSecond, at: now };
      this.buckets.set(address, bucket);
    }
    bucket.tokens = Math.min(perSecond, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  private sweep(): void {
    const now = performance.now();
    for (const [address, bucket] of this.buckets) if (now - bucket.at > SWEEP_MS) this.buckets.delete(address);
  }
}
