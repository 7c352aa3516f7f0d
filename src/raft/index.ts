// The raft package's public surface: what a member needs to run Raft (RawNode, its Config, Storage and
// MemoryStorage, the data types, the codec and the errors). Everything else in src/raft is internal.

export { RawNode, canSendBeforePersist } from './rawnode.js';
export type { Ready, Peer, Status, BasicStatus, ProgressStatus } from './rawnode.js';
export type { Config } from './raft.js';
export { stateName, DEFAULT_MAX_SIZE_PER_MSG } from './raft.js';
export { MemoryStorage } from './storage.js';
export type { Storage } from './storage.js';
export { ProgressState, progressStateName } from './progress.js';
export { SeededRng } from './rand.js';
export {
  NONE,
  EntryType,
  MessageType,
  ConfChangeType,
  ConfChangeTransition,
  StateType,
  ReadOnlyOption,
  SnapshotStatus,
  EMPTY_BYTES,
  silentLogger,
  newMessage,
  emptyConfState,
  emptySnapshot,
  emptyHardState,
  isEmptyHardState,
  isEmptySnap,
  confChangeAsV2,
  cloneConfState,
  compareIds,
} from './types.js';
export type {
  NodeId,
  Entry,
  HardState,
  ConfState,
  SnapshotMetadata,
  Snapshot,
  Message,
  ConfChange,
  ConfChangeSingle,
  ConfChangeV2,
  ReadState,
  SoftState,
  Rng,
  RaftLogger,
} from './types.js';
export {
  CODEC_VERSION,
  DEFAULT_MAX_DECODE_BYTES,
  encodeMessage,
  decodeMessage,
  encodeEntry,
  decodeEntry,
  encodeHardState,
  decodeHardState,
  encodeConfState,
  decodeConfState,
  encodeConfChange,
  decodeConfChange,
  encodeConfChangeV2,
  decodeConfChangeV2,
  encodeSnapshotMetadata,
  decodeSnapshotMetadata,
  encodeSnapshot,
  decodeSnapshot,
} from './codec.js';
export type { DecodeOptions } from './codec.js';
export {
  RaftError,
  ProposalDroppedError,
  CompactedError,
  SnapOutOfDateError,
  UnavailableError,
  SnapshotTemporarilyUnavailableError,
  StepLocalMsgError,
  StepPeerNotFoundError,
  RaftDecodeError,
  ConfChangeError,
  RaftConfigError,
  RaftInvariantError,
  InvalidMessageError,
  RawNodeUsageError,
} from './errors.js';
export { describeMessage, describeEntry, describeReady, describeHardState, describeConfState } from './describe.js';
