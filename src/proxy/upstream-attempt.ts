import { UPSTREAM_DEFAULTS, type FailureKind } from '../config/model.js';
import { ProxyError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { RouteStats } from '../observe/route-stats.js';
import { FULL, type SelectionInput, type UpstreamPool } from '../upstream/upstream-pool.js';
import type { UpstreamServer } from '../upstream/upstream-server.js';
import type { Waiter } from '../upstream/wait-queue.js';

/**
 * The `selectUpstream` phase and the `failToConnect` hook, shared by the HTTP
 * exchange and the WebSocket handshake (as their base class, so a request costs
 * no extra object): pick a server, count it, wait in the queue when every
 * server is full, and after a failure that is safe to retry try another server,
 * up to the pool's retries and deadline, while nothing was sent to the client.
 */
export abstract class UpstreamAttempt implements Waiter {
  protected server: UpstreamServer | undefined;
  /** The server of the latest attempt, kept for the access log. */
  protected lastServer: UpstreamServer | undefined;
  /** Set-Cookie for cookie affinity (re-pinning), if the selection asked for one. */
  protected setCookie: string | undefined;
  protected done = false;
  /** Servers tried after the first (the access log's retries). */
  protected retries = 0;
  private tried: UpstreamServer[] | undefined;
  private lastError: ProxyError | undefined;
  private retriesLeft: number;
  private readonly deadline: number;
  private waiting = false;

  constructor(protected readonly pool: UpstreamPool, protected readonly log: Logger, protected readonly stats: RouteStats) {
    this.retriesLeft = pool.config.retries ?? UPSTREAM_DEFAULTS.retries;
    this.deadline = Date.now() + (pool.config.retryDeadlineMs ?? UPSTREAM_DEFAULTS.retryDeadlineMs);
  }

  /** What the pool needs to choose; `tried` lists the servers that failed already. */
  protected abstract selectionInput(tried: readonly UpstreamServer[] | undefined): SelectionInput;
  /** Send the request to this server (it is acquired). */
  protected abstract begin(server: UpstreamServer): void;
  /** Answer the client with this error; nothing more will be tried. */
  protected abstract fail(error: ProxyError): void;

  protected pick(): void {
    const selection = this.pool.select(this.selectionInput(this.tried), Date.now());
    if (selection === FULL) {
      if (this.pool.wait(this)) this.waiting = true;
      else this.fail(this.busy());
      return;
    }
    if (!selection) {
      this.fail(this.lastError ?? new ProxyError('SY_NO_UPSTREAM'));
      return;
    }
    const server = selection.server;
    this.server = server;
    this.lastServer = server;
    // A retry is an attempt on another server, not the wish for one.
    if (this.tried) {
      this.retries++;
      this.pool.retries++;
    }
    this.setCookie = selection.setCookie;
    this.pool.acquire(server, this.stats);
    this.begin(server);
  }

  ready(): void {
    this.waiting = false;
    if (!this.done) this.pick();
  }

  expired(): void {
    this.waiting = false;
    if (!this.done) this.fail(this.busy());
  }

  /**
   * The current server failed before anything reached the client. `kind` feeds
   * passive health; `retryable` says whether the request may go elsewhere.
   */
  protected attemptFailed(error: ProxyError, kind: FailureKind | undefined, retryable: boolean): void {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    if (kind !== undefined) this.pool.recordFailure(server, kind, Date.now());
    this.pool.release(server, this.stats);
    (this.tried ??= []).push(server);
    this.lastError = error;
    if (retryable && this.retriesLeft > 0 && Date.now() < this.deadline) {
      this.retriesLeft--;
      this.log.warn({ code: error.code, upstream: server.url, err: error.message }, 'upstream failed before answering; trying another server');
      this.pick();
      return;
    }
    this.log.warn({ code: error.code, upstream: server.url, err: error.message }, 'upstream request failed');
    this.fail(error);
  }

  /** Gives the server back (request finished, client left, or handed to a tunnel). */
  protected releaseServer(): void {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.pool.release(server, this.stats);
  }

  protected stopWaiting(): void {
    if (!this.waiting) return;
    this.waiting = false;
    this.pool.stopWaiting(this);
  }

  private busy(): ProxyError {
    const error = new ProxyError('SY_UPSTREAM_BUSY', this.pool.config.name);
    error.retryAfter = Math.max(1, Math.ceil((this.pool.config.queueTimeoutMs ?? UPSTREAM_DEFAULTS.queueTimeoutMs) / 1000));
    return error;
  }
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * May a request that reached a backend, which then reset without answering, go
 * to another server? Only an idempotent one without a body: the backend may
 * have acted on it, and a streamed body cannot be sent twice.
 */
export function safeToResend(method: string, hasBody: boolean): boolean {
  return !hasBody && IDEMPOTENT.has(method);
}

/** What a failure counts as for passive health, from its error code. */
export function failureKind(error: ProxyError, sent: boolean): FailureKind | undefined {
  switch (error.code) {
    case 'SY_UPSTREAM_CONNECT_REFUSED':
    case 'SY_UPSTREAM_CONNECT_TIMEOUT':
    case 'SY_UPSTREAM_UNREACHABLE':
    case 'SY_UPSTREAM_TLS':
      return 'connect';
    case 'SY_UPSTREAM_TIMEOUT':
      return sent ? 'timeout' : 'connect';
    case 'SY_UPSTREAM_RESET':
    case 'SY_UPSTREAM_BAD_RESPONSE':
      return 'reset';
    default:
      return undefined;
  }
}
