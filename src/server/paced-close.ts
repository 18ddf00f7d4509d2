import type { DrainConfig } from '../config/model.js';
import type { Closable } from './connection-registry.js';

/**
 * Tunnels told to go at the drain pace: each gets close frames (1001 on
 * shutdown, 1012 on drain) with what is left until `deadline`
 * (performance.now() time) to answer; one that cannot close politely is cut.
 */
export function closeTunnelsAtRate(tunnels: readonly Closable[], pacing: DrainConfig, reason: 'shutdown' | 'drain', deadline: number): () => void {
  return closeAtRate(tunnels, pacing, (tunnel) => {
    if (tunnel.closeGracefully) tunnel.closeGracefully(reason, deadline - performance.now());
    else tunnel.destroy(reason);
  });
}

/**
 * Closes many things at a steady rate instead of all at once, so the clients
 * of closed tunnels do not all reconnect in the same instant: the order is
 * shuffled, slot i falls at i / rate seconds, and each close moves by up to
 * ±jitter/2 of a slot. Returns a cancel function (what is left stays open).
 */
export function closeAtRate<T>(items: readonly T[], pacing: DrainConfig, close: (item: T) => void): () => void {
  if (items.length === 0) return noop;
  if (pacing.rate <= 0) {
    for (const item of items) close(item);
    return noop;
  }
  const slotMs = 1000 / pacing.rate;
  const order = shuffled(items);
  const due = order.map((_, index) => Math.max(0, index * slotMs + (Math.random() - 0.5) * pacing.jitter * slotMs));
  // Jitter can swap neighbours; closing in time order keeps one pointer.
  const schedule = order.map((item, index) => ({ item, at: due[index] ?? 0 })).sort((a, b) => a.at - b.at);
  const start = performance.now();
  let next = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    const elapsed = performance.now() - start;
    while (next < schedule.length && (schedule[next]?.at ?? 0) <= elapsed) close(schedule[next++]!.item);
    if (next < schedule.length) {
      // Timers are not finer than ~1 ms: at high rates each tick closes a batch.
      timer = setTimeout(tick, Math.max(1, (schedule[next]?.at ?? 0) - elapsed));
      timer.unref();
    }
  };
  tick();
  return () => {
    clearTimeout(timer);
    next = schedule.length;
  };
}

function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

function noop(): void {
  // nothing was scheduled
}
