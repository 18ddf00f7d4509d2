import type { UpstreamServer } from '../upstream/upstream-server.js';

/**
 * The path sent upstream: the server URL's base path joined with the client's
 * path. An absolute-form target (GET http://other/x) is reduced to its path, so
 * it can never send the request anywhere but the chosen server.
 */
export function upstreamPath(server: UpstreamServer, requestTarget: string): string {
  let path = requestTarget;
  if (path.charCodeAt(0) !== 0x2f) path = originForm(path);
  return server.basePath === '' ? path : server.basePath + path;
}

function originForm(target: string): string {
  const schemeEnd = target.indexOf('://');
  if (schemeEnd < 0) return target === '*' ? '*' : `/${target}`;
  const pathStart = target.indexOf('/', schemeEnd + 3);
  const queryStart = target.indexOf('?', schemeEnd + 3);
  if (pathStart < 0 || (queryStart >= 0 && queryStart < pathStart)) return queryStart < 0 ? '/' : `/${target.slice(queryStart)}`;
  return target.slice(pathStart);
}
