// The joint-consensus rule: two majority configs (incoming and outgoing) that must both agree. Outside a
// joint configuration the outgoing half is empty and the rule reduces to the incoming majority.

import type { NodeId } from '../types.js';
import { MajorityConfig } from './majority.js';
import { type AckedIndexer, VoteResult } from './quorum.js';

/** [incoming, outgoing] voter sets; outgoing is empty unless the configuration is joint. */
export class JointConfig {
  constructor(
    readonly incoming: MajorityConfig = new MajorityConfig(),
    readonly outgoing: MajorityConfig = new MajorityConfig(),
  ) {}

  /** True while both halves are in force. */
  isJoint(): boolean {
    return this.outgoing.size > 0;
  }

  /** Every voter of either half. */
  ids(): Set<NodeId> {
    const s = new Set(this.incoming.ids);
    for (const id of this.outgoing.ids) s.add(id);
    return s;
  }

  has(id: NodeId): boolean {
    return this.incoming.has(id) || this.outgoing.has(id);
  }

  toString(): string {
    return this.outgoing.size > 0 ? `${this.incoming}&&${this.outgoing}` : this.incoming.toString();
  }

  /** The highest index committed under both halves: the smaller of their majorities' indexes. */
  committedIndex(l: AckedIndexer): number {
    const a = this.incoming.committedIndex(l);
    const b = this.outgoing.committedIndex(l);
    return Math.min(a, b);
  }

  /** Won only if both halves won; lost if either lost; else pending. */
  voteResult(votes: Map<NodeId, boolean>): VoteResult {
    const r1 = this.incoming.voteResult(votes);
    const r2 = this.outgoing.voteResult(votes);
    if (r1 === r2) return r1;
    if (r1 === VoteResult.Lost || r2 === VoteResult.Lost) return VoteResult.Lost;
    return VoteResult.Pending;
  }
}
