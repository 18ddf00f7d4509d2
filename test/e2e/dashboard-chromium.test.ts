/**
 * The admin dashboard as a person meets it: Switchyard in this process with one
 * live backend and one on a closed port, the admin listener with a token, and
 * Debian's Chromium (playwright-core) watching the page while HTTP requests and
 * WebSocket messages flow through the proxy.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { WebSocket } from 'ws';
import { LocalAdminBackend } from '../../src/admin/admin-backend.js';
import { AdminServer } from '../../src/admin/admin-server.js';
import type { Snapshot, TunnelSnapshot } from '../../src/admin/snapshot.js';
import { withDefaults } from '../../src/config/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { closedPort, startOrigin, type Origin } from '../helpers/origins.js';

// dist/test/e2e/dashboard-chromium.test.js -> the repository root
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const OUTPUT = join(ROOT, 'test-output');
const SCREENSHOT = join(OUTPUT, 'dashboard-chromium.png');
const SCREENSHOT_PHONE = join(OUTPUT, 'dashboard-chromium-phone.png');
const TOKEN = 'dashboard-test-token-0123';
const UPSTREAM = 'default';
const ROUTE = 'all';
const SOCKETS = 5;
const REQUEST_INTERVAL_MS = 25;
const MESSAGE_INTERVAL_MS = 50;

interface DashboardRates {
  requests: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
  messagesIn: number;
  messagesOut: number;
}

interface DashboardState {
  snapshots: number;
  connected: boolean;
  last: Snapshot | null;
  rates: DashboardRates | null;
  history: (DashboardRates & { time: number })[];
  tunnels: TunnelSnapshot[] | null;
}

interface DashboardWindow {
  dashboard?: DashboardState;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs in the page: a copy of window.dashboard. */
function readDashboard(): DashboardState | undefined {
  return (globalThis as unknown as DashboardWindow).dashboard;
}

async function dashboard(page: Page): Promise<DashboardState> {
  const state = await page.evaluate(readDashboard);
  assert.ok(state, 'window.dashboard exists');
  return state;
}

async function text(page: Page, selector: string): Promise<string> {
  return ((await page.locator(selector).first().textContent({ timeout: 5_000 })) ?? '').trim();
}

/** The number a stat shows ("12", "3.4", "1.2k"), NaN for "–". */
function parseShown(shown: string): number {
  const match = /^([\d.,]+)\s*(k|M)?/.exec(shown);
  if (!match) return Number.NaN;
  const value = Number(match[1]!.replace(/,/g, ''));
  return match[2] === 'k' ? value * 1e3 : match[2] === 'M' ? value * 1e6 : value;
}

/** Polls `read` until `accept` holds; fails with the last value seen. */
async function eventually<T>(what: string, read: () => Promise<T>, accept: (value: T) => boolean, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  while (true) {
    last = await read();
    if (accept(last)) return last;
    if (Date.now() > deadline) assert.fail(`${what}: not within ${ms} ms; last seen ${JSON.stringify(last)}`);
    await sleep(100);
  }
}

interface Load {
  /** Requests answered with 200. */
  ok: number;
  /** Anything else (status or network error), as text. */
  failures: string[];
  stop(): Promise<void>;
}

/** Sequential GETs through the proxy, one every REQUEST_INTERVAL_MS, until stopped. */
function startRequests(proxyUrl: string): Load {
  let running = true;
  const load: Load = {
    ok: 0,
    failures: [],
    stop: async () => {
      running = false;
      await loop;
    },
  };
  const loop = (async () => {
    let n = 0;
    while (running) {
      const started = Date.now();
      try {
        const response = await fetch(`${proxyUrl}/load/${n++}`, { signal: AbortSignal.timeout(5_000) });
        await response.arrayBuffer();
        if (response.status === 200) load.ok++;
        else load.failures.push(`status ${response.status}`);
      } catch (err) {
        load.failures.push(String(err));
      }
      await sleep(Math.max(0, REQUEST_INTERVAL_MS - (Date.now() - started)));
    }
  })();
  return load;
}

interface Chatter {
  sockets: WebSocket[];
  sent: number;
  received: number;
  timers: NodeJS.Timeout[];
}

async function openSockets(wsUrl: string, count: number): Promise<Chatter> {
  const chatter: Chatter = { sockets: [], sent: 0, received: 0, timers: [] };
  for (let i = 0; i < count; i++) {
    const ws = new WebSocket(`${wsUrl}/ws/${i}`);
    ws.on('error', () => undefined);
    ws.on('message', () => { chatter.received++; });
    chatter.sockets.push(ws);
  }
  await Promise.all(chatter.sockets.map((ws, i) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`WebSocket ${i} did not open within 5 s`)), 5_000);
    ws.once('open', () => { clearTimeout(timer); resolve(); });
    ws.once('error', (err) => { clearTimeout(timer); reject(err); });
  })));
  for (const [i, ws] of chatter.sockets.entries()) {
    chatter.timers.push(setInterval(() => {
      if (ws.readyState !== WebSocket.OPEN) return;
      ws.send(`socket ${i} message ${chatter.sent++}`);
    }, MESSAGE_INTERVAL_MS));
  }
  return chatter;
}

async function closeSockets(chatter: Chatter | undefined, code = 1000): Promise<void> {
  if (!chatter) return;
  for (const timer of chatter.timers) clearInterval(timer);
  await Promise.all(chatter.sockets.map((ws) => new Promise<void>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    const timer = setTimeout(() => { ws.terminate(); resolve(); }, 2_000);
    ws.once('close', () => { clearTimeout(timer); resolve(); });
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(code, 'done');
  })));
}

test('dashboard in Chromium: live rates, tunnels, backends and routes follow the traffic through the proxy', { timeout: 60_000 }, async () => {
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: this end-to-end test needs Debian's Chromium (apt-get install -y chromium); .ci/run installs it`,
  );

  let origin: Origin | undefined;
  let proxy: Switchyard | undefined;
  let admin: AdminServer | undefined;
  let browser: Browser | undefined;
  let load: Load | undefined;
  let chatter: Chatter | undefined;
  try {
    origin = await startOrigin({ name: 'dashboard-origin' });
    const deadUrl = `http://127.0.0.1:${await closedPort()}`;
    const liveUrl = origin.url;
    const config = withDefaults({
      listeners: [{ host: '127.0.0.1', port: 0 }],
      upstream: { servers: [liveUrl, deadUrl] },
      timeouts: { tunnelIdleMs: 30_000 },
    }, () => randomBytes(16).toString('hex'));
    proxy = await Switchyard.start(config, silentLogger());
    const proxyPort = proxy.addresses[0]!.port;
    const proxyUrl = `http://127.0.0.1:${proxyPort}`;
    const wsUrl = `ws://127.0.0.1:${proxyPort}`;
    admin = await AdminServer.start({ host: '127.0.0.1', port: 0, token: TOKEN }, new LocalAdminBackend(proxy, undefined), silentLogger());
    const adminUrl = `http://127.0.0.1:${admin.port}`;
    const auth = { Authorization: `Bearer ${TOKEN}` };

    // ---- the token guards the API, not the page ----
    for (const path of ['/api/stats', '/api/tunnels', '/api/upstreams', '/api/config', '/api/events', '/metrics']) {
      const refused = await fetch(`${adminUrl}${path}`);
      assert.equal(refused.status, 401, `${path} without the token`);
      assert.match(refused.headers.get('www-authenticate') ?? '', /^Bearer /, `${path}: WWW-Authenticate`);
      assert.equal(((await refused.json()) as { error?: string }).error, 'SY_ADMIN_UNAUTHORIZED');
      const wrong = await fetch(`${adminUrl}${path}`, { headers: { Authorization: `Bearer ${TOKEN}x` } });
      await wrong.arrayBuffer();
      assert.equal(wrong.status, 401, `${path} with a wrong token`);
    }
    const allowed = await fetch(`${adminUrl}/api/stats`, { headers: auth });
    assert.equal(allowed.status, 200, '/api/stats with the token');
    await allowed.arrayBuffer();
    const pageWithoutToken = await fetch(`${adminUrl}/`);
    assert.equal(pageWithoutToken.status, 200, 'the page loads without the token');
    assert.match(pageWithoutToken.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await pageWithoutToken.text(), /id="requests-rate"/);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });

    // ---- in Chromium without the token: the page loads and says what is missing ----
    const anonymous: BrowserContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const bare = await anonymous.newPage();
    const bareResponse = await bare.goto(`${adminUrl}/`, { waitUntil: 'load', timeout: 15_000 });
    assert.equal(bareResponse?.status(), 200, 'the page loads in Chromium without the token');
    await bare.locator('#notice.show', { hasText: 'needs a token' }).waitFor({ timeout: 5_000 });
    await eventually('#live without the token', () => text(bare, '#live'), (shown) => shown !== 'live' && shown !== 'connecting…');
    assert.equal((await dashboard(bare)).snapshots, 0, 'no snapshot reaches a page without the token');
    await anonymous.close();

    // ---- with the token ----
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    const pageErrors: string[] = [];
    const failedRequests: string[] = [];
    page.on('console', (message) => { if (message.type() === 'error') consoleErrors.push(`${message.text()} @ ${JSON.stringify(message.location())}`); });
    page.on('pageerror', (err) => pageErrors.push(String(err)));
    page.on('requestfailed', (request) => failedRequests.push(`${request.url()}: ${request.failure()?.errorText ?? ''}`));
    const response = await page.goto(`${adminUrl}/#token=${TOKEN}`, { waitUntil: 'load', timeout: 15_000 });
    assert.equal(response?.status(), 200);
    await page.waitForFunction(() => {
      const state = (globalThis as unknown as DashboardWindow).dashboard;
      return Boolean(state?.connected && state.snapshots >= 1);
    }, undefined, { timeout: 10_000 });
    assert.equal(await text(page, '#live'), 'live');
    assert.match((await page.locator('#live').getAttribute('class')) ?? '', /\blive\b/);
    assert.equal(await page.locator('#notice.show').count(), 0, 'no notice with the right token');
    assert.equal(await text(page, '#processes'), '1 process');
    assert.equal(await text(page, '#tunnels-open'), '0', 'no tunnels yet');
    // No traffic yet: the proxy has no route stats, so the route table is empty.
    assert.equal(await page.locator('#backends tr[data-server]').count(), 2, 'both servers are listed before any traffic');

    // ---- a request that fails over: the closed port is ejected ----
    for (let i = 0; i < 2; i++) {
      const first = await fetch(`${proxyUrl}/warmup/${i}`);
      assert.equal(first.status, 200, 'a request fails over to the live server');
      assert.equal(first.headers.get('x-origin'), 'dashboard-origin');
      await first.arrayBuffer();
    }
    const deadBadge = page.locator(`#backends tr[data-server="${deadUrl}"] .badge`);
    const liveBadge = page.locator(`#backends tr[data-server="${liveUrl}"] .badge`);
    await deadBadge.filter({ hasText: 'ejected' }).waitFor({ timeout: 5_000 });
    assert.match((await deadBadge.getAttribute('class')) ?? '', /\bejected\b/);
    assert.equal(await text(page, `#backends tr[data-server="${liveUrl}"] .badge`), 'up');
    assert.match((await liveBadge.getAttribute('class')) ?? '', /\bup\b/);
    const deadEjections = await text(page, `#backends tr[data-server="${deadUrl}"] td:nth-child(6)`);
    assert.equal(deadEjections, '1', 'the closed port was ejected once');
    assert.match(await text(page, '#backends-summary'), /1 up · 1 ejected/);
    await page.locator(`#routes tr[data-route="${ROUTE}"]`).waitFor({ timeout: 5_000 });

    // ---- load: requests at a steady rate, 5 WebSockets chatting ----
    const loadStarted = Date.now();
    load = startRequests(proxyUrl);
    chatter = await openSockets(wsUrl, SOCKETS);
    assert.equal(origin.sockets.size, SOCKETS, 'every tunnel reached the live origin');

    await eventually('#tunnels-open while the sockets are open', () => text(page, '#tunnels-open'), (shown) => shown === String(SOCKETS));
    const firstRate = await eventually('#requests-rate under load', () => text(page, '#requests-rate'), (shown) => parseShown(shown) > 0);
    const firstState = await dashboard(page);
    const firstAt = Date.now();
    await sleep(1_600);
    const secondRate = await eventually('#requests-rate still > 0', () => text(page, '#requests-rate'), (shown) => parseShown(shown) > 0);
    const secondState = await dashboard(page);
    assert.ok(Date.now() - firstAt >= 1_500);
    assert.ok(parseShown(firstRate) > 0 && parseShown(secondRate) > 0, `both readings are rates > 0: ${firstRate}, ${secondRate}`);
    assert.ok(secondState.history.length > firstState.history.length, `history grew: ${firstState.history.length} -> ${secondState.history.length}`);
    assert.ok(secondState.snapshots >= firstState.snapshots + 1, `snapshots kept arriving: ${firstState.snapshots} -> ${secondState.snapshots}`);
    const lastSample = secondState.history.at(-1)!;
    assert.ok(lastSample.time > firstState.history.at(-1)!.time, 'the newest sample is newer');

    // Let the load run for ~4 s in all before judging the steady state.
    await sleep(Math.max(0, 4_000 - (Date.now() - loadStarted)));
    const steady = await dashboard(page);
    const requestsShown = parseShown(await text(page, '#requests-rate'));
    const messagesInShown = parseShown(await text(page, '#messages-in-rate'));
    const messagesOutShown = parseShown(await text(page, '#messages-out-rate'));
    const clientRate = load.ok / ((Date.now() - loadStarted) / 1000);
    assert.ok(requestsShown > 0, `#requests-rate > 0: ${requestsShown}`);
    // The page's rate is computed from 1 s snapshots; the client's average is close to it.
    assert.ok(requestsShown > clientRate / 2 && requestsShown < clientRate * 2,
      `#requests-rate ${requestsShown} is near the rate the client achieves, ${clientRate.toFixed(1)}/s`);
    assert.ok(messagesInShown > 0, `#messages-in-rate > 0: ${messagesInShown}`);
    assert.ok(messagesOutShown > 0, `#messages-out-rate > 0 (the origin echoes): ${messagesOutShown}`);
    const expectedMessages = SOCKETS * (1000 / MESSAGE_INTERVAL_MS);
    assert.ok(messagesInShown > expectedMessages / 2 && messagesInShown < expectedMessages * 2,
      `#messages-in-rate ${messagesInShown} is near ${expectedMessages}/s (5 sockets, one message each per ${MESSAGE_INTERVAL_MS} ms)`);
    assert.ok((steady.rates?.bytesIn ?? 0) > 0 && (steady.rates?.bytesOut ?? 0) > 0, `bytes rates > 0: ${JSON.stringify(steady.rates)}`);
    assert.match(await text(page, '#bytes-in-rate'), /^[\d.]+ (B|kB|MB)\/s$/);
    assert.match(await text(page, '#bytes-out-rate'), /^[\d.]+ (B|kB|MB)\/s$/);
    assert.ok(parseShown(await text(page, '#connections')) >= SOCKETS, 'at least one client connection per WebSocket');
    assert.equal(await text(page, '#tunnels-open'), String(SOCKETS));
    assert.equal(await text(page, '#live'), 'live');

    // #backends: both servers with their states; the live one carries the tunnels.
    assert.equal(await page.locator('#backends tr[data-server]').count(), 2);
    assert.equal(await text(page, `#backends [data-upstream="${UPSTREAM}"] h3`).then((title) => title.startsWith(UPSTREAM)), true, 'the upstream is named');
    assert.match(await text(page, `#backends tr[data-server="${deadUrl}"] .badge`), /^(ejected|up)$/, 'the closed port is ejected (or back on probation)');
    assert.equal(await text(page, `#backends tr[data-server="${liveUrl}"] .badge`), 'up');
    assert.equal(await text(page, `#backends tr[data-server="${liveUrl}"] td:nth-child(5)`), String(SOCKETS), 'the live server has the tunnels');
    assert.equal(await text(page, `#backends tr[data-server="${deadUrl}"] td:nth-child(5)`), '0');

    // #routes: the route with its open and total tunnels, and tunnels by backend server.
    const routeRow = `#routes tr[data-route="${ROUTE}"]`;
    assert.equal(await page.locator(routeRow).count(), 1, 'the route is listed once');
    assert.equal(await text(page, `${routeRow} td:nth-child(2)`), String(SOCKETS), 'open tunnels of the route');
    assert.equal(await text(page, `${routeRow} td:nth-child(3)`), String(SOCKETS), 'tunnels of the route in all');
    assert.ok(parseShown(await text(page, `${routeRow} td:nth-child(4)`)) > 0, 'requests of the route');
    assert.equal(await text(page, `#routes tr[data-server="${liveUrl}"] td:nth-child(2)`), String(SOCKETS));
    assert.equal(await text(page, '#tunnels-total'), `${SOCKETS} opened in all`);

    // #tunnels: one row per open tunnel, the same ones the API lists.
    await eventually('#tunnels rows', () => page.locator('#tunnels tr[data-id]').count(), (count) => count === SOCKETS);
    const rowIds = (await page.locator('#tunnels tr[data-id]').evaluateAll((rows) => rows.map((row) => (row as unknown as { dataset: { id?: string } }).dataset.id ?? ''))).sort();
    const listed = await fetch(`${adminUrl}/api/tunnels`, { headers: auth });
    const apiTunnels = (await listed.json()) as TunnelSnapshot[];
    assert.deepEqual(rowIds, apiTunnels.map((t) => t.id).sort(), 'the rows are the open tunnels of /api/tunnels');
    assert.equal(await text(page, '#tunnels-count'), `${SOCKETS} open`);
    for (const row of await page.locator('#tunnels tr[data-id]').all()) {
      assert.equal(((await row.locator('td:nth-child(3)').textContent()) ?? '').trim(), liveUrl, 'every tunnel goes to the live server');
      assert.match((await row.locator('td:nth-child(2)').textContent()) ?? '', new RegExp(`^${ROUTE}\\s*h1$`));
    }
    // #errors: failed-over requests succeeded, so the panel matches the API.
    const stats = (await (await fetch(`${adminUrl}/api/stats`, { headers: auth })).json()) as Snapshot;
    if (stats.recentErrors.length === 0) assert.equal(await text(page, '#errors'), 'No recent errors');
    else assert.equal(await page.locator('#errors tbody tr').count(), stats.recentErrors.length);

    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(existsSync(SCREENSHOT), 'the desktop screenshot was written');
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(300);
    await page.screenshot({ path: SCREENSHOT_PHONE, fullPage: true });
    assert.ok(existsSync(SCREENSHOT_PHONE), 'the phone screenshot was written');
    // Runs in the page: how wide the document is, and which elements reach past the viewport.
    const overflow = await page.evaluate(() => {
      interface Box { right: number }
      interface Node { tagName: string; id: string; className: unknown; getBoundingClientRect(): Box; closest(s: string): Node | null }
      const doc = (globalThis as unknown as { document: { documentElement: { scrollWidth: number; clientWidth: number }; querySelectorAll(s: string): Node[] } }).document;
      const width = doc.documentElement.clientWidth;
      const wide = [...doc.querySelectorAll('body *')]
        .filter((node) => node.getBoundingClientRect().right > width + 0.5)
        .slice(0, 8)
        .map((node) => `#${node.closest('[id]')?.id ?? ''} ${node.tagName.toLowerCase()}${node.id ? '#' + node.id : ''}${typeof node.className === 'string' && node.className ? '.' + node.className.split(' ').join('.') : ''} right=${Math.round(node.getBoundingClientRect().right)}`);
      return { scrollWidth: doc.documentElement.scrollWidth, clientWidth: width, wide };
    });
    // Judged at the end, so that the rest of the test still runs when the layout is off.
    const phoneLayout = overflow;
    await page.setViewportSize({ width: 1280, height: 800 });

    // ---- stop the load: the figures fall back ----
    await load.stop();
    const requestsMade = load.ok;
    assert.deepEqual(load.failures, [], 'every request through the proxy succeeded');
    await closeSockets(chatter);
    assert.ok(chatter.received > 0 && chatter.sent > 0, 'messages went both ways');
    await eventually('#tunnels-open after the sockets closed', () => text(page, '#tunnels-open'), (shown) => shown === '0');
    await eventually('#requests-rate after the load', () => text(page, '#requests-rate'), (shown) => shown === '0');
    await eventually('#messages-in-rate after the load', () => text(page, '#messages-in-rate'), (shown) => shown === '0');
    await eventually('#tunnels after the sockets closed', () => text(page, '#tunnels'), (shown) => shown === 'No open tunnels');
    assert.equal(await text(page, `#routes tr[data-route="${ROUTE}"] td:nth-child(2)`), '0');
    assert.equal(await text(page, `#backends tr[data-server="${liveUrl}"] td:nth-child(5)`), '0');
    // Requests of the route: the 2 warm-up requests, the load, and the 5 handshakes (1xx).
    const route = (await dashboard(page)).last?.routes.find((r) => r.route === ROUTE);
    assert.equal(route?.requests, 2 + requestsMade + SOCKETS, `requests counted for the route: ${JSON.stringify(route)}`);
    assert.equal(route?.tunnelsTotal, SOCKETS);
    assert.equal(route?.messagesIn, chatter.sent, 'every message sent was counted');

    // ---- drain the closed port through the API: the dashboard shows it ----
    const drained = await fetch(`${adminUrl}/api/upstreams/${UPSTREAM}/drain`, {
      method: 'POST', headers: { ...auth, 'Content-Type': 'application/json' }, body: JSON.stringify({ server: deadUrl }),
    });
    assert.equal(drained.status, 200);
    await drained.arrayBuffer();
    await deadBadge.filter({ hasText: 'draining' }).waitFor({ timeout: 5_000 });
    assert.match((await deadBadge.getAttribute('class')) ?? '', /\bdraining\b/);
    assert.equal(await text(page, `#backends tr[data-server="${liveUrl}"] .badge`), 'up');

    assert.equal(await text(page, '#live'), 'live', 'still live at the end');
    assert.deepEqual(pageErrors, [], 'no page errors');
    assert.deepEqual(consoleErrors, [], 'no console errors');
    assert.deepEqual(failedRequests, [], 'no failed requests');
    assert.ok(phoneLayout.scrollWidth <= phoneLayout.clientWidth, `no sideways scrolling on a phone (390x844): ${JSON.stringify(phoneLayout)}`);
  } finally {
    await browser?.close().catch(() => undefined);
    await load?.stop().catch(() => undefined);
    await closeSockets(chatter, 1001).catch(() => undefined);
    await admin?.close().catch(() => undefined);
    await proxy?.shutdown(0).catch(() => undefined);
    await origin?.close().catch(() => undefined);
  }
});
