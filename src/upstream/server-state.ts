import type { UpstreamServer } from './upstream-server.js';

export type ServerState = 'up' | 'down' | 'ejected' | 'draining';

/** One word for a server's state, as metrics, the admin API and the dashboard show it. */
export function serverState(server: UpstreamServer, now: number): ServerState {
  if (server.draining) return 'draining';
  if (!server.healthy) return 'down';
  if (server.ejectedUntil > now) return 'ejected';
  return 'up';
}
