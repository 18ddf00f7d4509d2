import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { DEMO_PAGE } from './demo-page.js';

export interface DemoOrigin {
  readonly url: string;
  close(): Promise<void>;
}

const MAX_TEXT = 2_000;

/**
 * The origin behind the demo: serves the page, and at /chat a WebSocket chat that
 * broadcasts every message and tells each client which proxy headers it saw.
 */
export async function startDemoOrigin(host = '127.0.0.1', port = 0): Promise<DemoOrigin> {
  const server = http.createServer((req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      res.end(DEMO_PAGE);
    } else if (req.url === '/health') {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok\n');
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found\n');
    }
  });
  const chat = new WebSocketServer({ server, path: '/chat', maxPayload: 64 * 1024 });
  let counter = 0;
  chat.on('connection', (socket: WebSocket, req: IncomingMessage) => {
    const name = `guest-${++counter}`;
    socket.on('error', () => socket.terminate());
    socket.send(JSON.stringify({
      type: 'welcome',
      name,
      via: req.headers.via ?? '(none)',
      forwardedFor: req.headers['x-forwarded-for'] ?? '(none)',
      forwardedProto: req.headers['x-forwarded-proto'] ?? '(none)',
    }));
    socket.on('message', (data) => {
      let text = '';
      let sentAt: number | undefined;
      try {
        const parsed = JSON.parse(data.toString()) as { text?: unknown; sentAt?: unknown };
        text = String(parsed.text ?? '').slice(0, MAX_TEXT);
        sentAt = typeof parsed.sentAt === 'number' ? parsed.sentAt : undefined;
      } catch {
        text = data.toString().slice(0, MAX_TEXT);
      }
      const message = JSON.stringify({ type: 'chat', from: name, text, sentAt });
      for (const client of chat.clients) if (client.readyState === client.OPEN) client.send(message);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const address = server.address() as AddressInfo;
  return {
    url: `http://${host}:${address.port}`,
    close: () => new Promise<void>((resolve) => {
      for (const client of chat.clients) client.terminate();
      chat.close();
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
