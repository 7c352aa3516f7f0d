// RawNode: the seam between the Raft state machine and the member that runs it. The caller ticks it,
// feeds it messages and proposals, and drains Ready batches: persist, send, apply, then advance.

import { encodeConfChange, encodeConfChangeV2 } from './codec.js';
import { InvalidMessageError, RawNodeUsageError, StepLocalMsgError, StepPeerNotFoundError } from './errors.js';
import { NO_LIMIT } from './log.js';
import type { ProgressState } from './progress.js';
import { type Config, Raft } from './raft.js';
import {
  type ConfChange,
  type ConfChangeV2,
  ConfChangeType,
  type ConfState,
  confChangeAsV2,
  EMPTY_BYTES,
  type Entry,
  EntryType,
  emptyHardState,
  type HardState,
  hardStateEqual,
  isConfChangeV2,
  isEmptyHardState,
  isLocalMsg,
  isResponseMsg,
  type Message,
  MessageType,
  newMessage,
  NONE,
  type NodeId,
  type ReadState,
  type Snapshot,
  type SoftState,
  SnapshotStatus,
  StateType,
} from './types.js';

/**
 * Everything the caller must do, in this order:
 *  1. persist `snapshot` (if any) first, then `entries`, then `hardState` (fsync when `mustSync`) — in
 *     that order, so a crash in between never leaves a durable commit index beyond the durable log (a
 *     commit index below a durable snapshot is fine: the snapshot's index counts as committed) — and
 *     make them visible through Storage (MemoryStorage.applySnapshot / append / setHardState);
 *  2. send `messages` (see canSendBeforePersist for the few that may go before step 1); after sending a
 *     MsgSnap, report the outcome with reportSnapshot;
 *  3. apply `snapshot`, then `committedEntries` (calling applyConfChange for conf change entries);
 *  4. call advance(rd). Only one Ready is outstanding at a time; step() and the other inputs may be
 *     called while it is being handled.
 * `committedEntries` may include entries from this Ready's `entries`: apply only after step 1.
 */
export interface Ready {
  /** Set when role or leader changed. Need not be persisted. */
  softState: SoftState | undefined;
  /** Set when term, vote or commit changed. Persist before sending messages. */
  hardState: HardState | undefined;
  /** Answers to ReadIndex requests made on this member. */
  readStates: ReadState[];
  /** Entries to append to the durable log (may overwrite its tail from entries[0].index). */
  entries: Entry[];
  /** A snapshot to persist and apply (received from the leader). */
  snapshot: Snapshot | undefined;
  /** Entries known committed, to apply in order. */
  committedEntries: Entry[];
  /** Messages to send once this Ready is persisted. */
  messages: Message[];
  /** hardState, entries and snapshot must be fsynced (term, vote, log or snapshot changed), not written lazily. */
  mustSync: boolean;
  /** hardState changes term or vote: then no message at all may leave before it is durable. */
  termOrVoteChanged: boolean;
}

/**
 * True if message m of Ready rd may be sent before rd is persisted: a leader's MsgApp, MsgHeartbeat or
 * MsgSnap, when rd does not change term or vote. Why that is safe: the leader counts its own log toward
 * the commit quorum only after advance() (i.e. once durable), so a follower acking early cannot make
 * anything committed that a quorum does not hold durably; and the leader's term and vote were durable
 * before it could win. Every other message must wait: votes, vote and append acknowledgements promise
 * durable state.
 */
export function canSendBeforePersist(rd: Ready, m: Message): boolean {
  if (rd.termOrVoteChanged) return false;
  return m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap;
}

/** A member of a new cluster, for bootstrap. */
export interface Peer {
  id: NodeId;
  context?: Uint8Array;
}

/** What the leader knows about one member's replication. */
export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  pendingSnapshot: number;
  recentActive: boolean;
  probeSent: boolean;
  isLearner: boolean;
  /** Appends in flight. */
  inflight: number;
  /** No append may be sent now. */
  paused: boolean;
}

/** A snapshot of the member's Raft state, for monitoring and tests. */
export interface Status {
  id: NodeId;
  hardState: HardState;
  softState: SoftState;
  applied: number;
  leadTransferee: NodeId;
  /** The active configuration. */
  config: ConfState;
  /** Leader only: progress of every member (empty otherwise). */
  progress: Map<NodeId, ProgressStatus>;
}

/** Role, term and cursors of a member, without membership or progress. */
export interface BasicStatus {
  id: NodeId;
  term: number;
  vote: NodeId;
  commit: number;
  lead: NodeId;
  raftState: StateType;
  applied: number;
  leadTransferee: NodeId;
}

/**
 * One Raft member, driven by the caller:
 *
 *   const rn = new RawNode({ id, electionTick: 10, heartbeatTick: 1, storage, rng });
 *   rn.tick(); rn.step(msg); rn.propose(data);
 *   if (rn.hasReady()) { const rd = rn.ready(); persist(rd); send(rd.messages); apply(rd); rn.advance(rd); }
 */
export class RawNode {
  private readonly raft: Raft;
  private prevSoftSt: SoftState;
  private prevHardSt: HardState;
  /** A Ready was handed out and not yet advanced. */
  private outstanding = false;

  constructor(config: Config) {
    this.raft = new Raft(config);
    this.prevSoftSt = this.raft.softState();
    this.prevHardSt = this.raft.hardState();
  }

  /**
   * Starts a brand-new cluster on empty storage: the initial members become committed ConfChange entries
   * 1..n at term 1, which the next Ready hands out to persist and apply.
   */
  bootstrap(peers: Peer[]): void {
    if (peers.length === 0) throw new RawNodeUsageError('must provide at least one peer to bootstrap');
    if (this.raft.raftLog.storage.lastIndex() !== 0) throw new RawNodeUsageError("can't bootstrap a nonempty Storage");
    this.prevHardSt = emptyHardState();
    this.raft.becomeFollower(1, NONE);
    const ents: Entry[] = peers.map((p, i) => ({
      type: EntryType.ConfChange,
      term: 1,
      index: i + 1,
      data: encodeConfChange({ type: ConfChangeType.AddNode, node_id: p.id, context: p.context ?? EMPTY_BYTES }),
    }));
    this.raft.raftLog.append(ents);
    this.raft.raftLog.committed = ents.length;
    for (const p of peers) this.raft.applyConfChange(confChangeAsV2({ type: ConfChangeType.AddNode, node_id: p.id, context: EMPTY_BYTES }));
  }

  /** Advances logical time by one tick (heartbeats, election timeouts). */
  tick(): void {
    this.raft.tick();
  }

  /** Advances only the election clock (for an idle member that should not heartbeat). */
  tickQuiesced(): void {
    this.raft.electionElapsed++;
  }

  /** Starts an election now (with pre-vote if configured). */
  campaign(): void {
    const m = newMessage(MessageType.MsgHup);
    m.from = this.raft.id;
    this.raft.step(m);
  }

  /** Proposes data to be appended. Throws ProposalDroppedError when it cannot be. */
  propose(data: Uint8Array): void {
    const m = newMessage(MessageType.MsgProp);
    m.from = this.raft.id;
    m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data }];
    this.raft.step(m);
  }

  /**
   * Proposes several payloads as one append (one broadcast, one write), all or nothing. Throws
   * ProposalDroppedError when they cannot be appended.
   */
  proposeBatch(data: Uint8Array[]): void {
    if (data.length === 0) return;
    const m = newMessage(MessageType.MsgProp);
    m.from = this.raft.id;
    m.entries = data.map((d) => ({ term: 0, index: 0, type: EntryType.Normal, data: d }));
    this.raft.step(m);
  }

  /** Proposes a membership change (v1 as EntryConfChange, v2 as EntryConfChangeV2). */
  proposeConfChange(cc: ConfChange | ConfChangeV2): void {
    const m = newMessage(MessageType.MsgProp);
    m.from = this.raft.id;
    m.entries = isConfChangeV2(cc)
      ? [{ term: 0, index: 0, type: EntryType.ConfChangeV2, data: encodeConfChangeV2(cc) }]
      : [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }];
    this.raft.step(m);
  }

  /** Applies a committed conf change entry's change; returns the new membership (to store with snapshots). */
  applyConfChange(cc: ConfChange | ConfChangeV2): ConfState {
    return this.raft.applyConfChange(confChangeAsV2(cc));
  }

  /**
   * Handles a message from a peer. Throws StepLocalMsgError, StepPeerNotFoundError, InvalidMessageError
   * or ProposalDroppedError (a forwarded proposal that cannot be taken); the caller may ignore them.
   */
  step(m: Message): void {
    if (isLocalMsg(m.type)) throw new StepLocalMsgError();
    if (isResponseMsg(m.type) && !this.raft.prs.progress.has(m.from)) throw new StepPeerNotFoundError();
    validateMessage(this.raft.id, m);
    this.raft.step(m);
  }

  /** Asks for a linearizable read point; the answer comes as a ReadState with request_ctx = ctx. */
  readIndex(ctx: Uint8Array): void {
    const m = newMessage(MessageType.MsgReadIndex);
    m.entries = [{ term: 0, index: 0, type: EntryType.Normal, data: ctx }];
    this.raft.step(m);
  }

  /** Asks the leader to hand leadership to transferee. */
  transferLeader(transferee: NodeId): void {
    const m = newMessage(MessageType.MsgTransferLeader);
    m.from = transferee;
    this.raft.step(m);
  }

  /** The transport failed to deliver to id: stop pipelining to it. */
  reportUnreachable(id: NodeId): void {
    const m = newMessage(MessageType.MsgUnreachable);
    m.from = id;
    this.raft.step(m);
  }

  /** Reports the outcome of sending a snapshot to id (required after every MsgSnap). */
  reportSnapshot(id: NodeId, status: SnapshotStatus): void {
    const m = newMessage(MessageType.MsgSnapStatus);
    m.from = id;
    m.reject = status === SnapshotStatus.Failure;
    this.raft.step(m);
  }

  /** True when ready() would return something to do. */
  hasReady(): boolean {
    const r = this.raft;
    if (r.readRoundPending) return true;
    const ss = r.softState();
    if (ss.lead !== this.prevSoftSt.lead || ss.raft_state !== this.prevSoftSt.raft_state) return true;
    const hs = r.hardState();
    if (!isEmptyHardState(hs) && !hardStateEqual(hs, this.prevHardSt)) return true;
    if (r.raftLog.unstable.snapshot !== undefined && r.raftLog.unstable.snapshot.metadata.index !== 0) return true;
    if (r.msgs.length > 0 || r.raftLog.unstableEntries().length > 0 || r.raftLog.hasNextEnts()) return true;
    return r.readStates.length > 0;
  }

  /** Takes the pending work. Call advance(rd) when done before calling ready() again. */
  ready(): Ready {
    if (this.outstanding) throw new RawNodeUsageError('ready() called again before advance()');
    const r = this.raft;
    r.flushReadRound();
    const ss = r.softState();
    const hs = r.hardState();
    const entries = r.raftLog.unstableEntries();
    const hsChanged = !hardStateEqual(hs, this.prevHardSt);
    const termOrVoteChanged = hs.term !== this.prevHardSt.term || hs.vote !== this.prevHardSt.vote;
    const rd: Ready = {
      softState: ss.lead !== this.prevSoftSt.lead || ss.raft_state !== this.prevSoftSt.raft_state ? ss : undefined,
      hardState: hsChanged ? hs : undefined,
      readStates: r.readStates,
      entries,
      snapshot: r.raftLog.unstable.snapshot,
      committedEntries: r.raftLog.nextEnts(),
      messages: r.msgs,
      // A snapshot is acknowledged as durable just like entries, so it must be synced too.
      mustSync: entries.length !== 0 || termOrVoteChanged || r.raftLog.unstable.snapshot !== undefined,
      termOrVoteChanged,
    };
    if (rd.softState !== undefined) this.prevSoftSt = rd.softState;
    const ce = rd.committedEntries;
    if (ce.length > 0) r.raftLog.applying = ce[ce.length - 1].index;
    r.readStates = [];
    r.msgs = [];
    this.outstanding = true;
    return rd;
  }

  /** rd was persisted and applied (steps 1-3 of Ready); raft moves its cursors. */
  advance(rd: Ready): void {
    if (!this.outstanding) throw new RawNodeUsageError('advance() without an outstanding ready()');
    this.outstanding = false;
    if (rd.hardState !== undefined) this.prevHardSt = rd.hardState;
    let applied = 0;
    if (rd.committedEntries.length > 0) applied = rd.committedEntries[rd.committedEntries.length - 1].index;
    else if (rd.snapshot !== undefined) applied = rd.snapshot.metadata.index;
    const last = rd.entries.length > 0 ? rd.entries[rd.entries.length - 1] : undefined;
    this.raft.advance(applied, rd.committedEntries, last, rd.snapshot?.metadata.index ?? 0);
  }

  /** The cheap part of status(): no configuration or progress (nothing is sorted or copied). */
  basicStatus(): BasicStatus {
    const r = this.raft;
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      commit: r.raftLog.committed,
      lead: r.lead,
      raftState: r.state,
      applied: r.raftLog.applied,
      leadTransferee: r.leadTransferee,
    };
  }

  /** The current state (progress only on the leader). */
  status(): Status {
    const r = this.raft;
    const progress = new Map<NodeId, ProgressStatus>();
    if (r.state === StateType.Leader) {
      for (const id of r.prs.sortedIds()) {
        const pr = r.prs.progress.get(id)!;
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          pendingSnapshot: pr.pendingSnapshot,
          recentActive: pr.recentActive,
          probeSent: pr.probeSent,
          isLearner: pr.isLearner,
          inflight: pr.inflights.countInflight(),
          paused: pr.isPaused(),
        });
      }
    }
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      leadTransferee: r.leadTransferee,
      config: r.prs.confState(),
      progress,
    };
  }

  /** Progress of each member as etcd prints it ("StateReplicate match=5 next=6"), leader only. For tests and debugging. */
  describeProgress(): Map<NodeId, string> {
    const out = new Map<NodeId, string>();
    for (const id of this.raft.prs.sortedIds()) out.set(id, this.raft.prs.progress.get(id)!.toString());
    return out;
  }

  /** The active configuration in etcd's notation ("voters=(1 2 3) learners=(4)"). */
  describeConfig(): string {
    return this.raft.prs.config.toString();
  }

  /** Entries of the log (stable and unstable), for tests and debugging. */
  logEntries(): Entry[] {
    return this.raft.raftLog.allEntries();
  }

  /** First and last index and commit of the log, for tests and debugging. */
  logBounds(): { firstIndex: number; lastIndex: number; committed: number; applied: number } {
    const l = this.raft.raftLog;
    return { firstIndex: l.firstIndex(), lastIndex: l.lastIndex(), committed: l.committed, applied: l.applied };
  }

  /** Entries [lo, hi) of the log, for tests and debugging. Throws CompactedError below firstIndex. */
  logSlice(lo: number, hi: number): Entry[] {
    return this.raft.raftLog.slice(lo, hi, NO_LIMIT);
  }

  /** Term of entry i (0 outside the log; throws CompactedError for compacted indexes). */
  logTerm(i: number): number {
    return this.raft.raftLog.term(i);
  }
}

/** Rejects messages whose shape raft relies on being sane. */
function validateMessage(self: NodeId, m: Message): void {
  if (m.to !== self) throw new InvalidMessageError(`message for ${m.to.toString(16)} delivered to ${self.toString(16)}`);
  switch (m.type) {
    case MessageType.MsgProp:
      if (m.entries.length === 0) throw new InvalidMessageError('MsgProp without entries');
      break;
    case MessageType.MsgReadIndex:
    case MessageType.MsgReadIndexResp:
      if (m.entries.length !== 1) throw new InvalidMessageError(`${MessageType[m.type]} must carry exactly one entry`);
      break;
    case MessageType.MsgSnap:
      if (m.snapshot === undefined) throw new InvalidMessageError('MsgSnap without a snapshot');
      break;
    case MessageType.MsgApp:
      for (let i = 0; i < m.entries.length; i++) {
        const e = m.entries[i];
        if (e.index !== m.index + 1 + i) throw new InvalidMessageError('MsgApp entries are not contiguous after its index');
        if (e.term > m.term || e.term < (i === 0 ? m.logTerm : m.entries[i - 1].term)) {
          throw new InvalidMessageError('MsgApp entry terms out of order');
        }
      }
      break;
  }
}
