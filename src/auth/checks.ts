// The permission checks of KV and lease requests, as etcd 3.4's authApplierV3 makes them (apply_auth.go):
// KV writes need WRITE on every key they touch (READ too for prev_kv), a txn READ on every key of its
// compares and the right access for each operation; a lease's keys must all be writable to revoke the lease
// or attach another key to it. Throw etcd's auth errors; the applier and the read path share them.
import type { InternalRequest } from '../proto/internal.js';
import type { RequestOp, TxnRequest } from '../proto/rpc.js';
import type { Lessor } from '../lease/index.js';
import { keyBytes } from '../lease/lease.js';
import type { AuthInfo, AuthStore } from './store.js';

function checkOps(as: AuthStore, ai: AuthInfo | undefined, ops: readonly RequestOp[]): void {
  for (const op of ops) {
    if (op.request_range) as.isRangePermitted(ai, op.request_range.key, op.request_range.range_end);
    else if (op.request_put) as.isPutPermitted(ai, op.request_put.key);
    else if (op.request_delete_range) {
      const d = op.request_delete_range;
      if (d.prev_kv) as.isRangePermitted(ai, d.key, d.range_end);
      as.isDeleteRangePermitted(ai, d.key, d.range_end);
    } else if (op.request_txn) {
      // etcd 3.4.23 does not look into nested txns (checkTxnReqsPermission has no case for them), so any
      // caller, even one without credentials, could read and write every key through one: a hole, not a
      // behaviour to copy. tetcd checks them as a top-level txn.
      checkNested(as, ai, op.request_txn);
    }
  }
}

function checkNested(as: AuthStore, ai: AuthInfo | undefined, t: TxnRequest): void {
  for (const c of t.compare) as.isRangePermitted(ai, c.key, c.range_end);
  checkOps(as, ai, t.success);
  checkOps(as, ai, t.failure);
}

/** etcd's checkTxnAuth: the compares, then success and failure operations. Throws etcd's auth errors. */
export function checkTxnAuth(as: AuthStore, ai: AuthInfo | undefined, t: TxnRequest): void {
  if (!as.enabled) return;
  for (const c of t.compare) as.isRangePermitted(ai, c.key, c.range_end);
  checkOps(as, ai, t.success);
  checkOps(as, ai, t.failure);
}

/** etcd's checkLeasePuts: the user may write every key attached to the lease. */
export function checkLeasePuts(as: AuthStore, ai: AuthInfo | undefined, leases: Lessor, id: bigint): void {
  if (!as.enabled || id === 0n) return;
  const l = leases.lookup(id);
  if (l === undefined) return;
  for (const k of l.keys) as.isPutPermitted(ai, keyBytes(k));
}

/** Checks a KV or lease write before it is applied; throws etcd's auth errors. */
export function checkWrite(as: AuthStore, leases: Lessor, req: InternalRequest, ai: AuthInfo | undefined): void {
  if (!as.enabled) return;
  if (req.put) {
    as.isPutPermitted(ai, req.put.key);
    checkLeasePuts(as, ai, leases, req.put.lease);
    if (req.put.prev_kv) as.isRangePermitted(ai, req.put.key, undefined);
  } else if (req.delete_range) {
    const d = req.delete_range;
    as.isDeleteRangePermitted(ai, d.key, d.range_end);
    if (d.prev_kv) as.isRangePermitted(ai, d.key, d.range_end);
  } else if (req.txn) {
    checkTxnAuth(as, ai, req.txn);
  } else if (req.lease_revoke) {
    checkLeasePuts(as, ai, leases, req.lease_revoke.ID);
  }
}
