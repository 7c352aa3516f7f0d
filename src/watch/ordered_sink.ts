// A Watch stream's output while the fan-out pool builds some of its responses: one FIFO per stream of
// responses and reserved slots, written to the call strictly in the order they were produced. A slot is
// reserved on the main thread when an entry's events are dispatched (so the congestion decision stays
// synchronous) and filled with the pool's bytes later; whatever the stream sends after it (the next entry's
// events, a progress response, a cancel) waits behind it, so nothing overtakes a pool-built response.
import type { WatchResponseInit } from '../proto/rpc.js';
import { sizeWatchResponse } from '../proto/rpc.js';
import { assert } from '../assert.js';
import type { WatchSink } from './stream.js';
import { GRPC_FRAME_BYTES } from './fanout_encode.js';

/** A sink that also takes responses already framed for gRPC (the in-process gRPC call). */
export interface FramedWatchSink extends WatchSink {
  /** True while write() would return true. */
  readonly writable: boolean;
  /** Sends `messages` gRPC-framed messages that lie back to back in `framed`; same result as write(). */
  writeFramed(framed: Uint8Array, messages: number): boolean;
}

/** True if `sink` can take pre-framed responses (client-process streams cannot: they stay inline). */
export function isFramedSink(sink: WatchSink): sink is FramedWatchSink {
  return typeof (sink as Partial<FramedWatchSink>).writeFramed === 'function';
}

/** Room for pool-built responses in one slot: the framed responses of a run of one stream's watchers. */
export class FanoutSlot {
  /** Framed responses, once the pool built them. */
  bytes: Uint8Array | undefined = undefined;
  /** The same responses as objects, when the pool failed and the main thread sends them the inline way. */
  responses: WatchResponseInit[] | undefined = undefined;
  /** Bytes the responses will take (known when reserved: the congestion accounting counts them at once). */
  size = 0;
  messages = 0;
}

type Entry = FanoutSlot | WatchResponseInit;

/**
 * Wraps one stream's sink:
 *
 *   const out = new OrderedWatchSink(call, 1 << 20);
 *   const slot = out.reserve(bytes);   // main thread, when the entry is dispatched
 *   ...
 *   out.fill(slot, framed);            // when the pool answered: flushes everything that waited
 */
export class OrderedWatchSink implements WatchSink {
  private queue: Entry[] = [];
  private head = 0;
  /** Bytes reserved or queued here and not yet handed to the call. */
  pendingBytes = 0;
  private waiters: (() => void)[] | undefined = undefined;

  constructor(
    readonly inner: FramedWatchSink,
    /** Pending bytes above which the stream counts as congested. */
    private readonly pendingBytesHigh: number,
  ) {}

  get done(): boolean {
    return this.inner.done;
  }

  /** Nothing is waiting for the pool: writes go straight to the call. */
  get empty(): boolean {
    return this.head === this.queue.length;
  }

  /** The stream takes more pool output now (else its watchers catch up later, as when congested). */
  get acceptsMore(): boolean {
    return this.inner.writable && this.pendingBytes < this.pendingBytesHigh;
  }

  write(res: WatchResponseInit): boolean {
    if (this.empty) return this.inner.write(res);
    this.queue.push(res);
    this.pendingBytes += GRPC_FRAME_BYTES + sizeWatchResponse(res);
    return this.acceptsMore;
  }

  drained(): Promise<void> {
    if (this.empty) return this.inner.drained();
    return new Promise<void>((resolve) => (this.waiters ??= []).push(resolve)).then(() => this.inner.drained());
  }

  /** Reserves a slot behind everything queued; addTo() grows it while the entry's plan is built. */
  reserve(): FanoutSlot {
    const slot = new FanoutSlot();
    this.queue.push(slot);
    return slot;
  }

  /** Counts one more response of `bytes` in `slot`. */
  addTo(slot: FanoutSlot, bytes: number): void {
    slot.size += bytes;
    slot.messages++;
    this.pendingBytes += bytes;
  }

  /** The pool built `slot`: writes it and everything behind it up to the next slot still being built. */
  fill(slot: FanoutSlot, framed: Uint8Array): void {
    assert(slot.bytes === undefined && slot.responses === undefined, 'a fan-out slot is filled once');
    assert(framed.length === slot.size, `a fan-out slot holds the bytes reserved for it (${framed.length} vs ${slot.size})`);
    slot.bytes = framed;
    this.flush();
  }

  /** The pool failed `slot`: its responses go out as objects, encoded by the call as inline ones are. */
  fillInline(slot: FanoutSlot, responses: WatchResponseInit[]): void {
    assert(slot.bytes === undefined && slot.responses === undefined, 'a fan-out slot is filled once');
    assert(responses.length === slot.messages, 'the inline fallback sends every response of the slot');
    slot.responses = responses;
    this.flush();
  }

  private flush(): void {
    const q = this.queue;
    while (this.head < q.length) {
      const e = q[this.head];
      if (e instanceof FanoutSlot) {
        if (e.bytes === undefined && e.responses === undefined) break;
        this.pendingBytes -= e.size;
        if (e.bytes !== undefined) {
          if (e.messages > 0) this.inner.writeFramed(e.bytes, e.messages);
        } else {
          for (const res of e.responses!) this.inner.write(res);
        }
      } else {
        this.pendingBytes -= GRPC_FRAME_BYTES + sizeWatchResponse(e);
        this.inner.write(e);
      }
      q[this.head++] = undefined as unknown as Entry;
    }
    if (this.head === q.length) {
      this.queue = [];
      this.head = 0;
      assert(this.pendingBytes === 0, 'an empty fan-out queue holds no bytes');
      const ws = this.waiters;
      this.waiters = undefined;
      if (ws !== undefined) for (const fn of ws) fn();
    } else if (this.head > 1024 && this.head * 2 > q.length) {
      this.queue = q.slice(this.head);
      this.head = 0;
    }
  }
}
