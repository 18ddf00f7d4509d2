import assert from 'node:assert/strict';
import { test } from 'node:test';
import { upstreamPath } from '../../src/proxy/target.js';
import { parseServerUrl, UpstreamServer } from '../../src/upstream/upstream-server.js';

const timeouts = { connectMs: 1_000, responseMs: 1_000, bodyIdleMs: 1_000 };

test('upstreamPath keeps origin-form targets and joins the server base path', async () => {
  const plain = new UpstreamServer('http://127.0.0.1:1', timeouts);
  const based = new UpstreamServer('http://127.0.0.1:1/app/', timeouts);
  try {
    assert.equal(upstreamPath(plain, '/a/b?c=1'), '/a/b?c=1');
    assert.equal(upstreamPath(based, '/a?x'), '/app/a?x');
  } finally {
    await plain.close();
    await based.close();
  }
});

test('upstreamPath reduces an absolute-form target to its path', async () => {
  const server = new UpstreamServer('http://127.0.0.1:1', timeouts);
  try {
    assert.equal(upstreamPath(server, 'http://evil.example/x?y=1'), '/x?y=1');
    assert.equal(upstreamPath(server, 'http://evil.example'), '/');
    assert.equal(upstreamPath(server, 'http://evil.example?q'), '/?q');
  } finally {
    await server.close();
  }
});

test('parseServerUrl maps ws/wss to http/https origins and checks the URL', () => {
  assert.equal(parseServerUrl('ws://127.0.0.1:3000').origin, 'http://127.0.0.1:3000');
  assert.equal(parseServerUrl('wss://example.test').origin, 'https://example.test');
  assert.equal(parseServerUrl('wss://example.test').port, 443);
  assert.equal(parseServerUrl('https://example.test').servername, 'example.test');
  assert.equal(parseServerUrl('https://10.0.0.1').servername, undefined);
  assert.equal(parseServerUrl('http://[::1]:81').hostname, '::1');
  assert.throws(() => parseServerUrl('ftp://x'), /scheme http, https, ws or wss/);
  assert.throws(() => parseServerUrl('not a url'), /not a URL/);
  assert.throws(() => parseServerUrl('http://x/?q=1'), /no query/);
  assert.throws(() => parseServerUrl('http://u:p@x/'), /no credentials/);
});
