// Deliberately broken Raft members for the simulation's self-test (test/raft/sim.test.ts): the checker must
// catch each of these. The faults live here and not in src/raft, so raft's Config holds nothing that breaks
// the protocol: the simulation breaks the one member it built, from the outside, by replacing two methods of
// that member's Raft object. Only the simulation may do this.
import type { Raft } from '../../../src/raft/raft.js';
import type { RawNode } from '../../../src/raft/rawnode.js';
import { type Message, MessageType } from '../../../src/raft/types.js';

/** The protocol violations a simulated member can be given. */
export interface SimFaults {
  /** Grant a vote even after voting for someone else in the same term. */
  voteTwice?: boolean;
  /** Grant votes (and pre-votes) without checking that the candidate's log is up to date. */
  ignoreLogUpToDate?: boolean;
  /** The leader counts its own entries toward the commit quorum as soon as they are appended, before they are
   *  durable (etcd 3.4's behaviour). */
  leaderAckBeforeDurable?: boolean;
}

/** Raft's private vote handler, which the faults wrap. */
interface VoteHandler {
  handleVoteRequest(m: Message): void;
}

/**
 * Gives the member behind `rn` the faults asked for, e.g. right after `new RawNode(config)`:
 *
 *   injectFaults(rn, { voteTwice: true });
 */
export function injectFaults(rn: RawNode, faults: SimFaults): void {
  const raft = (rn as unknown as { raft: Raft | undefined }).raft;
  // A rename inside RawNode or Raft must fail here, not leave a "broken" variant that is silently correct.
  if (raft === undefined) throw new Error('injectFaults: RawNode has no raft field');
  const voter = raft as unknown as VoteHandler;
  if (typeof voter.handleVoteRequest !== 'function') throw new Error('injectFaults: Raft has no handleVoteRequest');

  if (faults.voteTwice || faults.ignoreLogUpToDate) {
    const handleVoteRequest = voter.handleVoteRequest.bind(raft);
    voter.handleVoteRequest = (m: Message): void => {
      // A candidate claiming the longest possible log passes the up-to-date check whatever this member holds.
      const msg = faults.ignoreLogUpToDate ? { ...m, index: Number.MAX_SAFE_INTEGER, logTerm: Number.MAX_SAFE_INTEGER } : m;
      // Pretending the vote of this term already went to this candidate makes the member grant it again.
      if (faults.voteTwice && msg.type === MessageType.MsgVote && raft.raftLog.isUpToDate(msg.index, msg.logTerm)) {
        raft.vote = msg.from;
      }
      handleVoteRequest(msg);
    };
  }

  if (faults.leaderAckBeforeDurable) {
    const appendEntry = raft.appendEntry.bind(raft);
    raft.appendEntry = (es) => {
      if (!appendEntry(es)) return false;
      raft.prs.progress.get(raft.id)?.maybeUpdate(raft.raftLog.lastIndex());
      raft.maybeCommit();
      return true;
    };
  }
}
