// --baseline REF: a second Switchyard build, from a temporary git worktree of
// REF, benched side by side with the working copy (target "baseline"). The
// worktree is detached (no branch is created), gets node_modules (a symlink to
// the main checkout's when package-lock.json is identical, else `npm ci
// --ignore-scripts`), is built with `npx tsc -p tsconfig.json`, and is removed
// with `git worktree remove --force` at the end, also on failure or Ctrl-C.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NPM_CI_TIMEOUT_MS = 15 * 60_000;
const TSC_TIMEOUT_MS = 10 * 60_000;

function run(command, args, options) {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
  return { ...result, output };
}

function tail(text, lines = 20) {
  return text.split('\n').slice(-lines).join('\n');
}

function git(repoDir, args, timeout = 120_000) {
  const r = run('git', ['-C', repoDir, ...args], { timeout });
  if (r.status !== 0) throw new Error(`git ${args.join(' ')} failed (exit ${r.status}${r.signal ? `, signal ${r.signal}` : ''}): ${tail(r.output)}`);
  return r.stdout.trim();
}

/**
 * Creates the worktree of `ref` and builds it. Returns { dir, commit, short,
 * subject, nodeModules, cleanup }; `cleanup()` is synchronous and idempotent
 * (safe in a process 'exit' handler). `onCreated(cleanup)` runs as soon as the
 * worktree exists, so a failure later on (npm ci, tsc) still removes it.
 */
export function prepareBaseline(repoDir, ref, { log, onCreated }) {
  const commit = git(repoDir, ['rev-parse', '--verify', '--end-of-options', `${ref}^{commit}`]);
  const short = git(repoDir, ['rev-parse', '--short', commit]);
  const subject = git(repoDir, ['log', '-1', '--format=%s', commit]);
  const parent = mkdtempSync(join(tmpdir(), 'switchyard-baseline-'));
  const dir = join(parent, 'tree');
  let removed = false;
  const cleanup = () => {
    if (removed) return;
    removed = true;
    // A symlinked node_modules goes first, so nothing can follow it into the main checkout.
    const link = join(dir, 'node_modules');
    try {
      if (lstatSync(link).isSymbolicLink()) unlinkSync(link);
    } catch {
      // not there
    }
    const r = run('git', ['-C', repoDir, 'worktree', 'remove', '--force', dir], { timeout: 120_000 });
    if (r.status !== 0 && existsSync(dir)) {
      log(`baseline: git worktree remove --force ${dir} failed (${tail(r.output, 3)}); deleting the directory and pruning`);
    }
    rmSync(parent, { recursive: true, force: true });
    run('git', ['-C', repoDir, 'worktree', 'prune'], { timeout: 60_000 });
  };

  log(`baseline: git worktree add --detach ${dir} ${short} (${subject.slice(0, 80)})`);
  try {
    git(repoDir, ['worktree', 'add', '--detach', dir, commit]);
  } catch (err) {
    rmSync(parent, { recursive: true, force: true });
    throw err;
  }
  onCreated?.(cleanup);

  const lockHere = join(repoDir, 'package-lock.json');
  const lockThere = join(dir, 'package-lock.json');
  const sameLock = existsSync(lockHere) && existsSync(lockThere) && readFileSync(lockHere, 'utf8') === readFileSync(lockThere, 'utf8');
  let nodeModules;
  if (sameLock && existsSync(join(repoDir, 'node_modules'))) {
    symlinkSync(join(repoDir, 'node_modules'), join(dir, 'node_modules'), 'dir');
    nodeModules = 'symlink to the main checkout (package-lock.json identical)';
    log(`baseline: package-lock.json is identical: node_modules symlinked from ${repoDir}`);
  } else {
    log('baseline: package-lock.json differs from the working copy\'s: npm ci --ignore-scripts (this takes a while)');
    const t0 = Date.now();
    const r = run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: dir, timeout: NPM_CI_TIMEOUT_MS });
    if (r.status !== 0) throw new Error(`baseline: npm ci failed in ${dir} (exit ${r.status}${r.signal ? `, signal ${r.signal}` : ''}):\n${tail(r.output)}`);
    nodeModules = `npm ci --ignore-scripts (${((Date.now() - t0) / 1000).toFixed(0)} s)`;
    log(`baseline: ${nodeModules}`);
  }

  const t0 = Date.now();
  const r = run('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], { cwd: dir, timeout: TSC_TIMEOUT_MS });
  const built = existsSync(join(dir, 'dist', 'src', 'cli', 'main.js'));
  if (r.status !== 0) {
    // tsc still emits on type errors (e.g. in an old commit's tests); bench it when the CLI was built.
    if (!built) throw new Error(`baseline: npx tsc -p tsconfig.json failed in ${dir} (exit ${r.status}${r.signal ? `, signal ${r.signal}` : ''}):\n${tail(r.output)}`);
    log(`baseline: warning: tsc exited ${r.status} but emitted dist/ (benching it anyway):\n${tail(r.output, 10)}`);
  }
  log(`baseline: built ${short} with npx tsc -p tsconfig.json (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  return { dir, commit, short, subject, nodeModules, cleanup };
}
