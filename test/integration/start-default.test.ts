import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { request } from 'undici';

const BIN = new URL('../../../bin/switchyard.js', import.meta.url).pathname;

// `npm start` runs `switchyard run`: with no ./switchyard.yaml it serves the demo.
test('switchyard run without a config file serves the embedded demo', { timeout: 15_000 }, async () => {
  const cwd = mkdtempSync(join(tmpdir(), 'switchyard-start-'));
  const child = spawn(process.execPath, [BIN, 'run'], { cwd, env: { ...process.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => { stderr += String(chunk); });
  try {
    let stdout = '';
    let port = 0;
    for await (const chunk of child.stdout!) {
      stdout += String(chunk);
      const match = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(stdout);
      if (match) {
        port = Number(match[1]);
        break;
      }
    }
    assert.ok(port > 0, `start line expected, got: ${stdout}`);
    assert.match(stderr, /no \.\/switchyard\.yaml; serving the embedded demo/);
    const res = await request(`http://127.0.0.1:${port}/`);
    assert.equal(res.statusCode, 200);
    assert.match(await res.body.text(), /<title>Switchyard demo<\/title>/);
  } finally {
    child.kill('SIGKILL');
    rmSync(cwd, { recursive: true, force: true });
  }
});
