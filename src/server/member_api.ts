// The member as the API layer and the client-process host see it: reads, proposals, the linearizable-read
// barrier, admission against the backend quota, the response header, status, members and apply events.
// Nothing behind it is reachable from outside: no store, no applier, no Raft node.
import type { HistogramCounts } from '../metrics.js';
import type { PeerObservation } from '../transport/transport.js';
import type { InternalRequestInit, RequestHeaderInit } from '../proto/internal.js';
import type {
  RangeRequest,
  RangeResponseInit,
  TxnRequest,
  TxnResponseInit,
  ResponseHeaderInit,
  Member,
  AlarmMember,
} from '../proto/rpc.js';
import type { ApplyResult } from './apply.js';
import type { ApplySubscriber, ApplySubscription } from '../events/apply_events.js';
import type { WatchSink, WatchStream } from '../watch/index.js';
import type { LeaseTtl, LessorStats } from '../lease/index.js';
import type { LeaseGrantRequest, LeaseGrantResponseInit } from '../proto/rpc.js';
import type { MemberAuth } from './member_auth.js';
import type { HashKVResult } from '../mvcc/index.js';
import type { SnapshotFile } from './client_snapshot.js';

/** The request limits etcd checks before a request reaches Raft (from the member's flags). */
export interface MemberLimits {
  /** --max-txn-ops */
  maxTxnOps: number;
  /** --max-request-bytes: the largest proposal. */
  maxRequestBytes: number;
  /** --quota-backend-bytes as configured (0 = etcd's default of 2 GiB). */
  quotaBackendBytes: number;
}

/** A point-in-time view of the member for Status, /metrics and /health. */
export interface MemberStatus {
  leader: bigint;
  isLeader: boolean;
  isLearner: boolean;
  raftTerm: number;
  /** Raft's commit index as this member knows it. */
  raftIndex: number;
  raftAppliedIndex: number;
  revision: number;
  compactRevision: number;
  keys: number;
  dbSizeBytes: number;
  dbSizeInUseBytes: number;
  alarms: AlarmMember[];
  /** Why the member stopped serving writes (a failed WAL or backend write or sync), if it did. */
  fatalError?: string;
}

/** The member's counters and histograms for /metrics, read at scrape time (the hot path bumps them in place). */
export interface MemberObservations {
  leaderChanges: number;
  proposalsPending: number;
  proposalsFailed: number;
  slowApplies: number;
  /** The member stopped after a fatal error (a failed WAL write or fsync, a failed backend commit). */
  failed: boolean;
  walFsyncSeconds: HistogramCounts | undefined;
  walWriteBytes: number;
  backendCommitSeconds: HistogramCounts;
  /** Client snapshots (Maintenance.Snapshot), from the request to the end of the stream. */
  backendSnapshotSeconds: HistogramCounts;
  peers: PeerObservation[];
  heartbeatSendFailures: number;
  compactionMs: HistogramCounts;
  snapSaveSeconds: HistogramCounts;
  readIndexesFailed: number;
  slowReadIndexes: number;
  snapshotApplying: boolean;
  mvcc: { readonly put: number; readonly putBytes: number; readonly delete: number; readonly txn: number; readonly range: number };
  watchers: number;
  /** Watchers behind the store (unsynced). */
  slowWatchers: number;
  /** tetcd's own: the group commit (proposals per Raft append; WAL saves and the fsyncs they shared). */
  proposalBatchSizes: HistogramCounts;
  walSaves: number;
  walFsyncs: number;
  /** etcd_server_learner_promote_successes and _failures{Reason} (promotes this member served). */
  learnerPromotes: { successes: number; failures: ReadonlyMap<string, number> };
  /** tetcd's own: the watch fan-out pool (--worker-threads), if there is one. */
  watchPool: { tasks: number; failedTasks: number; tasksInflight: number; inflightBytes: number } | undefined;
}

/**
 * What the API layer may ask of the member.
 *
 *   await m.linearizableRead();
 *   const res = m.range(req);  res.header = m.header(res.header?.revision);
 */
export interface MemberApi {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly limits: MemberLimits;
  /** A local read of the current state (call linearizableRead() first for a linearizable one). Throws EtcdError. */
  range(req: RangeRequest): RangeResponseInit;
  /** A read-only txn on the current state (the caller checked isTxnReadonly). Throws EtcdError. */
  txnReadOnly(req: TxnRequest): TxnResponseInit;
  /** Proposes a request through Raft; resolves with its apply result. Rejects with etcd's errors. */
  propose(init: Omit<InternalRequestInit, 'ID'>): Promise<ApplyResult>;
  /** Resolves when a read issued now may be served locally (ReadIndex). */
  linearizableRead(): Promise<void>;
  /** Admits a write of `costBytes` against the backend quota, or throws ErrNoSpace (and raises NOSPACE). */
  admit(costBytes: number): void;
  /** A response header at `revision` (default: the current revision). */
  header(revision?: number): ResponseHeaderInit;
  /** The current Raft term (headers without a revision). */
  readonly raftTerm: number;
  status(): MemberStatus;
  /** etcd's HashByRev at `rev` (0 = current). Throws etcd's compacted / future revision errors. */
  hashKV(rev: number): HashKVResult;
  /** etcd's Hash: the whole backend's hash (Mvcc.hash) once physical compaction and a commit are done. */
  hash(): Promise<{ hash: number; revision: number }>;
  /** Rewrites the backend file without its free space, while serving (etcd's Defragment). */
  defragment(): Promise<void>;
  /** The cluster's members, sorted by ID. */
  members(): Member[];
  /** This member's own name and client URLs were applied (etcd serves clients only from then on). */
  readonly publishedSelf: boolean;
  /** This member is a learner: it serves only Status and serializable Range (etcd's learner gate). */
  readonly isLearner: boolean;
  /** MemberAdd (peer URLs normalized and sorted): the new member and the members after it. Rejects with etcd's errors. */
  memberAdd(peerURLs: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }>;
  /** MemberRemove: the members after it. */
  memberRemove(id: bigint): Promise<Member[]>;
  /** MemberUpdate (peer URLs normalized and sorted): the members after it. */
  memberUpdate(id: bigint, peerURLs: string[]): Promise<Member[]>;
  /** MemberPromote: the members after it. */
  memberPromote(id: bigint): Promise<Member[]>;
  /** MoveLeader on the leader: resolves once `target` leads; etcd's errors otherwise (by `deadlineMs` at the latest). */
  moveLeader(target: bigint, deadlineMs: number): Promise<void>;
  /**
   * The state applied now as an etcd bbolt file (Maintenance.Snapshot), written off the event loop; release()
   * it after streaming. Rejects with `etcdserver: too many requests` past the files allowed at once.
   */
  snapshot(signal: AbortSignal): Promise<SnapshotFile>;
  /** True while the member knows a leader and has no alarm (etcd's health precondition). */
  readonly hasLeader: boolean;
  /** Active alarms. */
  alarms(): AlarmMember[];
  /** Registers for apply events (watch, lessor, auth cache). */
  subscribe(sub: ApplySubscriber): ApplySubscription;
  /**
   * Calls `fn` once when the member has had no leader for more than three election timeouts (etcd's
   * monitorLeader), for streams that asked to require one; returns the unregistering function.
   */
  onLeaderLost(fn: () => void): () => void;
  /** Opens a Watch stream whose responses go to `sink`; close() it when the call ends. */
  watch(sink: WatchSink): WatchStream;
  /** Grants a lease through Raft (ID 0: the member picks one). Rejects with etcd's lease errors. */
  leaseGrant(req: LeaseGrantRequest, header?: RequestHeaderInit): Promise<LeaseGrantResponseInit>;
  /**
   * Renews a lease on the leader (a follower forwards): its TTL in seconds, or -1 when it does not exist.
   * Synchronous on the leader in the common case.
   */
  leaseRenew(id: bigint): number | Promise<number>;
  /** The leader's remaining TTL of a lease (a follower asks the leader); undefined when it does not exist. */
  leaseTimeToLive(id: bigint, withKeys: boolean): Promise<LeaseTtl | undefined>;
  /** Every lease this member holds. */
  leaseIdsList(): bigint[];
  /** Lease counters for /metrics. */
  readonly leaseStats: LessorStats;
  /** Counters and histograms for /metrics. */
  observe(): MemberObservations;
  /** Who calls (token or certificate), what they may do, Authenticate (src/auth). */
  readonly auth: MemberAuth;
}
