import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { requestHeadWithoutUpgrade } from '../../src/server/replay.js';

test('requestHeadWithoutUpgrade drops Upgrade and the upgrade token, keeps everything else', { timeout: 5_000 }, async () => {
  const server = http.createServer();
  const seen = new Promise<IncomingMessage>((resolve) => server.on('upgrade', (req: IncomingMessage, socket: net.Socket) => {
    resolve(req);
    socket.destroy();
  }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  client.on('error', () => undefined);
  client.write('POST /p?q=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAA\r\nX-Cafe: caf\xe9\r\nContent-Length: 0\r\n\r\n', 'latin1');
  const req = await seen;
  server.close();
  client.destroy();
  assert.equal(
    requestHeadWithoutUpgrade(req).toString('latin1'),
    'POST /p?q=1 HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, HTTP2-Settings\r\nHTTP2-Settings: AAA\r\nX-Cafe: caf\xe9\r\nContent-Length: 0\r\n\r\n',
  );
});
