// The member's backend: the MVCC store in use, its commits batched like etcd's (--backend-batch-interval,
// --backend-batch-limit), and the one way to replace it, swapBackend(), which snapshot install uses and
// defragment and restore will use. Whoever derives state from the store registers for swaps.
import fs from 'node:fs';
import path from 'node:path';
import { Mvcc, type DefragResult } from '../mvcc/index.js';
import { assert } from '../assert.js';
import type { BackendQuota } from './quota.js';
import type { Scheduler } from './ports.js';

/** Where applying stands: what a commit records as the backend's applied index. */
export interface AppliedPosition {
  readonly appliedIndex: number;
  readonly appliedTerm: number;
}

export interface MemberBackendOptions {
  /** Longest time applied entries wait for a backend commit (etcd --backend-batch-interval). */
  batchIntervalMs: number;
  /** Most applied entries per backend commit (etcd --backend-batch-limit). */
  batchLimit: number;
  quota: BackendQuota;
  sched: Scheduler;
  /** A commit or its sync failed: the backend is not retried (the member must stop writing). Called once. */
  onFail: (err: unknown) => void;
  /**
   * A commit not durable after this long counts as failed (default COMMIT_STALL_MS): lmdb-js reports a failed
   * write of LMDB's meta page only on stderr and never settles that commit, so waiting is the only signal.
   */
  commitStallMs?: number;
  /** The backend file's path, to tell a full disk from another write error (LMDB reports both as EIO). */
  dbPath?: string;
}

/** How long a backend commit may take to become durable before the disk is taken for failed. */
export const COMMIT_STALL_MS = 30_000;

/**
 * The store and its commits.
 *
 *   const be = new MemberBackend(mvcc, opts, () => applying);
 *   be.onSwap((store) => applier.useStore(store));
 *   be.applied(entries.length);            // after each applied batch
 *   await be.swapBackend(receivedPath, livePath);
 */
export class MemberBackend {
  private current: Mvcc;
  /** Entries at or below this are in the backend already (applied before a restart, or carried by a snapshot). */
  private backendIndexValue: number;
  private readonly swapListeners: Array<(store: Mvcc) => void> = [];
  private entriesSinceCommit = 0;
  private timer: unknown = undefined;
  private swapping = false;
  private failure: unknown = undefined;
  private readonly commitBound = (): void => {
    this.timer = undefined;
    this.commit();
  };

  constructor(
    store: Mvcc,
    private readonly o: MemberBackendOptions,
    private readonly position: () => AppliedPosition,
  ) {
    this.current = store;
    this.backendIndexValue = store.consistentIndex().index;
  }

  /** The store in use now. Do not keep it across a turn: a swap replaces it. */
  get store(): Mvcc {
    return this.current;
  }

  /** The applied index the backend held when it was opened or swapped in. */
  get backendIndex(): number {
    return this.backendIndexValue;
  }

  /** Registers a listener called (synchronously, in registration order) with the new store after a swap. */
  onSwap(listener: (store: Mvcc) => void): void {
    this.swapListeners.push(listener);
  }

  /**
   * `count` entries were applied: commit when the batch is full, else within the batch interval. The WAL
   * made them durable already, and one LMDB transaction (with its own sync) per Ready would double the
   * disk work of every write; reads see applied data at once from the store's overlay.
   */
  applied(count: number): void {
    this.entriesSinceCommit += count;
    if (this.entriesSinceCommit >= this.o.batchLimit) this.commit();
    else if (this.timer === undefined) this.timer = this.o.sched.timeout(this.commitBound, this.o.batchIntervalMs);
  }

  /**
   * Commits what was applied in one LMDB transaction with the applied index; `flushed` resolves once
   * durable. Replaying entries the backend already holds (its applied index can be ahead of the WAL's
   * commit index after a restart) commits nothing.
   */
  commit(): { committed: Promise<void>; flushed: Promise<void> } {
    if (this.timer !== undefined) this.o.sched.cancel(this.timer);
    this.timer = undefined;
    this.entriesSinceCommit = 0;
    if (this.failure !== undefined) {
      // Never retried: nothing commits, and nothing counts as durable, after a failure (a snapshot must not
      // release the WAL on the strength of it).
      const failed = Promise.reject(this.failure);
      failed.catch(() => {});
      return { committed: failed, flushed: failed };
    }
    const { appliedIndex, appliedTerm } = this.position();
    if (appliedIndex <= this.backendIndexValue) return { committed: Promise.resolve(), flushed: Promise.resolve() };
    const quota = this.o.quota;
    const mark = quota.mark();
    const store = this.current;
    let r: { committed: Promise<void>; flushed: Promise<void> };
    try {
      r = store.commit(appliedIndex, appliedTerm);
    } catch (err) {
      // The store refuses once a commit of it failed, maybe before that failure reached failed() here.
      this.failed(err);
      const failed = Promise.reject(err);
      failed.catch(() => {});
      return { committed: failed, flushed: failed };
    }
    r.committed.catch((err: unknown) => this.failed(err));
    r.flushed.catch((err: unknown) => this.failed(err));
    const stallMs = this.o.commitStallMs ?? COMMIT_STALL_MS;
    const stall = this.o.sched.timeout(
      () =>
        this.failed(new Error(`a commit (applied index ${appliedIndex}) was not durable after ${stallMs} ms; the disk may have failed`)),
      stallMs,
    );
    const settled = (): void => this.o.sched.cancel(stall);
    r.flushed.then(settled, settled);
    if (quota.enabled)
      r.flushed.then(
        () => {
          if (this.current !== store) return;
          let bytes: number;
          try {
            bytes = store.stats.dbSizeBytes;
          } catch {
            // LMDB refuses everything once a later commit failed (MDB_PANIC); that commit's own rejection
            // reports the failure and stops the member.
            return;
          }
          quota.settled(mark, bytes);
        },
        () => {},
      );
    return r;
  }

  private failed(err: unknown): void {
    if (this.failure !== undefined) return;
    this.failure = err;
    void describeFailure(err).then((why) => this.o.onFail(new Error(`backend: ${why}${fullDisk(this.o.dbPath)}`)));
  }

  /**
   * Replaces the backend with the store file at `nextPath`, which becomes `livePath`: what was applied is
   * committed to the old store first, the new one is opened, every swap listener is told, the old one is
   * closed and the file renamed into place. The caller made sure `nextPath` is the state it wants (a
   * snapshot from the leader, a defragmented copy, a restored backup).
   */
  async swapBackend(nextPath: string, livePath: string): Promise<Mvcc> {
    assert(!this.swapping, 'a backend swap while another is in progress');
    this.swapping = true;
    try {
      await this.commit().flushed;
      const old = this.current;
      const next = await Mvcc.open({ path: nextPath });
      this.current = next;
      this.backendIndexValue = next.consistentIndex().index;
      this.o.quota.settled(this.o.quota.mark(), next.stats.dbSizeBytes);
      for (const l of this.swapListeners) l(next);
      await old.close();
      if (nextPath !== livePath) {
        fs.renameSync(nextPath, livePath);
        if (fs.existsSync(nextPath + '-lock')) fs.renameSync(nextPath + '-lock', livePath + '-lock');
      }
      return next;
    } finally {
      this.swapping = false;
    }
  }

  /**
   * Defragments the store in use while it serves (Mvcc.defragment): the file is replaced by a compacted
   * copy, the store object stays. Refused while a swap is in progress; a swap that starts meanwhile makes
   * it give up.
   */
  async defragment(): Promise<DefragResult> {
    if (this.swapping) throw new Error('backend: a snapshot is being installed; defragment later');
    const store = this.current;
    const r = await store.defragment();
    if (this.current === store) this.o.quota.resized(r.sizeAfterBytes);
    return r;
  }

  /** Commits what is left and closes the store (after a failure, only closes it: the WAL holds the rest). */
  async close(): Promise<void> {
    if (this.failure === undefined) await this.commit().flushed;
    await this.current.close();
  }
}

/** Free bytes under which a failed backend write is taken for a full disk. */
const FULL_DISK_FREE_BYTES = 1024 * 1024;

/**
 * Why a write may have failed, when the disk holding `dbPath` is (nearly) full: LMDB turns a short write, what a
 * full disk causes, into EIO, so without this the operator reads "Input/output error" and suspects the hardware.
 */
function fullDisk(dbPath: string | undefined): string {
  if (dbPath === undefined) return '';
  try {
    const s = fs.statfsSync(path.dirname(dbPath));
    const free = s.bavail * s.bsize;
    if (free >= FULL_DISK_FREE_BYTES) return '';
    return ` (the disk holding ${dbPath} is full: ${free} bytes free; free space on it, then restart the member)`;
  } catch {
    return '';
  }
}

/** An LMDB commit error with its cause (lmdb-js keeps the errno's text in a rejected `commitError` promise). */
async function describeFailure(err: unknown): Promise<string> {
  const msg = err instanceof Error ? err.message : String(err);
  const cause = (err as { commitError?: unknown } | null)?.commitError;
  if (cause instanceof Promise) {
    try {
      await cause;
    } catch (e) {
      return `${msg}: ${e instanceof Error ? e.message : String(e)}`;
    }
  }
  return msg;
}
