import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './origins.js';
import { startServerProcess, type RunningServer } from './server-process.js';

/** Debian's haproxy binary, when installed (.ci/run installs it). */
export const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((path) => existsSync(path));

export type RunningHaproxy = RunningServer;

/**
 * A real HAProxy (foreground, one process, `-db`) with one `listen` section
 * bound to 127.0.0.1 at a free port: `listenBody` is what goes in that section
 * after the bind line (mode, timeouts, server lines). Its pid file and config
 * live in a temp dir that close() removes.
 */
export async function startHaproxy(listenBody: string): Promise<RunningHaproxy> {
  if (!HAPROXY) throw new Error('haproxy is not installed (apt-get install haproxy)');
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-haproxy-'));
  const port = await closedPort();
  const conf = join(dir, 'haproxy.cfg');
  writeFileSync(conf, `global
  pidfile ${dir}/haproxy.pid
  log stderr format raw local0 warning

listen probe
  bind 127.0.0.1:${port}
${listenBody}
`);
  return startServerProcess({ name: 'haproxy', command: HAPROXY, args: ['-db', '-f', conf, '-p', join(dir, 'haproxy.pid')], dir, port });
}
