// The synced watchers, found by key: single-key watchers in a map, range watchers in an interval index
// (interval_tree.ts) with one interval per distinct range holding every watcher of that range, so a changed
// key costs O(log n + distinct matching ranges + matches), not a comparison per watcher: 10,000 watchers of
// one prefix are one interval.
import { compareKeys } from '../mvcc/key_index.js';
import { IntervalTree } from './interval_tree.js';
import type { Watcher } from './watcher.js';

/** The watchers of one distinct range [key, end), and the interval that holds them. */
class RangeSet {
  readonly watchers = new Set<Watcher>();
  constructor(
    readonly id: number,
    readonly key: Uint8Array,
    /** Empty: every key >= key. */
    readonly end: Uint8Array,
  ) {}
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
        rs = new RangeSet(this.nextRangeId++, w.key, w.end);
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

  /**
   * True when matching `n` keys given in order (forMatchingSorted: a binary search per distinct key or range
   * watched) costs less than looking each key up (forMatching).
   */
  prefersSorted(n: number): boolean {
    return (this.byKey.size + this.byRange.size) * Math.log2(n + 1) < n;
  }

  /**
   * Calls visit(w, i) for every watcher whose range holds keys[i]; `keys` strictly increase (a lease
   * revoke's deletes). A watcher is visited in increasing i. One binary search per distinct watched key or
   * range instead of a lookup per key: a revoke of 100,000 keys costs the watchers nothing per key.
   */
  forMatchingSorted(keys: readonly Uint8Array[], visit: (w: Watcher, i: number) => void): void {
    const n = keys.length;
    for (const [k, set] of this.byKey) {
      const i = lowerBound(keys, (key) => compareLatin1(key, k) < 0);
      if (i < n && compareLatin1(keys[i], k) === 0) for (const w of set) visit(w, i);
    }
    for (const rs of this.byRange.values()) {
      const end = rs.end;
      for (let i = lowerBound(keys, (key) => compareKeys(key, rs.key) < 0); i < n; i++) {
        if (end.length > 0 && compareKeys(keys[i], end) >= 0) break;
        for (const w of rs.watchers) visit(w, i);
      }
    }
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

/** The first index whose key is not before (`before` is true for a prefix of `keys`). */
function lowerBound(keys: readonly Uint8Array[], before: (key: Uint8Array) => boolean): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (before(keys[mid])) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Byte order of `a` against the key held as the latin1 string `s`. */
function compareLatin1(a: Uint8Array, s: string): number {
  const n = Math.min(a.length, s.length);
  for (let i = 0; i < n; i++) {
    const d = a[i] - s.charCodeAt(i);
    if (d !== 0) return d;
  }
  return a.length - s.length;
}
