// One watcher: a key or key range, the next revision it must see, its filters and options, and the
// stream it belongs to. Synced watchers get events as entries apply; unsynced ones catch up from history.
import type { MvccEvent } from '../mvcc/index.js';
import { Event_EventType } from '../proto/kv.js';

/** WatchCreateRequest.FilterType. */
export const WatchFilter = { NOPUT: 0, NODELETE: 1 } as const;

/** What the hub needs of the stream that owns a watcher. */
export interface WatcherOwner {
  /** The stream is over its buffer limit: it takes no events until it drained. */
  readonly congested: boolean;
  /**
   * Sends the watcher's events of revisions up to `rev` (one response, or fragments of one). False when
   * nothing was sent because the stream is congested; the watcher then catches up later from `minRev`.
   */
  sendEvents(w: Watcher, events: readonly MvccEvent[], rev: number): boolean;
  /** The watcher's next revision was compacted: it is canceled with the compacted revision. */
  sendCompacted(w: Watcher, compactRev: number): void;
  /** Every watcher of the stream may have become synced (a deferred progress response may go). */
  onSynced(): void;
  /** An idle progress-notify watcher: an empty response says it has seen everything up to `rev`. */
  sendProgress(w: Watcher, rev: number): void;
}

/** Compares byte strings as etcd does (unsigned, lexicographic). */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

let watcherSeq = 0;

export class Watcher {
  /** Unique on the member (the interval index orders watchers of one start key by it). */
  readonly seq = ++watcherSeq;
  /** Next revision this watcher must be sent. */
  minRev: number;
  /** In the synced group (live events) rather than catching up. */
  synced = false;
  /** Canceled: no more responses. */
  canceled = false;
  /** Revision of the last response sent (events or progress), for progress notifications. */
  lastSentRev = 0;
  /** An event was sent since the last progress check. */
  sentSinceProgress = false;
  readonly noPut: boolean;
  readonly noDelete: boolean;

  constructor(
    readonly id: number,
    readonly owner: WatcherOwner,
    /** The first key. */
    readonly key: Uint8Array,
    /** undefined: the key alone; empty: every key >= key; else the range [key, end). */
    readonly end: Uint8Array | undefined,
    startRev: number,
    filters: readonly number[],
    readonly prevKv: boolean,
    readonly progressNotify: boolean,
    readonly fragment: boolean,
  ) {
    this.minRev = startRev;
    this.noPut = filters.includes(WatchFilter.NOPUT);
    this.noDelete = filters.includes(WatchFilter.NODELETE);
  }

  /** True for a single-key watcher. */
  get isKey(): boolean {
    return this.end === undefined;
  }

  /** True if `key` is in this watcher's range. */
  contains(key: Uint8Array): boolean {
    if (this.end === undefined) return compareBytes(key, this.key) === 0;
    if (compareBytes(key, this.key) < 0) return false;
    return this.end.length === 0 || compareBytes(key, this.end) < 0;
  }

  /** True if the watcher's filters drop the event. */
  filters(ev: MvccEvent): boolean {
    return ev.type === Event_EventType.PUT ? this.noPut : this.noDelete;
  }
}
