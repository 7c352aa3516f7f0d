// Shared vocabulary of the quorum rules: vote outcomes and the view of acknowledged indexes.

import type { NodeId } from '../types.js';

/** The outcome of a vote so far. */
export enum VoteResult {
  /** Neither won nor lost yet: missing votes could still decide it. */
  Pending = 1,
  Lost = 2,
  Won = 3,
}

/** The highest index a voter has acknowledged, or undefined if it has not (or is unknown). */
export interface AckedIndexer {
  ackedIndex(id: NodeId): number | undefined;
}

/** An AckedIndexer over a plain map (tests, tools). */
export class MapAckIndexer implements AckedIndexer {
  constructor(private readonly m: Map<NodeId, number>) {}
  ackedIndex(id: NodeId): number | undefined {
    return this.m.get(id);
  }
}

/** What quorum.committedIndex returns for a configuration with no voters: no constraint. */
export const INDEX_UNBOUNDED = Number.POSITIVE_INFINITY;
