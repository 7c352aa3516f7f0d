// How a lease is kept in the backend's `lease` bucket: key = the ID as 8 bytes big-endian (etcd's
// int64ToBytes), value = ID, TTL and remaining TTL as three big-endian int64s (tetcd's own format; etcd
// stores a leasepb.Lease there). Written in the apply transaction, so the lease table never disagrees
// with the keys after a crash.

/** The backend bucket of leases. */
export const LEASE_BUCKET = 'lease';

const RECORD_BYTES = 24;

/** The part of the backend the lessor writes to (the MVCC store's side tables). */
export interface LeaseBackend {
  metaPut(bucket: string, key: Uint8Array, value: Uint8Array): void;
  metaDelete(bucket: string, key: Uint8Array): void;
  metaScan(bucket: string): Iterable<[Uint8Array, Uint8Array]>;
}

/** A stored lease. */
export interface LeaseRecord {
  id: bigint;
  ttlSec: number;
  remainingTtlSec: number;
}

export function leaseKey(id: bigint): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64BE(id);
  return b;
}

export function encodeLeaseRecord(r: LeaseRecord): Buffer {
  const b = Buffer.allocUnsafe(RECORD_BYTES);
  b.writeBigInt64BE(r.id, 0);
  b.writeBigInt64BE(BigInt(r.ttlSec), 8);
  b.writeBigInt64BE(BigInt(r.remainingTtlSec), 16);
  return b;
}

/** Throws on a record of the wrong size: the bucket is damaged, and guessing would lose leases. */
export function decodeLeaseRecord(v: Uint8Array): LeaseRecord {
  if (v.length !== RECORD_BYTES) throw new Error(`lease bucket: a record of ${v.length} bytes (want ${RECORD_BYTES})`);
  const b = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return { id: b.readBigInt64BE(0), ttlSec: Number(b.readBigInt64BE(8)), remainingTtlSec: Number(b.readBigInt64BE(16)) };
}
