import type { ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import { ProxyError, upstreamError } from '../errors.js';
import type { RouteDecision } from '../router/router.js';
import type { RequestFacts } from '../router/route-matcher.js';
import type { SelectionInput } from '../upstream/upstream-pool.js';
import type { UpstreamServer } from '../upstream/upstream-server.js';
import { isHttp2, normaliseAddress, type ForwardContext } from './headers.js';
import { dispatcherForClient } from '../upstream/proxy-protocol-connect.js';
import type { Http2Session } from 'node:http2';
import type { ProxyContext } from './proxy-context.js';
import { respondWithError } from './raw-response.js';
import { responseHeadersFor } from './response-headers.js';
import { failureKind, safeToResend, UpstreamAttempt } from './upstream-attempt.js';
import { UpstreamRequestHeaders } from './upstream-request-headers.js';
import { requestRecord, type RequestStart } from '../observe/request-record.js';
import type { IncomingMessage } from 'node:http';

const kExchange = Symbol('switchyard.exchange');
type TrackedResponse = ServerResponse & { [kExchange]?: HttpExchange };
type TrackedRequest = IncomingMessage & { [kExchange]?: HttpExchange };

/**
 * One proxied HTTP request: a server of the route's pool (UpstreamAttempt picks
 * and retries), the request streamed to it through undici's keep-alive pool,
 * the response streamed back with backpressure both ways. It is undici's
 * dispatch handler itself, so no closures are made per request.
 */
export class HttpExchange extends UpstreamAttempt implements Dispatcher.DispatchHandler {
  private body: PassThrough | null = null;
  private abortUpstream: ((err?: Error) => void) | undefined;
  private resumeUpstream: (() => void) | undefined;
  /** The request reached a backend socket: resending it is not always safe. */
  private sent = false;
  private readonly headers: UpstreamRequestHeaders;
  private readonly http2: boolean;
  // What the access log and metrics get when the exchange ends.
  bytesIn = 0;
  /** limits.max_body_bytes when this request was admitted. */
  readonly maxBodyBytes: number | undefined;
  private bytesOut = 0;
  private status = 0;
  private connectedAt: number | undefined;
  private headersAt: number | undefined;
  private errorCode: string | undefined;

  constructor(
    private readonly context: ProxyContext,
    private readonly decision: RouteDecision,
    private readonly facts: RequestFacts,
    private readonly res: ServerResponse,
    private readonly forward: ForwardContext,
    private readonly arrival: RequestStart,
  ) {
    super(decision.route.pool!, context.log, context.observer.statsFor(decision.route));
    this.headers = new UpstreamRequestHeaders(facts.req, forward, decision.route, false);
    this.http2 = isHttp2(facts.req);
    context.registry.requestStarted();
    this.maxBodyBytes = context.runtime.config.limits.maxBodyBytes;
    (res as TrackedResponse)[kExchange] = this;
    res.on('close', onResponseClose);
  }

  start(): void {
    const req = this.facts.req;
    const transferEncoding = req.headers['transfer-encoding'];
    // HTTP/2 needs no length to carry a body: a request has one unless its
    // HEADERS frame ended the stream.
    const hasBody = this.http2
      ? !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders
      : transferEncoding !== undefined || (req.headers['content-length'] ?? '0') !== '0';
    if (hasBody) {
      if (transferEncoding !== undefined && transferEncoding.toLowerCase() !== 'chunked') {
        this.fail(new ProxyError('SY_CLIENT_UNSUPPORTED_TRANSFER_ENCODING', transferEncoding));
        return;
      }
      // undici destroys a body stream when the upstream fails mid-request; a
      // PassThrough in between keeps the client's connection able to get a 502.
      this.body = req.pipe(new PassThrough());
      (req as TrackedRequest)[kExchange] = this;
      req.on('data', onRequestData);
    }
    this.pick();
  }

  protected selectionInput(tried: readonly UpstreamServer[] | undefined): SelectionInput {
    const req = this.facts.req;
    return {
      kind: 'http', clientAddress: this.forward.clientAddress, cookieHeader: req.headers.cookie, secure: this.forward.secure,
      tried, headers: this.facts.headers, query: this.facts.query,
    };
  }

  protected begin(server: UpstreamServer): void {
    const { route, captures } = this.decision;
    const req = this.facts.req;
    this.sent = false;
    if (this.context.registry.draining) this.res.shouldKeepAlive = false;
    const timeouts = route.config.timeouts;
    try {
      this.dispatcher(server, timeouts.connectMs).dispatch({
        origin: server.origin,
        method: req.method as Dispatcher.HttpMethod,
        path: route.upstreamTarget(this.facts, captures, server, req.headers.host ?? '', this.forward.secure ? 'https' : 'http'),
        headers: this.headers.forServer(server),
        body: this.body,
        headersTimeout: timeouts.responseMs,
        bodyTimeout: timeouts.tunnelIdleMs,
      }, this);
    } catch (err) {
      this.releaseServer();
      this.fail(upstreamError(err, 'response'));
    }
  }

  /** The server's keep-alive pool; with the PROXY protocol, this client connection's own upstream connection. */
  private dispatcher(server: UpstreamServer, connectMs: number): Dispatcher {
    const version = this.pool.config.sendProxyProtocol;
    if (version === undefined) return server.dispatcherFor(connectMs);
    const req = this.facts.req;
    // HTTP/2 streams share their session's connection; HTTP/1.1 requests their socket.
    const owner = (req as unknown as { stream?: { session?: Http2Session } }).stream?.session ?? req.socket;
    const local = req.socket;
    return dispatcherForClient(owner, server, version, { address: this.forward.clientAddress, port: this.forward.clientPort },
      { address: normaliseAddress(local.localAddress), port: local.localPort ?? 0 }, connectMs);
  }

  onConnect(abort: (err?: Error) => void): void {
    this.sent = true;
    this.connectedAt = performance.now();
    this.abortUpstream = abort;
    if (this.done) abort(new ProxyError('SY_CLIENT_CLOSED'));
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true; // 1xx: Node already answered 100-continue; others are dropped
    const server = this.server;
    if (this.done || !server) return false;
    this.headersAt = performance.now();
    this.status = statusCode;
    if (statusCode >= 500) this.pool.recordFailure(server, '5xx', Date.now());
    else this.pool.recordSuccess(server);
    this.resumeUpstream = resume;
    const client = { scheme: this.forward.secure ? 'https' : 'http', host: this.facts.req.headers.host ?? '' } as const;
    const headers = responseHeadersFor(rawHeaders, false, this.decision.route, server, client, this.setCookie);
    if (this.forward.hsts !== undefined && !hasHeader(headers, 'strict-transport-security')) headers.push('Strict-Transport-Security', this.forward.hsts);
    // HTTP/2 has no status text (neither from an HTTP/2 client nor an HTTP/2 upstream).
    if (this.http2 || statusText === '') this.res.writeHead(statusCode, headers);
    else this.res.writeHead(statusCode, statusText, headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.bytesOut += chunk.length;
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
    if (this.done || !this.server) return;
    const error = upstreamError(err, this.sent ? 'response' : 'connect');
    if (this.res.headersSent) {
      // Mid-body: the only honest signal left is a cut response.
      this.pool.recordFailure(this.server, 'reset', Date.now());
      this.log.warn({ code: error.code, upstream: this.server.url, route: this.decision.route.label, err: error.message }, 'upstream failed mid-response');
      this.fail(error);
      return;
    }
    const retryable = this.sent ? error.code === 'SY_UPSTREAM_RESET' && safeToResend(this.facts.method, this.body !== null) : error.retryable;
    this.attemptFailed(error, failureKind(error, this.sent), retryable);
  }

  /** The body grew past limits.max_body_bytes: 413 (or a cut response), and the upstream request is aborted. */
  bodyTooLarge(limit: number): void {
    if (this.done) return;
    const abort = this.abortUpstream;
    this.fail(new ProxyError('SY_CLIENT_BODY_TOO_LARGE', `more than ${limit} bytes`));
    abort?.(new ProxyError('SY_CLIENT_BODY_TOO_LARGE'));
  }

  /** The client went away before the response ended. */
  clientClosed(): void {
    if (this.done) return;
    // finish() first, so the abort's own onError is not logged as an upstream failure.
    const abort = this.abortUpstream;
    this.errorCode ??= 'SY_CLIENT_CLOSED';
    if (!this.res.headersSent) this.status = 499;
    this.finish();
    abort?.(new ProxyError('SY_CLIENT_CLOSED'));
  }

  /** The client caught up ('drain'): undici may read the upstream response on. */
  drained(): void {
    // Not right away: on a pipelined connection Node emits 'drain' on the response
    // being sent from inside a write to a later response it still holds back
    // (updateOutgoingData -> socketOnDrain), i.e. from the later exchange's
    // onData/onComplete while undici runs that connection's parser. undici has one
    // llhttp parser per process: resuming ours there re-enters it, which fails the
    // later exchange as an upstream reset and leaves this one paused for good.
    process.nextTick(resumeAfterDrain, this);
  }

  /** @internal */
  resumeIfRunning(): void {
    if (!this.done) this.resumeUpstream?.();
  }

  protected fail(error: ProxyError): void {
    if (!this.res.headersSent) this.status = error.status;
    this.errorCode = error.code;
    respondWithError(this.res, error);
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.stopWaiting();
    this.releaseServer();
    if (this.body && !this.body.destroyed) {
      this.facts.req.unpipe(this.body);
      this.body.destroy();
    }
    this.context.registry.requestFinished();
    const route = this.decision.route;
    const observer = this.context.observer;
    observer.requestEnded(requestRecord(this.arrival, {
      requestId: this.headers.requestId, route, status: this.status, bytesIn: this.bytesIn, bytesOut: this.bytesOut,
      connectedAt: this.connectedAt, headersAt: this.headersAt, upstream: this.lastServer?.url, retries: this.retries, error: this.errorCode,
    }), observer.statsFor(route));
  }
}

function onRequestData(this: TrackedRequest, chunk: Buffer): void {
  const exchange = this[kExchange];
  if (!exchange) return;
  exchange.bytesIn += chunk.length;
  // A declared Content-Length was checked on arrival; chunked and HTTP/2 bodies are counted here.
  const limit = exchange.maxBodyBytes;
  if (limit !== undefined && exchange.bytesIn > limit) exchange.bodyTooLarge(limit);
}

function hasHeader(headers: readonly string[], lowerName: string): boolean {
  for (let i = 0; i < headers.length; i += 2) if ((headers[i] as string).toLowerCase() === lowerName) return true;
  return false;
}

function onResponseClose(this: TrackedResponse): void {
  // An exchange still running when the client's side closes lost its client
  // (an HTTP/2 reset even reports itself as finished); a done one ignores this.
  this[kExchange]?.clientClosed();
}

function resumeAfterDrain(exchange: HttpExchange): void {
  exchange.resumeIfRunning();
}

function onResponseDrain(this: TrackedResponse): void {
  this[kExchange]?.drained();
}
