// The backend quota (--quota-backend-bytes): a write is refused with ErrNoSpace when the backend's
// size plus the request's cost would reach the quota, and the member then raises the NOSPACE alarm.
// Costs are etcd's (etcdserver/quota.go), so the same workload trips at the same point.
import type { PutRequestInit, TxnRequestInit } from '../proto/rpc.js';

/** Bytes a put is assumed to add beyond its key and value (etcd: kvOverhead). */
const KV_OVERHEAD_BYTES = 256;

/** --quota-auto-disarm clears NOSPACE below this fraction of the quota. */
export const AUTO_DISARM_FRACTION = 0.9;

/** What etcd's quota charges a LeaseGrant (etcdserver/quota.go leaseOverhead). */
export const LEASE_GRANT_COST_BYTES = 64;

export function costPut(r: PutRequestInit): number {
  return KV_OVERHEAD_BYTES + (r.key?.length ?? 0) + (r.value?.length ?? 0);
}

/** The larger branch's puts (nested txns are not counted, as in etcd 3.4). */
export function costTxn(r: TxnRequestInit): number {
  const branch = (ops: TxnRequestInit['success']) => {
    let n = 0;
    for (const op of ops ?? []) if (op.request_put) n += costPut(op.request_put);
    return n;
  };
  return Math.max(branch(r.success), branch(r.failure));
}

/**
 * The quota. `quotaBytes` ≤ 0 or Infinity means none (etcd: a negative --quota-backend-bytes).
 *
 *   if (!quota.available(cost)) { raiseNoSpace(); throw Errors.NoSpace(); }
 *   quota.charge(cost);                    // the write goes ahead
 *   const mark = quota.mark();             // a backend commit starts
 *   flushed.then(() => quota.settled(mark, backendSizeNow));
 *
 * The backend's size grows only when a batched commit lands (every --backend-batch-interval), so the
 * size alone would let a burst of writes far past the quota. Writes accepted since the last landed
 * commit are therefore counted at their cost until a commit that holds them lands and the size is read
 * again.
 */
export class BackendQuota {
  /** Cost of every write accepted so far. */
  private charged = 0;
  /** Of which the backend size last read already holds. */
  private settledCharged = 0;

  constructor(
    private readonly quotaBytes: number,
    private sizeBytes: number,
  ) {}

  get enabled(): boolean {
    return Number.isFinite(this.quotaBytes) && this.quotaBytes > 0;
  }

  /** The backend's size as last read, plus the writes accepted since then. */
  get estimatedBytes(): number {
    return this.sizeBytes + (this.charged - this.settledCharged);
  }

  /**
   * Whether a NOSPACE alarm may clear itself (--quota-auto-disarm): the backend is under
   * AUTO_DISARM_FRACTION of the quota both in use and as the quota counts it (the file, which only a
   * defragment shrinks), so writes have room again and the alarm does not come straight back.
   */
  roomAgain(inUseBytes: number): boolean {
    if (!this.enabled) return true;
    const below = AUTO_DISARM_FRACTION * this.quotaBytes;
    return inUseBytes < below && this.estimatedBytes < below;
  }

  available(costBytes: number): boolean {
    if (!this.enabled) return true;
    return this.estimatedBytes + costBytes < this.quotaBytes;
  }

  charge(costBytes: number): void {
    this.charged += costBytes;
  }

  /** Everything charged so far: what a commit starting now will hold. */
  mark(): number {
    return this.charged;
  }

  /** The file was rewritten (defragment): it is now `sizeBytes`, holding what it held before. */
  resized(sizeBytes: number): void {
    this.sizeBytes = sizeBytes;
  }

  /** A commit that holds everything charged up to `mark` landed; the backend is now `sizeBytes`. */
  settled(mark: number, sizeBytes: number): void {
    this.sizeBytes = sizeBytes;
    if (mark > this.settledCharged) this.settledCharged = mark;
  }
}
