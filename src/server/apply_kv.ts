// etcd's KV semantics on top of the MVCC store: request validation as v3rpc/key.go does it
// (before proposing) and the applier of committed Range/Put/DeleteRange/Txn/Compaction entries
// as etcdserver/apply.go does it. Synchronous; runs on every request.
//
// Responses carry a header holding only `revision` (as etcd's inner txn responses do); the server
// fills in cluster_id, member_id and raft_term of the top-level header.
import { Errors } from '../errors.js';
import type { Mvcc, MvccEvent, MvccLeaseHooks, MvccWriteTxn, RangeOptions, RangeResult } from '../mvcc/index.js';
import { decodeKeyValue, type KeyValue } from '../proto/kv.js';
import type {
  CompactionRequestInit,
  CompactionResponseInit,
  CompareInit,
  DeleteRangeRequestInit,
  DeleteRangeResponseInit,
  PutRequestInit,
  PutResponseInit,
  RangeRequestInit,
  RangeResponseInit,
  RequestOpInit,
  ResponseOpInit,
  TxnRequestInit,
  TxnResponseInit,
} from '../proto/rpc.js';
import { EMPTY_BYTES } from '../proto/wire.js';

/** Limits from the server's flags. */
export interface KvLimits {
  /** --max-txn-ops (etcd default 128). */
  maxTxnOps: number;
  /** --max-range-response-bytes; 0 = off (etcd has no such limit). */
  maxRangeResponseBytes: number;
}

/** What the applier needs from the lessor. */
export interface LeaseHooks extends MvccLeaseHooks {
  exists(id: bigint): boolean;
}

/** Lease hooks for a server without a lessor: no lease exists, so any lease ≠ 0 is not found. */
export const noLeases: LeaseHooks = {
  exists: () => false,
  attach: () => undefined,
  detach: () => undefined,
};

/** A write's response and the changes it made (for watchers). */
export interface KvApplied<R> {
  response: R;
  events: MvccEvent[];
}

const SORT_TARGET_MAX = 4;
const ZERO_KV: KeyValue = { key: EMPTY_BYTES, create_revision: 0, mod_revision: 0, version: 0, value: EMPTY_BYTES, lease: 0n };

const empty = (b: Uint8Array | undefined): boolean => b === undefined || b.length === 0;

// ---------------------------------------------------------------------------------------------
// Validation (v3rpc/key.go), before a request is proposed.

/** etcd's checkRangeRequest (plus: an unknown sort target is rejected instead of crashing). */
export function validateRangeRequest(req: RangeRequestInit): void {
  if (empty(req.key)) throw Errors.EmptyKey();
  const t = req.sort_target ?? 0;
  if (t < 0 || t > SORT_TARGET_MAX) throw Errors.BadRequest(`etcdserver: unknown sort target ${t}`);
}

/** etcd's checkPutRequest. */
export function validatePutRequest(req: PutRequestInit): void {
  if (empty(req.key)) throw Errors.EmptyKey();
  if (req.ignore_value === true && !empty(req.value)) throw Errors.ValueProvided();
  if (req.ignore_lease === true && (req.lease ?? 0n) !== 0n) throw Errors.LeaseProvided();
}

/** etcd's checkDeleteRequest. */
export function validateDeleteRangeRequest(req: DeleteRangeRequestInit): void {
  if (empty(req.key)) throw Errors.EmptyKey();
}

/** etcd's checkTxnRequest (op counts, empty keys, every op) and checkIntervals (duplicate keys). */
export function validateTxnRequest(req: TxnRequestInit, limits: KvLimits): void {
  checkTxn(req, limits.maxTxnOps);
  checkIntervals(req.success ?? []);
  checkIntervals(req.failure ?? []);
}

function checkTxn(req: TxnRequestInit, maxTxnOps: number): void {
  const compare = req.compare ?? [];
  const success = req.success ?? [];
  const failure = req.failure ?? [];
  const opc = Math.max(compare.length, success.length, failure.length);
  if (opc > maxTxnOps) throw Errors.TooManyOps();
  for (let i = 0; i < compare.length; i++) if (empty(compare[i].key)) throw Errors.EmptyKey();
  // A nested txn gets what is left of the budget, as in etcd.
  for (let i = 0; i < success.length; i++) checkOp(success[i], maxTxnOps - opc);
  for (let i = 0; i < failure.length; i++) checkOp(failure[i], maxTxnOps - opc);
}

function checkOp(op: RequestOpInit, maxTxnOps: number): void {
  if (op.request_range !== undefined) validateRangeRequest(op.request_range);
  else if (op.request_put !== undefined) validatePutRequest(op.request_put);
  else if (op.request_delete_range !== undefined) validateDeleteRangeRequest(op.request_delete_range);
  else if (op.request_txn !== undefined) checkTxn(op.request_txn, maxTxnOps);
  else throw Errors.KeyNotFound(); // an op with nothing set, as etcd answers it
}

/** A deleted interval [begin, end); end undefined = no upper bound. */
interface Interval {
  begin: Buffer;
  end: Buffer | undefined;
}

const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

function intersectsPoint(dels: Interval[], key: Buffer): boolean {
  for (let i = 0; i < dels.length; i++) {
    const d = dels[i];
    if (Buffer.compare(key, d.begin) >= 0 && (d.end === undefined || Buffer.compare(key, d.end) < 0)) return true;
  }
  return false;
}

/**
 * etcd's checkIntervals: within one branch, no key may be put twice or put and deleted; a nested
 * txn's then/else branches may put the same key (only one runs). etcd's interval tree treats a
 * range_end of "\0" as a literal key, so a from-key delete conflicts with nothing; kept as is.
 */
function checkIntervals(reqs: RequestOpInit[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (let i = 0; i < reqs.length; i++) {
    const d = reqs[i].request_delete_range;
    if (d === undefined) continue;
    const key = Buffer.from(d.key ?? EMPTY_BYTES);
    if (!empty(d.range_end)) dels.push({ begin: key, end: Buffer.from(d.range_end!) });
    else dels.push({ begin: key, end: Buffer.concat([key, Buffer.from([0])]) });
  }
  const puts = new Set<string>();
  for (let i = 0; i < reqs.length; i++) {
    const t = reqs[i].request_txn;
    if (t === undefined) continue;
    const then = checkIntervals(t.success ?? []);
    const els = checkIntervals(t.failure ?? []);
    for (const k of then.puts) {
      if (puts.has(k) || intersectsPoint(dels, Buffer.from(k, 'latin1'))) throw Errors.DuplicateKey();
      puts.add(k);
    }
    for (const k of els.puts) {
      if (puts.has(k) && !then.puts.has(k)) throw Errors.DuplicateKey();
      if (intersectsPoint(dels, Buffer.from(k, 'latin1'))) throw Errors.DuplicateKey();
      puts.add(k);
    }
    for (const d of then.dels) if (unionKeeps(d)) dels.push(d);
    for (const d of els.dels) if (unionKeeps(d)) dels.push(d);
  }
  for (let i = 0; i < reqs.length; i++) {
    const p = reqs[i].request_put;
    if (p === undefined) continue;
    const key = p.key ?? EMPTY_BYTES;
    const k = latin1(key);
    if (puts.has(k) || intersectsPoint(dels, Buffer.from(key))) throw Errors.DuplicateKey();
    puts.add(k);
  }
  return { puts, dels };
}

/**
 * etcd merges a child's deletes through a visit of ["\0", ∞), which skips intervals whose end sorts
 * at or before their begin (the from-key "\0" ones); they intersect nothing anyway.
 */
function unionKeeps(d: Interval): boolean {
  return d.end === undefined || Buffer.compare(d.end, d.begin) > 0;
}

// ---------------------------------------------------------------------------------------------
// Applying.

/** The read side shared by the store (read-only requests) and a write transaction. */
interface KvView {
  range(key: Uint8Array, end: Uint8Array | undefined, opts?: RangeOptions): RangeResult;
}

function rangeOptions(req: RangeRequestInit, limits: KvLimits): RangeOptions {
  return {
    rev: req.revision ?? 0,
    limit: req.limit ?? 0,
    countOnly: req.count_only === true,
    keysOnly: req.keys_only === true,
    sortOrder: req.sort_order ?? 0,
    sortTarget: req.sort_target ?? 0,
    minModRevision: req.min_mod_revision ?? 0,
    maxModRevision: req.max_mod_revision ?? 0,
    minCreateRevision: req.min_create_revision ?? 0,
    maxCreateRevision: req.max_create_revision ?? 0,
    maxResponseBytes: limits.maxRangeResponseBytes,
  };
}

function rangeOn(view: KvView, req: RangeRequestInit, limits: KvLimits): RangeResponseInit {
  const r = view.range(req.key ?? EMPTY_BYTES, req.range_end, rangeOptions(req, limits));
  return { header: { revision: r.rev }, kvs_encoded: r.kvs, more: r.more, count: r.count };
}

/**
 * A Range (serializable, or linearizable once the read index is applied). Throws
 * Errors.Compacted / Errors.FutureRev.
 */
export function applyRange(store: Mvcc, req: RangeRequestInit, limits: KvLimits): RangeResponseInit {
  return rangeOn(store, req, limits);
}

function putIn(txn: MvccWriteTxn, p: PutRequestInit): PutResponseInit {
  const key = p.key ?? EMPTY_BYTES;
  let value = p.value ?? EMPTY_BYTES;
  let lease = p.lease ?? 0n;
  const ignoreValue = p.ignore_value === true;
  const ignoreLease = p.ignore_lease === true;
  let prev: KeyValue | undefined;
  if (ignoreValue || ignoreLease || p.prev_kv === true) {
    const bytes = txn.get(key);
    if (bytes !== undefined) prev = decodeKeyValue(bytes);
  }
  if ((ignoreValue || ignoreLease) && prev === undefined) throw Errors.KeyNotFound();
  if (ignoreValue) value = prev!.value;
  if (ignoreLease) lease = prev!.lease;
  const rev = txn.put(key, value, lease);
  const resp: PutResponseInit = { header: { revision: rev } };
  if (p.prev_kv === true && prev !== undefined) resp.prev_kv = prev;
  return resp;
}

function deleteIn(txn: MvccWriteTxn, d: DeleteRangeRequestInit): DeleteRangeResponseInit {
  const wantPrev = d.prev_kv === true;
  const r = txn.deleteRange(d.key ?? EMPTY_BYTES, d.range_end, wantPrev);
  const resp: DeleteRangeResponseInit = { header: { revision: r.rev }, deleted: r.deleted };
  if (wantPrev) resp.prev_kvs = r.prevKvs.map(decodeKeyValue);
  return resp;
}

/** Ends a write transaction that threw: nothing it did stays. */
function abortAndThrow(txn: MvccWriteTxn, err: unknown): never {
  txn.abort();
  throw err;
}

/** A committed Put. Throws Errors.LeaseNotFound / Errors.KeyNotFound with no effect. */
export function applyPut(store: Mvcc, req: PutRequestInit, leases: LeaseHooks, withPrevKv = false): KvApplied<PutResponseInit> {
  const lease = req.lease ?? 0n;
  if (lease !== 0n && !leases.exists(lease)) throw Errors.LeaseNotFound();
  const txn = store.write(leases, withPrevKv);
  let response: PutResponseInit;
  try {
    response = putIn(txn, req);
  } catch (err) {
    abortAndThrow(txn, err);
  }
  return { response, events: txn.end().events };
}

/** A committed DeleteRange. */
export function applyDeleteRange(
  store: Mvcc,
  req: DeleteRangeRequestInit,
  leases: LeaseHooks,
  withPrevKv = false,
): KvApplied<DeleteRangeResponseInit> {
  const txn = store.write(leases, withPrevKv);
  let response: DeleteRangeResponseInit;
  try {
    response = deleteIn(txn, req);
  } catch (err) {
    abortAndThrow(txn, err);
  }
  return { response, events: txn.end().events };
}

/** etcd's isTxnReadonly: every op of both branches is a range (a nested txn is not). */
export function isTxnReadonly(req: TxnRequestInit): boolean {
  const s = req.success ?? [];
  const f = req.failure ?? [];
  for (let i = 0; i < s.length; i++) if (s[i].request_range === undefined) return false;
  for (let i = 0; i < f.length; i++) if (f[i].request_range === undefined) return false;
  return true;
}

function compareNum(a: number | bigint, b: number | bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** etcd's compareKV: one compare against one kv (a missing key compares as the zero KeyValue). */
function compareKv(c: CompareInit, kv: KeyValue): boolean {
  let result = 0;
  switch (c.target ?? 0) {
    case 0:
      result = compareNum(kv.version, c.version ?? 0);
      break; // VERSION
    case 1:
      result = compareNum(kv.create_revision, c.create_revision ?? 0);
      break; // CREATE
    case 2:
      result = compareNum(kv.mod_revision, c.mod_revision ?? 0);
      break; // MOD
    case 3:
      result = Buffer.compare(kv.value, c.value ?? EMPTY_BYTES);
      break; // VALUE
    case 4:
      result = compareNum(kv.lease, c.lease ?? 0n);
      break; // LEASE
    default:
      result = 0;
  }
  switch (c.result ?? 0) {
    case 0:
      return result === 0; // EQUAL
    case 1:
      return result > 0; // GREATER
    case 2:
      return result < 0; // LESS
    case 3:
      return result !== 0; // NOT_EQUAL
    default:
      return true;
  }
}

function compareVisit(kv: KeyValue, c: CompareInit): boolean {
  if (compareKv(c, kv)) return true;
  compareFailed = true;
  return false;
}
let compareFailed = false;

/** etcd's applyCompare: on the current revision, for the key or every key of the range. */
function applyCompare(store: Mvcc, c: CompareInit): boolean {
  const key = c.key ?? EMPTY_BYTES;
  if (empty(c.range_end)) {
    const bytes = store.get(key);
    if (bytes === undefined) return (c.target ?? 0) === 3 ? false : compareKv(c, ZERO_KV);
    return compareKv(c, decodeKeyValue(bytes));
  }
  compareFailed = false;
  const n = store.forEach(key, c.range_end, 0, compareVisit, c);
  if (n === 0) return (c.target ?? 0) === 3 ? false : compareKv(c, ZERO_KV);
  return !compareFailed;
}

/** etcd's compareToPath: every txn level's compare outcome, depth first, all on the pre-txn state. */
function compareToPath(store: Mvcc, rt: TxnRequestInit, path: boolean[]): void {
  const compares = rt.compare ?? [];
  let ok = true;
  for (let i = 0; i < compares.length && ok; i++) ok = applyCompare(store, compares[i]);
  path.push(ok);
  const ops = (ok ? rt.success : rt.failure) ?? [];
  for (let i = 0; i < ops.length; i++) {
    const t = ops[i].request_txn;
    if (t !== undefined) compareToPath(store, t, path);
  }
}

/** etcd's checkRequests with checkRequestPut (write txns) and checkRequestRange; returns the next path position. */
function checkTxnOps(store: Mvcc, rt: TxnRequestInit, path: boolean[], pos: number, isWrite: boolean, leases: LeaseHooks): number {
  const ops = (path[pos++] ? rt.success : rt.failure) ?? [];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    if (op.request_txn !== undefined) {
      pos = checkTxnOps(store, op.request_txn, path, pos, isWrite, leases);
      continue;
    }
    const p = op.request_put;
    if (isWrite && p !== undefined) {
      if ((p.ignore_value === true || p.ignore_lease === true) && store.get(p.key ?? EMPTY_BYTES) === undefined) throw Errors.KeyNotFound();
      const lease = p.lease ?? 0n;
      if (lease !== 0n && !leases.exists(lease)) throw Errors.LeaseNotFound();
    }
    const r = op.request_range;
    if (r !== undefined) {
      const rev = r.revision ?? 0;
      if (rev > store.currentRevision) throw Errors.FutureRev();
      if (rev !== 0 && rev < store.compactRevision) throw Errors.Compacted();
    }
  }
  return pos;
}

/** Runs the chosen branch of each level; returns the next path position. */
function runTxnOps(
  view: KvView,
  txn: MvccWriteTxn | undefined,
  rt: TxnRequestInit,
  path: boolean[],
  pos: number,
  limits: KvLimits,
  out: TxnResponseInit,
): number {
  const ok = path[pos++];
  const ops = (ok ? rt.success : rt.failure) ?? [];
  const responses: ResponseOpInit[] = new Array(ops.length);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    if (op.request_range !== undefined) {
      responses[i] = { response_range: rangeOn(view, op.request_range, limits) };
    } else if (op.request_put !== undefined) {
      responses[i] = { response_put: putIn(txn!, op.request_put) };
    } else if (op.request_delete_range !== undefined) {
      responses[i] = { response_delete_range: deleteIn(txn!, op.request_delete_range) };
    } else if (op.request_txn !== undefined) {
      const nested: TxnResponseInit = { header: {} };
      pos = runTxnOps(view, txn, op.request_txn, path, pos, limits, nested);
      responses[i] = { response_txn: nested };
    } else {
      responses[i] = {}; // unreachable after validation; etcd leaves such a slot empty too
    }
  }
  out.succeeded = ok;
  out.responses = responses;
  return pos;
}

/**
 * A Txn: compares on the current state, checks (missing lease, ignore_* on a missing key, a
 * compacted or future range revision) that abort the whole txn with no effect, then the chosen
 * branch in order, nested txns included, all under one revision. A read-only txn (ranges only)
 * runs on the read view and makes no revision; the server may run it without Raft, as etcd does.
 */
export function applyTxn(
  store: Mvcc,
  req: TxnRequestInit,
  limits: KvLimits,
  leases: LeaseHooks,
  withPrevKv = false,
): KvApplied<TxnResponseInit> {
  const path: boolean[] = [];
  compareToPath(store, req, path);
  const isWrite = !isTxnReadonly(req);
  checkTxnOps(store, req, path, 0, isWrite, leases);
  const resp: TxnResponseInit = {};
  if (!isWrite) {
    runTxnOps(store, undefined, req, path, 0, limits, resp);
    resp.header = { revision: store.currentRevision };
    return { response: resp, events: [] };
  }
  const txn = store.write(leases, withPrevKv);
  try {
    runTxnOps(txn, txn, req, path, 0, limits, resp);
  } catch (err) {
    abortAndThrow(txn, err);
  }
  resp.header = { revision: txn.rev };
  return { response: resp, events: txn.end().events };
}

/**
 * A committed Compaction. Throws Errors.Compacted / Errors.FutureRev. `physicalDone` resolves
 * when LMDB no longer holds the compacted revisions (wait for it when req.physical; it needs the
 * server's next commit()). After an Errors.Compacted, etcd still waits for earlier compactions when
 * physical is set: use store.compactBarrier().
 */
export function applyCompaction(
  store: Mvcc,
  req: CompactionRequestInit,
): { response: CompactionResponseInit; physicalDone: Promise<void> } {
  const { physicalDone } = store.compact(req.revision ?? 0);
  return { response: { header: { revision: store.currentRevision } }, physicalDone };
}
