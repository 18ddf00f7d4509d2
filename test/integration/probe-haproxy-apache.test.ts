/**
 * `switchyard probe URL` (the real CLI) against Debian's HAProxy and Apache
 * 2.4, configured right and with the classic mistakes: HAProxy without a long
 * `timeout tunnel` (--idle finds the 3 s cut-off), Apache's strict
 * `RewriteCond %{HTTP:Connection} ^Upgrade$` (only the "keep-alive, Upgrade"
 * form fails, and the comparison says why), and a closed backend port (both
 * answer 503, not nginx's 502).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { APACHE, startApache } from '../helpers/apache.js';
import { stopSwitchyards } from '../helpers/cli.js';
import { HAPROXY, startHaproxy } from '../helpers/haproxy.js';
import { closedPort, startOrigin, type Origin } from '../helpers/origins.js';
import { probeJson, type ProbeJson } from '../helpers/probe-cli.js';

const FORMS = ['chromium', 'firefox', 'keep-alive-upgrade', 'safari', 'minimal'];

/** Servers the running test started; afterEach closes them. */
const running: { close(): Promise<void> }[] = [];
async function started<T extends { close(): Promise<void> }>(server: Promise<T>): Promise<T> {
  const value = await server;
  running.push(value);
  return value;
}

let origin: Origin;
before(async () => {
  origin = await startOrigin({ name: 'echo' });
});
after(async () => {
  await origin.close();
});
async function cleanUp(): Promise<void> {
  await stopSwitchyards();
  for (const server of running.splice(0)) await server.close();
}

/** Every form failed with the proxy's 503 for a backend it could not connect to. */
function assertAllNoBackend(code: number | null, json: ProbeJson): void {
  assert.equal(code, 1);
  assert.deepEqual(json.variants.map((variant) => variant.form), FORMS);
  for (const variant of json.variants) {
    assert.equal(variant.status, 503, variant.form);
    assert.match(variant.diagnosis, /^503: a hop has no backend available.*could not connect to it/, variant.form);
  }
}

function assertAllPass(code: number | null, json: ProbeJson): void {
  assert.equal(code, 0, JSON.stringify(json));
  assert.deepEqual(json.variants.map((variant) => variant.form), FORMS);
  for (const variant of json.variants) {
    assert.equal(variant.status, 101, variant.form);
    assert.equal(variant.echo, 'echoed', variant.form);
    assert.equal(variant.closeCode, 1000, variant.form);
  }
}

describe('probe through a real HAProxy', { skip: HAPROXY === undefined ? 'haproxy is not installed' : false }, () => {
  afterEach(cleanUp);
  const haproxy = (timeouts: string, server: number, extra = ''): ReturnType<typeof startHaproxy> => started(startHaproxy(`  mode http
  timeout connect 2s
${timeouts}${extra}
  server backend 127.0.0.1:${server}`));

  test('configured right (http mode, a long timeout tunnel): every form passes, exit 0', { timeout: 30_000 }, async () => {
    const server = await haproxy('  timeout client 30s\n  timeout server 30s\n  timeout tunnel 1h', origin.port);
    const handshakesBefore = origin.handshakes.length;
    const { code, json } = await probeJson([`ws://127.0.0.1:${server.port}/`]);
    assertAllPass(code, json);
    assert.equal(origin.handshakes.length - handshakesBefore, 5, 'every handshake reached the origin');
  });

  test('no timeout tunnel and a 3 s timeout server: --idle finds the cut-off at about 3 s', { timeout: 30_000 }, async () => {
    // Without `timeout tunnel` the upgraded connection keeps the client and server timeouts.
    const server = await haproxy('  timeout client 30s\n  timeout server 3s', origin.port);
    const { code, json, stderr } = await probeJson([`ws://127.0.0.1:${server.port}/`, '--form', 'minimal', '--idle', '6s']);
    assert.equal(code, 1, 'an idle cut-off fails the probe');
    assert.equal(json.variants[0]?.ok, true, 'the handshake and echo are fine');
    const ended = json.idle?.endedAfterMs ?? 0;
    assert.ok(ended >= 2_500 && ended <= 4_500, `closed after ${ended} ms; stderr ${stderr}`);
    assert.match(json.idle!.diagnosis, /closed after 3\.\d s idle: a hop's idle timeout .*HAProxy timeout tunnel/);
  });

  test('a 3 s timeout tunnel: --idle finds the cut-off at about 3 s', { timeout: 30_000 }, async () => {
    const server = await haproxy('  timeout client 30s\n  timeout server 30s\n  timeout tunnel 3s', origin.port);
    const { code, json, stderr } = await probeJson([`ws://127.0.0.1:${server.port}/`, '--form', 'chromium', '--idle', '6s']);
    assert.equal(code, 1);
    const ended = json.idle?.endedAfterMs ?? 0;
    assert.ok(ended >= 2_500 && ended <= 4_500, `closed after ${ended} ms; stderr ${stderr}`);
    assert.match(json.idle!.diagnosis, /closed after 3\.\d s idle/);
  });

  test('a backend server on a closed port: 503 for every form, "no backend available"', { timeout: 30_000 }, async () => {
    // HAProxy answers 503 (not 502) when it cannot connect. `retries 0`: each
    // of the default 3 retries waits a 1 s turn-around, same answer 3 s later.
    const server = await haproxy('  timeout client 30s\n  timeout server 30s\n  timeout tunnel 1h', await closedPort(), '\n  retries 0');
    const { code, json } = await probeJson([`ws://127.0.0.1:${server.port}/`]);
    assertAllNoBackend(code, json);
    assert.equal(json.comparison, undefined, 'every form failed alike');
  });
});

describe('probe through a real Apache 2.4', { skip: APACHE === undefined ? 'apache2 is not installed' : false }, () => {
  afterEach(cleanUp);
  /** The recipe: WebSocket handshakes rewritten to ws:// (a proxied tunnel), everything else to plain mod_proxy_http. */
  const apache = (upgradeCond: string, connectionCond: string, backend: number): ReturnType<typeof startApache> => started(startApache(`  RewriteEngine on
  RewriteCond %{HTTP:Upgrade} ${upgradeCond}
  RewriteCond %{HTTP:Connection} ${connectionCond}
  RewriteRule ^/?(.*) "ws://127.0.0.1:${backend}/$1" [P,L]
  ProxyPass / http://127.0.0.1:${backend}/`));

  test('configured right (Upgrade and Connection matched as tokens, [NC]): every form passes', { timeout: 30_000 }, async () => {
    const server = await apache('websocket [NC]', 'upgrade [NC]', origin.port);
    const handshakesBefore = origin.handshakes.length;
    const { code, json } = await probeJson([`ws://127.0.0.1:${server.port}/`]);
    assertAllPass(code, json);
    assert.equal(origin.handshakes.length - handshakesBefore, 5, 'every handshake reached the origin');
  });

  test('the strict ^Upgrade$ match: only the keep-alive, Upgrade form fails (200 from the plain-HTTP fallthrough), and the comparison says why', { timeout: 30_000 }, async () => {
    // No upgrade=websocket on the ProxyPass: the handshake the RewriteCond
    // misses reaches the origin as a plain GET (mod_proxy_http drops Upgrade).
    const server = await apache('^WebSocket$ [NC]', '^Upgrade$', origin.port);
    const requestsBefore = origin.requests.length;
    const { code, json } = await probeJson([`ws://127.0.0.1:${server.port}/`]);
    assert.equal(code, 1);
    const failed = json.variants.filter((variant) => !variant.ok).map((variant) => variant.form);
    assert.deepEqual(failed, ['keep-alive-upgrade'], JSON.stringify(json));
    const keepAlive = json.variants.find((variant) => variant.form === 'keep-alive-upgrade')!;
    assert.equal(keepAlive.status, 200);
    assert.match(keepAlive.diagnosis, /answered 200: it treated the upgrade as plain HTTP/);
    assert.match(json.comparison ?? '', /^only keep-alive-upgrade failed \(200\): some hop matches the Connection header strictly \(e\.g\. Apache RewriteCond %\{HTTP:Connection\} \^Upgrade\$\)/);
    const fellThrough = origin.requests.slice(requestsBefore);
    assert.equal(fellThrough.length, 1, 'one plain HTTP request reached the origin');
    assert.equal(fellThrough[0]!.headers.upgrade, undefined, 'without its Upgrade header');
  });

  test('a backend on a closed port: 503 for every form (mod_proxy answers 503, not 502), "no backend available"', { timeout: 30_000 }, async () => {
    const server = await apache('websocket [NC]', 'upgrade [NC]', await closedPort());
    const { code, json } = await probeJson([`ws://127.0.0.1:${server.port}/`]);
    assertAllNoBackend(code, json);
  });
});
