import { randomBytes } from 'node:crypto';
import { withDefaults, type SwitchyardConfigInput } from '../../src/config/model.js';
import { silentLogger } from '../../src/log/logger.js';
import { Switchyard } from '../../src/server/switchyard.js';

export interface TestProxy {
  readonly proxy: Switchyard;
  readonly port: number;
  /** http://127.0.0.1:PORT (https:// with TLS) */
  readonly url: string;
  /** ws://127.0.0.1:PORT (wss:// with TLS) */
  readonly wsUrl: string;
  close(): Promise<void>;
}

export type TestProxyInput = Omit<SwitchyardConfigInput, 'listeners' | 'upstream'> & {
  servers: readonly string[];
  upstream?: Omit<SwitchyardConfigInput['upstream'], 'servers'>;
  tls?: { cert: string | Buffer; key: string | Buffer };
};

/** Starts Switchyard in this process on 127.0.0.1:0 with a silent logger. */
export async function startProxy(input: TestProxyInput): Promise<TestProxy> {
  const config = withDefaults({
    listeners: [{ host: '127.0.0.1', port: 0, ...(input.tls ? { tls: input.tls } : {}) }],
    upstream: { ...input.upstream, servers: input.servers },
    ...(input.timeouts ? { timeouts: input.timeouts } : {}),
    ...(input.limits ? { limits: input.limits } : {}),
  }, () => randomBytes(16).toString('hex'));
  const proxy = await Switchyard.start(config, silentLogger());
  const port = proxy.addresses[0]!.port;
  const secure = Boolean(input.tls);
  return {
    proxy,
    port,
    url: `${secure ? 'https' : 'http'}://127.0.0.1:${port}`,
    wsUrl: `${secure ? 'wss' : 'ws'}://127.0.0.1:${port}`,
    close: () => proxy.shutdown(0),
  };
}
