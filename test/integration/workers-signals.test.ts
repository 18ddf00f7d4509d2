import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { request } from 'undici';
import { startOrigin } from '../helpers/origins.js';

const BIN = new URL('../../../bin/switchyard.js', import.meta.url).pathname;

// Regression: Ctrl-C (a signal to the whole process group) reached each worker
// twice, directly and forwarded by the primary, and the second one skipped the drain.
test('a process-group SIGINT with --workers 2 drains in-flight requests, then exits 0', { timeout: 20_000 }, async () => {
  const origin = await startOrigin({
    handler: (_req, res) => setTimeout(() => res.end('slow but complete'), 800),
  });
  const child = spawn(process.execPath, [BIN, 'proxy', '--listen', '127.0.0.1:0', '--to', origin.url, '--workers', '2'], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  try {
    const port = await startedPort(child);
    const pending = request(`http://127.0.0.1:${port}/slow`).then(async (res) => ({ status: res.statusCode, body: await res.body.text() }));
    await waitUntil(() => origin.requests.length > 0, 3_000);
    process.kill(-child.pid!, 'SIGINT');
    const answer = await pending;
    assert.equal(answer.status, 200);
    assert.equal(answer.body, 'slow but complete');
    const [code] = (await Promise.race([once(child, 'exit'), timeout(10_000)])) as [number | null];
    assert.equal(code, 0);
  } finally {
    if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
    await origin.close();
  }
});

async function startedPort(child: ChildProcess): Promise<number> {
  let out = '';
  for await (const chunk of child.stdout!) {
    out += String(chunk);
    const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    if (match) return Number(match[1]);
  }
  throw new Error(`no start line; stdout: ${out}`);
}

async function waitUntil(check: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function timeout(ms: number): Promise<never> {
  return new Promise((_resolve, reject) => setTimeout(() => reject(new Error(`no exit within ${ms} ms`)), ms).unref());
}
