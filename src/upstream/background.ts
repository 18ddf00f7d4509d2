import type { Logger } from '../log/logger.js';
import { Discovery } from './discovery.js';
import { ActiveHealthCheck } from './health/active-check.js';
import type { Background, UpstreamPool } from './upstream-pool.js';

/** The background work a pool's config asks for: active health checks, discovery. */
export function backgroundTasks(pool: UpstreamPool, log: Logger): Background[] {
  const { config } = pool;
  const tasks: Background[] = [];
  if (config.activeHealth) tasks.push(new ActiveHealthCheck(pool, config.activeHealth, log));
  if (config.discovery) tasks.push(new Discovery(pool, config.discovery, log));
  if (config.tls?.insecure) log.warn({ upstream: config.name }, 'TLS certificate verification is off for this upstream (tls.insecure)');
  return tasks;
}
