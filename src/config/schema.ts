import { z } from 'zod';

/**
 * The config file's one schema: the loader validates against it, `switchyard
 * schema` prints it as JSON Schema, and the TypeScript types come from it.
 * Field names are snake_case, as in the YAML; docs/config.md documents each one.
 */
const DURATION = /^\d+(?:\.\d+)?(?:ms|s|m|h)$/;
export const Duration = z.string().regex(DURATION, { message: 'expected a duration such as 500ms, 30s, 5m or 1h' })
  .describe('A duration with a unit: ms, s, m or h (e.g. 500ms, 30s, 5m, 1h).');

const Address = z.string().regex(/^(?:\[[0-9a-fA-F:.]+\]|[^:[\]\s]*):\d{1,5}$/, { message: 'expected HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or :8080' })
  .describe('HOST:PORT to listen on; ":PORT" listens on every interface.');

const TlsFiles = z.strictObject({
  cert: z.string().optional().describe('Path of the default PEM certificate chain (relative to the config file). Default: the first of certificates.'),
  key: z.string().optional().describe('Path of the default certificate\'s PEM private key.'),
  certificates: z.array(z.strictObject({
    hosts: z.array(z.string().min(1)).min(1).describe('Names this certificate serves (SNI): exact or *.example.com.'),
    cert: z.string(),
    key: z.string(),
  })).optional().describe('More certificates, chosen by the name the client asks for (SNI); others get the default.'),
  min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
  ciphers: z.string().optional().describe('OpenSSL cipher list for TLS 1.2. Default: Node\'s.'),
}).refine((tls) => (tls.cert === undefined) === (tls.key === undefined), { message: 'cert and key go together' })
  .refine((tls) => tls.cert !== undefined || (tls.certificates?.length ?? 0) > 0, { message: 'give cert and key, or certificates' });

export const ListenerSchema = z.strictObject({
  address: Address,
  tls: TlsFiles.optional().describe('Terminate TLS here (https, wss). Default: plain HTTP.'),
  hsts: z.union([z.boolean(), z.strictObject({
    max_age: Duration.default('8760h').describe('Default 8760h (one year).'),
    include_subdomains: z.boolean().default(false),
    preload: z.boolean().default(false),
  })]).optional().describe('On a TLS listener: send Strict-Transport-Security on every response.'),
  redirect_to_https: z.union([z.literal(true), z.strictObject({ port: z.number().int().min(1).max(65535) })]).optional()
    .describe('On a plain listener: answer every request with 308 to the same URL over https (on this port; default 443).'),
  sites: z.array(z.string()).min(1).optional().describe('Names of the sites this listener serves. Default: every site.'),
  http2: z.boolean().optional()
    .describe('TLS listener: offer HTTP/2 in ALPN next to HTTP/1.1 (default true). Plain listener: also accept HTTP/2 with prior knowledge, h2c (default false).'),
  websocket_over_http2: z.boolean().default(true)
    .describe('Advertise SETTINGS_ENABLE_CONNECT_PROTOCOL so clients may open WebSockets over HTTP/2 (RFC 8441).'),
  proxy_protocol: z.array(z.string()).min(1).optional()
    .describe('Accept PROXY protocol v1/v2 headers from these addresses or CIDR ranges (the L4 balancers); they must send one, nobody else may. Default: off.'),
  max_connections: z.number().int().min(1).optional().describe('Open client connections on this listener at most; more get 503. Default: no limit.'),
});

const Condition = z.union([
  z.string().describe('The value must equal this (case-sensitive).'),
  z.strictObject({ present: z.boolean().describe('true: must be present; false: must be absent.') }),
  z.strictObject({ equals: z.string() }),
  z.strictObject({ regex: z.string().describe('JavaScript regular expression the value must match.') }),
]);

const HTTP_METHOD = /^[A-Z][A-Z0-9-]*$/;

export const MatchSchema = z.strictObject({
  prefix: z.string().regex(/^\//, { message: 'a path prefix starts with /' }).optional()
    .describe('Path prefix, matched at segment boundaries: /ws matches /ws and /ws/x, not /wsx.'),
  exact: z.string().regex(/^\//, { message: 'a path starts with /' }).optional().describe('The path must equal this.'),
  regex: z.string().optional().describe('JavaScript regular expression tested against the path; its captures feed rewrite ($1, $2, ...).'),
  methods: z.array(z.string().regex(HTTP_METHOD, { message: 'expected an upper-case HTTP method such as GET' })).min(1).optional()
    .describe('Allowed methods. Default: any.'),
  headers: z.record(z.string(), Condition).optional().describe('Header conditions; names are case-insensitive.'),
  query: z.record(z.string(), Condition).optional().describe('Query parameter conditions.'),
  upgrade: z.enum(['websocket', 'any', 'none']).optional()
    .describe('websocket: only WebSocket upgrades; none: only plain HTTP; any: both (the default).'),
}).refine((match) => [match.prefix, match.exact, match.regex].filter((value) => value !== undefined).length <= 1, {
  message: 'use one of prefix, exact or regex',
});

const HeaderActions = z.strictObject({
  set: z.record(z.string(), z.string()).optional().describe('Replace these headers (or add them when absent).'),
  add: z.record(z.string(), z.string()).optional().describe('Add these headers, keeping existing values.'),
  remove: z.array(z.string()).optional().describe('Remove these headers.'),
});

const RouteTimeouts = z.strictObject({
  connect: Duration.optional(),
  response: Duration.optional(),
  tunnel_idle: Duration.optional(),
});

const WebSocketPolicy = z.strictObject({
  ping: z.strictObject({
    interval: Duration.describe('Send a ping to a side that sent nothing for this long.'),
    timeout: Duration.default('10s').describe('Close the tunnel when the pong does not come within this.'),
    to: z.enum(['client', 'backend', 'both']).default('both').describe('Which sides are pinged.'),
  }).optional().describe('Proxy pings on quiet tunnels: find dead peers, keep NAT paths open. Default: off.'),
  max_age: Duration.optional().describe('Recycle tunnels older than this with close code 1012. Default: none.'),
  max_age_jitter: z.number().min(0).max(1).default(0.1).describe('Each tunnel\'s max_age is shortened by up to this fraction, at random.'),
  max_message_bytes: z.number().int().min(1).optional().describe('Close with 1009 when a message is larger. Default: no limit.'),
  max_messages_per_second: z.number().positive().optional().describe('Close with 1008 when a client sends more messages in one second. Default: no limit.'),
  allowed_origins: z.array(z.string().min(1)).min(1).optional()
    .describe('Origins allowed to open WebSockets (exact, or with a * label such as https://*.example.com); others get 403. Default: any.'),
  allowed_subprotocols: z.array(z.string().min(1)).min(1).optional()
    .describe('Sec-WebSocket-Protocol values a client may ask for; a handshake asking only for others gets 403. Default: any.'),
});

export const RouteSchema = z.strictObject({
  name: z.string().optional().describe('A name for logs and messages.'),
  match: MatchSchema.default({}).describe('What the route matches. Default: every request.'),
  to: z.string().optional().describe('Proxy to this upstream (a name under upstreams) or URL (http, https, ws, wss).'),
  strip_prefix: z.boolean().optional().describe('Remove the matched prefix before forwarding. Default: false.'),
  rewrite: z.string().optional().describe('Path template sent upstream: $1..$9 are regex captures, $path the original path. The query is kept.'),
  preserve_host: z.boolean().optional().describe('Send the client\'s Host upstream (true, the default) or the upstream\'s host:port.'),
  reverse_rewrite: z.boolean().optional()
    .describe('Map Location, Content-Location, URI and Set-Cookie Domain/Path back to the client-facing URL. Default: on when the route changes the path or the host.'),
  request_headers: HeaderActions.optional(),
  response_headers: HeaderActions.optional(),
  redirect: z.strictObject({
    status: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302),
    location: z.string().describe('Location template: $1..$9 regex captures, $path, $query ("?a=b" or ""), $host, $hostname (no port), $scheme.'),
  }).optional(),
  respond: z.strictObject({
    status: z.number().int().min(100).max(599).default(200),
    body: z.string().default(''),
    content_type: z.string().default('text/plain; charset=utf-8'),
  }).optional(),
  timeouts: RouteTimeouts.optional().describe('Override the global timeouts for this route.'),
  websocket_over_http2: z.boolean().optional()
    .describe('false: refuse WebSockets over HTTP/2 here (421), and stop advertising them to a TLS name whose site has no other route taking them. Default: true.'),
  websocket: WebSocketPolicy.optional().describe('WebSocket policies of this route: proxy pings, max age, message limits, Origin and subprotocol checks.'),
  allow: z.array(z.string()).min(1).optional().describe('Only clients from these addresses or CIDR ranges may use this route (others get 403). Default: everyone.'),
  deny: z.array(z.string()).min(1).optional().describe('Clients from these addresses or CIDR ranges get 403 on this route.'),
  max_tunnels: z.number().int().min(1).optional().describe('Open WebSocket tunnels on this route at most; more handshakes get 503. Default: no limit.'),
}).refine((route) => [route.to, route.redirect, route.respond].filter((value) => value !== undefined).length === 1, {
  message: 'a route needs exactly one action: to, redirect or respond',
});

export const SiteSchema = z.strictObject({
  name: z.string().optional(),
  hosts: z.array(z.string().min(1)).min(1).default(['*'])
    .describe('Host names: exact (example.com), wildcard (*.example.com), or * for the default site.'),
  routes: z.array(RouteSchema).min(1).describe('Tried in order; the first match wins.'),
});

const ServerEntry = z.union([
  z.string().describe('Server URL: http, https, ws or wss.'),
  z.strictObject({
    url: z.string(),
    weight: z.number().int().min(1).max(1000).default(1),
    max_conns: z.number().int().min(1).optional().describe('Open tunnels plus in-flight requests this server takes at most. Default: no limit.'),
    drain: z.boolean().default(false).describe('Start drained: no new requests or tunnels (for deploys).'),
  }),
]);

const Sticky = z.union([
  z.enum(['none', 'cookie', 'ip']),
  z.strictObject({
    mode: z.enum(['cookie', 'ip']),
    cookie: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional().describe('Cookie name. Default: sy_affinity.'),
    secret: z.string().min(16).optional().describe('HMAC secret; default: env SWITCHYARD_SECRET, else random per start.'),
  }),
]);

const StatusRange = z.union([z.number().int().min(100).max(599), z.string().regex(/^\d{3}(-\d{3})?$/, { message: 'expected a status or a range such as 200-399' })]);

export const ActiveHealthSchema = z.strictObject({
  type: z.enum(['http', 'websocket']).default('http').describe('http: a request; websocket: a real handshake that must get 101, then a clean close.'),
  path: z.string().regex(/^\//, { message: 'a path starts with /' }).default('/'),
  method: z.string().regex(HTTP_METHOD).default('GET'),
  headers: z.record(z.string(), z.string()).optional().describe('Extra request headers (e.g. Host).'),
  expect_status: StatusRange.default('200-399'),
  expect_body: z.string().optional().describe('The response body must contain this text.'),
  interval: Duration.default('5s'),
  timeout: Duration.default('2s'),
  rise: z.number().int().min(1).max(100).default(2).describe('Consecutive passes that bring a down server back.'),
  fall: z.number().int().min(1).max(100).default(3).describe('Consecutive failures that take a server down.'),
});

export const PassiveHealthSchema = z.strictObject({
  max_fails: z.number().int().min(1).max(1000).default(1).describe('Consecutive failures that eject a server.'),
  fail_on: z.array(z.enum(['connect', 'reset', 'timeout', '5xx'])).min(1).default(['connect', 'reset', 'timeout'])
    .describe('What counts as a failure: connect (refused, unreachable, connect timeout), reset, timeout (no response in time), 5xx responses.'),
  max_eject: Duration.default('5m').describe('The ejection period doubles on each repeat, up to this.'),
});

export const UpstreamSchema = z.strictObject({
  servers: z.array(ServerEntry).min(1),
  policy: z.enum(['round_robin', 'least_conn', 'random_two', 'ip_hash', 'hash', 'first']).optional()
    .describe('Default: round_robin (weighted) for HTTP requests, least_conn for WebSocket upgrades.'),
  hash_key: z.union([
    z.strictObject({ header: z.string() }),
    z.strictObject({ cookie: z.string() }),
    z.strictObject({ query: z.string() }),
  ]).optional().describe('The key of policy: hash.'),
  sticky: Sticky.default('none'),
  fail_timeout: Duration.default('10s').describe('How long a server is ejected after failing (passive health); doubles on repeat.'),
  health: z.strictObject({
    active: ActiveHealthSchema.optional(),
    passive: PassiveHealthSchema.default({ max_fails: 1, fail_on: ['connect', 'reset', 'timeout'], max_eject: '5m' }),
    on_down: z.enum(['keep', 'close']).default('keep').describe('What happens to open tunnels of a server that goes down.'),
  }).default({ passive: { max_fails: 1, fail_on: ['connect', 'reset', 'timeout'], max_eject: '5m' }, on_down: 'keep' }),
  retries: z.number().int().min(0).max(20).default(2).describe('Other servers tried after a failure that is safe to retry.'),
  retry_deadline: Duration.default('10s').describe('No new attempt starts after this long.'),
  queue: z.strictObject({
    size: z.number().int().min(0).max(100000).default(0).describe('Requests that may wait for a server below max_conns. 0: none wait.'),
    timeout: Duration.default('5s'),
  }).default({ size: 0, timeout: '5s' }),
  tls: z.strictObject({
    ca: z.string().optional().describe('PEM file of the CA(s) that sign the servers\' certificates. Default: the system store.'),
    servername: z.string().optional().describe('Name sent in SNI and checked against the certificate. Default: the URL\'s host name.'),
    cert: z.string().optional().describe('Client certificate (mTLS), PEM file.'),
    key: z.string().optional().describe('Client key (mTLS), PEM file.'),
    insecure: z.boolean().default(false).describe('Skip certificate verification (logs a warning at start).'),
  }).optional(),
  discovery: z.strictObject({
    interval: Duration.default('30s').describe('How often host names are resolved again.'),
    resolver: z.string().optional().describe('DNS server HOST:PORT. Default: the system resolver.'),
    srv: z.boolean().default(false).describe('Resolve SRV records (with their ports and weights) instead of A/AAAA.'),
  }).optional().describe('Re-resolve servers given by host name: every address becomes a server; vanished ones drain.'),
  drain_timeout: Duration.default('5m').describe('How long a drained server\'s open tunnels may stay before they are closed.'),
  http2: z.boolean().default(false)
    .describe('https servers: offer HTTP/2 in ALPN and use it for requests when the server picks it. WebSocket handshakes always use HTTP/1.1.'),
  send_proxy_protocol: z.enum(['v1', 'v2']).optional()
    .describe('Start every connection to these servers with a PROXY protocol header naming the client. Default: off.'),
});

export const TimeoutsSchema = z.strictObject({
  connect: Duration.optional().describe('Default 1s.'),
  response: Duration.optional().describe('Default 60s.'),
  tunnel_idle: Duration.optional().describe('Default 1h.'),
  header: Duration.optional().describe('Default 30s.'),
  keep_alive: Duration.optional().describe('Default 75s.'),
  drain: Duration.optional().describe('Default 30s.'),
});

export const ConfigFileSchema = z.strictObject({
  listeners: z.array(ListenerSchema).min(1),
  sites: z.array(SiteSchema).min(1),
  upstreams: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, { message: 'upstream names use letters, digits, _ . -' }), UpstreamSchema).default({}),
  timeouts: TimeoutsSchema.default({}),
  limits: z.strictObject({
    max_header_bytes: z.number().int().min(1024).max(1024 * 1024).optional().describe('Default 16384.'),
    max_header_count: z.number().int().min(1).max(10_000).optional().describe('Request header fields at most (431 beyond). Default 100.'),
    max_body_bytes: z.number().int().min(0).optional().describe('Request body bytes at most (413 beyond). Default: no limit.'),
    max_connections: z.number().int().min(1).optional().describe('Open client connections at most, all listeners together; more get 503. Default: no limit.'),
    max_connections_per_ip: z.number().int().min(1).optional().describe('Open connections per client address at most; more get 429. Default: no limit.'),
    handshakes_per_ip_per_second: z.number().positive().optional().describe('WebSocket handshakes per client address and second (burst: the same number); more get 429. Default: no limit.'),
  }).default({}),
  workers: z.number().int().min(1).max(256).default(1),
  trusted_proxies: z.array(z.string()).min(1).optional()
    .describe('Peers (addresses or CIDR ranges) whose X-Forwarded-For is believed: the client is the last address in it that is not itself trusted. Default: none.'),
  drain: z.strictObject({
    rate: z.number().min(0).default(500).describe('Tunnels closed per second (with close frames) on shutdown and when a server is drained; 0: all at once.'),
    jitter: z.number().min(0).max(1).default(0.5).describe('Each close moves by up to this fraction of 1/rate, at random.'),
  }).default({ rate: 500, jitter: 0.5 }).describe('How open tunnels are closed when draining.'),
  access_log: z.union([z.literal(false), z.strictObject({
    path: z.string().min(1).default('-').describe('File to append to (its folder is created), or "-" for stdout. Reopened on SIGUSR1.'),
    format: z.enum(['json', 'combined']).default('json'),
  })]).default({ path: '-', format: 'json' }).describe('One line per request and per tunnel. false: none.'),
  admin: z.strictObject({
    address: Address.default('127.0.0.1:9901').describe('Where the admin listener (dashboard, /metrics, /api/) listens.'),
    token: z.string().min(16).optional().describe('Bearer token every admin request must carry (Authorization: Bearer TOKEN). Default: none.'),
  }).optional().describe('The admin listener. Default: off.'),
});

export type ConfigFile = z.output<typeof ConfigFileSchema>;
export type RouteFile = z.output<typeof RouteSchema>;
export type MatchFile = z.output<typeof MatchSchema>;
export type UpstreamFile = z.output<typeof UpstreamSchema>;
export type SiteFile = z.output<typeof SiteSchema>;

/** The JSON Schema of the config file, for editors. */
export function configJsonSchema(): unknown {
  return { ...z.toJSONSchema(ConfigFileSchema, { io: 'input' }), title: 'Switchyard configuration' };
}
