/**
 * The handshake header sets real clients send, in their order and case
 * (captured forms, trimmed of cookies). A path that works for one and fails
 * for another points at a hop that matches headers too strictly.
 */
export interface ClientForm {
  readonly name: string;
  readonly description: string;
  /** How the handshake goes: an HTTP/1.1 Upgrade, or an RFC 8441 extended CONNECT on an HTTP/2 stream. */
  readonly transport: 'http/1.1' | 'h2';
  /**
   * Headers after the request line (HTTP/1.1) or the pseudo-headers (HTTP/2,
   * lowercase), without Host, Sec-WebSocket-Key and Origin (added per request).
   */
  readonly headers: readonly (readonly [string, string])[];
  /** Sends an Origin header (browsers always do). */
  readonly origin: boolean;
  /** Offers permessage-deflate. */
  readonly deflate: boolean;
}

export const CLIENT_FORMS: readonly ClientForm[] = [
  {
    name: 'chromium',
    description: 'Chromium / Chrome / Edge',
    transport: 'http/1.1',
    origin: true,
    deflate: true,
    headers: [
      ['Connection', 'Upgrade'],
      ['Pragma', 'no-cache'],
      ['Cache-Control', 'no-cache'],
      ['User-Agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'],
      ['Upgrade', 'websocket'],
      ['Sec-WebSocket-Version', '13'],
      ['Accept-Encoding', 'gzip, deflate, br, zstd'],
      ['Accept-Language', 'en-US,en;q=0.9'],
      ['Sec-WebSocket-Extensions', 'permessage-deflate; client_max_window_bits'],
    ],
  },
  {
    name: 'firefox',
    description: 'Firefox (current)',
    transport: 'http/1.1',
    origin: true,
    deflate: true,
    headers: [
      ['User-Agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0'],
      ['Accept', '*/*'],
      ['Accept-Language', 'en-US,en;q=0.5'],
      ['Accept-Encoding', 'gzip, deflate, br, zstd'],
      ['Sec-WebSocket-Version', '13'],
      ['Sec-WebSocket-Extensions', 'permessage-deflate'],
      ['Connection', 'Upgrade'],
      ['Sec-Fetch-Dest', 'empty'],
      ['Sec-Fetch-Mode', 'websocket'],
      ['Sec-Fetch-Site', 'same-origin'],
      ['Pragma', 'no-cache'],
      ['Cache-Control', 'no-cache'],
      ['Upgrade', 'websocket'],
    ],
  },
  {
    name: 'keep-alive-upgrade',
    description: 'Connection: keep-alive, Upgrade (older Firefox, several libraries)',
    transport: 'http/1.1',
    origin: true,
    deflate: true,
    headers: [
      ['User-Agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Firefox/115.0'],
      ['Accept', '*/*'],
      ['Sec-WebSocket-Version', '13'],
      ['Sec-WebSocket-Extensions', 'permessage-deflate'],
      ['Connection', 'keep-alive, Upgrade'],
      ['Pragma', 'no-cache'],
      ['Cache-Control', 'no-cache'],
      ['Upgrade', 'websocket'],
    ],
  },
  {
    name: 'safari',
    description: 'Safari',
    transport: 'http/1.1',
    origin: true,
    deflate: true,
    headers: [
      ['Upgrade', 'websocket'],
      ['Connection', 'Upgrade'],
      ['Sec-WebSocket-Version', '13'],
      ['Sec-WebSocket-Extensions', 'permessage-deflate'],
      ['User-Agent', 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15'],
      ['Pragma', 'no-cache'],
      ['Cache-Control', 'no-cache'],
    ],
  },
  {
    name: 'minimal',
    description: 'the minimal RFC 6455 form (lowercase "upgrade: websocket", no Origin)',
    transport: 'http/1.1',
    origin: false,
    deflate: false,
    headers: [
      ['upgrade', 'websocket'],
      ['connection', 'Upgrade'],
      ['Sec-WebSocket-Version', '13'],
    ],
  },
];

/**
 * WebSockets over HTTP/2 (RFC 8441) as Chromium sends them: `:method CONNECT`,
 * `:protocol websocket` (added per request with `:scheme`, `:path`,
 * `:authority`), then these headers. Runs for wss/https URLs only: browsers
 * speak HTTP/2 only over TLS.
 */
export const HTTP2_FORM: ClientForm = {
  name: 'http2',
  description: 'WebSocket over HTTP/2 extended CONNECT (RFC 8441), as Chromium sends it',
  transport: 'h2',
  origin: true,
  deflate: true,
  headers: [
    ['pragma', 'no-cache'],
    ['cache-control', 'no-cache'],
    ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36'],
    ['sec-websocket-version', '13'],
    ['accept-encoding', 'gzip, deflate, br, zstd'],
    ['accept-language', 'en-US,en;q=0.9'],
    ['sec-websocket-extensions', 'permessage-deflate; client_max_window_bits'],
  ],
};
