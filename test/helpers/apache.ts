import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './origins.js';

/** Debian's Apache 2.4 binary, when installed (.ci/run installs apache2). */
export const APACHE = ['/usr/sbin/apache2'].find((path) => existsSync(path));

const MODULES_DIR = '/usr/lib/apache2/modules';

/** What the proxy configurations need: mod_unixd, mod_so and the core are compiled in. */
const MODULES = ['mpm_event', 'authz_core', 'proxy', 'proxy_http', 'proxy_wstunnel', 'rewrite', 'headers'];

export interface RunningApache {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A real Apache 2.4 (one process in the foreground, `-X`) with a config file
 * of its own in a temp dir (nothing read from /etc/apache2): one
 * `<VirtualHost>` on 127.0.0.1 at a free port, `vhostBody` inside it. As root
 * it drops to nobody/nogroup after binding, as Debian's does to www-data.
 */
export async function startApache(vhostBody: string): Promise<RunningApache> {
  if (!APACHE) throw new Error('apache2 is not installed (apt-get install apache2)');
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-apache-'));
  const port = await closedPort();
  const conf = join(dir, 'httpd.conf');
  const errorLog = join(dir, 'error.log');
  writeFileSync(conf, `ServerRoot ${dir}
DefaultRuntimeDir ${dir}
PidFile ${dir}/httpd.pid
ErrorLog ${errorLog}
LogLevel warn
Mutex file:${dir} default
ServerName 127.0.0.1
Listen 127.0.0.1:${port}
${MODULES.map((name) => `LoadModule ${name}_module ${MODULES_DIR}/mod_${name}.so`).join('\n')}
User nobody
Group nogroup
<VirtualHost 127.0.0.1:${port}>
${vhostBody}
</VirtualHost>
`);
  const child: ChildProcess = spawn(APACHE, ['-X', '-d', dir, '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 5_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      const log = existsSync(errorLog) ? readFileSync(errorLog, 'utf8') : '';
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`apache2 did not start: ${stderr}${log}`);
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
