import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface RecordedRequest {
  method: string;
  url: string;
  httpVersion: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

export interface Origin {
  readonly url: string;
  readonly wsUrl: string;
  readonly port: number;
  readonly server: http.Server;
  readonly wss: WebSocketServer;
  /** Every HTTP request the origin received (not WebSocket handshakes). */
  readonly requests: RecordedRequest[];
  /** Handshake requests of every WebSocket the origin accepted. */
  readonly handshakes: RecordedRequest[];
  /** Server-side sockets of accepted WebSockets. */
  readonly sockets: Set<WebSocket>;
  /** Raw TCP connections the origin has accepted so far. */
  connectionCount: number;
  close(): Promise<void>;
}

export type OriginHandler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

export interface OriginOptions {
  /** Answers HTTP requests; default: echo the request as JSON. */
  handler?: OriginHandler;
  /** Called for each accepted WebSocket; default: echo every message. */
  onWebSocket?: (ws: WebSocket, req: IncomingMessage) => void;
  /** Decide how to answer a handshake instead of accepting it. */
  onUpgrade?: (req: IncomingMessage, socket: Socket, head: Buffer, accept: () => void) => void;
  /** Name returned in the X-Origin header and echo bodies, to tell origins apart. */
  name?: string;
}

/**
 * A real origin on 127.0.0.1:0: HTTP (echoes the request as JSON unless told
 * otherwise) and WebSocket (echoes every message) on the same port.
 */
export async function startOrigin(options: OriginOptions = {}): Promise<Origin> {
  const requests: RecordedRequest[] = [];
  const handshakes: RecordedRequest[] = [];
  const sockets = new Set<WebSocket>();
  const name = options.name ?? 'origin';
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('error', () => undefined);
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      requests.push(record(req, body));
      if (options.handler) {
        options.handler(req, res, body);
        return;
      }
      const payload = JSON.stringify({ origin: name, method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, body });
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Origin': name });
      res.end(payload);
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  const wss = new WebSocketServer({ noServer: true });
  const origin: Origin = {
    url: '',
    wsUrl: '',
    port: 0,
    server,
    wss,
    requests,
    handshakes,
    sockets,
    connectionCount: 0,
    close: async () => {
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  server.on('connection', (socket: Socket) => {
    origin.connectionCount++;
    socket.on('error', () => undefined);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => undefined);
    const accept = (): void => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        handshakes.push(record(req, ''));
        sockets.add(ws);
        ws.on('close', () => sockets.delete(ws));
        ws.on('error', () => ws.terminate());
        if (options.onWebSocket) options.onWebSocket(ws, req);
        else ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
    };
    if (options.onUpgrade) options.onUpgrade(req, socket, head, accept);
    else accept();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  Object.assign(origin, { url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}`, port });
  return origin;
}

function record(req: IncomingMessage, body: string): RecordedRequest {
  return { method: req.method ?? '', url: req.url ?? '', httpVersion: req.httpVersion, headers: req.headers, rawHeaders: req.rawHeaders, body };
}

/** A port on 127.0.0.1 where nothing listens (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
