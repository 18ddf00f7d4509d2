/**
 * Real browsers with RFC 8441 turned off on the listener
 * (`websocket_over_http2: false`): headless Chromium (playwright-core) and
 * Firefox ESR (its own process, reporting to the origin) load an https page
 * from the proxy over HTTP/2 and must open their WebSocket over HTTP/1.1 (a
 * separate connection), since the listener does not send
 * SETTINGS_ENABLE_CONNECT_PROTOCOL. The proxy's own counters tell which
 * protocol each took; the WebSocket echo must work.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { chromium, type Browser } from 'playwright-core';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { closeSession, h2Connect } from '../helpers/h2-websocket.js';
import { startOrigin, type Origin } from '../helpers/origins.js';
import { openInFirefox } from '../helpers/firefox.js';

const CHROMIUM = '/usr/bin/chromium';

const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>switchyard tls ws over http/1.1</title></head>
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
let proxy: Switchyard | undefined;
let proxyUrl = '';
const reports: Report[] = [];

function openssl(args: string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, { cwd, timeout: 30_000 }, (err, _stdout, stderr) =>
      (err ? reject(new Error(`openssl ${args[0]} failed: ${err.message} ${stderr}`)) : resolve()));
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

before(async () => {
  certDir = mkdtempSync(join(tmpdir(), 'switchyard-browsers-h1ws-'));
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
  // The listener option under test: HTTP/2 stays on (the page), RFC 8441 is not offered.
  const file = join(certDir, 'switchyard.yaml');
  const text = [
    'listeners:',
    '  - address: 127.0.0.1:0',
    '    tls: { cert: leaf.pem, key: leaf.key }',
    '    websocket_over_http2: false',
    'access_log: false',
    'sites:',
    '  - routes:',
    `      - to: ${origin.url}`,
    '',
  ].join('\n');
  writeFileSync(file, text);
  proxy = await Switchyard.start(loadConfigText(text, file, { env: {}, defaultSecret: 'browsers-h1ws-secret-0123456789' }).config, silentLogger());
  proxyUrl = `https://127.0.0.1:${proxy.addresses[0]!.port}`;
}, { timeout: 60_000 });

after(async () => {
  await proxy?.shutdown(0).catch(() => undefined);
  await origin?.close().catch(() => undefined);
  if (certDir) rmSync(certDir, { recursive: true, force: true });
});

function snapshot(): Counts {
  return { ...proxy!.registry.counts };
}

/** Asserts the page and its fetches went over HTTP/2 and the one WebSocket over HTTP/1.1. */
function assertPageH2WebSocketH1(t: TestContext, browser: string, before: Counts, after: Counts): void {
  const seen = `before ${JSON.stringify(before)}, after ${JSON.stringify(after)}`;
  const h2Requests = after.http2Requests - before.http2Requests;
  const h1Requests = after.http1Requests - before.http1Requests;
  const h1WebSockets = after.http1WebSockets - before.http1WebSockets;
  const h2WebSockets = after.http2WebSockets - before.http2WebSockets;
  // The page itself and its /report fetch: at least two requests, all over HTTP/2.
  assert.ok(h2Requests >= 2, `${browser}: the page and its report went over HTTP/2: ${seen}`);
  assert.equal(h1Requests, 0, `${browser}: no plain request fell back to HTTP/1.1: ${seen}`);
  assert.equal(h2WebSockets, 0, `${browser}: no WebSocket over HTTP/2 (RFC 8441 is off on this listener): ${seen}`);
  assert.equal(h1WebSockets, 1, `${browser}: exactly one WebSocket, over HTTP/1.1: ${seen}`);
  t.diagnostic(`${browser}: page over h2 (${h2Requests} requests), WebSocket over HTTP/1.1`);
}

test('the listener speaks HTTP/2 but does not offer RFC 8441 (SETTINGS_ENABLE_CONNECT_PROTOCOL) to a Node client', { timeout: 15_000 }, async () => {
  const session = await h2Connect(proxy!.addresses[0]!.port, { ca: readFileSync(caFile) });
  try {
    assert.equal(session.alpnProtocol, 'h2');
    assert.notEqual(session.remoteSettings.enableConnectProtocol, true, `remote SETTINGS: ${JSON.stringify(session.remoteSettings)}`);
  } finally {
    await closeSession(session);
  }
});

test('Chromium loads the page over HTTP/2 and echoes over a WebSocket on HTTP/1.1 (websocket_over_http2: false)', { timeout: 60_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: this test needs Debian's Chromium (apt-get install -y chromium); .ci/run installs it`);
  const before = snapshot();
  const reportsBefore = reports.length;
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
    const response = await page.goto(`${proxyUrl}/`, { waitUntil: 'load', timeout: 15_000 });
    assert.equal(response?.status(), 200, 'the page loads through the proxy');
    await page.waitForFunction(() => (globalThis as unknown as PageWindow).result != null, undefined, { timeout: 20_000 });
    const result = await page.evaluate(() => (globalThis as unknown as PageWindow).result);
    assert.equal(result?.ok, true, `Chromium: the page got its echo: ${JSON.stringify(result)}`);
    assert.match(result?.msg ?? '', /^echo hello /);
    // The report fetch is fired by the page after the echo; wait until the origin got it, so it is counted too.
    const deadline = Date.now() + 10_000;
    while (reports.length === reportsBefore && Date.now() < deadline) await sleep(50);
    assert.equal(reports[reportsBefore]?.ok, '1', `Chromium: the report reached the origin: ${JSON.stringify(reports.slice(reportsBefore))}`);
    assertPageH2WebSocketH1(t, 'Chromium', before, snapshot());
  } finally {
    await browser?.close().catch(() => undefined);
  }
});

test('Firefox ESR loads the page over HTTP/2 and echoes over a WebSocket on HTTP/1.1 (websocket_over_http2: false)', { timeout: 60_000 }, async (t) => {
  const reportsBefore = reports.length;
  const before = snapshot();
  await openInFirefox(`${proxyUrl}/`, caFile, () => reports.length > reportsBefore, () => `proxy counts ${JSON.stringify(snapshot())}`);
  const report = reports[reportsBefore]!;
  assert.equal(report.ok, '1', `Firefox: the page got its echo: ${JSON.stringify(report)}`);
  assert.match(report.msg, /^echo hello /);
  assertPageH2WebSocketH1(t, 'Firefox', before, snapshot());

});
