import { AggregatorRegistry } from 'prom-client';
import type { Switchyard } from '../server/switchyard.js';
import type { ReloadOutcome } from './admin-backend.js';
import type { AdminReplyMessage, AdminRequestMessage } from './cluster-admin-backend.js';
import { describeTunnels, takeSnapshot } from './snapshot.js';

/**
 * A worker's side of the cluster admin API: answers the primary's requests
 * about this worker's traffic, and lets prom-client's cluster aggregation
 * collect this worker's metrics.
 */
export function answerAdminRequests(proxy: Switchyard, reload: (() => ReloadOutcome) | undefined): void {
  AggregatorRegistry.setRegistries([proxy.observer.metrics.registry]);
  // Constructing one installs prom-client's worker-side metrics listener.
  new AggregatorRegistry();
  process.on('message', (message: AdminRequestMessage) => {
    if (message?.type !== 'switchyard:admin') return;
    const { request } = message;
    let result: unknown;
    switch (request.op) {
      case 'snapshot': result = takeSnapshot(proxy); break;
      case 'tunnels': result = describeTunnels(proxy); break;
      case 'drain': result = request.drain ? proxy.drainServer(request.upstream, request.server) : proxy.undrainServer(request.upstream, request.server); break;
      case 'close-tunnel': result = proxy.closeTunnel(request.id); break;
      case 'drain-route': result = proxy.drainRoute(request.route); break;
      case 'reload': result = reload ? reload() : { ok: false, errors: ['not started from a config file'] }; break;
    }
    process.send?.({ type: 'switchyard:admin-reply', id: message.id, result } satisfies AdminReplyMessage);
  });
}
