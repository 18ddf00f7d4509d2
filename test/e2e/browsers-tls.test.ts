/**
 * Real browsers over TLS: headless Chromium (playwright-core) and Firefox ESR
 * (its own process, reporting to the origin) load an https page from the proxy
 * and open a WebSocket to an echo origin. The proxy's own counters tell whether
 * the page and the WebSocket went over HTTP/2 (RFC 8441) or HTTP/1.1.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { openInFirefox } from '../helpers/firefox.js';

const CHROMIUM = '/usr/bin/chromium';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>switchyard tls ws</title></head>
<body><p id="status">starting</p>
<script>
window.result = null;
function done(ok, msg) {
  window.result = { ok: ok, msg: msg };
  document.getElementById('status').textContent = (ok ? 'ok ' : 'fail ') + msg;
  fetch('/report?ok=' + (ok ? 1 : 0) + '&msg=' + encodeURIComponent(msg), { cache: 'no-store' }).catch(function () {});
}
var expected = 'hello ' + Math.random().toString(36).slice(2);
var ws = new WebSocket('wss://' + location.host + '/echo');
var timer = setTimeout(function () { done(false, 'timeout'); try { ws.close(); } catch (e) {} }, 15000);
ws.onopen = function () { ws.send(expected); };
ws.onmessage = function (ev) {
  clearTimeout(timer);
  if (ev.data === expected) done(true, 'echo ' + ev.data); else done(false, 'unexpected ' + ev.data);
  ws.close();
};
ws.onerror = function () { clearTimeout(timer); done(false, 'websocket error'); };
</script></body></html>
`;

interface Report { ok: string; msg: string }
interface PageWindow { result?: { ok: boolean; msg: string } | null }
type Counts = { http1Requests: number; http2Requests: number; http1WebSockets: number; http2WebSockets: number };

let certDir = '';
let caFile = '';
let origin: Origin;
let proxy: TestProxy;
const reports: Report[] = [];

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _stdout, stderr) =>
      (err ? reject(new Error(`openssl ${args[0]} failed: ${err.message} ${stderr}`)) : resolve()));
  });
}

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'switchyard-browsers-tls-'));
  // A test CA and a leaf for 127.0.0.1 signed by it (Firefox refuses a CA certificate as the server's own).
  writeFileSync(join(certDir, 'leaf.ext'), 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=Switchyard Test CA', '-days', '2',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-keyout', 'ca.key', '-out', 'ca.pem'], certDir);
  await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'leaf.key', '-out', 'leaf.csr'], certDir);
  await openssl(['x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1',
    '-extfile', 'leaf.ext', '-out', 'leaf.pem'], certDir);
  caFile = join(certDir, 'ca.pem');

  origin = await startOrigin({
    handler: (req, res) => {
      const url = new URL(req.url ?? '/', 'http://origin');
      if (url.pathname === '/report') {
        reports.push({ ok: url.searchParams.get('ok') ?? '', msg: url.searchParams.get('msg') ?? '' });
        res.writeHead(204, { 'Cache-Control': 'no-store' });
        res.end();
        return;
      }
      if (url.pathname === '/') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
        res.end(PAGE);
        return;
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('not found');
    },
  });
  proxy = await startProxy({
    servers: [origin.url],
    tls: { cert: readFileSync(join(certDir, 'leaf.pem')), key: readFileSync(join(certDir, 'leaf.key')) },
  });
});

after(async () => {
  await proxy?.close().catch(() => undefined);
  await origin?.close().catch(() => undefined);
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

function snapshot(): Counts {
  return { ...proxy.proxy.registry.counts };
}

/** Asserts the proxy counted the page load and exactly one WebSocket; returns 'h1' or 'h2' for the WebSocket. */
function assertCounted(t: TestContext, browser: string, before: Counts, after: Counts): string {
  const requests = (after.http1Requests - before.http1Requests) + (after.http2Requests - before.http2Requests);
  assert.ok(requests >= 1, `${browser}: the proxy counted the page load: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
  const h1 = after.http1WebSockets - before.http1WebSockets;
  const h2 = after.http2WebSockets - before.http2WebSockets;
  assert.equal(h1 + h2, 1, `${browser}: the proxy counted exactly one WebSocket: before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`);
  const page = after.http2Requests > before.http2Requests ? 'h2' : 'h1';
  const ws = h2 === 1 ? 'h2' : 'h1';
  const line = `${browser}: page over ${page}, WebSocket over ${ws === 'h2' ? 'HTTP/2 (RFC 8441)' : 'HTTP/1.1'} (${ws})`;
  t.diagnostic(line);
  return ws;
}

test('Chromium loads an https page through the proxy and echoes over a WebSocket (h1 or h2 counted)', { timeout: 60_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: this test needs Debian's Chromium (apt-get install -y chromium); .ci/run installs it`);
  const before = snapshot();
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--ignore-certificate-errors'],
    });
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    const response = await page.goto(`${proxy.url}/`, { waitUntil: 'load', timeout: 15_000 });
    assert.equal(response?.status(), 200, 'the page loads through the proxy');
    await page.waitForFunction(() => (globalThis as unknown as PageWindow).result != null, undefined, { timeout: 20_000 });
    const result = await page.evaluate(() => (globalThis as unknown as PageWindow).result);
    assert.equal(result?.ok, true, `Chromium: the page got its echo: ${JSON.stringify(result)}`);
    assert.match(result?.msg ?? '', /^echo hello /);
    // The WebSocket is counted when the proxy accepts it, which precedes the echo.
    assertCounted(t, 'Chromium', before, snapshot());
  } finally {
    await browser?.close().catch(() => undefined);
  }
});

test('Firefox ESR loads an https page through the proxy and echoes over a WebSocket (h1 or h2 counted)', { timeout: 60_000 }, async (t) => {
  const reportsBefore = reports.length;
  const before = snapshot();
  await openInFirefox(`${proxy.url}/`, caFile, () => reports.length > reportsBefore, () => `proxy counts ${JSON.stringify(snapshot())}`);
  const report = reports[reportsBefore]!;
  assert.equal(report.ok, '1', `Firefox: the page got its echo: ${JSON.stringify(report)}`);
  assert.match(report.msg, /^echo hello /);
  assertCounted(t, 'Firefox', before, snapshot());

});
