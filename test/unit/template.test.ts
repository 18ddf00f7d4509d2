import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Template, type TemplateVars } from '../../src/router/template.js';

const vars: TemplateVars = {
  captures: ['/myApp/ws', 'myApp/ws', undefined, 'c'],
  path: '/myApp/ws',
  query: '?a=b',
  host: 'example.com:8443',
  scheme: 'https',
};

test('Template expands captures and named variables', () => {
  assert.equal(new Template('/$1').expand(vars), '/myApp/ws');
  assert.equal(new Template('$0|$3').expand(vars), '/myApp/ws|c');
  assert.equal(new Template('https://$host$path$query').expand(vars), 'https://example.com:8443/myApp/ws?a=b');
  assert.equal(new Template('$scheme://$host/x').expand(vars), 'https://example.com:8443/x');
  assert.equal(new Template('/static/path').expand(vars), '/static/path');
  assert.equal(new Template('').expand(vars), '');
});

test('Template: $hostname is the Host without its port, lower case (nginx\'s $host)', () => {
  assert.equal(new Template('https://$hostname$path').expand(vars), 'https://example.com/myApp/ws');
  assert.equal(new Template('https://${hostname}:9443/').expand({ ...vars, host: 'Example.COM:8080' }), 'https://example.com:9443/');
  assert.equal(new Template('$hostname').expand({ ...vars, host: '[::1]:8080' }), '[::1]');
  assert.equal(new Template('$hostname').expand({ ...vars, host: '' }), '');
});

test('Template braced forms separate a variable from following text', () => {
  assert.equal(new Template('/${1}0').expand(vars), '/myApp/ws0');
  assert.equal(new Template('/${3}x').expand(vars), '/cx');
  assert.equal(new Template('${path}x').expand(vars), '/myApp/wsx');
  assert.equal(new Template('/$3x').expand(vars), '/cx');
});

test('Template: $$ is a literal $', () => {
  assert.equal(new Template('/a$$b').expand(vars), '/a$b');
  assert.equal(new Template('$$1').expand(vars), '$1');
  assert.equal(new Template('$$$1').expand(vars), '$myApp/ws');
});

test('Template: a missing or non-participating capture expands to empty', () => {
  assert.equal(new Template('/$2/$9').expand(vars), '//');
  assert.equal(new Template('/$1').expand({ ...vars, captures: null }), '/');
  assert.equal(new Template('/$1').expand({ ...vars, captures: [] }), '/');
});

test('Template reports the capture indexes it uses', () => {
  assert.equal(new Template('/$path').usesCaptures, 0);
  assert.equal(new Template('/$path').usesAnyCapture, false);
  assert.equal(new Template('/$0').usesCaptures, 0);
  assert.equal(new Template('/$0').usesAnyCapture, true);
  assert.equal(new Template('/$2/$1').usesCaptures, 2);
  assert.equal(new Template('/${7}').usesCaptures, 7);
  assert.equal(new Template('/$$9').usesCaptures, 0);
});

test('Template rejects unknown variables and bad capture indexes clearly', () => {
  assert.throws(() => new Template('/$foo'), /unknown variable \$foo/);
  assert.throws(() => new Template('/$pathx'), /unknown variable \$pathx/);
  assert.throws(() => new Template('/${foo}'), /unknown variable \$\{foo\}/);
  assert.throws(() => new Template('/$constructor'), /unknown variable/);
  assert.throws(() => new Template('/$10'), /"\$10" is ambiguous/);
  assert.throws(() => new Template('/${10}'), /out of range/);
  assert.throws(() => new Template('/${1'), /unclosed/);
  assert.throws(() => new Template('/a$'), /lone \$/);
  assert.throws(() => new Template('/a$-b'), /lone \$/);
  assert.throws(() => new Template('/$foo'), /template "\/\$foo"/);
});
