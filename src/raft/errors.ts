// The errors raft reports. Expected outcomes (a dropped proposal, a compacted index) are typed so callers
// can tell them apart; RaftInvariantError means a broken invariant and the member must stop.

/** Base class of every error raft throws. */
export class RaftError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A proposal was not appended (no leader, leader transfer in progress, uncommitted-size limit, ...). */
export class ProposalDroppedError extends RaftError {
  constructor(reason = 'raft proposal dropped') {
    super(reason);
  }
}

/** The requested index is below the first index of the log (compacted into a snapshot). */
export class CompactedError extends RaftError {
  constructor() {
    super('requested index is unavailable due to compaction');
  }
}

/** The snapshot is not newer than the one already held. */
export class SnapOutOfDateError extends RaftError {
  constructor() {
    super('requested index is older than the existing snapshot');
  }
}

/** The requested index is above the last index of the log. */
export class UnavailableError extends RaftError {
  constructor() {
    super('requested entry at index is unavailable');
  }
}

/** Storage cannot produce a snapshot right now; raft retries later. */
export class SnapshotTemporarilyUnavailableError extends RaftError {
  constructor() {
    super('snapshot is temporarily unavailable');
  }
}

/** A local-only message type (MsgHup, MsgBeat, ...) was passed to RawNode.step. */
export class StepLocalMsgError extends RaftError {
  constructor() {
    super('raft: cannot step raft local message');
  }
}

/** A response came from a member that is not in the configuration. */
export class StepPeerNotFoundError extends RaftError {
  constructor() {
    super('raft: cannot step as peer not found');
  }
}

/** Bytes given to the codec are not a valid encoding. Decoding never throws anything else. */
export class RaftDecodeError extends RaftError {}

/** A membership change cannot be applied to the current configuration. */
export class ConfChangeError extends RaftError {}

/** A configuration value is invalid. */
export class RaftConfigError extends RaftError {}

/** An invariant does not hold: a bug or corrupted state. Continuing could lose acknowledged data. */
export class RaftInvariantError extends RaftError {}

/** Throws RaftInvariantError with `message` unless `cond` holds. */
export function invariant(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new RaftInvariantError(typeof message === 'string' ? message : message());
}

/** A message from the network is structurally invalid (wrong recipient, missing parts, non-contiguous entries). */
export class InvalidMessageError extends RaftError {}

/** RawNode was used out of order (e.g. ready() again before advance()). */
export class RawNodeUsageError extends RaftError {}
