// The member's watchers. Synced watchers get each applied entry's changes as it applies (one response
// per watcher and entry, so a txn's events stay together); a watcher whose start revision is in the past,
// whose stream was congested, or that lived through a snapshot restore is unsynced and catches up from
// the store's history in bounded passes, then joins the synced group. Nothing here waits on a client.
import type { MvccEvent } from '../mvcc/index.js';
import { compareKeys } from '../mvcc/key_index.js';
import type { ApplyEvent, ApplySubscriber } from '../events/apply_events.js';
import type { Scheduler } from '../scheduler.js';
import { decodeKeyValue } from '../proto/kv.js';
import { assert } from '../assert.js';
import { WatcherGroup } from './watcher_group.js';
import type { Watcher } from './watcher.js';

/** What the hub reads of the store (src/mvcc's Mvcc). */
export interface WatchStore {
  readonly currentRevision: number;
  readonly compactRevision: number;
  /** Changes with revisions in [fromRev, toRev] in order; visit returns false to stop. */
  history(fromRev: number, toRev: number, visit: (ev: MvccEvent) => boolean): void;
  /** Encoded KeyValue of `key` at `rev`, or undefined; throws when `rev` is compacted. */
  get(key: Uint8Array, rev: number): Uint8Array | undefined;
}

/** Limits of one member's watchers. */
export interface WatchHubLimits {
  /** Watchers on the member at once; a create beyond it is refused. */
  watchersMax: number;
  /** Unsynced watchers one catch-up pass serves (etcd: maxWatchersPerSync, 512). */
  syncWatchersPerPassMax: number;
  /** Revisions one catch-up pass reads (etcd: watchBatchMaxRevs, 1000). */
  syncRevisionsPerPassMax: number;
  /** How often unsynced watchers are retried while some exist (etcd: 100 ms). */
  syncIntervalMs: number;
  /** Idle progress-notify watchers hear from the member this often (--experimental-watch-progress-notify-interval, 10 min). */
  progressNotifyIntervalMs: number;
}

/**
 * Sends large fan-outs of applied entries another way (fanout_pool.ts: responses built on the worker
 * threads). dispatch() returns false to leave an entry to the inline loop; true once it handled every
 * watcher as notify() would. Catch-up passes stay inline: through the pool they measured slower (more
 * bytes queued per congested stream; bench/watch, "pool100" against "pool100nc").
 */
export interface HubFanout {
  dispatch(rev: number, batches: ReadonlyMap<Watcher, readonly MvccEvent[]>, demote: (w: Watcher) => void): boolean;
}

/** Changes of one entry from which matching them in key order (when they are) is tried. */
const SORTED_MATCH_CHANGES_MIN = 256;

/** The changes' keys when they strictly increase, else undefined. */
function ascendingKeys(changes: readonly MvccEvent[]): Uint8Array[] | undefined {
  const keys = new Array<Uint8Array>(changes.length);
  for (let i = 0; i < changes.length; i++) {
    keys[i] = changes[i].kv.key;
    if (i > 0 && compareKeys(keys[i - 1], keys[i]) >= 0) return undefined;
  }
  return keys;
}

export const WATCH_HUB_DEFAULTS: WatchHubLimits = {
  watchersMax: 1_000_000,
  syncWatchersPerPassMax: 512,
  syncRevisionsPerPassMax: 1000,
  syncIntervalMs: 100,
  progressNotifyIntervalMs: 10 * 60 * 1000,
};

/**
 * Routes applied changes to watchers.
 *
 *   const hub = new WatchHub(() => backend.store, sched);
 *   member.subscribe(hub);
 *   hub.add(watcher);   // from a WatchStream's create
 */
export class WatchHub implements ApplySubscriber {
  readonly name = 'watch';
  private readonly synced = new WatcherGroup();
  private readonly unsynced = new Set<Watcher>();
  private prevKvWatchers = 0;
  private progressWatchers = 0;
  private progressTimer: unknown = undefined;
  private readonly progressBound = (): void => this.progressTick();
  private readonly demoteBound = (w: Watcher): void => this.demote(w);
  /** A sync pass is queued for the next turn. */
  private syncSoon = false;
  /** The retry timer of a pass, while one waits. */
  private syncTimer: unknown = undefined;
  private readonly syncNowBound = (): void => {
    this.syncSoon = false;
    this.runSync();
  };
  private readonly syncLaterBound = (): void => {
    this.syncTimer = undefined;
    this.runSync();
  };

  constructor(
    private readonly store: () => WatchStore,
    private readonly sched: Scheduler,
    readonly limits: WatchHubLimits = WATCH_HUB_DEFAULTS,
    private readonly fanout: HubFanout | undefined = undefined,
  ) {}

  /** Live events carry prevKv while some watcher wants it. */
  get wantsPrevKv(): boolean {
    return this.prevKvWatchers > 0;
  }

  /** Only synced watchers are sent live changes; the others catch up from the store. */
  get wantsKvChanges(): boolean {
    return this.synced.size > 0;
  }

  get size(): number {
    return this.synced.size + this.unsynced.size;
  }

  get unsyncedCount(): number {
    return this.unsynced.size;
  }

  /** The store's current revision (a created response's header). */
  get currentRevision(): number {
    return this.store().currentRevision;
  }

  /** Registers a watcher whose minRev is its start revision; false when the member is at its limit. */
  add(w: Watcher): boolean {
    if (this.size >= this.limits.watchersMax) return false;
    if (w.prevKv) this.prevKvWatchers++;
    if (w.progressNotify && this.progressWatchers++ === 0) {
      this.progressTimer = this.sched.interval(this.progressBound, this.limits.progressNotifyIntervalMs);
    }
    if (w.minRev > this.store().currentRevision) this.toSynced(w);
    else this.toUnsynced(w);
    return true;
  }

  /** Removes a watcher (canceled, or its stream ended). */
  remove(w: Watcher): void {
    if (w.canceled) return;
    w.canceled = true;
    if (w.prevKv) this.prevKvWatchers--;
    if (w.progressNotify && --this.progressWatchers === 0) {
      this.sched.cancel(this.progressTimer);
      this.progressTimer = undefined;
    }
    if (w.synced) this.synced.delete(w);
    else this.unsynced.delete(w);
  }

  /** A stream drained: its unsynced watchers may catch up now. */
  wake(): void {
    this.scheduleSync(0);
  }

  /** True if every watcher in `ws` is synced. */
  allSynced(ws: Iterable<Watcher>): boolean {
    for (const w of ws) if (!w.synced) return false;
    return true;
  }

  deliver(ev: ApplyEvent): boolean {
    if (ev.kind === 'kv') this.notify(ev.revision, ev.changes);
    else if (ev.kind === 'restore') this.restored();
    return true;
  }

  fellBehind(): void {
    // deliver() never refuses: a slow stream's watchers move to catch-up one by one instead.
  }

  /** One applied entry's changes at `rev`: each synced watcher gets its matching ones as one response. */
  private notify(rev: number, changes: readonly MvccEvent[]): void {
    if (this.synced.size === 0) return;
    let batches: Map<Watcher, readonly MvccEvent[]> | undefined;
    // One change (a put, a one-key delete): every matching watcher shares the entry's array.
    const single = changes.length === 1 ? changes : undefined;
    const take = (w: Watcher, ch: MvccEvent): void => {
      if (w.minRev > rev || w.filters(ch)) return;
      batches ??= new Map();
      if (single !== undefined) {
        batches.set(w, single);
        return;
      }
      const evs = batches.get(w) as MvccEvent[] | undefined;
      if (evs === undefined) batches.set(w, [ch]);
      else evs.push(ch);
    };
    const keys =
      changes.length >= SORTED_MATCH_CHANGES_MIN && this.synced.prefersSorted(changes.length) ? ascendingKeys(changes) : undefined;
    if (keys !== undefined) {
      // Many changes in key order (a lease revoke's deletes) and few distinct watched ranges: search each range.
      this.synced.forMatchingSorted(keys, (w, i) => take(w, changes[i]));
    } else {
      for (const ch of changes) this.synced.forMatching(ch.kv.key, (w) => take(w, ch));
    }
    if (batches === undefined) return;
    if (this.fanout?.dispatch(rev, batches, this.demoteBound)) return;
    for (const [w, evs] of batches) {
      if (w.owner.sendEvents(w, evs, rev)) {
        w.minRev = rev + 1;
        continue;
      }
      this.demote(w);
    }
  }

  /** Congested: this entry was not sent; the watcher catches up from it once the stream drained. */
  private demote(w: Watcher): void {
    this.synced.delete(w);
    this.toUnsynced(w);
  }

  /**
   * Progress notification (etcd's progressIfSync): every synced progress-notify watcher that was sent no
   * event since the last tick gets an empty response at the current revision. Unsynced ones wait: a
   * progress revision must never run ahead of events the watcher has not been sent.
   */
  progressTick(): void {
    const rev = this.store().currentRevision;
    for (const w of this.synced.all()) {
      if (!w.progressNotify) continue;
      if (!w.sentSinceProgress && !w.owner.congested) w.owner.sendProgress(w, rev);
      w.sentSinceProgress = false;
    }
  }

  /** The backend was replaced by a snapshot: every watcher re-reads from the new store. */
  private restored(): void {
    for (const w of this.synced.all()) {
      this.synced.delete(w);
      this.toUnsynced(w);
    }
  }

  private toSynced(w: Watcher): void {
    w.synced = true;
    this.synced.add(w);
  }

  private toUnsynced(w: Watcher): void {
    w.synced = false;
    this.unsynced.add(w);
    this.scheduleSync(0);
  }

  /** A pass on the next turn (a drained stream, a new unsynced watcher), or a retry after delayMs. */
  private scheduleSync(delayMs: number): void {
    if (this.syncSoon) return;
    if (delayMs === 0) {
      // Sooner beats a retry that is waiting.
      if (this.syncTimer !== undefined) {
        this.sched.cancel(this.syncTimer);
        this.syncTimer = undefined;
      }
      this.syncSoon = true;
      this.sched.immediate(this.syncNowBound);
    } else if (this.syncTimer === undefined) {
      this.syncTimer = this.sched.timeout(this.syncLaterBound, delayMs);
    }
  }

  private runSync(): void {
    if (this.syncSoon) return; // a pass on the next turn is queued; it will run
    this.sync();
  }

  /**
   * One catch-up pass: up to syncWatchersPerPassMax unsynced watchers of streams that are not congested,
   * over at most syncRevisionsPerPassMax revisions from the smallest minRev among them.
   */
  sync(): void {
    if (this.unsynced.size === 0) return;
    const store = this.store();
    const cur = store.currentRevision;
    const compactRev = store.compactRevision;
    const picked: Watcher[] = [];
    let minRev = Infinity;
    let waiting = false;
    for (const w of this.unsynced) {
      if (w.owner.congested) {
        waiting = true;
        continue;
      }
      if (w.minRev <= compactRev) {
        // etcd cancels a watcher whose history is gone, telling it the compacted revision. etcd 3.4 cancels
        // only below the compacted revision, and a watcher starting at it then silently misses a delete at
        // that revision (compaction removed its tombstone); cancelling at it too never drops an event unsaid.
        this.remove(w);
        w.owner.sendCompacted(w, compactRev);
        continue;
      }
      picked.push(w);
      if (w.minRev < minRev) minRev = w.minRev;
      if (picked.length >= this.limits.syncWatchersPerPassMax) break;
    }
    if (picked.length > 0) {
      const toRev = Math.min(cur, minRev + this.limits.syncRevisionsPerPassMax - 1);
      const events: MvccEvent[] = [];
      if (minRev <= toRev)
        store.history(minRev, toRev, (ev) => {
          events.push(ev);
          return true;
        });
      for (const w of picked) this.catchUp(store, w, events, toRev, cur);
    }
    const owners = new Set(picked.map((w) => w.owner));
    for (const o of owners) o.onSynced();
    // Congested streams retry on their own drain (wake()); the timer is the backstop.
    if (this.unsynced.size > 0) this.scheduleSync(picked.length > 0 && !waiting ? 0 : this.limits.syncIntervalMs);
  }

  private catchUp(store: WatchStore, w: Watcher, events: readonly MvccEvent[], toRev: number, cur: number): void {
    if (w.canceled) return;
    const mine: MvccEvent[] = [];
    for (const ev of events) {
      if (ev.kv.mod_revision < w.minRev || !w.contains(ev.kv.key) || w.filters(ev)) continue;
      mine.push(w.prevKv ? withPrevKv(store, ev) : ev);
    }
    if (mine.length > 0 && !w.owner.sendEvents(w, mine, toRev)) return;
    // A watcher picked with a later minRev than the pass's window keeps it (never goes back).
    if (w.minRev <= toRev) w.minRev = toRev + 1;
    if (w.minRev <= cur) return;
    assert(toRev === cur || w.minRev > cur, 'a watcher joins the synced group only once it saw every revision');
    this.unsynced.delete(w);
    this.toSynced(w);
  }
}

/** The event with the key's KeyValue before it (etcd reads it at the revision before, as it sends). */
function withPrevKv(store: WatchStore, ev: MvccEvent): MvccEvent {
  let bytes: Uint8Array | undefined;
  try {
    bytes = store.get(ev.kv.key, ev.kv.mod_revision - 1);
  } catch {
    return ev; // compacted: etcd sends the event without prev_kv
  }
  return bytes === undefined ? ev : { type: ev.type, kv: ev.kv, prevKv: decodeKeyValue(bytes) };
}
