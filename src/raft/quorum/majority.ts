// The majority rule: the commit index a simple majority has reached, and whether a vote is won, lost or
// pending. One voter set; joint.ts combines two.

import { compareIds, type NodeId } from '../types.js';
import { type AckedIndexer, INDEX_UNBOUNDED, VoteResult } from './quorum.js';

/** A set of voters deciding by simple majority. */
export class MajorityConfig {
  readonly ids: Set<NodeId>;

  constructor(ids: Iterable<NodeId> = []) {
    this.ids = new Set(ids);
  }

  get size(): number {
    return this.ids.size;
  }

  has(id: NodeId): boolean {
    return this.ids.has(id);
  }

  /** Voters in ascending order. */
  slice(): NodeId[] {
    return [...this.ids].sort(compareIds);
  }

  /** "(1 2 3)". */
  toString(): string {
    return `(${this.slice().join(' ')})`;
  }

  /**
   * The highest index acknowledged by a majority (missing acks count as 0). With no voters there is no
   * constraint: INDEX_UNBOUNDED, so that a joint config with an empty half uses the other half.
   */
  committedIndex(l: AckedIndexer): number {
    const n = this.ids.size;
    if (n === 0) return INDEX_UNBOUNDED;
    const srt = new Array<number>(n);
    let i = 0;
    for (const id of this.ids) srt[i++] = l.ackedIndex(id) ?? 0;
    // Small n (3-7 in practice): insertion sort, ascending.
    for (let a = 1; a < n; a++) {
      const v = srt[a];
      let b = a - 1;
      for (; b >= 0 && srt[b] > v; b--) srt[b + 1] = srt[b];
      srt[b + 1] = v;
    }
    // The value at n - quorum is held by at least a quorum (everything at or above it).
    return srt[n - (Math.floor(n / 2) + 1)];
  }

  /** The result of a vote given the votes cast so far. An empty config wins every vote. */
  voteResult(votes: Map<NodeId, boolean>): VoteResult {
    if (this.ids.size === 0) return VoteResult.Won;
    let yes = 0;
    let missing = 0;
    for (const id of this.ids) {
      const v = votes.get(id);
      if (v === undefined) missing++;
      else if (v) yes++;
    }
    const q = Math.floor(this.ids.size / 2) + 1;
    if (yes >= q) return VoteResult.Won;
    if (yes + missing >= q) return VoteResult.Pending;
    return VoteResult.Lost;
  }
}
