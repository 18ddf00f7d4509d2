import type { ImportReport } from '../import-report.js';
import { parseDurationMs } from '../values.js';
import type { Directive } from './haproxy-parser.js';

/**
 * What a `defaults` section passes to the proxies after it, and what a proxy
 * section sets for itself with the same keywords: mode, timeouts, balance,
 * options, default-server, cookie, http-check, retries, maxconn,
 * default_backend. Each value keeps the directive it came from, for comments
 * and notes.
 */

export interface Setting<T> {
  readonly value: T;
  readonly directive: Directive;
}

export type TimeoutName = 'connect' | 'client' | 'server' | 'tunnel' | 'http-request' | 'http-keep-alive' | 'queue' | 'check';
const TIMEOUTS: ReadonlySet<string> = new Set(['connect', 'client', 'server', 'tunnel', 'http-request', 'http-keep-alive', 'queue', 'check']);
/** Timeouts with no Switchyard counterpart. */
const OTHER_TIMEOUTS: Readonly<Record<string, string>> = {
  'client-fin': 'half-closed client connections: Switchyard closes both sides together',
  'server-fin': 'half-closed server connections: Switchyard closes both sides together',
  tarpit: 'tarpit has no equivalent',
  'client-hs': 'the TLS handshake is bounded by timeouts.header',
  // Old spellings.
  contimeout: 'use timeout connect', clitimeout: 'use timeout client', srvtimeout: 'use timeout server',
};

export interface ProxySettings {
  mode: Setting<string> | undefined;
  timeouts: Partial<Record<TimeoutName, Setting<number>>>;
  balance: Setting<readonly string[]> | undefined;
  hashType: Setting<readonly string[]> | undefined;
  /** `option NAME ARGS`; `no option NAME` removes it. */
  options: Map<string, Setting<readonly string[]>>;
  httpCheck: Directive[];
  defaultServer: Setting<readonly string[]>[];
  cookie: Setting<readonly string[]> | undefined;
  retries: Setting<number> | undefined;
  maxconn: Setting<number> | undefined;
  defaultBackend: Setting<string> | undefined;
}

export function emptySettings(): ProxySettings {
  return {
    mode: undefined, timeouts: {}, balance: undefined, hashType: undefined, options: new Map(), httpCheck: [], defaultServer: [],
    cookie: undefined, retries: undefined, maxconn: undefined, defaultBackend: undefined,
  };
}

export function copySettings(from: ProxySettings): ProxySettings {
  return { ...from, timeouts: { ...from.timeouts }, options: new Map(from.options), httpCheck: [...from.httpCheck], defaultServer: [...from.defaultServer] };
}

/**
 * Applies a directive that belongs to the inherited settings; false when the
 * keyword is not one of them. Bad values are listed as not translated.
 */
export function applySetting(settings: ProxySettings, directive: Directive, report: ImportReport): boolean {
  const [first, second] = directive.args;
  switch (directive.keyword) {
    case 'mode':
      if (first !== undefined) settings.mode = { value: first, directive };
      return true;
    case 'timeout': {
      if (first === undefined || !TIMEOUTS.has(first)) {
        if (first !== undefined && first in OTHER_TIMEOUTS) report.skip(directive.location, directive.text, OTHER_TIMEOUTS[first]!);
        else report.skip(directive.location, directive.text, 'unknown timeout');
        return true;
      }
      const ms = second === undefined ? undefined : parseDurationMs(second, 'ms');
      if (ms === undefined) report.skip(directive.location, directive.text, `"${second ?? ''}" is not a duration`);
      else settings.timeouts[first as TimeoutName] = { value: ms, directive };
      return true;
    }
    case 'contimeout': case 'clitimeout': case 'srvtimeout': {
      const name = directive.keyword === 'contimeout' ? 'connect' : directive.keyword === 'clitimeout' ? 'client' : 'server';
      const ms = first === undefined ? undefined : parseDurationMs(first, 'ms');
      if (ms === undefined) report.skip(directive.location, directive.text, `"${first ?? ''}" is not a duration`);
      else settings.timeouts[name] = { value: ms, directive };
      return true;
    }
    case 'balance':
      settings.balance = { value: directive.args, directive };
      return true;
    case 'hash-type':
      settings.hashType = { value: directive.args, directive };
      return true;
    case 'option':
      if (first !== undefined) settings.options.set(first, { value: directive.args.slice(1), directive });
      return true;
    case 'no':
      if (first === 'option' && second !== undefined) {
        settings.options.delete(second);
        return true;
      }
      return false;
    case 'http-check':
      // A later `option httpchk` or a section's own http-check lines replace the inherited ones.
      settings.httpCheck.push(directive);
      return true;
    case 'default-server':
      settings.defaultServer.push({ value: directive.args, directive });
      return true;
    case 'cookie':
      settings.cookie = { value: directive.args, directive };
      return true;
    case 'retries': {
      const n = Number(first);
      if (!Number.isInteger(n) || n < 0) report.skip(directive.location, directive.text, 'not a number of retries');
      else settings.retries = { value: n, directive };
      return true;
    }
    case 'maxconn': {
      const n = Number(first);
      if (!Number.isInteger(n) || n < 1) report.skip(directive.location, directive.text, 'not a connection count');
      else settings.maxconn = { value: n, directive };
      return true;
    }
    case 'default_backend':
      if (first !== undefined) settings.defaultBackend = { value: first, directive };
      return true;
    default:
      return false;
  }
}

/**
 * Notes for options and other directives that have no translation or are
 * redundant in Switchyard, wherever they appear. False when the directive
 * is not one of them (the caller handles or lists it).
 */
export function noteCommon(directive: Directive, report: ImportReport): boolean {
  const skip = (why: string): true => {
    report.skip(directive.location, directive.text, why);
    return true;
  };
  const advise = (why: string): true => {
    report.advise(directive.location, directive.text, why);
    return true;
  };
  const [first, second] = directive.args;
  switch (directive.keyword) {
    case 'log':
    case 'log-format':
    case 'log-tag':
    case 'error-log-format':
    case 'log-format-sd':
      return skip('logging: Switchyard writes one access-log line per request and per tunnel (access_log: path, format json|combined)');
    case 'errorfile':
    case 'errorloc':
    case 'errorloc302':
    case 'errorloc303':
    case 'errorfiles':
    case 'http-error':
      return skip('custom error pages have no equivalent (Switchyard answers errors with its own short bodies and SY_ codes)');
    case 'compression':
      return skip('Switchyard does not compress responses (the backend may)');
    case 'http-reuse':
      return skip('Switchyard keeps its own keep-alive pool per upstream');
    case 'stats':
      return skip('the statistics page: Switchyard has the admin listener (admin: { address }) with a dashboard, /metrics and /api/');
    case 'capture':
    case 'declare':
    case 'unique-id-format':
    case 'unique-id-header':
      return skip('request capture and IDs have no equivalent (Switchyard logs a request id rid= per request)');
    case 'description':
    case 'id':
    case 'enabled':
    case 'disabled':
    case 'bind-process':
    case 'guid':
      return skip('no equivalent');
    case 'monitor':
      return skip('monitor fail has no equivalent');
    case 'email-alert':
      return skip('email alerts have no equivalent');
    case 'filter':
      return skip('filters have no equivalent');
    case 'tcp-request':
    case 'tcp-response':
      return skip('TCP-level rules have no equivalent (Switchyard proxies HTTP; client limits are under limits and routes\' allow/deny)');
    case 'fullconn':
      return skip('fullconn (dynamic maxconn) has no equivalent; servers\' max_conns are fixed');
    case 'no':
      if (first === 'option') return true;
      return skip('no equivalent');
    case 'option':
      break;
    default:
      return false;
  }
  switch (first) {
    case 'http-tunnel':
      return advise('redundant: Switchyard tunnels every WebSocket upgrade by itself after the 101 (HAProxy deprecated it in 2.0, and 2.1 and later refuse a config that has it)');
    case 'forwardfor':
      if (directive.args.includes('header')) return skip('X-Forwarded-For under another header name: Switchyard always sends X-Forwarded-For');
      return advise('redundant: Switchyard adds X-Forwarded-For (and X-Forwarded-Proto, -Host, -Port) to every request');
    case 'http-server-close':
    case 'httpclose':
    case 'forceclose':
    case 'http-keep-alive':
    case 'http-pretend-keepalive':
    case 'http-no-delay':
    case 'http-buffer-request':
    case 'prefer-last-server':
      return skip('connection handling: Switchyard keeps client and backend connections alive on its own and never buffers');
    case 'httplog':
    case 'tcplog':
    case 'dontlognull':
    case 'dontlog-normal':
    case 'log-separate-errors':
    case 'log-health-checks':
    case 'logasap':
    case 'httpslog':
    case 'clf':
      return skip('logging: Switchyard writes one access-log line per request and per tunnel (access_log)');
    case 'redispatch':
      return advise('redundant: Switchyard retries another server after a failed connection (upstream retries, default 2)');
    case 'abortonclose':
    case 'splice-auto':
    case 'splice-request':
    case 'splice-response':
    case 'tcp-smart-accept':
    case 'tcp-smart-connect':
    case 'tcpka':
    case 'clitcpka':
    case 'srvtcpka':
    case 'contstats':
    case 'socket-stats':
    case 'independent-streams':
    case 'nolinger':
    case 'transparent':
    case 'accept-invalid-http-request':
    case 'accept-invalid-http-response':
    case 'allbackups':
    case 'checkcache':
    case 'disable-h2-upgrade':
    case 'h1-case-adjust-bogus-client':
    case 'h1-case-adjust-bogus-server':
    case 'persist':
    case 'idle-close-on-response':
    case 'http-restrict-req-hdr-names':
    case 'http-drop-request-trailers':
    case 'http-drop-response-trailers':
    case 'originalto':
    case 'http-use-proxy-header':
    case 'external-check':
    case 'spop-check':
    case 'ssl-hello-chk':
    case 'tcp-check':
    case 'mysql-check':
    case 'pgsql-check':
    case 'redis-check':
    case 'smtpchk':
    case 'ldap-check':
      return skip(`option ${first} has no equivalent`);
    case 'httpchk':
      // Read by the backends (health.active).
      return true;
    default:
      void second;
      return skip(`option ${first ?? ''} is not translated`);
  }
}
