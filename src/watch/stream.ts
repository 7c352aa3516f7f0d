// One Watch stream (a client's bidirectional Watch call): its create, cancel and progress requests, the
// watch IDs it hands out, and every response it sends, fragmented when the watcher asked for it. When the
// client reads too slowly the stream is congested: its watchers stop taking live events and catch up
// from history once it drained, so the member never buffers more than the stream's soft limit.
import type { MvccEvent } from '../mvcc/index.js';
import type { ResponseHeaderInit, WatchRequest, WatchResponseInit, WatchCreateRequest } from '../proto/rpc.js';
import { sizeWatchResponse } from '../proto/rpc.js';
import { encodeEvent } from '../proto/kv.js';
import { Watcher, compareBytes, type WatcherOwner } from './watcher.js';
import type { WatchHub } from './hub.js';

/** Where a stream's responses go (the gRPC call's writer, in either mode). */
export interface WatchSink {
  /** Queues a response; false when the queue passed its soft limit (wait for drained()). */
  write(res: WatchResponseInit): boolean;
  /** Resolves when the queue is below its soft limit again, or the call is over. */
  drained(): Promise<void>;
  readonly done: boolean;
}

export interface WatchStreamOptions {
  /** A response header at `revision` (the member's identity and term). */
  header(revision: number): ResponseHeaderInit;
  /** Responses of fragmenting watchers are split past this many bytes (etcd: --max-request-bytes). */
  fragmentBytes: number;
  /** Watchers one stream may hold; a create beyond it is refused. */
  watchersPerStreamMax: number;
}

/** etcd's cancel reasons and errors (mvcc/watcher.go, v3rpc). */
export const WatchErrors = {
  duplicateId: 'mvcc: duplicate watch ID provided on the WatchStream',
  emptyRange: 'mvcc: watcher range is empty',
  tooManyWatchers: 'etcdserver: too many requests',
} as const;

/** WatchResponse.watch_id of a create that failed, and of progress responses for the whole stream. */
const INVALID_WATCH_ID = -1;

/**
 * Serves one Watch stream.
 *
 *   const ws = new WatchStream(hub, sink, opts);
 *   stream.onMessage = (req) => ws.onRequest(req);
 *   call ended → ws.close();
 */
export class WatchStream implements WatcherOwner {
  congested = false;
  private readonly watchers = new Map<number, Watcher>();
  private nextId = 0;
  private closed = false;
  /** A progress request arrived while some watcher was unsynced: answered once all are synced. */
  private progressPending = false;

  constructor(
    private readonly hub: WatchHub,
    private readonly sink: WatchSink,
    private readonly o: WatchStreamOptions,
  ) {}

  get watcherCount(): number {
    return this.watchers.size;
  }

  onRequest(req: WatchRequest): void {
    if (this.closed) return;
    if (req.create_request) this.create(req.create_request);
    else if (req.cancel_request) this.cancel(req.cancel_request.watch_id);
    else if (req.progress_request) this.progress();
  }

  /** A create request the auth check refused: answered as etcd does, created and canceled with the reason. */
  refuse(reason: string): void {
    if (this.closed) return;
    this.send({
      header: this.o.header(this.hub.currentRevision),
      watch_id: INVALID_WATCH_ID,
      created: true,
      canceled: true,
      cancel_reason: reason,
    });
  }

  /** The call is over: every watcher goes. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers.values()) this.hub.remove(w);
    this.watchers.clear();
  }

  private create(c: WatchCreateRequest): void {
    const rev = this.hub.currentRevision;
    // etcd: an empty range_end is the key alone, "\0" every key >= key.
    const end = c.range_end.length === 0 ? undefined : c.range_end.length === 1 && c.range_end[0] === 0 ? new Uint8Array(0) : c.range_end;
    let err: string | undefined;
    let id = c.watch_id;
    if (end !== undefined && end.length > 0 && compareBytes(c.key, end) >= 0) err = WatchErrors.emptyRange;
    else if (id !== 0 && this.watchers.has(id)) err = WatchErrors.duplicateId;
    else if (this.watchers.size >= this.o.watchersPerStreamMax) err = WatchErrors.tooManyWatchers;
    if (err === undefined && id === 0) {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    }
    let w: Watcher | undefined;
    if (err === undefined) {
      w = new Watcher(
        id,
        this,
        c.key,
        end,
        c.start_revision === 0 ? rev + 1 : c.start_revision,
        c.filters,
        c.prev_kv,
        c.progress_notify,
        c.fragment,
      );
      // Send created first: the hub may schedule catch-up, which runs on a later turn.
      this.send({ header: this.o.header(rev), watch_id: id, created: true });
      if (!this.hub.add(w)) {
        err = WatchErrors.tooManyWatchers;
        this.send({ header: this.o.header(rev), watch_id: id, canceled: true, cancel_reason: err });
        return;
      }
      this.watchers.set(id, w);
      return;
    }
    this.send({ header: this.o.header(rev), watch_id: INVALID_WATCH_ID, created: true, canceled: true, cancel_reason: err });
  }

  private cancel(id: number): void {
    const w = this.watchers.get(id);
    if (w === undefined) return; // etcd 3.4 answers an unknown ID with nothing
    this.watchers.delete(id);
    this.hub.remove(w);
    this.send({ header: this.o.header(this.hub.currentRevision), watch_id: id, canceled: true });
    this.onSynced();
  }

  /**
   * A progress response says every event up to its revision was sent. etcd 3.4 answered at once, ahead
   * of events an unsynced watcher had not been sent yet (etcd #15220); here it waits until all are synced.
   */
  private progress(): void {
    if (this.hub.allSynced(this.watchers.values())) {
      this.send({ header: this.o.header(this.hub.currentRevision), watch_id: INVALID_WATCH_ID });
    } else {
      this.progressPending = true;
    }
  }

  onSynced(): void {
    if (this.progressPending && !this.closed && this.hub.allSynced(this.watchers.values())) {
      this.progressPending = false;
      this.send({ header: this.o.header(this.hub.currentRevision), watch_id: INVALID_WATCH_ID });
    }
  }

  sendEvents(w: Watcher, events: readonly MvccEvent[], rev: number): boolean {
    if (this.closed || w.canceled) return true;
    if (this.congested) return false;
    // Each event is encoded once however many watchers (and streams) it goes to.
    const evs: Uint8Array[] = w.prevKv ? events.map(encodedWithPrev) : events.map(encodedPlain);
    const res: WatchResponseInit = { header: this.o.header(rev), watch_id: w.id, events_encoded: evs };
    if (w.fragment && evs.length > 1 && sizeWatchResponse(res) >= this.o.fragmentBytes) this.sendFragments(res, evs);
    else this.send(res);
    w.lastSentRev = rev;
    w.sentSinceProgress = true;
    return true;
  }

  sendProgress(w: Watcher, rev: number): void {
    this.send({ header: this.o.header(rev), watch_id: w.id });
  }

  sendCompacted(w: Watcher, compactRev: number): void {
    this.watchers.delete(w.id);
    // etcd's watchable store answers a compacted watcher with revision 0, and its header says so.
    this.send({ header: this.o.header(0), watch_id: w.id, canceled: true, compact_revision: compactRev });
    // It may have been the last watcher a progress request waited for; the hub's pass tells only the
    // streams whose watchers it served.
    this.onSynced();
  }

  /** Splits a response as etcd's sendFragments does: each part under the limit (at least one event). */
  private sendFragments(base: WatchResponseInit, evs: Uint8Array[]): void {
    let i = 0;
    while (i < evs.length) {
      const part: Uint8Array[] = [evs[i++]];
      const res: WatchResponseInit = { header: base.header, watch_id: base.watch_id, fragment: true, events_encoded: part };
      while (i < evs.length) {
        part.push(evs[i]);
        if (sizeWatchResponse(res) >= this.o.fragmentBytes) {
          part.pop();
          break;
        }
        i++;
      }
      if (i === evs.length) res.fragment = false;
      this.send(res);
    }
  }

  private send(res: WatchResponseInit): void {
    if (this.closed || this.sink.done) return;
    if (this.sink.write(res) || this.congested) return;
    this.congested = true;
    this.sink.drained().then(
      () => {
        this.congested = false;
        if (!this.closed) this.hub.wake();
      },
      () => {},
    );
  }
}

// An event's encodings, made once per event (the change objects are shared by every watcher of an entry).
// Live events carry prevKv whenever any watcher of the member asked for it; only those watchers get it.
const plainEncodings = new WeakMap<MvccEvent, Uint8Array>();
const prevEncodings = new WeakMap<MvccEvent, Uint8Array>();

function encodedPlain(ev: MvccEvent): Uint8Array {
  let b = plainEncodings.get(ev);
  if (b === undefined) plainEncodings.set(ev, (b = encodeEvent({ type: ev.type, kv: ev.kv })));
  return b;
}

function encodedWithPrev(ev: MvccEvent): Uint8Array {
  if (ev.prevKv === undefined) return encodedPlain(ev);
  let b = prevEncodings.get(ev);
  if (b === undefined) prevEncodings.set(ev, (b = encodeEvent({ type: ev.type, kv: ev.kv, prev_kv: ev.prevKv })));
  return b;
}
