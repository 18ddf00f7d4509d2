import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReverseRewriter, type ClientView, type ReverseRewriteSpec } from '../../src/proxy/reverse-rewrite.js';

const client: ClientView = { scheme: 'https', host: 'example.com' };
const authorities = ['127.0.0.1:9000', 'backend.internal:9000'];

function rewriter(clientPrefix: string, upstreamPrefix: string, more: Partial<ReverseRewriteSpec> = {}): ReverseRewriter {
  return new ReverseRewriter({ clientPrefix, upstreamPrefix, upstreamAuthorities: authorities, upstreamSecure: false, ...more });
}

test('url maps absolute URLs naming the upstream to the client-facing URL', () => {
  const r = rewriter('/app/', '/');
  assert.equal(r.url('http://127.0.0.1:9000/login?x=1', client), 'https://example.com/app/login?x=1');
  assert.equal(r.url('HTTP://Backend.Internal:9000/a#f', client), 'https://example.com/app/a#f');
  assert.equal(r.url('http://127.0.0.1:9000', client), 'https://example.com/app/');
  assert.equal(r.url('http://127.0.0.1:9000?x', client), 'https://example.com/app/?x');
  assert.equal(r.url('https://127.0.0.1:9000/s', { scheme: 'http', host: 'example.com:8080' }), 'http://example.com:8080/app/s');
  assert.equal(r.url('//127.0.0.1:9000/x', client), '//example.com/app/x');
});

test('url keeps the WebSocket scheme family, secured like the client', () => {
  const r = rewriter('/app/', '/');
  assert.equal(r.url('ws://127.0.0.1:9000/socket', client), 'wss://example.com/app/socket');
  assert.equal(r.url('wss://127.0.0.1:9000/socket', { scheme: 'http', host: 'example.com' }), 'ws://example.com/app/socket');
});

test('url maps absolute paths under the upstream prefix', () => {
  assert.equal(rewriter('/app/', '/').url('/login', client), '/app/login');
  assert.equal(rewriter('/app', '/').url('/', client), '/app/');
  assert.equal(rewriter('/', '/backend/').url('/backend/x?y', client), '/x?y');
  assert.equal(rewriter('', '/backend').url('/backend', client), '/');
  assert.equal(rewriter('/', '/backend').url('/backend?q', client), '/?q');
  assert.equal(rewriter('/app/', '/backend/').url('/backend', client), '/app');
  assert.equal(rewriter('/app', '/backend').url('/backend/a', client), '/app/a');
});

test('url respects the prefix segment boundary', () => {
  const r = rewriter('/app/', '/backend');
  const outside = '/backendfoo';
  assert.equal(r.url(outside, client), outside);
  const absoluteOutside = 'http://127.0.0.1:9000/other';
  assert.equal(r.url(absoluteOutside, client), absoluteOutside);
});

test('url returns anything else as the same string', () => {
  const r = rewriter('/app/', '/');
  for (const value of ['https://other.site/x', 'login', '', 'http://127.0.0.1:90/x', 'http://127.0.0.1:9000.evil/x', 'http://u@127.0.0.1:9000/', '//other/x', 'mailto:a@b', 'ftp://127.0.0.1:9000/']) {
    assert.equal(r.url(value, client), value, value);
  }
  const kept = rewriter('/', '');
  assert.equal(kept.url('/login', client), '/login');
});

test('url matches a bare host only when the upstream listens on its default port', () => {
  const plain = rewriter('/', '/', { upstreamAuthorities: ['backend'] });
  assert.equal(plain.url('http://backend/x', client), 'https://example.com/x');
  assert.equal(plain.url('http://backend:80/x', client), 'https://example.com/x');
  assert.equal(plain.url('http://backend:443/x', client), 'http://backend:443/x');
  const secure = rewriter('/', '/', { upstreamAuthorities: ['backend:443'], upstreamSecure: true });
  assert.equal(secure.url('https://backend/x', client), 'https://example.com/x');
  assert.equal(secure.url('https://backend:443/x', client), 'https://example.com/x');
  const odd = rewriter('/', '/', { upstreamAuthorities: ['backend:8080'] });
  assert.equal(odd.url('http://backend/x', client), 'http://backend/x');
  const v6 = rewriter('/', '/', { upstreamAuthorities: ['[::1]:9000'] });
  assert.equal(v6.url('http://[::1]:9000/x', client), 'https://example.com/x');
});

test('url without a client Host gives a relative reference', () => {
  assert.equal(rewriter('/app/', '/').url('http://127.0.0.1:9000/x', { scheme: 'http', host: '' }), '/app/x');
});

test('setCookie maps Domain and Path, keeping everything else', () => {
  const r = rewriter('/app/', '/');
  assert.equal(r.setCookie('sid=1; Domain=backend.internal; Path=/; HttpOnly', client), 'sid=1; Domain=example.com; Path=/app/; HttpOnly');
  assert.equal(
    r.setCookie('sid=1; domain=.Backend.Internal; PATH=/x; Secure', { scheme: 'https', host: 'example.com:8443' }),
    'sid=1; domain=example.com; PATH=/app/x; Secure',
  );
  assert.equal(r.setCookie('sid=1;Path=/a;Domain=127.0.0.1', client), 'sid=1;Path=/app/a;Domain=example.com');
  assert.equal(rewriter('/', '/backend/').setCookie('a=b; Path=/backend/x', client), 'a=b; Path=/x');
  assert.equal(rewriter('/', '/backend/').setCookie('a=b; Path=/backend', client), 'a=b; Path=/');
});

test('setCookie returns other cookies as the same string', () => {
  const r = rewriter('/app/', '/backend');
  for (const value of [
    'sid=1', 'sid=1; HttpOnly; Secure', 'sid=1; Domain=other.site; Path=/elsewhere', 'sid=1; Path=/backendfoo',
    'Path=/backend; Max-Age=10', 'sid=1; Path=relative', 'sid=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT',
  ]) {
    assert.equal(r.setCookie(value, client), value, value);
  }
  assert.equal(rewriter('/', '/').setCookie('sid=1; Path=/x', client), 'sid=1; Path=/x');
  assert.equal(r.setCookie('sid=1; Domain=backend.internal', { scheme: 'http', host: '' }), 'sid=1; Domain=backend.internal');
});

test('ReverseRewriter rejects a prefix that is not a path', () => {
  assert.throws(() => rewriter('app/', '/'), /must start with \//);
});
