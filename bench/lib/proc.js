// CPU time and memory of a process tree, read from /proc (Linux only).

import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clockTicks;

/** Clock ticks per second for utime/stime (getconf CLK_TCK, normally 100). */
export function clkTck() {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Fields of /proc/PID/stat after the command name: [state, ppid, ...]; undefined if gone. */
function statFields(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The pid and all its live descendants. */
export function treePids(root) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = statFields(name);
    if (!fields) continue;
    const ppid = Number(fields[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(name));
  }
  const pids = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift();
    if (!statFields(pid)) continue;
    pids.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return pids;
}

/** utime + stime of the process tree, in seconds (threads are included in each process's figures). */
export function treeCpuSeconds(root) {
  let ticks = 0;
  for (const pid of treePids(root)) {
    const fields = statFields(pid);
    if (fields) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / clkTck();
}

/** Sum of VmRSS over the process tree, in KiB. */
export function treeRssKiB(root) {
  let kib = 0;
  for (const pid of treePids(root)) {
    try {
      const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (match) kib += Number(match[1]);
    } catch {
      // exited meanwhile
    }
  }
  return kib;
}

/** Soft and hard limits on open files of this process. */
export function openFileLimits() {
  const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  const parse = (text) => (text === 'unlimited' ? Infinity : Number(text));
  return match ? { soft: parse(match[1]), hard: parse(match[2]) } : { soft: 1024, hard: 1024 };
}
