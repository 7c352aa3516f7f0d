// The bounded window of MsgApps sent to one follower and not yet acknowledged (flow control while
// replicating optimistically): a ring buffer of the last index each in-flight message carried.

import { RaftInvariantError } from './errors.js';

/**
 * At most `size` in-flight messages, in send order (indexes increase). Full() pauses replication to that
 * follower until an acknowledgement frees slots.
 */
export class Inflights {
  private start = 0;
  private count = 0;
  /** Grows on demand up to size, so idle followers cost little. */
  private buffer: number[] = [];

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size <= 0) throw new RaftInvariantError(`inflights size must be > 0, got ${size}`);
  }

  /** A deep copy. */
  clone(): Inflights {
    const c = new Inflights(this.size);
    c.start = this.start;
    c.count = this.count;
    c.buffer = this.buffer.slice();
    return c;
  }

  /** Records a message whose last entry has index `inflight`. Must not be full. */
  add(inflight: number): void {
    if (this.full()) throw new RaftInvariantError('cannot add into a full inflights');
    let next = this.start + this.count;
    if (next >= this.size) next -= this.size;
    if (next >= this.buffer.length) this.grow();
    this.buffer[next] = inflight;
    this.count++;
  }

  private grow(): void {
    let newSize = this.buffer.length * 2;
    if (newSize === 0) newSize = 1;
    else if (newSize > this.size) newSize = this.size;
    const nb = new Array<number>(newSize).fill(0);
    for (let i = 0; i < this.buffer.length; i++) nb[i] = this.buffer[i];
    this.buffer = nb;
  }

  /** Frees every in-flight message whose index is ≤ to (they were acknowledged). */
  freeLE(to: number): void {
    if (this.count === 0 || to < this.buffer[this.start]) return;
    let idx = this.start;
    let i = 0;
    for (; i < this.count; i++) {
      if (to < this.buffer[idx]) break;
      idx++;
      if (idx >= this.size) idx -= this.size;
    }
    this.count -= i;
    this.start = idx;
    if (this.count === 0) this.start = 0;
  }

  /** Frees the oldest in-flight message (a heartbeat response proves the follower is alive). */
  freeFirstOne(): void {
    if (this.count === 0) return;
    this.freeLE(this.buffer[this.start]);
  }

  full(): boolean {
    return this.count === this.size;
  }

  /** Number of messages in flight. */
  countInflight(): number {
    return this.count;
  }

  /** Frees everything. */
  reset(): void {
    this.count = 0;
    this.start = 0;
  }
}
