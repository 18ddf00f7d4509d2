/**
 * The demo as a person meets it: `switchyard demo` in its own process, Debian's
 * Chromium driven by playwright-core, two pages chatting over WebSockets through
 * the proxy.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { chromium, type Browser, type Page, type WebSocket as PlaywrightWebSocket } from 'playwright-core';

// dist/test/e2e/demo-chromium.test.js -> the repository root
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'switchyard.js');
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = join(ROOT, 'test-output', 'demo-chromium.png');
const START_LINE = /switchyard listening on http:\/\/127\.0\.0\.1:(\d+)/;

interface DemoMessage {
  type: string;
  name?: string;
  from?: string;
  text?: string;
  via?: string;
}

interface DemoWindow {
  demo?: { open: boolean; name?: string; received: DemoMessage[] };
}

interface ObservedSocket {
  url: string;
  sent: string[];
  received: string[];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function startDemo(child: ChildProcess, output: { stdout: string; stderr: string }, ms = 15_000): Promise<number> {
  const deadline = Date.now() + ms;
  while (true) {
    const match = START_LINE.exec(output.stdout);
    if (match) return Number(match[1]);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`demo exited (${child.exitCode ?? child.signalCode}) before its start line; stdout ${JSON.stringify(output.stdout)}, stderr ${JSON.stringify(output.stderr)}`);
    }
    if (Date.now() > deadline) throw new Error(`demo printed no start line within ${ms} ms; stdout ${JSON.stringify(output.stdout)}, stderr ${JSON.stringify(output.stderr)}`);
    await sleep(20);
  }
}

/** Opens the demo in a new page, records its WebSockets, waits until its socket is open and welcomed. */
async function openDemo(browser: Browser, url: string): Promise<{ page: Page; sockets: ObservedSocket[]; name: string }> {
  const page = await browser.newPage();
  const sockets: ObservedSocket[] = [];
  page.on('websocket', (ws: PlaywrightWebSocket) => {
    const observed: ObservedSocket = { url: ws.url(), sent: [], received: [] };
    sockets.push(observed);
    ws.on('framesent', (frame) => observed.sent.push(String(frame.payload)));
    ws.on('framereceived', (frame) => observed.received.push(String(frame.payload)));
  });
  const response = await page.goto(url, { waitUntil: 'load', timeout: 15_000 });
  assert.equal(response?.status(), 200, 'the demo page loads through the proxy');
  assert.match(response?.headers()['content-type'] ?? '', /text\/html/);
  await page.waitForFunction(() => (globalThis as unknown as DemoWindow).demo?.open === true, undefined, { timeout: 10_000 });
  await page.waitForFunction(() => Boolean((globalThis as unknown as DemoWindow).demo?.received.some((m) => m.type === 'welcome')), undefined, { timeout: 10_000 });
  const name = await page.evaluate(() => (globalThis as unknown as DemoWindow).demo?.name ?? '');
  assert.match(name, /\S/, 'the origin gave the page a name');
  return { page, sockets, name };
}

test('demo in Chromium: the page chats over a WebSocket through the proxy and broadcasts to a second page', { timeout: 90_000 }, async () => {
  assert.ok(
    existsSync(CHROMIUM),
    `${CHROMIUM} is missing: this end-to-end test needs Debian's Chromium (apt-get install -y chromium); .ci/run installs it`,
  );

  const output = { stdout: '', stderr: '' };
  const env: NodeJS.ProcessEnv = { ...process.env, PORT: '0', HOST: '127.0.0.1' };
  delete env.NODE_OPTIONS;
  delete env.NODE_TEST_CONTEXT;
  const demo = spawn(process.execPath, [BIN, 'demo'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  assert.ok(demo.pid, 'the demo process started');
  demo.stdout?.setEncoding('utf8').on('data', (text: string) => { output.stdout += text; });
  demo.stderr?.setEncoding('utf8').on('data', (text: string) => { output.stderr += text; });
  let browser: Browser | undefined;
  try {
    const port = await startDemo(demo, output);
    const url = `http://127.0.0.1:${port}/`;

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      timeout: 30_000,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });

    const first = await openDemo(browser, url);
    assert.equal(first.sockets.length, 1, 'the page opened one WebSocket');
    assert.equal(first.sockets[0]!.url, `ws://127.0.0.1:${port}/chat`);
    const path = await first.page.locator('#path').textContent();
    assert.ok(path?.includes('Via: 1.1 switchyard'), `#path shows the proxy's Via header: ${JSON.stringify(path)}`);
    assert.ok(path?.includes('X-Forwarded-For: 127.0.0.1'), `#path shows X-Forwarded-For: ${JSON.stringify(path)}`);
    assert.ok(first.sockets[0]!.received.some((frame) => frame.includes('"welcome"')), 'the welcome frame was seen arriving');

    const second = await openDemo(browser, url);
    assert.notEqual(second.name, first.name, 'each page is its own chat client');

    const text = `hello from chromium ${Date.now()}`;
    await first.page.locator('#message').fill(text);
    await first.page.locator('#send').click();

    // Runs inside the page: did a chat message with this text from this sender arrive?
    const chatArrived = (expected: { text: string; from: string }): boolean =>
      Boolean((globalThis as unknown as DemoWindow).demo?.received.some((m) => m.type === 'chat' && m.text === expected.text && m.from === expected.from));
    await first.page.waitForFunction(chatArrived, { text, from: first.name }, { timeout: 10_000 });
    await second.page.waitForFunction(chatArrived, { text, from: first.name }, { timeout: 10_000 });

    const socket = first.sockets[0]!;
    assert.ok(socket.sent.some((frame) => frame.includes(text)), `the message left the page as a frame: ${JSON.stringify(socket.sent)}`);
    assert.ok(socket.received.some((frame) => frame.includes(text) && frame.includes('"chat"')), 'the message came back as a frame');
    assert.ok(second.sockets[0]!.received.some((frame) => frame.includes(text)), 'the second page received the broadcast frame');
    assert.equal(await first.page.locator('#message').inputValue(), '', 'the input is cleared after sending');
    await first.page.locator('#log li', { hasText: text }).waitFor({ timeout: 5_000 });
    await second.page.locator('#log li', { hasText: text }).waitFor({ timeout: 5_000 });

    mkdirSync(join(ROOT, 'test-output'), { recursive: true });
    await first.page.screenshot({ path: SCREENSHOT, fullPage: true });
    assert.ok(existsSync(SCREENSHOT), 'the screenshot was written');
  } finally {
    await browser?.close().catch(() => undefined);
    if (demo.exitCode === null && demo.signalCode === null && demo.pid) {
      const exited = new Promise<void>((resolve) => demo.once('exit', () => resolve()));
      process.kill(demo.pid, 'SIGKILL');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((resolve) => { timer = setTimeout(resolve, 5_000); })]);
      clearTimeout(timer);
    }
  }
});
