// The leader's (and candidate's) bookkeeping about the membership: the active configuration (voters,
// possibly joint, and learners), each member's Progress, and the votes of the current election.

import { Progress, type ProgressMap } from './progress.js';
import { JointConfig } from './quorum/joint.js';
import { MajorityConfig } from './quorum/majority.js';
import { type AckedIndexer, VoteResult } from './quorum/quorum.js';
import { compareIds, type ConfState, type NodeId } from './types.js';

/** A membership configuration. Learners never vote; learnersNext become learners when joint is left. */
export class TrackerConfig {
  constructor(
    readonly voters: JointConfig = new JointConfig(),
    /** Leave the joint configuration automatically once it is applied (set only while joint). */
    public autoLeave = false,
    readonly learners: Set<NodeId> = new Set(),
    /**
     * Voters of the outgoing config that become learners when the joint config is left. A node cannot be
     * a learner and a voter at once, so a demotion is parked here until then.
     */
    readonly learnersNext: Set<NodeId> = new Set(),
  ) {}

  clone(): TrackerConfig {
    return new TrackerConfig(
      new JointConfig(new MajorityConfig(this.voters.incoming.ids), new MajorityConfig(this.voters.outgoing.ids)),
      this.autoLeave,
      new Set(this.learners),
      new Set(this.learnersNext),
    );
  }

  toString(): string {
    let s = `voters=${this.voters}`;
    if (this.learners.size > 0) s += ` learners=${new MajorityConfig(this.learners)}`;
    if (this.learnersNext.size > 0) s += ` learners_next=${new MajorityConfig(this.learnersNext)}`;
    if (this.autoLeave) s += ' autoleave';
    return s;
  }
}

/** Configuration, progress and votes. */
export class ProgressTracker implements AckedIndexer {
  config: TrackerConfig = new TrackerConfig();
  votes: Map<NodeId, boolean> = new Map();
  private progressMap: ProgressMap = new Map();
  /** Member IDs sorted, cached until the progress map is replaced (broadcasts use it on every send). */
  private sortedCache: NodeId[] | undefined;

  constructor(readonly maxInflight: number) {}

  /** The configuration as a ConfState (sorted members). */
  confState(): ConfState {
    const sorted = (s: Iterable<NodeId>) => [...s].sort(compareIds);
    return {
      voters: this.config.voters.incoming.slice(),
      voters_outgoing: this.config.voters.outgoing.slice(),
      learners: sorted(this.config.learners),
      learners_next: sorted(this.config.learnersNext),
      auto_leave: this.config.autoLeave,
    };
  }

  /** True when the only voter is a single member and the config is not joint. */
  isSingleton(): boolean {
    return this.config.voters.incoming.size === 1 && this.config.voters.outgoing.size === 0;
  }

  ackedIndex(id: NodeId): number | undefined {
    return this.progress.get(id)?.match;
  }

  /** The highest index durable on a quorum of voters (by their Match). */
  committed(): number {
    return this.config.voters.committedIndex(this);
  }

  /** Progress of every member. Replace the map as a whole (never add or delete members in place). */
  get progress(): ProgressMap {
    return this.progressMap;
  }

  set progress(m: ProgressMap) {
    this.progressMap = m;
    this.sortedCache = undefined;
  }

  /** Member IDs in ascending order (deterministic iteration for message order). Do not modify. */
  sortedIds(): NodeId[] {
    if (this.sortedCache === undefined || this.sortedCache.length !== this.progressMap.size) {
      this.sortedCache = [...this.progressMap.keys()].sort(compareIds);
    }
    return this.sortedCache;
  }

  /** True if a quorum of voters was recently active (CheckQuorum). */
  quorumActive(): boolean {
    const votes = new Map<NodeId, boolean>();
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      votes.set(id, pr.recentActive);
    }
    return this.config.voters.voteResult(votes) === VoteResult.Won;
  }

  /** Voter IDs (both halves) ascending. */
  voterNodes(): NodeId[] {
    return [...this.config.voters.ids()].sort(compareIds);
  }

  /** Learner IDs ascending. */
  learnerNodes(): NodeId[] {
    return [...this.config.learners].sort(compareIds);
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records id's vote (only its first vote of the election counts). */
  recordVote(id: NodeId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  /** Votes granted and rejected by voters so far, and the election's outcome. */
  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      const v = this.votes.get(id);
      if (v === undefined) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: this.config.voters.voteResult(this.votes) };
  }

  /** A fresh Progress for a member that joins now. */
  newProgress(next: number, isLearner: boolean): Progress {
    return new Progress(next, this.maxInflight, isLearner);
  }
}
