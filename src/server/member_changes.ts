// Membership changes as etcd's server makes them (etcdserver/server.go AddMember, RemoveMember, UpdateMember,
// PromoteMember, MoveLeader): the checks before a change is proposed (--strict-reconfig-check, a learner's
// readiness on the leader), then one conf change through the log at a time; the members after it, or the
// error it was refused with at apply (membership.ts validate), go back to the caller.
import { ConfChangeType, type ConfChange, type Status } from '../raft/index.js';
import { Errors } from '../errors.js';
import type { Member } from '../proto/rpc.js';
import type { ApplyResult } from './apply.js';
import { encodeMemberRecord, encodePromoteRecord, type Membership } from './membership.js';
import { runtimeMemberId } from './ids.js';

/** etcd's readyPercent: a learner is ready once its match reaches this share of the leader's. */
const LEARNER_READY_SHARE = 0.9;
/** Membership changes a member holds at once (one in the log, the rest waiting); beyond it: too many requests. */
export const MEMBER_CHANGES_WAITING_MAX = 16;
/** Distinct reasons etcd_server_learner_promote_failures keeps a series for. */
const PROMOTE_FAILURE_REASONS_MAX = 32;
/** etcd's HealthInterval: a peer must have been connected for this long to count as started. */
const HEALTH_INTERVAL_MS = 5000;

export interface MemberChangesDeps {
  memberId: bigint;
  membership: Membership;
  /** --strict-reconfig-check */
  strictReconfigCheck: boolean;
  proposeConfChange(cc: Omit<ConfChange, 'id'>): Promise<ApplyResult>;
  /** Raft's status (progress is known on the leader only). */
  raftStatus(): Status;
  leaderId(): bigint;
  /** Since when the stream to a peer has been up (ms), or undefined when it is down. */
  activeSinceMs(id: bigint): number | undefined;
  /** Asks the leader whether learner `id` has caught up (a follower's promote, etcd's /members/promote). */
  askLeaderLearnerReady(id: bigint): Promise<void>;
  transferLeader(to: bigint): void;
  now(): number;
  /** Resolves after `ms` (the move-leader wait polls the leader). */
  sleep(ms: number): Promise<void>;
  heartbeatMs: number;
}

/**
 * The member's membership operations.
 *
 *   const { member, members } = await changes.add(['http://10.0.0.4:2380'], false);
 *   await changes.moveLeader(target, deadlineMs);
 */
export class MemberChanges {
  /** The member makes one change at a time; the next waits for the one before. */
  private tail: Promise<unknown> = Promise.resolve();
  /** Changes running or waiting for the one before them. */
  private waiting = 0;
  /** etcd_server_learner_promote_successes */
  promoteSuccesses = 0;
  /** etcd_server_learner_promote_failures{Reason}: by error text (a handful of etcd's errors; bounded anyway). */
  readonly promoteFailures = new Map<string, number>();
  /** An automatic promotion is in the log. */
  private autoPromoting = false;

  constructor(private readonly d: MemberChangesDeps) {}

  /** MemberAdd: `peerURLs` normalized and sorted by the caller. */
  async add(peerURLs: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    const id = runtimeMemberId(peerURLs, Math.floor(this.d.now() / 1000));
    const member: Member = { ID: id, name: '', peerURLs, clientURLs: [], isLearner };
    const members = await this.serially(() => {
      this.mayAdd(member);
      return this.configure({
        type: isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode,
        node_id: id,
        context: encodeMemberRecord(member),
      });
    });
    return { member, members };
  }

  remove(id: bigint): Promise<Member[]> {
    return this.serially(() => {
      this.mayRemove(id);
      return this.configure({ type: ConfChangeType.RemoveNode, node_id: id, context: new Uint8Array(0) });
    });
  }

  update(id: bigint, peerURLs: string[]): Promise<Member[]> {
    const member: Member = { ID: id, name: '', peerURLs, clientURLs: [], isLearner: false };
    return this.serially(() => this.configure({ type: ConfChangeType.UpdateNode, node_id: id, context: encodeMemberRecord(member) }));
  }

  /** MemberPromote: the leader knows whether the learner caught up; a follower asks it first. */
  async promote(id: bigint): Promise<Member[]> {
    try {
      const members = await this.promoteOnce(id);
      this.promoteSuccesses++;
      return members;
    } catch (err) {
      const reason = (err as Error).message;
      if (this.promoteFailures.has(reason) || this.promoteFailures.size < PROMOTE_FAILURE_REASONS_MAX)
        this.promoteFailures.set(reason, (this.promoteFailures.get(reason) ?? 0) + 1);
      throw err;
    }
  }

  private promoteOnce(id: bigint): Promise<Member[]> {
    return this.serially(async () => {
      const ready = this.learnerReadiness(id);
      if (ready === 'not leader') await this.d.askLeaderLearnerReady(id);
      else if (ready !== undefined) throw ready;
      if (this.d.strictReconfigCheck && !this.d.membership.isReadyToPromote()) throw Errors.MemberNotEnoughStarted();
      return this.configure({ type: ConfChangeType.AddNode, node_id: id, context: encodePromoteRecord(id) });
    });
  }

  /**
   * etcd's isLearnerReady, on the leader: undefined when `id` may be promoted (or is no learner: the
   * change is then refused at apply with etcd's error), the error otherwise; 'not leader' off the leader.
   */
  learnerReadiness(id: bigint): Error | 'not leader' | undefined {
    const st = this.d.raftStatus();
    if (st.progress.size === 0) return 'not leader';
    const learner = st.progress.get(id);
    if (learner === undefined) return undefined;
    const leaderMatch = st.progress.get(st.id)?.match ?? 0;
    return learner.match < leaderMatch * LEARNER_READY_SHARE ? Errors.LearnerNotReady() : undefined;
  }

  /**
   * --learner-auto-promote, called periodically: on the leader, promotes one learner that is in sync (as
   * MemberPromote requires), has published itself and has been connected for etcd's health interval, when
   * the voters connected as long, with it, make a quorum of the voters after the promotion. One at a time,
   * through the log. Resolves with the learner promoted, if any.
   */
  async autoPromote(): Promise<bigint | undefined> {
    if (this.autoPromoting || this.d.leaderId() !== this.d.memberId) return undefined;
    const ms = this.d.membership;
    const since = this.d.now() - HEALTH_INTERVAL_MS;
    const connected = (id: bigint) => {
      if (id === this.d.memberId) return true;
      const t = this.d.activeSinceMs(id);
      return t !== undefined && t <= since;
    };
    const progress = this.d.raftStatus().progress;
    const learner = ms
      .list()
      .find((m) => m.isLearner && m.name !== '' && progress.has(m.ID) && connected(m.ID) && this.learnerReadiness(m.ID) === undefined);
    if (learner === undefined) return undefined;
    const voters = ms.voters();
    if (voters.filter((v) => connected(v.ID)).length + 1 < Math.floor((voters.length + 1) / 2) + 1) return undefined;
    this.autoPromoting = true;
    try {
      await this.promote(learner.ID);
      return learner.ID;
    } finally {
      this.autoPromoting = false;
    }
  }

  /**
   * MoveLeader on the leader: hands leadership to a voter and waits until it leads (etcd polls each
   * heartbeat until the deadline).
   */
  async moveLeader(target: bigint, deadlineMs: number): Promise<void> {
    if (this.d.leaderId() !== this.d.memberId) throw Errors.NotLeader();
    const m = this.d.membership.get(target);
    if (m === undefined || m.isLearner) throw Errors.BadLeaderTransferee();
    this.d.transferLeader(target);
    while (this.d.leaderId() !== target) {
      if (this.d.now() >= deadlineMs) throw Errors.TimeoutLeaderTransfer();
      await this.d.sleep(this.d.heartbeatMs);
    }
  }

  /** Runs `fn` after the changes before it; refuses with too many requests when MEMBER_CHANGES_WAITING_MAX wait. */
  private serially<T>(fn: () => Promise<T>): Promise<T> {
    if (this.waiting >= MEMBER_CHANGES_WAITING_MAX) return Promise.reject(Errors.TooManyRequests());
    this.waiting++;
    const run = this.tail.then(fn, fn).finally(() => {
      this.waiting--;
    });
    this.tail = run.catch(() => {});
    return run;
  }

  private async configure(cc: Omit<ConfChange, 'id'>): Promise<Member[]> {
    const r = await this.d.proposeConfChange(cc);
    if (r.error) throw r.error;
    return (r.response as { members: Member[] }).members;
  }

  /** etcd's mayAddMember under --strict-reconfig-check: the voters must stay able to reach a quorum. */
  private mayAdd(m: Member): void {
    if (!this.d.strictReconfigCheck) return;
    const ms = this.d.membership;
    if (!m.isLearner && !ms.isReadyToAddVoter()) throw Errors.MemberNotEnoughStarted();
    const since = this.d.now() - HEALTH_INTERVAL_MS;
    for (const v of ms.voters()) {
      if (v.ID === this.d.memberId) continue;
      const t = this.d.activeSinceMs(v.ID);
      if (t === undefined || t > since) throw Errors.Unhealthy();
    }
  }

  /** etcd's mayRemoveMember under --strict-reconfig-check: removing a voter must not lose the quorum. */
  private mayRemove(id: bigint): void {
    if (!this.d.strictReconfigCheck) return;
    const ms = this.d.membership;
    if (ms.get(id)?.isLearner === true) return;
    if (!ms.isReadyToRemoveVoter(id)) throw Errors.MemberNotEnoughStarted();
    // A member that is down is safe to remove: it is not part of the active quorum.
    if (id !== this.d.memberId && this.d.activeSinceMs(id) === undefined) return;
    const voters = ms.voters();
    const since = this.d.now() - HEALTH_INTERVAL_MS;
    let active = 0;
    for (const v of voters) {
      if (v.ID === this.d.memberId) active++;
      else {
        const t = this.d.activeSinceMs(v.ID);
        if (t !== undefined && t <= since) active++;
      }
    }
    if (active - 1 < 1 + Math.floor((voters.length - 1) / 2)) throw Errors.MemberNotEnoughStarted();
  }
}
