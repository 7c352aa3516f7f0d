// Proposals and their waiters: a request becomes a Raft entry with a fresh ID, waits in this turn's
// batch (one Raft append, one WAL write and one MsgApp per follower for all of them), and its client
// waits until this member applied the entry. Everything here is bounded: waiters, queued bytes, the batch.
import { HistogramCounts, exponentialBuckets } from '../metrics.js';

/** tetcd_proposal_batch_size's bounds: 1, 2, 4 … 4096 proposals. */
const PROPOSAL_BATCH_BUCKETS = exponentialBuckets(1, 2, 13);
import type { ConfChange, RawNode } from '../raft/index.js';
import type { InternalRequestInit } from '../proto/internal.js';
import { Errors, type EtcdError } from '../errors.js';
import { IdGenerator } from './idgen.js';
import { WaitRegistry } from './wait.js';
import { encodeProposal } from './proposal.js';
import type { ApplyResult } from './apply.js';

/** Proposals and reads in flight at once; beyond it clients get ErrTooManyRequests. */
export const WAITERS_MAX = 200_000;
/** Bytes of proposals queued for the next batch (or for a leader to appear); beyond it: TooManyRequests. */
export const PROPOSAL_QUEUE_BYTES_MAX = 256 * 1024 * 1024;
/** Proposals handed to Raft per Ready unless --proposal-batch-max says otherwise. */
export const PROPOSAL_BATCH_COUNT_MAX_DEFAULT = 4096;

export interface ProposalsOptions {
  memberId: bigint;
  /** --max-request-bytes: the largest entry. */
  maxRequestBytes: number;
  /** Proposals handed to Raft per Ready; the rest go with the next. */
  batchCountMax: number;
  requestTimeoutMs: number;
  /** A proposal was queued: the Ready loop should run. */
  wake(): void;
  now(): number;
}

/**
 * The proposal queue.
 *
 *   const result = await proposals.propose({ put: req });   // the API's side
 *   proposals.flushTo(node, leaderId);                      // the Ready loop, at the start of a Ready
 *   proposals.trigger(id, result);                          // the applier
 */
export class Proposals {
  private readonly waits = new WaitRegistry<ApplyResult>(WAITERS_MAX);
  private readonly ids: IdGenerator;
  private data: Uint8Array[] = [];
  private idsQueued: bigint[] = [];
  private bytesQueued = 0;
  /** A membership change waiting for a leader (the member makes one at a time). */
  private confChange: ConfChange | undefined;
  /** tetcd_proposal_batch_size: proposals per Raft append (the group commit's batch). */
  readonly batchSizes = new HistogramCounts(PROPOSAL_BATCH_BUCKETS);
  /** etcd_server_proposals_failed_total: proposals that timed out, lost their leader or were refused by Raft. */
  failed = 0;

  constructor(private readonly o: ProposalsOptions) {
    this.ids = new IdGenerator(o.memberId, o.now());
  }

  /** Proposals waiting for the next batch. */
  get queued(): number {
    return this.data.length + (this.confChange === undefined ? 0 : 1);
  }

  /** etcd_server_proposals_pending: proposals made and not yet applied nor failed. */
  get pending(): number {
    return this.waits.size;
  }

  /** Encodes and queues a request; resolves with its apply result. Rejects with etcd's errors. */
  propose(init: Omit<InternalRequestInit, 'ID'>): Promise<ApplyResult> {
    const id = this.ids.next();
    const data = encodeProposal(id, init);
    if (data.length > this.o.maxRequestBytes) return Promise.reject(Errors.RequestTooLarge());
    if (this.bytesQueued + data.length > PROPOSAL_QUEUE_BYTES_MAX) return Promise.reject(Errors.TooManyRequests());
    const done = this.waits.register(id, this.o.now() + this.o.requestTimeoutMs);
    this.bytesQueued += data.length;
    this.data.push(data);
    this.idsQueued.push(id);
    this.o.wake();
    return done;
  }

  /**
   * Queues a membership change with a fresh ID; resolves when it was applied here (the response carries
   * the members after it, or the error that refused it). One at a time: a second one while the first waits
   * for a leader is refused as too many requests (the member serializes its own changes before this).
   */
  proposeConfChange(cc: Omit<ConfChange, 'id'>): Promise<ApplyResult> {
    if (this.confChange !== undefined) return Promise.reject(Errors.TooManyRequests());
    const id = this.ids.next();
    const done = this.waits.register(id, this.o.now() + this.o.requestTimeoutMs);
    this.confChange = { ...cc, id };
    this.o.wake();
    return done;
  }

  /**
   * Hands up to batchCountMax queued proposals to Raft as one append. Without a leader Raft would drop
   * them; like etcd, proposals wait for one (until their timeout).
   */
  flushTo(node: RawNode, leaderId: bigint): void {
    if (leaderId === 0n) return;
    if (this.confChange !== undefined) this.flushConfChange(node, leaderId);
    if (this.data.length === 0) return;
    let data = this.data;
    let ids = this.idsQueued;
    if (data.length <= this.o.batchCountMax) {
      this.data = [];
      this.idsQueued = [];
      this.bytesQueued = 0;
    } else {
      // The rest go with the next Ready, which the end of this one starts at once.
      data = this.data.splice(0, this.o.batchCountMax);
      ids = this.idsQueued.splice(0, this.o.batchCountMax);
      for (let i = 0; i < data.length; i++) this.bytesQueued -= data[i].length;
    }
    if (ids.some((id) => !this.waits.has(id))) {
      // Some waited for a leader longer than their timeout; their clients were told so, don't propose them.
      const keep = ids.map((id) => this.waits.has(id));
      data = data.filter((_, i) => keep[i]);
      ids = ids.filter((_, i) => keep[i]);
      if (ids.length === 0) return;
    }
    this.batchSizes.observe(data.length);
    try {
      node.proposeBatch(data);
    } catch {
      const err = leaderId === 0n ? Errors.NoLeader() : Errors.LeaderChanged();
      for (const id of ids) if (this.waits.fail(id, err)) this.failed++;
    }
  }

  private flushConfChange(node: RawNode, leaderId: bigint): void {
    const cc = this.confChange!;
    this.confChange = undefined;
    const id = cc.id!;
    if (!this.waits.has(id)) return;
    try {
      node.proposeConfChange(cc);
    } catch {
      if (this.waits.fail(id, leaderId === 0n ? Errors.NoLeader() : Errors.LeaderChanged())) this.failed++;
    }
  }

  /** The entry of proposal `id` was applied here; false if nobody waits (another member proposed it, or it timed out). */
  trigger(id: bigint, result: ApplyResult): boolean {
    return this.waits.trigger(id, result);
  }

  /** Fails the waiters whose deadline passed. */
  sweep(nowMs: number, leaderKnown: boolean): void {
    this.waits.sweep(nowMs, () => {
      this.failed++;
      return leaderKnown ? Errors.Timeout() : Errors.TimeoutDueToLeaderFail();
    });
  }

  /** Fails every waiter (stop, or a fatal error). */
  failAll(err: EtcdError): void {
    this.failed += this.waits.size;
    this.waits.failAll(err);
  }
}
