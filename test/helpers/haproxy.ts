import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './origins.js';

/** Debian's haproxy binary, when installed (.ci/run installs it). */
export const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((path) => existsSync(path));

export interface RunningHaproxy {
  readonly port: number;
  close(): Promise<void>;
}

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
  const child: ChildProcess = spawn(HAPROXY, ['-db', '-f', conf, '-p', join(dir, 'haproxy.pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 5_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`haproxy did not start: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    close: async () => {
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
