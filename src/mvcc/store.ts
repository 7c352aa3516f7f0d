// The MVCC store: etcd's revisioned key space (mvcc/kvstore*.go) over the key index and LMDB.
// One write transaction = at most one new main revision; reads see every applied write at once
// (the backend overlay), and commit() makes data + applied index durable together.
import { setImmediate as yieldTurn, setTimeout as sleep } from 'node:timers/promises';
import { Errors } from '../errors.js';
import { decodeKeyValue, encodeKeyValue, Event_EventType, type KeyValue } from '../proto/kv.js';
import { EMPTY_BYTES } from '../proto/wire.js';
import { Backend, DEFRAG_SUFFIX, metaKey, type CommitResult, type DefragResult } from './backend.js';
import { crc32c } from '../crc32c.js';
import {
  codeHasLease,
  codeSub,
  compareKeys,
  entryCreated,
  entryFind,
  entryGenStart,
  entryHas,
  entryKeep,
  entryLive,
  entryVersion,
  KeyIndex,
  type KeyEntry,
  type KeySlot,
} from './key_index.js';
import { fetchKv, rangeKeys, resolveReadRev, scanLive, type RangeOptions, type RangeResult, type RangeSource } from './range.js';
import { isTombstoneKey, readU64, revKey, revKeyMain, revKeySub, writeU64, assertRevKey } from './revision.js';

/** Options of Mvcc.open. */
export interface MvccOptions {
  /** The LMDB file; the server passes <data-dir>/member/snap/db. Its directory is created. */
  path: string;
  /** Initial LMDB map size; lmdb-js grows it when full. Default 1 GiB. */
  mapSizeBytes?: number;
  /** Revisions examined per physical compaction batch (etcd: 1000). */
  compactionBatchLimit?: number;
  /** Pause between physical compaction batches (etcd: 10 ms). */
  compactionPauseMs?: number;
  /** Keys compacted in the in-memory index per event-loop turn. Default 10000. */
  indexCompactionChunkKeys?: number;
  /** Bytes that may be staged between two commit() calls. Default 512 MiB. */
  pendingBytesMax?: number;
  /** Revision writes per LMDB transaction when a commit is spread over turns (Backend.commit). Default 16384. */
  commitChunkPuts?: number;
  /** Bytes of writes a defragment may buffer while it copies (Backend.defragment). Default 256 MiB. */
  defragTapBytesMax?: number;
}

/** A change made by a write transaction (for watchers): a put with its full KeyValue, or a delete. */
export interface MvccEvent {
  /** Event_EventType: PUT 0, DELETE 1. */
  type: number;
  /** PUT: the new KeyValue. DELETE: { key, mod_revision } as etcd reports it. */
  kv: KeyValue;
  /** The key's KeyValue before the change, when the transaction was asked for it and the key existed. */
  prevKv?: KeyValue;
}

/** Lease bookkeeping a write transaction reports to (the lessor). */
export interface MvccLeaseHooks {
  attach(id: bigint, key: Uint8Array): void;
  detach(id: bigint, key: Uint8Array): void;
}

/** HashKV's answer (etcd mvcc HashByRev). */
export interface HashKVResult {
  hash: number;
  compactRevision: number;
  /** The revision hashed up to. */
  hashRevision: number;
  /** The store's current revision (HashKVResponse.header.revision). */
  currentRevision: number;
}

/** Store statistics. */
export interface MvccStats {
  /** Keys that exist at the current revision. */
  keys: number;
  /** Keys in the index, deleted-but-uncompacted ones included. */
  indexKeys: number;
  dbSizeBytes: number;
  dbSizeInUseBytes: number;
  /** Bytes staged for the next commit. */
  stagedBytes: number;
  /** Main revisions readable only from the overlay (not yet committed to LMDB). */
  overlayRevisions: number;
  /** KeyValues read by ranges, puts and compares since open. */
  valueReads: number;
}

const META = 'meta';
const consistentIndexKey = Buffer.from('consistent_index');
const termKey = Buffer.from('term');
const scheduledCompactKey = Buffer.from('scheduledCompactRev');
const finishedCompactKey = Buffer.from('finishedCompactRev');
/** The current revision as of the applied index beside it: revisions past it in LMDB are a torn commit's. */
export const COMMITTED_REVISION_META_KEY = 'tetcd_committed_revision';
const committedRevKey = Buffer.from(COMMITTED_REVISION_META_KEY);
const keyBucketName = Buffer.from('key');
const metaBucketName = Buffer.from('meta');
/** Per-member bookkeeping that Hash leaves out (etcd's DefaultIgnores: consistent_index, term). */
const HASH_IGNORED_META: readonly Buffer[] = [metaKey(META, consistentIndexKey), metaKey(META, termKey)];

function u64Bytes(v: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  writeU64(b, 0, v);
  return b;
}

interface Deferred {
  resolve(): void;
  reject(err: unknown): void;
}

/** State shared by the store and its write transactions. */
class Core implements RangeSource {
  readonly index = new KeyIndex();
  currentRev = 1;
  compactMainRev = -1;
  activeTxn: MvccWriteTxn | null = null;
  constructor(readonly be: Backend) {}
}

/**
 * etcd's MVCC key-value store.
 *
 *   const s = await Mvcc.open({ path: '/data/member/snap/db' });
 *   const txn = s.write(); txn.put(key, value, 0n); const { rev, events } = txn.end();
 *   s.commit(appliedIndex, term);            // once per batch of applied Raft entries
 *   s.range(key, end, { limit: 10 });        // sees the put at once
 */
export class Mvcc {
  private readonly core: Core;
  private ci = { index: 0, term: 0 };
  private readonly batchLimit: number;
  private readonly pauseMs: number;
  private readonly chunkKeys: number;
  /** Compaction jobs run one after another; this is the tail. */
  private compactTail: Promise<void> = Promise.resolve();
  /** Compactions scheduled since the last commit wait for that commit to be in LMDB. */
  private nextCommitWaiters: Deferred[] = [];
  private closing = false;
  /** Cuts a compaction pause short on close(). */
  private readonly closeSignal = new AbortController();

  private constructor(be: Backend, opts: MvccOptions) {
    this.core = new Core(be);
    this.batchLimit = opts.compactionBatchLimit ?? 1000;
    this.pauseMs = opts.compactionPauseMs ?? 10;
    this.chunkKeys = opts.indexCompactionChunkKeys ?? 10_000;
    if (!(this.batchLimit > 0 && this.chunkKeys > 0)) throw new Error('mvcc: batch limits must be positive');
  }

  /** Opens (or creates) the store and rebuilds the key index from LMDB, in revision order. */
  static async open(opts: MvccOptions): Promise<Mvcc> {
    const be = Backend.open({
      path: opts.path,
      mapSizeBytes: opts.mapSizeBytes ?? 1 << 30,
      pendingBytesMax: opts.pendingBytesMax ?? 512 * 1024 * 1024,
      commitChunkPuts: opts.commitChunkPuts,
      defragTapBytesMax: opts.defragTapBytesMax,
    });
    const s = new Mvcc(be, opts);
    try {
      s.restore();
    } catch (err) {
      await be.close();
      throw err;
    }
    return s;
  }

  private restore(): void {
    const c = this.core;
    const be = c.be;
    const ciBytes = be.metaGet(META, consistentIndexKey);
    const termBytes = be.metaGet(META, termKey);
    this.ci = { index: ciBytes ? readU64(ciBytes, 0) : 0, term: termBytes ? readU64(termBytes, 0) : 0 };
    const finished = be.metaGet(META, finishedCompactKey);
    if (finished !== undefined) c.compactMainRev = revKeyMain(finished);
    const scheduledBytes = be.metaGet(META, scheduledCompactKey);
    const scheduled = scheduledBytes !== undefined ? revKeyMain(scheduledBytes) : 0;

    const committedBytes = be.metaGet(META, committedRevKey);
    const committedRev = committedBytes !== undefined ? readU64(committedBytes, 0) : Number.POSITIVE_INFINITY;
    const torn: Buffer[] = [];
    const index = c.index;
    let lastMain = 0;
    for (const { key: rk, value } of be.keyDb.getRange({})) {
      assertRevKey(rk);
      const main = revKeyMain(rk);
      if (main > committedRev) {
        // Chunks of a commit that did not finish (Backend.commit): the WAL applies those entries again.
        torn.push(Buffer.from(rk));
        continue;
      }
      const sub = revKeySub(rk);
      const tomb = isTombstoneKey(rk);
      const kv = decodeKeyValue(value);
      const e = index.get(kv.key);
      if (e !== undefined) {
        if (tomb) {
          if (entryLive(e)) index.tombstone(kv.key, main, sub);
        } else {
          index.put(kv.key, main, sub, kv.lease !== 0n);
        }
      } else if (!tomb) {
        // The oldest revision left of this key: its generation's start may have been compacted.
        index.restoreNew(kv.key, main, sub, kv.lease !== 0n, kv.create_revision, kv.version);
      }
      lastMain = main;
    }
    if (torn.length > 0) {
      be.env.transactionSync(() => {
        for (const k of torn) be.keyDb.removeSync(k);
      });
    }
    // Compaction may have deleted the newest revisions (tombstones at or below the compacted one),
    // and an interrupted one may have got that far before recording itself finished.
    c.currentRev = Math.max(1, lastMain, c.compactMainRev, scheduled);
    if (scheduled !== 0 && scheduled > c.compactMainRev) {
      // A compaction was interrupted: resume it (its scheduling is already in LMDB).
      c.compactMainRev = scheduled;
      this.enqueueCompaction(scheduled, Promise.resolve());
    }
  }

  /** The newest revision. */
  get currentRevision(): number {
    return this.core.currentRev;
  }

  /** The compacted revision; -1 before the first compaction (as etcd reports it). */
  get compactRevision(): number {
    return this.core.compactMainRev;
  }

  /** The Raft index/term applied into this store: the last ones passed to commit(). */
  consistentIndex(): { index: number; term: number } {
    return { index: this.ci.index, term: this.ci.term };
  }

  /**
   * Range read at opts.rev (0 = current) over key..end with etcd's range_end rules (empty = the
   * key alone, "\0" = every key >= key). Throws Errors.Compacted / Errors.FutureRev.
   */
  range(key: Uint8Array, end?: Uint8Array, opts: RangeOptions = {}): RangeResult {
    return rangeKeys(this.core, key, end, opts, this.core.currentRev);
  }

  /** Encoded KeyValue of `key` at `rev` (0 = current), or undefined. Throws like range(). */
  get(key: Uint8Array, rev = 0): Uint8Array | undefined {
    const c = this.core;
    return getAt(c, key, resolveReadRev(rev, c.currentRev, c.compactMainRev));
  }

  /**
   * Calls visit(kv, ctx) with each decoded KeyValue of the range at `rev` in key order until it
   * returns false; returns the number of keys visited. For compares, which need every key of a range.
   */
  forEach<C>(key: Uint8Array, end: Uint8Array | undefined, rev: number, visit: (kv: KeyValue, ctx: C) => boolean, ctx: C): number {
    const c = this.core;
    const at = rev <= 0 ? c.currentRev : rev;
    forEachState.be = c.be;
    forEachState.visit = visit as (kv: KeyValue, ctx: unknown) => boolean;
    forEachState.ctx = ctx;
    try {
      return scanLive(c.index, key, end, at, forEachVisit, forEachState);
    } finally {
      forEachState.ctx = undefined;
      forEachState.be = undefined;
    }
  }

  /**
   * Calls visit(key, leaseId) for every existing key with a lease attached, in key order: how the
   * lessor re-attaches keys after a restart (etcd's restore does the same from its key bucket).
   */
  forEachLeasedKey(visit: (key: Uint8Array, lease: bigint) => void): void {
    const c = this.core;
    for (const [key, slot] of c.index.tree.entries(undefined, leasedPair)) {
      const e = c.index.entryOf(slot);
      const code = e[e.length - 1];
      if (!codeHasLease(code)) continue;
      const lease = decodeKeyValue(fetchKv(c.be, e[e.length - 2], codeSub(code))).lease;
      if (lease !== 0n) visit(key, lease);
    }
  }

  /**
   * Starts the write transaction; at most one is open, and it must end in the same turn. With
   * `withPrevKv` its events carry each changed key's previous KeyValue (one backend read per key).
   */
  write(hooks?: MvccLeaseHooks, withPrevKv = false): MvccWriteTxn {
    if (this.closing) throw new Error('mvcc: store is closed');
    if (this.core.activeTxn !== null) throw new Error('mvcc: a write transaction is already open');
    const t = new MvccWriteTxn(this.core, hooks, withPrevKv);
    this.core.activeTxn = t;
    return t;
  }

  /**
   * Groups everything written since the last call, the meta writes and the applied index into ONE
   * LMDB transaction, so the applied index can never disagree with the data after a crash.
   * `committed` resolves when it is visible in LMDB, `flushed` when it is durable.
   */
  commit(index: number, term: number): CommitResult {
    if (this.core.activeTxn !== null) throw new Error('mvcc: commit inside a write transaction');
    if (index < this.ci.index) throw new Error(`mvcc: applied index going back from ${this.ci.index} to ${index}`);
    this.ci = { index, term };
    const be = this.core.be;
    be.metaPut(META, consistentIndexKey, u64Bytes(index));
    be.metaPut(META, termKey, u64Bytes(term));
    be.metaPut(META, committedRevKey, u64Bytes(this.core.currentRev));
    const res = be.commit();
    const waiters = this.nextCommitWaiters;
    if (waiters.length > 0) {
      this.nextCommitWaiters = [];
      res.committed.then(
        () => {
          for (const w of waiters) w.resolve();
        },
        (err: unknown) => {
          for (const w of waiters) w.reject(err);
        },
      );
    }
    return res;
  }

  /**
   * Compacts away history before `rev` (etcd's Compact). The revision check and the new compact
   * revision take effect at once; the in-memory index and the LMDB data are compacted in the
   * background after the next commit() has made the schedule durable. Throws Errors.Compacted when
   * rev <= the compacted revision, Errors.FutureRev when rev > the current one.
   */
  compact(rev: number): { physicalDone: Promise<void> } {
    const c = this.core;
    if (this.closing) throw new Error('mvcc: store is closed');
    if (c.activeTxn !== null) throw new Error('mvcc: compact inside a write transaction');
    if (rev <= c.compactMainRev) throw Errors.Compacted();
    if (rev > c.currentRev) throw Errors.FutureRev();
    c.compactMainRev = rev;
    c.be.metaPut(META, scheduledCompactKey, revKey(rev, 0));
    const scheduleDurable = new Promise<void>((resolve, reject) => this.nextCommitWaiters.push({ resolve, reject }));
    // Rejected by close() maybe before the job behind an earlier compaction awaits it: handled here, seen there.
    scheduleDurable.catch(() => {});
    return { physicalDone: this.enqueueCompaction(rev, scheduleDurable) };
  }

  /** Resolves when every compaction scheduled so far has finished (etcd's compact barrier). */
  compactBarrier(): Promise<void> {
    return this.compactTail;
  }

  private enqueueCompaction(rev: number, start: Promise<void>): Promise<void> {
    const job = this.compactTail.then(() => start).then(() => this.runCompaction(rev));
    this.compactTail = job.catch(() => undefined);
    return job;
  }

  private async runCompaction(rev: number): Promise<void> {
    await this.compactIndex(rev);
    await this.compactBackend(rev);
  }

  private checkOpen(): void {
    if (this.closing) throw new Error('mvcc: store closed during compaction');
  }

  /** Index compaction, a chunk of keys per turn; reads at revisions >= rev see no difference. */
  private async compactIndex(rev: number): Promise<void> {
    const index = this.core.index;
    const tree = index.tree;
    const keys: Uint8Array[] = [];
    const entries: KeySlot[] = [];
    let from: Uint8Array | undefined;
    for (;;) {
      this.checkOpen();
      if (this.core.activeTxn !== null) throw new Error('mvcc: write transaction left open across turns');
      keys.length = 0;
      entries.length = 0;
      const it = tree.entries(from, compactPair);
      for (let r = it.next(); !r.done && keys.length < this.chunkKeys; r = it.next()) {
        if (from !== undefined && keys.length === 0 && compareKeys(r.value[0], from) === 0) continue;
        keys.push(r.value[0]);
        entries.push(r.value[1]);
      }
      for (let i = 0; i < keys.length; i++) index.compactKey(keys[i], entries[i], rev);
      if (keys.length < this.chunkKeys) return;
      from = keys[keys.length - 1];
      await yieldTurn();
    }
  }

  /**
   * Deletes from LMDB every revision <= rev that the compacted index no longer holds, in batches
   * of `batchLimit` with a pause between them; the last batch records the finished compaction.
   */
  private async compactBackend(rev: number): Promise<void> {
    const be = this.core.be;
    const index = this.core.index;
    const end = revKey(rev + 1, 0);
    let start: Buffer | undefined;
    const doomed: Buffer[] = [];
    for (;;) {
      this.checkOpen();
      doomed.length = 0;
      let seen = 0;
      let lastKey: Buffer | undefined;
      const range = be.keyDb.getRange({ start, end, limit: this.batchLimit, exclusiveStart: start !== undefined });
      for (const { key: rk, value } of range) {
        seen++;
        lastKey = rk;
        const main = revKeyMain(rk);
        const sub = revKeySub(rk);
        const tomb = isTombstoneKey(rk);
        const e = index.get(decodeKeyValue(value).key);
        if (e === undefined || !entryHas(e, main, sub, tomb)) doomed.push(Buffer.from(rk));
      }
      let last: Promise<boolean> | undefined;
      for (let i = 0; i < doomed.length; i++) last = be.removeRev(doomed[i]);
      if (seen < this.batchLimit) {
        // Same turn as the last deletes, so the same LMDB transaction.
        await be.putMetaNow(metaKey(META, finishedCompactKey), revKey(rev, 0));
        return;
      }
      if (last !== undefined) await last;
      start = lastKey === undefined ? undefined : Buffer.from(lastKey);
      await sleep(this.pauseMs, undefined, { signal: this.closeSignal.signal });
    }
  }

  /**
   * etcd's HashByRev: CRC-32C over the key bucket's name and every (revision key, value) up to
   * `rev` (0 = current), leaving out revisions at or below the compacted one that compaction at
   * `rev` would not keep. Synchronous: it reads the whole key bucket.
   */
  hashKV(rev: number): HashKVResult {
    const c = this.core;
    const compactRev = c.compactMainRev;
    const currentRev = c.currentRev;
    if (rev > 0 && rev <= compactRev) throw Errors.Compacted();
    if (rev > currentRev) throw Errors.FutureRev();
    const at = rev === 0 ? currentRev : rev;
    // etcd builds the keep set first and, quirk kept, skips the filter when the set is empty.
    let keepAny = false;
    for (const [, slot] of c.index.tree.entries(undefined, hashPair)) {
      if (entryKeep(c.index.entryOf(slot), at) >= 0) {
        keepAny = true;
        break;
      }
    }
    let h = crc32c(0, keyBucketName);
    // LMDB below the overlay's oldest revision (it may hold part of a commit still in chunks), then the overlay.
    // A negative revision hashes no revision at all (etcd's upper bound is rev + 1).
    const cut = Math.max(1, Math.min(at + 1, c.be.firstOverlayMain()));
    for (const { key: rk, value } of c.be.keyDb.getRange({ end: revKey(cut, 0) })) {
      h = hashOne(c.index, h, rk, value, compactRev, keepAny, at);
    }
    for (const w of c.be.overlaySince(cut - 1, at)) h = hashOne(c.index, h, w.key, w.value, compactRev, keepAny, at);
    return { hash: h, compactRevision: compactRev, hashRevision: at, currentRevision: currentRev };
  }

  /**
   * etcd's Hash (the backend's hash): CRC-32C over the key bucket's name and every (revision key, value)
   * it holds, then the meta bucket's name and every (key, value) of every side table (meta, members,
   * leases, auth, alarms) but the applied index and term, which etcd leaves out too. Covers what
   * physical compaction has not deleted yet: the caller waits for compactBarrier() first so that members
   * at the same applied state agree. Synchronous: it reads the whole file.
   */
  hash(): { hash: number; revision: number } {
    const be = this.core.be;
    let h = crc32c(0, keyBucketName);
    const cut = be.firstOverlayMain();
    const lmdbRange = Number.isFinite(cut) ? { end: revKey(cut, 0) } : {};
    for (const { key, value } of be.keyDb.getRange(lmdbRange)) h = crc32c(crc32c(h, key), value);
    for (const w of be.overlaySince(cut - 1, Number.POSITIVE_INFINITY)) h = crc32c(crc32c(h, w.key), w.value);
    h = crc32c(h, metaBucketName);
    for (const [k, v] of be.metaScanAll()) {
      if (HASH_IGNORED_META.some((i) => Buffer.compare(i, k) === 0)) continue;
      h = crc32c(crc32c(h, k), v);
    }
    return { hash: h, revision: this.core.currentRev };
  }

  /** Rewrites the LMDB file without its free pages while serving (Backend.defragment); `tmpPath` is its scratch file. */
  defragment(tmpPath = `${this.core.be.path}${DEFRAG_SUFFIX}`): Promise<DefragResult> {
    return this.core.be.defragment(tmpPath);
  }

  /**
   * Every change with a revision in [fromRev, toRev], in revision order, for watchers catching up: a PUT
   * with its KeyValue, or a DELETE with { key, mod_revision }. `visit` returns false to stop early (the
   * caller's batch limit). Revisions at or below the compacted one may be gone: the caller checks first.
   */
  history(fromRev: number, toRev: number, visit: (ev: MvccEvent) => boolean): void {
    const be = this.core.be;
    if (fromRev > toRev) return;
    // LMDB below the overlay's oldest revision (it may hold part of a commit still in chunks), then the overlay.
    const cut = Math.max(fromRev, Math.min(toRev + 1, be.firstOverlayMain()));
    if (cut > fromRev) {
      for (const { key: rk, value } of be.keyDb.getRange({ start: revKey(fromRev, 0), end: revKey(cut, 0) })) {
        if (!visit(historyEvent(rk, value))) return;
      }
    }
    for (const w of be.overlaySince(cut - 1, toRev)) {
      if (!visit(historyEvent(w.key, w.value))) return;
    }
  }

  /** Value of a small side table (members, leases, auth, alarms); staged writes included. */
  metaGet(bucket: string, key: Uint8Array): Uint8Array | undefined {
    return this.core.be.metaGet(bucket, key);
  }

  /** Writes a side-table value; visible now, in LMDB with the next commit(). */
  metaPut(bucket: string, key: Uint8Array, value: Uint8Array): void {
    this.core.be.metaPut(bucket, key, value);
  }

  metaDelete(bucket: string, key: Uint8Array): void {
    this.core.be.metaDelete(bucket, key);
  }

  /** A bucket's (key, value) pairs in key order. */
  metaScan(bucket: string): Iterable<[Uint8Array, Uint8Array]> {
    return this.core.be.metaScan(bucket);
  }

  get stats(): MvccStats {
    const c = this.core;
    const sizes = c.be.sizes();
    return {
      keys: c.index.liveKeys,
      indexKeys: c.index.size,
      dbSizeBytes: sizes.sizeBytes,
      dbSizeInUseBytes: sizes.sizeInUseBytes,
      stagedBytes: c.be.stagedBytes,
      overlayRevisions: c.be.overlayRevisions,
      valueReads: c.be.valueReads,
    };
  }

  /**
   * Copies the last committed state of the LMDB file to `destPath` (a consistent snapshot: data
   * and the applied index it records come from one transaction). For Maintenance.Snapshot and
   * Raft snapshots; `compact` rewrites it without free pages (defragment's copy step).
   */
  backup(destPath: string, compact = false): Promise<void> {
    return this.core.be.backup(destPath, compact);
  }

  /**
   * Stops background compaction (it resumes at the next open) and closes LMDB. Writes not yet
   * passed to commit() are dropped; the WAL still has them.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.closeSignal.abort();
    for (const w of this.nextCommitWaiters) w.reject(new Error('mvcc: store closed'));
    this.nextCommitWaiters = [];
    await this.compactTail;
    await this.core.be.close();
  }
}

const compactPair: (Uint8Array | KeySlot)[] = [];
const hashPair: (Uint8Array | KeySlot)[] = [];
const leasedPair: (Uint8Array | KeySlot)[] = [];

function hashOne(index: KeyIndex, h: number, rk: Uint8Array, value: Uint8Array, compactRev: number, keepAny: boolean, at: number): number {
  const main = revKeyMain(rk);
  if (main <= compactRev && keepAny) {
    const e = index.get(decodeKeyValue(value).key);
    if (e === undefined || isTombstoneKey(rk)) return h;
    const p = entryKeep(e, at);
    if (p < 0 || e[p] !== main || codeSub(e[p + 1]) !== revKeySub(rk)) return h;
  }
  return crc32c(crc32c(h, rk), value);
}

const forEachState: { be: Backend | undefined; visit: (kv: KeyValue, ctx: unknown) => boolean; ctx: unknown } = {
  be: undefined,
  visit: () => false,
  ctx: undefined,
};

function forEachVisit(_k: Uint8Array, e: KeyEntry, p: number, st: typeof forEachState): boolean {
  return st.visit(decodeKeyValue(fetchKv(st.be!, e[p], codeSub(e[p + 1]))), st.ctx);
}

function getAt(c: Core, key: Uint8Array, rev: number): Uint8Array | undefined {
  const e = c.index.get(key);
  if (e === undefined) return undefined;
  const p = entryFind(e, rev);
  return p < 0 ? undefined : fetchKv(c.be, e[p], codeSub(e[p + 1]));
}

/**
 * The store's one write transaction (etcd's storeTxnWrite). Every change gets revision
 * beginRev+1 with sub revisions in order; reads inside see the transaction's own writes.
 * Synchronous: begin, change and end() within one call stack.
 */
export class MvccWriteTxn {
  /** The current revision when the transaction began. */
  readonly beginRev: number;
  private readonly events: MvccEvent[] = [];
  /** Changes so far (every one has an event, except deleteSorted's without events). */
  private changes = 0;
  /** Keys touched, in change order (for abort()). */
  private readonly touched: Uint8Array[] = [];
  /** The keys of a deleteSorted, the last changes (for abort()). */
  private bulk: Uint8Array[] = [];
  /** A deleteSorted was the last change allowed. */
  private sealed = false;
  private done = false;

  /** @internal Use Mvcc.write(). */
  constructor(
    private readonly core: Core,
    private readonly hooks: MvccLeaseHooks | undefined,
    private readonly withPrevKv = false,
  ) {
    this.beginRev = core.currentRev;
  }

  /** The revision reads inside see (and the response revision): beginRev, or beginRev+1 once something changed. */
  get rev(): number {
    return this.changes > 0 ? this.beginRev + 1 : this.beginRev;
  }

  /** Changes so far. */
  get changeCount(): number {
    return this.changes;
  }

  private checkOpen(): void {
    if (this.done) throw new Error('mvcc: write transaction already ended');
  }

  /** Range read as of this transaction (etcd's storeTxnWrite.Range). */
  range(key: Uint8Array, end?: Uint8Array, opts: RangeOptions = {}): RangeResult {
    this.checkOpen();
    return rangeKeys(this.core, key, end, opts, this.rev);
  }

  /** Encoded KeyValue of `key` as of this transaction, or undefined. */
  get(key: Uint8Array): Uint8Array | undefined {
    this.checkOpen();
    return getAt(this.core, key, this.rev);
  }

  /** Puts key=value with `lease` (0n = none); returns the revision (beginRev+1). */
  put(key: Uint8Array, value: Uint8Array, lease: bigint): number {
    this.checkOpen();
    if (this.sealed) throw new Error('mvcc: a change after deleteSorted');
    const c = this.core;
    const rev = this.beginRev + 1;
    const sub = this.changes;
    let created = rev;
    let version = 1;
    let prevKv: KeyValue | undefined;
    const e = c.index.forUpdate(key);
    if (e !== undefined) {
      const p = entryFind(e, rev);
      if (p >= 0) {
        const gs = entryGenStart(e, p);
        created = entryCreated(e, gs);
        version = entryVersion(e, p, gs) + 1;
        if (this.withPrevKv) prevKv = decodeKeyValue(fetchKv(c.be, e[p], codeSub(e[p + 1])));
        if (this.hooks !== undefined && codeHasLease(e[p + 1])) {
          const old = (prevKv ?? decodeKeyValue(fetchKv(c.be, e[p], codeSub(e[p + 1])))).lease;
          if (old !== 0n) this.hooks.detach(old, key);
        }
      }
    }
    const kv: KeyValue = { key, create_revision: created, mod_revision: rev, version, value, lease };
    const bytes = encodeKeyValue(kv);
    c.be.stageRev(rev, sub, revKey(rev, sub), bytes);
    c.index.putInto(e, key, rev, sub, lease !== 0n);
    this.events.push(prevKv === undefined ? { type: Event_EventType.PUT, kv } : { type: Event_EventType.PUT, kv, prevKv });
    this.changes++;
    this.touched.push(key);
    if (lease !== 0n && this.hooks !== undefined) this.hooks.attach(lease, key);
    return rev;
  }

  /**
   * Deletes every key of the range that exists as of this transaction. Returns how many, the
   * response revision (unchanged when nothing was deleted and nothing else changed, as in etcd),
   * and, with wantPrev, their KeyValues before the delete.
   */
  deleteRange(key: Uint8Array, end: Uint8Array | undefined, wantPrev: boolean): { deleted: number; rev: number; prevKvs: Uint8Array[] } {
    this.checkOpen();
    if (this.sealed) throw new Error('mvcc: a change after deleteSorted');
    const c = this.core;
    const st = delState;
    st.keys = [];
    st.codes = [];
    st.mains = [];
    scanLive(c.index, key, end, this.rev, collectDelete, st);
    const keys = st.keys;
    const codes = st.codes;
    const mains = st.mains;
    st.keys = st.codes = st.mains = [];
    const prevKvs: Uint8Array[] = [];
    const rev = this.beginRev + 1;
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i];
      let prev: Uint8Array | undefined;
      if (wantPrev || this.withPrevKv) prev = fetchKv(c.be, mains[i], codeSub(codes[i]));
      if (this.hooks !== undefined && codeHasLease(codes[i])) {
        prev ??= fetchKv(c.be, mains[i], codeSub(codes[i]));
        const old = decodeKeyValue(prev).lease;
        if (old !== 0n) this.hooks.detach(old, k);
      }
      if (wantPrev) prevKvs.push(prev!);
      const sub = this.changes++;
      c.be.stageRev(rev, sub, revKey(rev, sub, true), encodeKeyValue({ key: k }));
      c.index.tombstone(k, rev, sub);
      const kv: KeyValue = { key: k, create_revision: 0, mod_revision: rev, version: 0, value: EMPTY_BYTES, lease: 0n };
      this.events.push(
        this.withPrevKv ? { type: Event_EventType.DELETE, kv, prevKv: decodeKeyValue(prev!) } : { type: Event_EventType.DELETE, kv },
      );
      this.touched.push(k);
    }
    return { deleted: keys.length, rev: this.rev, prevKvs };
  }

  /**
   * Deletes every key of `keys` that exists as of this transaction, as deleteRange(key) per key would
   * (same revisions, same bytes in the backend, same events) but in bulk: one walk of the index, the
   * tombstones staged as one block, no per-key lookups. `keys` are latin1 strings (one char per byte) in
   * strictly increasing order; a lease revoke's keys. With `wantEvents` false no event is built (nobody
   * watches). It must be the transaction's last change, and the transaction has no lease hooks: the
   * caller deletes keys whose lease goes away with them. Returns how many keys were deleted.
   */
  deleteSorted(keys: readonly string[], wantEvents = true): number {
    this.checkOpen();
    if (this.hooks !== undefined) throw new Error('mvcc: deleteSorted in a transaction with lease hooks');
    if (this.sealed) throw new Error('mvcc: a change after deleteSorted');
    const c = this.core;
    const rev = this.beginRev + 1;
    const firstSub = this.changes;
    const t = c.index.tombstoneSorted(keys, rev, firstSub);
    this.lastWalkDescents = t.descents;
    const deleted = t.keys;
    const n = deleted.length;
    if (n === 0) return 0;
    this.sealed = true;
    try {
      c.be.stageTombstones(rev, firstSub, deleted);
    } catch (err) {
      for (let i = n - 1; i >= 0; i--) c.index.undoLast(deleted[i]);
      throw err;
    }
    this.changes += n;
    this.bulk = deleted;
    if (!wantEvents) return n;
    const events = this.events;
    const withPrev = this.withPrevKv;
    for (let i = 0; i < n; i++) {
      const kv: KeyValue = { key: deleted[i], create_revision: 0, mod_revision: rev, version: 0, value: EMPTY_BYTES, lease: 0n };
      events.push(
        withPrev
          ? { type: Event_EventType.DELETE, kv, prevKv: decodeKeyValue(fetchKv(c.be, t.prevMains[i], codeSub(t.prevCodes[i]))) }
          : { type: Event_EventType.DELETE, kv },
      );
    }
    return n;
  }

  /** Descents into the index of the last deleteSorted (1 when its keys are neighbours in the index). */
  lastWalkDescents = 0;

  /** Ends the transaction: the revision becomes current if anything changed. */
  end(): { rev: number; events: MvccEvent[] } {
    this.checkOpen();
    this.done = true;
    const c = this.core;
    c.activeTxn = null;
    if (this.changes > 0) {
      if (c.currentRev !== this.beginRev) throw new Error('mvcc: current revision moved under a write transaction');
      c.currentRev = this.beginRev + 1;
    }
    return { rev: c.currentRev, events: this.events };
  }

  /**
   * Undoes every change and ends the transaction. For invariant failures only: the applier checks
   * requests before writing, as etcd does, and lease hooks already called are not undone.
   */
  abort(): void {
    this.checkOpen();
    this.done = true;
    const c = this.core;
    c.activeTxn = null;
    const rev = this.beginRev + 1;
    for (let i = this.bulk.length - 1; i >= 0; i--) {
      c.index.undoLast(this.bulk[i]);
      c.be.unstageLastRev(rev);
    }
    for (let i = this.touched.length - 1; i >= 0; i--) {
      c.index.undoLast(this.touched[i]);
      c.be.unstageLastRev(rev);
    }
  }
}

/** A stored revision as a watch event. */
function historyEvent(rk: Uint8Array, value: Uint8Array): MvccEvent {
  const kv = decodeKeyValue(value);
  if (!isTombstoneKey(rk)) return { type: Event_EventType.PUT, kv };
  return {
    type: Event_EventType.DELETE,
    kv: { key: kv.key, create_revision: 0, mod_revision: revKeyMain(rk), version: 0, value: EMPTY_BYTES, lease: 0n },
  };
}

const delState: { keys: Uint8Array[]; codes: number[]; mains: number[] } = { keys: [], codes: [], mains: [] };

function collectDelete(k: Uint8Array, e: KeyEntry, p: number, st: typeof delState): boolean {
  st.keys.push(k);
  st.mains.push(e[p]);
  st.codes.push(e[p + 1]);
  return true;
}
