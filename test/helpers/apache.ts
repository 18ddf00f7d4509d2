import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './origins.js';
import { startServerProcess, type RunningServer } from './server-process.js';

/** Debian's Apache 2.4 binary, when installed (.ci/run installs apache2). */
export const APACHE = ['/usr/sbin/apache2'].find((path) => existsSync(path));

const MODULES_DIR = '/usr/lib/apache2/modules';

/** What the proxy configurations need: mod_unixd, mod_so and the core are compiled in. */
const MODULES = ['mpm_event', 'authz_core', 'proxy', 'proxy_http', 'proxy_wstunnel', 'rewrite', 'headers'];

export type RunningApache = RunningServer;

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
  return startServerProcess({ name: 'apache2', command: APACHE, args: ['-X', '-d', dir, '-f', conf], dir, port, logFile: errorLog });
}
