// The write-ahead log: Raft entries, hard state and snapshot markers made durable by the native writer thread
// (group commit), recovered and verified in TypeScript. This file is the API the server uses.
import { HistogramCounts, DISK_SECONDS_BUCKETS } from '../metrics.js';
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, unlinkSync } from 'node:fs';
import { open, readdir, unlink } from 'node:fs/promises';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { WalError, WalQueueFullError } from './errors.js';
import { Ctrl, WriterState, loadNative } from './native.js';
import type { NativeWal, NativeWalHandle } from './native.js';
import { ENTRY_HEAD_BYTES, HARD_STATE_BYTES, RecordType, SNAPSHOT_BYTES, frameRecord, recordBytes, setU64 } from './record.js';
import { recoverWal } from './recovery.js';
import type { WalEntry, WalHardState, WalSnapshot } from './recovery.js';
import { searchStartSegment, segmentName, sortSegments } from './segment.js';

export { WalError, WalCorruptError, WalQueueFullError, WalSnapshotNotFoundError } from './errors.js';
export type { WalEntry, WalHardState, WalSnapshot } from './recovery.js';

/** Tuning; the defaults are the ones bench/wal chose (see bench/RESULTS.md (WAL section)). */
export interface WalOptions {
  /** Size segments are preallocated to and rotated at (--wal-segment-bytes). */
  segmentBytes?: number;
  /** Most bytes one write+fdatasync covers (--wal-batch-max-bytes). */
  batchBytesMax?: number;
  /** How long the writer may wait to gather more before syncing; 0 = sync as soon as the previous one ends
   *  (--wal-batch-max-delay, in microseconds here). */
  batchDelayUsMax?: number;
  /** How long the writer thread polls for the next append after a sync before it sleeps (--wal-writer-idle-spin,
   *  in microseconds here): trades idle CPU for the wake-up latency of a lone writer. */
  idleSpinUs?: number;
  /** Bytes handed to the writer and not yet written beyond which the saves of a turn are refused with
   *  WalQueueFullError (code 'EQUEUEFULL'): a bug guard, not flow control. */
  queueBytesMax?: number;
  /** Skip fdatasync (--unsafe-no-fsync): for tests only, a crash loses acknowledged writes. */
  noFsync?: boolean;
  /** Fault injection for tests and bench/wal only; no flag sets it and the member never does. */
  unsafeTesting?: WalUnsafeTesting;
}

/** Deliberate slowness for tests and benches (a slow disk on a fast one). Never set in production. */
export interface WalUnsafeTesting {
  /** The writer thread sleeps this long after every fdatasync (and after the syncs of a rotation). */
  fsyncSleepUs?: number;
}

/** Defaults of what WalOptions leaves out. The flag table (src/config/flags.ts) states the same numbers for
 *  --help and the flags' defaults; test/config/config.test.ts checks that they agree. */
export const WAL_DEFAULTS = {
  segmentBytes: 64 * 1024 * 1024,
  batchBytesMax: 1024 * 1024,
  batchDelayUsMax: 0,
  idleSpinUs: 0,
  /** The member awaits each save before the next Ready, so the queue holds about one Ready's records (at most
   *  a few hundred MiB even with --max-request-bytes entries and a full --proposal-batch-max); past 1 GiB
   *  something is wrong, and refusing is better than growing without bound. Same default in native/writer.h. */
  queueBytesMax: 1024 * 1024 * 1024,
} as const;

/** Counters published by the writer thread. */
export interface WalStats {
  /** save/saveSnapshot calls that resolved; `handovers` counts the native appends they were grouped into. */
  appends: number;
  handovers: number;
  fsyncs: number;
  bytesWritten: number;
  records: number;
  lastFsyncUs: number;
  fsyncUsTotal: number;
  batchAppendsMax: number;
  segmentCuts: number;
  segmentSeq: number;
  queuedBytes: number;
}

/** Result of Wal.open. */
export interface WalOpened {
  wal: Wal;
  metadata: Uint8Array;
  hardState: WalHardState | undefined;
  entries: WalEntry[];
  snapshots: WalSnapshot[];
}

const WAITERS_INITIAL = 1024;

/**
 * A write-ahead log directory with its writer thread.
 *
 *   const wal = await Wal.create(dir, metadata);
 *   await wal.save({ term: 1, vote: 1n, commit: 0 }, [{ index: 1, term: 1, type: 0, data }]);
 *   const { wal: again, entries } = await Wal.open(dir, { index: 0, term: 0 });
 */
export class Wal {
  private readonly handle: NativeWalHandle;
  private readonly control: Int32Array;
  private readonly control64: BigInt64Array;
  private readonly dir: string;
  // Records of the saves made in the current event-loop turn, handed to the writer by flush().
  private turnBuf: Uint8Array = new Uint8Array(64 * 1024);
  private turnView: DataView = new DataView(this.turnBuf.buffer);
  private turnBytes = 0;
  private flushScheduled = false;
  private readonly flushBound = () => this.flush();
  private lastIndex: number;
  // lastIndex as of the last append the writer accepted: a refused turn's entries never reach the log.
  private lastIndexHanded: number;
  private readonly queueBytesMax: number;
  private nativeSeq = 0;
  private savesDurable = 0;
  /**
   * etcd_disk_wal_fsync_duration_seconds. The writer thread counts fsyncs and their total time; each wake-up
   * adds the fsyncs since the last one, each at their mean (exact when one fsync happened, as is usual).
   */
  readonly fsyncSeconds = new HistogramCounts(DISK_SECONDS_BUCKETS);
  private fsyncsSeen = 0;
  private fsyncUsSeen = 0;
  private durableSeq = 0;
  private failure: WalError | undefined;
  private closing = false;
  private closed: Promise<void> | undefined;
  private onClosed: (() => void) | undefined;
  // Waiters in sequence order, kept in a ring of parallel arrays so resolving costs no allocation.
  private waitSeq: number[] = new Array<number>(WAITERS_INITIAL).fill(0);
  private waitResolve: Array<(() => void) | undefined> = new Array(WAITERS_INITIAL).fill(undefined);
  private waitReject: Array<((e: Error) => void) | undefined> = new Array(WAITERS_INITIAL).fill(undefined);
  private waitHead = 0;
  private waitCount = 0;
  private referenced = false;
  private readonly snapshots: WalSnapshot[];
  private readonly wakeBound = () => this.onWake();
  private readonly resumeBound = () => {
    this.resolveScheduled = false;
    this.onWake();
  };
  private resolveScheduled = false;

  private constructor(dir: string, native: NativeWal, rec: ReturnType<typeof recoverWal>, opts: WalOptions) {
    this.dir = dir;
    this.lastIndex = rec.lastIndex;
    this.lastIndexHanded = rec.lastIndex;
    this.snapshots = rec.snapshots.slice();
    const segmentBytes = opts.segmentBytes ?? WAL_DEFAULTS.segmentBytes;
    const batchBytesMax = opts.batchBytesMax ?? WAL_DEFAULTS.batchBytesMax;
    const queueBytesMax = opts.queueBytesMax ?? WAL_DEFAULTS.queueBytesMax;
    const batchDelayUsMax = opts.batchDelayUsMax ?? WAL_DEFAULTS.batchDelayUsMax;
    const idleSpinUs = opts.idleSpinUs ?? WAL_DEFAULTS.idleSpinUs;
    if (!Number.isSafeInteger(idleSpinUs) || idleSpinUs < 0 || idleSpinUs > 1_000_000)
      throw new WalError('EINVAL', `wal: bad idleSpinUs ${idleSpinUs}`);
    const fsyncSleepUs = opts.unsafeTesting?.fsyncSleepUs ?? 0;
    if (!Number.isSafeInteger(fsyncSleepUs) || fsyncSleepUs < 0 || fsyncSleepUs > 10_000_000) {
      throw new WalError('EINVAL', `wal: bad unsafeTesting.fsyncSleepUs ${fsyncSleepUs}`);
    }
    if (
      !(segmentBytes >= 1024) ||
      !(batchBytesMax >= 1) ||
      !(queueBytesMax >= 1) ||
      !(batchDelayUsMax >= 0) ||
      !Number.isSafeInteger(segmentBytes) ||
      !Number.isSafeInteger(batchBytesMax) ||
      !Number.isSafeInteger(queueBytesMax) ||
      !Number.isSafeInteger(batchDelayUsMax)
    ) {
      throw new WalError('EINVAL', `wal: bad options ${JSON.stringify({ segmentBytes, batchBytesMax, queueBytesMax, batchDelayUsMax })}`);
    }
    this.queueBytesMax = queueBytesMax;
    const sab = new SharedArrayBuffer(Ctrl.totalBytes);
    this.control = new Int32Array(sab);
    this.control64 = new BigInt64Array(sab);
    this.handle = new native.WalHandle({
      dir,
      segmentPath: rec.tail.path,
      segmentSeq: rec.tail.seq,
      offset: rec.tail.endOffset,
      chain: rec.tail.chain,
      lastIndex: rec.lastIndex,
      metadata: rec.metadata,
      hardState: rec.hardStateBytes,
      segmentBytes,
      batchBytesMax,
      batchDelayUsMax,
      idleSpinUs,
      queueBytesMax,
      noFsync: opts.noFsync ?? false,
      unsafeTestingFsyncSleepUs: fsyncSleepUs,
      control: this.control,
      onWake: this.wakeBound,
    });
  }

  /** True if `dir` holds WAL segments. */
  static exists(dir: string): boolean {
    return existsSync(dir) && sortSegments(readdirSync(dir)).length > 0;
  }

  /** Creates a new WAL in dir (fails if one exists) whose first record is `metadata` (opaque: member/cluster ID).
   *  The directory appears complete or not at all: it is built under `dir.tmp` and renamed into place. */
  static async create(dir: string, metadata: Uint8Array, opts: WalOptions = {}): Promise<Wal> {
    const native = loadNative();
    if (Wal.exists(dir)) throw new WalError('EEXIST', `wal: ${dir} already holds a WAL`);
    const tmp = dir.replace(/\/+$/, '') + '.tmp';
    rmSync(tmp, { recursive: true, force: true });
    mkdirDurable(dirname(tmp));
    mkdirSync(tmp, { recursive: true });
    const carry = new Uint8Array(4);
    const snap = new Uint8Array(SNAPSHOT_BYTES);
    const size = recordBytes(4) + recordBytes(metadata.length) + recordBytes(SNAPSHOT_BYTES);
    const buf = new Uint8Array(size);
    const view = new DataView(buf.buffer);
    let at = frameRecord(buf, view, 0, RecordType.crcCarry, 4);
    buf.set(carry, HEADER + 0);
    const mdAt = at;
    at = frameRecord(buf, view, at, RecordType.metadata, metadata.length);
    buf.set(metadata, mdAt + HEADER);
    const snapAt = at;
    at = frameRecord(buf, view, at, RecordType.snapshot, SNAPSHOT_BYTES);
    buf.set(snap, snapAt + HEADER); // the {0, 0} marker: open(dir, {index: 0, term: 0}) matches it
    if (at !== size) throw new Error('wal: initial segment size mismatch');
    try {
      native.writeInitialSegment(join(tmp, segmentName(0, 0)), buf, opts.segmentBytes ?? WAL_DEFAULTS.segmentBytes, opts.noFsync ?? false);
    } catch (e) {
      throw asWalError(e, 'create');
    }
    syncDir(tmp);
    if (existsSync(dir)) {
      // An empty directory (e.g. made by the caller) is replaced; anything in it is not ours to remove.
      if (readdirSync(dir).length > 0) throw new WalError('EEXIST', `wal: ${dir} exists and is not empty`);
      rmSync(dir, { recursive: true });
    }
    renameSync(tmp, dir);
    syncDir(dirname(dir));
    const opened = await Wal.open(dir, { index: 0, term: 0 }, opts);
    return opened.wal;
  }

  /** Opens an existing WAL and recovers everything after `from` (see recovery.ts for the rules); a torn tail of the
   *  last segment is truncated off, any other damage throws WalCorruptError naming file and offset. */
  static async open(dir: string, from: WalSnapshot, opts: WalOptions = {}): Promise<WalOpened> {
    const native = loadNative();
    for (const name of readdirSync(dir)) {
      if (name.endsWith('.wal.tmp')) unlinkSync(join(dir, name)); // a rotation that never got renamed into place
    }
    const rec = recoverWal(dir, from, native.crc32c);
    for (const path of rec.dropSegments) unlinkSync(path);
    if (rec.tail.torn || rec.dropSegments.length > 0) {
      const fd = openSync(rec.tail.path, 'r+');
      try {
        ftruncateSync(fd, rec.tail.endOffset);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      syncDir(dir);
    }
    let wal: Wal;
    try {
      wal = new Wal(dir, native, rec, opts);
    } catch (e) {
      throw asWalError(e, 'open');
    }
    return { wal, metadata: rec.metadata, hardState: rec.hardState, entries: rec.entries, snapshots: rec.snapshots };
  }

  /** Queues entries (and the hard state, if given) and resolves once they are durable. Saves become durable in call
   *  order. Rejects with WalError once the writer has failed (the WAL stays poisoned).
   *  All saves of one event-loop turn are handed to the writer together (one native call, flushed by
   *  process.nextTick), so a burst of saves, e.g. every appender resuming after a sync, lands in one batch. */
  save(hardState: WalHardState | undefined, entries: readonly WalEntry[]): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new WalError('ECLOSED', 'wal: closed'));
    // Validate everything before encoding anything, so a bad argument leaves no half-written save in the turn.
    let bytes = 0;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      assertIndex(e.index, 'entry index');
      assertIndex(e.term, 'entry term');
      bytes += recordBytes(ENTRY_HEAD_BYTES + e.data.length);
    }
    if (hardState) {
      assertIndex(hardState.term, 'hard state term');
      assertIndex(hardState.commit, 'hard state commit');
      if (hardState.vote < 0n || hardState.vote > 0xffffffffffffffffn) throw new RangeError('wal: vote out of u64 range');
      bytes += recordBytes(HARD_STATE_BYTES);
    }
    if (bytes === 0) return this.waitFor(this.turnBytes > 0 ? this.nativeSeq + 1 : this.nativeSeq);
    let at = this.reserve(bytes);
    const buf = this.turnBuf;
    const view = this.turnView;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const p = at + HEADER;
      at = frameRecord(buf, view, at, RecordType.entry, ENTRY_HEAD_BYTES + e.data.length);
      setU64(view, p, e.index);
      setU64(view, p + 8, e.term);
      view.setUint32(p + 16, e.type, true);
      buf.set(e.data, p + ENTRY_HEAD_BYTES);
      this.lastIndex = e.index;
    }
    if (hardState) {
      // After the entries: a hard state whose commit points into this save's entries must not be durable alone.
      const p = at + HEADER;
      at = frameRecord(buf, view, at, RecordType.hardState, HARD_STATE_BYTES);
      setU64(view, p, hardState.term);
      view.setBigUint64(p + 8, hardState.vote, true);
      setU64(view, p + 16, hardState.commit);
    }
    this.turnBytes = at;
    return this.waitFor(this.nativeSeq + 1);
  }

  /** Records a snapshot marker; resolves once it is durable. */
  saveSnapshot(snap: WalSnapshot): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new WalError('ECLOSED', 'wal: closed'));
    assertIndex(snap.index, 'snapshot index');
    assertIndex(snap.term, 'snapshot term');
    const at = this.reserve(recordBytes(SNAPSHOT_BYTES));
    this.turnBytes = frameRecord(this.turnBuf, this.turnView, at, RecordType.snapshot, SNAPSHOT_BYTES);
    setU64(this.turnView, at + HEADER, snap.index);
    setU64(this.turnView, at + HEADER + 8, snap.term);
    // After a snapshot the log continues from its index; the next segment is named from there.
    if (snap.index > this.lastIndex) this.lastIndex = snap.index;
    const marker = { index: snap.index, term: snap.term };
    return this.waitFor(this.nativeSeq + 1).then(() => {
      insertSnapshot(this.snapshots, marker);
    });
  }

  /** Deletes whole segments that hold only records older than the newest snapshot marker at or below `index`. */
  async releaseTo(index: number): Promise<void> {
    let snap: WalSnapshot | undefined;
    for (const s of this.snapshots) if (s.index <= index && (!snap || s.index > snap.index)) snap = s;
    if (!snap) return;
    const segs = sortSegments(await readdir(this.dir));
    const keepFrom = searchStartSegment(segs, snap.index);
    // The open segment is always the newest; searchStartSegment never points past it.
    for (let i = 0; i < keepFrom; i++) await unlink(join(this.dir, segs[i]!.name));
    if (keepFrom > 0) {
      // Make the deletions durable too, so a crash cannot bring back a segment the snapshot already covers.
      const dh = await open(this.dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    }
  }

  /** Waits for everything saved so far, stops the writer thread and releases the directory. */
  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.flush();
    this.closing = true;
    this.closed = new Promise<void>((resolve) => {
      this.onClosed = resolve;
      this.handle.close();
      this.setRef(true);
      this.onWake(); // the writer may already be done
    });
    return this.closed;
  }

  /** Writer counters (read from the shared control block). */
  get stats(): WalStats {
    const c = this.control64;
    const n = (off: number) => Number(Atomics.load(c, off / 8));
    return {
      appends: this.savesDurable,
      handovers: n(Ctrl.appends),
      fsyncs: n(Ctrl.fsyncs),
      bytesWritten: n(Ctrl.bytes),
      records: n(Ctrl.records),
      lastFsyncUs: n(Ctrl.lastFsyncUs),
      fsyncUsTotal: n(Ctrl.fsyncUsTotal),
      batchAppendsMax: n(Ctrl.batchAppendsMax),
      segmentCuts: n(Ctrl.cuts),
      segmentSeq: n(Ctrl.segmentSeq),
      queuedBytes: this.closing ? 0 : this.handle.queuedBytes(),
    };
  }

  /** The error that poisoned this WAL, if any. */
  get error(): WalError | undefined {
    return this.failure;
  }

  /** Makes room for `bytes` more in this turn's buffer and returns where they go; schedules the flush. */
  private reserve(bytes: number): number {
    const need = this.turnBytes + bytes;
    if (this.turnBuf.length < need) {
      let size = this.turnBuf.length;
      while (size < need) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.turnBuf.subarray(0, this.turnBytes));
      this.turnBuf = grown;
      this.turnView = new DataView(grown.buffer);
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushBound);
    }
    return this.turnBytes;
  }

  /** Hands this turn's records to the writer in one native call (sequence number nativeSeq + 1). */
  private flush(): void {
    this.flushScheduled = false;
    if (this.turnBytes === 0) return;
    const expected = this.nativeSeq + 1;
    const bytes = this.turnBytes;
    this.turnBytes = 0;
    if (this.turnBuf.length > TURN_BUFFER_KEEP_BYTES && bytes <= TURN_BUFFER_KEEP_BYTES / 4) {
      this.turnBuf = new Uint8Array(TURN_BUFFER_KEEP_BYTES); // give back a buffer one huge turn grew
      this.turnView = new DataView(this.turnBuf.buffer);
    }
    let err: WalError | undefined;
    if (this.failure) {
      err = this.failure;
    } else {
      try {
        const seq = this.handle.append(this.turnBuf.subarray(0, bytes), this.lastIndex);
        if (seq !== expected) throw new Error(`wal: writer sequence ${seq}, expected ${expected}`);
        this.nativeSeq = seq;
        this.lastIndexHanded = this.lastIndex;
        return;
      } catch (e) {
        err = isCode(e, 'EQUEUEFULL') ? new WalQueueFullError(bytes, this.queueBytesMax) : asWalError(e, 'append');
        if (err.code === 'EFAILED') {
          this.onWake(); // pick up the writer's own error; it rejects every waiter
          if (this.failure) return;
        }
      }
    }
    // The writer refused this turn (queue full, closed): its saves fail, earlier and later turns are unaffected.
    // None of its records were written, so the next segment is still named after the last accepted entry.
    this.lastIndex = this.lastIndexHanded;
    const mask = this.waitSeq.length - 1;
    while (this.waitCount > 0) {
      const slot = (this.waitHead + this.waitCount - 1) & mask;
      if (this.waitSeq[slot] !== expected) break;
      const reject = this.waitReject[slot]!;
      this.waitResolve[slot] = undefined;
      this.waitReject[slot] = undefined;
      this.waitCount--;
      reject(err);
    }
    if (this.waitCount === 0 && this.referenced) this.setRef(false);
  }

  private waitFor(seq: number): Promise<void> {
    if (seq <= this.durableSeq) {
      this.savesDurable++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      if (this.waitCount === this.waitSeq.length) this.growWaiters();
      const slot = (this.waitHead + this.waitCount) & (this.waitSeq.length - 1);
      this.waitSeq[slot] = seq;
      this.waitResolve[slot] = resolve;
      this.waitReject[slot] = reject;
      this.waitCount++;
      if (!this.referenced) this.setRef(true);
    });
  }

  private growWaiters(): void {
    const size = this.waitSeq.length;
    const seqs = new Array<number>(size * 2).fill(0);
    const res = new Array<(() => void) | undefined>(size * 2).fill(undefined);
    const rej = new Array<((e: Error) => void) | undefined>(size * 2).fill(undefined);
    for (let i = 0; i < this.waitCount; i++) {
      const from = (this.waitHead + i) & (size - 1);
      seqs[i] = this.waitSeq[from]!;
      res[i] = this.waitResolve[from];
      rej[i] = this.waitReject[from];
    }
    this.waitSeq = seqs;
    this.waitResolve = res;
    this.waitReject = rej;
    this.waitHead = 0;
  }

  /** Called when the writer published (through the thread-safe function), and after close or a refused append. */
  private onWake(): void {
    const fsyncs = Number(Atomics.load(this.control64, Ctrl.fsyncs / 8));
    if (fsyncs > this.fsyncsSeen) {
      const us = Number(Atomics.load(this.control64, Ctrl.fsyncUsTotal / 8));
      const n = fsyncs - this.fsyncsSeen;
      this.fsyncSeconds.observeMany((us - this.fsyncUsSeen) / n / 1e6, n);
      this.fsyncsSeen = fsyncs;
      this.fsyncUsSeen = us;
    }
    const durable = Number(Atomics.load(this.control64, Ctrl.durableSeq / 8));
    this.durableSeq = durable;
    const mask = this.waitSeq.length - 1;
    // Each resolved save runs its continuation in this turn; bound how many so timers and I/O get a turn when
    // thousands of saves complete at once (the rest follow in the next check phase).
    let budget = RESOLVE_PER_TURN_MAX;
    while (this.waitCount > 0 && this.waitSeq[this.waitHead]! <= durable) {
      if (budget-- === 0) {
        if (!this.resolveScheduled) {
          this.resolveScheduled = true;
          setImmediate(this.resumeBound);
        }
        break;
      }
      const resolve = this.waitResolve[this.waitHead]!;
      this.waitResolve[this.waitHead] = undefined;
      this.waitReject[this.waitHead] = undefined;
      this.waitHead = (this.waitHead + 1) & mask;
      this.waitCount--;
      this.savesDurable++;
      resolve();
    }
    const state = Atomics.load(this.control, Ctrl.state / 4);
    if (state === WriterState.failed && !this.failure) {
      this.failure = WalError.fromErrno(Atomics.load(this.control, Ctrl.errno / 4), this.handle.failWhat());
    }
    if (this.failure) {
      while (this.waitCount > 0) {
        const reject = this.waitReject[this.waitHead]!;
        this.waitResolve[this.waitHead] = undefined;
        this.waitReject[this.waitHead] = undefined;
        this.waitHead = (this.waitHead + 1) & mask;
        this.waitCount--;
        reject(this.failure);
      }
    }
    if (this.closing && this.onClosed && !this.resolveScheduled && (state === WriterState.closed || state === WriterState.failed)) {
      const done = this.onClosed;
      this.onClosed = undefined;
      this.handle.join();
      this.setRef(false);
      done();
      return;
    }
    if (this.waitCount === 0 && !this.onClosed && this.referenced) this.setRef(false);
  }

  /** Keeps the process alive (through the thread-safe function) exactly while a save or close waits. */
  private setRef(on: boolean): void {
    this.referenced = on;
    if (on) this.handle.ref();
    else this.handle.unref();
  }
}

const HEADER = 16;
/** A turn buffer grown beyond this is replaced by a fresh one of this size after use. */
const TURN_BUFFER_KEEP_BYTES = 4 * 1024 * 1024;
/** Saves resolved per event-loop turn; see onWake. */
const RESOLVE_PER_TURN_MAX = 1024;

function assertIndex(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`wal: ${what} must be a non-negative safe integer, got ${n}`);
}

function insertSnapshot(list: WalSnapshot[], snap: WalSnapshot): void {
  let i = list.length;
  while (i > 0 && list[i - 1]!.index > snap.index) i--;
  list.splice(i, 0, snap);
}

function asWalError(e: unknown, what: string): WalError {
  if (e instanceof WalError) return e;
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err.code === 'string' ? err.code : 'EIO';
  return new WalError(code, `wal: ${what}: ${typeof err.message === 'string' ? err.message : String(e)}`);
}

function isCode(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}

/** fsync of a directory: the entries created, renamed or removed in it so far survive a power loss. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * mkdir -p whose result survives a power loss: every directory it creates is made durable by an fsync of its
 * parent (POSIX makes a directory entry durable only then). Returns whether anything was created.
 */
export function mkdirDurable(dir: string, mode = 0o700): boolean {
  const abs = resolvePath(dir);
  if (existsSync(abs)) return false;
  mkdirDurable(dirname(abs), mode);
  mkdirSync(abs, { mode });
  syncDir(dirname(abs));
  return true;
}

/**
 * Locks a member's data dir for this process (an exclusive flock on `path`, held until exit), so two members
 * can never write one WAL and one backend at the same time. Throws WalError code 'ELOCKED' if another process
 * holds it.
 *
 *   lockDataDir(join(dataDir, 'member', 'lock'));
 */
export function lockDataDir(path: string): void {
  try {
    loadNative().lockFile(path);
  } catch (e) {
    throw asWalError(e, 'lock');
  }
}
