import { STATUS_CODES } from 'node:http';
import http2 from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { ClientForm } from './client-forms.js';
import { exchange, FrameReader, openConnection, round, type ProbeOptions, type ProbeTarget, type SessionResult } from './probe-session.js';

/** HTTP/2 error codes by number (RFC 9113 §7), for RST_STREAM and GOAWAY. */
const H2_ERRORS: readonly string[] = [
  'NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR',
  'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED',
];

export function h2ErrorName(code: number): string {
  return H2_ERRORS[code] ?? `0x${code.toString(16)}`;
}

/** Connection-specific headers HTTP/2 forbids (RFC 9113 §8.2.2); Host becomes :authority. */
const NOT_OVER_H2 = new Set(['connection', 'upgrade', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'http2-settings']);

/**
 * One WebSocket over HTTP/2 (RFC 8441) in the form's headers: TLS offering
 * h2 (and http/1.1, as browsers do), the server's SETTINGS, an extended
 * CONNECT, then on the stream the same exchange as over HTTP/1.1 (masked
 * client frames: RFC 8441 keeps RFC 6455 framing). A server that does not
 * speak HTTP/2, or does not offer SETTINGS_ENABLE_CONNECT_PROTOCOL, makes the
 * variant not applicable (`notApplicable`), not failed. Never throws.
 */
export async function probeHttp2Session(target: ProbeTarget, form: ClientForm, options: ProbeOptions, keepOpen = false): Promise<SessionResult> {
  const result: SessionResult = { transport: 'h2', timings: {}, upgraded: false };
  const socket = await openConnection(target, options, result, ['h2', 'http/1.1']);
  if (!socket) return result;
  const alpn = (socket as TLSSocket).alpnProtocol;
  if (typeof alpn === 'string' && alpn !== '') result.alpn = alpn;
  if (alpn !== 'h2') {
    result.notApplicable = `the server does not speak HTTP/2 (${result.alpn !== undefined ? `ALPN chose ${result.alpn}` : 'ALPN chose no protocol'})`;
    socket.destroy();
    return result;
  }

  const session = http2.connect(`https://${target.url.host}`, { createConnection: () => socket });
  let sessionError: Error | undefined;
  let goaway: number | undefined;
  session.on('error', (err) => { sessionError ??= err; });
  session.on('goaway', (code: number) => { goaway ??= code; });
  let stream: http2.ClientHttp2Stream | undefined;
  try {
    const settings = await raceTimeout(options.timeoutMs, (settle) => {
      session.once('remoteSettings', () => settle('settings'));
      session.once('close', () => settle('closed'));
    });
    if (settings !== 'settings') {
      result.error = settings === 'timeout'
        ? { code: 'ESETTINGS', message: `ALPN chose h2 but no SETTINGS came within ${options.timeoutMs} ms`, stage: 'handshake' }
        : sessionFailure(sessionError, goaway, 'the HTTP/2 connection closed before the server SETTINGS');
      return result;
    }
    if (session.remoteSettings.enableConnectProtocol !== true) {
      result.notApplicable = 'the server speaks HTTP/2 but does not offer WebSockets over it (no SETTINGS_ENABLE_CONNECT_PROTOCOL): browsers will use HTTP/1.1';
      return result;
    }

    const sentAt = performance.now();
    stream = session.request(connectHeaders(target, form, options));
    const opened = stream;
    opened.on('error', () => undefined);
    const reader = new FrameReader(opened, false);
    const answer = await raceTimeout<http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader | 'closed'>(options.timeoutMs, (settle) => {
      opened.once('response', (headers) => settle(headers));
      opened.once('close', () => settle('closed'));
    });
    if (answer === 'timeout') {
      result.error = { code: 'ETIMEDOUT', message: `no answer to the extended CONNECT within ${options.timeoutMs} ms`, stage: 'handshake' };
      return result;
    }
    if (answer === 'closed') {
      if (session.destroyed || session.closed || goaway !== undefined) {
        result.error = sessionFailure(sessionError, goaway, 'the connection closed before an answer');
      } else {
        const code = opened.rstCode ?? 0;
        result.resetCode = h2ErrorName(code);
        result.error = { code: 'RST_STREAM', message: `the stream was reset with ${result.resetCode} (${code})`, stage: 'handshake' };
      }
      return result;
    }
    result.timings.handshakeMs = round(performance.now() - sentAt);
    result.status = Number(answer[':status']);
    result.statusText = STATUS_CODES[result.status] ?? '';
    result.responseHeaders = plainHeaders(answer);
    result.upgraded = result.status === 200;
    if (!result.upgraded) return result;
    result.subprotocol = result.responseHeaders['sec-websocket-protocol'];
    result.extensions = result.responseHeaders['sec-websocket-extensions'];
    reader.deflate = /permessage-deflate/i.test(result.extensions ?? '');
    if (keepOpen) {
      result.stream = opened;
      opened.once('close', () => session.destroy());
      stream = undefined;
      return result;
    }
    await exchange(opened, reader, options, result);
    if (!reader.ended) {
      // The closing handshake is over: END_STREAM our side, give the server a moment to end its own.
      opened.end();
      await reader.waitForEnd(performance.now() + Math.min(options.echoMs, 1_000));
    }
  } catch (err) {
    result.error ??= { code: (err as NodeJS.ErrnoException).code ?? 'EPROBE', message: (err as Error).message, stage: 'handshake' };
  } finally {
    if (!result.stream) {
      stream?.destroy();
      session.destroy();
    }
  }
  return result;
}

/** `:method CONNECT, :protocol websocket`, the pseudo-headers, the form's headers, Origin, subprotocols, --header. */
function connectHeaders(target: ProbeTarget, form: ClientForm, options: ProbeOptions): http2.OutgoingHttpHeaders {
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': target.path,
    ':authority': target.url.host,
  };
  const add = (name: string, value: string): void => {
    const key = name.toLowerCase();
    const existing = headers[key];
    headers[key] = existing === undefined ? value : [...(Array.isArray(existing) ? existing : [String(existing)]), value];
  };
  const origin = options.origin ?? `https://${target.url.host}`;
  for (const [name, value] of form.headers) {
    add(name, value);
    if (form.origin && name.toLowerCase() === 'sec-websocket-version') add('origin', origin);
  }
  if (!form.origin && options.origin !== undefined) add('origin', options.origin);
  if (options.subprotocols.length > 0) add('sec-websocket-protocol', options.subprotocols.join(', '));
  for (const [name, value] of options.headers) {
    const key = name.toLowerCase();
    if (key === 'host') headers[':authority'] = value;
    else if (!NOT_OVER_H2.has(key)) add(key, value);
  }
  return headers;
}

function plainHeaders(headers: http2.IncomingHttpHeaders): Record<string, string> {
  const plain: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    plain[name] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return plain;
}

function sessionFailure(error: Error | undefined, goaway: number | undefined, fallback: string): NonNullable<SessionResult['error']> {
  if (goaway !== undefined && goaway !== 0) return { code: 'GOAWAY', message: `the server sent GOAWAY with ${h2ErrorName(goaway)} (${goaway})`, stage: 'handshake' };
  if (error) return { code: (error as NodeJS.ErrnoException).code ?? 'EH2', message: error.message, stage: 'handshake' };
  return { code: 'ECLOSED', message: fallback, stage: 'handshake' };
}

/** The first value `arm` settles with, or 'timeout' after `ms`. */
function raceTimeout<T>(ms: number, arm: (settle: (value: T) => void) => void): Promise<T | 'timeout'> {
  return new Promise((resolve) => {
    let done = false;
    const timer = setTimeout(() => settle('timeout'), ms);
    function settle(value: T | 'timeout'): void {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(value);
    }
    arm(settle);
  });
}
