// The Ready loop: hands the turn's proposals to Raft, then drains Raft's Ready in etcd's order (install
// a snapshot; send what may go before persisting; persist entries and hard state; send the rest; apply
// the committed entries; release ReadIndex reads; advance). One Ready at a time; the next starts at once
// when Raft has more, else on the next turn something (a message, a tick, a proposal) wakes it.
import {
  canSendBeforePersist,
  encodeMessage,
  MessageType,
  StateType,
  type MemoryStorage,
  type Message,
  type RawNode,
  type Ready,
  type Snapshot,
} from '../raft/index.js';
import type { Logger } from '../log.js';
import { assert } from '../assert.js';
import type { MemberLog, MemberPeers, Scheduler } from './ports.js';
import type { Proposals } from './proposals.js';
import type { EntryApplier } from './apply_entries.js';
import type { ReadIndexBatcher } from './read_index.js';

export interface ReadyLoopDeps {
  memberId: bigint;
  node: RawNode;
  storage: MemoryStorage;
  log: MemberLog;
  peers: Pick<MemberPeers, 'send'>;
  sched: Scheduler;
  proposals: Proposals;
  applying: EntryApplier;
  reads: ReadIndexBatcher;
  logger: Logger;
  /** Installs a snapshot Raft handed out (durable, backend swapped, applying moved past it). */
  installSnapshot(snap: Snapshot): Promise<void>;
  /** Sends a MsgSnap (the snapshot part streams the backend). */
  sendSnapshot(m: Message): void;
  /** After each Ready: e.g. a local snapshot is due. */
  afterReady(): void;
  /** A Ready failed: the member cannot go on. */
  fail(err: unknown): void;
  /** This member became leader (true) or stopped being it (false); before the Ready's entries apply. */
  onLeadershipChange?(isLeader: boolean): void;
  /** The applied index moved to `index` (after a Ready's committed entries). */
  onApplied?(index: number): void;
}

/**
 * Drives Raft.
 *
 *   const loop = new ReadyLoop(deps, { term, lastSavedIndex });
 *   loop.schedule();   // whenever Raft may have work: a tick, a peer message, a proposal
 */
export class ReadyLoop {
  term: number;
  leaderId = 0n;
  raftState: StateType = StateType.Follower;
  committedIndex = 0;
  /** etcd_server_leader_changes_seen_total: a leader became known (none → one, or one → another). */
  leaderChanges = 0;
  /** etcd_server_heartbeat_send_failures_total: heartbeats the transport dropped (peer down, queue full). */
  heartbeatSendFailures = 0;
  /** Index of the last entry handed to the WAL. */
  lastSavedIndex: number;
  private scheduled = false;
  private running = false;
  private halted = false;
  private readonly runBound = (): void => this.run();

  constructor(
    private readonly d: ReadyLoopDeps,
    init: { term: number; lastSavedIndex: number },
  ) {
    this.term = init.term;
    this.lastSavedIndex = init.lastSavedIndex;
  }

  /** A Ready is being handled (its WAL write or snapshot install may be in flight). */
  get busy(): boolean {
    return this.running;
  }

  get isLeader(): boolean {
    return this.raftState === StateType.Leader;
  }

  /** Runs the loop on the next turn (once, however often it is asked). */
  schedule(): void {
    if (this.scheduled || this.halted) return;
    this.scheduled = true;
    this.d.sched.immediate(this.runBound);
  }

  /** No Ready is handled from now on (stop, or a fatal error); one in flight finishes. */
  halt(): void {
    this.halted = true;
  }

  private run(): void {
    this.scheduled = false;
    if (this.halted) return;
    this.d.proposals.flushTo(this.d.node, this.leaderId);
    if (this.running || !this.d.node.hasReady()) return;
    this.running = true;
    const rd = this.d.node.ready();
    this.handle(rd).then(
      () => {
        this.running = false;
        // Go on at once: after a persisted Ready, Raft usually has the commit of those entries ready,
        // and a trip through the event loop would add its latency to every write. The loop cannot
        // spin: new work only arrives through I/O, and a Ready with entries waits for the WAL.
        if (!this.scheduled && (this.d.node.hasReady() || this.d.proposals.queued > 0)) this.run();
      },
      (err: unknown) => {
        this.running = false;
        this.d.fail(err);
      },
    );
  }

  private async handle(rd: Ready): Promise<void> {
    const d = this.d;
    if (rd.hardState) {
      this.term = rd.hardState.term;
      this.committedIndex = Math.max(this.committedIndex, rd.hardState.commit);
    }
    if (rd.softState) this.onSoftState(rd.softState.lead, rd.softState.raft_state);
    // Persist before anything that depends on it leaves this member (votes, acknowledgements). The
    // leader's appends and heartbeats may go first: Raft counts the leader's own log toward the quorum
    // only after advance(), i.e. once it is durable, so followers can write in parallel with us.
    if (rd.snapshot && rd.snapshot.metadata.index > 0) {
      await d.installSnapshot(rd.snapshot);
      const index = rd.snapshot.metadata.index;
      this.lastSavedIndex = index;
      this.committedIndex = Math.max(this.committedIndex, index);
    }
    const early: Message[] = [];
    const late: Message[] = [];
    for (const m of rd.messages) (canSendBeforePersist(rd, m) ? early : late).push(m);
    for (const m of early) this.send(m);
    if (rd.entries.length > 0) {
      // The log on disk must stay contiguous: a Ready's entries continue it or overwrite its tail.
      const first = rd.entries[0].index;
      assert(first <= this.lastSavedIndex + 1, () => `raft handed entries from ${first} after ${this.lastSavedIndex}: a gap in the log`);
      this.lastSavedIndex = rd.entries[rd.entries.length - 1].index;
    }
    // A Ready that only moves the commit index promises nothing to anyone: a lost commit index is learned
    // again from the leader, and the next Ready with entries persists the current one anyway. Writing it
    // would cost an fdatasync of its own that the next put's entries would queue behind.
    if (rd.mustSync && (rd.hardState || rd.entries.length > 0)) await d.log.save(rd.hardState, rd.entries);
    if (rd.hardState) d.storage.setHardState(rd.hardState);
    if (rd.entries.length > 0) d.storage.append(rd.entries);
    for (const m of late) this.send(m);
    if (rd.committedEntries.length > 0) {
      const last = rd.committedEntries[rd.committedEntries.length - 1].index;
      assert(last <= d.storage.lastIndex(), () => `entry ${last} is committed but not in the log`);
      d.applying.apply(rd.committedEntries);
    }
    for (const rs of rd.readStates) d.reads.onReadState(rs.request_ctx, rs.index);
    d.node.advance(rd);
    d.reads.onApplied(d.applying.appliedIndex);
    d.onApplied?.(d.applying.appliedIndex);
    d.afterReady();
  }

  private send(m: Message): void {
    if (m.to === this.d.memberId) return;
    if (m.type === MessageType.MsgSnap) {
      this.d.sendSnapshot(m);
      return;
    }
    if (!this.d.peers.send(m.to, encodeMessage(m)) && m.type === MessageType.MsgHeartbeat) this.heartbeatSendFailures++;
  }

  private onSoftState(lead: bigint, state: StateType): void {
    if (lead !== this.leaderId) {
      // etcd's raft.node messages (raft/node.go), which runbooks grep for.
      const me = this.d.memberId.toString(16);
      if (lead === 0n) this.d.logger.info(`raft.node: ${me} lost leader ${this.leaderId.toString(16)} at term ${this.term}`);
      else if (this.leaderId === 0n) this.d.logger.info(`raft.node: ${me} elected leader ${lead.toString(16)} at term ${this.term}`);
      else
        this.d.logger.info(
          `raft.node: ${me} changed leader from ${this.leaderId.toString(16)} to ${lead.toString(16)} at term ${this.term}`,
        );
      if (lead !== 0n) this.leaderChanges++;
      this.leaderId = lead;
      if (lead !== 0n && this.d.proposals.queued > 0) this.schedule();
    }
    const wasLeader = this.raftState === StateType.Leader;
    this.raftState = state;
    const isLeader = state === StateType.Leader;
    if (wasLeader !== isLeader) this.d.onLeadershipChange?.(isLeader);
  }
}
