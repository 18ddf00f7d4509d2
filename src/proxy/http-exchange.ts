import type { ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ProxyError, upstreamError } from '../errors.js';
import type { RouteDecision } from '../router/router.js';
import type { RequestFacts } from '../router/route-matcher.js';
import type { UpstreamServer } from '../upstream/upstream-server.js';
import { type ForwardContext } from './headers.js';
import type { ProxyContext } from './proxy-context.js';
import { respondWithError } from './raw-response.js';
import { responseHeadersFor } from './response-headers.js';
import { UpstreamRequestHeaders } from './upstream-request-headers.js';

const kExchange = Symbol('switchyard.exchange');
type TrackedResponse = ServerResponse & { [kExchange]?: HttpExchange };

/**
 * One proxied HTTP request: picks a server of the route's pool, streams the
 * request to it through undici's pool, and streams the response back with
 * backpressure both ways. It is undici's dispatch handler itself, so no closures
 * are made per request.
 */
export class HttpExchange implements Dispatcher.DispatchHandler {
  private server: UpstreamServer | undefined;
  private tried: UpstreamServer[] | undefined;
  /** Why the previous server failed, reported when no server is left to try. */
  private lastError: ProxyError | undefined;
  private setCookie: string | undefined;
  private body: PassThrough | null = null;
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  /** The request reached a backend socket: no longer safe to retry blindly. */
  private sent = false;
  private done = false;
  private readonly headers: UpstreamRequestHeaders;

  constructor(
    private readonly context: ProxyContext,
    private readonly decision: RouteDecision,
    private readonly facts: RequestFacts,
    private readonly res: ServerResponse,
    private readonly forward: ForwardContext,
  ) {
    this.headers = new UpstreamRequestHeaders(facts.req, forward, decision.route, false);
    context.registry.requestStarted();
    (res as TrackedResponse)[kExchange] = this;
    res.on('close', onResponseClose);
  }

  start(): void {
    const req = this.facts.req;
    const transferEncoding = req.headers['transfer-encoding'];
    if (transferEncoding !== undefined || (req.headers['content-length'] ?? '0') !== '0') {
      if (transferEncoding !== undefined && transferEncoding.toLowerCase() !== 'chunked') {
        this.fail(new ProxyError('SY_CLIENT_UNSUPPORTED_TRANSFER_ENCODING', transferEncoding));
        return;
      }
      // undici destroys a body stream when the upstream fails mid-request; a
      // PassThrough in between keeps the client's connection able to get a 502.
      this.body = req.pipe(new PassThrough());
    }
    this.dispatch();
  }

  private dispatch(): void {
    const { route, captures } = this.decision;
    const pool = route.pool!;
    const req = this.facts.req;
    const selection = pool.select(
      { kind: 'http', clientAddress: this.forward.clientAddress, cookieHeader: req.headers.cookie, secure: this.forward.secure, tried: this.tried },
      Date.now(),
    );
    if (!selection) {
      this.fail(this.lastError ?? new ProxyError('SY_NO_UPSTREAM'));
      return;
    }
    const server = selection.server;
    this.server = server;
    this.setCookie = selection.setCookie;
    server.active++;
    if (this.context.registry.draining) this.res.shouldKeepAlive = false;
    const timeouts = route.config.timeouts;
    try {
      server.dispatcherFor(timeouts.connectMs).dispatch({
        origin: server.origin,
        method: req.method as Dispatcher.HttpMethod,
        path: route.upstreamTarget(this.facts, captures, server, req.headers.host ?? '', this.forward.secure ? 'https' : 'http'),
        headers: this.headers.forServer(server),
        body: this.body,
        headersTimeout: timeouts.responseMs,
        bodyTimeout: timeouts.tunnelIdleMs,
      }, this);
    } catch (err) {
      server.active--;
      this.server = undefined;
      this.fail(upstreamError(err, 'response'));
    }
  }

  onConnect(abort: (err?: Error) => void): void {
    this.sent = true;
    this.abortUpstream = abort;
    if (this.done) abort(new ProxyError('SY_CLIENT_CLOSED'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: Node already answered 100-continue; others are dropped
    const server = this.server;
    if (this.done || !server) return false;
    this.resumeUpstream = resume;
    const client = { scheme: this.forward.secure ? 'https' : 'http', host: this.facts.req.headers.host ?? '' } as const;
    this.res.writeHead(statusCode, statusText, responseHeadersFor(rawHeaders, false, this.decision.route, server, client, this.setCookie));
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    // Pause undici until the client catches up; most responses never get here.
    this.res.once('drain', onResponseDrain);
    return false;
  }

  onComplete(): void {
    this.res.end();
    this.finish();
  }

  onError(err: Error): void {
    const server = this.server;
    if (this.done || !server) return;
    const error = upstreamError(err, this.sent ? 'response' : 'connect');
    if (!this.sent && error.retryable) {
      this.decision.route.pool!.markFailed(server, Date.now());
      this.releaseServer();
      (this.tried ??= []).push(server);
      this.lastError = error;
      this.context.log.warn({ code: error.code, upstream: server.url, err: error.message }, 'upstream connect failed, trying the next server');
      this.dispatch();
      return;
    }
    this.context.log.warn({ code: error.code, upstream: server.url, route: this.decision.route.label, err: error.message }, 'upstream request failed');
    this.fail(error);
  }

  /** The client went away before the response ended. */
  clientClosed(): void {
    if (this.done) return;
    // finish() first, so the abort's own onError is not logged as an upstream failure.
    const abort = this.abortUpstream;
    this.finish();
    abort?.(new ProxyError('SY_CLIENT_CLOSED'));
  }

  drained(): void {
    this.resumeUpstream?.();
  }

  private fail(error: ProxyError): void {
    respondWithError(this.res, error);
    this.finish();
  }

  private releaseServer(): void {
    if (this.server) this.server.active--;
    this.server = undefined;
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.releaseServer();
    if (this.body && !this.body.destroyed) {
      this.facts.req.unpipe(this.body);
      this.body.destroy();
    }
    this.context.registry.requestFinished();
  }
}

function onResponseClose(this: TrackedResponse): void {
  const exchange = this[kExchange];
  if (exchange && !this.writableFinished) exchange.clientClosed();
}

function onResponseDrain(this: TrackedResponse): void {
  this[kExchange]?.drained();
}
