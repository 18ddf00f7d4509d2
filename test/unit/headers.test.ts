import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasToken, normaliseAddress } from '../../src/proxy/headers.js';

test('hasToken finds a token in any list form and case', () => {
  assert.equal(hasToken('Upgrade', 'upgrade'), true);
  assert.equal(hasToken('keep-alive, Upgrade', 'upgrade'), true);
  assert.equal(hasToken('keep-alive,upgrade', 'upgrade'), true);
  assert.equal(hasToken('  UPGRADE  ', 'upgrade'), true);
  assert.equal(hasToken('Upgrade-Insecure', 'upgrade'), false);
  assert.equal(hasToken('keep-alive', 'upgrade'), false);
  assert.equal(hasToken(undefined, 'upgrade'), false);
  assert.equal(hasToken('WebSocket', 'websocket'), true);
  assert.equal(hasToken('h2c', 'websocket'), false);
});

test('normaliseAddress unwraps IPv4-mapped IPv6', () => {
  assert.equal(normaliseAddress('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(normaliseAddress('::1'), '::1');
  assert.equal(normaliseAddress(undefined), 'unknown');
});
