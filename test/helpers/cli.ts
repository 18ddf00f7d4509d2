import { readdirSync, readFileSync } from 'node:fs';
import { afterEach } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/helpers/cli.js -> the repository root
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const SWITCHYARD_BIN = join(REPO_ROOT, 'bin', 'switchyard.js');

export interface CliProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  stdout: string;
  stderr: string;
  /** Resolves with the exit code and signal once the process has exited. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitedAt: number | undefined;
}

const running = new Set<CliProcess>();

/** These never leak from the test runner into the CLI unless a test passes them. */
const UNSET = ['SWITCHYARD_SECRET', 'NODE_OPTIONS', 'NODE_TEST_CONTEXT'];

/**
 * Starts `node bin/switchyard.js ARGS` from the repository root with the test's
 * environment plus `env`; `unset` names more variables to drop unless given.
 * stdout and stderr are collected; stopSwitchyards() ends whatever is left.
 */
export function spawnSwitchyard(args: readonly string[], env: Record<string, string> = {}, unset: readonly string[] = []): CliProcess {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const name of [...UNSET, ...unset]) if (!(name in env)) delete childEnv[name];
  const child = spawn(process.execPath, [SWITCHYARD_BIN, ...args], { cwd: REPO_ROOT, env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('the CLI process did not start');
  const cli: CliProcess = {
    child,
    pid: child.pid,
    stdout: '',
    stderr: '',
    exitedAt: undefined,
    exited: new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        cli.exitedAt = Date.now();
        running.delete(cli);
        resolve({ code, signal });
      });
    }),
  };
  child.stdout?.setEncoding('utf8').on('data', (text: string) => { cli.stdout += text; });
  child.stderr?.setEncoding('utf8').on('data', (text: string) => { cli.stderr += text; });
  running.add(cli);
  return cli;
}

/** Kills every CLI process still running (SIGKILL) and waits for each to exit. */
export async function stopSwitchyards(): Promise<void> {
  for (const cli of [...running]) {
    killPid(cli.pid);
    await withTimeout(cli.exited, 5_000, `process ${cli.pid} to die`).catch(() => undefined);
  }
}

export function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Whether `pid` runs (exists and is not a zombie), from /proc. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Live (not zombie) child processes of `pid`, sorted, from /proc. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid && fields[0] !== 'Z') children.push(Number(entry));
    } catch {
      // the process went away while listing
    }
  }
  return children.sort((a, b) => a - b);
}

/**
 * Undo steps for the calling test file: each test pushes what it started, and
 * after every test (pass or fail) they run in reverse order, each bounded by 10 s.
 */
export function cleanupsAfterEach(): (() => Promise<unknown> | unknown)[] {
  const cleanups: (() => Promise<unknown> | unknown)[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) {
      const cleanup = cleanups.pop() as () => Promise<unknown> | unknown;
      try {
        await withTimeout(Promise.resolve().then(cleanup), 10_000, 'cleanup');
      } catch {
        // keep cleaning up the rest
      }
    }
  });
  return cleanups;
}
