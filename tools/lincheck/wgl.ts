// Wing–Gong linearizability search with Lowe's memoization (the algorithm Porcupine uses): walk the
// history's call/return events in time order, try to linearize each pending call, backtrack on a return
// whose op is not linearized yet, and never revisit a (set of linearized ops, model state) pair.
import { stepRegister, REGISTER_INIT, type RegOp } from './model.js';

/** Limits of one search; exceeding one gives `unknown`, never `ok`. */
export interface SearchBudget {
  /** Absolute deadline (Date.now() scale). */
  deadlineMs: number;
  /** Most (linearized set, state) pairs remembered. */
  cacheEntriesMax: number;
  /** Most bytes the remembered sets may take. */
  cacheBytesMax: number;
}

/** What one search found. */
export type SearchResult =
  | { verdict: 'ok'; steps: number }
  | { verdict: 'violation'; steps: number; deepest: number }
  | { verdict: 'unknown'; steps: number; reason: string };

interface Node {
  /** Index into ops; -1 for the list head. */
  op: number;
  /** A call node points at its return node; a return node has null. */
  match: Node | null;
  prev: Node | null;
  next: Node | null;
}

/**
 * A remembered (linearized set, state). The set is stored as `base` (every word below it is all ones)
 * and the words from there to the last non-zero one: histories are mostly linearized in order, so the
 * set is a long run of ones plus a short ragged edge, and this keeps an entry a few words long.
 */
interface CacheEntry {
  base: number;
  tail: Uint32Array;
  state: number;
}

const FULL_WORD = 0xffffffff;

const DEADLINE_CHECK_EVERY_STEPS = 4096;

/** A small deterministic PRNG for Zobrist keys (the search must replay identically). */
function zobristKeys(n: number): Int32Array {
  const out = new Int32Array(n);
  let s = 0x2545f491;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s | 0;
  }
  return out;
}

function buildList(ops: readonly RegOp[]): Node {
  interface Ev {
    node: Node;
    timeMs: number;
    isCall: boolean;
    op: number;
  }
  const events: Ev[] = [];
  for (let i = 0; i < ops.length; i++) {
    const ret: Node = { op: i, match: null, prev: null, next: null };
    const call: Node = { op: i, match: ret, prev: null, next: null };
    events.push({ node: call, timeMs: ops[i].callMs, isCall: true, op: i });
    events.push({ node: ret, timeMs: ops[i].returnMs, isCall: false, op: i });
  }
  // At equal times calls go first: treating the two ops as concurrent only ever allows more orders.
  events.sort((a, b) => a.timeMs - b.timeMs || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Node = { op: -1, match: null, prev: null, next: null };
  let last = head;
  for (const e of events) {
    if (!Number.isFinite(e.timeMs) && e.isCall) throw new Error(`op ${e.op}: call time must be finite`);
    e.node.prev = last;
    last.next = e.node;
    last = e.node;
  }
  return head;
}

function lift(call: Node): void {
  call.prev!.next = call.next;
  call.next!.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

function unlift(call: Node): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  call.next!.prev = call;
}

function sameSet(e: CacheEntry, bits: Uint32Array, base: number, top: number): boolean {
  if (e.base !== base || e.tail.length !== top - base) return false;
  const t = e.tail;
  for (let i = 0; i < t.length; i++) if (t[i] !== bits[base + i]) return false;
  return true;
}

/**
 * Is the register history `ops` (one key) linearizable? Ops with returnMs = Infinity are open to the end.
 *
 *   const r = searchRegister(ops, { deadlineMs: Date.now() + 10_000, cacheEntriesMax: 1e6, cacheBytesMax: 256 << 20 });
 */
export function searchRegister(ops: readonly RegOp[], budget: SearchBudget): SearchResult {
  const n = ops.length;
  const head = buildList(ops);
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  const zob = zobristKeys(n);
  const cache = new Map<number, CacheEntry[]>();
  let cacheSize = 0;
  let cacheBytes = 0;
  // bits[w] is all ones for every w < low; bits[w] is zero for every w >= top (kept up to date lazily).
  let low = 0;
  let top = 0;
  const stackNodes: Node[] = [];
  const stackStates: number[] = [];
  let state = REGISTER_INIT;
  let hash = 0;
  let steps = 0;
  let deepest = 0;
  let entry: Node | null = head.next;

  while (head.next !== null) {
    if (++steps % DEADLINE_CHECK_EVERY_STEPS === 0 && Date.now() > budget.deadlineMs) {
      return { verdict: 'unknown', steps, reason: `time budget exhausted after ${steps} steps (${stackNodes.length}/${n} ops linearized)` };
    }
    const e = entry!;
    if (e.match !== null) {
      const i = e.op;
      const next = stepRegister(state, ops[i]);
      let advanced = false;
      if (next >= 0) {
        const w = i >>> 5;
        const m = 1 << (i & 31);
        bits[w] |= m;
        if (w >= top) top = w + 1;
        while (low < words && bits[low] === FULL_WORD) low++;
        const h = hash ^ zob[i];
        const key = (h ^ Math.imul(next + 1, 0x9e3779b1)) | 0;
        let bucket = cache.get(key);
        let seen = false;
        if (bucket !== undefined) {
          for (const c of bucket)
            if (c.state === next && sameSet(c, bits, low, Math.max(low, top))) {
              seen = true;
              break;
            }
        }
        if (!seen) {
          if (cacheSize >= budget.cacheEntriesMax || cacheBytes >= budget.cacheBytesMax) {
            return { verdict: 'unknown', steps, reason: `memo cache full (${cacheSize} states, ${cacheBytes} bytes, of ${n} ops)` };
          }
          if (bucket === undefined) {
            bucket = [];
            cache.set(key, bucket);
          }
          const tail = bits.slice(low, Math.max(low, top));
          bucket.push({ base: low, tail, state: next });
          cacheSize++;
          cacheBytes += tail.byteLength + 64;
          stackNodes.push(e);
          stackStates.push(state);
          if (stackNodes.length > deepest) deepest = stackNodes.length;
          state = next;
          hash = h;
          lift(e);
          entry = head.next;
          advanced = true;
        } else {
          bits[w] &= ~m;
          if (w < low) low = w;
          while (top > 0 && bits[top - 1] === 0) top--;
        }
      }
      if (!advanced) entry = e.next;
    } else {
      // The earliest pending return belongs to an op that cannot be linearized yet: undo the last choice.
      if (stackNodes.length === 0) return { verdict: 'violation', steps, deepest };
      const node = stackNodes.pop()!;
      state = stackStates.pop()!;
      const i = node.op;
      hash ^= zob[i];
      const w = i >>> 5;
      bits[w] &= ~(1 << (i & 31));
      if (w < low) low = w;
      while (top > 0 && bits[top - 1] === 0) top--;
      unlift(node);
      entry = node.next;
    }
  }
  return { verdict: 'ok', steps };
}
