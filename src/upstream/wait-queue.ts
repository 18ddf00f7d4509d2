/** One request waiting for a server below its connection limit. */
export interface Waiter {
  /** Capacity may have freed up: try to select again. */
  ready(): void;
  /** Waited too long. */
  expired(): void;
}

/**
 * The bounded queue of requests waiting for capacity (HAProxy's `maxconn` +
 * `timeout queue`): first come, first served; a full queue refuses at once.
 */
export class WaitQueue {
  private readonly waiting: { waiter: Waiter; timer: NodeJS.Timeout }[] = [];

  constructor(private readonly size: number, private readonly timeoutMs: number) {}

  get length(): number {
    return this.waiting.length;
  }

  /** false when the queue is full (or disabled). */
  enqueue(waiter: Waiter): boolean {
    if (this.waiting.length >= this.size) return false;
    const entry = { waiter, timer: setTimeout(() => this.expire(entry), this.timeoutMs) };
    this.waiting.push(entry);
    return true;
  }

  /** Removes a waiter that gave up (its client left). */
  remove(waiter: Waiter): void {
    const index = this.waiting.findIndex((entry) => entry.waiter === waiter);
    if (index < 0) return;
    clearTimeout(this.waiting[index]!.timer);
    this.waiting.splice(index, 1);
  }

  /** Wakes the longest-waiting request, if any. */
  wakeOne(): void {
    const entry = this.waiting.shift();
    if (!entry) return;
    clearTimeout(entry.timer);
    entry.waiter.ready();
  }

  clear(): void {
    for (const entry of this.waiting.splice(0)) {
      clearTimeout(entry.timer);
      entry.waiter.expired();
    }
  }

  private expire(entry: { waiter: Waiter; timer: NodeJS.Timeout }): void {
    const index = this.waiting.indexOf(entry);
    if (index < 0) return;
    this.waiting.splice(index, 1);
    entry.waiter.expired();
  }
}
