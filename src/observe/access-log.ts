import { pino } from 'pino';
import type { Logger } from '../log/logger.js';
import type { RequestRecord, TunnelRecord } from './records.js';

export type AccessLogFormat = 'json' | 'combined';

export interface AccessLogConfig {
  /** A file (appended to, created with its folder), or "-" for stdout. */
  readonly path: string;
  readonly format: AccessLogFormat;
}

type Destination = ReturnType<typeof pino.destination>;

const ERROR_REPORT_INTERVAL_MS = 60_000;

/**
 * One line per request and per tunnel, JSON or the combined format, to stdout
 * or a file, written asynchronously through pino's destination (sonic-boom). A file is reopened on reopen()
 * (SIGUSR1, after logrotate moved it). A write error (a full disk) never
 * reaches the traffic: lines are dropped and counted, the error is reported
 * once a minute, and the next reopen tries again.
 */
export class AccessLog {
  dropped = 0;
  private readonly destination: Destination;
  private readonly json: boolean;
  private failing = false;
  private lastErrorReport = 0;

  constructor(readonly config: AccessLogConfig, private readonly log: Logger) {
    this.destination = pino.destination(config.path === '-' ? { fd: 1, sync: false } : { dest: config.path, sync: false, mkdir: true, append: true });
    this.destination.on('error', (err: NodeJS.ErrnoException) => this.writeFailed(err));
    this.json = config.format === 'json';
  }

  write(record: RequestRecord | TunnelRecord): void {
    if (this.failing) {
      this.dropped++;
      return;
    }
    try {
      this.destination.write(`${this.json ? JSON.stringify(record) : combinedLine(record)}\n`);
    } catch (err) {
      this.writeFailed(err as NodeJS.ErrnoException);
    }
  }

  /** Opens the file again under its name (logrotate), and retries after a write error. */
  reopen(): void {
    if (this.config.path === '-') return;
    try {
      this.destination.reopen();
      this.failing = false;
    } catch (err) {
      this.writeFailed(err as NodeJS.ErrnoException);
    }
  }

  /** Writes out what is buffered now (not while the destination is failing: that would block). */
  flush(): void {
    if (this.failing) return;
    try {
      this.destination.flushSync();
    } catch (err) {
      // Before the file is open sonic-boom refuses ("not ready yet"): nothing to
      // write out yet, and no reason to stop logging. Only an I/O error is a failure.
      if ((err as NodeJS.ErrnoException).code !== undefined) this.writeFailed(err as NodeJS.ErrnoException);
    }
  }

  /**
   * Writes out what is buffered and closes the file (stdout stays open). A
   * destination that is failing is dropped instead: sonic-boom's synchronous
   * flush retries a full disk forever, which would hang the exit.
   */
  close(): void {
    try {
      if (this.failing) this.destination.destroy();
      else {
        this.destination.flushSync();
        if (this.config.path !== '-') this.destination.end();
      }
    } catch {
      this.destination.destroy();
    }
  }

  private writeFailed(err: NodeJS.ErrnoException): void {
    this.failing = true;
    this.dropped++;
    const now = Date.now();
    if (now - this.lastErrorReport < ERROR_REPORT_INTERVAL_MS) return;
    this.lastErrorReport = now;
    this.log.error({ code: 'SY_ACCESS_LOG_WRITE', path: this.config.path, err: err.message, dropped: this.dropped }, 'access log write failed; dropping lines until it is reopened');
  }
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/**
 * nginx's and Apache's combined format; tunnels add what it has no field for
 * (duration, bytes from the client, messages, close codes, who closed) as
 * key=value pairs at the end.
 */
export function combinedLine(record: RequestRecord | TunnelRecord): string {
  const status = record.type === 'tunnel' ? 101 : record.status;
  const bytes = record.type === 'tunnel' ? record.bytes_from_backend : record.bytes_out;
  const protocol = record.protocol === 'h2' ? 'HTTP/2.0' : 'HTTP/1.1';
  let line = `${record.client} - - [${clfTime(record.time)}] "${escape(record.method)} ${escape(record.path)} ${protocol}" ${status} ${bytes} "${escape(record.referer ?? '-')}" "${escape(record.user_agent ?? '-')}"`;
  line += ` rid=${record.request_id} rt=${((record.type === 'tunnel' ? record.session_ms : record.duration_ms) / 1000).toFixed(3)}`;
  if (record.upstream !== undefined) line += ` upstream=${record.upstream}`;
  if (record.type === 'tunnel') {
    line += ` in=${record.bytes_from_client} msgs_in=${record.messages_from_client} msgs_out=${record.messages_from_backend}`;
    line += ` client_close=${record.client_close?.code ?? '-'} backend_close=${record.backend_close?.code ?? '-'} closed_by=${record.closed_by}`;
  }
  if (record.error !== undefined) line += ` error=${record.error}`;
  return line;
}

function clfTime(iso: string): string {
  const date = new Date(iso);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${pad(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

/** Quotes and control characters from the client must not break the line. */
function escape(value: string): string {
  // eslint-disable-next-line no-control-regex
  return /["\\\x00-\x1f\x7f]/.test(value) ? value.replace(/["\\\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`) : value;
}
