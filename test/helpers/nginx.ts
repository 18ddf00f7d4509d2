import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './origins.js';
import { startServerProcess, type RunningServer } from './server-process.js';

/** Debian's nginx binary, when installed (.ci/run installs it). */
export const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));

export type RunningNginx = RunningServer;

/**
 * A real nginx (one process, no daemon) serving one `server` block on
 * 127.0.0.1 at a free port: `serverBody` is what goes inside `server { }`
 * after the listen line.
 */
export async function startNginx(serverBody: string): Promise<RunningNginx> {
  if (!NGINX) throw new Error('nginx is not installed (apt-get install nginx)');
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-nginx-'));
  for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'tmp', sub), { recursive: true });
  const port = await closedPort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(conf, `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/client_body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
${serverBody}
  }
}
`);
  const errorLog = join(dir, 'error.log');
  return startServerProcess({ name: 'nginx', command: NGINX, args: ['-e', errorLog, '-p', dir, '-c', conf], dir, port, logFile: errorLog });
}
