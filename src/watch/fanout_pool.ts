// Watch fan-out on the worker threads (--worker-threads N, --watch-pool-min-watchers M): when an applied
// entry's changes match at least M synced watchers, the main thread decides who gets what (matching and
// congestion stay synchronous here), writes the plan and the encoded events once into a SharedArrayBuffer
// and the pool's threads build every watcher's framed WatchResponse; the main thread then hands each
// stream its bytes in one write. Per-stream FIFOs (ordered_sink.ts) keep every later response behind them.
// Limits: tasks and bytes in flight (past them an entry is sent inline); a failed task is sent inline.
import { Piscina } from 'piscina';
import type { MvccEvent } from '../mvcc/index.js';
import { encodeResponseHeader, type ResponseHeaderInit } from '../proto/rpc.js';
import { encodeEvent } from '../proto/kv.js';
import { PlanBuilder, framedResponseBytes, eventFieldBytes, slotOffsetWords, slotResponses, type FanoutTask } from './fanout_encode.js';
import { OrderedWatchSink, isFramedSink, type FanoutSlot } from './ordered_sink.js';
import type { WatchSink } from './stream.js';
import type { Watcher, WatcherOwner } from './watcher.js';

/** What runs fan-out tasks: the Piscina pool, or a fake in tests. */
export interface FanoutRunner {
  readonly threads: number;
  /** Builds a task's slots; `transfer`: task.input is an ArrayBuffer to move, not share. */
  run(task: FanoutTask, transfer: boolean): Promise<ArrayBuffer>;
  close(): Promise<void>;
}

/** Limits and shape of the fan-out pool. */
export interface WatchFanoutLimits {
  /** Matched watchers of one entry from which its responses are built on the pool (--watch-pool-min-watchers). */
  watchersMin: number;
  /** Pool input and output bytes in flight at once; an entry that would pass it is sent inline. */
  inflightBytesMax: number;
  /** Tasks in flight at once; past it entries are sent inline. */
  tasksInflightMax: number;
  /** Bytes waiting in one stream's FIFO above which it takes no more pool output (its watchers catch up later). */
  streamPendingBytesHigh: number;
  /** An entry is split over the threads only if each task gets at least this many watchers. */
  taskWatchersMin: number;
  /** 'shared': the plan in one SharedArrayBuffer every task reads; 'transfer': a copy per task, moved to the thread. */
  input: 'shared' | 'transfer';
}

export const WATCH_FANOUT_DEFAULTS: WatchFanoutLimits = {
  watchersMin: 1000,
  inflightBytesMax: 64 << 20,
  tasksInflightMax: 64,
  streamPendingBytesHigh: 1 << 20,
  taskWatchersMin: 256,
  input: 'shared',
};

/** Entries and tasks the pool saw, for tests and the bench. */
export interface WatchFanoutStats {
  /** Entries whose responses the pool built. */
  pooledEntries: number;
  /** Entries over the threshold sent inline because a limit (tasks, bytes) was reached. */
  limitedEntries: number;
  tasks: number;
  /** Tasks the pool failed (threw, or its thread died): their responses were sent inline. */
  failedTasks: number;
}

interface Pending {
  readonly task: FanoutTask;
  /** The plan as the main thread keeps it (the task's own copy may have been moved away). */
  readonly input: SharedArrayBuffer | ArrayBuffer;
  readonly slots: FanoutSlot[];
  readonly sinks: OrderedWatchSink[];
  readonly rev: number;
  readonly bytes: number;
}

/** The per-slot part of an entry's plan while it is built. */
interface SlotPlan {
  readonly out: OrderedWatchSink;
  readonly slot: FanoutSlot;
  readonly ids: number[];
  readonly events: number[][];
}

/**
 * Builds watch responses on a thread pool for large fan-outs.
 *
 *   const fanout = new WatchFanout(startFanoutThreads(2), (rev) => header(rev), { ...WATCH_FANOUT_DEFAULTS, watchersMin: 100 });
 *   const hub = new WatchHub(store, sched, limits, fanout);
 *   const out = fanout.wrap(sink); const ws = new WatchStream(hub, out, opts); fanout.register(ws, out);
 */
export class WatchFanout {
  private readonly outputs = new WeakMap<WatcherOwner, OrderedWatchSink>();
  inflightBytes = 0;
  tasksInflight = 0;
  readonly stats: WatchFanoutStats = { pooledEntries: 0, limitedEntries: 0, tasks: 0, failedTasks: 0 };
  private idleWaiters: (() => void)[] | undefined = undefined;
  private closing = false;

  constructor(
    private readonly runner: FanoutRunner,
    private readonly header: (rev: number) => ResponseHeaderInit,
    readonly limits: WatchFanoutLimits = WATCH_FANOUT_DEFAULTS,
    /** Told of every failed task (the member logs it); its responses were sent inline. */
    private readonly onTaskFailed: (err: unknown) => void = () => {},
  ) {}

  /** A stream's sink as the stream should write to it: ordered behind pool output if it takes framed bytes. */
  wrap(sink: WatchSink): WatchSink {
    return isFramedSink(sink) ? new OrderedWatchSink(sink, this.limits.streamPendingBytesHigh) : sink;
  }

  /** The stream `owner` writes to `sink` (what wrap() returned); its watchers may then go to the pool. */
  register(owner: WatcherOwner, sink: WatchSink): void {
    if (sink instanceof OrderedWatchSink) this.outputs.set(owner, sink);
  }

  /** Resolves once no task is in flight (tests, shutdown). */
  idle(): Promise<void> {
    if (this.tasksInflight === 0) return Promise.resolve();
    return new Promise((resolve) => (this.idleWaiters ??= []).push(resolve));
  }

  /** Stops the threads; tasks still out are sent inline (without a warning: the member is stopping). */
  close(): Promise<void> {
    this.closing = true;
    return this.runner.close();
  }

  /**
   * One applied entry's matched watchers and their events at `rev`. False: send them inline (too few, or a
   * limit is reached; nothing was done). True: every watcher was handled as WatchHub.notify would (sent,
   * reserved on the pool, or `demote`d because its stream is congested).
   */
  dispatch(rev: number, batches: ReadonlyMap<Watcher, readonly MvccEvent[]>, demote: (w: Watcher) => void): boolean {
    const lim = this.limits;
    if (batches.size < lim.watchersMin) return false;
    if (this.tasksInflight >= lim.tasksInflightMax) {
      this.stats.limitedEntries++;
      return false;
    }
    // Pass 1, without side effects: each event encoded once, each watcher's event indices and an estimate
    // of the bytes in flight.
    const enc = new EntryEncodings();
    const header = encodeResponseHeader(this.header(rev));
    const indices: number[][] = new Array(batches.size);
    let estimate = 0;
    let i = 0;
    for (const [w, evs] of batches) {
      const ix = enc.indicesOf(evs, w.prevKv);
      indices[i++] = ix;
      estimate += framedResponseBytes(header.length, w.id, enc.fieldBytesOf(ix)) + 8 * (2 + ix.length);
    }
    if (this.inflightBytes + estimate + enc.bytes > lim.inflightBytesMax) {
      this.stats.limitedEntries++;
      return false;
    }
    // Pass 2: route each watcher as notify() would, in the same order; pool watchers of one stream share
    // a slot until an inline response of that stream comes between.
    const slots: SlotPlan[] = [];
    const open = new Map<OrderedWatchSink, SlotPlan>();
    let watchers = 0;
    i = 0;
    for (const [w, evs] of batches) {
      const ix = indices[i++];
      if (w.canceled) continue;
      const out = this.outputs.get(w.owner);
      if (out === undefined || (w.fragment && evs.length > 1)) {
        // A stream without framed writes, or a response etcd may split: the inline way, queued in order.
        if (out !== undefined) open.delete(out);
        if (w.owner.sendEvents(w, evs, rev)) w.minRev = rev + 1;
        else demote(w);
        continue;
      }
      if (w.owner.congested || !out.acceptsMore) {
        // Congested, or its FIFO is full: it catches up (inline, behind the FIFO) once the stream drained.
        demote(w);
        continue;
      }
      w.minRev = rev + 1;
      if (out.done) continue; // the call is over: as inline, nothing to send
      let sp = open.get(out);
      if (sp === undefined) {
        sp = { out, slot: out.reserve(), ids: [], events: [] };
        open.set(out, sp);
        slots.push(sp);
      }
      sp.ids.push(w.id);
      sp.events.push(ix);
      out.addTo(sp.slot, framedResponseBytes(header.length, w.id, enc.fieldBytesOf(ix)));
      w.lastSentRev = rev;
      w.sentSinceProgress = true;
      watchers++;
    }
    if (slots.length === 0) return true;
    const plan = new PlanBuilder(header, enc.encodings);
    for (const sp of slots) {
      plan.openSlot();
      for (let k = 0; k < sp.ids.length; k++) plan.addWatcher(sp.ids[k], sp.events[k]);
    }
    const transfer = lim.input === 'transfer';
    const input = plan.write(transfer ? new ArrayBuffer(plan.inputBytes) : new SharedArrayBuffer(plan.inputBytes));
    this.stats.pooledEntries++;
    // Split over the threads by watchers, each task a run of whole slots.
    const taskRoom = lim.tasksInflightMax - this.tasksInflight;
    const tasks = Math.max(1, Math.min(this.runner.threads, Math.floor(watchers / lim.taskWatchersMin), slots.length, taskRoom));
    let from = 0;
    let assigned = 0;
    for (let t = 0; t < tasks && from < slots.length; t++) {
      const goal = t === tasks - 1 ? Number.POSITIVE_INFINITY : Math.ceil(((t + 1) * watchers) / tasks);
      let to = from;
      do assigned += slots[to++].ids.length;
      while (to < slots.length && assigned < goal);
      const part = slots.slice(from, to);
      let bytes = transfer ? plan.inputBytes : 0;
      if (t === 0) bytes += plan.inputBytes;
      for (const sp of part) bytes += sp.slot.size;
      const task: FanoutTask = { input: transfer ? (input as ArrayBuffer).slice(0) : input, slotFrom: from, slotTo: to };
      this.start({ task, input, slots: part.map((sp) => sp.slot), sinks: part.map((sp) => sp.out), rev, bytes });
      from = to;
    }
    return true;
  }

  private start(p: Pending): void {
    this.tasksInflight++;
    this.inflightBytes += p.bytes;
    this.stats.tasks++;
    let ran: Promise<ArrayBuffer>;
    try {
      ran = this.runner.run(p.task, this.limits.input === 'transfer');
    } catch (err) {
      ran = Promise.reject(err);
    }
    ran.then(
      (res) => this.finished(p, res),
      (err: unknown) => this.failed(p, err),
    );
  }

  private finished(p: Pending, res: ArrayBuffer): void {
    const n = p.slots.length;
    const off = new Uint32Array(res, 0, slotOffsetWords(n));
    for (let s = 0; s < n; s++) p.sinks[s].fill(p.slots[s], Buffer.from(res, off[s], off[s + 1] - off[s]));
    this.settle(p);
  }

  /** The thread threw or died: the same responses go out the inline way, in the same place of each FIFO. */
  private failed(p: Pending, err: unknown): void {
    this.stats.failedTasks++;
    const responses = slotResponses({ input: p.input, slotFrom: p.task.slotFrom, slotTo: p.task.slotTo }, this.header(p.rev));
    for (let s = 0; s < p.slots.length; s++) p.sinks[s].fillInline(p.slots[s], responses[s]);
    this.settle(p);
    if (!this.closing) this.onTaskFailed(err);
  }

  private settle(p: Pending): void {
    this.tasksInflight--;
    this.inflightBytes -= p.bytes;
    if (this.tasksInflight === 0 && this.idleWaiters !== undefined) {
      const ws = this.idleWaiters;
      this.idleWaiters = undefined;
      for (const fn of ws) fn();
    }
  }
}

/** One entry's event encodings, each made once: plain, and with prev_kv for the watchers that asked. */
class EntryEncodings {
  readonly encodings: Uint8Array[] = [];
  bytes = 0;
  private readonly plain = new Map<MvccEvent, number>();
  private readonly withPrev = new Map<MvccEvent, number>();
  private readonly fieldBytes: number[] = [];
  /** [i] for a lone event i, shared by every watcher that gets only it. */
  private readonly singles: number[][] = [];

  indicesOf(evs: readonly MvccEvent[], prevKv: boolean): number[] {
    if (evs.length === 1) {
      const i = this.indexOf(evs[0], prevKv);
      return (this.singles[i] ??= [i]);
    }
    const out = new Array<number>(evs.length);
    for (let k = 0; k < evs.length; k++) out[k] = this.indexOf(evs[k], prevKv);
    return out;
  }

  /** Bytes the events `ix` add to a WatchResponse. */
  fieldBytesOf(ix: readonly number[]): number {
    let n = 0;
    for (let k = 0; k < ix.length; k++) n += this.fieldBytes[ix[k]];
    return n;
  }

  private indexOf(ev: MvccEvent, prevKv: boolean): number {
    const withPrev = prevKv && ev.prevKv !== undefined;
    const map = withPrev ? this.withPrev : this.plain;
    let i = map.get(ev);
    if (i === undefined) {
      // As WatchStream encodes it (stream.ts: encodedPlain, encodedWithPrev).
      const b = withPrev ? encodeEvent({ type: ev.type, kv: ev.kv, prev_kv: ev.prevKv }) : encodeEvent({ type: ev.type, kv: ev.kv });
      i = this.encodings.length;
      this.encodings.push(b);
      this.fieldBytes.push(eventFieldBytes(b.length));
      this.bytes += b.length;
      map.set(ev, i);
    }
    return i;
  }
}

/** Options of the fan-out's threads (tests point them elsewhere). */
export interface FanoutThreadsOptions {
  /** The worker module (default: src/watch/fanout_worker.ts). */
  filename?: string;
  /**
   * A task not answered in this time is aborted (its thread is replaced) and sent inline: a stuck thread
   * must not hold a stream's FIFO forever. Milliseconds.
   */
  taskTimeoutMs?: number;
}

/** A task's upper bound: building even the largest entry's responses takes milliseconds. */
export const FANOUT_TASK_TIMEOUT_MS = 5000;

/** The Piscina pool of --worker-threads N, running src/watch/fanout_worker.ts. */
export function startFanoutThreads(threads: number, o: FanoutThreadsOptions = {}): FanoutRunner {
  const timeoutMs = o.taskTimeoutMs ?? FANOUT_TASK_TIMEOUT_MS;
  const pool = new Piscina<FanoutTask, ArrayBuffer>({
    filename: o.filename ?? new URL('./fanout_worker.js', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: 2 ** 31 - 1,
    // The fan-out bounds its tasks in flight itself (tasksInflightMax); Piscina's queue never refuses one.
    maxQueue: Number.POSITIVE_INFINITY,
    recordTiming: false,
  });
  return {
    threads,
    run: (task, transfer) =>
      pool.run(task, {
        transferList: transfer ? [task.input as ArrayBuffer] : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      }),
    close: () => pool.destroy(),
  };
}
