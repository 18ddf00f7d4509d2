import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { WebSocket } from 'ws';
import type { ExpectedRequest, OriginAnswer } from './import-fixtures.js';

/**
 * Requests to a real nginx, Apache or HAProxy running a fixture's original
 * config: unlike the Switchyard harness, a non-101 answer to a handshake is
 * returned (with the origin's JSON when an origin gave it), so overrides can
 * say what the server itself did.
 */
export interface Answer {
  status: number;
  location: string | undefined;
  origin?: OriginAnswer;
}

/** SNI is a name: the Host without its port, none for an address. */
function tlsOptions(request: ExpectedRequest): { servername?: string; rejectUnauthorized: false } {
  const name = request.host.replace(/:\d+$/, '');
  return net.isIP(name) === 0 ? { servername: name, rejectUnauthorized: false } : { rejectUnauthorized: false };
}

function parseOrigin(body: string): OriginAnswer | undefined {
  try {
    const parsed = JSON.parse(body) as Partial<OriginAnswer>;
    return typeof parsed.origin === 'string' ? (parsed as OriginAnswer) : undefined;
  } catch {
    return undefined;
  }
}

export function askHttp(request: ExpectedRequest, port: number, tls: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options = {
      host: '127.0.0.1', port, path: request.path, method: request.method ?? 'GET', headers: { ...request.headers, Host: request.host }, agent: false as const,
      ...(tls ? tlsOptions(request) : {}),
    };
    const req = (tls ? https : http).request(options, (res) => {
      void answerOf(res).then(resolve);
    });
    req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket handshake; when the server answers it with something other than 101, that answer (and the origin's JSON, if an origin gave it). */
export function askWebSocket(request: ExpectedRequest, port: number, tls: boolean): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${tls ? 'wss' : 'ws'}://127.0.0.1:${port}${request.path}`, {
      headers: { ...request.headers, Host: request.host }, handshakeTimeout: 5_000,
      ...(tls ? tlsOptions(request) : {}),
    });
    let settled = false;
    ws.on('unexpected-response', (_req, res) => {
      settled = true;
      void answerOf(res).then((answer) => {
        resolve(answer);
        ws.terminate();
      });
    });
    ws.once('message', (data) => {
      const origin = JSON.parse(String(data)) as OriginAnswer;
      // One echo proves the tunnel carries frames both ways.
      ws.send('ping-through');
      ws.once('message', (echo) => {
        settled = true;
        if (String(echo) !== 'ping-through') reject(new Error(`echo was ${String(echo)}`));
        else resolve({ status: 101, location: undefined, origin });
        ws.close();
      });
    });
    ws.on('error', (err) => {
      if (!settled) reject(err);
    });
  });
}

/** A response's status and Location, with the origin's JSON when an origin wrote the body. */
function answerOf(res: http.IncomingMessage): Promise<Answer> {
  return new Promise((resolve) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => { body += chunk; });
    res.on('end', () => {
      const origin = parseOrigin(body);
      resolve({ status: res.statusCode ?? 0, location: res.headers.location, ...(origin ? { origin } : {}) });
    });
  });
}

/**
 * What in `answer` differs from `request` (the Switchyard harness's rules: the
 * given status, else 200 or 101 from the named origin with its path and Host),
 * or undefined. `sameLocation` compares Location values (default: equal).
 */
export function compareAnswer(request: ExpectedRequest, answer: Answer, sameLocation: (actual: string | undefined, expected: string) => boolean = (actual, expected) => actual === expected): string | undefined {
  if (request.status !== undefined) {
    if (answer.status !== request.status) return `status ${answer.status}, expected ${request.status}`;
    if (request.location !== undefined && !sameLocation(answer.location, request.location)) return `Location ${answer.location}, expected ${request.location}`;
    if (request.origin === undefined) return undefined;
  } else if (answer.status !== (request.websocket ? 101 : 200)) {
    return `status ${answer.status}, expected ${request.websocket ? 101 : 200}`;
  }
  if (!answer.origin) return 'no answer from an origin';
  if (request.origin !== undefined && answer.origin.origin !== request.origin) return `reached ${answer.origin.origin}, expected ${request.origin}`;
  if (request.originPath !== undefined && answer.origin.url !== request.originPath) return `path at the backend ${answer.origin.url}, expected ${request.originPath}`;
  if (request.originHost !== undefined && answer.origin.host !== request.originHost) return `Host at the backend ${answer.origin.host}, expected ${request.originHost}`;
  return undefined;
}
