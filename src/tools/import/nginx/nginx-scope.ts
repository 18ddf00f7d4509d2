import type { NginxDirective } from './nginx-parser.js';

/**
 * The proxy settings in force at one level (http, server, location), with
 * nginx's inheritance: a level takes its parent's value unless it sets its
 * own; list-valued directives (proxy_set_header, add_header, allow/deny) are
 * inherited only by a level that has none of its own.
 */
export interface NginxScope {
  readonly setHeaders: readonly NginxDirective[];
  readonly addHeaders: readonly NginxDirective[];
  readonly access: readonly NginxDirective[];
  readonly single: ReadonlyMap<string, NginxDirective>;
}

const LISTS: Readonly<Record<string, 'setHeaders' | 'addHeaders' | 'access'>> = {
  proxy_set_header: 'setHeaders',
  add_header: 'addHeaders',
  allow: 'access',
  deny: 'access',
};

/** Directives whose last value at the nearest level wins. */
export const SINGLE_VALUED = new Set([
  'proxy_read_timeout', 'proxy_send_timeout', 'proxy_connect_timeout', 'proxy_http_version', 'proxy_buffering',
  'proxy_request_buffering', 'proxy_redirect', 'client_max_body_size', 'ssl_certificate', 'ssl_certificate_key',
  'ssl_protocols', 'ssl_ciphers', 'proxy_ssl_verify', 'proxy_ssl_trusted_certificate', 'proxy_ssl_name',
  'proxy_ssl_server_name', 'proxy_ssl_certificate', 'proxy_ssl_certificate_key', 'proxy_cache', 'proxy_pass_request_headers',
  'proxy_cookie_domain', 'proxy_cookie_path', 'ssl_prefer_server_ciphers',
]);

export const EMPTY_SCOPE: NginxScope = { setHeaders: [], addHeaders: [], access: [], single: new Map() };

/** The scope of a block: its parent's, overridden by what the block itself sets. Marks what it used in `handled`. */
export function childScope(parent: NginxScope, block: readonly NginxDirective[], handled: Set<NginxDirective>): NginxScope {
  const own: { setHeaders: NginxDirective[]; addHeaders: NginxDirective[]; access: NginxDirective[] } = { setHeaders: [], addHeaders: [], access: [] };
  const single = new Map(parent.single);
  for (const directive of block) {
    const list = LISTS[directive.name];
    if (list) {
      own[list].push(directive);
      handled.add(directive);
    } else if (SINGLE_VALUED.has(directive.name)) {
      single.set(directive.name, directive);
      handled.add(directive);
    }
  }
  return {
    setHeaders: own.setHeaders.length > 0 ? own.setHeaders : parent.setHeaders,
    addHeaders: own.addHeaders.length > 0 ? own.addHeaders : parent.addHeaders,
    access: own.access.length > 0 ? own.access : parent.access,
    single,
  };
}
