import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { silentLogger } from '../../src/log/logger.js';
import { AccessLog } from '../../src/observe/access-log.js';

function openFds(path: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) count++;
    } catch {
      // closed while listing
    }
  }
  return count;
}

test('AccessLog.close() writes out what is buffered and closes the file (no descriptor left)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-access-close-'));
  const file = join(dir, 'access.log');
  try {
    const log = new AccessLog({ path: file, format: 'json' }, silentLogger());
    const deadline = Date.now() + 5_000;
    while (openFds(file) === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(openFds(file), 1, 'the file is open while logging');
    log.write({ kind: 'request', msg: 'one' } as unknown as Parameters<AccessLog['write']>[0]);
    log.close();
    while (openFds(file) > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(openFds(file), 0, 'no descriptor of the file is left after close()');
    assert.match(readFileSync(file, 'utf8'), /"msg":"one"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
