import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';

/** A server process started by startServerProcess(), listening on `port`. */
export interface RunningServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface ServerProcessOptions {
  /** Names the server in the error thrown when it does not start. */
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** The server's temp dir: removed when it fails to start and by close(). */
  readonly dir: string;
  /** The port on 127.0.0.1 it is to listen on. */
  readonly port: number;
  /** A log file of its own, added after its stderr to the error when it does not start. */
  readonly logFile?: string;
}

/**
 * Spawns a server in the foreground and waits (up to 5 s) until its port
 * accepts connections. If it exits or the time runs out, it is killed, its
 * temp dir removed, and the error carries its stderr and log file. close()
 * kills it, waits for it to exit and removes the temp dir.
 */
export async function startServerProcess(options: ServerProcessOptions): Promise<RunningServer> {
  const { name, command, args, dir, port, logFile } = options;
  const child: ChildProcess = spawn(command, [...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => { stderr += text; });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    child.kill('SIGKILL');
    await exited;
  };
  const deadline = Date.now() + 5_000;
  while (!(await accepts(port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      const log = logFile !== undefined && existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`${name} did not start: ${stderr}${log}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    port,
    close: async () => {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether 127.0.0.1:`port` accepts a TCP connection. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}
