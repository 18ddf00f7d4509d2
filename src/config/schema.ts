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
  cert: z.string().describe('Path of the PEM certificate chain (relative to the config file).'),
  key: z.string().describe('Path of the PEM private key (relative to the config file).'),
});

export const ListenerSchema = z.strictObject({
  address: Address,
  tls: TlsFiles.optional().describe('Terminate TLS here (https, wss). Default: plain HTTP.'),
  sites: z.array(z.string()).min(1).optional().describe('Names of the sites this listener serves. Default: every site.'),
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
    location: z.string().describe('Location template: $1..$9 regex captures, $path, $query ("?a=b" or ""), $host, $scheme.'),
  }).optional(),
  respond: z.strictObject({
    status: z.number().int().min(100).max(599).default(200),
    body: z.string().default(''),
    content_type: z.string().default('text/plain; charset=utf-8'),
  }).optional(),
  timeouts: RouteTimeouts.optional().describe('Override the global timeouts for this route.'),
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
  z.strictObject({ url: z.string(), weight: z.number().int().min(1).max(1000).default(1) }),
]);

const Sticky = z.union([
  z.enum(['none', 'cookie', 'ip']),
  z.strictObject({
    mode: z.enum(['cookie', 'ip']),
    cookie: z.string().regex(/^[A-Za-z0-9_.-]+$/).optional().describe('Cookie name. Default: sy_affinity.'),
    secret: z.string().min(16).optional().describe('HMAC secret; default: env SWITCHYARD_SECRET, else random per start.'),
  }),
]);

export const UpstreamSchema = z.strictObject({
  servers: z.array(ServerEntry).min(1),
  policy: z.enum(['round_robin', 'least_conn']).optional()
    .describe('Default: round_robin (weighted) for HTTP requests, least_conn for WebSocket upgrades.'),
  sticky: Sticky.default('none'),
  fail_timeout: Duration.default('10s').describe('How long a server that failed a connection is skipped.'),
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
  }).default({}),
  workers: z.number().int().min(1).max(256).default(1),
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
