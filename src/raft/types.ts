// Raft's data: log entries, messages, hard/soft state, membership (ConfState, ConfChange) and snapshots.
// Shapes and numbering follow etcd's raftpb; member IDs are bigint (uint64), terms and indexes safe integers.

/** A member ID (uint64). 0 means "nobody". */
export type NodeId = bigint;

/** The placeholder ID used when there is no leader / no vote. */
export const NONE: NodeId = 0n;

/** What an entry's data holds. */
export enum EntryType {
  Normal = 0,
  ConfChange = 1,
  ConfChangeV2 = 2,
}

/** One log entry. Entries are immutable once created: the log, Ready and messages share them. */
export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  data: Uint8Array;
}

/** The state that must be durable before any message that depends on it is sent. */
export interface HardState {
  term: number;
  vote: NodeId;
  commit: number;
}

/** A membership: voters of the incoming (and, while joint, outgoing) majority, and learners. */
export interface ConfState {
  voters: NodeId[];
  learners: NodeId[];
  /** Voters of the outgoing majority while in a joint configuration. */
  voters_outgoing: NodeId[];
  /** Voters being demoted to learners; they become learners when the joint config is left. */
  learners_next: NodeId[];
  /** Leave the joint configuration automatically once it is applied. */
  auto_leave: boolean;
}

/** Where a snapshot sits in the log and the membership at that point. */
export interface SnapshotMetadata {
  conf_state: ConfState;
  index: number;
  term: number;
}

/** A snapshot: opaque application bytes plus metadata. The transport may stream `data` separately. */
export interface Snapshot {
  data: Uint8Array;
  metadata: SnapshotMetadata;
}

/** Message types, numbered as in etcd's raftpb. */
export enum MessageType {
  MsgHup = 0,
  MsgBeat = 1,
  MsgProp = 2,
  MsgApp = 3,
  MsgAppResp = 4,
  MsgVote = 5,
  MsgVoteResp = 6,
  MsgSnap = 7,
  MsgHeartbeat = 8,
  MsgHeartbeatResp = 9,
  MsgUnreachable = 10,
  MsgSnapStatus = 11,
  MsgCheckQuorum = 12,
  MsgTransferLeader = 13,
  MsgTimeoutNow = 14,
  MsgReadIndex = 15,
  MsgReadIndexResp = 16,
  MsgPreVote = 17,
  MsgPreVoteResp = 18,
}

/**
 * One Raft message. Every field is always present (one object shape for the engine); unused fields are
 * zero/empty. `logTerm` on a rejected MsgAppResp carries the follower's term at `rejectHint`.
 */
export interface Message {
  type: MessageType;
  to: NodeId;
  from: NodeId;
  term: number;
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot: Snapshot | undefined;
  reject: boolean;
  rejectHint: number;
  context: Uint8Array;
}

/** Kinds of single membership change. */
export enum ConfChangeType {
  AddNode = 0,
  RemoveNode = 1,
  UpdateNode = 2,
  AddLearnerNode = 3,
}

/** How a ConfChangeV2 moves through joint consensus. */
export enum ConfChangeTransition {
  /** Simple change if possible (one voter changes), else joint with automatic leave. */
  Auto = 0,
  /** Always joint, left automatically. */
  JointImplicit = 1,
  /** Always joint, left by an explicit empty ConfChangeV2. */
  JointExplicit = 2,
}

/** A v1 membership change: one node. `id` is the caller's request ID (etcd waits on it); raft ignores it. */
export interface ConfChange {
  type: ConfChangeType;
  node_id: NodeId;
  context: Uint8Array;
  id?: bigint;
}

/** One change inside a ConfChangeV2. */
export interface ConfChangeSingle {
  type: ConfChangeType;
  node_id: NodeId;
}

/** A v2 membership change: several changes at once, through a joint configuration when needed. */
export interface ConfChangeV2 {
  transition: ConfChangeTransition;
  changes: ConfChangeSingle[];
  context: Uint8Array;
}

/** The answer to a ReadIndex request: reads for `request_ctx` may be served once applied ≥ `index`. */
export interface ReadState {
  index: number;
  request_ctx: Uint8Array;
}

/** A member's role. Numbered as in etcd. */
export enum StateType {
  Follower = 0,
  Candidate = 1,
  Leader = 2,
  PreCandidate = 3,
}

/** Volatile state, reported in Ready when it changes; need not be persisted. */
export interface SoftState {
  lead: NodeId;
  raft_state: StateType;
}

/** How ReadIndex requests are confirmed. */
export enum ReadOnlyOption {
  /** A heartbeat round to a quorum confirms leadership (linearizable without clock assumptions). */
  Safe = 0,
  /** The leader answers from its lease (needs CheckQuorum and bounded clock drift). */
  LeaseBased = 1,
}

/** The outcome of sending a snapshot, reported by the caller through RawNode.reportSnapshot. */
export enum SnapshotStatus {
  Finish = 1,
  Failure = 2,
}

/** A source of randomness for election timeouts. Pass a seeded one for reproducible runs. */
export interface Rng {
  /** An integer in [0, n). */
  intn(n: number): number;
}

/** Where raft writes what it is doing. All methods may ignore their input; the default is silent. */
export interface RaftLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** A logger that drops everything. */
export const silentLogger: RaftLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};

/** A shared empty byte array; never written to. */
export const EMPTY_BYTES: Uint8Array = new Uint8Array(0);

/** A message of `type` to `to` with every other field zero/empty. */
export function newMessage(type: MessageType, to: NodeId = NONE): Message {
  return {
    type,
    to,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    snapshot: undefined,
    reject: false,
    rejectHint: 0,
    context: EMPTY_BYTES,
  };
}

/** An empty ConfState. */
export function emptyConfState(): ConfState {
  return { voters: [], learners: [], voters_outgoing: [], learners_next: [], auto_leave: false };
}

/** An empty snapshot (index 0). */
export function emptySnapshot(): Snapshot {
  return { data: EMPTY_BYTES, metadata: { conf_state: emptyConfState(), index: 0, term: 0 } };
}

/** The all-zero hard state. */
export function emptyHardState(): HardState {
  return { term: 0, vote: NONE, commit: 0 };
}

/** True for the all-zero hard state. */
export function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NONE && hs.commit === 0;
}

/** True when two hard states are equal. */
export function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** True for a snapshot at index 0 (no snapshot). */
export function isEmptySnap(s: Snapshot | undefined): boolean {
  return s === undefined || s.metadata.index === 0;
}

/** Messages raft generates for itself; they are never valid from the network. */
export function isLocalMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  );
}

/** Responses, which only make sense from a member the receiver tracks. */
export function isResponseMsg(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgVoteResp ||
    t === MessageType.MsgHeartbeatResp ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgPreVoteResp
  );
}

/** The response type to a (pre-)vote request. */
export function voteRespMsgType(t: MessageType): MessageType {
  if (t === MessageType.MsgVote) return MessageType.MsgVoteResp;
  if (t === MessageType.MsgPreVote) return MessageType.MsgPreVoteResp;
  throw new Error(`not a vote message: ${MessageType[t]}`);
}

/** Bytes an entry is charged against size limits (payload plus a fixed header estimate). */
export function entrySizeBytes(e: Entry): number {
  return e.data.length + ENTRY_OVERHEAD_BYTES;
}

/** Per-entry overhead charged by entrySizeBytes: term, index and type as they travel. */
const ENTRY_OVERHEAD_BYTES = 16;

/** Bytes of an entry's payload, charged against the uncommitted-size limit. */
export function payloadSizeBytes(e: Entry): number {
  return e.data.length;
}

/**
 * The longest prefix of `ents` whose total entrySizeBytes stays within maxSizeBytes; always at least one
 * entry when ents is non-empty (so progress is possible with any limit).
 */
export function limitSize(ents: Entry[], maxSizeBytes: number): Entry[] {
  if (ents.length === 0) return ents;
  let size = entrySizeBytes(ents[0]);
  let limit = 1;
  for (; limit < ents.length; limit++) {
    size += entrySizeBytes(ents[limit]);
    if (size > maxSizeBytes) break;
  }
  return limit === ents.length ? ents : ents.slice(0, limit);
}

/** A v1 change seen as v2 (one change, automatic transition). */
export function confChangeAsV2(cc: ConfChange | ConfChangeV2): ConfChangeV2 {
  if ('changes' in cc) return cc;
  return {
    transition: ConfChangeTransition.Auto,
    changes: [{ type: cc.type, node_id: cc.node_id }],
    context: cc.context,
  };
}

/** True when cc is a ConfChangeV2. */
export function isConfChangeV2(cc: ConfChange | ConfChangeV2): cc is ConfChangeV2 {
  return 'changes' in cc;
}

/**
 * Whether cc must go through a joint configuration, and if so whether it is left automatically.
 * Returns undefined for a simple change.
 */
export function confChangeEnterJoint(cc: ConfChangeV2): { autoLeave: boolean } | undefined {
  if (cc.transition === ConfChangeTransition.Auto && cc.changes.length <= 1) return undefined;
  switch (cc.transition) {
    case ConfChangeTransition.Auto:
    case ConfChangeTransition.JointImplicit:
      return { autoLeave: true };
    case ConfChangeTransition.JointExplicit:
      return { autoLeave: false };
    default:
      throw new Error(`unknown conf change transition ${String(cc.transition)}`);
  }
}

/** True for the empty ConfChangeV2, which means "leave the joint configuration". */
export function confChangeLeaveJoint(cc: ConfChangeV2): boolean {
  return cc.transition === ConfChangeTransition.Auto && cc.changes.length === 0;
}

/** Orders bigints ascending (for sort). */
export function compareIds(a: NodeId, b: NodeId): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A copy of a ConfState with sorted members. */
export function cloneConfState(cs: ConfState): ConfState {
  return {
    voters: [...cs.voters].sort(compareIds),
    learners: [...cs.learners].sort(compareIds),
    voters_outgoing: [...cs.voters_outgoing].sort(compareIds),
    learners_next: [...cs.learners_next].sort(compareIds),
    auto_leave: cs.auto_leave,
  };
}

/** True when two ConfStates describe the same membership (order of members is ignored). */
export function confStateEquivalent(a: ConfState, b: ConfState): boolean {
  const same = (x: NodeId[], y: NodeId[]) => {
    if (x.length !== y.length) return false;
    const xs = [...x].sort(compareIds);
    const ys = [...y].sort(compareIds);
    return xs.every((v, i) => v === ys[i]);
  };
  return (
    same(a.voters, b.voters) &&
    same(a.learners, b.learners) &&
    same(a.voters_outgoing, b.voters_outgoing) &&
    same(a.learners_next, b.learners_next) &&
    a.auto_leave === b.auto_leave
  );
}
