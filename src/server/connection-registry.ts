import type { ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';

const kRegistry = Symbol('switchyard.registry');
type RegisteredSocket = Socket & { [kRegistry]?: ConnectionRegistry };

function ignore(): void {
  // Session errors (a peer's protocol violation) end that session only.
}

/** Shared by every connection: no closure is kept per socket. */
function onConnectionClose(this: RegisteredSocket): void {
  this[kRegistry]?.connectionClosed(this);
}

export interface Closable {
  /** Ends the tracked thing at once (both sockets of a tunnel). */
  destroy(reason: 'shutdown' | 'drain' | 'down' | 'admin'): void;
  /** Ends it politely (WebSocket close frames to both sides); what is still open `leftMs` from now is cut. */
  closeGracefully?(reason: 'shutdown' | 'drain', leftMs: number): void;
}

/**
 * Every client connection, in-flight request and tunnel is registered here and
 * leaves exactly once, so shutdown can wait for them and tests can prove that
 * nothing leaks.
 */
export class ConnectionRegistry {
  readonly connections = new Set<Socket>();
  readonly tunnels = new Set<Closable>();
  /** HTTP/2 sessions: told to stop taking streams (GOAWAY) on shutdown. */
  readonly sessions = new Set<ServerHttp2Session>();
  inFlight = 0;
  draining = false;
  /** Requests and WebSocket handshakes seen, by the protocol the client used. */
  readonly counts = { http1Requests: 0, http2Requests: 0, http1WebSockets: 0, http2WebSockets: 0 };
  private idleWaiters: (() => void)[] = [];

  addConnection(socket: Socket): void {
    // A replayed request (an upgrade forwarded as plain HTTP) re-announces its socket.
    if (this.connections.has(socket)) return;
    this.connections.add(socket);
    (socket as RegisteredSocket)[kRegistry] = this;
    socket.once('close', onConnectionClose);
  }

  addSession(session: ServerHttp2Session): void {
    this.sessions.add(session);
    session.on('error', ignore);
    session.once('close', () => this.sessions.delete(session));
    if (this.draining) session.close();
  }

  /** Graceful: each HTTP/2 session finishes its streams and takes no new ones. */
  closeSessions(): void {
    for (const session of this.sessions) if (!session.closed) session.close();
  }

  /** Does a tunnel ride on this HTTP/2 session (a WebSocket over HTTP/2)? */
  hasTunnelOn(session: ServerHttp2Session): boolean {
    for (const tunnel of this.tunnels) {
      if ((tunnel as { client?: { session?: unknown } }).client?.session === session) return true;
    }
    return false;
  }

  /** Resolves once every HTTP/2 session has closed (its last frames written). */
  whenSessionsClosed(): Promise<void> {
    return Promise.all([...this.sessions].map((session) => new Promise<void>((resolve) => {
      if (session.destroyed) resolve();
      else session.once('close', () => resolve());
    }))).then(() => undefined);
  }

  connectionClosed(socket: Socket): void {
    this.connections.delete(socket);
    this.checkIdle();
  }

  requestStarted(): void {
    this.inFlight++;
  }

  requestFinished(): void {
    this.inFlight--;
    this.checkIdle();
  }

  addTunnel(tunnel: Closable): void {
    this.tunnels.add(tunnel);
  }

  removeTunnel(tunnel: Closable): void {
    if (this.tunnels.delete(tunnel)) this.checkIdle();
  }

  get busy(): boolean {
    return this.inFlight > 0 || this.tunnels.size > 0;
  }

  /** Resolves once no request is in flight and no tunnel is open. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  destroyAll(reason: 'shutdown'): void {
    for (const tunnel of [...this.tunnels]) tunnel.destroy(reason);
    for (const socket of [...this.connections]) socket.destroy();
  }

  private checkIdle(): void {
    if (this.busy || this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
