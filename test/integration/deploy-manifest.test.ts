/**
 * deploy/kubernetes/switchyard.yaml and the Dockerfile (docs/operations.md):
 * the config in the ConfigMap loads as `switchyard check` would load it, and
 * the manifest's numbers agree with it (the grace period outlasts the drain).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { loadConfigText } from '../../src/config/load.js';
import { REPO_ROOT } from '../helpers/cli.js';

const MANIFEST = join(REPO_ROOT, 'deploy', 'kubernetes', 'switchyard.yaml');

interface Manifest {
  kind: string;
  data?: Record<string, string>;
  spec?: { template?: { spec?: { terminationGracePeriodSeconds?: number; containers?: { args?: string[]; env?: { name: string }[]; lifecycle?: { preStop?: { exec?: { command?: string[] } } } }[] } } };
}

function documents(): Manifest[] {
  return parseAllDocuments(readFileSync(MANIFEST, 'utf8')).map((document) => document.toJS() as Manifest);
}

test('the ConfigMap\'s config loads with the secrets the Deployment passes in, and uses PROXY protocol, a shared sticky secret and drain settings', { timeout: 5_000 }, () => {
  const configMap = documents().find((document) => document.kind === 'ConfigMap');
  const text = configMap?.data?.['switchyard.yaml'];
  assert.ok(text, 'the ConfigMap holds switchyard.yaml');
  const env = { SWITCHYARD_SECRET: 'a'.repeat(64), SWITCHYARD_ADMIN_TOKEN: 'b'.repeat(48) };
  const { config } = loadConfigText(text, 'switchyard.yaml', { env, defaultSecret: 'unused-default-secret-0123456789' });
  assert.deepEqual(config.listeners[0]?.proxyProtocolFrom, ['10.0.0.0/24', '10.0.1.0/24']);
  assert.equal(config.upstreams.get('realtime')?.stickySecret, env.SWITCHYARD_SECRET);
  assert.equal(config.admin?.token, env.SWITCHYARD_ADMIN_TOKEN);
  assert.equal(config.drain.rate, 200);
  const deployment = documents().find((document) => document.kind === 'Deployment');
  const pod = deployment?.spec?.template?.spec;
  const container = pod?.containers?.[0];
  assert.deepEqual(container?.env?.map((variable) => variable.name).sort(), Object.keys(env).sort());
  const preStopSeconds = Number(container?.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
  assert.ok((pod?.terminationGracePeriodSeconds ?? 0) > config.timeouts.drainMs / 1000 + preStopSeconds,
    `grace ${pod?.terminationGracePeriodSeconds}s must outlast drain ${config.timeouts.drainMs / 1000}s + preStop ${preStopSeconds}s`);
  assert.deepEqual(container?.args?.slice(0, 3), ['run', '-c', '/etc/switchyard/switchyard.yaml']);
});

test('the Dockerfile runs the CLI the manifest calls, as a non-root user, with the config path the manifest mounts', { timeout: 5_000 }, () => {
  const dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
  assert.match(dockerfile, /^ENTRYPOINT \["node", "bin\/switchyard\.js"\]$/m);
  assert.match(dockerfile, /^CMD \["run", "-c", "\/etc\/switchyard\/switchyard\.yaml"\]$/m);
  assert.match(dockerfile, /^USER node$/m);
  assert.match(dockerfile, /^FROM node:20/m);
});
