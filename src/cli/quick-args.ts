import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { parseAddress } from '../config/address.js';
import { parseDuration } from '../config/duration.js';
import { withDefaults, type AdminConfig, type StickyMode, type SwitchyardConfig, type TimeoutConfig } from '../config/model.js';
import { ProxyError } from '../errors.js';
import { parseServerUrl } from '../upstream/upstream-server.js';

export const QUICK_USAGE = `Usage: switchyard proxy --listen HOST:PORT --to URL [--to URL ...] [options]

Forward HTTP and WebSocket traffic arriving on one listener to one or more backends.

  --listen HOST:PORT       address to listen on (e.g. 127.0.0.1:8080, [::1]:8080, :8080)
  --to URL                 backend: http://, https://, ws:// or wss:// (repeat for several;
                           round robin for requests, least open connections for WebSockets)
  --sticky cookie|ip       pin each client to one backend: a signed affinity cookie
                           (secret from SWITCHYARD_SECRET, else random per start) or a hash
                           of the client address; falls back when the pinned backend is down
  --tls-cert FILE          PEM certificate chain: the listener speaks TLS (https, wss)
  --tls-key FILE           PEM private key for --tls-cert
  --workers N              processes sharing the port (default 1)
  --idle-timeout DURATION  close a tunnel with no bytes either way for this long (default 1h)
  --connect-timeout DURATION   backend connect timeout, then the next backend (default 1s)
  --response-timeout DURATION  backend response-header timeout, then 504 (default 60s)
  --header-timeout DURATION    client must send its request headers within this (default 30s)
  --drain-timeout DURATION     on SIGTERM/SIGINT, time given to open requests and tunnels (default 30s)
  --access-log PATH|-|off  one line per request and per tunnel: a file (reopened on SIGUSR1),
                           - for stdout (the default), or off
  --access-log-format json|combined   (default json)
  --admin HOST:PORT        admin listener: dashboard at /, Prometheus /metrics, JSON API /api/
                           (off when not given; bearer token from SWITCHYARD_ADMIN_TOKEN if set)
  -h, --help               show this help

Durations take a unit: ms, s, m or h (e.g. 500ms, 30s, 5m, 1h).`;

const OPTIONS = {
  listen: { type: 'string' },
  to: { type: 'string', multiple: true },
  sticky: { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  workers: { type: 'string' },
  'idle-timeout': { type: 'string' },
  'connect-timeout': { type: 'string' },
  'response-timeout': { type: 'string' },
  'header-timeout': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'access-log': { type: 'string' },
  'access-log-format': { type: 'string' },
  admin: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

export type QuickArgs = { help: true } | { help: false; config: SwitchyardConfig };

function usageError(message: string): ProxyError {
  return new ProxyError('SY_USAGE', message);
}

/** Parses the quick-mode flags into the same config model the config file produces. */
export function parseQuickArgs(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): QuickArgs {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; args: string[]; strict: true; allowPositionals: false }>>['values'];
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw usageError((err as Error).message.split('\n')[0] ?? 'invalid arguments');
  }
  if (values.help) return { help: true };
  if (!values.listen) throw usageError('--listen HOST:PORT is required');
  const listen = parseListen(values.listen);
  const servers = values.to ?? [];
  if (servers.length === 0) throw usageError('--to URL is required (at least one backend)');
  for (const url of servers) {
    try {
      parseServerUrl(url);
    } catch (err) {
      throw usageError(`--to ${(err as Error).message.replace(/^invalid configuration: /, '')}`);
    }
  }
  const sticky = parseSticky(values.sticky);
  if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) throw usageError('--tls-cert and --tls-key go together');
  const tls = values['tls-cert'] && values['tls-key']
    ? { cert: readPem('--tls-cert', values['tls-cert']), key: readPem('--tls-key', values['tls-key']) }
    : undefined;
  const workers = values.workers === undefined ? 1 : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 256) throw usageError(`--workers ${values.workers}: expected a whole number from 1 to 256`);
  const timeouts: { -readonly [K in keyof TimeoutConfig]?: number } = {};
  const durationFlags = [
    ['idle-timeout', 'tunnelIdleMs'],
    ['connect-timeout', 'connectMs'],
    ['response-timeout', 'responseMs'],
    ['header-timeout', 'headerMs'],
    ['drain-timeout', 'drainMs'],
  ] as const;
  for (const [flag, field] of durationFlags) {
    const text = values[flag];
    if (text === undefined) continue;
    const ms = parseDuration(text);
    if (ms === undefined || (ms === 0 && field !== 'tunnelIdleMs' && field !== 'drainMs')) {
      throw usageError(`--${flag} ${text}: expected a duration such as 500ms, 30s, 5m or 1h`);
    }
    timeouts[field] = ms;
  }
  const accessLogPath = values['access-log'] ?? '-';
  const accessLogFormat = values['access-log-format'] ?? 'json';
  if (accessLogFormat !== 'json' && accessLogFormat !== 'combined') throw usageError(`--access-log-format ${accessLogFormat}: expected json or combined`);
  let admin: AdminConfig | undefined;
  if (values.admin !== undefined) {
    const address = parseAddress(values.admin);
    if (!address) throw usageError(`--admin ${values.admin}: expected HOST:PORT, e.g. 127.0.0.1:9901`);
    admin = { host: address.host, port: address.port, ...(env.SWITCHYARD_ADMIN_TOKEN ? { token: env.SWITCHYARD_ADMIN_TOKEN } : {}) };
  }
  const config = withDefaults({
    ...(accessLogPath === 'off' ? {} : { accessLog: { path: accessLogPath, format: accessLogFormat } }),
    ...(admin ? { admin } : {}),
    listeners: [{ host: listen.host, port: listen.port, ...(tls ? { tls } : {}) }],
    upstream: { servers, sticky, ...(env.SWITCHYARD_SECRET ? { stickySecret: env.SWITCHYARD_SECRET } : {}) },
    timeouts,
    workers,
  }, () => randomBytes(32).toString('base64url'));
  return { help: false, config };
}

export function parseListen(text: string): { host: string; port: number } {
  const address = parseAddress(text);
  if (!address) throw usageError(`--listen ${text}: expected HOST:PORT, e.g. 127.0.0.1:8080, [::1]:8080 or :8080`);
  return address;
}

function parseSticky(text: string | undefined): StickyMode {
  if (text === undefined) return 'none';
  if (text === 'cookie' || text === 'ip') return text;
  throw usageError(`--sticky ${text}: expected cookie or ip`);
}

function readPem(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw usageError(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}
