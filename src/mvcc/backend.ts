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
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { open, type Database, type RootDatabase } from 'lmdb';
import { revBytesLen, writeRevBytes } from './revision.js';

/** One staged revision write: its LMDB key (17 bytes, 18 for a tombstone) and KeyValue bytes. */
export interface RevWrite {
  readonly key: Buffer;
  readonly value: Uint8Array;
}

interface MetaWrite {
  readonly key: Buffer;
  /** undefined = delete */
  readonly value: Uint8Array | undefined;
  readonly seq: number;
}

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
  readonly env: RootDatabase<Uint8Array, Buffer>;
  /** Revision key → mvccpb.KeyValue bytes (etcd's "key" bucket). */
  readonly keyDb: Database<Uint8Array, Buffer>;
  /** Composite bucket/key → bytes (etcd's "meta" bucket and every other small table). */
  readonly metaDb: Database<Uint8Array, Buffer>;
  readonly path: string;

  /** main revision → writes by sub; entries leave when their LMDB transaction has committed. */
  private readonly overlay = new Map<number, RevWrite[]>();
  /** main revisions staged since the last commit, ascending. */
  private stagedMains: number[] = [];
  private readonly metaOverlay = new Map<string, MetaWrite>();
  private stagedMeta: MetaWrite[] = [];
  private metaSeq = 0;
  private stagedBytesCount = 0;
  private readonly pendingBytesMax: number;
  private failure: Error | undefined;
  private lastSizes = { sizeBytes: 0, sizeInUseBytes: 0 };
  private readonly scratchKey = Buffer.allocUnsafe(revBytesLen);
  /** KeyValues read so far (overlay or LMDB). */
  valueReads = 0;

  private constructor(opts: BackendOptions) {
    this.path = opts.path;
    this.pendingBytesMax = opts.pendingBytesMax;
    mkdirSync(dirname(opts.path), { recursive: true });
    this.env = open<Uint8Array, Buffer>({
      path: opts.path,
      noSubdir: true,
      maxDbs: 4,
      mapSize: opts.mapSizeBytes,
      // Explained at the top of the file.
      overlappingSync: true,
      separateFlushed: true,
      // The atomicity of commit() rests on this (it is lmdb-js's default; stated so nobody turns it off).
      eventTurnBatching: true,
      keyEncoding: 'binary',
      encoding: 'binary',
    });
    this.keyDb = this.env.openDB<Uint8Array, Buffer>({ name: 'key', keyEncoding: 'binary', encoding: 'binary' });
    this.metaDb = this.env.openDB<Uint8Array, Buffer>({ name: 'meta', keyEncoding: 'binary', encoding: 'binary' });
  }

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

  /** Stages revision (main, sub). Revisions must be staged in increasing order. */
  stageRev(main: number, sub: number, key: Buffer, value: Uint8Array): void {
    this.checkHealthy();
    this.account(key.length + value.length);
    let subs = this.overlay.get(main);
    if (subs === undefined) {
      const last = this.stagedMains.length > 0 ? this.stagedMains[this.stagedMains.length - 1] : 0;
      if (main <= last) throw new Error(`mvcc: staged revision ${main} after ${last}`);
      subs = [];
      this.overlay.set(main, subs);
      this.stagedMains.push(main);
    }
    if (subs.length !== sub) throw new Error(`mvcc: staged sub revision ${sub}, expected ${subs.length}`);
    subs.push({ key, value });
  }

  /** Drops the newest staged revision write (undo of an aborted write transaction). */
  unstageLastRev(main: number): void {
    const subs = this.overlay.get(main);
    const last = this.stagedMains[this.stagedMains.length - 1];
    if (subs === undefined || last !== main || subs.length === 0) throw new Error(`mvcc: nothing staged at ${main}`);
    const w = subs.pop()!;
    this.stagedBytesCount -= w.key.length + w.value.length;
    if (subs.length === 0) {
      this.overlay.delete(main);
      this.stagedMains.pop();
    }
  }

  /** KeyValue bytes of the put at (main, sub): the overlay first, then LMDB. */
  readRev(main: number, sub: number): Uint8Array | undefined {
    this.valueReads++;
    const subs = this.overlay.get(main);
    if (subs !== undefined) {
      const w = subs[sub];
      return w === undefined ? undefined : w.value;
    }
    writeRevBytes(this.scratchKey, main, sub);
    return this.keyDb.getBinary(this.scratchKey);
  }

  /** Overlay writes with main > afterMain, in revision order (for hashing beyond what LMDB holds). */
  *overlaySince(afterMain: number, uptoMain: number): Generator<RevWrite> {
    const mains = [...this.overlay.keys()].filter((m) => m > afterMain && m <= uptoMain).sort((a, b) => a - b);
    for (const m of mains) yield* this.overlay.get(m)!;
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

  /**
   * Writes everything staged since the last call into LMDB. All puts are issued in this one
   * synchronous loop, so they share the event turn and thereby one LMDB transaction.
   */
  commit(): CommitResult {
    this.checkHealthy();
    let last: Promise<boolean> | undefined;
    const mains = this.stagedMains;
    for (let i = 0; i < mains.length; i++) {
      const subs = this.overlay.get(mains[i])!;
      for (let j = 0; j < subs.length; j++) last = this.keyDb.put(subs[j].key, subs[j].value);
    }
    const metas = this.stagedMeta;
    for (let i = 0; i < metas.length; i++) {
      const w = metas[i];
      last = w.value === undefined ? this.metaDb.remove(w.key) : this.metaDb.put(w.key, w.value);
    }
    this.stagedMains = [];
    this.stagedMeta = [];
    this.stagedBytesCount = 0;
    if (last === undefined) {
      const done = Promise.resolve();
      return { committed: done, flushed: done };
    }
    const flushedRaw = (last as Promise<boolean> & { flushed?: Promise<unknown> }).flushed ?? last;
    const committed = last.then(
      () => this.afterCommit(mains, metas),
      (err: unknown) => this.fail(err),
    );
    // Once any commit or sync failed, no later one counts as durable: after a failed fsync the kernel may
    // have dropped the dirty pages it could not write, so a later successful sync proves nothing about them.
    const flushed = Promise.resolve(flushedRaw).then(
      () =>
        committed.then(() => {
          if (this.failure !== undefined) throw this.failure;
        }),
      (err: unknown) => this.fail(err),
    );
    return { committed, flushed };
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
      // After a failed commit LMDB may refuse everything (MDB_PANIC); Status and /metrics still answer.
      if (this.failure === undefined) throw e;
    }
    return this.lastSizes;
  }

  async close(): Promise<void> {
    await this.env.close();
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
