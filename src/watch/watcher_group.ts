// The synced watchers, found by key: single-key watchers in a map, range watchers in a list scanned per
// changed key. (etcd keeps ranges in an interval tree; a list is enough until many range watchers
// share a member, and the bench will say when.)
import type { Watcher } from './watcher.js';

export class WatcherGroup {
  private readonly byKey = new Map<string, Set<Watcher>>();
  private ranges: Watcher[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(w: Watcher): void {
    if (w.isKey) {
      const k = Buffer.from(w.key).toString('latin1');
      let set = this.byKey.get(k);
      if (set === undefined) this.byKey.set(k, (set = new Set()));
      set.add(w);
    } else {
      this.ranges.push(w);
    }
    this.count++;
  }

  delete(w: Watcher): boolean {
    if (w.isKey) {
      const k = Buffer.from(w.key).toString('latin1');
      const set = this.byKey.get(k);
      if (set === undefined || !set.delete(w)) return false;
      if (set.size === 0) this.byKey.delete(k);
    } else {
      const i = this.ranges.indexOf(w);
      if (i < 0) return false;
      this.ranges.splice(i, 1);
    }
    this.count--;
    return true;
  }

  /** Calls visit for every watcher whose range holds `key`. */
  forMatching(key: Uint8Array, visit: (w: Watcher) => void): void {
    if (this.byKey.size > 0) {
      const set = this.byKey.get(Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1'));
      if (set !== undefined) for (const w of set) visit(w);
    }
    const ranges = this.ranges;
    for (let i = 0; i < ranges.length; i++) if (ranges[i].contains(key)) visit(ranges[i]);
  }

  /** Every watcher (for moving them all, e.g. after a restore). */
  all(): Watcher[] {
    const out: Watcher[] = [...this.ranges];
    for (const set of this.byKey.values()) for (const w of set) out.push(w);
    return out;
  }
}
