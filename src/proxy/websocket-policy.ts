import type { IncomingMessage } from 'node:http';
import type { WebSocketPolicyConfig } from '../config/model.js';
import { ProxyError } from '../errors.js';

/**
 * The handshake half of a route's WebSocket policy: the browser's Origin must
 * be on the allow-list, and a client that asks for subprotocols must ask for
 * at least one allowed one (the others are not passed on; asking for none is
 * fine). The frame half (sizes, rates, pings) lives in TunnelControl. Returns
 * the refusal, or undefined.
 */
export function checkWebSocketHandshake(policy: WebSocketPolicyConfig | undefined, req: IncomingMessage): ProxyError | undefined {
  if (!policy) return undefined;
  const origins = policy.allowedOrigins;
  if (origins) {
    const origin = req.headers.origin;
    // Browsers always send Origin with a WebSocket; a client without one is not a browser this list can vouch for.
    if (origin === undefined || !origins.some((allowed) => originMatches(allowed, origin.toLowerCase()))) {
      return new ProxyError('SY_WEBSOCKET_ORIGIN_DENIED', origin ?? '(no Origin)');
    }
  }
  const subprotocols = policy.allowedSubprotocols;
  const asked = req.headers['sec-websocket-protocol'];
  if (subprotocols && asked !== undefined) {
    const offered = asked.split(',').map((token) => token.trim()).filter((token) => token !== '');
    const kept = offered.filter((token) => subprotocols.includes(token));
    if (kept.length === 0) return new ProxyError('SY_WEBSOCKET_SUBPROTOCOL_DENIED', asked);
    // The backend chooses among the allowed ones only (it is sent the raw headers).
    if (kept.length !== offered.length) replaceHeader(req, 'sec-websocket-protocol', 'Sec-WebSocket-Protocol', kept.join(', '));
  }
  return undefined;
}

function replaceHeader(req: IncomingMessage, lowerName: string, name: string, value: string): void {
  const raw = req.rawHeaders;
  const kept: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() !== lowerName) kept.push(raw[i] as string, raw[i + 1] as string);
  }
  kept.push(name, value);
  raw.splice(0, raw.length, ...kept);
  req.headers[lowerName] = value;
}

/** "https://app.example.com" exactly, or "https://*.example.com" for any name under it (ports must match too). */
export function originMatches(allowed: string, origin: string): boolean {
  if (allowed === origin) return true;
  const star = allowed.indexOf('://*.');
  if (star === -1) return false;
  const scheme = allowed.slice(0, star + 3);
  const suffix = allowed.slice(star + 4);
  if (!origin.startsWith(scheme) || !origin.endsWith(suffix)) return false;
  const label = origin.slice(scheme.length, origin.length - suffix.length);
  return label.length > 0 && !/[/:@]/.test(label);
}
