// The in-memory key index: an ordered map from key bytes to that key's revisions, grouped into
// generations (create … delete) as etcd's keyIndex does, packed into flat number arrays.
//
// An entry is a plain number[] (no object per revision, so a key with one revision costs one
// small array):
//   [0] created  create revision of the oldest generation still in the entry
//   [1] verBase  revisions of that generation dropped by compaction (its versions start at verBase+1)
//   [2] lastGen  offset of the first pair of the newest generation (so a put to a key with a long
//                history finds its version in O(1), not by scanning back through every revision)
//   then one pair per revision, oldest first: main, code
//        code >= 0: a put, code = sub*2 + (1 if the put attached a lease)
//        code <  0: a tombstone, code = -1 - sub; it closes its generation
// Pairs strictly increase by (main, sub); the first pair is never a tombstone.
import sortedBtree from 'sorted-btree';

// sorted-btree is CommonJS with `exports.default`; under NodeNext the class sits one level down.
const BTree = sortedBtree.default;
type BTree<K, V> = import('sorted-btree').default<K, V>;

/** A key's revisions in the packed layout described at the top of this file. */
export type KeyEntry = number[];

/** Offset of the first revision pair in an entry. */
export const ENTRY_HEAD = 3;

/** The code of a put revision. */
function putCode(sub: number, hasLease: boolean): number {
  return sub * 2 + (hasLease ? 1 : 0);
}

/** The sub revision of a pair's code. */
export function codeSub(code: number): number {
  return code >= 0 ? Math.floor(code / 2) : -1 - code;
}

/** True if the put pair's code says a lease was attached. */
export function codeHasLease(code: number): boolean {
  return code >= 0 && code % 2 === 1;
}

/** A new entry holding one put. `created`/`verBase` differ from the put only after compaction. */
export function entryNew(main: number, sub: number, hasLease: boolean, created = main, verBase = 0): KeyEntry {
  return [created, verBase, ENTRY_HEAD, main, putCode(sub, hasLease)];
}

/** True if the key exists at the newest revision (the last pair is a put). */
export function entryLive(e: KeyEntry): boolean {
  return e[e.length - 1] >= 0;
}

function assertAfterLast(e: KeyEntry, main: number, sub: number): void {
  const lastMain = e[e.length - 2];
  if (main < lastMain || (main === lastMain && sub <= codeSub(e[e.length - 1]))) {
    throw new Error(`mvcc: revision ${main}.${sub} is not after ${lastMain}.${codeSub(e[e.length - 1])}`);
  }
}

/** Appends a put; starts a new generation when the key was deleted. */
export function entryPut(e: KeyEntry, main: number, sub: number, hasLease: boolean): void {
  assertAfterLast(e, main, sub);
  if (!entryLive(e)) e[2] = e.length; // a put after a tombstone starts a generation
  e.push(main, putCode(sub, hasLease));
}

/** Appends a tombstone; the key must be live. */
export function entryTombstone(e: KeyEntry, main: number, sub: number): void {
  if (!entryLive(e)) throw new Error('mvcc: tombstone of a deleted key');
  assertAfterLast(e, main, sub);
  e.push(main, -1 - sub);
}

/**
 * The pair visible at `atRev`: the offset of the newest put with main <= atRev, or -1 when the key
 * did not exist then (nothing that old, or the newest such revision is a tombstone).
 */
export function entryFind(e: KeyEntry, atRev: number): number {
  const last = e.length - 2;
  if (e[last] <= atRev) return e[last + 1] >= 0 ? last : -1;
  // Binary search over pairs for the last one with main <= atRev.
  let lo = 0;
  let hi = (last - ENTRY_HEAD) / 2; // pairs [0, hi) are candidates; pair hi is known > atRev
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (e[ENTRY_HEAD + mid * 2] <= atRev) lo = mid + 1;
    else hi = mid;
  }
  if (lo === 0) return -1;
  const p = ENTRY_HEAD + (lo - 1) * 2;
  return e[p + 1] >= 0 ? p : -1;
}

/** Offset of the first pair of the generation holding pair `p`. */
export function entryGenStart(e: KeyEntry, p: number): number {
  if (p >= e[2]) return e[2];
  for (let q = p - 2; q >= ENTRY_HEAD; q -= 2) if (e[q + 1] < 0) return q + 2;
  return ENTRY_HEAD;
}

/** Create revision of the put at pair `p` (gs = entryGenStart(e, p)). */
export function entryCreated(e: KeyEntry, gs: number): number {
  return gs === ENTRY_HEAD ? e[0] : e[gs];
}

/** Version of the put at pair `p` (gs = entryGenStart(e, p)). */
export function entryVersion(e: KeyEntry, p: number, gs: number): number {
  return (p - gs) / 2 + 1 + (gs === ENTRY_HEAD ? e[1] : 0);
}

/**
 * Where compaction at `atRev` leaves the entry: `gs` the first generation that survives (closed
 * generations whose tombstone is <= atRev go), `keep` the newest pair <= atRev in it (older pairs
 * go) or gs when it has none. gs === e.length means nothing survives.
 */
function compactPlan(e: KeyEntry, atRev: number): { gs: number; keep: number } {
  const n = e.length;
  let gs = ENTRY_HEAD;
  for (let p = ENTRY_HEAD; p < n; p += 2) {
    if (e[p + 1] < 0) {
      if (e[p] <= atRev) gs = p + 2;
      else break;
    }
  }
  let keep = gs;
  for (let p = gs; p < n && e[p] <= atRev; p += 2) {
    if (e[p + 1] < 0) break; // cannot happen: this generation's tombstone is > atRev
    keep = p;
  }
  plan.gs = gs;
  plan.keep = keep;
  return plan;
}
const plan = { gs: 0, keep: 0 };

/**
 * Compacts the entry in place at `atRev` as etcd does: drops generations deleted at or before it
 * and, in the first surviving generation, every revision older than the newest one <= atRev.
 * Returns false when nothing is left (the key leaves the index).
 */
export function entryCompact(e: KeyEntry, atRev: number): boolean {
  const { gs, keep } = compactPlan(e, atRev);
  if (gs >= e.length) return false;
  if (keep === ENTRY_HEAD) return true;
  const dropped = (keep - gs) / 2;
  if (gs === ENTRY_HEAD) {
    e[1] += dropped;
  } else {
    e[0] = e[gs];
    e[1] = dropped;
  }
  const n = e.length;
  const shift = keep - ENTRY_HEAD;
  e[2] = e[2] <= keep ? ENTRY_HEAD : e[2] - shift;
  let w = ENTRY_HEAD;
  for (let r = keep; r < n; r++) e[w++] = e[r];
  e.length = w;
  return true;
}

/** The pair compaction at `atRev` would keep at or below atRev (etcd's keep set), or -1. */
export function entryKeep(e: KeyEntry, atRev: number): number {
  const { gs, keep } = compactPlan(e, atRev);
  if (gs >= e.length || e[keep] > atRev) return -1;
  return keep;
}

/** True if the entry holds revision (main, sub) as a put (tombstone false) or a tombstone. */
export function entryHas(e: KeyEntry, main: number, sub: number, tombstone: boolean): boolean {
  const code = tombstone ? -1 - sub : -1;
  for (let p = e.length - 2; p >= ENTRY_HEAD; p -= 2) {
    if (e[p] < main) return false;
    if (e[p] > main) continue;
    const c = e[p + 1];
    if (tombstone ? c === code : c >= 0 && codeSub(c) === sub) return true;
  }
  return false;
}

/**
 * Copies of index keys, packed into slabs used for nothing else. Node's shared Buffer pool would
 * mix the long-lived keys with short-lived buffers (encoded KeyValues) and one live key would pin
 * a whole 8 KiB pool slab; here a slab holds only keys.
 */
class KeyArena {
  private slab: Buffer = Buffer.allocUnsafeSlow(0);
  private used = 0;
  constructor(
    private readonly slabBytes = 64 * 1024,
    private readonly ownBytesMin = 1024,
  ) {}

  copy(key: Uint8Array): Buffer {
    const n = key.length;
    if (n >= this.ownBytesMin) {
      const own = Buffer.allocUnsafeSlow(n);
      own.set(key);
      return own;
    }
    if (this.used + n > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(this.slabBytes);
      this.used = 0;
    }
    const out = this.slab.subarray(this.used, this.used + n);
    out.set(key);
    this.used += n;
    return out;
  }
}

/**
 * Byte comparison of keys; the index order (etcd compares keys with bytes.Compare). Only the sign is
 * meaningful. Short keys are compared in JavaScript: the call into C++ behind Buffer.compare cost more
 * than the loop for keys up to a few dozen bytes (bench/mvcc/compare.bench.ts).
 */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  if (n > COMPARE_IN_JS_BYTES_MAX) return Buffer.compare(a, b);
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i];
    if (d !== 0) return d;
  }
  return a.length - b.length;
}
const COMPARE_IN_JS_BYTES_MAX = 64;

/** compareKeys of `a` and the key held as the latin1 string `s` (one char per byte, as the lessor holds keys). */
export function compareKeyLatin1(a: Uint8Array, s: string): number {
  const n = Math.min(a.length, s.length);
  for (let i = 0; i < n; i++) {
    const d = a[i] - s.charCodeAt(i);
    if (d !== 0) return d;
  }
  return a.length - s.length;
}

/**
 * Keys of the tree not in a sorted delete list that one walk steps over before it leaves the walk and
 * descends afresh to the next listed key: a descent costs about as many key comparisons as this.
 */
export const SORTED_WALK_GAP_MAX = 32;

/** What KeyIndex.tombstoneSorted did: the keys it tombstoned and each one's newest put before it. */
export interface SortedTombstones {
  /** The tree's own key objects, in order; key i got sub revision firstSub + i. */
  keys: Uint8Array[];
  /** Main revision and code of each key's put that the tombstone closes. */
  prevMains: number[];
  prevCodes: number[];
  /** Descents into the tree (one per walk): 1 for keys that are neighbours in the index. */
  descents: number;
}

/**
 * A tree value. Most keys hold a single put with nothing compacted away (created = that put,
 * version 1); such a key stores the number main*2^20 + code instead of an array, which saves
 * most of the per-key cost. A key that held such a put and was then deleted stores a negative
 * number, -(record + 1): its put and tombstone sit in the index's record table (a lease revoke turns
 * 100,000 packed keys into deleted ones without 100,000 arrays for the collector to copy). Any other
 * entry is a KeyEntry array.
 */
export type KeySlot = KeyEntry | number;

const PACK = 1048576; // 2^20: codes (sub*2 + lease) up to ~1M subs
const PACK_MAIN_LIMIT = 2 ** 33; // keeps main*2^20 + code below 2^53

function packable(e: KeyEntry): boolean {
  const code = e[4];
  return e.length === ENTRY_HEAD + 2 && e[0] === e[3] && e[1] === 0 && code >= 0 && code < PACK && e[3] < PACK_MAIN_LIMIT;
}

/** Writes the entry a packed slot stands for into `into` (length 5). */
function unpackInto(slot: number, into: KeyEntry): KeyEntry {
  const main = Math.floor(slot / PACK);
  into[0] = main;
  into[1] = 0;
  into[2] = ENTRY_HEAD;
  into[3] = main;
  into[4] = slot - main * PACK;
  return into;
}

const readScratch: KeyEntry = [0, 0, 0, 0, 0];
const deletedScratch: KeyEntry = [0, 0, 0, 0, 0, 0, 0];

/**
 * Put-then-tombstone entries of packed keys, four numbers a record: put main, put code, tombstone
 * main, tombstone code. Freed records are reused.
 */
class DeletedTable {
  private data = new Float64Array(0);
  private used = 0;
  private readonly free: number[] = [];

  /** Records in use (tests). */
  get size(): number {
    return this.used - this.free.length;
  }

  add(putMain: number, putCode: number, tombMain: number, tombCode: number): number {
    let r = this.free.pop();
    if (r === undefined) {
      r = this.used++;
      if (r * 4 >= this.data.length) {
        const grown = new Float64Array(Math.max(1024, this.data.length * 2));
        grown.set(this.data);
        this.data = grown;
      }
    }
    const d = this.data;
    const o = r * 4;
    d[o] = putMain;
    d[o + 1] = putCode;
    d[o + 2] = tombMain;
    d[o + 3] = tombCode;
    return r;
  }

  /** Writes record r as an entry into `into` (length 7). */
  entry(r: number, into: KeyEntry): KeyEntry {
    const d = this.data;
    const o = r * 4;
    into[0] = d[o];
    into[1] = 0;
    into[2] = ENTRY_HEAD;
    into[3] = d[o];
    into[4] = d[o + 1];
    into[5] = d[o + 2];
    into[6] = d[o + 3];
    return into;
  }

  tombMain(r: number): number {
    return this.data[r * 4 + 2];
  }

  release(r: number): void {
    this.free.push(r);
  }
}

function toSlot(e: KeyEntry): KeySlot {
  return packable(e) ? e[3] * PACK + e[4] : e;
}

/**
 * The ordered key → entry map. Keys are private copies so the index never pins a request buffer
 * (sorted-btree's set() would store the caller's key object: only pass it keys the tree owns);
 * `liveKeys` counts keys whose newest revision is a put (etcd's keys gauge).
 */
export class KeyIndex {
  readonly tree: BTree<Uint8Array, KeySlot> = new BTree<Uint8Array, KeySlot>(undefined, compareKeys, 64);
  liveKeys = 0;
  private readonly arena = new KeyArena();
  private readonly deleted = new DeletedTable();
  private readonly pair: [Uint8Array, KeySlot] = [EMPTY_KEY, 0];

  /** Keys in the tree, deleted-but-not-yet-compacted ones included. */
  get size(): number {
    return this.tree.size;
  }

  /** The key's entry for reading (see entryOf: valid until the next index call), or undefined. */
  get(key: Uint8Array): KeyEntry | undefined {
    const slot = this.tree.get(key);
    return slot === undefined ? undefined : this.entryOf(slot);
  }

  /**
   * The entry of a slot (as the tree's iteration yields them), for reading only: a packed or deleted
   * slot is unpacked into a shared scratch array that the next call overwrites.
   */
  entryOf(slot: KeySlot): KeyEntry {
    if (typeof slot !== 'number') return slot;
    return slot >= 0 ? unpackInto(slot, readScratch) : this.deleted.entry(-slot - 1, deletedScratch);
  }

  /** Records of deleted packed keys in use (tests). */
  get deletedRecords(): number {
    return this.deleted.size;
  }

  /** A deleted packed key's slot: its put (slot) and the tombstone (main, sub). */
  private deletedSlot(packed: number, main: number, sub: number): number {
    const putMain = Math.floor(packed / PACK);
    const code = packed - putMain * PACK;
    if (putMain > main || (putMain === main && codeSub(code) >= sub)) throw new Error(`mvcc: tombstone at ${main}.${sub} before its put`);
    return -1 - this.deleted.add(putMain, code, main, -1 - sub);
  }

  /** The key's entry as a mutable array (unpacking a packed slot in the tree), or undefined. */
  private mutable(key: Uint8Array): KeyEntry | undefined {
    const pair = this.tree.getPairOrNextHigher(key, this.pair);
    if (pair === undefined || compareKeys(pair[0], key) !== 0) return undefined;
    const slot = pair[1];
    if (typeof slot !== 'number') return slot;
    let e: KeyEntry;
    if (slot >= 0) {
      e = unpackInto(slot, [0, 0, 0, 0, 0]);
    } else {
      e = this.deleted.entry(-slot - 1, [0, 0, 0, 0, 0, 0, 0]);
      this.deleted.release(-slot - 1);
    }
    this.tree.set(pair[0], e); // pair[0] is the tree's own key object
    return e;
  }

  /**
   * The key's entry, mutable, for a write that follows at once (putInto), or undefined for a key not in
   * the index: one walk of the tree where get() + put() took two or three.
   */
  forUpdate(key: Uint8Array): KeyEntry | undefined {
    return this.mutable(key);
  }

  /** Records a put at (main, sub) in an entry forUpdate just returned, or of a new key when it returned undefined. */
  putInto(e: KeyEntry | undefined, key: Uint8Array, main: number, sub: number, hasLease: boolean): void {
    if (e === undefined) {
      this.tree.set(this.arena.copy(key), toSlot(entryNew(main, sub, hasLease)));
      this.liveKeys++;
      return;
    }
    if (!entryLive(e)) this.liveKeys++;
    entryPut(e, main, sub, hasLease);
  }

  /** Records a put of `key` at (main, sub); a new key is copied into the index. */
  put(key: Uint8Array, main: number, sub: number, hasLease: boolean): void {
    this.putInto(this.mutable(key), key, main, sub, hasLease);
  }

  /**
   * Tombstones every live key of `keys` (latin1 strings in strictly increasing order; keys missing or
   * already deleted are skipped) at (main, firstSub), (main, firstSub+1), … in that order. One walk of
   * the tree over their span edits the entries in place: no lookup per key, a packed key is unpacked
   * where it sits. A run of more than SORTED_WALK_GAP_MAX other keys between two listed ones is jumped
   * by a fresh descent.
   */
  tombstoneSorted(keys: readonly string[], main: number, firstSub: number): SortedTombstones {
    const st: SortedWalk = {
      list: keys,
      j: 0,
      gap: 0,
      main,
      sub: firstSub,
      out: { keys: [], prevMains: [], prevCodes: [], descents: 0 },
      toDeleted: (packed, m, sub) => this.deletedSlot(packed, m, sub),
    };
    const n = keys.length;
    if (n === 0) return st.out;
    const high = Buffer.from(keys[n - 1], 'latin1');
    const visit = (k: Uint8Array, slot: KeySlot): WalkEdit | undefined => walkStep(st, k, slot);
    while (st.j < n) {
      st.gap = 0;
      st.out.descents++;
      const j0 = st.j;
      this.tree.editRange(Buffer.from(keys[j0], 'latin1'), high, true, visit);
      // A walk that met no key from keys[j0] on: none of the rest is in the tree.
      if (st.j === j0) break;
    }
    this.liveKeys -= st.out.keys.length;
    return st.out;
  }

  /** Records a delete of a live key at (main, sub). */
  tombstone(key: Uint8Array, main: number, sub: number): void {
    const pair = this.tree.getPairOrNextHigher(key, this.pair);
    if (pair !== undefined && compareKeys(pair[0], key) === 0 && typeof pair[1] === 'number' && pair[1] >= 0) {
      this.tree.set(pair[0], this.deletedSlot(pair[1], main, sub));
      this.liveKeys--;
      return;
    }
    const e = this.mutable(key);
    if (e === undefined) throw new Error('mvcc: tombstone of a key not in the index');
    entryTombstone(e, main, sub);
    this.liveKeys--;
  }

  /** Removes the last pair of `key` (undo of a put or tombstone by an aborted write). */
  undoLast(key: Uint8Array): void {
    const e = this.mutable(key);
    if (e === undefined || e.length < ENTRY_HEAD + 2) throw new Error('mvcc: undo of a key not in the index');
    const wasLive = entryLive(e);
    e.length -= 2;
    if (e[2] >= e.length) {
      // The undone put had started the newest generation: find the previous one's start.
      let gs = ENTRY_HEAD;
      for (let q = e.length - 2; q >= ENTRY_HEAD; q -= 2)
        if (e[q + 1] < 0 && q + 2 < e.length) {
          gs = q + 2;
          break;
        }
      e[2] = gs;
    }
    if (e.length === ENTRY_HEAD) {
      this.tree.delete(key);
      this.liveKeys--;
      return;
    }
    const nowLive = entryLive(e);
    if (wasLive && !nowLive) this.liveKeys--;
    else if (!wasLive && nowLive) this.liveKeys++;
  }

  /** Restore path (etcd's restore): the first revision seen for a key whose older history is gone. */
  restoreNew(key: Uint8Array, main: number, sub: number, hasLease: boolean, created: number, version: number): void {
    this.tree.set(this.arena.copy(key), toSlot(entryNew(main, sub, hasLease, created, version - 1)));
    this.liveKeys++;
  }

  /**
   * Compacts one key at `atRev` (ownKey must be the tree's own key object, as iteration yields).
   * A packed key holds one put and nothing to drop.
   */
  compactKey(ownKey: Uint8Array, slot: KeySlot, atRev: number): void {
    if (typeof slot === 'number') {
      // A deleted packed key goes once compaction reaches its tombstone; before, its one put stays.
      if (slot < 0 && this.deleted.tombMain(-slot - 1) <= atRev) {
        this.deleted.release(-slot - 1);
        this.tree.delete(ownKey);
      }
      return;
    }
    if (!entryCompact(slot, atRev)) {
      this.tree.delete(ownKey);
      return;
    }
    const packed = toSlot(slot);
    if (packed !== slot) this.tree.set(ownKey, packed);
  }
}

const EMPTY_KEY = new Uint8Array(0);

interface SortedWalk {
  readonly list: readonly string[];
  /** The next listed key to find. */
  j: number;
  /** Tree keys passed since the last listed one. */
  gap: number;
  readonly main: number;
  sub: number;
  readonly out: SortedTombstones;
  /** KeyIndex.deletedSlot. */
  readonly toDeleted: (packed: number, main: number, sub: number) => number;
}

/** sorted-btree's editRange commands; reused (it reads them before the next call). */
type WalkEdit = { value?: KeySlot; break?: boolean };
const EDIT_SET: WalkEdit = { value: 0 };
const EDIT_SET_STOP: WalkEdit = { value: 0, break: true };
const EDIT_STOP: WalkEdit = { break: true };

/** One tree pair of tombstoneSorted's walk. */
function walkStep(st: SortedWalk, k: Uint8Array, slot: KeySlot): WalkEdit | undefined {
  const list = st.list;
  const n = list.length;
  while (st.j < n) {
    const c = compareKeyLatin1(k, list[st.j]);
    if (c < 0) {
      // A key that is not listed: walk on, or descend afresh past a long gap.
      return ++st.gap > SORTED_WALK_GAP_MAX ? EDIT_STOP : undefined;
    }
    if (c > 0) {
      st.j++; // a listed key that is not in the tree
      continue;
    }
    st.j++;
    st.gap = 0;
    const last = st.j === n;
    const o = st.out;
    if (typeof slot === 'number') {
      if (slot < 0) return last ? EDIT_STOP : undefined; // deleted already
      // A packed key (one put, the common case) becomes a deleted one: a record, no array.
      const putMain = Math.floor(slot / PACK);
      o.keys.push(k);
      o.prevMains.push(putMain);
      o.prevCodes.push(slot - putMain * PACK);
      const cmd = last ? EDIT_SET_STOP : EDIT_SET;
      cmd.value = st.toDeleted(slot, st.main, st.sub++);
      return cmd;
    }
    const e = slot;
    if (!entryLive(e)) return last ? EDIT_STOP : undefined;
    o.keys.push(k);
    o.prevMains.push(e[e.length - 2]);
    o.prevCodes.push(e[e.length - 1]);
    entryTombstone(e, st.main, st.sub++);
    return last ? EDIT_STOP : undefined;
  }
  return EDIT_STOP;
}
