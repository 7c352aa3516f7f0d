// One lease: its granted TTL, the remaining TTL the leader last checkpointed, its expiry (known only on
// the leader; followers hold every lease forever, as etcd does) and the keys attached to it.

/** An expiry that never comes: a follower's leases, and a leader's before promote. */
export const FOREVER_MS = Number.POSITIVE_INFINITY;

/** The keys of a lease are held as latin1 strings: one char per byte, so string order is byte order. */
export function keyOf(key: Uint8Array): string {
  return Buffer.from(key.buffer, key.byteOffset, key.byteLength).toString('latin1');
}

/** The bytes of a key held by keyOf. */
export function keyBytes(k: string): Buffer {
  return Buffer.from(k, 'latin1');
}

/**
 * A lease as the lessor holds it.
 *
 *   const l = new Lease(7n, 10);
 *   l.refresh(now, 0);          // expires in 10 s
 *   l.remainingMs(now);         // 10000
 */
export class Lease {
  /** Seconds, as granted (raised to the minimum TTL). */
  readonly ttlSec: number;
  /** Seconds the leader last checkpointed through Raft; 0 = none (the full TTL counts). */
  remainingTtlSec = 0;
  /** When the lease expires (ms since the epoch); FOREVER_MS while this member is not the leader. */
  expiryMs = FOREVER_MS;
  /** Attached keys (see keyOf). */
  readonly keys = new Set<string>();

  constructor(
    readonly id: bigint,
    ttlSec: number,
  ) {
    this.ttlSec = ttlSec;
  }

  /** What a refresh counts from: the checkpointed remainder if there is one, else the TTL (etcd's RemainingTTL()). */
  get effectiveTtlSec(): number {
    return this.remainingTtlSec > 0 ? this.remainingTtlSec : this.ttlSec;
  }

  /** Sets the expiry to now + extend + the effective TTL. */
  refresh(nowMs: number, extendMs: number): void {
    this.expiryMs = nowMs + extendMs + this.effectiveTtlSec * 1000;
  }

  /** Sets the expiry to now + the full TTL (a keep-alive). */
  renew(nowMs: number): void {
    this.expiryMs = nowMs + this.ttlSec * 1000;
  }

  remainingMs(nowMs: number): number {
    return this.expiryMs - nowMs;
  }

  expired(nowMs: number): boolean {
    return this.expiryMs - nowMs <= 0;
  }

  /** The attached keys in byte order (the order a revoke deletes them in, the same on every member). */
  sortedKeys(): string[] {
    return [...this.keys].sort();
  }
}
