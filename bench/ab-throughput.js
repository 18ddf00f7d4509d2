#!/usr/bin/env node
// A/B of CPU per MB tunneled between two Switchyard builds, alternating A and B
// in every round against one echo origin (the throughput phase's setup, without
// nginx/HAProxy). The per-MB figure is bimodal on small machines (it depends on
// how the kernel chunks a 64 KiB stream), so compare medians over many rounds.
//
//   node bench/ab-throughput.js --a . --b /tmp/base --rounds 6
//
// Each build dir needs bin/switchyard.js and a built dist/ (for a commit:
// git worktree add --detach /tmp/base REF && ln -s $PWD/node_modules /tmp/base/ && (cd /tmp/base && npx tsc -p tsconfig.json)).

import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BENCH = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({ options: { a: { type: 'string', default: '.' }, b: { type: 'string' }, rounds: { type: 'string', default: '6' }, duration: { type: 'string', default: '4' } } });
if (!values.b) {
  console.error('usage: node bench/ab-throughput.js --a DIR --b DIR [--rounds N] [--duration S]');
  process.exit(2);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cpuSeconds = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const ORIGIN_PORT = 18611;
const PROXY_PORT = 18612;
const client = (seconds) => {
  const out = execFileSync('node', [join(BENCH, 'ws-client.js'), '--target', `127.0.0.1:${PROXY_PORT}`, '--mode', 'throughput', '--size', '65536', '--window', '8', '--duration', String(seconds)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return JSON.parse(out.slice(out.lastIndexOf('{\n')));
};
const supportsAccessLogOff = (dir) => execFileSync('node', [join(dir, 'bin/switchyard.js'), 'proxy', '--help'], { encoding: 'utf8' }).includes('--access-log');

const builds = [resolve(values.a), resolve(values.b)];
const results = new Map(builds.map((build) => [build, []]));
const origin = spawn('node', [join(BENCH, 'ws-echo-origin.js'), '--port', String(ORIGIN_PORT)], { stdio: 'ignore' });
try {
  await sleep(500);
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const build of builds) {
      const args = [join(build, 'bin/switchyard.js'), 'proxy', '--listen', `127.0.0.1:${PROXY_PORT}`, '--to', `http://127.0.0.1:${ORIGIN_PORT}`];
      if (supportsAccessLogOff(build)) args.push('--access-log', 'off');
      const proxy = spawn('node', args, { stdio: 'ignore' });
      try {
        await sleep(800);
        client(1);
        const before = cpuSeconds(proxy.pid);
        const run = client(Number(values.duration));
        const usPerMb = (cpuSeconds(proxy.pid) - before) * 1e6 / run.mbTunneled;
        results.get(build).push(usPerMb);
        console.log(`${build} round ${round}: ${usPerMb.toFixed(0)} µs/MB, ${run.mbPerSecond.toFixed(0)} MB/s`);
      } finally {
        proxy.kill();
        await sleep(300);
      }
    }
  }
} finally {
  origin.kill();
}
const median = (list) => [...list].sort((x, y) => x - y)[Math.floor(list.length / 2)];
const [a, b] = builds.map((build) => median(results.get(build)));
console.log(`median µs/MB: a ${a.toFixed(0)}, b ${b.toFixed(0)}; a ÷ b = ${(a / b).toFixed(3)}`);
