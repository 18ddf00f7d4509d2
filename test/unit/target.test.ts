import assert from 'node:assert/strict';
import { test } from 'node:test';
import { originForm } from '../../src/router/request-facts.js';
import { parseServerUrl } from '../../src/upstream/upstream-server.js';

test('originForm reduces an absolute-form target to its path', () => {
  assert.equal(originForm('http://evil.example/x?y=1'), '/x?y=1');
  assert.equal(originForm('http://evil.example'), '/');
  assert.equal(originForm('http://evil.example?q'), '/?q');
  assert.equal(originForm('*'), '*');
});

test('parseServerUrl maps ws/wss to http/https origins and checks the URL', () => {
  assert.equal(parseServerUrl('ws://127.0.0.1:3000').origin, 'http://127.0.0.1:3000');
  assert.equal(parseServerUrl('wss://example.test').origin, 'https://example.test');
  assert.equal(parseServerUrl('wss://example.test').port, 443);
  assert.equal(parseServerUrl('https://example.test').servername, 'example.test');
  assert.equal(parseServerUrl('https://10.0.0.1').servername, undefined);
  assert.equal(parseServerUrl('http://[::1]:81').hostname, '::1');
  assert.equal(parseServerUrl('http://Backend.Test:80/app/').authority, 'backend.test');
  assert.equal(parseServerUrl('http://backend.test:8080/app/').basePath, '/app');
  assert.throws(() => parseServerUrl('ftp://x'), /scheme http, https, ws or wss/);
  assert.throws(() => parseServerUrl('not a url'), /not a URL/);
  assert.throws(() => parseServerUrl('http://x/?q=1'), /no query/);
  assert.throws(() => parseServerUrl('http://u:p@x/'), /no credentials/);
});

test('a server found by name keeps the name as its authority, not the address', async () => {
  const timeouts = { connectMs: 1_000, responseMs: 1_000, bodyIdleMs: 1_000 };
  const { UpstreamServer } = await import('../../src/upstream/upstream-server.js');
  const plain = new UpstreamServer('http://10.0.0.5:8080/base', timeouts, { hostname: 'App.test' });
  const secure = new UpstreamServer('https://[fd00::5]', timeouts, { hostname: 'app.test' });
  const byAddress = new UpstreamServer('http://10.0.0.5:8080', timeouts);
  try {
    assert.equal(plain.authority, 'app.test:8080');
    assert.equal(secure.authority, 'app.test');
    assert.equal(secure.tlsOptions?.servername, 'app.test');
    assert.equal(byAddress.authority, '10.0.0.5:8080');
  } finally {
    await Promise.all([plain.close(), secure.close(), byAddress.close()]);
  }
});
