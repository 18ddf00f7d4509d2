import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Operational log (errors, lifecycle) as JSON lines on stderr, written synchronously
 * since these lines are rare and must survive an exit; stdout stays for the
 * start line and, later, the access log. SWITCHYARD_LOG_LEVEL overrides the level.
 */
export function createLogger(level = process.env.SWITCHYARD_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { pid: process.pid }, messageKey: 'msg' }, pino.destination({ fd: 2, sync: true }));
}

/** A logger that writes nothing, for tests and embedding. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
