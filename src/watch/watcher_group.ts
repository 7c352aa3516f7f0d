// The synced watchers, found by key: single-key watchers in a map, range watchers in an interval index
// (interval_tree.ts), so a changed key costs O(log n + matches), not a scan of every range watcher.
import { IntervalTree } from './interval_tree.js';
import type { Watcher } from './watcher.js';

export class WatcherGroup {
  private readonly byKey = new Map<string, Set<Watcher>>();
  private readonly ranges = new IntervalTree<Watcher>();
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
      this.ranges.insert(w.key, w.end, w.seq, w);
    }
    this.count++;
  }

  delete(w: Watcher): boolean {
    if (w.end === undefined) {
      const k = keyString(w.key);
      const set = this.byKey.get(k);
      if (set === undefined || !set.delete(w)) return false;
      if (set.size === 0) this.byKey.delete(k);
    } else if (!this.ranges.delete(w.key, w.seq)) {
      return false;
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
    if (this.ranges.size > 0) this.ranges.forEachContaining(key, visit);
  }

  /** Every watcher (for moving them all, e.g. after a restore). */
  all(): Watcher[] {
    const out: Watcher[] = this.ranges.values();
    for (const set of this.byKey.values()) for (const w of set) out.push(w);
    return out;
  }
}

/** A key as a Map key: its bytes as a latin1 string (one char per byte), read in place. */
function keyString(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}
