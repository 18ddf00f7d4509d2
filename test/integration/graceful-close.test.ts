/**
 * Graceful close when a closing handshake is already under way: the client's
 * close frame went through, the backend has not answered yet, and the proxy
 * shuts down. The backend must not get a second close frame (RFC 6455 §5.5.1:
 * nothing after a close); the client gets the proxy's 1001. Raw sockets on
 * both ends, so every byte is seen.
 */
import assert from 'node:assert/strict';
import net, { type Socket } from 'node:net';
import { test } from 'node:test';
import { loadConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';
import { startOrigin } from '../helpers/origins.js';
import { waitFor } from '../helpers/raw.js';
import { acceptByHand, clientFrame, handshakeRequest } from '../helpers/websocket-frames.js';

/** Frames in a byte stream: opcode and (for close frames) the code, unmasking if needed. */
function frames(bytes: Buffer): { opcode: number; code?: number }[] {
  const out: { opcode: number; code?: number }[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f;
    const masked = (bytes[at + 1]! & 0x80) !== 0;
    let length = bytes[at + 1]! & 0x7f;
    let header = 2;
    if (length === 126) { length = bytes.readUInt16BE(at + 2); header = 4; }
    const mask = masked ? bytes.subarray(at + header, at + header + 4) : undefined;
    const start = at + header + (masked ? 4 : 0);
    const payload = Buffer.from(bytes.subarray(start, start + length));
    if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
    out.push(opcode === 8 && payload.length >= 2 ? { opcode, code: payload.readUInt16BE(0) } : { opcode });
    at = start + length;
  }
  return out;
}

test('shutdown while the client\'s close awaits the backend\'s answer: the backend gets exactly one close, the client gets 1001', { timeout: 10_000 }, async () => {
  let backendBytes = Buffer.alloc(0);
  const held = new Set<Socket>();
  const origin = await startOrigin({
    onUpgrade: (req, socket) => {
      held.add(socket);
      socket.on('close', () => held.delete(socket));
      socket.on('data', (chunk: Buffer) => { backendBytes = Buffer.concat([backendBytes, chunk]); });
      socket.on('end', () => socket.end());
      acceptByHand(req, socket);
    },
  });
  const yaml = `
listeners:
  - address: 127.0.0.1:0
sites:
  - routes:
      - to: ${origin.url}
drain: { rate: 0 }
`;
  const proxy = await Switchyard.start(loadConfigText(yaml, 'graceful-close.yaml', { env: {}, defaultSecret: 'graceful-close-secret-0123456789' }).config, silentLogger());
  const client = net.connect(proxy.addresses[0]!.port, '127.0.0.1');
  client.on('error', () => undefined);
  let clientBytes = Buffer.alloc(0);
  client.on('data', (chunk: Buffer) => { clientBytes = Buffer.concat([clientBytes, chunk]); });
  try {
    client.write(handshakeRequest('/ws', '127.0.0.1'));
    await waitFor(() => clientBytes.includes('\r\n\r\n'), 3_000, 'the 101');
    const headEnd = clientBytes.indexOf('\r\n\r\n') + 4;
    const code = Buffer.alloc(2);
    code.writeUInt16BE(1000);
    client.write(clientFrame(0x8, code));
    await waitFor(() => frames(backendBytes).length === 1, 2_000, 'the client\'s close at the backend');
    const stopped = proxy.shutdown(2_000);
    await waitFor(() => frames(clientBytes.subarray(headEnd)).length === 1, 2_000, 'the proxy\'s close at the client');
    assert.deepEqual(frames(clientBytes.subarray(headEnd)), [{ opcode: 8, code: 1001 }]);
    assert.equal((clientBytes[headEnd + 1] ?? 0) & 0x80, 0, 'unmasked toward the client');
    await stopped;
    await waitFor(() => held.size === 0, 3_000, 'the backend connection to end');
    assert.deepEqual(frames(backendBytes), [{ opcode: 8, code: 1000 }], 'one close frame only: the client\'s');
  } finally {
    client.destroy();
    await proxy.shutdown(0);
    await origin.close();
  }
});
