import assert from 'node:assert/strict';
import { test } from 'node:test';
import { formatDuration, parseDuration } from '../../src/config/duration.js';
import { parseListen } from '../../src/cli/quick-args.js';

test('parseDuration reads ms, s, m and h', () => {
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('1.5s'), 1_500);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('0s'), 0);
});

test('parseDuration refuses what is not a duration', () => {
  for (const text of ['', '10', 's', '5parsecs', '-1s', '1 h', '1d', 'NaNs']) assert.equal(parseDuration(text), undefined, text);
});

test('formatDuration picks the largest whole unit', () => {
  assert.equal(formatDuration(3_600_000), '1h');
  assert.equal(formatDuration(90_000), '90s');
  assert.equal(formatDuration(1_500), '1500ms');
});

test('parseListen accepts IPv4, bracketed IPv6 and a bare port', () => {
  assert.deepEqual(parseListen('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
  assert.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseListen(':80'), { host: '0.0.0.0', port: 80 });
  assert.deepEqual(parseListen('localhost:0'), { host: 'localhost', port: 0 });
  for (const bad of ['8080', '127.0.0.1', '127.0.0.1:99999', '::1:80', 'host:port']) {
    assert.throws(() => parseListen(bad), /--listen/, bad);
  }
});
