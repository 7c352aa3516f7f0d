// Leases: the lessor (grant, revoke, keep-alive, expiry on the leader, checkpoints) and how leases are
// kept in the backend. The member (src/server) drives it; Lock and Election build on grant, attach and
// the 'lease' apply events.
export { Lease, FOREVER_MS, keyOf, keyBytes } from './lease.js';
export { LeaseQueue } from './lease_queue.js';
export { LEASE_BUCKET, type LeaseBackend, type LeaseRecord, encodeLeaseRecord, decodeLeaseRecord, leaseKey } from './persist.js';
export {
  Lessor,
  LEASE_TTL_MAX_SEC,
  LEASE_REVOKE_RATE,
  LEASE_CHECKPOINT_RATE,
  LEASE_CHECKPOINT_BATCH_MAX,
  LEASE_CHECKPOINT_INTERVAL_MS_DEFAULT,
  LEASE_EXPIRED_RETRY_MS_DEFAULT,
  LEASE_TTL_BUCKETS_SEC,
  RENEW_NOT_FOUND,
  RENEW_NOT_PRIMARY,
  type LeaseCheckpointEntry,
  type LeaseTtl,
  type LeasedKeySource,
  type LessorOptions,
  type LessorStats,
} from './lessor.js';
