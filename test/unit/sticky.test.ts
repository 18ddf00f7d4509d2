import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { CookieAffinity, ipHashIndex, readCookie } from '../../src/upstream/sticky.js';
import { UpstreamServer } from '../../src/upstream/upstream-server.js';

const URLS = ['http://127.0.0.1:3001', 'http://127.0.0.1:3002', 'http://127.0.0.1:3003'];
const created: UpstreamServer[] = [];

// UpstreamServer owns an undici Pool (no socket until used); destroy them all at the end.
after(async () => {
  await Promise.all(created.map((server) => server.close()));
});

describe('CookieAffinity', () => {
  test('the same secret and servers give the same cookie values, in any instance', { timeout: 5_000 }, () => {
    // Two instances, as two proxy processes would build them: distinct objects, same URLs.
    const firstServers = makeServers(URLS);
    const secondServers = makeServers(URLS);
    const first = new CookieAffinity('sy_affinity', 'secret-one', firstServers);
    const second = new CookieAffinity('sy_affinity', 'secret-one', secondServers);
    for (let i = 0; i < URLS.length; i++) {
      assert.equal(first.setCookie(firstServers[i]!, false), second.setCookie(secondServers[i]!, false));
    }
    // A cookie minted by one instance pins to the server with the same URL in the other.
    for (let i = 0; i < URLS.length; i++) {
      const cookie = cookieValue(first.setCookie(firstServers[i]!, false));
      assert.equal(second.pinned(`sy_affinity=${cookie}`), secondServers[i]);
    }
  });

  test('each server gets its own value', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS);
    const affinity = new CookieAffinity('sy_affinity', 'secret-one', servers);
    const values = new Set(servers.map((server) => cookieValue(affinity.setCookie(server, false))));
    assert.equal(values.size, URLS.length);
  });

  test('another secret gives different values, and its cookies are not accepted', { timeout: 5_000 }, () => {
    const serversA = makeServers(URLS);
    const serversB = makeServers(URLS);
    const a = new CookieAffinity('sy_affinity', 'secret-one', serversA);
    const b = new CookieAffinity('sy_affinity', 'secret-two', serversB);
    for (let i = 0; i < URLS.length; i++) {
      const valueA = cookieValue(a.setCookie(serversA[i]!, false));
      const valueB = cookieValue(b.setCookie(serversB[i]!, false));
      assert.notEqual(valueA, valueB);
      assert.equal(b.pinned(`sy_affinity=${valueA}`), undefined);
    }
  });

  test('a forged or tampered cookie is ignored', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS);
    const affinity = new CookieAffinity('sy_affinity', 'secret-one', servers);
    const genuine = cookieValue(affinity.setCookie(servers[0]!, false));
    const [key, signature] = genuine.split('.') as [string, string];
    const flipped = `${signature.slice(0, -1)}${signature.endsWith('A') ? 'B' : 'A'}`;
    assert.equal(affinity.pinned(`sy_affinity=${genuine}`), servers[0]);
    assert.equal(affinity.pinned(`sy_affinity=${key}.${flipped}`), undefined, 'signature altered');
    assert.equal(affinity.pinned(`sy_affinity=${key}`), undefined, 'signature missing');
    assert.equal(affinity.pinned(`sy_affinity=${key}.`), undefined, 'empty signature');
    assert.equal(affinity.pinned('sy_affinity=anything.at-all'), undefined);
    assert.equal(affinity.pinned(`other=${genuine}`), undefined, 'valid value under another name');
    assert.equal(affinity.pinned(''), undefined);
    assert.equal(affinity.pinned(undefined), undefined);
  });

  test('Set-Cookie carries the name, Path, HttpOnly, SameSite and Secure only when asked', { timeout: 5_000 }, () => {
    const servers = makeServers(URLS);
    const affinity = new CookieAffinity('route', 'secret-one', servers);
    const plain = affinity.setCookie(servers[1]!, false);
    const secure = affinity.setCookie(servers[1]!, true);
    assert.match(plain, /^route=[^;\s]+; /);
    assert.match(plain, /; Path=\//);
    assert.match(plain, /; HttpOnly/);
    assert.match(plain, /; SameSite=Lax/);
    assert.doesNotMatch(plain, /Secure/);
    assert.match(secure, /; Secure$/);
    assert.equal(cookieValue(plain), cookieValue(secure));
  });

  test('setCookie refuses a server of another pool', { timeout: 5_000 }, () => {
    const affinity = new CookieAffinity('sy_affinity', 'secret-one', makeServers(URLS));
    const [stranger] = makeServers(['http://127.0.0.1:4000']);
    assert.throws(() => affinity.setCookie(stranger!, false));
  });
});

describe('readCookie', () => {
  test('finds a cookie at the start, in the middle and at the end', { timeout: 5_000 }, () => {
    assert.equal(readCookie('sy=1', 'sy'), '1');
    assert.equal(readCookie('sy=1; a=2', 'sy'), '1');
    assert.equal(readCookie('a=2; sy=1; b=3', 'sy'), '1');
    assert.equal(readCookie('a=2; sy=1', 'sy'), '1');
  });

  test('accepts a pair separator without a space', { timeout: 5_000 }, () => {
    assert.equal(readCookie('a=2;sy=1', 'sy'), '1');
  });

  test('does not match a name that only ends or starts with the wanted name', { timeout: 5_000 }, () => {
    assert.equal(readCookie('xsy=1', 'sy'), undefined);
    assert.equal(readCookie('sy_old=1', 'sy'), undefined);
    assert.equal(readCookie('xsy=1; sy=2', 'sy'), '2');
    assert.equal(readCookie('sy_old=1; sy=2', 'sy'), '2');
  });

  test('does not match the name inside another cookie value', { timeout: 5_000 }, () => {
    assert.equal(readCookie('a=sy=1', 'sy'), undefined);
    assert.equal(readCookie('a=sy=1; sy=2', 'sy'), '2');
  });

  test('a name without "=" is no cookie; an empty value is an empty string', { timeout: 5_000 }, () => {
    assert.equal(readCookie('sy; a=1', 'sy'), undefined);
    assert.equal(readCookie('sy', 'sy'), undefined);
    assert.equal(readCookie('sy=', 'sy'), '');
    assert.equal(readCookie('sy=; a=1', 'sy'), '');
  });

  test('trims spaces around the value and is case-sensitive on the name', { timeout: 5_000 }, () => {
    assert.equal(readCookie('sy= 1 ; a=2', 'sy'), '1');
    assert.equal(readCookie('SY=1', 'sy'), undefined);
  });

  test('returns undefined when absent', { timeout: 5_000 }, () => {
    assert.equal(readCookie('', 'sy'), undefined);
    assert.equal(readCookie('a=1; b=2', 'sy'), undefined);
  });
});

describe('ipHashIndex', () => {
  test('is stable for an address and always inside the server range', { timeout: 5_000 }, () => {
    for (const count of [1, 2, 3, 7]) {
      for (let i = 0; i < 200; i++) {
        const address = `10.0.${i >> 8}.${i & 255}`;
        const index = ipHashIndex(address, count);
        assert.ok(Number.isInteger(index) && index >= 0 && index < count, `${address} -> ${index} of ${count}`);
        assert.equal(ipHashIndex(address, count), index);
      }
    }
  });

  test('spreads many addresses over every server', { timeout: 5_000 }, () => {
    const counts = [0, 0, 0];
    for (let i = 0; i < 300; i++) counts[ipHashIndex(`192.168.${i >> 8}.${i & 255}`, 3)]! += 1;
    // A hash that sends everything to one server would fail this; each gets a fair share.
    for (const count of counts) assert.ok(count > 50, `uneven spread: ${counts.join(', ')}`);
  });

  test('IPv6 addresses hash too', { timeout: 5_000 }, () => {
    const index = ipHashIndex('2001:db8::1', 4);
    assert.ok(index >= 0 && index < 4);
    assert.equal(ipHashIndex('2001:db8::1', 4), index);
  });
});

// --- helpers ---

function makeServers(urls: readonly string[]): UpstreamServer[] {
  const servers = urls.map((url) => new UpstreamServer(url, { connectMs: 1_000, responseMs: 1_000, bodyIdleMs: 1_000 }));
  created.push(...servers);
  return servers;
}

/** The value of a "name=value; attributes" Set-Cookie line. */
function cookieValue(setCookie: string): string {
  const pair = setCookie.split(';')[0] ?? '';
  return pair.slice(pair.indexOf('=') + 1);
}
