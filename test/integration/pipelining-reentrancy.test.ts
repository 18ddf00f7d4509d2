import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { describe, test } from 'node:test';
import { startOrigin } from '../helpers/origins.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { connectRaw, sleep, waitFor } from '../helpers/raw.js';

/*
 * HTTP/1.1 pipelining with responses that come back from the upstream out of
 * order. Node's HTTP server keeps a later pipelined response in memory until
 * the ones before it are sent, and every write to it synchronously emits
 * 'drain' on the response currently being sent (http_server
 * updateOutgoingData -> socketOnDrain), even if that connection is not drained.
 * That write happens inside undici's parser callback for the later exchange
 * (onData/onComplete), so a 'drain' handler that resumes the earlier exchange's
 * undici parser right there re-enters undici's per-process llhttp parser:
 * assert(currentParser === null) throws, undici aborts the later exchange as an
 * upstream failure, and the earlier one stays paused for good.
 */

function pipelined(paths: readonly string[]): string {
  return paths.map((path) => `GET ${path} HTTP/1.1\r\nHost: pipelining.test\r\n\r\n`).join('');
}

function theServer(proxy: TestProxy): { ejectedUntil: number } {
  const pool = [...proxy.proxy.runtime.pools.values()][0]!;
  return pool.servers[0]!;
}

describe('pipelined requests answered out of order by the upstream', () => {
  test('a slow reader gets the whole first response, then the pipelined one', { timeout: 10_000 }, async () => {
    // Far more than the buffers between origin, proxy and client hold, so the
    // proxy has to wait for 'drain' on the first response while the client sleeps.
    const bigSize = 16 * 1024 * 1024;
    let bigAnswer: ServerResponse | undefined;
    let smallAnswer: ServerResponse | undefined;
    const origin = await startOrigin({
      handler: (req, res) => {
        if (req.url !== '/big') {
          smallAnswer = res;
          return;
        }
        bigAnswer = res;
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(bigSize) });
        res.end(Buffer.alloc(bigSize, 'a'));
      },
    });
    const proxy = await startProxy({ servers: [origin.url] });
    let client: Socket | undefined;
    try {
      client = await connectRaw(proxy.port);
      client.pause();
      let received = 0;
      let tail = '';
      let closed = false;
      client.on('data', (chunk: Buffer) => {
        received += chunk.length;
        tail = (tail + chunk.subarray(-512).toString('latin1')).slice(-512);
      });
      client.on('close', () => { closed = true; });
      client.on('error', () => undefined);
      client.write(pipelined(['/big', '/small']));
      await waitFor(() => bigAnswer !== undefined && smallAnswer !== undefined, 2_000, 'both requests to reach the origin');
      // The big response stops flowing: the proxy waits for 'drain' from the client.
      let unchangedFor = 0;
      let lastPending = -1;
      await waitFor(() => {
        const pending = bigAnswer!.writableLength;
        unchangedFor = pending === lastPending ? unchangedFor + 1 : 0;
        lastPending = pending;
        return pending > 0 && unchangedFor >= 10;
      }, 3_000, 'the big response to stall while the client does not read');
      // Only now the second response: the proxy holds it back behind the first.
      smallAnswer!.end('small');
      await sleep(100);
      client.resume();
      const complete = (): boolean => received > bigSize && /\r\n\r\nsmall$/.test(tail);
      try {
        await waitFor(() => complete() || closed, 3_000, 'both responses');
      } catch {
        // Reported below with what arrived.
      }
      assert.ok(complete(), `expected the ${bigSize}-byte response and then "small"; got ${received} bytes in total, connection ${closed ? 'closed' : 'still open'}, ending ${JSON.stringify(tail.slice(-60))}`);
      assert.equal(theServer(proxy).ejectedUntil, 0, 'a healthy upstream must not be ejected');
    } finally {
      client?.destroy();
      await proxy.close();
      await origin.close();
    }
  });

  test('a client hanging up on pipelined requests is no upstream failure', { timeout: 10_000 }, async () => {
    let held: ServerResponse[] = [];
    const origin = await startOrigin({ handler: (_req, res) => { held.push(res); } });
    const proxy = await startProxy({ servers: [origin.url] });
    try {
      const server = theServer(proxy);
      for (let round = 0; round < 10; round++) {
        const client = await connectRaw(proxy.port);
        client.on('error', () => undefined);
        client.write(pipelined(Array.from({ length: 10 }, (_, i) => `/${round}/${i}`)));
        await waitFor(() => held.length === 10, 2_000, 'the origin to hold the 10 requests');
        const answers = held;
        held = [];
        // The upstream answers all of them just as the client hangs up: the
        // proxy sees the reset and the 10 responses in the same event-loop turn.
        client.resetAndDestroy();
        for (const res of answers) res.end('ok');
        await sleep(20);
        assert.equal(server.ejectedUntil, 0, `round ${round}: the client's hang-up got the upstream ejected as failed`);
      }
    } finally {
      await proxy.close();
      await origin.close();
    }
  });
});
