// The member's side of leases that is not applying: the leader's expiry and checkpoint loop (expired
// leases and checkpoints become proposals, so every member applies the same revoke at the same revision),
// promote/demote on leadership changes, and keep-alives and time-to-live lookups, which only the leader
// can answer: a follower forwards them over the peer streams (lease_forward.ts) and waits for the answer.
import { Errors } from '../errors.js';
import type { Logger } from '../log.js';
import {
  LEASE_REVOKE_RATE,
  RENEW_NOT_FOUND,
  RENEW_NOT_PRIMARY,
  type LeaseCheckpointEntry,
  type LeaseTtl,
  type Lessor,
} from '../lease/index.js';
import type { InternalRequestInit } from '../proto/internal.js';
import type { ApplyResult } from './apply.js';
import type { Scheduler } from './ports.js';
import {
  LeaseAnswerStatus,
  LeaseFrameKind,
  decodeLeaseFrame,
  encodeLeaseAnswer,
  encodeLeaseRequest,
  type LeaseAnswerFrame,
  type LeaseRequestFrame,
} from './lease_forward.js';

/** etcd's lessor loop period: expired leases and due checkpoints are looked for this often. */
export const LEASE_LOOP_INTERVAL_MS = 500;
/** Forwarded requests one member may have waiting for the leader's answer. */
export const LEASE_FORWARDS_PENDING_MAX = 65_536;
/** Revokes of expired leases in flight at once; past it the loop waits (a stalled log must not pile them up). */
export const LEASE_REVOKES_INFLIGHT_MAX = LEASE_REVOKE_RATE;
/**
 * etcd's applyTimeout: how long the leader waits for its applied index to reach its commit index before it
 * renews a lease or says its TTL (then ErrTimeoutWaitAppliedIndex).
 */
export const LEASE_APPLY_WAIT_MS = 1000;
/** Lease requests waiting for the applied index at once; more get etcd's `too many requests`. */
export const LEASE_APPLY_WAITERS_MAX = 65_536;
/** How long one forwarded request waits for an answer before it is sent again. */
const FORWARD_ATTEMPT_MS = 1000;
/** Pause before asking again when there is no leader, or it said it is not (yet) the leader. */
const FORWARD_RETRY_MS = 50;

export interface MemberLeasesDeps {
  lessor: Lessor;
  sched: Scheduler;
  memberId: bigint;
  /** The leader this member knows (0n = none). */
  leaderId(): bigint;
  propose(init: Omit<InternalRequestInit, 'ID'>): Promise<ApplyResult>;
  sendLease(to: bigint, payload: Uint8Array): boolean;
  /** etcd's election timeout: what promote adds to every lease. */
  electionMs: number;
  /** How long a forwarded request keeps trying (etcd's ReqTimeout). */
  requestTimeoutMs: number;
  /** Raft's commit index as this member knows it, and what it has applied (the lease waits on both). */
  committedIndex(): number;
  appliedIndex(): number;
  logger: Logger;
}

/** Lease requests waiting for the applied index to reach one commit index, with one timer between them. */
interface ApplyWaitGroup {
  readonly index: number;
  readonly waiters: Array<{ resolve(): void; reject(err: unknown): void }>;
  timer: unknown;
}

interface PendingForward {
  resolve(a: LeaseAnswerFrame | undefined): void;
  timer: unknown;
}

/**
 * Leases as the member runs them.
 *
 *   const ml = new MemberLeases(deps); ml.start();
 *   await ml.renew(id);              // a keep-alive, on any member
 *   ml.receive(from, payload);       // the transport's lease frames
 *   ml.onApplied(appliedIndex);      // after each applied batch
 */
export class MemberLeases {
  private timer: unknown = undefined;
  private revokesInFlight = 0;
  private readonly pending = new Map<number, PendingForward>();
  private nextRequestId = 1;
  private clears: LeaseCheckpointEntry[] = [];
  private readonly clearing = new Set<bigint>();
  private stopped = false;
  /** Waits for the applied index, by the commit index they wait for (ascending: it only grows). */
  private readonly applyWaits: ApplyWaitGroup[] = [];
  private applyWaiters = 0;

  constructor(private readonly d: MemberLeasesDeps) {
    d.lessor.setCheckpointer((cps) => this.checkpoint(cps));
  }

  /** Starts the leader's loop (it does nothing while this member is not the leader). */
  start(): void {
    this.timer = this.d.sched.interval(() => this.loop(), LEASE_LOOP_INTERVAL_MS);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) this.d.sched.cancel(this.timer);
    for (const p of [...this.pending.values()]) {
      this.d.sched.cancel(p.timer);
      p.resolve(undefined);
    }
    this.pending.clear();
    for (const g of this.applyWaits.splice(0)) {
      this.d.sched.cancel(g.timer);
      for (const w of g.waiters) w.reject(Errors.Stopped());
    }
    this.applyWaiters = 0;
  }

  /** The applied index moved (after each applied batch): lease requests waiting for it go on. */
  onApplied(applied: number): void {
    const gs = this.applyWaits;
    let n = 0;
    while (n < gs.length && gs[n].index <= applied) n++;
    if (n === 0) return;
    for (const g of gs.splice(0, n)) {
      this.d.sched.cancel(g.timer);
      this.applyWaiters -= g.waiters.length;
      for (const w of g.waiters) w.resolve();
    }
  }

  /** True when this leader has committed entries it has not applied yet (one may revoke the lease asked about). */
  private behindCommit(): boolean {
    return this.d.leaderId() === this.d.memberId && this.d.appliedIndex() < this.d.committedIndex();
  }

  /**
   * etcd's waitAppliedIndex: resolves once everything committed now is applied; rejects with
   * ErrTimeoutWaitAppliedIndex after LEASE_APPLY_WAIT_MS.
   */
  private waitApplied(): Promise<void> {
    if (this.stopped) return Promise.reject(Errors.Stopped());
    if (this.applyWaiters >= LEASE_APPLY_WAITERS_MAX) return Promise.reject(Errors.TooManyRequests());
    const index = this.d.committedIndex();
    const gs = this.applyWaits;
    let g = gs.length > 0 && gs[gs.length - 1].index === index ? gs[gs.length - 1] : undefined;
    if (g === undefined) {
      const group: ApplyWaitGroup = { index, waiters: [], timer: undefined };
      group.timer = this.d.sched.timeout(() => this.expireApplyWait(group), LEASE_APPLY_WAIT_MS);
      gs.push(group);
      g = group;
    }
    this.applyWaiters++;
    const waiters = g.waiters;
    return new Promise<void>((resolve, reject) => waiters.push({ resolve, reject }));
  }

  private expireApplyWait(g: ApplyWaitGroup): void {
    const i = this.applyWaits.indexOf(g);
    if (i < 0) return;
    this.applyWaits.splice(i, 1);
    this.applyWaiters -= g.waiters.length;
    for (const w of g.waiters) w.reject(Errors.TimeoutWaitAppliedIndex());
  }

  /** Raft's role changed: a member that is no longer the leader holds every lease forever. */
  onLeadershipChange(isLeader: boolean): void {
    if (!isLeader) this.d.lessor.demote();
  }

  /**
   * An empty entry applied: a leader's first of its term. Once the leader has applied it, it has applied
   * everything of the terms before, and its leases start counting (etcd's Promote(electionTimeout)).
   */
  onEmptyEntry(isLeader: boolean): void {
    if (isLeader) this.d.lessor.promote(this.d.electionMs);
  }

  /** One round of the leader's loop: propose revokes of expired leases (rate-limited) and due checkpoints. */
  loop(): void {
    const le = this.d.lessor;
    if (!le.isPrimary) return;
    const room = Math.min(LEASE_REVOKE_RATE / 2, LEASE_REVOKES_INFLIGHT_MAX - this.revokesInFlight);
    if (room > 0) {
      for (const id of le.findExpired(room)) this.revokeExpired(id);
    }
    le.checkpointDue();
  }

  private revokeExpired(id: bigint): void {
    this.revokesInFlight++;
    this.d.propose({ lease_revoke: { ID: id } }).then(
      () => {
        this.revokesInFlight--;
        this.d.lessor.stats.expired++;
      },
      (err: unknown) => {
        this.revokesInFlight--;
        // Not found: revoked by a client meanwhile. Anything else is retried after the retry interval.
        this.d.logger.debug('revoking an expired lease failed', { lease: id.toString(16), error: err });
      },
    );
  }

  /**
   * Checkpoints go through Raft. The loop's come in batches; a renew's "clear the remainder" ones are
   * gathered for a turn so a burst of keep-alives costs one entry.
   */
  private checkpoint(cps: LeaseCheckpointEntry[]): void {
    if (cps.length === 1 && cps[0].remaining_TTL === 0) {
      const id = cps[0].ID;
      if (this.clearing.has(id)) return;
      this.clearing.add(id);
      this.clears.push(cps[0]);
      if (this.clears.length === 1) this.d.sched.immediate(() => this.flushClears());
      return;
    }
    this.proposeCheckpoints(cps, undefined);
  }

  private flushClears(): void {
    const cps = this.clears;
    this.clears = [];
    if (cps.length > 0) this.proposeCheckpoints(cps, cps);
  }

  private proposeCheckpoints(cps: LeaseCheckpointEntry[], clears: LeaseCheckpointEntry[] | undefined): void {
    const done = (): void => {
      if (clears !== undefined) for (const c of clears) this.clearing.delete(c.ID);
    };
    this.d.propose({ lease_checkpoint: { checkpoints: cps } }).then(done, (err: unknown) => {
      done();
      this.d.logger.debug('lease checkpoint failed', { leases: cps.length, error: err });
    });
  }

  // ---- keep-alive and time-to-live ----

  /**
   * Renews a lease on the leader: its TTL, or RENEW_NOT_FOUND. A follower forwards to the leader; without
   * a leader it waits up to the request timeout (then etcd's `request timed out`). A leader with committed
   * entries not yet applied applies them first (etcd's waitAppliedIndex): one of them may revoke the lease.
   */
  renew(id: bigint): number | Promise<number> {
    if (this.behindCommit()) return this.waitApplied().then(() => this.renewSlow(id, this.d.lessor.renew(id)));
    const r = this.d.lessor.renew(id);
    if (typeof r === 'number' && r !== RENEW_NOT_PRIMARY) return r;
    return this.renewSlow(id, r);
  }

  private async renewSlow(id: bigint, first: number | Promise<number>): Promise<number> {
    const r = await first;
    if (r !== RENEW_NOT_PRIMARY) return r;
    const a = await this.forward(LeaseFrameKind.Renew, id, false);
    return a.status === LeaseAnswerStatus.NotFound ? RENEW_NOT_FOUND : a.ttlSec;
  }

  /** The leader's remaining TTL of a lease (undefined: not found); a follower asks the leader. */
  async timeToLive(id: bigint, withKeys: boolean): Promise<LeaseTtl | undefined> {
    if (this.behindCommit()) await this.waitApplied();
    if (this.d.lessor.isPrimary) return this.d.lessor.timeToLive(id, withKeys);
    const a = await this.forward(LeaseFrameKind.TimeToLive, id, withKeys);
    if (a.status === LeaseAnswerStatus.NotFound) return undefined;
    return { ttlSec: a.ttlSec, grantedTtlSec: a.grantedTtlSec, keys: a.keys };
  }

  /** Asks whoever leads until it answers as the leader, or the request timeout passes. */
  private async forward(kind: LeaseRequestFrame['kind'], leaseId: bigint, withKeys: boolean): Promise<LeaseAnswerFrame> {
    const d = this.d;
    const deadline = d.sched.now() + d.requestTimeoutMs;
    for (;;) {
      if (this.stopped) throw Errors.Stopped();
      const leader = d.leaderId();
      let a: LeaseAnswerFrame | undefined;
      if (leader === d.memberId) a = await this.answerLocally(kind, leaseId, withKeys);
      else if (leader !== 0n) a = await this.ask(leader, kind, leaseId, withKeys, Math.min(FORWARD_ATTEMPT_MS, deadline - d.sched.now()));
      if (a !== undefined && a.status !== LeaseAnswerStatus.NotLeader) return a;
      if (d.sched.now() >= deadline) throw leader === 0n ? Errors.NoLeader() : Errors.Timeout();
      await new Promise<void>((resolve) => d.sched.timeout(resolve, FORWARD_RETRY_MS));
    }
  }

  private ask(
    to: bigint,
    kind: LeaseRequestFrame['kind'],
    leaseId: bigint,
    withKeys: boolean,
    waitMs: number,
  ): Promise<LeaseAnswerFrame | undefined> {
    if (this.pending.size >= LEASE_FORWARDS_PENDING_MAX) return Promise.reject(Errors.TooManyRequests());
    const requestId = this.nextRequestId;
    this.nextRequestId = (this.nextRequestId % 0xffff_ffff) + 1;
    return new Promise<LeaseAnswerFrame | undefined>((resolve) => {
      const timer = this.d.sched.timeout(
        () => {
          this.pending.delete(requestId);
          resolve(undefined);
        },
        Math.max(1, waitMs),
      );
      this.pending.set(requestId, { resolve, timer });
      if (!this.d.sendLease(to, encodeLeaseRequest({ kind, requestId, leaseId, withKeys }))) {
        // Dropped (stream down): the timer retries; don't wait the whole attempt for nothing.
        this.d.sched.cancel(timer);
        this.pending.delete(requestId);
        this.d.sched.timeout(() => resolve(undefined), FORWARD_RETRY_MS);
      }
    });
  }

  /** What this member answers as the (would-be) leader. */
  private async answerLocally(kind: number, leaseId: bigint, withKeys: boolean): Promise<LeaseAnswerFrame> {
    const le = this.d.lessor;
    const answer = (status: number, ttlSec = 0, grantedTtlSec = 0, keys: Buffer[] = []): LeaseAnswerFrame => ({
      kind: LeaseFrameKind.Answer,
      requestId: 0,
      status,
      ttlSec,
      grantedTtlSec,
      keys,
    });
    // etcd's lease handler for followers waits for the applied index as well; past its timeout the follower asks again.
    if (this.behindCommit()) {
      try {
        await this.waitApplied();
      } catch {
        return answer(LeaseAnswerStatus.NotLeader);
      }
    }
    if (kind === LeaseFrameKind.Renew) {
      const r = await le.renew(leaseId);
      if (r === RENEW_NOT_PRIMARY) return answer(LeaseAnswerStatus.NotLeader);
      if (r === RENEW_NOT_FOUND) return answer(LeaseAnswerStatus.NotFound);
      return answer(LeaseAnswerStatus.Ok, r);
    }
    if (!le.isPrimary) return answer(LeaseAnswerStatus.NotLeader);
    const t = le.timeToLive(leaseId, withKeys);
    if (t === undefined) return answer(LeaseAnswerStatus.NotFound);
    return answer(LeaseAnswerStatus.Ok, t.ttlSec, t.grantedTtlSec, t.keys);
  }

  /** A lease frame from a peer: a request to answer (as the leader) or an answer to a request of ours. */
  receive(from: bigint, payload: Uint8Array): void {
    let f: LeaseRequestFrame | LeaseAnswerFrame;
    try {
      f = decodeLeaseFrame(payload);
    } catch (err) {
      this.d.logger.warn('dropped a malformed lease frame', { from: from.toString(16), error: err });
      return;
    }
    if (f.kind === LeaseFrameKind.Answer) {
      const p = this.pending.get(f.requestId);
      if (p === undefined) return; // answered after its attempt timed out
      this.pending.delete(f.requestId);
      this.d.sched.cancel(p.timer);
      p.resolve(f);
      return;
    }
    const requestId = f.requestId;
    this.answerLocally(f.kind, f.leaseId, f.withKeys).then(
      (a) => {
        if (!this.stopped) this.d.sendLease(from, encodeLeaseAnswer({ ...a, requestId }));
      },
      (err: unknown) => this.d.logger.warn('answering a forwarded lease request failed', { error: err }),
    );
  }
}
