// The lessor: etcd's lease/lessor.go on one thread. Two kinds of caller:
//   - the applier (every member, in log order): grant, revoke, checkpoint, attach/detach through the MVCC
//     hooks, recover. These change the state every member holds, and write it to the backend.
//   - the leader's lease driver (src/server/leases.ts): promote/demote, renew, time-to-live, and finding
//     the leases that expired or are due a checkpoint, which it proposes through Raft. Expiry is decided
//     here, on the leader only; its effect (a revoke) reaches every member through the log.
import { Errors } from '../errors.js';
import { FOREVER_MS, Lease, keyBytes, keyOf } from './lease.js';
import { LeaseQueue } from './lease_queue.js';
import { LEASE_BUCKET, type LeaseBackend, decodeLeaseRecord, encodeLeaseRecord, leaseKey } from './persist.js';

/** etcd's MaxLeaseTTL (seconds). */
export const LEASE_TTL_MAX_SEC = 9_000_000_000;
/** etcd's leaseRevokeRate: expired leases revoked per second, at most. */
export const LEASE_REVOKE_RATE = 1000;
/** etcd's leaseCheckpointRate: checkpoint batches per second, at most. */
export const LEASE_CHECKPOINT_RATE = 1000;
/** etcd's maxLeaseCheckpointBatchSize. */
export const LEASE_CHECKPOINT_BATCH_MAX = 1000;
/** etcd's defaultLeaseCheckpointInterval. */
export const LEASE_CHECKPOINT_INTERVAL_MS_DEFAULT = 5 * 60_000;
/** etcd's defaultExpiredleaseRetryInterval: an expired lease is proposed for revoke again after this. */
export const LEASE_EXPIRED_RETRY_MS_DEFAULT = 3000;

/** renew() outcomes that are not a TTL. */
export const RENEW_NOT_FOUND = -1;
/** This member is not (or no longer) the leader: the caller forwards to the leader. */
export const RENEW_NOT_PRIMARY = -2;

/** One checkpoint: the remaining TTL the leader saw (0 clears it). */
export interface LeaseCheckpointEntry {
  ID: bigint;
  remaining_TTL: number;
}

/** What a time-to-live lookup returns (etcd's LeaseTimeToLiveResponse without the header). */
export interface LeaseTtl {
  /** Remaining whole seconds (truncated, as etcd's int64(Remaining().Seconds())). */
  ttlSec: number;
  grantedTtlSec: number;
  keys: Buffer[];
}

/** The MVCC store's view of attached keys, for recover(). */
export interface LeasedKeySource {
  forEachLeasedKey(visit: (key: Uint8Array, lease: bigint) => void): void;
}

/** Counters for etcd_debugging_lease_* (metrics). */
export interface LessorStats {
  granted: number;
  revoked: number;
  renewed: number;
  /** Expired leases the leader revoked (etcd_debugging_server_lease_expired_total; counted by the member). */
  expired: number;
  /** Granted TTLs in etcd's histogram buckets (1, 2, 4, … 2^23 s, then +Inf). */
  ttlBuckets: number[];
  ttlSum: number;
}

/** TTL histogram bounds of etcd_debugging_lease_ttl_total: ExponentialBuckets(1, 2, 24) (1 s to 3 months). */
export const LEASE_TTL_BUCKETS_SEC: readonly number[] = Array.from({ length: 24 }, (_, i) => 2 ** i);

export interface LessorOptions {
  /** etcd's minLeaseTTL: ceil(floor(3 × election ticks / 2) × heartbeat) in seconds. */
  minTtlSec: number;
  /** The clock (ms); the scheduler's now() so tests control it. */
  now(): number;
  /** A lease's remaining TTL is checkpointed through Raft this often; 0 = checkpointing off. */
  checkpointIntervalMs: number;
  expiredRetryMs?: number;
}

/** A renew waiting for an expired lease's revoke (or this member's demotion). */
type RenewWaiter = (result: number) => void;

/**
 * The lessor.
 *
 *   const le = new Lessor({ minTtlSec: 2, now: Date.now, checkpointIntervalMs: 300_000 });
 *   le.recover(store, store);                 // after open: leases from the backend, keys from the index
 *   le.grant(7n, 10, store);                  // applying a LeaseGrant
 *   le.promote(electionMs);                   // this member became leader
 *   le.renew(7n);                             // a keep-alive on the leader → 10
 *   le.findExpired(500);                      // the leader proposes a LeaseRevoke for each
 */
export class Lessor {
  private readonly leases = new Map<bigint, Lease>();
  private readonly expiries = new LeaseQueue();
  private readonly checkpoints = new LeaseQueue();
  private readonly expiredWaiters = new Map<bigint, RenewWaiter[]>();
  private primary = false;
  private readonly expiredRetryMs: number;
  /** Proposes checkpoints through Raft (set by the member when checkpointing is on). */
  private checkpointer: ((cps: LeaseCheckpointEntry[]) => void) | undefined;
  readonly stats: LessorStats = {
    granted: 0,
    revoked: 0,
    renewed: 0,
    expired: 0,
    ttlBuckets: new Array<number>(LEASE_TTL_BUCKETS_SEC.length + 1).fill(0),
    ttlSum: 0,
  };

  constructor(private readonly opts: LessorOptions) {
    if (!(opts.minTtlSec >= 1)) throw new Error(`lessor: minimum TTL ${opts.minTtlSec} s is below 1 s`);
    this.expiredRetryMs = opts.expiredRetryMs ?? LEASE_EXPIRED_RETRY_MS_DEFAULT;
  }

  get minTtlSec(): number {
    return this.opts.minTtlSec;
  }

  /** True while this member is the leader and its leases have expiries. */
  get isPrimary(): boolean {
    return this.primary;
  }

  get size(): number {
    return this.leases.size;
  }

  /** Where checkpoints go (the member proposes them); undefined turns checkpointing off. */
  setCheckpointer(cp: ((cps: LeaseCheckpointEntry[]) => void) | undefined): void {
    this.checkpointer = this.opts.checkpointIntervalMs > 0 ? cp : undefined;
  }

  // ---- applied on every member, in log order ----

  /**
   * Applies a LeaseGrant. Throws ErrLeaseNotFound for ID 0 (etcd's lessor does), ErrLeaseTTLTooLarge,
   * ErrLeaseExist. A TTL below the minimum (0 and negative ones included) is raised to it.
   */
  grant(id: bigint, ttlSec: number, be: LeaseBackend): Lease {
    if (id === 0n) throw Errors.LeaseNotFound();
    if (ttlSec > LEASE_TTL_MAX_SEC) throw Errors.LeaseTTLTooLarge();
    if (this.leases.has(id)) throw Errors.LeaseExist();
    const l = new Lease(id, Math.max(ttlSec, this.opts.minTtlSec));
    this.leases.set(id, l);
    persist(l, be);
    const st = this.stats;
    st.granted++;
    st.ttlSum += l.ttlSec;
    let b = 0;
    while (b < LEASE_TTL_BUCKETS_SEC.length && l.ttlSec > LEASE_TTL_BUCKETS_SEC[b]) b++;
    st.ttlBuckets[b]++;
    if (this.primary) {
      l.refresh(this.opts.now(), 0);
      this.expiries.upsert(id, l.expiryMs);
      this.scheduleCheckpoint(l);
    }
    return l;
  }

  /** The lease, or undefined. */
  lookup(id: bigint): Lease | undefined {
    return this.leases.get(id);
  }

  /**
   * Applies a LeaseRevoke: `deleteKeys` gets the attached keys in byte order, as latin1 strings (keyOf; the applier deletes them in
   * ONE write transaction, as etcd does), then the lease is gone from memory and the backend. Throws
   * ErrLeaseNotFound.
   */
  revoke(id: bigint, be: LeaseBackend, deleteKeys: (keys: string[]) => void): void {
    const l = this.leases.get(id);
    if (l === undefined) throw Errors.LeaseNotFound();
    deleteKeys(l.sortedKeys());
    this.leases.delete(id);
    be.metaDelete(LEASE_BUCKET, leaseKey(id));
    this.expiries.remove(id);
    this.checkpoints.remove(id);
    this.stats.revoked++;
    this.wakeExpiredWaiters(id, RENEW_NOT_FOUND);
  }

  /** Applies one checkpoint: the remaining TTL is kept (and persisted) for the next promote. */
  checkpoint(id: bigint, remainingTtlSec: number, be: LeaseBackend): void {
    const l = this.leases.get(id);
    if (l === undefined) return;
    l.remainingTtlSec = remainingTtlSec;
    // etcd 3.4 keeps it in memory only unless --experimental-enable-lease-checkpoint-persist; tetcd always
    // persists it (what 3.6 does), so a restart does not extend a long lease either.
    persist(l, be);
    if (this.primary) this.scheduleCheckpoint(l);
  }

  /** MVCC hook: a key now has this lease (the applier checked that it exists). */
  attach(id: bigint, key: Uint8Array): void {
    this.leases.get(id)?.keys.add(keyOf(key));
  }

  /** MVCC hook: a key no longer has this lease (overwritten, deleted). */
  detach(id: bigint, key: Uint8Array): void {
    this.leases.get(id)?.keys.delete(keyOf(key));
  }

  exists(id: bigint): boolean {
    return this.leases.has(id);
  }

  /**
   * Rebuilds everything from the backend (start-up, or a snapshot installed): leases from the lease bucket
   * (a TTL below the minimum is raised to it, as etcd's initAndRecover does), attached keys from the key
   * index. Every lease has no expiry until promote.
   */
  recover(be: LeaseBackend, keys: LeasedKeySource): void {
    const wasPrimary = this.primary;
    this.demote();
    this.leases.clear();
    for (const [, v] of be.metaScan(LEASE_BUCKET)) {
      const r = decodeLeaseRecord(v);
      const l = new Lease(r.id, Math.max(r.ttlSec, this.opts.minTtlSec));
      l.remainingTtlSec = r.remainingTtlSec;
      this.leases.set(r.id, l);
    }
    keys.forEachLeasedKey((key, id) => this.attach(id, key));
    if (wasPrimary) this.promote(0);
  }

  // ---- the leader's side ----

  /**
   * This member became the leader and applied every entry of the previous terms: every lease expires
   * `extendMs` (the election timeout) after its effective TTL from now. With more leases than the revoke
   * rate, expiries that would pile up are spread out so they never take the whole revoke budget (etcd).
   */
  promote(extendMs: number): void {
    this.primary = true;
    const now = this.opts.now();
    for (const l of this.leases.values()) {
      l.refresh(now, extendMs);
      this.expiries.upsert(l.id, l.expiryMs);
      this.scheduleCheckpoint(l);
    }
    if (this.leases.size < LEASE_REVOKE_RATE) return;
    const byExpiry = [...this.leases.values()].sort((a, b) => a.expiryMs - b.expiryMs);
    let baseWindowMs = byExpiry[0].remainingMs(now);
    let nextWindowMs = baseWindowMs + 1000;
    let expires = 0;
    const targetPerSec = (3 * LEASE_REVOKE_RATE) / 4;
    for (const l of byExpiry) {
      const remaining = l.remainingMs(now);
      if (remaining > nextWindowMs) {
        baseWindowMs = remaining;
        nextWindowMs = baseWindowMs + 1000;
        expires = 1;
        continue;
      }
      expires++;
      if (expires <= targetPerSec) continue;
      const delayMs = 1000 * (expires / targetPerSec) - (remaining - baseWindowMs);
      nextWindowMs = baseWindowMs + delayMs;
      l.refresh(now, delayMs + extendMs);
      this.expiries.upsert(l.id, l.expiryMs);
      this.scheduleCheckpoint(l);
    }
  }

  /** This member is no longer the leader: no lease expires here, renews wait no more. */
  demote(): void {
    this.primary = false;
    for (const l of this.leases.values()) l.expiryMs = FOREVER_MS;
    this.expiries.clear();
    this.checkpoints.clear();
    for (const id of [...this.expiredWaiters.keys()]) this.wakeExpiredWaiters(id, RENEW_NOT_PRIMARY);
  }

  /**
   * A keep-alive on the leader: the lease's TTL in seconds, RENEW_NOT_FOUND, or RENEW_NOT_PRIMARY (forward
   * it). A lease that already expired is being revoked: the answer waits for the revoke (→ not found) or
   * for this member to lose leadership (→ not primary), as etcd's does.
   */
  renew(id: bigint): number | Promise<number> {
    if (!this.primary) return RENEW_NOT_PRIMARY;
    const l = this.leases.get(id);
    if (l === undefined) return RENEW_NOT_FOUND;
    const now = this.opts.now();
    if (l.expired(now)) {
      return new Promise<number>((resolve) => {
        const ws = this.expiredWaiters.get(id);
        if (ws === undefined) this.expiredWaiters.set(id, [resolve]);
        else ws.push(resolve);
      });
    }
    // A checkpointed remainder would make the next leader count from it: clear it through Raft. Only
    // leases with one set cost an entry, so a lease writes at most two per checkpoint interval (etcd).
    if (l.remainingTtlSec > 0 && this.checkpointer !== undefined) this.checkpointer([{ ID: id, remaining_TTL: 0 }]);
    l.renew(now);
    this.expiries.upsert(id, l.expiryMs);
    this.stats.renewed++;
    return l.ttlSec;
  }

  /** The leader's view of a lease's remaining TTL, or undefined when it does not exist. */
  timeToLive(id: bigint, withKeys: boolean): LeaseTtl | undefined {
    const l = this.leases.get(id);
    if (l === undefined) return undefined;
    const remainingMs = l.remainingMs(this.opts.now());
    // etcd reports a lease with no expiry (a follower's) as math.MaxInt64 ns in seconds.
    const ttlSec = remainingMs === FOREVER_MS ? 9_223_372_036 : Math.trunc(remainingMs / 1000);
    return { ttlSec, grantedTtlSec: l.ttlSec, keys: withKeys ? l.sortedKeys().map(keyBytes) : [] };
  }

  /** Every lease ID, soonest expiry first (etcd's Leases(); ties by ID so the order is stable). */
  leaseIds(): bigint[] {
    const ls = [...this.leases.values()];
    ls.sort((a, b) => (a.expiryMs !== b.expiryMs ? a.expiryMs - b.expiryMs : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return ls.map((l) => l.id);
  }

  /**
   * Up to `limit` leases past their expiry (the leader proposes a revoke for each). A returned lease is
   * looked at again only after the retry interval, so a revoke in flight is not proposed twice.
   */
  findExpired(limit: number): bigint[] {
    const out: bigint[] = [];
    if (!this.primary) return out;
    const now = this.opts.now();
    for (let top = this.expiries.peek(); top !== undefined && out.length < limit; top = this.expiries.peek()) {
      const l = this.leases.get(top.id);
      if (l === undefined) {
        this.expiries.pop();
        continue;
      }
      if (top.timeMs > now) break;
      this.expiries.upsert(top.id, now + this.expiredRetryMs);
      if (l.expired(now)) out.push(l.id);
    }
    return out;
  }

  /** Checkpoints due now, up to `limit` (etcd's findDueScheduledCheckpoints). */
  findDueCheckpoints(limit: number): LeaseCheckpointEntry[] {
    const out: LeaseCheckpointEntry[] = [];
    if (!this.primary || this.checkpointer === undefined) return out;
    const now = this.opts.now();
    for (let top = this.checkpoints.peek(); top !== undefined && out.length < limit; top = this.checkpoints.peek()) {
      if (top.timeMs > now) break;
      this.checkpoints.pop();
      const l = this.leases.get(top.id);
      if (l === undefined || l.expired(now)) continue;
      const remainingSec = Math.ceil(l.remainingMs(now) / 1000);
      if (remainingSec >= l.ttlSec) continue;
      out.push({ ID: l.id, remaining_TTL: remainingSec });
    }
    return out;
  }

  /** Hands due checkpoints to the checkpointer, in batches, at most LEASE_CHECKPOINT_RATE/2 batches a call. */
  checkpointDue(): number {
    const cp = this.checkpointer;
    if (cp === undefined) return 0;
    let n = 0;
    for (let i = 0; i < LEASE_CHECKPOINT_RATE / 2; i++) {
      const cps = this.findDueCheckpoints(LEASE_CHECKPOINT_BATCH_MAX);
      if (cps.length > 0) cp(cps);
      n += cps.length;
      if (cps.length < LEASE_CHECKPOINT_BATCH_MAX) break;
    }
    return n;
  }

  private scheduleCheckpoint(l: Lease): void {
    if (this.checkpointer === undefined) return;
    const intervalMs = this.opts.checkpointIntervalMs;
    if (l.effectiveTtlSec * 1000 > intervalMs) this.checkpoints.upsert(l.id, this.opts.now() + intervalMs);
  }

  private wakeExpiredWaiters(id: bigint, result: number): void {
    const ws = this.expiredWaiters.get(id);
    if (ws === undefined) return;
    this.expiredWaiters.delete(id);
    for (const w of ws) w(result);
  }
}

function persist(l: Lease, be: LeaseBackend): void {
  be.metaPut(LEASE_BUCKET, leaseKey(l.id), encodeLeaseRecord({ id: l.id, ttlSec: l.ttlSec, remainingTtlSec: l.remainingTtlSec }));
}
