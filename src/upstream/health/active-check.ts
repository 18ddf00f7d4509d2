import { createHash, randomBytes } from 'node:crypto';
import http, { type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { ActiveHealthConfig } from '../../config/model.js';
import type { Logger } from '../../log/logger.js';
import type { Background, UpstreamPool } from '../upstream-pool.js';
import type { UpstreamServer } from '../upstream-server.js';

/** At most this much of a response body is read (and searched for expect_body). */
export const MAX_BODY_BYTES = 64 * 1024;

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const CLOSE_NORMAL = 1000;

type Verdict = { readonly pass: true } | { readonly pass: false; readonly reason: string };

const PASS: Verdict = { pass: true };

function failed(reason: string): Verdict {
  return { pass: false, reason };
}

interface ServerState {
  /** Consecutive passes / failures (one of the two is always 0). */
  passes: number;
  failures: number;
  probe: Probe | undefined;
}

/**
 * Active health checks (HAProxy/Envoy style): every server of the pool is probed
 * each interval over a fresh connection, an HTTP request or a real WebSocket
 * handshake; `fall` failures in a row take a healthy server down (the pool's
 * selection skips it), `rise` passes in a row bring it back. The list of servers
 * is read each round, so servers added or removed by discovery are followed.
 * A server's next probe never starts while its previous one is in flight.
 */
export class ActiveHealthCheck implements Background {
  private readonly states = new Map<UpstreamServer, ServerState>();
  private timer: NodeJS.Timeout | undefined;
  private running = false;

  constructor(
    private readonly pool: UpstreamPool,
    private readonly config: ActiveHealthConfig,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.timer = setInterval(this.round, Math.max(1, this.config.intervalMs));
    this.timer.unref();
    this.round();
  }

  stop(): void {
    this.running = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const state of this.states.values()) {
      const probe = state.probe;
      state.probe = undefined;
      probe?.abort();
    }
    this.states.clear();
  }

  private readonly round = (): void => {
    if (!this.running) return;
    const current = new Set(this.pool.servers);
    for (const [server, state] of this.states) {
      if (current.has(server)) continue;
      // Gone from the pool (discovery): forget it, and its probe with it.
      this.states.delete(server);
      const probe = state.probe;
      state.probe = undefined;
      probe?.abort();
    }
    for (const server of current) {
      let state = this.states.get(server);
      if (!state) {
        state = { passes: 0, failures: 0, probe: undefined };
        this.states.set(server, state);
      }
      if (state.probe) continue;
      const owner = state;
      owner.probe = new Probe(server, this.config, (verdict) => this.record(server, owner, verdict));
      owner.probe.start();
    }
  };

  private record(server: UpstreamServer, state: ServerState, verdict: Verdict): void {
    // Stopped, or the server left the pool while the probe ran: nothing to say.
    if (!this.running || this.states.get(server) !== state) return;
    state.probe = undefined;
    try {
      if (verdict.pass) this.passed(server, state);
      else this.failed(server, state, verdict.reason);
    } catch (err) {
      this.log.error({ err, upstream: this.pool.config.name, server: server.url }, 'active health check: handling a result failed');
    }
  }

  private passed(server: UpstreamServer, state: ServerState): void {
    state.failures = 0;
    state.passes++;
    // A passive ejection is a guess from request failures; a passing check on a
    // healthy server is better evidence, so the server returns at once.
    if (server.healthy && server.ejectedUntil > 0) {
      server.ejectedUntil = 0;
      server.succeeded();
    }
    if (server.healthy || state.passes < this.config.rise) return;
    state.passes = 0;
    server.healthy = true;
    server.succeeded();
    this.log.info(
      { upstream: this.pool.config.name, server: server.url, passes: this.config.rise },
      'upstream server is up again: active health check passed',
    );
  }

  private failed(server: UpstreamServer, state: ServerState, reason: string): void {
    state.passes = 0;
    state.failures++;
    this.log.debug({ upstream: this.pool.config.name, server: server.url, reason, failures: state.failures }, 'active health check failed');
    if (!server.healthy || state.failures < this.config.fall) return;
    state.failures = 0;
    server.healthy = false;
    this.log.warn(
      { upstream: this.pool.config.name, server: server.url, reason, failures: this.config.fall },
      'upstream server is down: active health check failed',
    );
    this.pool.serverWentDown(server);
  }
}

/**
 * One probe of one server: a new connection, one request or handshake, a verdict
 * within the timeout. Reports exactly once unless aborted (then never), and
 * leaves no socket or timer behind either way.
 */
class Probe {
  private done = false;
  private timer: NodeJS.Timeout | undefined;
  private request: ClientRequest | undefined;
  private response: IncomingMessage | undefined;
  /** The connection after a 101 (WebSocket), no longer owned by the request. */
  private upgraded: Socket | undefined;
  private bodyBytes = 0;
  /** The end of the body read so far, where a match may begin. */
  private tail: Buffer = Buffer.alloc(0);
  private readonly expectBody: Buffer | undefined;
  private readonly key = randomBytes(16).toString('base64');

  constructor(
    private readonly server: UpstreamServer,
    private readonly config: ActiveHealthConfig,
    private readonly report: (verdict: Verdict) => void,
  ) {
    this.expectBody = config.type === 'http' && config.expectBody !== undefined && config.expectBody !== ''
      ? Buffer.from(config.expectBody, 'utf8')
      : undefined;
  }

  start(): void {
    this.timer = setTimeout(this.onTimeout, this.config.timeoutMs);
    this.timer.unref();
    const server = this.server;
    const websocket = this.config.type === 'websocket';
    let request: ClientRequest;
    try {
      const options: https.RequestOptions = {
        host: server.hostname,
        port: server.port,
        method: websocket ? 'GET' : this.config.method,
        path: server.basePath + this.config.path,
        headers: this.headers(websocket),
        setHost: false,
        agent: false,
        ...(server.secure ? server.tlsOptions : {}),
      };
      request = (server.secure ? https : http).request(options);
    } catch (err) {
      // Bad method, path or header value: the request never leaves.
      this.finish(failed(`request not sent: ${describe(err)}`));
      return;
    }
    this.request = request;
    request.on('error', this.onRequestError);
    request.on('socket', onSocket);
    request.on('response', this.onResponse);
    if (websocket) request.on('upgrade', this.onUpgrade);
    request.end();
  }

  /** Stops at once without reporting. */
  abort(): void {
    this.done = true;
    this.cleanup();
  }

  private headers(websocket: boolean): OutgoingHttpHeaders {
    const headers: OutgoingHttpHeaders = {};
    let hasHost = false;
    for (const [name, value] of Object.entries(this.config.headers)) {
      const lower = name.toLowerCase();
      if (lower === 'host') hasHost = true;
      // The handshake's own headers are not the config's to change.
      if (websocket && HANDSHAKE_HEADERS.has(lower)) continue;
      headers[name] = value;
    }
    if (!hasHost) headers.Host = this.server.authority;
    if (websocket) {
      headers.Connection = 'Upgrade';
      headers.Upgrade = 'websocket';
      headers['Sec-WebSocket-Version'] = '13';
      headers['Sec-WebSocket-Key'] = this.key;
    }
    return headers;
  }

  private readonly onTimeout = (): void => {
    this.timer = undefined;
    this.finish(failed(`no answer within ${this.config.timeoutMs} ms`));
  };

  private readonly onRequestError = (err: Error): void => {
    this.finish(failed(describe(err)));
  };

  private readonly onResponse = (res: IncomingMessage): void => {
    if (this.done) {
      res.destroy();
      return;
    }
    this.response = res;
    res.on('error', this.onResponseError);
    const status = res.statusCode ?? 0;
    if (this.config.type === 'websocket') {
      this.finish(failed(`handshake answered ${status}, not 101`));
      return;
    }
    const [low, high] = this.config.expectStatus;
    if (status < low || status > high) {
      this.finish(failed(`status ${status} is not within ${low}-${high}`));
      return;
    }
    res.on('data', this.onData);
    res.on('end', this.onEnd);
  };

  private readonly onResponseError = (err: Error): void => {
    this.finish(failed(`response: ${describe(err)}`));
  };

  private readonly onData = (chunk: Buffer): void => {
    if (this.done) return;
    const room = MAX_BODY_BYTES - this.bodyBytes;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    this.bodyBytes += part.length;
    const expected = this.expectBody;
    if (expected) {
      // Only the last expected.length - 1 bytes can start a match that ends in this chunk.
      const window = this.tail.length > 0 ? Buffer.concat([this.tail, part]) : part;
      if (window.includes(expected)) {
        this.finish(PASS);
        return;
      }
      this.tail = Buffer.from(window.subarray(Math.max(0, window.length - expected.length + 1)));
    }
    if (this.bodyBytes >= MAX_BODY_BYTES) {
      this.finish(expected ? failed(`body does not contain ${JSON.stringify(this.config.expectBody)} in its first ${MAX_BODY_BYTES} bytes`) : PASS);
    }
  };

  private readonly onEnd = (): void => {
    if (this.expectBody) this.finish(failed(`body does not contain ${JSON.stringify(this.config.expectBody)}`));
    else this.finish(PASS);
  };

  private readonly onUpgrade = (res: IncomingMessage, socket: Socket): void => {
    this.upgraded = socket;
    socket.on('error', noop);
    if (this.done) {
      socket.destroy();
      return;
    }
    const expected = createHash('sha1').update(this.key + WEBSOCKET_GUID).digest('base64');
    const upgrade = res.headers.upgrade;
    if (res.statusCode !== 101) {
      this.finish(failed(`handshake answered ${res.statusCode}, not 101`));
    } else if (typeof upgrade !== 'string' || upgrade.toLowerCase() !== 'websocket') {
      this.finish(failed(`101 without Upgrade: websocket (got ${JSON.stringify(upgrade ?? null)})`));
    } else if (res.headers['sec-websocket-accept'] !== expected) {
      this.finish(failed('101 with a wrong Sec-WebSocket-Accept'));
    } else {
      this.closeWebSocket(socket);
    }
  };

  /**
   * The handshake passed: say goodbye properly (a masked close frame, code 1000,
   * then FIN) and report once the server has closed too, or the time is up.
   */
  private closeWebSocket(socket: Socket): void {
    socket.on('close', () => this.finish(PASS));
    // Whatever the server sends (its close frame) is read and dropped.
    socket.on('data', noop);
    socket.resume();
    socket.end(closeFrame(CLOSE_NORMAL));
    // Should the server never close, the timeout still ends the probe; the
    // handshake itself was right, so the verdict stays a pass.
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.finish(PASS);
    }, this.config.timeoutMs);
    this.timer.unref();
  }

  private finish(verdict: Verdict): void {
    if (this.done) return;
    this.done = true;
    this.cleanup();
    this.report(verdict);
  }

  private cleanup(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.tail = Buffer.alloc(0);
    this.response?.destroy();
    this.request?.destroy();
    this.upgraded?.destroy();
  }
}

const HANDSHAKE_HEADERS = new Set(['connection', 'upgrade', 'sec-websocket-version', 'sec-websocket-key']);

function noop(): void {}

function onSocket(socket: Socket): void {
  socket.on('error', noop);
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** A masked client close frame (RFC 6455 §5.5.1) carrying a status code. */
function closeFrame(code: number): Buffer {
  const mask = randomBytes(4);
  const frame = Buffer.alloc(8);
  frame[0] = 0x88; // FIN, opcode close
  frame[1] = 0x80 | 2; // masked, 2-byte payload
  mask.copy(frame, 2);
  frame[6] = ((code >> 8) & 0xff) ^ mask[0]!;
  frame[7] = (code & 0xff) ^ mask[1]!;
  return frame;
}
