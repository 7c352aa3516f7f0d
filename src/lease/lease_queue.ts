// A min-heap of (lease ID, time in ms) with one entry per lease: etcd's LeaseExpiredNotifier and its
// checkpoint heap in one shape. Updating a lease's time moves its entry instead of adding a second one,
// so the heap never holds more entries than there are leases.

/** One scheduled time of one lease. */
export interface LeaseTime {
  readonly id: bigint;
  timeMs: number;
}

/**
 * Leases ordered by a time (expiry, or the next checkpoint).
 *
 *   const q = new LeaseQueue();
 *   q.upsert(7n, now + 5000);
 *   while (q.size > 0 && q.peek()!.timeMs <= now) handle(q.pop()!.id);
 */
export class LeaseQueue {
  private readonly heap: LeaseTime[] = [];
  private readonly pos = new Map<bigint, number>();

  get size(): number {
    return this.heap.length;
  }

  /** The earliest entry, or undefined. */
  peek(): LeaseTime | undefined {
    return this.heap[0];
  }

  /** Schedules `id` at `timeMs`, moving its entry if it has one. */
  upsert(id: bigint, timeMs: number): void {
    const i = this.pos.get(id);
    if (i === undefined) {
      this.heap.push({ id, timeMs });
      this.pos.set(id, this.heap.length - 1);
      this.up(this.heap.length - 1);
      return;
    }
    const old = this.heap[i].timeMs;
    this.heap[i].timeMs = timeMs;
    if (timeMs < old) this.up(i);
    else this.down(i);
  }

  /** Removes and returns the earliest entry. */
  pop(): LeaseTime | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    this.removeAt(0);
    return top;
  }

  /** Forgets `id` (no-op if it is not scheduled). */
  remove(id: bigint): void {
    const i = this.pos.get(id);
    if (i !== undefined) this.removeAt(i);
  }

  has(id: bigint): boolean {
    return this.pos.has(id);
  }

  clear(): void {
    this.heap.length = 0;
    this.pos.clear();
  }

  private removeAt(i: number): void {
    const h = this.heap;
    const last = h.pop()!;
    this.pos.delete(h.length === i ? last.id : h[i].id);
    if (i === h.length) return;
    h[i] = last;
    this.pos.set(last.id, i);
    this.down(i);
    this.up(i);
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p].timeMs <= h[i].timeMs) return;
      this.swap(i, p);
      i = p;
    }
  }

  private down(i: number): void {
    const h = this.heap;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && h[l].timeMs < h[m].timeMs) m = l;
      if (r < h.length && h[r].timeMs < h[m].timeMs) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  private swap(a: number, b: number): void {
    const h = this.heap;
    const t = h[a];
    h[a] = h[b];
    h[b] = t;
    this.pos.set(h[a].id, a);
    this.pos.set(h[b].id, b);
  }
}
