// ReadIndex bookkeeping on the leader: read requests waiting for a heartbeat round to confirm that the
// leader was still the leader when they arrived. An ack for a later request confirms every earlier one,
// so one round serves all requests queued at the time.

import type { Message, NodeId } from './types.js';
import type { ReadOnlyOption } from './types.js';

/** A queued read request: the index it will read at and who confirmed leadership for it so far. */
export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Map<NodeId, boolean>;
}

/** Turns a request context into a map key (contexts are short; compared byte for byte). */
function ctxKey(ctx: Uint8Array): string {
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i]);
  return s;
}

/** Pending ReadIndex requests, in arrival order. */
export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];
  private queueHead = 0;

  constructor(readonly option: ReadOnlyOption) {}

  /** Number of requests waiting. */
  get size(): number {
    return this.queue.length - this.queueHead;
  }

  /** Queues request m (its context is m.entries[0].data) to be answered at `index`. Duplicates are ignored. */
  addRequest(index: number, m: Message): void {
    const key = ctxKey(m.entries[0].data);
    if (this.pending.has(key)) return;
    this.pending.set(key, { index, req: m, acks: new Map() });
    this.queue.push(key);
  }

  /** Records that `id` acknowledged the heartbeat carrying ctx; returns the acks so far (undefined if unknown). */
  recvAck(id: NodeId, ctx: Uint8Array): Map<NodeId, boolean> | undefined {
    const rs = this.pending.get(ctxKey(ctx));
    if (rs === undefined) return undefined;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /**
   * Leadership is confirmed for the request with context ctx: it and every request queued before it are
   * released, in order. Returns [] when ctx is unknown.
   */
  advance(ctx: Uint8Array): ReadIndexStatus[] {
    const key = ctxKey(ctx);
    if (!this.pending.has(key)) return [];
    const out: ReadIndexStatus[] = [];
    while (this.queueHead < this.queue.length) {
      const k = this.queue[this.queueHead++];
      const rs = this.pending.get(k)!;
      this.pending.delete(k);
      out.push(rs);
      if (k === key) break;
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    return out;
  }

  /** The context of the newest pending request (heartbeats carry it), or undefined. */
  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === this.queueHead) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1])!.req.entries[0].data;
  }
}
