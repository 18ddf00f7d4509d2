import { timingSafeEqual } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { isLoopbackHost } from '../config/address.js';
import type { AdminConfig } from '../config/model.js';
import type { Logger } from '../log/logger.js';
import type { AdminBackend } from './admin-backend.js';
import { DASHBOARD_HTML } from './dashboard-page.js';
import { describeConfig } from './describe-config.js';

const SNAPSHOT_INTERVAL_MS = 1_000;
const MAX_BODY_BYTES = 64 * 1024;
/** Open dashboards at once; more get 503 so a leaked tab loop cannot pile up snapshots. */
const MAX_FEEDS = 64;

/**
 * The admin listener: the dashboard at /, Prometheus text at /metrics, and a
 * JSON API under /api/ (read: config, stats, upstreams, tunnels, live events;
 * act: drain and undrain a server, close a tunnel, reload). Every request needs
 * the bearer token when one is configured. Without a token, only a Host that
 * is an IP literal, localhost or the configured address is answered (a DNS
 * rebinding page cannot reach a loopback admin), and a browser's Origin on a
 * state-changing request must match the Host (no cross-site requests).
 */
export class AdminServer {
  private readonly server: http.Server;
  private readonly feeds = new Set<ServerResponse>();
  private feedTimer: NodeJS.Timeout | undefined;

  private constructor(private readonly config: AdminConfig, private readonly backend: AdminBackend, private readonly log: Logger) {
    this.server = http.createServer({ requireHostHeader: false }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        // The path only: a live feed may carry its token in the query.
        this.log.error({ err, path: (req.url ?? '').split('?')[0] }, 'admin request failed');
        if (!res.headersSent) sendJson(res, 500, { error: 'SY_INTERNAL', message: (err as Error).message });
        else res.destroy();
      });
    });
  }

  static async start(config: AdminConfig, backend: AdminBackend, log: Logger): Promise<AdminServer> {
    const admin = new AdminServer(config, backend, log);
    await new Promise<void>((resolve, reject) => {
      admin.server.once('error', reject);
      admin.server.listen({ host: config.host, port: config.port }, () => {
        admin.server.off('error', reject);
        resolve();
      });
    });
    admin.server.on('error', (err) => log.error({ err }, 'admin listener error'));
    if (config.token === undefined && !isLoopbackHost(config.host)) {
      log.warn({ code: 'SY_ADMIN_OPEN', host: config.host }, 'the admin listener is reachable from other hosts without a token; set a token (SWITCHYARD_ADMIN_TOKEN in quick mode)');
    }
    return admin;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    clearInterval(this.feedTimer);
    for (const feed of this.feeds) feed.end();
    this.feeds.clear();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    // Keep-alive and feed connections would hold close() open until they time out.
    this.server.closeAllConnections();
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const refusal = this.refuseForeignBrowser(req, method);
    if (refusal !== undefined) {
      sendJson(res, 403, { error: 'SY_ADMIN_FORBIDDEN', message: refusal });
      return;
    }
    // The page itself holds no data (a browser cannot send a bearer header when
    // opening it); everything it shows comes from the token-guarded API.
    const page = method === 'GET' && (path === '/' || path === '/index.html');
    if (!page && !this.authorized(req, url)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="switchyard"');
      sendJson(res, 401, { error: 'SY_ADMIN_UNAUTHORIZED', message: 'a valid bearer token is required' });
      return;
    }
    if (page) {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Security-Policy': "default-src 'self'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' data:" });
      res.end(DASHBOARD_HTML);
      return;
    }
    if (method === 'GET' && path === '/metrics') {
      const { contentType, body } = await this.backend.metrics();
      res.writeHead(200, { 'Content-Type': contentType });
      res.end(body);
      return;
    }
    if (method === 'GET' && path === '/api/config') return sendJson(res, 200, describeConfig(this.backend.config()));
    if (method === 'GET' && path === '/api/stats') return sendJson(res, 200, await this.backend.snapshot());
    if (method === 'GET' && path === '/api/upstreams') return sendJson(res, 200, (await this.backend.snapshot()).upstreams);
    if (method === 'GET' && path === '/api/tunnels') return sendJson(res, 200, await this.backend.tunnels());
    if (method === 'GET' && path === '/api/events') return this.openFeed(req, res);
    if (method === 'POST' && path === '/api/reload') {
      const outcome = await this.backend.reload();
      return sendJson(res, outcome.ok ? 200 : 422, outcome);
    }
    const drain = /^\/api\/upstreams\/([^/]+)\/(drain|undrain)$/.exec(path);
    if (method === 'POST' && drain) {
      const body = await readJson(req);
      const server = typeof body?.server === 'string' ? body.server : undefined;
      if (!server) return sendJson(res, 400, { error: 'SY_ADMIN_BAD_REQUEST', message: 'expected a JSON body { "server": URL }' });
      const upstream = decodePathPart(drain[1] ?? '');
      if (upstream === undefined) return sendJson(res, 400, { error: 'SY_ADMIN_BAD_REQUEST', message: 'the upstream name is not valid percent-encoding' });
      const found = await this.backend.setDrain(upstream, server, drain[2] === 'drain');
      if (!found) return sendJson(res, 404, { error: 'SY_ADMIN_NOT_FOUND', message: `no server ${server} in upstream ${upstream}` });
      this.log.info({ upstream, server, action: drain[2] }, 'admin API');
      return sendJson(res, 200, { upstream, server, draining: drain[2] === 'drain' });
    }
    const routeDrain = /^\/api\/routes\/([^/]+)\/drain$/.exec(path);
    if (method === 'POST' && routeDrain) {
      const route = decodePathPart(routeDrain[1] ?? '');
      if (route === undefined) return sendJson(res, 400, { error: 'SY_ADMIN_BAD_REQUEST', message: 'the route name is not valid percent-encoding' });
      const tunnels = await this.backend.drainRoute(route);
      this.log.info({ route, tunnels, action: 'drain' }, 'admin API');
      return sendJson(res, 200, { route, closing: tunnels });
    }
    const tunnel = /^\/api\/tunnels\/([^/]+)$/.exec(path);
    if (method === 'DELETE' && tunnel) {
      const id = decodePathPart(tunnel[1] ?? '');
      if (id === undefined) return sendJson(res, 400, { error: 'SY_ADMIN_BAD_REQUEST', message: 'the tunnel id is not valid percent-encoding' });
      if (!(await this.backend.closeTunnel(id))) return sendJson(res, 404, { error: 'SY_ADMIN_NOT_FOUND', message: `no open tunnel ${id}` });
      return sendJson(res, 200, { closed: id });
    }
    sendJson(res, 404, { error: 'SY_ADMIN_NOT_FOUND', message: `${method} ${path} is not part of the admin API` });
  }

  /**
   * Why a request looks like a foreign web page reaching in, or undefined.
   * With a token nothing is needed: a page cannot learn it.
   */
  private refuseForeignBrowser(req: IncomingMessage, method: string): string | undefined {
    if (this.config.token !== undefined) return undefined;
    const host = req.headers.host;
    if (host !== undefined && !this.trustedHost(host)) return `Host "${host}" is not an address of this admin listener; use an IP address, localhost, or set a token`;
    const origin = req.headers.origin;
    if (method !== 'GET' && method !== 'HEAD' && origin !== undefined && !sameHost(origin, host)) return `a ${method} from origin ${origin} is refused`;
    return undefined;
  }

  private trustedHost(hostHeader: string): boolean {
    const name = hostName(hostHeader).toLowerCase();
    return isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || name === this.config.host.toLowerCase();
  }

  private authorized(req: IncomingMessage, url: URL): boolean {
    const token = this.config.token;
    if (token === undefined) return true;
    const header = req.headers.authorization;
    const bearer = header === undefined ? null : /^bearer +(.*)$/is.exec(header);
    // EventSource cannot send headers: the live feed may carry the token in its URL.
    const given = bearer ? bearer[1] ?? '' : url.pathname === '/api/events' ? url.searchParams.get('token') ?? '' : '';
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** Server-Sent Events: a snapshot now and then every second, to every open dashboard. */
  private openFeed(req: IncomingMessage, res: ServerResponse): void {
    if (this.feeds.size >= MAX_FEEDS) {
      sendJson(res, 503, { error: 'SY_ADMIN_BUSY', message: `${MAX_FEEDS} live feeds are open already` });
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    this.feeds.add(res);
    req.on('close', () => {
      this.feeds.delete(res);
      if (this.feeds.size === 0) {
        clearInterval(this.feedTimer);
        this.feedTimer = undefined;
      }
    });
    void this.pushSnapshot([res]);
    this.feedTimer ??= setInterval(() => void this.pushSnapshot([...this.feeds]), SNAPSHOT_INTERVAL_MS);
  }

  private async pushSnapshot(feeds: readonly ServerResponse[]): Promise<void> {
    if (feeds.length === 0) return;
    try {
      const line = `data: ${JSON.stringify(await this.backend.snapshot())}\n\n`;
      // A reader that does not keep up skips snapshots instead of buffering them.
      for (const feed of feeds) if (!feed.destroyed && !feed.writableNeedDrain) feed.write(line);
    } catch (err) {
      this.log.warn({ err }, 'admin live feed: snapshot failed');
    }
  }
}

function decodePathPart(part: string): string | undefined {
  try {
    return decodeURIComponent(part);
  } catch {
    return undefined;
  }
}

/** The host name of a Host header value, without port or IPv6 brackets. */
function hostName(hostHeader: string): string {
  const bracketed = /^\[([^\]]*)\]/.exec(hostHeader);
  if (bracketed) return bracketed[1] ?? '';
  const colon = hostHeader.lastIndexOf(':');
  return colon === -1 ? hostHeader : hostHeader.slice(0, colon);
}

function sameHost(origin: string, host: string | undefined): boolean {
  try {
    return host !== undefined && new URL(origin).host.toLowerCase() === host.toLowerCase();
  } catch {
    return false;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, null, 2);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    return typeof value === 'object' && value !== null ? value as Record<string, unknown> : undefined;
  } catch {
    return undefined;
  }
}
