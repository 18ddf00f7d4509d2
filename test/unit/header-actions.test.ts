import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyHeaderActions, compileHeaderActions, type CompiledHeaderActions } from '../../src/proxy/header-actions.js';

function compiled(input: Parameters<typeof compileHeaderActions>[0]): CompiledHeaderActions {
  const actions = compileHeaderActions(input);
  assert.ok(actions);
  return actions;
}

test('compileHeaderActions: nothing to do is undefined', () => {
  assert.equal(compileHeaderActions(undefined), undefined);
  assert.equal(compileHeaderActions({}), undefined);
  assert.equal(compileHeaderActions({ set: {}, add: {}, remove: [] }), undefined);
});

test('applyHeaderActions removes any case, then sets, then adds; untouched order kept', () => {
  const actions = compiled({ remove: ['X-Powered-By'], set: { 'Cache-Control': 'no-store' }, add: { Vary: 'Origin' } });
  const headers = ['Server', 'a', 'x-powered-by', 'php', 'cache-control', 'max-age=1', 'Vary', 'Accept', 'CACHE-CONTROL', 'public', 'Date', 'd'];
  const out = applyHeaderActions(headers, actions);
  assert.deepEqual(out, ['Server', 'a', 'Vary', 'Accept', 'Date', 'd', 'Cache-Control', 'no-store', 'Vary', 'Origin']);
});

test('applyHeaderActions: set adds a missing header; add keeps existing values', () => {
  const actions = compiled({ set: { 'X-Frame-Options': 'DENY' }, add: { 'Set-Cookie': 'b=2' } });
  assert.deepEqual(applyHeaderActions(['Set-Cookie', 'a=1'], actions), ['Set-Cookie', 'a=1', 'X-Frame-Options', 'DENY', 'Set-Cookie', 'b=2']);
  assert.deepEqual(applyHeaderActions([], actions), ['X-Frame-Options', 'DENY', 'Set-Cookie', 'b=2']);
});

test('applyHeaderActions: remove then add of one name leaves only the added value', () => {
  const actions = compiled({ remove: ['x-a'], add: { 'X-A': 'new' } });
  assert.deepEqual(applyHeaderActions(['X-A', 'old', 'B', 'b'], actions), ['B', 'b', 'X-A', 'new']);
});

test('applyHeaderActions leaves a list without matches as it was', () => {
  const actions = compiled({ remove: ['x-gone'] });
  const headers = ['A', '1', 'B', '2'];
  assert.deepEqual(applyHeaderActions(headers, actions), ['A', '1', 'B', '2']);
});

test('compileHeaderActions rejects bad names and values with a clear message', () => {
  assert.throws(() => compileHeaderActions({ set: { 'Bad Name': 'x' } }), /set has an invalid header name "Bad Name"/);
  assert.throws(() => compileHeaderActions({ add: { 'X-A:': 'x' } }), /add has an invalid header name/);
  assert.throws(() => compileHeaderActions({ remove: [''] }), /remove has an invalid header name ""/);
  assert.throws(() => compileHeaderActions({ set: { 'X-A': 'a\r\nInjected: 1' } }), /set X-A has a value with CR, LF or NUL/);
  assert.throws(() => compileHeaderActions({ add: { 'X-A': 'a\0' } }), /CR, LF or NUL/);
  assert.throws(() => compileHeaderActions({ set: { 'X-A': '1', 'x-a': '2' } }), /set names "x-a" twice/);
  assert.throws(() => compileHeaderActions({ set: { 'Content-Length': '0' } }), /proxy manages it/);
  assert.throws(() => compileHeaderActions({ remove: ['Transfer-Encoding'] }), /proxy manages it/);
  assert.ok(compileHeaderActions({ set: { "X-Odd_!#$%&'*+.^`|~1": 'tab\tand spaces ok' } }));
});
