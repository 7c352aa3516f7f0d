// The backend quota (--quota-backend-bytes): a write is refused with ErrNoSpace when the backend's
// size plus the request's cost would reach the quota, and the member then raises the NOSPACE alarm.
// Costs are etcd's (etcdserver/quota.go), so the same workload trips at the same point.
import type { PutRequestInit, TxnRequestInit } from '../proto/rpc.js';

/** Bytes a put is assumed to add beyond its key and value (etcd: kvOverhead). */
const KV_OVERHEAD_BYTES = 256;
/** Bytes a lease grant is assumed to add (etcd: leaseOverhead). */
export const LEASE_OVERHEAD_BYTES = 64;

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
 *   if (!quota.available(costPut(req))) { raiseNoSpace(); throw Errors.NoSpace(); }
 */
export class BackendQuota {
  constructor(private readonly quotaBytes: number, private readonly backendSizeBytes: () => number) {}

  get enabled(): boolean {
    return Number.isFinite(this.quotaBytes) && this.quotaBytes > 0;
  }

  available(costBytes: number): boolean {
    if (!this.enabled) return true;
    return this.backendSizeBytes() + costBytes < this.quotaBytes;
  }
}
