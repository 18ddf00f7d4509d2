import { withDefaults } from '../config/model.js';
import { randomBytes } from 'node:crypto';
import { describeStart, runProxy } from '../server/run.js';
import { startDemoOrigin } from './demo-origin.js';
import { ProxyError } from '../errors.js';

/** `npm start`: the demo origin on a free loopback port, behind Switchyard on 127.0.0.1:PORT (8080). */
export async function runDemo(argv: readonly string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log('Usage: switchyard demo\n\nStarts a demo chat origin on a free loopback port and Switchyard in front of it on 127.0.0.1:8080 (env PORT, HOST to change).');
    return 0;
  }
  const port = process.env.PORT === undefined ? 8080 : Number(process.env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ProxyError('SY_USAGE', `PORT=${process.env.PORT}: expected a port number`);
  const host = process.env.HOST ?? '127.0.0.1';
  const origin = await startDemoOrigin();
  const config = withDefaults({ listeners: [{ host, port }], upstream: { servers: [origin.url] } }, () => randomBytes(32).toString('base64url'));
  try {
    return await runProxy(config, {
      onListening: (addresses) => {
        console.log(describeStart(addresses, config));
        const first = addresses[0];
        if (first) console.log(`demo: open http://${first.host}:${first.port}/ in a browser (origin at ${origin.url})`);
      },
    });
  } finally {
    await origin.close();
  }
}
