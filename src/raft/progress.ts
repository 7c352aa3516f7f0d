// A leader's view of one follower's log: how much matches (match), what to send next (next), and the
// replication mode (probe / replicate / snapshot) that decides how many appends may be in flight.

import { Inflights } from './inflights.js';
import type { NodeId } from './types.js';

/** How the leader replicates to one follower. */
export enum ProgressState {
  /** One append at a time until the follower's match is found (after a rejection or on election). */
  Probe = 0,
  /** Pipelined appends, bounded by the inflights window. */
  Replicate = 1,
  /** A snapshot was sent; appends are paused until it is applied or reported failed. */
  Snapshot = 2,
}

const stateNames = ['StateProbe', 'StateReplicate', 'StateSnapshot'];

/** Replication progress of one member, as tracked by the leader. */
export class Progress {
  /** Highest index known to be durable on the member. */
  match = 0;
  /** Index of the next entry to send. */
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** Snapshot index being sent while in Snapshot state. */
  pendingSnapshot = 0;
  /** Heard from since the last CheckQuorum round. New members start active. */
  recentActive = false;
  /** In Probe state: an append is outstanding, wait for its answer (or a heartbeat) before the next. */
  probeSent = false;
  inflights: Inflights;
  isLearner: boolean;

  constructor(next: number, maxInflightMsgs: number, isLearner: boolean) {
    this.next = next;
    this.inflights = new Inflights(maxInflightMsgs);
    this.isLearner = isLearner;
  }

  /** A copy with its own inflights window. */
  clone(): Progress {
    const p = new Progress(this.next, this.inflights.size, this.isLearner);
    p.match = this.match;
    p.state = this.state;
    p.pendingSnapshot = this.pendingSnapshot;
    p.recentActive = this.recentActive;
    p.probeSent = this.probeSent;
    p.inflights = this.inflights.clone();
    return p;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  /** Back to probing from match (or from the snapshot that is being installed). */
  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      const pendingSnapshot = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pendingSnapshot + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  /** Start pipelining after match. */
  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  /** A snapshot at snapshotIndex is on its way. */
  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** The member acknowledged index n. Returns true if match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  /** Appends up to n were sent (pipelining). */
  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /**
   * The member rejected an append whose previous entry was `rejected`; matchHint is the highest index
   * that may still match (from the member's hint). Returns false when the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      // A rejection at or below match is a reordered old message.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In Probe state only the answer to the outstanding probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), 1);
    this.probeSent = false;
    return true;
  }

  /** True when no append may be sent now. */
  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      case ProgressState.Snapshot:
        return true;
    }
  }

  toString(): string {
    let s = `${stateNames[this.state]} match=${this.match} next=${this.next}`;
    if (this.isLearner) s += ' learner';
    if (this.isPaused()) s += ' paused';
    if (this.pendingSnapshot > 0) s += ` pendingSnap=${this.pendingSnapshot}`;
    if (!this.recentActive) s += ' inactive';
    const n = this.inflights.countInflight();
    if (n > 0) {
      s += ` inflight=${n}`;
      if (this.inflights.full()) s += '[full]';
    }
    return s;
  }
}

/** The name etcd prints for a progress state. */
export function progressStateName(s: ProgressState): string {
  return stateNames[s];
}

/** Progress of every member, by ID. */
export type ProgressMap = Map<NodeId, Progress>;
