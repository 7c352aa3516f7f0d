// The Raft state machine: terms, votes and roles, with one step function per role (stepLeader,
// stepCandidate, stepFollower). Pure: no I/O, no clock, no global randomness. Callers drive it through
// RawNode (rawnode.ts), which turns its state into Ready batches.

import { decodeConfChange, decodeConfChangeV2, encodeConfChangeV2 } from './codec.js';
import { Changer, restoreConfState, type ChangeResult } from './confchange.js';
import {
  CompactedError,
  ProposalDroppedError,
  RaftConfigError,
  RaftDecodeError,
  RaftInvariantError,
  SnapshotTemporarilyUnavailableError,
  UnavailableError,
  invariant,
} from './errors.js';
import { NO_LIMIT, RaftLog } from './log.js';
import { ProgressState } from './progress.js';
import { VoteResult } from './quorum/quorum.js';
import { ReadOnly } from './read_only.js';
import type { Storage } from './storage.js';
import { ProgressTracker } from './tracker.js';
import {
  type ConfChangeV2,
  ConfChangeTransition,
  type ConfState,
  confChangeEnterJoint,
  confChangeLeaveJoint,
  confStateEquivalent,
  EMPTY_BYTES,
  type Entry,
  EntryType,
  type HardState,
  isEmptyHardState,
  isEmptySnap,
  type Message,
  MessageType,
  newMessage,
  NONE,
  type NodeId,
  payloadSizeBytes,
  type RaftLogger,
  type ReadState,
  ReadOnlyOption,
  type Rng,
  silentLogger,
  type Snapshot,
  type SoftState,
  StateType,
  voteRespMsgType,
} from './types.js';

/** Parameters of one Raft member. */
export interface Config {
  /** This member's ID; not 0. */
  id: NodeId;
  /** Ticks without hearing from a leader before a follower campaigns (randomized in [e, 2e)). */
  electionTick: number;
  /** Ticks between a leader's heartbeats. Must be < electionTick. */
  heartbeatTick: number;
  /** The durable log. On restart it holds everything persisted; raft reads hard state and membership from it. */
  storage: Storage;
  /** Randomness for election timeouts (seed it for reproducible runs). */
  rng: Rng;
  /** The last applied index, when restarting: committed entries up to it are not handed out again. */
  applied?: number;
  /** Byte limit of one MsgApp's entries (at least one entry is always sent). Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Byte limit of committed entries in one Ready. Default: maxSizePerMsg. */
  maxCommittedSizePerReady?: number;
  /** Byte limit of the leader's uncommitted tail; proposals beyond it are dropped. 0 = none (default). */
  maxUncommittedEntriesSize?: number;
  /** MsgApps in flight per follower while replicating. Default 256. */
  maxInflightMsgs?: number;
  /** Leader steps down without a quorum of recent activity; followers with a live leader ignore votes. Default true. */
  checkQuorum?: boolean;
  /** Pre-vote round before incrementing the term (thesis §9.6). Default true. */
  preVote?: boolean;
  /** How ReadIndex confirms leadership. Default Safe. LeaseBased requires checkQuorum. */
  readOnlyOption?: ReadOnlyOption;
  /** Followers drop proposals instead of forwarding them to the leader. */
  disableProposalForwarding?: boolean;
  /** Read requests the leader may hold at once (queued for confirmation or deferred); more are dropped. Default 16384. */
  maxPendingReadIndex?: number;
  /** Where to log; default silent. */
  logger?: RaftLogger;
}

/** Why a member campaigns. */
enum CampaignType {
  PreElection = 'CampaignPreElection',
  Election = 'CampaignElection',
  Transfer = 'CampaignTransfer',
}

const CAMPAIGN_TRANSFER_CTX = new TextEncoder().encode(CampaignType.Transfer);

const stateNames = ['StateFollower', 'StateCandidate', 'StateLeader', 'StatePreCandidate'];

/** The name etcd prints for a role. */
export function stateName(s: StateType): string {
  return stateNames[s];
}

function hex(id: NodeId): string {
  return id.toString(16);
}

function typeName(t: MessageType): string {
  return MessageType[t];
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function isCompactedOrUnavailable(e: unknown): boolean {
  return e instanceof CompactedError || e instanceof UnavailableError;
}

/** Default byte limit of one append message. */
export const DEFAULT_MAX_SIZE_PER_MSG = 1024 * 1024;

/** One Raft member's algorithm state. Use it through RawNode. */
export class Raft {
  readonly id: NodeId;
  term = 0;
  vote: NodeId = NONE;
  readStates: ReadState[] = [];
  readonly raftLog: RaftLog;
  readonly maxMsgSizeBytes: number;
  readonly maxUncommittedSizeBytes: number;
  prs: ProgressTracker;
  state: StateType = StateType.Follower;
  /** This member is a learner in the current configuration. */
  isLearner = false;
  /** Outgoing messages, drained by the next Ready. */
  msgs: Message[] = [];
  lead: NodeId = NONE;
  /** Target of a leadership transfer in progress, else NONE. */
  leadTransferee: NodeId = NONE;
  /**
   * An index ≥ the latest conf change that may not be applied yet. A new conf change is accepted only
   * once applied ≥ this, so at most one is pending.
   */
  pendingConfIndex = 0;
  /** Estimate of the leader's uncommitted tail, in payload bytes (never overestimated). */
  uncommittedSizeBytes = 0;
  readOnly: ReadOnly;
  /** Ticks since the last election timeout or, for followers, since hearing from the leader. */
  electionElapsed = 0;
  /** Leader only: ticks since the last heartbeat. */
  heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  /** Drawn in [electionTimeout, 2*electionTimeout) at every reset. */
  randomizedElectionTimeout = 0;
  readonly disableProposalForwarding: boolean;
  readonly maxPendingReadIndex: number;
  readonly logger: RaftLogger;
  private readonly rng: Rng;
  /** ReadIndex requests that arrived before this leader committed an entry of its term. */
  pendingReadIndexMessages: Message[] = [];
  /** Reads were queued and their heartbeat round is not sent yet. */
  readRoundPending = false;

  constructor(c: Config) {
    validateConfig(c);
    this.id = c.id;
    this.logger = c.logger ?? silentLogger;
    this.rng = c.rng;
    this.maxMsgSizeBytes = c.maxSizePerMsg ?? DEFAULT_MAX_SIZE_PER_MSG;
    const maxUncommitted = c.maxUncommittedEntriesSize ?? 0;
    this.maxUncommittedSizeBytes = maxUncommitted === 0 ? NO_LIMIT : maxUncommitted;
    this.raftLog = new RaftLog(c.storage, this.logger, c.maxCommittedSizePerReady ?? this.maxMsgSizeBytes);
    this.prs = new ProgressTracker(c.maxInflightMsgs ?? 256);
    this.electionTimeout = c.electionTick;
    this.heartbeatTimeout = c.heartbeatTick;
    this.checkQuorum = c.checkQuorum ?? true;
    this.preVote = c.preVote ?? true;
    this.readOnly = new ReadOnly(c.readOnlyOption ?? ReadOnlyOption.Safe);
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.maxPendingReadIndex = c.maxPendingReadIndex ?? 16384;
    if (this.readOnly.option === ReadOnlyOption.LeaseBased && !this.checkQuorum) {
      throw new RaftConfigError('CheckQuorum must be enabled when ReadOnlyOption is LeaseBased');
    }

    const { hardState, confState } = c.storage.initialState();
    const restored = restoreConfState(this.prs, this.raftLog.lastIndex(), confState);
    const cs = this.switchToConfig(restored);
    assertConfStatesEquivalent(confState, cs);

    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    if (c.applied !== undefined && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, NONE);

    this.logger.info(
      `newRaft ${hex(this.id)} [peers: [${this.prs.voterNodes().map(hex).join(',')}], term: ${this.term}, commit: ${this.raftLog.committed}, applied: ${this.raftLog.applied}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}]`,
    );
  }

  hasLeader(): boolean {
    return this.lead !== NONE;
  }

  softState(): SoftState {
    return { lead: this.lead, raft_state: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  /** Queues m for the next Ready, stamping sender and term. */
  send(m: Message): void {
    m.from = this.id;
    const t = m.type;
    if (t === MessageType.MsgVote || t === MessageType.MsgVoteResp || t === MessageType.MsgPreVote || t === MessageType.MsgPreVoteResp) {
      // Campaign messages carry an explicit term (a pre-vote's is the future term).
      if (m.term === 0) throw new RaftInvariantError(`term should be set when sending ${typeName(t)}`);
    } else {
      if (m.term !== 0) throw new RaftInvariantError(`term should not be set when sending ${typeName(t)} (was ${m.term})`);
      // Proposals and read requests forwarded to the leader act as local messages there: no term.
      if (t !== MessageType.MsgProp && t !== MessageType.MsgReadIndex) m.term = this.term;
    }
    this.msgs.push(m);
  }

  /** Sends an append (or a snapshot) to `to`, even if it carries no entries. */
  sendAppend(to: NodeId): void {
    this.maybeSendAppend(to, true);
  }

  /**
   * Sends an append with new entries to `to` if its progress allows; empty appends (to convey the commit
   * index) only when sendIfEmpty. Falls back to a snapshot when the needed entries were compacted.
   * Returns true if a message was sent.
   */
  maybeSendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    let term = 0;
    let ents: Entry[] = [];
    let needSnapshot = false;
    try {
      term = this.raftLog.term(pr.next - 1);
      ents = this.raftLog.entries(pr.next, this.maxMsgSizeBytes);
    } catch (e) {
      if (!isCompactedOrUnavailable(e)) throw e;
      needSnapshot = true;
      ents = [];
    }
    if (ents.length === 0 && !sendIfEmpty) return false;

    const m = newMessage(MessageType.MsgApp, to);
    if (needSnapshot) {
      if (!pr.recentActive) {
        this.logger.debug(`ignore sending snapshot to ${hex(to)} since it is not recently active`);
        return false;
      }
      let snapshot: Snapshot;
      try {
        snapshot = this.raftLog.snapshot();
      } catch (e) {
        if (e instanceof SnapshotTemporarilyUnavailableError) {
          this.logger.debug(`${hex(this.id)} failed to send snapshot to ${hex(to)} because snapshot is temporarily unavailable`);
          return false;
        }
        throw e;
      }
      invariant(!isEmptySnap(snapshot), 'need non-empty snapshot');
      m.type = MessageType.MsgSnap;
      m.snapshot = snapshot;
      const { index: sindex, term: sterm } = snapshot.metadata;
      this.logger.debug(
        `${hex(this.id)} [firstindex: ${this.raftLog.firstIndex()}, commit: ${this.raftLog.committed}] sent snapshot[index: ${sindex}, term: ${sterm}] to ${hex(to)} [${pr}]`,
      );
      pr.becomeSnapshot(sindex);
      this.logger.debug(`${hex(this.id)} paused sending replication messages to ${hex(to)} [${pr}]`);
    } else {
      m.index = pr.next - 1;
      m.logTerm = term;
      m.entries = ents;
      m.commit = this.raftLog.committed;
      const n = ents.length;
      if (n !== 0) {
        if (pr.state === ProgressState.Replicate) {
          // Pipelining: assume the append arrives and move on.
          const last = ents[n - 1].index;
          pr.optimisticUpdate(last);
          pr.inflights.add(last);
        } else if (pr.state === ProgressState.Probe) {
          pr.probeSent = true;
        } else {
          throw new RaftInvariantError(`${hex(this.id)} is sending append in unhandled state ${pr.state}`);
        }
      }
    }
    this.send(m);
    return true;
  }

  /** Sends a heartbeat. Its commit is capped at the follower's match so it never commits what it may lack. */
  sendHeartbeat(to: NodeId, ctx: Uint8Array): void {
    const pr = this.prs.progress.get(to)!;
    const m = newMessage(MessageType.MsgHeartbeat, to);
    m.commit = Math.min(pr.match, this.raftLog.committed);
    m.context = ctx;
    this.send(m);
  }

  /** Appends (or probes) to every other member. */
  bcastAppend(): void {
    for (const id of this.prs.sortedIds()) if (id !== this.id) this.sendAppend(id);
  }

  /** Heartbeats to every other member, carrying the newest pending read request's context. */
  bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx() ?? EMPTY_BYTES);
  }

  bcastHeartbeatWithCtx(ctx: Uint8Array): void {
    for (const id of this.prs.sortedIds()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  /**
   * A Ready was handled: its entries up to lastPersisted and its snapshot (snapshotIndex > 0) are durable,
   * and committed entries up to appliedTo are applied. A leader counts itself toward the commit quorum
   * only here, once its log is durable.
   */
  advance(appliedTo: number, committedEntries: Entry[], lastPersisted: Entry | undefined, snapshotIndex: number): void {
    if (appliedTo > 0) {
      this.raftLog.appliedTo(appliedTo);
      if (this.prs.config.autoLeave && appliedTo >= this.pendingConfIndex && this.state === StateType.Leader) {
        // The joint config this leader entered is applied: propose leaving it.
        const ent: Entry = {
          term: 0,
          index: 0,
          type: EntryType.ConfChangeV2,
          data: encodeConfChangeV2({ transition: ConfChangeTransition.Auto, changes: [], context: EMPTY_BYTES }),
        };
        if (!this.appendEntry([ent])) {
          // Retry after the next apply.
          this.pendingConfIndex = this.raftLog.lastIndex();
        } else {
          this.pendingConfIndex = this.raftLog.lastIndex();
          this.logger.info(`initiating automatic transition out of joint configuration ${this.prs.config}`);
          this.bcastAppend();
        }
      }
    }
    this.reduceUncommittedSize(committedEntries);
    if (lastPersisted !== undefined) this.raftLog.stableTo(lastPersisted.index, lastPersisted.term);
    if (snapshotIndex > 0) this.raftLog.stableSnapTo(snapshotIndex);
    if (this.state === StateType.Leader) this.selfAck();
  }

  /** The leader's own log became durable up to persistedIndex(): count it and try to commit. */
  private selfAck(): void {
    const pr = this.prs.progress.get(this.id);
    if (pr === undefined) return;
    if (!pr.maybeUpdate(this.raftLog.persistedIndex())) return;
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    }
  }

  /** Moves the commit index to what a quorum has durably, if that is an entry of this term. */
  maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.prs.committed(), this.term);
  }

  /** Resets per-term state (and the term itself when it changes). */
  reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    const lastIndex = this.raftLog.lastIndex();
    for (const [id, old] of this.prs.progress) {
      const pr = this.prs.newProgress(lastIndex + 1, old.isLearner);
      // Our own match is what is durable, not what is merely appended.
      if (id === this.id) pr.match = this.raftLog.persistedIndex();
      this.prs.progress.set(id, pr);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSizeBytes = 0;
    this.readOnly = new ReadOnly(this.readOnly.option);
    this.pendingReadIndexMessages = [];
    this.readRoundPending = false;
  }

  /** Leader: assigns term and index to es and appends them. False if the uncommitted-size limit drops them. */
  appendEntry(es: Entry[]): boolean {
    const li = this.raftLog.lastIndex();
    for (let i = 0; i < es.length; i++) {
      es[i].term = this.term;
      es[i].index = li + 1 + i;
    }
    if (!this.increaseUncommittedSize(es)) {
      this.logger.debug(`${hex(this.id)} appending new entries to log would exceed uncommitted entry size limit; dropping proposal`);
      return false;
    }
    this.raftLog.append(es);
    return true;
  }

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.state === StateType.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  /** Followers and candidates: campaign when the randomized election timeout passes. */
  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(this.localMessage(MessageType.MsgHup));
    }
  }

  /** Leaders: heartbeat every heartbeatTimeout, check quorum every electionTimeout. */
  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(this.localMessage(MessageType.MsgCheckQuorum));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === StateType.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== StateType.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(this.localMessage(MessageType.MsgBeat));
    }
  }

  private localMessage(type: MessageType): Message {
    const m = newMessage(type);
    m.from = this.id;
    return m;
  }

  becomeFollower(term: number, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.state = StateType.Follower;
    this.logger.info(`${hex(this.id)} became follower at term ${this.term}`);
  }

  becomeCandidate(): void {
    if (this.state === StateType.Leader) throw new RaftInvariantError('invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateType.Candidate;
    this.logger.info(`${hex(this.id)} became candidate at term ${this.term}`);
  }

  becomePreCandidate(): void {
    if (this.state === StateType.Leader) throw new RaftInvariantError('invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither term nor vote: it only asks whether it could win.
    this.prs.resetVotes();
    this.lead = NONE;
    this.state = StateType.PreCandidate;
    this.logger.info(`${hex(this.id)} became pre-candidate at term ${this.term}`);
  }

  becomeLeader(): void {
    if (this.state === StateType.Follower) throw new RaftInvariantError('invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateType.Leader;
    // The leader replicates to itself trivially.
    this.prs.progress.get(this.id)?.becomeReplicate();
    // Conservatively treat everything in the log as a possibly pending conf change: no new conf change
    // until all of it is applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    const empty: Entry = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
    if (!this.appendEntry([empty])) throw new RaftInvariantError('empty entry was dropped');
    this.logger.info(`${hex(this.id)} became leader at term ${this.term}`);
  }

  /** Starts an election (or pre-election). The caller checked that this member may campaign. */
  campaign(t: CampaignType): void {
    if (!this.promotable()) this.logger.warn(`${hex(this.id)} is unpromotable; campaign() should have been called`);
    let term: number;
    let voteMsg: MessageType;
    if (t === CampaignType.PreElection) {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgPreVote;
      // Pre-votes ask about the next term without moving to it.
      term = this.term + 1;
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgVote;
      term = this.term;
    }
    if (this.poll(this.id, voteRespMsgType(voteMsg), true).result === VoteResult.Won) {
      // Our own vote was enough: a single-voter configuration.
      if (t === CampaignType.PreElection) this.campaign(CampaignType.Election);
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.prs.voterNodes()) {
      if (id === this.id) continue;
      this.logger.info(
        `${hex(this.id)} [logterm: ${lastTerm}, index: ${lastIndex}] sent ${typeName(voteMsg)} request to ${hex(id)} at term ${this.term}`,
      );
      const m = newMessage(voteMsg, id);
      m.term = term;
      m.index = lastIndex;
      m.logTerm = lastTerm;
      if (t === CampaignType.Transfer) m.context = CAMPAIGN_TRANSFER_CTX;
      this.send(m);
    }
  }

  /** Records a vote (or pre-vote) and tallies the election. */
  poll(id: NodeId, t: MessageType, granted: boolean): { granted: number; rejected: number; result: VoteResult } {
    if (granted) this.logger.info(`${hex(this.id)} received ${typeName(t)} from ${hex(id)} at term ${this.term}`);
    else this.logger.info(`${hex(this.id)} received ${typeName(t)} rejection from ${hex(id)} at term ${this.term}`);
    this.prs.recordVote(id, granted);
    return this.prs.tallyVotes();
  }

  /** Handles one message: term bookkeeping common to all roles, votes, then the role's step function. */
  step(m: Message): void {
    if (m.term === 0) {
      // Local message.
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = bytesEqual(m.context, CAMPAIGN_TRANSFER_CTX);
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        if (!force && inLease) {
          // We heard from a live leader within the election timeout: neither adopt the term nor vote.
          this.logger.info(
            `${hex(this.id)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${hex(this.vote)}] ignored ${typeName(m.type)} from ${hex(m.from)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}: lease is not expired (remaining ticks: ${this.electionTimeout - this.electionElapsed})`,
          );
          return;
        }
      }
      if (m.type === MessageType.MsgPreVote) {
        // Never change term because of a pre-vote.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // A granted pre-vote carries the future term we asked about; the term moves only when we win.
      } else {
        this.logger.info(
          `${hex(this.id)} [term: ${this.term}] received a ${typeName(m.type)} message with higher term from ${hex(m.from)} [term: ${m.term}]`,
        );
        if (m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap) {
          this.becomeFollower(m.term, m.from);
        } else {
          this.becomeFollower(m.term, NONE);
        }
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)) {
        // A stale leader: our higher term in the response makes it step down. Without this, a member
        // whose term rose during a partition (and whose votes are ignored because of leases) would never
        // rejoin.
        this.send(newMessage(MessageType.MsgAppResp, m.from));
      } else if (m.type === MessageType.MsgPreVote) {
        // Answer so that a pre-candidate with a stale term learns ours instead of waiting forever.
        this.logger.info(
          `${hex(this.id)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${hex(this.vote)}] rejected ${typeName(m.type)} from ${hex(m.from)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
        );
        const resp = newMessage(MessageType.MsgPreVoteResp, m.from);
        resp.term = this.term;
        resp.reject = true;
        this.send(resp);
      } else {
        this.logger.info(
          `${hex(this.id)} [term: ${this.term}] ignored a ${typeName(m.type)} message with lower term from ${hex(m.from)} [term: ${m.term}]`,
        );
      }
      return;
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup();
        return;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote:
        this.handleVoteRequest(m);
        return;
      default:
        switch (this.state) {
          case StateType.Leader:
            stepLeader(this, m);
            return;
          case StateType.Candidate:
          case StateType.PreCandidate:
            stepCandidate(this, m);
            return;
          case StateType.Follower:
            stepFollower(this, m);
            return;
        }
    }
  }

  private hup(): void {
    if (this.state === StateType.Leader) {
      this.logger.debug(`${hex(this.id)} ignoring MsgHup because already leader`);
      return;
    }
    if (!this.promotable()) {
      this.logger.warn(`${hex(this.id)} is unpromotable and can not campaign; ignoring MsgHup`);
      return;
    }
    if (this.raftLog.committed > this.raftLog.applied) {
      // A committed but unapplied conf change may change who we are; wait until it is applied.
      // Entries below firstIndex are covered by a snapshot that is applied as a whole.
      const lo = Math.max(this.raftLog.applied + 1, this.raftLog.firstIndex());
      const ents = lo <= this.raftLog.committed ? this.raftLog.slice(lo, this.raftLog.committed + 1, NO_LIMIT) : [];
      const n = numOfPendingConf(ents);
      if (n !== 0) {
        this.logger.warn(
          `${hex(this.id)} cannot campaign at term ${this.term} since there are still ${n} pending configuration changes to apply`,
        );
        return;
      }
    }
    this.logger.info(`${hex(this.id)} is starting a new election at term ${this.term}`);
    this.campaign(this.preVote ? CampaignType.PreElection : CampaignType.Election);
  }

  private handleVoteRequest(m: Message): void {
    // We can vote if this repeats the vote we cast, if we have not voted and know no leader in this
    // term, or if it is a pre-vote for a future term...
    const canVote =
      this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (m.type === MessageType.MsgPreVote && m.term > this.term);
    // ...and the candidate's log is at least as up to date as ours.
    const upToDate = this.raftLog.isUpToDate(m.index, m.logTerm);
    // Learners vote too: a learner may have been promoted without knowing it yet, and the candidate's
    // request is how it finds out.
    if (canVote && upToDate) {
      this.logger.info(
        `${hex(this.id)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${hex(this.vote)}] cast ${typeName(m.type)} for ${hex(m.from)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
      );
      // Respond with the message's term (for pre-votes it is ahead of ours), so the candidate does not
      // discard the answer as stale.
      const resp = newMessage(voteRespMsgType(m.type), m.from);
      resp.term = m.term;
      this.send(resp);
      if (m.type === MessageType.MsgVote) {
        // Only real votes are recorded (and must be durable before the response leaves).
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.logger.info(
        `${hex(this.id)} [logterm: ${this.raftLog.lastTerm()}, index: ${this.raftLog.lastIndex()}, vote: ${hex(this.vote)}] rejected ${typeName(m.type)} from ${hex(m.from)} [logterm: ${m.logTerm}, index: ${m.index}] at term ${this.term}`,
      );
      // A rejection only speeds up the candidate's defeat. At term 0 (possible for a pre-vote when a
      // crash kept log entries but not the hard state) there is no term to put on it: stay silent.
      if (this.term === 0) return;
      const resp = newMessage(voteRespMsgType(m.type), m.from);
      resp.term = this.term;
      resp.reject = true;
      this.send(resp);
    }
  }

  /** Follower side of MsgApp. */
  handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to our commit index already matches: tell the leader where we are.
      const resp = newMessage(MessageType.MsgAppResp, m.from);
      resp.index = this.raftLog.committed;
      this.send(resp);
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      const resp = newMessage(MessageType.MsgAppResp, m.from);
      resp.index = lastNew;
      this.send(resp);
      return;
    }
    // Reject with a hint: the largest (index, term) here that could still match, skipping every entry of
    // ours whose term is above the leader's term at m.index (they cannot match).
    let hintIndex = Math.min(m.index, this.raftLog.lastIndex());
    hintIndex = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    let hintTerm = 0;
    try {
      hintTerm = this.raftLog.term(hintIndex);
    } catch (e) {
      if (!isCompactedOrUnavailable(e)) throw e;
    }
    this.logger.debug(
      `${hex(this.id)} [logterm: ${this.raftLog.zeroTermOnCompacted(m.index)}, index: ${m.index}] rejected MsgApp [logterm: ${m.logTerm}, index: ${m.index}] from ${hex(m.from)}`,
    );
    const resp = newMessage(MessageType.MsgAppResp, m.from);
    resp.index = m.index;
    resp.reject = true;
    resp.rejectHint = hintIndex;
    resp.logTerm = hintTerm;
    this.send(resp);
  }

  handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    const resp = newMessage(MessageType.MsgHeartbeatResp, m.from);
    resp.context = m.context;
    this.send(resp);
  }

  handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap === undefined) {
      this.logger.error(`${hex(this.id)} received MsgSnap without a snapshot from ${hex(m.from)}`);
      return;
    }
    const { index: sindex, term: sterm } = snap.metadata;
    const resp = newMessage(MessageType.MsgAppResp, m.from);
    if (this.restore(snap)) {
      this.logger.info(`${hex(this.id)} [commit: ${this.raftLog.committed}] restored snapshot [index: ${sindex}, term: ${sterm}]`);
      resp.index = this.raftLog.lastIndex();
    } else {
      this.logger.info(`${hex(this.id)} [commit: ${this.raftLog.committed}] ignored snapshot [index: ${sindex}, term: ${sterm}]`);
      resp.index = this.raftLog.committed;
    }
    this.send(resp);
  }

  /**
   * Installs a snapshot as the new log base and configuration. False when it is not newer than our
   * commit index (or merely fast-forwards the commit index because we already have its last entry).
   */
  restore(s: Snapshot): boolean {
    if (s.metadata.index <= this.raftLog.committed) return false;
    if (this.state !== StateType.Follower) {
      // Defense in depth: only followers receive snapshots.
      this.logger.warn(`${hex(this.id)} attempted to restore snapshot as leader; should never happen`);
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    if (this.raftLog.applying > this.raftLog.applied) {
      // Committed entries handed out in a Ready are still being applied; among them may be conf changes,
      // which must not be applied on top of the newer membership the snapshot would install. The leader
      // retries later.
      this.logger.info(
        `${hex(this.id)} deferred snapshot [index: ${s.metadata.index}] while entries up to ${this.raftLog.applying} are being applied`,
      );
      return false;
    }
    const cs = s.metadata.conf_state;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id) && !cs.voters_outgoing.includes(this.id)) {
      this.logger.warn(`${hex(this.id)} attempted to restore snapshot but it is not in the ConfState; should never happen`);
      return false;
    }
    if (this.raftLog.matchTerm(s.metadata.index, s.metadata.term)) {
      this.logger.info(
        `${hex(this.id)} [commit: ${this.raftLog.committed}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}] fast-forwarded commit to snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
      );
      this.raftLog.commitTo(s.metadata.index);
      return false;
    }
    this.raftLog.restore(s);
    this.prs = new ProgressTracker(this.prs.maxInflight);
    const restored = restoreConfState(this.prs, this.raftLog.lastIndex(), cs);
    assertConfStatesEquivalent(cs, this.switchToConfig(restored));
    const pr = this.prs.progress.get(this.id)!;
    pr.maybeUpdate(pr.next - 1);
    this.logger.info(
      `${hex(this.id)} [commit: ${this.raftLog.committed}, lastindex: ${this.raftLog.lastIndex()}, lastterm: ${this.raftLog.lastTerm()}] restored snapshot [index: ${s.metadata.index}, term: ${s.metadata.term}]`,
    );
    return true;
  }

  /** True if this member may campaign: it is a voter of the current configuration. */
  promotable(): boolean {
    const pr = this.prs.progress.get(this.id);
    return pr !== undefined && !pr.isLearner;
  }

  /** Applies a committed membership change and returns the resulting ConfState. */
  applyConfChange(cc: ConfChangeV2): ConfState {
    const changer = new Changer(this.prs, this.raftLog.lastIndex());
    let result: ChangeResult;
    if (confChangeLeaveJoint(cc)) {
      result = changer.leaveJoint();
    } else {
      const joint = confChangeEnterJoint(cc);
      result = joint !== undefined ? changer.enterJoint(joint.autoLeave, cc.changes) : changer.simple(cc.changes);
    }
    return this.switchToConfig(result);
  }

  /** Installs a new configuration and reacts to it (commit with the new quorum, probe new members). */
  switchToConfig(r: ChangeResult): ConfState {
    this.prs.config = r.config;
    this.prs.progress = r.progress;
    this.logger.info(`${hex(this.id)} switched to configuration ${this.prs.config}`);
    const cs = this.prs.confState();
    const pr = this.prs.progress.get(this.id);
    this.isLearner = pr?.isLearner ?? false;
    if ((pr === undefined || this.isLearner) && this.state === StateType.Leader) {
      // Removed (or demoted) while leading. We keep leading until the application stops us, like etcd;
      // proposals are refused meanwhile.
      return cs;
    }
    if (this.state !== StateType.Leader || cs.voters.length === 0) return cs;
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else {
      // Probe new members right away instead of waiting for the next heartbeat or proposal.
      for (const id of this.prs.sortedIds()) if (id !== this.id) this.maybeSendAppend(id, false);
    }
    if (this.leadTransferee !== NONE && !this.prs.progress.has(this.leadTransferee)) this.abortLeaderTransfer();
    return cs;
  }

  /** Loads persisted term, vote and commit on start. */
  loadState(hs: HardState): void {
    if (hs.commit > this.raftLog.lastIndex()) {
      throw new RaftInvariantError(
        `${hex(this.id)} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
      );
    }
    // A commit index below the snapshot means a crash between persisting a received snapshot and the
    // hard state that goes with it; the snapshot itself is committed state, so its index stands.
    if (hs.commit < this.raftLog.committed) {
      this.logger.warn(
        `${hex(this.id)} state.commit ${hs.commit} is below the snapshot index ${this.raftLog.committed}; using the snapshot index`,
      );
    } else {
      this.raftLog.committed = hs.commit;
    }
    this.term = hs.term;
    this.vote = hs.vote;
  }

  pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.rng.intn(this.electionTimeout);
  }

  sendTimeoutNow(to: NodeId): void {
    this.send(newMessage(MessageType.MsgTimeoutNow, to));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  /** True once this leader committed an entry of its own term (its commit index is then up to date). */
  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.zeroTermOnCompacted(this.raftLog.committed) === this.term;
  }

  /** The answer to read request req at readIndex: a ReadState if it is ours, else a message to send. */
  responseToReadIndexReq(req: Message, readIndex: number): Message | undefined {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index: readIndex, request_ctx: req.entries[0].data });
      return undefined;
    }
    const resp = newMessage(MessageType.MsgReadIndexResp, req.from);
    resp.index = readIndex;
    resp.entries = req.entries;
    return resp;
  }

  increaseUncommittedSize(ents: Entry[]): boolean {
    let s = 0;
    for (const e of ents) s += payloadSizeBytes(e);
    // An empty uncommitted tail accepts any one proposal, however large.
    if (this.uncommittedSizeBytes > 0 && s > 0 && this.uncommittedSizeBytes + s > this.maxUncommittedSizeBytes) return false;
    this.uncommittedSizeBytes += s;
    return true;
  }

  reduceUncommittedSize(ents: Entry[]): void {
    if (this.uncommittedSizeBytes === 0) return;
    let s = 0;
    for (const e of ents) s += payloadSizeBytes(e);
    this.uncommittedSizeBytes = s > this.uncommittedSizeBytes ? 0 : this.uncommittedSizeBytes - s;
  }

  /** Sends the heartbeat round for the reads queued since the last one (see sendMsgReadIndexResponse). */
  flushReadRound(): void {
    if (!this.readRoundPending) return;
    this.readRoundPending = false;
    const ctx = this.readOnly.lastPendingRequestCtx();
    if (this.state === StateType.Leader && ctx !== undefined) this.bcastHeartbeatWithCtx(ctx);
  }

  releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0) return;
    if (!this.committedEntryInCurrentTerm()) {
      this.logger.error('pending MsgReadIndex should be released only after first commit in current term');
      return;
    }
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.sendMsgReadIndexResponse(m);
  }

  sendMsgReadIndexResponse(m: Message): void {
    if (this.readOnly.option === ReadOnlyOption.Safe) {
      // Answer after a heartbeat round confirms we are still the leader; we ack our own round. The round
      // goes out when the next Ready is taken (flushReadRound), so it is sent after every request queued
      // until then and one round serves them all.
      this.readOnly.addRequest(this.raftLog.committed, m);
      this.readOnly.recvAck(this.id, m.entries[0].data);
      this.readRoundPending = true;
    } else {
      const resp = this.responseToReadIndexReq(m, this.raftLog.committed);
      if (resp !== undefined) this.send(resp);
    }
  }
}

function stepLeader(r: Raft, m: Message): void {
  // Messages that need no progress of the sender.
  switch (m.type) {
    case MessageType.MsgBeat:
      r.bcastHeartbeat();
      return;
    case MessageType.MsgCheckQuorum: {
      // We are always active ourselves (if still in the config).
      const self = r.prs.progress.get(r.id);
      if (self !== undefined) self.recentActive = true;
      if (!r.prs.quorumActive()) {
        r.logger.warn(`${hex(r.id)} stepped down to follower since quorum is not active`);
        r.becomeFollower(r.term, NONE);
      }
      // Everyone else must prove activity again before the next check.
      for (const [id, pr] of r.prs.progress) if (id !== r.id) pr.recentActive = false;
      return;
    }
    case MessageType.MsgProp:
      leaderPropose(r, m);
      return;
    case MessageType.MsgReadIndex:
      leaderReadIndex(r, m);
      return;
  }

  const pr = r.prs.progress.get(m.from);
  if (pr === undefined) {
    r.logger.debug(`${hex(r.id)} no progress available for ${hex(m.from)}`);
    return;
  }
  switch (m.type) {
    case MessageType.MsgAppResp: {
      pr.recentActive = true;
      if (m.reject) {
        r.logger.debug(
          `${hex(r.id)} received MsgAppResp(rejected, hint: (index ${m.rejectHint}, term ${m.logTerm})) from ${hex(m.from)} for index ${m.index}`,
        );
        // With the follower's (index, term) hint, skip straight past every entry of ours that cannot
        // match: those with a term above the follower's term at that index.
        let nextProbeIdx = m.rejectHint;
        if (m.logTerm > 0) nextProbeIdx = r.raftLog.findConflictByTerm(m.rejectHint, m.logTerm);
        if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
          r.logger.debug(`${hex(r.id)} decreased progress of ${hex(m.from)} to [${pr}]`);
          if (pr.state === ProgressState.Replicate) pr.becomeProbe();
          r.sendAppend(m.from);
        }
        return;
      }
      const oldPaused = pr.isPaused();
      if (!pr.maybeUpdate(m.index)) return;
      if (pr.state === ProgressState.Probe) {
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
        r.logger.debug(`${hex(r.id)} recovered from needing snapshot, resumed sending replication messages to ${hex(m.from)} [${pr}]`);
        // Via probe so that next accounts for the snapshot, then straight to replicating.
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Replicate) {
        pr.inflights.freeLE(m.index);
      }
      if (r.maybeCommit()) {
        // The commit index moved in our term: deferred reads can be answered now.
        r.releasePendingReadIndexMessages();
        r.bcastAppend();
      } else if (oldPaused) {
        // It may lack the latest commit index.
        r.sendAppend(m.from);
      }
      // Send as many appends as the window now allows (no empty ones).
      while (r.maybeSendAppend(m.from, false)) {
        // keep sending
      }
      if (m.from === r.leadTransferee && pr.match === r.raftLog.lastIndex()) {
        r.logger.info(`${hex(r.id)} sent MsgTimeoutNow to ${hex(m.from)} after received MsgAppResp`);
        r.sendTimeoutNow(m.from);
      }
      return;
    }
    case MessageType.MsgHeartbeatResp: {
      pr.recentActive = true;
      pr.probeSent = false;
      // Free one slot of a full window so replication can make progress.
      if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
      if (pr.match < r.raftLog.lastIndex()) r.sendAppend(m.from);
      if (r.readOnly.option !== ReadOnlyOption.Safe || m.context.length === 0) return;
      const acks = r.readOnly.recvAck(m.from, m.context);
      if (acks === undefined || r.prs.config.voters.voteResult(acks) !== VoteResult.Won) return;
      for (const rs of r.readOnly.advance(m.context)) {
        const resp = r.responseToReadIndexReq(rs.req, rs.index);
        if (resp !== undefined) r.send(resp);
      }
      return;
    }
    case MessageType.MsgSnapStatus: {
      if (pr.state !== ProgressState.Snapshot) return;
      if (!m.reject) {
        pr.becomeProbe();
        r.logger.debug(`${hex(r.id)} snapshot succeeded, resumed sending replication messages to ${hex(m.from)} [${pr}]`);
      } else {
        // Forget the snapshot first, or probing would start after it although it was never applied.
        pr.pendingSnapshot = 0;
        pr.becomeProbe();
        r.logger.debug(`${hex(r.id)} snapshot failed, resumed sending replication messages to ${hex(m.from)} [${pr}]`);
      }
      // Wait for the follower's MsgAppResp (or a heartbeat interval after a failure) before the next append.
      pr.probeSent = true;
      return;
    }
    case MessageType.MsgUnreachable:
      // While pipelining, an unreachable follower has most likely lost appends: probe again.
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      r.logger.debug(`${hex(r.id)} failed to send message to ${hex(m.from)} because it is unreachable [${pr}]`);
      return;
    case MessageType.MsgTransferLeader: {
      if (pr.isLearner) {
        r.logger.debug(`${hex(r.id)} is learner. Ignored transferring leadership`);
        return;
      }
      const transferee = m.from;
      const last = r.leadTransferee;
      if (last !== NONE) {
        if (last === transferee) {
          r.logger.info(
            `${hex(r.id)} [term ${r.term}] transfer leadership to ${hex(transferee)} is in progress, ignores request to same node ${hex(transferee)}`,
          );
          return;
        }
        r.abortLeaderTransfer();
        r.logger.info(`${hex(r.id)} [term ${r.term}] abort previous transferring leadership to ${hex(last)}`);
      }
      if (transferee === r.id) {
        r.logger.debug(`${hex(r.id)} is already leader. Ignored transferring leadership to self`);
        return;
      }
      r.logger.info(`${hex(r.id)} [term ${r.term}] starts to transfer leadership to ${hex(transferee)}`);
      // The transfer must finish within one election timeout.
      r.electionElapsed = 0;
      r.leadTransferee = transferee;
      if (pr.match === r.raftLog.lastIndex()) {
        r.sendTimeoutNow(transferee);
        r.logger.info(
          `${hex(r.id)} sends MsgTimeoutNow to ${hex(transferee)} immediately as ${hex(transferee)} already has up-to-date log`,
        );
      } else {
        r.sendAppend(transferee);
      }
      return;
    }
  }
}

function leaderPropose(r: Raft, m: Message): void {
  if (m.entries.length === 0) throw new RaftInvariantError(`${hex(r.id)} stepped empty MsgProp`);
  if (!r.prs.progress.has(r.id)) {
    // Removed from the configuration while leading.
    throw new ProposalDroppedError('raft proposal dropped: leader is not in the configuration');
  }
  if (r.leadTransferee !== NONE) {
    r.logger.debug(`${hex(r.id)} [term ${r.term}] transfer leadership to ${hex(r.leadTransferee)} is in progress; dropping proposal`);
    throw new ProposalDroppedError('raft proposal dropped: leadership transfer in progress');
  }
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i];
    if (e.type !== EntryType.ConfChange && e.type !== EntryType.ConfChangeV2) continue;
    let cc: ConfChangeV2 | undefined;
    try {
      if (e.type === EntryType.ConfChange) {
        const v1 = decodeConfChange(e.data);
        cc = { transition: ConfChangeTransition.Auto, changes: [{ type: v1.type, node_id: v1.node_id }], context: v1.context };
      } else {
        cc = decodeConfChangeV2(e.data);
      }
    } catch (err) {
      if (!(err instanceof RaftDecodeError)) throw err;
      r.logger.error(`${hex(r.id)} dropping undecodable conf change: ${err.message}`);
      cc = undefined;
    }
    let refused = '';
    if (cc === undefined) {
      refused = 'undecodable';
    } else {
      const alreadyPending = r.pendingConfIndex > r.raftLog.applied;
      const alreadyJoint = r.prs.config.voters.isJoint();
      const wantsLeaveJoint = cc.changes.length === 0;
      if (alreadyPending) {
        refused = `possible unapplied conf change at index ${r.pendingConfIndex} (applied to ${r.raftLog.applied})`;
      } else if (alreadyJoint && !wantsLeaveJoint) {
        refused = 'must transition out of joint config first';
      } else if (!alreadyJoint && wantsLeaveJoint) {
        refused = 'not in joint state; refusing empty conf change';
      }
    }
    if (refused !== '') {
      // Keep the slot (the proposer waits on its index) but make it a no-op.
      r.logger.info(`${hex(r.id)} ignoring conf change at config ${r.prs.config}: ${refused}`);
      m.entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: EMPTY_BYTES };
    } else {
      r.pendingConfIndex = r.raftLog.lastIndex() + i + 1;
    }
  }
  if (!r.appendEntry(m.entries)) throw new ProposalDroppedError('raft proposal dropped: uncommitted entries size limit');
  r.bcastAppend();
}

function leaderReadIndex(r: Raft, m: Message): void {
  // Until this leader commits an entry of its term, its commit index may lag what earlier leaders
  // committed; reads wait (in a 1-voter cluster too, where the empty entry commits at once anyway).
  if (!r.committedEntryInCurrentTerm()) {
    if (r.pendingReadIndexMessages.length >= r.maxPendingReadIndex) {
      r.logger.warn(`${hex(r.id)} dropping read index request: ${r.pendingReadIndexMessages.length} already deferred`);
      return;
    }
    r.pendingReadIndexMessages.push(m);
    return;
  }
  if (r.prs.isSingleton()) {
    const resp = r.responseToReadIndexReq(m, r.raftLog.committed);
    if (resp !== undefined) r.send(resp);
    return;
  }
  if (r.readOnly.size >= r.maxPendingReadIndex) {
    r.logger.warn(`${hex(r.id)} dropping read index request: ${r.readOnly.size} already pending`);
    return;
  }
  r.sendMsgReadIndexResponse(m);
}

/** Shared by Candidate and PreCandidate; they differ in which vote responses they count. */
function stepCandidate(r: Raft, m: Message): void {
  // Stale pre-vote responses can arrive after we became a real candidate in the same term: ignore them.
  const myVoteRespType = r.state === StateType.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
  switch (m.type) {
    case MessageType.MsgProp:
      r.logger.info(`${hex(r.id)} no leader at term ${r.term}; dropping proposal`);
      throw new ProposalDroppedError('raft proposal dropped: no leader');
    case MessageType.MsgApp:
      r.becomeFollower(m.term, m.from); // m.term === r.term here
      r.handleAppendEntries(m);
      return;
    case MessageType.MsgHeartbeat:
      r.becomeFollower(m.term, m.from);
      r.handleHeartbeat(m);
      return;
    case MessageType.MsgSnap:
      r.becomeFollower(m.term, m.from);
      r.handleSnapshot(m);
      return;
    case myVoteRespType: {
      const { granted, rejected, result } = r.poll(m.from, m.type, !m.reject);
      r.logger.info(`${hex(r.id)} has received ${granted} ${typeName(m.type)} votes and ${rejected} vote rejections`);
      if (result === VoteResult.Won) {
        if (r.state === StateType.PreCandidate) {
          r.campaign(CampaignType.Election);
        } else {
          r.becomeLeader();
          r.bcastAppend();
        }
      } else if (result === VoteResult.Lost) {
        // A pre-vote response carries our future term: stay at ours.
        r.becomeFollower(r.term, NONE);
      }
      return;
    }
    case MessageType.MsgTimeoutNow:
      r.logger.debug(`${hex(r.id)} [term ${r.term} state ${stateName(r.state)}] ignored MsgTimeoutNow from ${hex(m.from)}`);
      return;
  }
}

function stepFollower(r: Raft, m: Message): void {
  switch (m.type) {
    case MessageType.MsgProp:
      if (r.lead === NONE) {
        r.logger.info(`${hex(r.id)} no leader at term ${r.term}; dropping proposal`);
        throw new ProposalDroppedError('raft proposal dropped: no leader');
      }
      if (r.disableProposalForwarding) {
        r.logger.info(`${hex(r.id)} not forwarding to leader ${hex(r.lead)} at term ${r.term}; dropping proposal`);
        throw new ProposalDroppedError('raft proposal dropped: forwarding disabled');
      }
      forward(r, m);
      return;
    case MessageType.MsgApp:
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleAppendEntries(m);
      return;
    case MessageType.MsgHeartbeat:
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleHeartbeat(m);
      return;
    case MessageType.MsgSnap:
      r.electionElapsed = 0;
      r.lead = m.from;
      r.handleSnapshot(m);
      return;
    case MessageType.MsgTransferLeader:
      if (r.lead === NONE) {
        r.logger.info(`${hex(r.id)} no leader at term ${r.term}; dropping leader transfer msg`);
        return;
      }
      forward(r, m);
      return;
    case MessageType.MsgTimeoutNow:
      if (r.promotable()) {
        r.logger.info(`${hex(r.id)} [term ${r.term}] received MsgTimeoutNow from ${hex(m.from)} and starts an election to get leadership.`);
        // A transfer skips pre-vote: the leader asked for it, there is no partition to recover from.
        r.campaign(CampaignType.Transfer);
      } else {
        r.logger.info(`${hex(r.id)} received MsgTimeoutNow from ${hex(m.from)} but is not promotable`);
      }
      return;
    case MessageType.MsgReadIndex:
      if (r.lead === NONE) {
        r.logger.info(`${hex(r.id)} no leader at term ${r.term}; dropping index reading msg`);
        return;
      }
      if (m.from !== NONE && m.from !== r.id) {
        // Forwarded to us by a member that took us for the leader. Passing it on would make the answer
        // come back to us instead of to the requester; drop it (the requester retries).
        r.logger.debug(`${hex(r.id)} not leader at term ${r.term}; dropping index reading msg from ${hex(m.from)}`);
        return;
      }
      forward(r, m);
      return;
    case MessageType.MsgReadIndexResp:
      if (m.entries.length !== 1) {
        r.logger.error(`${hex(r.id)} invalid format of MsgReadIndexResp from ${hex(m.from)}, entries count: ${m.entries.length}`);
        return;
      }
      r.readStates.push({ index: m.index, request_ctx: m.entries[0].data });
      return;
  }
}

/** Passes a request on to the leader (the term is restamped as for our own messages). */
function forward(r: Raft, m: Message): void {
  m.to = r.lead;
  m.term = 0;
  r.send(m);
}

/** Conf change entries among ents (v1 and v2). */
function numOfPendingConf(ents: Entry[]): number {
  let n = 0;
  for (const e of ents) if (e.type === EntryType.ConfChange || e.type === EntryType.ConfChangeV2) n++;
  return n;
}

function assertConfStatesEquivalent(a: ConfState, b: ConfState): void {
  if (!confStateEquivalent(a, b)) {
    throw new RaftInvariantError(`ConfStates not equivalent after sorting: ${JSON.stringify(a, jsonIds)} vs ${JSON.stringify(b, jsonIds)}`);
  }
}

function jsonIds(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}

function validateConfig(c: Config): void {
  if (c.id === NONE) throw new RaftConfigError('cannot use none as id');
  if (c.id < 0n || c.id >= 1n << 64n) throw new RaftConfigError('id must be a uint64');
  if (!Number.isInteger(c.heartbeatTick) || c.heartbeatTick <= 0) throw new RaftConfigError('heartbeat tick must be greater than 0');
  if (!Number.isInteger(c.electionTick) || c.electionTick <= c.heartbeatTick) {
    throw new RaftConfigError('election tick must be greater than heartbeat tick');
  }
  if (c.storage === undefined || c.storage === null) throw new RaftConfigError('storage cannot be nil');
  if (c.rng === undefined || c.rng === null) throw new RaftConfigError('rng cannot be nil');
  if (c.maxInflightMsgs !== undefined && (!Number.isInteger(c.maxInflightMsgs) || c.maxInflightMsgs <= 0)) {
    throw new RaftConfigError('max inflight messages must be greater than 0');
  }
  for (const [name, v] of [
    ['maxSizePerMsg', c.maxSizePerMsg],
    ['maxCommittedSizePerReady', c.maxCommittedSizePerReady],
    ['maxUncommittedEntriesSize', c.maxUncommittedEntriesSize],
    ['maxPendingReadIndex', c.maxPendingReadIndex],
    ['applied', c.applied],
  ] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new RaftConfigError(`${name} must be a non-negative safe integer`);
  }
}
