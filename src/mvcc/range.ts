// Range reads with etcd's exact semantics (mvcc rangeKeys + the applier's sort/filter/limit), done
// as a stream over the key index: `count` comes from the index alone, values are fetched only for
// keys that end up in the response, and a sorted or filtered range with a limit keeps a bounded
// top-k heap instead of materializing the whole range (etcd #12342).
import { Errors } from '../errors.js';
import { decodeKeyValue, encodeKeyValue } from '../proto/kv.js';
import { sizeDelimited, EMPTY_BYTES } from '../proto/wire.js';
import type { Backend } from './backend.js';
import { codeSub, compareKeys, entryCreated, entryFind, entryGenStart, entryVersion, slotEntry, type KeyEntry, type KeyIndex, type KeySlot } from './key_index.js';

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
  /** Encoded KeyValue once fetched. */
  kv: Uint8Array | undefined;
  /** The value (VALUE sorts only). */
  val: Uint8Array | undefined;
}

function newCand(): Cand {
  return { key: EMPTY_BYTES, main: 0, sub: 0, num: 0, kv: undefined, val: undefined };
}

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
 * Visits each key of [key, end) (etcd range_end rules) that exists at `rev`, in key order:
 * visit(key, entry, pair offset, ctx) returns false to stop. Returns the number of keys visited.
 */
export function scanLive<C>(
  index: KeyIndex, key: Uint8Array, end: Uint8Array | undefined, rev: number,
  visit: (k: Uint8Array, e: KeyEntry, p: number, ctx: C) => boolean, ctx: C,
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
  let n = 0;
  const it = index.tree.entries(key, scanPair);
  for (let r = it.next(); !r.done; r = it.next()) {
    const k = r.value[0];
    if (kind === EndKind.Bounded && compareKeys(k, end!) >= 0) break;
    const e = slotEntry(r.value[1]);
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
  needCreate = false;
  /** Keys in the range (count). */
  count = 0;
  /** Keys that passed the filters. */
  matched = 0;
  /** Bounded heap (limit > 0) or plain list (limit = 0) of candidates. */
  cands: Cand[] = [];
  limit = 0;
  spare: Cand = newCand();
  /** Plain path: kvs out, bytes budget. */
  out: Uint8Array[] = [];
  outBytes = 0;
  maxBytes = 0;
  keysOnly = false;
  truncated = false;
  takeMax = 0;

  reset(src: RangeSource, rev: number): void {
    this.src = src;
    this.rev = rev;
    this.count = 0;
    this.matched = 0;
    this.cands = [];
    this.out = [];
    this.outBytes = 0;
    this.truncated = false;
  }
}
const run = new RangeRun();

/** Range over the index at the reader's revision `curRev`, with etcd's semantics. */
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
    const filtered = r.minMod !== 0 || r.maxMod !== 0 || r.minCreate !== 0 || r.maxCreate !== 0;
    // etcd: a non-KEY target with order NONE sorts ascending.
    const effOrder = target !== SortTarget.KEY && order === SortOrder.NONE ? SortOrder.ASCEND : order;
    r.target = effOrder === SortOrder.ASCEND || effOrder === SortOrder.DESCEND ? target : SortTarget.KEY;
    r.descending = effOrder === SortOrder.DESCEND;
    r.needCreate = r.minCreate !== 0 || r.maxCreate !== 0 || r.target === SortTarget.CREATE;

    if (order === SortOrder.NONE && !filtered) {
      if (r.target === SortTarget.KEY) {
        // The common case: key order, fetch only what is returned.
        r.takeMax = limit > 0 ? limit : Infinity;
        r.count = scanLive(src.index, key, end, rev, plainVisit, r);
        const more = r.truncated || (limit > 0 && r.count > limit);
        return { rev: curRev, count: r.count, more, kvs: r.out };
      }
      // etcd quirk: with order NONE the limit is applied before sorting (it fetches limit+1 keys
      // in key order, sorts those, then cuts to the limit).
      r.limit = 0;
      r.takeMax = limit > 0 ? limit + 1 : Infinity;
      r.count = scanLive(src.index, key, end, rev, collectFirstVisit, r);
      const cands = r.cands.sort(candCompare);
      return finish(r, cands, limit, curRev, limit > 0 && r.count > limit);
    }

    // Sorted and/or filtered: etcd drops the limit, fetches everything, filters, sorts, cuts. We
    // stream, keeping the best `limit` candidates (all of them when there is no limit).
    r.limit = limit;
    r.count = scanLive(src.index, key, end, rev, sortedVisit, r);
    let cands = r.cands;
    if (r.target === SortTarget.KEY && !r.descending) {
      if (limit > 0) cands.sort(candCompare); // heap order → output order
    } else {
      cands.sort(candCompare);
    }
    if (limit > 0 && cands.length > limit) cands = cands.slice(0, limit);
    return finish(r, cands, limit, curRev, limit > 0 && r.matched > limit);
  } finally {
    r.cands = [];
    r.out = [];
    r.src = undefined!; // do not keep a closed store alive
    r.spare.kv = r.spare.val = undefined;
    r.spare.key = EMPTY_BYTES;
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

function plainVisit(_k: Uint8Array, e: KeyEntry, p: number, r: RangeRun): boolean {
  // Keep walking after the output is full: count must cover the whole range.
  if (r.out.length < r.takeMax && !r.truncated) emit(r, fetchKv(r.src.be, e[p], codeSub(e[p + 1])));
  return true;
}

/** Fills `c` for the key; false when a filter rejects it. */
function fillCand(r: RangeRun, c: Cand, k: Uint8Array, e: KeyEntry, p: number): boolean {
  const main = e[p];
  if (r.minMod !== 0 && main < r.minMod) return false;
  if (r.maxMod !== 0 && main > r.maxMod) return false;
  let created = 0;
  let gs = -1;
  if (r.needCreate) {
    gs = entryGenStart(e, p);
    created = entryCreated(e, gs);
    if (r.minCreate !== 0 && created < r.minCreate) return false;
    if (r.maxCreate !== 0 && created > r.maxCreate) return false;
  }
  c.key = k;
  c.main = main;
  c.sub = codeSub(e[p + 1]);
  c.kv = undefined;
  c.val = undefined;
  switch (r.target) {
    case SortTarget.VERSION:
      c.num = entryVersion(e, p, gs >= 0 ? gs : entryGenStart(e, p));
      break;
    case SortTarget.CREATE:
      c.num = created;
      break;
    case SortTarget.MOD:
      c.num = main;
      break;
    case SortTarget.VALUE:
      // Values are fetched one at a time; only the heap's survivors stay referenced.
      c.kv = fetchKv(r.src.be, main, c.sub);
      c.val = decodeKeyValue(c.kv).value;
      c.num = 0;
      break;
    default:
      c.num = 0;
  }
  return true;
}

function collectFirstVisit(k: Uint8Array, e: KeyEntry, p: number, r: RangeRun): boolean {
  if (r.cands.length < r.takeMax) {
    const c = newCand();
    fillCand(r, c, k, e, p);
    r.cands.push(c);
  }
  return true;
}

function sortedVisit(k: Uint8Array, e: KeyEntry, p: number, r: RangeRun): boolean {
  const c = r.spare;
  if (!fillCand(r, c, k, e, p)) return true;
  r.matched++;
  const heap = r.cands;
  if (r.limit === 0) {
    heap.push(c);
    r.spare = newCand();
    return true;
  }
  if (heap.length < r.limit) {
    heap.push(c);
    siftUp(heap, heap.length - 1);
    r.spare = newCand();
    return true;
  }
  // Max-heap on output order: the root is the candidate that would come last.
  if (candCompare(c, heap[0]) < 0) {
    r.spare = heap[0];
    heap[0] = c;
    siftDown(heap, 0);
  }
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
      d = Buffer.compare(a.val!, b.val!);
      break;
    default:
      d = a.num - b.num;
  }
  if (d !== 0) return run.descending ? -d : d;
  return compareKeys(a.key, b.key);
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

/** Fetches the chosen candidates' kvs in order, within the byte budget. */
function finish(r: RangeRun, cands: Cand[], limit: number, curRev: number, moreByLimit: boolean): RangeResult {
  const n = limit > 0 ? Math.min(limit, cands.length) : cands.length;
  for (let i = 0; i < n; i++) {
    const c = cands[i];
    if (!emit(r, c.kv ?? fetchKv(r.src.be, c.main, c.sub))) break;
  }
  return { rev: curRev, count: r.count, more: moreByLimit || r.truncated, kvs: r.out };
}
