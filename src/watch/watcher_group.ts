// The synced watchers, found by key: single-key watchers in a map, range watchers in an interval index
// (interval_tree.ts) with one interval per distinct range holding every watcher of that range, so a changed
// key costs O(log n + distinct matching ranges + matches), not a comparison per watcher: 10,000 watchers of
// one prefix are one interval.
import { IntervalTree } from './interval_tree.js';
import type { Watcher } from './watcher.js';

/** The watchers of one distinct range [key, end), and the interval that holds them. */
class RangeSet {
  readonly watchers = new Set<Watcher>();
  constructor(readonly id: number) {}
}

export class WatcherGroup {
  private readonly byKey = new Map<string, Set<Watcher>>();
  private readonly ranges = new IntervalTree<RangeSet>();
  /** A range's set by rangeString(key, end). */
  private readonly byRange = new Map<string, RangeSet>();
  private nextRangeId = 1;
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(w: Watcher): void {
    if (w.end === undefined) {
      const k = keyString(w.key);
      let set = this.byKey.get(k);
      if (set === undefined) this.byKey.set(k, (set = new Set()));
      set.add(w);
    } else {
      const rk = rangeString(w.key, w.end);
      let rs = this.byRange.get(rk);
      if (rs === undefined) {
        rs = new RangeSet(this.nextRangeId++);
        this.byRange.set(rk, rs);
        this.ranges.insert(w.key, w.end, rs.id, rs);
      }
      rs.watchers.add(w);
    }
    this.count++;
  }

  delete(w: Watcher): boolean {
    if (w.end === undefined) {
      const k = keyString(w.key);
      const set = this.byKey.get(k);
      if (set === undefined || !set.delete(w)) return false;
      if (set.size === 0) this.byKey.delete(k);
    } else {
      const rk = rangeString(w.key, w.end);
      const rs = this.byRange.get(rk);
      if (rs === undefined || !rs.watchers.delete(w)) return false;
      if (rs.watchers.size === 0) {
        this.byRange.delete(rk);
        this.ranges.delete(w.key, rs.id);
      }
    }
    this.count--;
    return true;
  }

  /** Calls visit for every watcher whose range holds `key`. */
  forMatching(key: Uint8Array, visit: (w: Watcher) => void): void {
    if (this.byKey.size > 0) {
      const set = this.byKey.get(keyString(key));
      if (set !== undefined) for (const w of set) visit(w);
    }
    if (this.ranges.size > 0)
      this.ranges.forEachContaining(key, (rs) => {
        for (const w of rs.watchers) visit(w);
      });
  }

  /** Every watcher (for moving them all, e.g. after a restore). */
  all(): Watcher[] {
    const out: Watcher[] = [];
    for (const rs of this.ranges.values()) for (const w of rs.watchers) out.push(w);
    for (const set of this.byKey.values()) for (const w of set) out.push(w);
    return out;
  }
}

/** A key as a Map key: its bytes as a latin1 string (one char per byte), read in place. */
function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/** A range as a Map key: the key's length, then the key and the end (an empty end: every key >= key). */
function rangeString(key: Uint8Array, end: Uint8Array): string {
  return `${key.length}:${keyString(key)}${keyString(end)}`;
}
