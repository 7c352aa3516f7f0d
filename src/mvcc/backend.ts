// The LMDB file behind the store, plus the in-memory overlay that makes applied-but-uncommitted
// writes readable at once. Writes are staged here and reach LMDB only in commit(), all in one
// event turn, so lmdb-js puts them (and the applied index) into ONE LMDB transaction.
//
// Sync choice: overlappingSync (lmdb-js's default on Linux). A commit becomes visible as soon as
// the transaction commits and is fsynced afterwards, outside the writer lock, overlapping the next
// transaction. Durability of applied entries comes from the WAL, not from here: after a process
// crash the last committed transaction survives (the kernel has the pages), after an OS crash
// LMDB falls back to the last flushed one; either way data and applied index come from the same
// transaction, and the WAL is replayed after that index. `flushed` tells the server when the
// backend is durable (before it may drop WAL entries it would need to rebuild this state).
import fs, { mkdirSync } from 'node:fs';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { dirname } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { markRevBytesTombstone, markedRevBytesLen, revBytesLen, revKey, writeRevBytes } from './revision.js';
import { HistogramCounts, DISK_SECONDS_BUCKETS } from '../metrics.js';

/**
 * etcd_disk_backend_commit_duration_seconds: from commit() to the transaction being durable, for every
 * backend of this process (one per member; a snapshot install swaps the backend, the series goes on).
 */
export const backendCommitSeconds = new HistogramCounts(DISK_SECONDS_BUCKETS);

/** One staged revision write: its LMDB key (17 bytes, 18 for a tombstone) and KeyValue bytes. */
export interface RevWrite {
  readonly key: Buffer;
  readonly value: Uint8Array;
}

/**
 * Tombstones staged as one block, the last sub revisions of their main revision (a lease revoke's
 * deletes): no object, key or value buffer per tombstone. Their values (KeyValue{key}, what a single
 * delete writes) sit back to back in one buffer; their LMDB keys are written at commit.
 */
interface TombstoneBlock {
  readonly firstSub: number;
  /** Tombstones in the block (an abort takes them off the end). */
  count: number;
  /** End offset in `values` of each tombstone's value. */
  readonly ends: Uint32Array;
  readonly values: Buffer;
}

/** What one main revision has staged: single writes by sub, then maybe a block of tombstones. */
interface StagedRev {
  readonly writes: RevWrite[];
  block: TombstoneBlock | undefined;
}

/** Bytes of KeyValue{key} for a key of `n` bytes (n > 0): tag, varint length, the key. */
function tombstoneValueBytes(n: number): number {
  return 1 + (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5) + n;
}

function blockValue(b: TombstoneBlock, i: number): Buffer {
  return b.values.subarray(i === 0 ? 0 : b.ends[i - 1], b.ends[i]);
}

interface MetaWrite {
  readonly key: Buffer;
  /** undefined = delete */
  readonly value: Uint8Array | undefined;
  readonly seq: number;
}

/** A promise with its settle functions. */
interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(err: unknown): void;
}

function deferred(): Deferred<void> {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A failed commit is reported to whoever awaits it; nobody awaiting is not an unhandled rejection.
  promise.catch(() => {});
  return { promise, resolve, reject };
}

/** One commit() on its way into LMDB: where its puts stand, and its promises. */
interface CommitJob {
  readonly mains: number[];
  readonly metas: MetaWrite[];
  /** Next write to put: mains[main], its sub-th write (single writes first, then the block). */
  main: number;
  sub: number;
  readonly done: Deferred<void>;
  readonly flushed: Deferred<void>;
  /** When commit() took it: etcd_disk_backend_commit_duration_seconds runs to its durability. */
  readonly startedMs: number;
}

/** Revision writes one commit issues per event turn (one LMDB transaction each); see Backend.commit. */
export const COMMIT_CHUNK_PUTS_DEFAULT = 16_384;
/** Commits waiting for their chunks at most; one more puts them all into LMDB at once. */
export const COMMIT_JOBS_MAX = 64;

/** The promises of one commit. */
export interface CommitResult {
  /** Resolves when the LMDB transaction is committed (visible to every reader of the file). */
  committed: Promise<void>;
  /** Resolves when that transaction is durable on disk. */
  flushed: Promise<void>;
}

/** Options of Backend.open (see MvccOptions for the defaults). */
export interface BackendOptions {
  path: string;
  mapSizeBytes: number;
  /** Staged bytes allowed between two commits; past it staging throws (the server must commit per batch). */
  pendingBytesMax: number;
  /** Revision writes per LMDB transaction of a big commit (default COMMIT_CHUNK_PUTS_DEFAULT). */
  commitChunkPuts?: number;
  /** Bytes of writes a defragment may buffer while it copies (default DEFRAG_TAP_BYTES_MAX_DEFAULT). */
  defragTapBytesMax?: number;
}

/** A defragment's scratch file is the store's path with this suffix (a crash can leave one: open removes it). */
export const DEFRAG_SUFFIX = '.defrag';

/** Writes buffered while a defragment copies the file, at most (a defragment under heavier writes gives up). */
export const DEFRAG_TAP_BYTES_MAX_DEFAULT = 256 * 1024 * 1024;
/** Catch-up rounds of a defragment before it swaps files whatever is left (each round replays the writes of the previous one). */
const DEFRAG_CATCHUP_ROUNDS_MAX = 8;
/** Writes left to replay below which a defragment swaps files (the swap holds backend commits, never applies). */
const DEFRAG_SWAP_OPS = 4096;
/** Entries a defragment's copy writes per transaction (one event turn's work on the main thread). */
const COPY_CHUNK_ENTRIES = 256;
/** Chunks of a defragment's copy waiting for their commit, at most. */
const COPY_CHUNKS_IN_FLIGHT = 8;
/** Bytes a defragment's copy writes between two syncs of the file. */
const COPY_SYNC_BYTES = 16 * 1024 * 1024;
/** What a buffered write costs beyond its key and value (the object, the array slot). */
const TAP_OP_OVERHEAD_BYTES = 64;

/** One LMDB write (value undefined: a delete), in the key or the meta database. */
interface TapOp {
  readonly keyDb: boolean;
  readonly key: Uint8Array;
  readonly value: Uint8Array | undefined;
}

/** A write issued while files are being swapped: done on the new file, its promise settled then. */
interface HeldOp extends TapOp {
  readonly done: Deferred<void>;
  readonly flushed: Deferred<void>;
}

/** What a defragment did: the file's size before and after. */
export interface DefragResult {
  sizeBeforeBytes: number;
  sizeAfterBytes: number;
  /** The compacting copy, and making it durable. */
  copyMs: number;
  syncMs: number;
  /** Rounds replaying the writes made meanwhile, before the swap. */
  catchupRounds: number;
  /** How long LMDB writes waited while the files were swapped (applying never waits). */
  swapMs: number;
}

interface Env {
  env: RootDatabase<Uint8Array, Buffer>;
  keyDb: Database<Uint8Array, Buffer>;
  metaDb: Database<Uint8Array, Buffer>;
}

/** Opens the store's environment; `scratch`: no syncs at all (a defragment's copy, synced once when done). */
function openEnv(path: string, mapSizeBytes: number, scratch = false): Env {
  const env = open<Uint8Array, Buffer>({
    path,
    noSubdir: true,
    maxDbs: 4,
    mapSize: mapSizeBytes,
    // Explained at the top of the file.
    ...(scratch ? { noSync: true } : { overlappingSync: true }),
    separateFlushed: true,
    // The atomicity of commit() rests on this (it is lmdb-js's default; stated so nobody turns it off).
    eventTurnBatching: true,
    keyEncoding: 'binary',
    encoding: 'binary',
  });
  return {
    env,
    keyDb: env.openDB<Uint8Array, Buffer>({ name: 'key', keyEncoding: 'binary', encoding: 'binary' }),
    metaDb: env.openDB<Uint8Array, Buffer>({ name: 'meta', keyEncoding: 'binary', encoding: 'binary' }),
  };
}

/** Issues one write into an environment (in the current event turn's transaction). */
function writeTo(e: Env, op: TapOp): Promise<boolean> {
  const db = op.keyDb ? e.keyDb : e.metaDb;
  const key = op.key as Buffer;
  return op.value === undefined ? db.remove(key) : db.put(key, op.value as Buffer);
}

/** The `flushed` promise lmdb-js hangs on a write's promise (overlappingSync), or the write's own. */
function flushedOf(p: Promise<unknown>): Promise<unknown> {
  return (p as Promise<unknown> & { flushed?: Promise<unknown> }).flushed ?? p;
}

const latin1 = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

/** Composite meta key: [bucket length][bucket utf-8][key]. Buckets sort by length first, then name. */
export function metaKey(bucket: string, key: Uint8Array): Buffer {
  const name = Buffer.from(bucket, 'utf8');
  if (name.length === 0 || name.length > 255) throw new Error(`mvcc: bad bucket name '${bucket}'`);
  const out = Buffer.allocUnsafe(1 + name.length + key.length);
  out[0] = name.length;
  name.copy(out, 1);
  out.set(key, 1 + name.length);
  return out;
}

/** The LMDB environment ('key' and 'meta' databases) and everything not yet committed to it. */
export class Backend {
  /** The LMDB environment; defragment() replaces it (and the two databases) with a compacted copy. */
  env: RootDatabase<Uint8Array, Buffer>;
  /** Revision key → mvccpb.KeyValue bytes (etcd's "key" bucket). */
  keyDb: Database<Uint8Array, Buffer>;
  /** Composite bucket/key → bytes (etcd's "meta" bucket and every other small table). */
  metaDb: Database<Uint8Array, Buffer>;
  readonly path: string;
  private readonly mapSizeBytes: number;
  /** While a defragment copies the file: every LMDB write issued since it began, to replay into the copy. */
  private tap: TapOp[] | undefined;
  private tapBytes = 0;
  /** While a defragment swaps files: LMDB writes wait here, then go to the copy. */
  private held: HeldOp[] | undefined;
  /** The newest LMDB write issued (they commit in order: once it has, all before it have). */
  private lastIssued: Promise<unknown> | undefined;
  private defragging: Promise<DefragResult> | undefined;
  /** Backups running (on whichever file was current when they began). */
  private readonly copies = new Set<Promise<void>>();
  private closing = false;

  /** main revision → what it staged; entries leave when their LMDB transaction has committed. */
  private readonly overlay = new Map<number, StagedRev>();
  /** main revisions staged since the last commit, ascending. */
  private stagedMains: number[] = [];
  private readonly metaOverlay = new Map<string, MetaWrite>();
  private stagedMeta: MetaWrite[] = [];
  private metaSeq = 0;
  private stagedBytesCount = 0;
  private readonly pendingBytesMax: number;
  private readonly commitChunkPuts: number;
  /** Commits being put into LMDB a chunk per turn, oldest first (see commit()). */
  private readonly commitJobs: CommitJob[] = [];
  private readonly runJobsBound = (): void => this.runJobs();
  private readonly sched = (fn: () => void): void => {
    setImmediate(fn);
  };
  private failure: Error | undefined;
  private lastSizes = { sizeBytes: 0, sizeInUseBytes: 0 };
  private readonly scratchKey = Buffer.allocUnsafe(revBytesLen);
  /** The LMDB key of a block's tombstone at commit (lmdb-js copies keys, so one buffer serves every put). */
  private readonly scratchTombKey = Buffer.allocUnsafe(markedRevBytesLen);
  /** KeyValues read so far (overlay or LMDB). */
  valueReads = 0;

  private constructor(opts: BackendOptions) {
    this.path = opts.path;
    this.mapSizeBytes = opts.mapSizeBytes;
    this.pendingBytesMax = opts.pendingBytesMax;
    this.commitChunkPuts = opts.commitChunkPuts ?? COMMIT_CHUNK_PUTS_DEFAULT;
    if (!(this.commitChunkPuts > 0)) throw new Error('mvcc: commitChunkPuts must be positive');
    mkdirSync(dirname(opts.path), { recursive: true });
    for (const f of [opts.path + DEFRAG_SUFFIX, `${opts.path}${DEFRAG_SUFFIX}-lock`]) fs.rmSync(f, { force: true });
    const e = openEnv(opts.path, opts.mapSizeBytes);
    this.env = e.env;
    this.keyDb = e.keyDb;
    this.metaDb = e.metaDb;
    this.tapBytesMax = opts.defragTapBytesMax ?? DEFRAG_TAP_BYTES_MAX_DEFAULT;
  }

  /** Most bytes of writes a defragment buffers while it copies (past it, the defragment gives up). */
  private readonly tapBytesMax: number;

  static open(opts: BackendOptions): Backend {
    guardLmdbInternalRejections();
    return new Backend(opts);
  }

  /** Bytes staged since the last commit. */
  get stagedBytes(): number {
    return this.stagedBytesCount;
  }

  /** Revisions readable from the overlay (staged or committing). */
  get overlayRevisions(): number {
    return this.overlay.size;
  }

  private checkHealthy(): void {
    if (this.failure !== undefined) throw new Error(`mvcc: backend failed earlier: ${this.failure.message}`);
  }

  /** Counts staged bytes; throws (before anything is staged) past the limit. */
  private account(bytes: number): void {
    const n = this.stagedBytesCount + bytes;
    if (n > this.pendingBytesMax) {
      throw new Error(`mvcc: ${n} bytes staged without a commit (limit ${this.pendingBytesMax})`);
    }
    this.stagedBytesCount = n;
  }

  /** The staging entry of `main`, created (after checking the order) when it has none. */
  private stagedRev(main: number): StagedRev {
    let st = this.overlay.get(main);
    if (st === undefined) {
      const last = this.stagedMains.length > 0 ? this.stagedMains[this.stagedMains.length - 1] : 0;
      if (main <= last) throw new Error(`mvcc: staged revision ${main} after ${last}`);
      st = { writes: [], block: undefined };
      this.overlay.set(main, st);
      this.stagedMains.push(main);
    }
    return st;
  }

  /** Stages revision (main, sub). Revisions must be staged in increasing order. */
  stageRev(main: number, sub: number, key: Buffer, value: Uint8Array): void {
    this.checkHealthy();
    this.account(key.length + value.length);
    const st = this.stagedRev(main);
    if (st.block !== undefined) throw new Error(`mvcc: revision ${main} staged a write after its tombstone block`);
    if (st.writes.length !== sub) throw new Error(`mvcc: staged sub revision ${sub}, expected ${st.writes.length}`);
    st.writes.push({ key, value });
  }

  /**
   * Stages tombstones of `keys` (non-empty keys, in the order given) at (main, firstSub), (main,
   * firstSub+1), …: the same bytes as one stageRev per key, as one block. Nothing more can be staged
   * at `main` after it.
   */
  stageTombstones(main: number, firstSub: number, keys: readonly Uint8Array[]): void {
    this.checkHealthy();
    const n = keys.length;
    if (n === 0) return;
    const ends = new Uint32Array(n);
    let size = 0;
    for (let i = 0; i < n; i++) {
      size += tombstoneValueBytes(keys[i].length);
      ends[i] = size;
    }
    this.account(size + n * markedRevBytesLen);
    const st = this.stagedRev(main);
    if (st.block !== undefined || st.writes.length !== firstSub) {
      this.stagedBytesCount -= size + n * markedRevBytesLen;
      throw new Error(`mvcc: tombstone block at ${main}.${firstSub} does not continue the revision`);
    }
    const values = Buffer.allocUnsafeSlow(size);
    let p = 0;
    for (let i = 0; i < n; i++) {
      const k = keys[i];
      let len = k.length;
      values[p++] = 0x0a; // field 1 (key), length-delimited
      while (len >= 0x80) {
        values[p++] = (len & 0x7f) | 0x80;
        len >>>= 7;
      }
      values[p++] = len;
      values.set(k, p);
      p += k.length;
    }
    st.block = { firstSub, count: n, ends, values };
  }

  /** Drops the newest staged revision write (undo of an aborted write transaction). */
  unstageLastRev(main: number): void {
    const st = this.overlay.get(main);
    const last = this.stagedMains[this.stagedMains.length - 1];
    if (st === undefined || last !== main) throw new Error(`mvcc: nothing staged at ${main}`);
    const b = st.block;
    if (b !== undefined) {
      b.count--;
      this.stagedBytesCount -= markedRevBytesLen + (b.ends[b.count] - (b.count === 0 ? 0 : b.ends[b.count - 1]));
      if (b.count === 0) st.block = undefined;
    } else {
      const w = st.writes.pop();
      if (w === undefined) throw new Error(`mvcc: nothing staged at ${main}`);
      this.stagedBytesCount -= w.key.length + w.value.length;
    }
    if (st.writes.length === 0 && st.block === undefined) {
      this.overlay.delete(main);
      this.stagedMains.pop();
    }
  }

  /**
   * Every LMDB write goes through here: a defragment in progress records it (to replay into its copy) or,
   * while it swaps files, holds it for the new file. The returned promise resolves when the write is
   * committed and carries lmdb-js's `flushed` (durable).
   */
  private write(keyDb: boolean, key: Uint8Array, value: Uint8Array | undefined): Promise<boolean> {
    const op: TapOp = { keyDb, key, value };
    if (this.held !== undefined) {
      const h: HeldOp = { ...op, done: deferred(), flushed: deferred() };
      this.held.push(h);
      const p = h.done.promise.then(() => true) as Promise<boolean> & { flushed?: Promise<unknown> };
      p.flushed = h.flushed.promise;
      this.lastIssued = p;
      return p;
    }
    if (this.tap !== undefined) {
      this.tap.push(op);
      this.tapBytes += key.length + (value?.length ?? 0) + TAP_OP_OVERHEAD_BYTES;
      // Past the limit the defragment will give up: stop holding on to writes at once.
      if (this.tapBytes > this.tapBytesMax) this.tap = [];
    }
    const p = writeTo(this, op);
    this.lastIssued = p;
    return p;
  }

  /** Deletes a revision from LMDB now (physical compaction). */
  removeRev(key: Uint8Array): Promise<boolean> {
    this.checkHealthy();
    return this.write(true, key, undefined);
  }

  /** Writes a meta value straight into LMDB (physical compaction's record of its progress). */
  putMetaNow(key: Uint8Array, value: Uint8Array): Promise<boolean> {
    this.checkHealthy();
    return this.write(false, key, value);
  }

  /**
   * Rewrites the LMDB file without its free pages while the store keeps serving: a compacting copy
   * (mdb_env_copy2 with MDB_CP_COMPACT, on a libuv thread) of the last committed state, then the writes
   * issued since the copy began are replayed into it (puts and deletes in issue order: replaying them over
   * a state that already holds some of them ends in the same state), a few rounds until little is left;
   * then, for the few milliseconds of the last round, LMDB writes wait (applying does not: reads see
   * applied writes from the overlay), the copy becomes the file at `path` (renamed over it) and the writes
   * that waited go to it. Gives up, leaving the store as it was, if writes pile up past the limit during
   * the copy or the store is closed. One at a time: a second call gets the first one's promise.
   */
  defragment(tmpPath: string): Promise<DefragResult> {
    this.checkHealthy();
    if (this.defragging === undefined) {
      this.defragging = this.defragmentOnline(tmpPath).finally(() => {
        this.defragging = undefined;
      });
    }
    return this.defragging;
  }

  private async defragmentOnline(tmpPath: string): Promise<DefragResult> {
    const sizeBeforeBytes = this.sizes().sizeBytes;
    for (const f of [tmpPath, `${tmpPath}-lock`]) fs.rmSync(f, { force: true });
    this.tap = [];
    this.tapBytes = 0;
    let next: Env | undefined;
    let swapped = false;
    const t0 = performance.now();
    let copyMs = 0;
    let syncMs = 0;
    let catchupRounds = 0;
    try {
      await this.copyCompact(tmpPath);
      copyMs = performance.now() - t0;
      // The copy was written without syncs; it is made durable once, off the event loop.
      const fh = await fs.promises.open(tmpPath, 'r+');
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
      syncMs = performance.now() - t0 - copyMs;
      this.checkDefrag();
      next = openEnv(tmpPath, this.mapSizeBytes);
      for (let round = 0; ; round++) {
        const ops = this.tap ?? [];
        if (ops.length <= DEFRAG_SWAP_OPS || round >= DEFRAG_CATCHUP_ROUNDS_MAX) break;
        this.tap = [];
        this.tapBytes = 0;
        await replay(next, ops);
        catchupRounds++;
        this.checkDefrag();
      }
      // The swap: writes wait from here; those issued into the old file commit, the rest is replayed.
      const swapStart = performance.now();
      this.held = [];
      await this.lastIssued;
      this.checkDefrag();
      const last = replay(next, this.tap ?? []);
      this.tap = undefined;
      if (last !== undefined) await Promise.all([last, flushedOf(last)]);
      this.checkDefrag();
      const fd = fs.openSync(tmpPath, 'r+');
      try {
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmpPath, this.path);
      fs.renameSync(`${tmpPath}-lock`, `${this.path}-lock`);
      syncDir(dirname(this.path));
      swapped = true;
      const old: Env = { env: this.env, keyDb: this.keyDb, metaDb: this.metaDb };
      this.env = next.env;
      this.keyDb = next.keyDb;
      this.metaDb = next.metaDb;
      this.releaseHeld();
      const swapMs = performance.now() - swapStart;
      await Promise.allSettled([...this.copies]);
      await old.env.close();
      return { sizeBeforeBytes, sizeAfterBytes: this.sizes().sizeBytes, copyMs, syncMs, catchupRounds, swapMs };
    } catch (err) {
      this.tap = undefined;
      this.releaseHeld();
      if (!swapped) {
        await next?.env.close().catch(() => {});
        for (const f of [tmpPath, `${tmpPath}-lock`]) fs.rmSync(f, { force: true });
      }
      throw err;
    }
  }

  /**
   * A compacted copy of the last committed state in a new environment at `path`: both databases read in
   * key order from one read snapshot and appended (MDB_APPEND: full pages, no free ones), COPY_CHUNK_ENTRIES
   * per transaction with a turn between them, so the event loop is never held for long; no syncs (the caller
   * syncs the file once). mdb_env_copy2's compacting copy (lmdb-js backup) costs the event loop nothing but
   * writes with O_DIRECT: measured 4-6x slower than etcd's defragment here, this 1x (bench/RESULTS.md).
   */
  private async copyCompact(path: string): Promise<void> {
    const dest = openEnv(path, this.mapSizeBytes, true);
    const fh = await fs.promises.open(path, 'r+');
    try {
      const pairs: Array<[Database<Uint8Array, Buffer>, Database<Uint8Array, Buffer>]> = [
        [this.keyDb, dest.keyDb],
        [this.metaDb, dest.metaDb],
      ];
      let unsyncedBytes = 0;
      // Chunks in flight: each is its own transaction (a turn apart); the write thread commits one while
      // the next is read, at most COPY_CHUNKS_IN_FLIGHT at a time.
      const inflight: Promise<boolean>[] = [];
      for (const [src, dst] of pairs) {
        let n = 0;
        let last: Promise<boolean> | undefined;
        for (const { key, value } of src.getRange({ snapshot: true })) {
          last = dst.put(key as Buffer, value, { append: true } as never);
          unsyncedBytes += key.length + value.length;
          if (++n % COPY_CHUNK_ENTRIES === 0) {
            last.catch(() => {}); // awaited below; seen there, not as an unhandled rejection meanwhile
            inflight.push(last);
            if (inflight.length >= COPY_CHUNKS_IN_FLIGHT) await inflight.shift();
            else await yieldTurn();
            // Written back as it goes: a burst of dirty pages flushed at the end would queue the WAL's
            // fsyncs (the puts' latency) behind it.
            if (unsyncedBytes >= COPY_SYNC_BYTES) {
              await Promise.all(inflight.splice(0));
              await fh.datasync();
              unsyncedBytes = 0;
            }
            this.checkDefrag();
          }
        }
        if (last !== undefined) inflight.push(last);
        await Promise.all(inflight.splice(0));
      }
    } finally {
      await fh.close();
      await dest.env.close();
    }
  }

  /**
   * Copies the last committed state of the file to `destPath` (lmdb-js backup: mdb_env_copy2 on a libuv
   * thread); `compact` leaves free pages out. A defragment closes the file it replaced only once the
   * copies running on it are done.
   */
  backup(destPath: string, compact: boolean): Promise<void> {
    const p = this.env.backup(destPath, compact);
    this.copies.add(p);
    const forget = (): void => {
      this.copies.delete(p);
    };
    p.then(forget, forget);
    return p;
  }

  /** Throws when the defragment must give up (store closing or failed, writes past the limit). */
  private checkDefrag(): void {
    if (this.closing) throw new Error('mvcc: defragment: the store is closing');
    this.checkHealthy();
    if (this.tapBytes > this.tapBytesMax)
      throw new Error(`mvcc: defragment: more than ${this.tapBytesMax} bytes written during the copy; try again when writes are fewer`);
  }

  /** The writes that waited during a swap, issued (to whichever file is current now) in order. */
  private releaseHeld(): void {
    const held = this.held;
    this.held = undefined;
    if (held === undefined) return;
    for (const h of held) {
      const p = this.write(h.keyDb, h.key, h.value);
      p.then(
        () => h.done.resolve(),
        (err: unknown) => h.done.reject(err),
      );
      Promise.resolve(flushedOf(p)).then(
        () => h.flushed.resolve(),
        (err: unknown) => h.flushed.reject(err),
      );
    }
  }

  /** KeyValue bytes of the put at (main, sub): the overlay first, then LMDB. */
  readRev(main: number, sub: number): Uint8Array | undefined {
    this.valueReads++;
    const st = this.overlay.get(main);
    if (st !== undefined) {
      const w = st.writes[sub];
      if (w !== undefined) return w.value;
      const b = st.block;
      const i = b === undefined ? -1 : sub - b.firstSub;
      return b !== undefined && i >= 0 && i < b.count ? blockValue(b, i) : undefined;
    }
    writeRevBytes(this.scratchKey, main, sub);
    return this.keyDb.getBinary(this.scratchKey);
  }

  /**
   * The oldest main revision still in the overlay (staged, or committing), or +Infinity. Every revision
   * below it is in LMDB; from it on, read the overlay: LMDB may hold part of a commit still in chunks.
   */
  firstOverlayMain(): number {
    const it = this.overlay.keys().next();
    return it.done === true ? Number.POSITIVE_INFINITY : it.value;
  }

  /** Overlay writes with main > afterMain, in revision order (for hashing beyond what LMDB holds). */
  *overlaySince(afterMain: number, uptoMain: number): Generator<RevWrite> {
    const mains = [...this.overlay.keys()].filter((m) => m > afterMain && m <= uptoMain).sort((a, b) => a - b);
    for (const m of mains) {
      const st = this.overlay.get(m)!;
      yield* st.writes;
      const b = st.block;
      if (b === undefined) continue;
      for (let i = 0; i < b.count; i++) yield { key: revKey(m, b.firstSub + i, true), value: blockValue(b, i) };
    }
  }

  metaGet(bucket: string, key: Uint8Array): Uint8Array | undefined {
    const k = metaKey(bucket, key);
    const w = this.metaOverlay.get(latin1(k));
    if (w !== undefined) return w.value;
    return this.metaDb.getBinary(k);
  }

  /** Stages a meta write; visible at once, in LMDB with the next commit. */
  metaPut(bucket: string, key: Uint8Array, value: Uint8Array): void {
    this.stageMeta(metaKey(bucket, key), value);
  }

  metaDelete(bucket: string, key: Uint8Array): void {
    this.stageMeta(metaKey(bucket, key), undefined);
  }

  private stageMeta(k: Buffer, value: Uint8Array | undefined): void {
    this.checkHealthy();
    this.account(k.length + (value === undefined ? 0 : value.length));
    const w: MetaWrite = { key: k, value: value === undefined ? undefined : Buffer.from(value), seq: ++this.metaSeq };
    this.metaOverlay.set(latin1(k), w);
    this.stagedMeta.push(w);
  }

  /** Every (key, value) of a bucket in key order, staged writes included. */
  metaScan(bucket: string): Array<[Uint8Array, Uint8Array]> {
    const prefix = metaKey(bucket, new Uint8Array(0));
    const end = Buffer.from(prefix);
    // prefix = [len][name]; the next bucket of the same length sorts after name+0xff... bytes, so
    // bump the last byte of the name (names never end in 0xff in utf-8).
    end[end.length - 1]++;
    const merged = new Map<string, [Uint8Array, Uint8Array]>();
    for (const { key, value } of this.metaDb.getRange({ start: prefix, end })) {
      merged.set(latin1(key), [key.subarray(prefix.length), value]);
    }
    const p = latin1(prefix);
    for (const [k, w] of this.metaOverlay) {
      if (!k.startsWith(p)) continue;
      if (w.value === undefined) merged.delete(k);
      else merged.set(k, [w.key.subarray(prefix.length), w.value]);
    }
    return [...merged.values()].sort((a, b) => Buffer.compare(a[0], b[0]));
  }

  /** Every (composite key, value) of the meta database in key order, staged writes included. */
  metaScanAll(): Array<[Uint8Array, Uint8Array]> {
    const merged = new Map<string, [Uint8Array, Uint8Array]>();
    for (const { key, value } of this.metaDb.getRange({})) merged.set(latin1(key), [key, value]);
    for (const [k, w] of this.metaOverlay) {
      if (w.value === undefined) merged.delete(k);
      else merged.set(k, [w.key, w.value]);
    }
    return [...merged.values()].sort((a, b) => Buffer.compare(a[0], b[0]));
  }

  /**
   * Writes everything staged since the last call into LMDB. Puts issued in one event turn share one
   * LMDB transaction; a commit of up to `commitChunkPuts` revision writes is issued at once, so it is one
   * transaction. A bigger one (a revoke of 100,000 keys) is spread over several turns, a chunk per turn,
   * so the thread is never held for the whole of it: its meta writes (the applied index, the revision it
   * holds) go with its last chunk, and a crash between chunks leaves revisions past the recorded one,
   * which the next open discards (Mvcc restore) before the WAL applies them again. Until the last chunk
   * is in, everything stays readable from the overlay. Commits finish in call order.
   */
  commit(): CommitResult {
    this.checkHealthy();
    const job: CommitJob = {
      mains: this.stagedMains,
      metas: this.stagedMeta,
      main: 0,
      sub: 0,
      done: deferred(),
      flushed: deferred(),
      startedMs: performance.now(),
    };
    this.stagedMains = [];
    this.stagedMeta = [];
    let puts = 0;
    for (let i = 0; i < job.mains.length && puts <= this.commitChunkPuts; i++) {
      const st = this.overlay.get(job.mains[i])!;
      puts += st.writes.length + (st.block?.count ?? 0);
    }
    this.stagedBytesCount = 0;
    if (this.commitJobs.length === 0 && puts <= this.commitChunkPuts) {
      this.issue(job, Number.POSITIVE_INFINITY);
    } else if (this.commitJobs.length >= COMMIT_JOBS_MAX) {
      // Commits come faster than their chunks go: put everything queued into LMDB now, this one included.
      this.commitJobs.push(job);
      for (const j of this.commitJobs.splice(0)) this.issue(j, Number.POSITIVE_INFINITY);
    } else {
      this.commitJobs.push(job);
      if (this.commitJobs.length === 1) this.sched(this.runJobsBound);
    }
    return { committed: job.done.promise, flushed: job.flushed.promise };
  }

  /** Commits that wait for, or are in the middle of, their chunks. */
  get commitsInFlight(): number {
    return this.commitJobs.length;
  }

  /** One turn of chunked commits: up to commitChunkPuts revision writes, finishing jobs on the way. */
  private runJobs(): void {
    let budget = this.commitChunkPuts;
    while (this.commitJobs.length > 0 && budget > 0) {
      if (this.failure !== undefined) {
        for (const j of this.commitJobs.splice(0)) this.failJob(j, this.failure);
        return;
      }
      const job = this.commitJobs[0];
      budget = this.issue(job, budget);
      if (job.main < job.mains.length) break;
      this.commitJobs.shift();
    }
    if (this.commitJobs.length > 0) this.sched(this.runJobsBound);
  }

  /**
   * Issues up to `budget` of the job's revision writes from where it stopped; once all are issued, its
   * meta writes too, and its promises follow that last put. Returns the budget left.
   */
  private issue(job: CommitJob, budget: number): number {
    let last: Promise<boolean> | undefined;
    const mains = job.mains;
    const tk = this.scratchTombKey;
    while (job.main < mains.length && budget > 0) {
      const main = mains[job.main];
      const st = this.overlay.get(main)!;
      const subs = st.writes;
      const b = st.block;
      const total = subs.length + (b === undefined ? 0 : b.count);
      for (; job.sub < total && budget > 0; job.sub++, budget--) {
        const j = job.sub;
        if (j < subs.length) {
          last = this.write(true, subs[j].key, subs[j].value);
        } else {
          const i = j - subs.length;
          writeRevBytes(tk, main, b!.firstSub + i);
          markRevBytesTombstone(tk);
          last = this.write(true, this.tap === undefined && this.held === undefined ? tk : Buffer.from(tk), blockValue(b!, i));
        }
      }
      if (job.sub < total) break;
      job.main++;
      job.sub = 0;
    }
    if (job.main < mains.length) return budget;
    const metas = job.metas;
    for (let i = 0; i < metas.length; i++) {
      const w = metas[i];
      last = this.write(false, w.key, w.value);
    }
    if (last === undefined) {
      job.done.resolve();
      job.flushed.resolve();
      return budget;
    }
    const flushedRaw = (last as Promise<boolean> & { flushed?: Promise<unknown> }).flushed ?? last;
    const committed = last.then(
      () => this.afterCommit(mains, metas),
      (err: unknown) => this.fail(err),
    );
    committed.then(job.done.resolve, job.done.reject);
    // Once any commit or sync failed, no later one counts as durable: after a failed fsync the kernel may
    // have dropped the dirty pages it could not write, so a later successful sync proves nothing about them.
    Promise.resolve(flushedRaw)
      .then(
        () => {
          backendCommitSeconds.observe((performance.now() - job.startedMs) / 1000);
          return committed;
        },
        (err: unknown) => this.fail(err),
      )
      .then(() => {
        if (this.failure !== undefined) throw this.failure;
      })
      .then(job.flushed.resolve, (err: unknown) => job.flushed.reject(err));
    return budget;
  }

  private failJob(job: CommitJob, err: Error): void {
    job.done.reject(err);
    job.flushed.reject(err);
  }

  private afterCommit(mains: number[], metas: MetaWrite[]): void {
    // lmdb-js renews its read snapshot when a commit resolves; make sure before the overlay shrinks.
    this.env.resetReadTxn();
    for (let i = 0; i < mains.length; i++) this.overlay.delete(mains[i]);
    for (let i = 0; i < metas.length; i++) {
      const k = latin1(metas[i].key);
      const cur = this.metaOverlay.get(k);
      if (cur !== undefined && cur.seq === metas[i].seq) this.metaOverlay.delete(k);
    }
  }

  private fail(err: unknown): never {
    const e = err instanceof Error ? err : new Error(String(err));
    this.failure ??= e;
    throw e;
  }

  /** Bytes of the LMDB file, and of the pages its trees use (the rest is free for reuse). */
  sizes(): { sizeBytes: number; sizeInUseBytes: number } {
    try {
      const s = this.env.getStats() as LmdbStats;
      const pageSize = s.pageSize;
      const used = (t: LmdbTreeStats): number => t.treeBranchPageCount + t.treeLeafPageCount + t.overflowPages;
      const k = this.keyDb.getStats() as LmdbStats;
      const m = this.metaDb.getStats() as LmdbStats;
      const inUsePages = 2 /* meta pages */ + used(s.root) + used(s.free) + used(k) + used(m);
      this.lastSizes = { sizeBytes: (s.lastPageNumber + 1) * pageSize, sizeInUseBytes: inUsePages * pageSize };
    } catch (e) {
      // After a failed commit LMDB may refuse everything (MDB_PANIC), also when lmdb-js never settled that
      // commit (a failed meta page write); Status and /metrics still answer.
      if (this.failure === undefined && !(e instanceof Error && e.message.includes('MDB_PANIC'))) throw e;
      this.failure ??= e as Error;
    }
    return this.lastSizes;
  }

  /** Waits for commits in flight (their chunks) and a defragment (which gives up), then closes LMDB. */
  async close(): Promise<void> {
    this.closing = true;
    await this.defragging?.catch(() => {});
    const last = this.commitJobs[this.commitJobs.length - 1];
    if (last !== undefined) await last.done.promise.catch(() => {});
    await this.env.close();
  }
}

/** Replays writes into `e` in one turn (one transaction); returns the last write's promise (none for no writes). */
function replay(e: Env, ops: readonly TapOp[]): Promise<boolean> | undefined {
  let last: Promise<boolean> | undefined;
  for (let i = 0; i < ops.length; i++) last = writeTo(e, ops[i]);
  return last;
}

function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

let guarded = false;

/**
 * lmdb-js starts each event turn's write batch with a promise of its own that nobody can reach; when the
 * transaction fails (a write or sync error) it rejects with the same "Commit failed" error as the writes'
 * promises, which commit() does handle, and would otherwise crash the process as an unhandled rejection
 * before the member can stop cleanly and say why. Those are dropped here; any other unhandled rejection
 * still ends the process as Node's default would.
 */
function guardLmdbInternalRejections(): void {
  if (guarded) return;
  guarded = true;
  process.on('unhandledRejection', (reason) => {
    if (reason instanceof Error && 'commitError' in reason) return;
    throw reason;
  });
}

interface LmdbTreeStats {
  pageSize: number;
  treeBranchPageCount: number;
  treeLeafPageCount: number;
  overflowPages: number;
  entryCount: number;
}
interface LmdbStats extends LmdbTreeStats {
  root: LmdbTreeStats;
  free: LmdbTreeStats;
  lastPageNumber: number;
}
