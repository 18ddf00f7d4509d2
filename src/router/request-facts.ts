import type { IncomingMessage } from 'node:http';
import type { RequestFacts } from './route-matcher.js';

/** Splits the request target into path and query once, for routing and rewriting. */
export function requestFacts(req: IncomingMessage, upgrade: boolean): RequestFacts {
  let target = req.url ?? '/';
  if (target.charCodeAt(0) !== 0x2f) target = originForm(target);
  const queryAt = target.indexOf('?');
  return {
    method: req.method ?? 'GET',
    path: queryAt < 0 ? target : target.slice(0, queryAt),
    query: queryAt < 0 ? '' : target.slice(queryAt),
    upgrade,
    req,
    headers: req.headers,
  };
}

/** "http://host/p?q" → "/p?q"; "http://host" → "/"; "*" stays "*". */
export function originForm(target: string): string {
  const schemeEnd = target.indexOf('://');
  if (schemeEnd < 0) return target === '*' ? '*' : `/${target}`;
  const pathStart = target.indexOf('/', schemeEnd + 3);
  const queryStart = target.indexOf('?', schemeEnd + 3);
  if (pathStart < 0 || (queryStart >= 0 && queryStart < pathStart)) return queryStart < 0 ? '/' : `/${target.slice(queryStart)}`;
  return target.slice(pathStart);
}
