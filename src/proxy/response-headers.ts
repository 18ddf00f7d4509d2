import type { CompiledRoute } from '../router/compiled-route.js';
import type { UpstreamServer } from '../upstream/upstream-server.js';
import { applyHeaderActions } from './header-actions.js';
import { clientResponseHeaders } from './headers.js';
import type { ClientView } from './reverse-rewrite.js';

/**
 * The `upstreamResponse` phase for headers: hop-by-hop removed, URLs and cookies
 * that point at the backend mapped back (ProxyPassReverse), the route's header
 * actions applied, and the affinity cookie added.
 */
export function responseHeadersFor(
  raw: readonly (Buffer | string)[],
  keepUpgrade: boolean,
  route: CompiledRoute,
  server: UpstreamServer,
  client: ClientView,
  setCookie: string | undefined,
): string[] {
  let headers = clientResponseHeaders(raw, keepUpgrade);
  const rewriter = route.reverseRewriter(server);
  if (rewriter) {
    for (let i = 0; i < headers.length; i += 2) {
      const name = (headers[i] as string).toLowerCase();
      if (name === 'location' || name === 'content-location' || name === 'uri') headers[i + 1] = rewriter.url(headers[i + 1] as string, client);
      else if (name === 'set-cookie') headers[i + 1] = rewriter.setCookie(headers[i + 1] as string, client);
    }
  }
  if (route.responseHeaders) headers = applyHeaderActions(headers, route.responseHeaders);
  if (setCookie !== undefined) headers.push('Set-Cookie', setCookie);
  return headers;
}
