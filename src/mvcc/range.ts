// Range reads with etcd's exact semantics (mvcc rangeKeys + the applier's sort/filter/limit), done
// as a stream over the key index: `count` comes from the index alone, values are fetched only for
// keys that end up in the response, key-ordered ranges (filtered or not, either direction) emit as
// they walk, and a range sorted by another target keeps a top-k heap bounded by the limit and by the
// response byte budget instead of materializing the whole range (etcd #12342).
import { Errors } from '../errors.js';
import { decodeKeyValue, encodeKeyValue } from '../proto/kv.js';
import { sizeDelimited, EMPTY_BYTES } from '../proto/wire.js';
import type { Backend } from './backend.js';
import {
  codeSub,
  compareKeys,
  entryCreated,
  entryFind,
  entryGenStart,
  entryVersion,
  type KeyEntry,
  type KeyIndex,
  type KeySlot,
} from './key_index.js';

/** RangeRequest.SortOrder */
export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
/** RangeRequest.SortTarget */
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;

/** Options of a range read; every field defaults to etcd's zero value. */
export interface RangeOptions {
  /** Revision to read at; 0 (or negative) = the reader's current revision. */
  rev?: number;
  /** 0 = no limit. */
  limit?: number;
  countOnly?: boolean;
  keysOnly?: boolean;
  sortOrder?: number;
  sortTarget?: number;
  /** Filters; 0 = unbounded. */
  minModRevision?: number;
  maxModRevision?: number;
  minCreateRevision?: number;
  maxCreateRevision?: number;
  /** Beyond etcd: stop adding kvs once the response would pass this many bytes (0 = off). */
  maxResponseBytes?: number;
}

/** A range's answer, ready for a RangeResponse. */
export interface RangeResult {
  /** The header revision: the reader's current revision (not the one read at). */
  rev: number;
  /** Keys in the range at the revision read, before filters and limits (etcd's count). */
  count: number;
  /** More kvs matched than were returned. */
  more: boolean;
  /** Encoded mvccpb.KeyValue messages in response order (RangeResponse.kvs_encoded). */
  kvs: Uint8Array[];
}

/** How a range's end bytes read (etcd's wire convention). */
export const enum EndKind {
  /** range_end empty: the key alone */
  Single,
  /** range_end "\0": every key >= key */
  FromKey,
  /** [key, range_end) */
  Bounded,
}

/** Classifies a range_end as etcd does. */
export function endKind(end: Uint8Array | undefined): EndKind {
  if (end === undefined || end.length === 0) return EndKind.Single;
  if (end.length === 1 && end[0] === 0) return EndKind.FromKey;
  return EndKind.Bounded;
}

/** A key in a range read: what sorting and output need. */
interface Cand {
  key: Uint8Array;
  main: number;
  sub: number;
  /** The numeric sort attribute (version / create / mod). */
  num: number;
  /** Encoded KeyValue once fetched (VALUE sorts without keys_only hold it; the others fetch at the end). */
  kv: Uint8Array | undefined;
  /** The value, or its first VALUE_PREFIX_BYTES for keys_only (VALUE sorts only). */
  val: Uint8Array | undefined;
  /** `val` is the whole value. */
  valFull: boolean;
  /** Bytes the kv adds to the response, or a lower bound when its value has not been read. */
  bytes: number;
  /** Bytes of kv/val this candidate keeps alive. */
  held: number;
}

function newCand(): Cand {
  return { key: EMPTY_BYTES, main: 0, sub: 0, num: 0, kv: undefined, val: undefined, valFull: true, bytes: 0, held: 0 };
}

/**
 * The least a kv adds to a response beyond its key: tag + length of the KeyValue (>= 2), the key's tag and
 * length (>= 2), and create_revision, mod_revision and version, each nonzero for a live key (>= 2 each).
 */
const KV_WIRE_BYTES_MIN_BEYOND_KEY = 10;

/**
 * keys_only VALUE sorts keep only this much of each value: the response does not carry the values, so
 * the byte budget would not bound them. Two values whose kept prefixes are equal and both cut are read
 * again to compare them.
 */
const VALUE_PREFIX_BYTES = 256;

/** Everything a range needs from the store. */
export interface RangeSource {
  readonly index: KeyIndex;
  readonly be: Backend;
  readonly compactMainRev: number;
}

/** KeyValue bytes of the put at (main, sub); missing data is corruption. */
export function fetchKv(be: Backend, main: number, sub: number): Uint8Array {
  const v = be.readRev(main, sub);
  if (v === undefined) throw new Error(`mvcc: revision ${main}.${sub} is in the index but not in the backend`);
  return v;
}

/**
 * Visits each key of [key, end) (etcd range_end rules) that exists at `rev`, in key order, or from the last
 * key down when `descending`: visit(key, entry, pair offset, ctx) returns false to stop. Returns the number
 * of keys visited.
 */
export function scanLive<C>(
  index: KeyIndex,
  key: Uint8Array,
  end: Uint8Array | undefined,
  rev: number,
  visit: (k: Uint8Array, e: KeyEntry, p: number, ctx: C) => boolean,
  ctx: C,
  descending = false,
): number {
  const kind = endKind(end);
  if (kind === EndKind.Single) {
    const e = index.get(key);
    if (e === undefined) return 0;
    const p = entryFind(e, rev);
    if (p < 0) return 0;
    visit(key, e, p, ctx);
    return 1;
  }
  // Ascending: from key, stopping at end (none for FromKey). Descending: from the last key below end (or
  // the last key, for FromKey; entriesReversed skips end itself), stopping below key.
  const it = descending
    ? index.tree.entriesReversed(kind === EndKind.Bounded ? end : undefined, scanPair, true)
    : index.tree.entries(key, scanPair);
  const stopAt = descending ? key : kind === EndKind.Bounded ? end! : undefined;
  let n = 0;
  for (let r = it.next(); !r.done; r = it.next()) {
    const k = r.value[0];
    if (stopAt !== undefined && (descending ? compareKeys(k, stopAt) < 0 : compareKeys(k, stopAt) >= 0)) break;
    const e = index.entryOf(r.value[1]);
    const p = entryFind(e, rev);
    if (p < 0) continue;
    n++;
    if (!visit(k, e, p, ctx)) break;
  }
  return n;
}
const scanPair: (Uint8Array | KeySlot)[] = [];

/** Checks a read revision against the reader's current one and the compacted one; returns the one to read at. */
export function resolveReadRev(rev: number | undefined, curRev: number, compactMainRev: number): number {
  let r = rev ?? 0;
  if (r > curRev) throw Errors.FutureRev();
  if (r <= 0) r = curRev;
  // etcd allows reading at exactly the compacted revision; only older ones are gone.
  if (r < compactMainRev) throw Errors.Compacted();
  return r;
}

/** Per-call state of a range, reused between calls (ranges are synchronous and never nest). */
class RangeRun {
  src!: RangeSource;
  rev = 0;
  target = 0;
  descending = false;
  minMod = 0;
  maxMod = 0;
  minCreate = 0;
  maxCreate = 0;
  filtered = false;
  /** Keys in the range (count). */
  count = 0;
  /** Keys that passed the filters (and, for the order-NONE quirk, were among those considered). */
  matched = 0;
  limit = 0;
  /** Sorted path: the candidates, a max-heap on output order when bounded, a plain list otherwise. */
  cands: Cand[] = [];
  /** Sorted path: keys it may consider (etcd's order-NONE quirk: the first limit+1); Infinity otherwise. */
  takeMax = 0;
  /** Sorted path: the heap is cut by the limit and/or the byte budget. */
  bounded = false;
  /** Sum of the heap's Cand.bytes. */
  candBytes = 0;
  /**
   * With a byte budget: the best candidate the heap has let go of. Nothing after it in the order can be
   * returned (the budget cuts a prefix), even if it would fit into room the heap has left.
   */
  fence: Cand | undefined = undefined;
  /** Sum of the candidates' Cand.held, and the peaks of it and of their number. */
  heldBytes = 0;
  heldBytesPeak = 0;
  candsPeak = 0;
  spare: Cand = newCand();
  /** kvs out, bytes budget. */
  out: Uint8Array[] = [];
  outBytes = 0;
  maxBytes = 0;
  keysOnly = false;
  /** A kv that belonged in the response was left out for the byte budget. */
  truncated = false;

  reset(src: RangeSource, rev: number): void {
    this.src = src;
    this.rev = rev;
    this.count = 0;
    this.matched = 0;
    this.cands = [];
    this.candBytes = 0;
    this.fence = undefined;
    this.heldBytes = 0;
    this.heldBytesPeak = 0;
    this.candsPeak = 0;
    this.out = [];
    this.outBytes = 0;
    this.truncated = false;
  }
}
const run = new RangeRun();

/**
 * What the last range call held in sort candidates at its peak: how many, and the bytes of kvs and
 * values they kept alive (the response's own kvs not included). Tests check the memory bound with it.
 */
export function lastRangeHeld(): { candidates: number; bytes: number } {
  return { candidates: run.candsPeak, bytes: run.heldBytesPeak };
}

/**
 * Range over the index at the reader's revision `curRev`, with etcd's semantics. Memory: key order
 * (plain, filtered, ascending or descending) streams and holds only the response; other sort targets
 * hold a heap cut to the limit and to the byte budget, whichever binds first, and everything matched
 * only when neither is set (then the response itself is that big).
 */
export function rangeKeys(src: RangeSource, key: Uint8Array, end: Uint8Array | undefined, opts: RangeOptions, curRev: number): RangeResult {
  const rev = resolveReadRev(opts.rev, curRev, src.compactMainRev);
  const r = run;
  r.reset(src, rev);
  try {
    if (opts.countOnly === true) {
      const count = scanLive(src.index, key, end, rev, countVisit, r);
      return { rev: curRev, count, more: false, kvs: [] };
    }
    const order = opts.sortOrder ?? 0;
    const target = opts.sortTarget ?? 0;
    if (target < SortTarget.KEY || target > SortTarget.VALUE) throw Errors.BadRequest(`etcdserver: unknown sort target ${target}`);
    const limit = opts.limit !== undefined && opts.limit > 0 ? opts.limit : 0;
    r.minMod = opts.minModRevision ?? 0;
    r.maxMod = opts.maxModRevision ?? 0;
    r.minCreate = opts.minCreateRevision ?? 0;
    r.maxCreate = opts.maxCreateRevision ?? 0;
    r.maxBytes = opts.maxResponseBytes !== undefined && opts.maxResponseBytes > 0 ? opts.maxResponseBytes : 0;
    r.keysOnly = opts.keysOnly === true;
    r.limit = limit;
    r.filtered = r.minMod !== 0 || r.maxMod !== 0 || r.minCreate !== 0 || r.maxCreate !== 0;
    // etcd: a non-KEY target with order NONE sorts ascending.
    const effOrder = target !== SortTarget.KEY && order === SortOrder.NONE ? SortOrder.ASCEND : order;
    r.target = effOrder === SortOrder.ASCEND || effOrder === SortOrder.DESCEND ? target : SortTarget.KEY;
    r.descending = effOrder === SortOrder.DESCEND;

    if (r.target === SortTarget.KEY) {
      // Key order, either way, filtered or not: walk the index in that direction and emit as we go,
      // up to the limit and the budget; the walk goes on to the end for count (and, filtered, for
      // `more`: etcd drops the limit when filtering, so more = matched > limit).
      r.count = scanLive(src.index, key, end, rev, streamVisit, r, r.descending);
      return { rev: curRev, count: r.count, more: (limit > 0 && r.matched > limit) || r.truncated, kvs: r.out };
    }

    // Sorted by version, create, mod or value. etcd 3.4 drops the limit (unless order is NONE and
    // nothing filters), reads every key of the range with its value, filters, sorts and cuts; we stream
    // through the index keeping the best candidates: `limit` of them, and no more than the budget could
    // return. Only a VALUE sort reads every value (it compares them), one at a time; the others read
    // values only for what they return.
    // etcd quirk: order NONE (so ascending) without filters applies the limit before sorting: it
    // fetches limit+1 keys in key order, sorts those and cuts to the limit.
    r.takeMax = order === SortOrder.NONE && !r.filtered && limit > 0 ? limit + 1 : Infinity;
    r.bounded = limit > 0 || r.maxBytes > 0;
    r.count = scanLive(src.index, key, end, rev, sortedVisit, r);
    return finish(r, curRev);
  } finally {
    r.cands = [];
    r.fence = undefined;
    r.out = [];
    r.src = undefined!; // do not keep a closed store alive
    clearCand(r.spare);
  }
}

function countVisit(): boolean {
  return true;
}

/** Bytes a kv adds to a RangeResponse (tag + length prefix + message). */
function kvWireBytes(kv: Uint8Array): number {
  return 1 + sizeDelimited(kv.length);
}

function stripValue(kv: Uint8Array): Uint8Array {
  const m = decodeKeyValue(kv);
  if (m.value.length === 0) return kv;
  m.value = EMPTY_BYTES;
  return encodeKeyValue(m);
}

/** Adds a kv to the output unless the byte budget is spent (the first kv always goes). */
function emit(r: RangeRun, kv: Uint8Array): boolean {
  const out = r.keysOnly ? stripValue(kv) : kv;
  if (r.maxBytes > 0) {
    const n = kvWireBytes(out);
    if (r.out.length > 0 && r.outBytes + n > r.maxBytes) {
      r.truncated = true;
      return false;
    }
    r.outBytes += n;
  }
  r.out.push(out);
  return true;
}

/** False when a min/max mod/create revision filter rejects the key's revision at p. */
function passes(r: RangeRun, e: KeyEntry, p: number): boolean {
  const main = e[p];
  if (r.minMod !== 0 && main < r.minMod) return false;
  if (r.maxMod !== 0 && main > r.maxMod) return false;
  if (r.minCreate !== 0 || r.maxCreate !== 0) {
    const created = entryCreated(e, entryGenStart(e, p));
    if (r.minCreate !== 0 && created < r.minCreate) return false;
    if (r.maxCreate !== 0 && created > r.maxCreate) return false;
  }
  return true;
}

function streamVisit(_k: Uint8Array, e: KeyEntry, p: number, r: RangeRun): boolean {
  if (r.filtered && !passes(r, e, p)) return true;
  r.matched++;
  // Keep walking after the output is full: count (and matched) must cover the whole range.
  if (!r.truncated && (r.limit === 0 || r.out.length < r.limit)) emit(r, fetchKv(r.src.be, e[p], codeSub(e[p + 1])));
  return true;
}

/** Fills `c` for the key; false when a filter rejects it. */
function fillCand(r: RangeRun, c: Cand, k: Uint8Array, e: KeyEntry, p: number): boolean {
  if (r.filtered && !passes(r, e, p)) return false;
  const main = e[p];
  c.key = k;
  c.main = main;
  c.sub = codeSub(e[p + 1]);
  c.kv = undefined;
  c.val = undefined;
  c.valFull = true;
  c.num = 0;
  c.held = 0;
  // Without reading the value only a lower bound of the kv's size is known; the heap keeps every
  // candidate whose bound still fits, finish() then cuts by the real sizes.
  c.bytes = k.length + KV_WIRE_BYTES_MIN_BEYOND_KEY;
  switch (r.target) {
    case SortTarget.VERSION:
      c.num = entryVersion(e, p, entryGenStart(e, p));
      break;
    case SortTarget.CREATE:
      c.num = entryCreated(e, entryGenStart(e, p));
      break;
    case SortTarget.MOD:
      c.num = main;
      break;
    case SortTarget.VALUE: {
      // Values are fetched one at a time; only the heap's survivors stay referenced.
      const kv = fetchKv(r.src.be, main, c.sub);
      const v = decodeKeyValue(kv).value;
      if (r.keysOnly) {
        // The response will not carry the value, so the budget does not bound what holding it
        // costs: keep a copy of its start (a view would pin the whole kv) and its size without it.
        c.valFull = v.length <= VALUE_PREFIX_BYTES;
        c.val = new Uint8Array(c.valFull ? v : v.subarray(0, VALUE_PREFIX_BYTES));
        c.held = c.val.length;
        c.bytes = 1 + sizeDelimited(kv.length - (v.length === 0 ? 0 : 1 + sizeDelimited(v.length)));
      } else {
        c.kv = kv;
        c.val = v;
        c.held = kv.length;
        c.bytes = kvWireBytes(kv);
      }
      break;
    }
  }
  return true;
}

function clearCand(c: Cand): void {
  c.kv = c.val = undefined;
  c.key = EMPTY_BYTES;
}

/** A heap of `n` candidates summing `bytes` is past the limit or the budget. */
function overBound(r: RangeRun, n: number, bytes: number): boolean {
  return (r.limit > 0 && n > r.limit) || (r.maxBytes > 0 && bytes > r.maxBytes);
}

/** Lets go of a candidate the heap will not hold (not in the heap; it may be r.spare). */
function dropCand(r: RangeRun, c: Cand): void {
  if (r.maxBytes === 0) {
    clearCand(c);
    r.spare = c;
    return;
  }
  // Every candidate that reaches here comes before the fence, so it is the new fence.
  const old = r.fence;
  r.fence = c;
  r.heldBytes += c.held;
  if (old !== undefined) {
    r.heldBytes -= old.held;
    clearCand(old);
    r.spare = old;
  } else {
    r.spare = newCand();
  }
}

function sortedVisit(k: Uint8Array, e: KeyEntry, p: number, r: RangeRun): boolean {
  if (r.matched >= r.takeMax) return true;
  const c = r.spare;
  if (!fillCand(r, c, k, e, p)) return true;
  r.matched++;
  const heap = r.cands;
  if (r.bounded) {
    // Max-heap on output order: the root is the candidate that would come last. A candidate's place in
    // the order only moves back as more keys arrive, so one cut now could never be returned: cut the
    // worst while the heap holds more than the limit, or more than the budget by the candidates' sizes
    // (lower bounds: true sizes only cut sooner), keeping the best one (the first kv always goes). With a
    // budget, sizes differ, so room left after a cut must not take a later candidate: see r.fence.
    if (r.fence !== undefined && candCompare(c, r.fence) > 0) return true;
    if (heap.length > 0 && overBound(r, heap.length + 1, r.candBytes + c.bytes) && candCompare(c, heap[0]) > 0) {
      dropCand(r, c);
      return true;
    }
    heap.push(c);
    siftUp(heap, heap.length - 1);
    r.candBytes += c.bytes;
    r.heldBytes += c.held;
    r.spare = newCand();
    // Each candidate cut comes before the one cut before it.
    while (heap.length > 1 && overBound(r, heap.length, r.candBytes)) {
      const worst = heap[0];
      const last = heap.pop()!;
      heap[0] = last;
      siftDown(heap, 0);
      r.candBytes -= worst.bytes;
      r.heldBytes -= worst.held;
      dropCand(r, worst);
    }
  } else {
    heap.push(c);
    r.heldBytes += c.held;
    r.spare = newCand();
  }
  if (heap.length > r.candsPeak) r.candsPeak = heap.length;
  if (r.heldBytes > r.heldBytesPeak) r.heldBytesPeak = r.heldBytes;
  return true;
}

// The comparator is configured per run through `run` (ranges never nest).
/** Output order: the target (reversed for DESCEND), ties by key ascending (what etcd's sort yields for small sets). */
function candCompare(a: Cand, b: Cand): number {
  let d = 0;
  switch (run.target) {
    case SortTarget.KEY:
      d = compareKeys(a.key, b.key);
      return run.descending ? -d : d;
    case SortTarget.VALUE:
      d = a.valFull && b.valFull ? Buffer.compare(a.val!, b.val!) : comparePrefixes(a, b);
      break;
    default:
      d = a.num - b.num;
  }
  if (d !== 0) return run.descending ? -d : d;
  return compareKeys(a.key, b.key);
}

/** Byte order of two values of which at least one is kept only as its first VALUE_PREFIX_BYTES. */
function comparePrefixes(a: Cand, b: Cand): number {
  const av = a.val!;
  const bv = b.val!;
  const n = Math.min(av.length, bv.length);
  const d = Buffer.compare(av.subarray(0, n), bv.subarray(0, n));
  if (d !== 0) return d;
  // A cut value is longer than VALUE_PREFIX_BYTES, so a whole one equal to its start is a proper prefix.
  if (a.valFull) return -1;
  if (b.valFull) return 1;
  return Buffer.compare(fullValue(a), fullValue(b));
}

function fullValue(c: Cand): Uint8Array {
  return decodeKeyValue(fetchKv(run.src.be, c.main, c.sub)).value;
}

function siftUp(h: Cand[], i: number): void {
  const x = h[i];
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (candCompare(h[parent], x) >= 0) break;
    h[i] = h[parent];
    i = parent;
  }
  h[i] = x;
}

function siftDown(h: Cand[], i: number): void {
  const n = h.length;
  const x = h[i];
  for (;;) {
    const l = 2 * i + 1;
    if (l >= n) break;
    const rc = l + 1;
    const c = rc < n && candCompare(h[rc], h[l]) > 0 ? rc : l;
    if (candCompare(h[c], x) <= 0) break;
    h[i] = h[c];
    i = c;
  }
  h[i] = x;
}

/** Sorts the candidates and fetches their kvs in order, within the limit and the byte budget. */
function finish(r: RangeRun, curRev: number): RangeResult {
  const cands = r.cands.sort(candCompare);
  const limit = r.limit;
  const n = limit > 0 ? Math.min(limit, cands.length) : cands.length;
  for (let i = 0; i < n; i++) {
    const c = cands[i];
    if (!emit(r, c.kv ?? fetchKv(r.src.be, c.main, c.sub))) break;
  }
  // The heap may have let go of candidates the budget could not take: compare with what etcd returns.
  const want = limit > 0 ? Math.min(limit, r.matched) : r.matched;
  return { rev: curRev, count: r.count, more: (limit > 0 && r.matched > limit) || r.out.length < want, kvs: r.out };
}
