import { constants as http2Constants, type Http2Stream } from 'node:http2';
import { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Closable, ConnectionRegistry } from '../server/connection-registry.js';
import { FrameTracker } from './frames/frame-tracker.js';
import { CLOSE_GOING_AWAY, CLOSE_SERVICE_RESTART } from './frames/control-frames.js';
import { CLOSE_REPLY_MS, TunnelControl, type ControlledTunnel, type GracefulReason } from './tunnel-control.js';
import type { WebSocketPolicyConfig } from '../config/model.js';
import type { Observer } from '../observe/observer.js';
import type { RouteStats } from '../observe/route-stats.js';
import type { ClosedBy, TunnelRecord } from '../observe/records.js';
import type { TunnelView } from '../observe/metrics.js';
import type { UpstreamPool } from '../upstream/upstream-pool.js';
import type { UpstreamServer } from '../upstream/upstream-server.js';

const kTunnel = Symbol('switchyard.tunnel');
/** The client side: an upgraded HTTP/1.1 connection, or an HTTP/2 stream (RFC 8441). */
export type TunnelClient = Socket | Http2Stream;
type TunnelSocket = TunnelClient & { [kTunnel]?: Tunnel };

export type TunnelEndReason = 'client' | 'upstream' | 'idle' | 'error' | 'down' | GracefulReason;

const CLOSED_BY: Record<TunnelEndReason, ClosedBy> = {
  client: 'client', upstream: 'backend', idle: 'idle_timeout', error: 'error', shutdown: 'shutdown', drain: 'drain', down: 'server_down', admin: 'admin',
  max_age: 'max_age', ping_timeout: 'ping_timeout', policy: 'policy',
};

/** What the handshake knew, for the tunnel's log line, metrics and the admin API. */
export interface TunnelOrigin {
  /** The request's log record as the 101 left it; the tunnel's record extends it. */
  readonly request: Omit<TunnelRecord, 'type' | 'session_ms' | 'bytes_from_client' | 'bytes_from_backend' | 'messages_from_client'
    | 'messages_from_backend' | 'client_close' | 'backend_close' | 'closed_by' | 'malformed' | 'malformed_from' | 'error_from'>;
  readonly stats: RouteStats;
  readonly upstreamName: string;
  readonly observer: Observer;
  /** The route's WebSocket policies, if it has any. */
  readonly policy?: WebSocketPolicyConfig | undefined;
}

let nextTunnelId = 1;

const CLIENT_READ_ENDED = 1;
const UPSTREAM_READ_ENDED = 2;
const KEEPALIVE_DELAY_MS = 60_000;

/**
 * The two-way byte pipe after a 101. Listeners are shared module functions that
 * find their tunnel through a symbol on the socket, so an idle tunnel costs two
 * sockets and this one small object: no per-connection closures, nothing
 * allocated per chunk. Backpressure pauses the fast side; a FIN is passed on;
 * an error on either side destroys both; the idle timer watches bytes both ways.
 */
export class Tunnel implements Closable, TunnelView, ControlledTunnel {
  readonly id = nextTunnelId++;
  bytesFromClient = 0;
  bytesFromUpstream = 0;
  endReason: TunnelEndReason | undefined;
  /** Frame headers seen each way: messages, pings, close codes (nothing is changed). */
  readonly fromClient: FrameTracker;
  readonly fromUpstream: FrameTracker;
  /** The proxy acting inside the stream (policies, graceful close); undefined: a plain pipe. */
  control: TunnelControl | undefined;
  /** performance.now() when the tunnel opened. */
  readonly openedAt = performance.now();
  readonly openedAtWall = Date.now();
  private readEnded = 0;
  /** Which side's close frame came first: 0 none yet, else CLIENT_READ_ENDED or UPSTREAM_READ_ENDED. */
  firstClose = 0;
  /** The side whose socket failed first, when one did. */
  errorFrom: 'client' | 'backend' | undefined;
  /** The side whose stream broke the protocol first, when one did. */
  malformedFrom: 'client' | 'backend' | undefined;

  constructor(
    readonly client: TunnelClient,
    readonly upstream: Socket,
    readonly server: UpstreamServer,
    private readonly pool: UpstreamPool,
    private readonly registry: ConnectionRegistry,
    idleTimeoutMs: number,
    readonly origin: TunnelOrigin,
  ) {
    const policy = origin.policy;
    this.fromClient = new FrameTracker({ expectMasked: true, maxMessageBytes: policy?.maxMessageBytes });
    this.fromUpstream = new FrameTracker({ expectMasked: false, maxMessageBytes: policy?.maxMessageBytes });
    if (policy && (policy.ping || policy.maxAgeMs !== undefined || policy.maxMessageBytes !== undefined || policy.maxMessagesPerSecond !== undefined)) {
      this.control = new TunnelControl(this, policy);
    }
    (client as TunnelSocket)[kTunnel] = this;
    (upstream as TunnelSocket)[kTunnel] = this;
    // The handshake acquired the server; the tunnel releases it when it ends.
    server.tunnels.add(this);
    registry.addTunnel(this);
    // An HTTP/2 stream shares its connection's socket: TCP options are the session's.
    if (client instanceof Socket) {
      client.setNoDelay(true);
      client.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    }
    upstream.setNoDelay(true);
    upstream.setKeepAlive(true, KEEPALIVE_DELAY_MS);
    // The client side sees every byte both ways (reads, and writes of what the
    // upstream sent), so one timer covers "no bytes either way".
    if (idleTimeoutMs > 0) client.setTimeout(idleTimeoutMs, onIdle);
    client.on('error', onSocketError);
    upstream.on('error', onSocketError);
    client.on('close', onSocketClose);
    upstream.on('close', onSocketClose);
    client.on('end', onClientEnd);
    upstream.on('end', onUpstreamEnd);
    client.on('drain', onClientDrain);
    upstream.on('drain', onUpstreamDrain);
    client.on('data', onClientData);
    upstream.on('data', onUpstreamData);
  }

  get stats(): RouteStats {
    return this.origin.stats;
  }

  get upstreamName(): string {
    return this.origin.upstreamName;
  }

  get serverUrl(): string {
    return this.server.url;
  }

  messagesFromClient(): number {
    return this.fromClient.messages;
  }

  messagesFromUpstream(): number {
    return this.fromUpstream.messages;
  }

  /** Bytes that arrived with the handshake (after the 101, or after the request head) go first. */
  sendEarly(toClient: Buffer, toUpstream: Buffer): void {
    if (toClient.length > 0) this.fromUpstreamChunk(toClient);
    if (toUpstream.length > 0) this.fromClientChunk(toUpstream);
  }

  /** One chunk from the client, on to the backend; false when the backend's buffer is full. */
  fromClientChunk(chunk: Buffer): boolean {
    this.bytesFromClient += chunk.length;
    const tracker = this.fromClient;
    let flowing: boolean;
    if (this.control) {
      this.control.fromClient(chunk);
      flowing = !this.upstream.writableNeedDrain;
    } else {
      tracker.feed(chunk);
      flowing = this.upstream.write(chunk);
    }
    if (this.firstClose === 0 && tracker.closeSeen) this.firstClose = CLIENT_READ_ENDED;
    if (tracker.malformed !== undefined) this.malformedFrom ??= 'client';
    return flowing;
  }

  /** One chunk from the backend, on to the client; false when the client's buffer is full. */
  fromUpstreamChunk(chunk: Buffer): boolean {
    this.bytesFromUpstream += chunk.length;
    const tracker = this.fromUpstream;
    let flowing: boolean;
    if (this.control) {
      this.control.fromUpstream(chunk);
      flowing = !this.client.writableNeedDrain;
    } else {
      tracker.feed(chunk);
      flowing = this.client.write(chunk);
    }
    if (this.firstClose === 0 && tracker.closeSeen) this.firstClose = UPSTREAM_READ_ENDED;
    if (tracker.malformed !== undefined) this.malformedFrom ??= 'backend';
    return flowing;
  }

  /**
   * Ends the tunnel with close frames to both sides (1001 Going Away on
   * shutdown, 1012 Service Restart on drain) at frame boundaries; whatever
   * has not closed after the close handshake's time (or `leftMs`) is cut.
   */
  closeGracefully(reason: 'shutdown' | 'drain', leftMs: number): void {
    // Already over (paced closes reach tunnels that ended meanwhile).
    if (this.client.destroyed || this.upstream.destroyed) return;
    this.control ??= new TunnelControl(this, undefined);
    const code = reason === 'shutdown' ? CLOSE_GOING_AWAY : CLOSE_SERVICE_RESTART;
    const replyMs = Math.max(0, Math.min(CLOSE_REPLY_MS, leftMs));
    this.control.closeGracefully(reason, code, reason === 'shutdown' ? 'proxy shutting down' : 'server draining', replyMs);
  }

  ending(reason: GracefulReason): void {
    this.endReason ??= reason;
  }

  destroy(reason: TunnelEndReason): void {
    this.endReason ??= reason;
    // An HTTP/2 stream says why it was cut (RFC 9113 §7): the proxy's own
    // decision (idle, shutdown, drain) is CANCEL, a failure CONNECT_ERROR.
    if (this.client instanceof Socket) this.client.destroy();
    else this.client.close(reason === 'error' ? NGHTTP2_CONNECT_ERROR : NGHTTP2_CANCEL);
    this.upstream.destroy();
  }

  /** Called once per side; the second call retires the tunnel. */
  sideClosed(socket: TunnelClient): void {
    const other = socket === this.client ? this.upstream : this.client;
    if (!other.destroyed) {
      // A clean close after both FINs lets the other side flush; anything else
      // (a reset, a close without FIN) takes the other side down with it.
      if (this.readEnded !== (CLIENT_READ_ENDED | UPSTREAM_READ_ENDED)) {
        this.endReason ??= socket === this.client ? 'client' : 'upstream';
        cutOtherSide(socket, other, (this.readEnded & (socket === this.client ? CLIENT_READ_ENDED : UPSTREAM_READ_ENDED)) !== 0);
      }
      return;
    }
    this.control?.dispose();
    this.server.tunnels.delete(this);
    this.pool.release(this.server, this.origin.stats);
    this.registry.removeTunnel(this);
    const client = this.client as TunnelSocket;
    const upstream = this.upstream as TunnelSocket;
    client[kTunnel] = undefined;
    upstream[kTunnel] = undefined;
    this.report();
  }

  private report(): void {
    const { fromClient, fromUpstream, origin } = this;
    origin.observer.tunnelEnded({
      ...origin.request,
      type: 'tunnel',
      session_ms: Math.round((performance.now() - this.openedAt) * 1000) / 1000,
      bytes_from_client: this.bytesFromClient,
      bytes_from_backend: this.bytesFromUpstream,
      messages_from_client: fromClient.messages,
      messages_from_backend: fromUpstream.messages,
      client_close: fromClient.closeSeen ? { code: fromClient.closeCode ?? 1005, reason: fromClient.closeReason } : undefined,
      backend_close: fromUpstream.closeSeen ? { code: fromUpstream.closeCode ?? 1005, reason: fromUpstream.closeReason } : undefined,
      closed_by: this.closedBy(),
      error_from: this.endReason === 'error' ? this.errorFrom : undefined,
      error: this.endReason === 'error' ? 'SY_TUNNEL_ERROR' : origin.request.error,
      malformed: this.malformedFrom === 'backend' ? fromUpstream.malformed : fromClient.malformed ?? fromUpstream.malformed,
      malformed_from: this.malformedFrom,
    }, origin.stats);
  }

  /** The side that sent the first close frame closed; else what ended the pipe. */
  private closedBy(): ClosedBy {
    const reason = this.endReason ?? 'client';
    if (reason === 'client' || reason === 'upstream') {
      if (this.firstClose === CLIENT_READ_ENDED) return 'client';
      if (this.firstClose === UPSTREAM_READ_ENDED) return 'backend';
    }
    return CLOSED_BY[reason];
  }

  readEnd(side: number): void {
    // An HTTP/2 stream reset by the client also ends its readable side; that is
    // a reset to pass on, not a FIN (RFC 9113 §8.5).
    if (side === CLIENT_READ_ENDED && !(this.client instanceof Socket) && (this.client.rstCode ?? NGHTTP2_NO_ERROR) !== NGHTTP2_NO_ERROR) {
      this.endReason ??= 'client';
      resetSocket(this.upstream);
      return;
    }
    this.readEnded |= side;
    if (side === CLIENT_READ_ENDED) {
      this.endReason ??= 'client';
      this.upstream.end();
    } else {
      this.endReason ??= 'upstream';
      this.client.end();
    }
  }
}

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_CONNECT_ERROR } = http2Constants;

/**
 * One side closed, the other is still open. Over HTTP/2 (RFC 9113 §8.5, for
 * CONNECT): a backend connection that ended without its FIN resets the stream
 * with CONNECT_ERROR, and a stream reset with an error code resets the backend
 * TCP connection; otherwise the other side is simply closed.
 */
function cutOtherSide(closed: TunnelClient, other: TunnelClient, closedAfterFin: boolean): void {
  if (other instanceof Socket) {
    if (!(closed instanceof Socket) && (closed.rstCode ?? NGHTTP2_NO_ERROR) !== NGHTTP2_NO_ERROR) resetSocket(other);
    else other.destroy();
  } else if (closedAfterFin) {
    other.destroy();
  } else {
    other.close(NGHTTP2_CONNECT_ERROR);
  }
}

function resetSocket(socket: Socket): void {
  // A TLS socket cannot send a bare TCP reset (Node refuses its handle type),
  // and one whose FIN is queued but not yet sent would never report 'close'.
  if (socket instanceof TLSSocket || (socket.writableEnded && !socket.writableFinished)) socket.destroy();
  else socket.resetAndDestroy();
}

function onClientData(this: TunnelSocket, chunk: Buffer): void {
  const tunnel = this[kTunnel];
  if (tunnel && !tunnel.fromClientChunk(chunk)) this.pause();
}

function onUpstreamData(this: TunnelSocket, chunk: Buffer): void {
  const tunnel = this[kTunnel];
  if (tunnel && !tunnel.fromUpstreamChunk(chunk)) this.pause();
}

function onClientDrain(this: TunnelSocket): void {
  this[kTunnel]?.upstream.resume();
}

function onUpstreamDrain(this: TunnelSocket): void {
  this[kTunnel]?.client.resume();
}

function onClientEnd(this: TunnelSocket): void {
  // Node ends an HTTP/2 stream's readable side before it reports the
  // RST_STREAM that ended it: look again once the frame has been handled.
  if (this instanceof Socket) this[kTunnel]?.readEnd(CLIENT_READ_ENDED);
  else setImmediate(clientEndedLater, this);
}

function clientEndedLater(stream: TunnelSocket): void {
  stream[kTunnel]?.readEnd(CLIENT_READ_ENDED);
}

function onUpstreamEnd(this: TunnelSocket): void {
  this[kTunnel]?.readEnd(UPSTREAM_READ_ENDED);
}

function onIdle(this: TunnelSocket): void {
  this[kTunnel]?.destroy('idle');
}

function onSocketError(this: TunnelSocket): void {
  // The error itself is expected traffic (resets); 'close' follows and tears down.
  const tunnel = this[kTunnel];
  if (!tunnel) return;
  tunnel.endReason ??= 'error';
  tunnel.errorFrom ??= this === tunnel.client ? 'client' : 'backend';
}

function onSocketClose(this: TunnelSocket): void {
  this[kTunnel]?.sideClosed(this);
}
