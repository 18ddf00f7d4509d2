/**
 * `switchyard probe URL` (the real CLI) against Switchyard and a real nginx,
 * configured right and with each classic mistake: the upgrade headers not
 * passed (the backend answers 200), the Connection header matched strictly
 * (only the "keep-alive, Upgrade" form fails), a 3 s proxy_read_timeout
 * (--idle finds it), a closed backend (502), and TLS that the client does not
 * trust or that names another host.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { selfSignedCertificate, type TestCertificate } from '../helpers/certs.js';
import { stopSwitchyards } from '../helpers/cli.js';
import { NGINX, startNginx, type RunningNginx } from '../helpers/nginx.js';
import { closedPort, startOrigin, type Origin } from '../helpers/origins.js';
import { probe } from '../helpers/probe-cli.js';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';

const FORMS = ['chromium', 'firefox', 'keep-alive-upgrade', 'safari', 'minimal'];

let origin: Origin;
before(async () => {
  origin = await startOrigin({ name: 'echo' });
});
after(async () => {
  await stopSwitchyards();
  await origin.close();
});

describe('probe through Switchyard', () => {
  let proxy: Switchyard;
  let cert: TestCertificate;
  let tlsProxy: Switchyard;
  before(async () => {
    cert = await selfSignedCertificate('switchyard-probe-');
    const load = (yaml: string): Switchyard['config'] => loadConfigText(yaml, 'probe.yaml', { env: {}, defaultSecret: 'probe-secret-0123456789abcdef' }).config;
    proxy = await Switchyard.start(load(`
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: ${origin.url}
`), silentLogger());
    tlsProxy = await Switchyard.start(load(`
listeners:
  - address: 127.0.0.1:0
    tls: { cert: ${cert.certFile}, key: ${cert.keyFile} }
sites:
  - routes:
      - to: ${origin.url}
`), silentLogger());
  });
  after(async () => {
    await proxy.shutdown(0);
    await tlsProxy.shutdown(0);
    cert.remove();
  });

  test('every client form upgrades, echoes text and binary and closes cleanly; exit 0; timings reported', { timeout: 30_000 }, async () => {
    const { code, json } = await probe([`ws://127.0.0.1:${proxy.addresses[0]!.port}/chat`, '--json']);
    assert.equal(code, 0);
    assert.equal(json?.ok, true);
    assert.deepEqual(json?.variants.map((variant) => variant.form), FORMS);
    for (const variant of json!.variants) {
      assert.equal(variant.status, 101, variant.form);
      assert.equal(variant.echo, 'echoed', variant.form);
      assert.equal(variant.closeCode, 1000, variant.form);
      for (const timing of ['dnsMs', 'tcpMs', 'handshakeMs', 'echoMs']) assert.equal(typeof variant.timings[timing], 'number', `${variant.form} ${timing}`);
    }
    // Each form really went out (Switchyard normalises Connection; the forms' other headers pass).
    const agents = origin.handshakes.slice(-5).map((handshake) => handshake.headers['user-agent'] ?? '(none)');
    assert.equal(new Set(agents).size, 5, JSON.stringify(agents));
  });

  test('wss: an untrusted certificate is named as such; --ca trusts it; a name the certificate lacks is named', { timeout: 30_000 }, async () => {
    const port = tlsProxy.addresses[0]!.port;
    const untrusted = await probe([`wss://localhost:${port}/`, '--json', '--form', 'minimal']);
    assert.equal(untrusted.code, 1);
    assert.match(untrusted.json!.variants[0]!.diagnosis, /self-signed/);
    const trusted = await probe([`wss://localhost:${port}/`, '--json', '--form', 'chromium', '--ca', cert.certFile]);
    assert.equal(trusted.code, 0, trusted.stdout);
    assert.equal(typeof trusted.json!.variants[0]!.timings.tlsMs, 'number');
    const wrongName = await probe([`wss://127.0.0.2:${port}/`, '--json', '--form', 'minimal', '--ca', cert.certFile]);
    assert.equal(wrongName.code, 1);
    assert.match(wrongName.json!.variants[0]!.diagnosis, /not valid for 127\.0\.0\.2|refused/);
  });

  test('text output, connection refused, and usage errors', { timeout: 20_000 }, async () => {
    const text = await probe([`ws://127.0.0.1:${proxy.addresses[0]!.port}/`, '--form', 'safari']);
    assert.equal(text.code, 0);
    assert.match(text.stdout, /safari +PASS 101 upgraded; text and binary messages echoed/);
    const refused = await probe([`ws://127.0.0.1:${await closedPort()}/`, '--form', 'minimal']);
    assert.equal(refused.code, 1);
    assert.match(refused.stdout, /nothing listens on that host and port/);
    for (const args of [[], ['ftp://x/'], ['ws://x/', '--form', 'lynx'], ['ws://x/', '--idle', 'soon'], ['ws://x/', '--header', 'no-colon']]) {
      const bad = await probe(args);
      assert.equal(bad.code, 2, `${args.join(' ')}: ${bad.stderr}`);
      assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    }
  });
});

describe('probe against a WebSocket-only backend reached without the upgrade', () => {
  test('426 without Sec-WebSocket-Version: the upgrade was lost on the way, not a version problem; text output shows the status once', { timeout: 20_000 }, async () => {
    // A ws-style server answers a plain GET (the upgrade headers dropped by a hop) with a bare 426.
    const plain = await startOrigin({
      name: 'ws-only',
      handler: (_req, res) => {
        res.writeHead(426, { 'Content-Type': 'text/plain' });
        res.end('Upgrade Required');
      },
      onUpgrade: (_req, socket) => {
        socket.end('HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      },
    });
    try {
      const result = await probe([`ws://127.0.0.1:${plain.port}/`, '--form', 'firefox']);
      assert.equal(result.code, 1);
      assert.match(result.stdout, /firefox +FAIL 426 Upgrade Required without Sec-WebSocket-Version: the backend saw a plain HTTP request, so a hop dropped Upgrade\/Connection/);
      assert.doesNotMatch(result.stdout, /another WebSocket version/);
      const refused = await probe([`ws://127.0.0.1:${plain.port}/`, '--form', 'minimal', '--json']);
      assert.match(refused.json!.variants[0]!.diagnosis, /^426 Upgrade Required without Sec-WebSocket-Version/);
    } finally {
      await plain.close();
    }
  });
});

describe('probe through a real nginx', { skip: NGINX === undefined ? 'nginx is not installed' : false }, () => {
  const started: RunningNginx[] = [];
  after(async () => {
    for (const nginx of started) await nginx.close();
  });
  const nginx = async (body: string): Promise<RunningNginx> => {
    const running = await startNginx(body);
    started.push(running);
    return running;
  };

  test('configured right (HTTP/1.1 and the upgrade headers passed): every form passes', { timeout: 30_000 }, async () => {
    const server = await nginx(`
    location / {
      proxy_pass http://127.0.0.1:${origin.port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }`);
    const { code, json } = await probe([`ws://127.0.0.1:${server.port}/`, '--json']);
    assert.equal(code, 0, JSON.stringify(json));
    assert.ok(json!.variants.every((variant) => variant.ok && variant.echo === 'echoed'));
  });

  test('without the upgrade headers the backend answers 200: "treated the upgrade as plain HTTP"', { timeout: 30_000 }, async () => {
    const server = await nginx(`
    location / { proxy_pass http://127.0.0.1:${origin.port}; }`);
    const { code, json } = await probe([`ws://127.0.0.1:${server.port}/`, '--json', '--form', 'chromium', '--form', 'minimal']);
    assert.equal(code, 1);
    for (const variant of json!.variants) {
      assert.equal(variant.status, 200, variant.form);
      assert.match(variant.diagnosis, /answered 200: it treated the upgrade as plain HTTP/);
    }
  });

  test('a strict Connection match (the ^Upgrade$ mistake): only the keep-alive, Upgrade form fails, and the diagnosis says why', { timeout: 30_000 }, async () => {
    const server = await nginx(`
    location / {
      if ($http_connection !~* "^Upgrade$") { return 400; }
      proxy_pass http://127.0.0.1:${origin.port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }`);
    const { code, json } = await probe([`ws://127.0.0.1:${server.port}/`, '--json']);
    assert.equal(code, 1);
    const failed = json!.variants.filter((variant) => !variant.ok).map((variant) => variant.form);
    assert.deepEqual(failed, ['keep-alive-upgrade']);
    assert.equal(json!.variants.find((variant) => variant.form === 'keep-alive-upgrade')?.status, 400);
    assert.match(json!.comparison ?? '', /matches the Connection header strictly/);
  });

  test('a 3 s proxy_read_timeout: --idle finds the cut-off at about 3 s', { timeout: 30_000 }, async () => {
    const server = await nginx(`
    location / {
      proxy_pass http://127.0.0.1:${origin.port};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 3s;
    }`);
    const { code, json, stderr } = await probe([`ws://127.0.0.1:${server.port}/`, '--json', '--form', 'minimal', '--idle', '8s']);
    assert.equal(code, 1, 'an idle cut-off fails the probe');
    const ended = json!.idle?.endedAfterMs ?? 0;
    assert.ok(ended >= 2_500 && ended <= 4_500, `closed after ${ended} ms; stderr ${stderr}`);
    assert.match(json!.idle!.diagnosis, /closed after 3\.\d s idle/);
  });

  test('a backend that is down: 502 "could not reach its backend"', { timeout: 30_000 }, async () => {
    const server = await nginx(`
    location / {
      proxy_pass http://127.0.0.1:${await closedPort()};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
    }`);
    const { code, json } = await probe([`ws://127.0.0.1:${server.port}/`, '--json', '--form', 'firefox']);
    assert.equal(code, 1);
    assert.equal(json!.variants[0]!.status, 502);
    assert.match(json!.variants[0]!.diagnosis, /502: a hop could not reach its backend/);
  });
});
