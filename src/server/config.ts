// What a member is told at start: etcd's flags that concern it, mapped by the CLI (src/cli/main.ts).
import type { Logger } from '../log.js';
import type { PeerTls } from '../transport/transport.js';

export interface InitialMember {
  name: string;
  peerURLs: string[];
}

/** What the member needs to know; the CLI maps etcd's flags onto it. */
export interface ServerConfig {
  name: string;
  dataDir: string;
  walDir?: string;
  initialCluster: InitialMember[];
  initialClusterToken: string;
  initialClusterState: 'new' | 'existing';
  listenPeerUrls: string[];
  advertiseClientUrls: string[];
  heartbeatMs: number;
  electionMs: number;
  snapshotCount: number;
  /** Entries kept in memory behind a snapshot (etcd: 5000). */
  snapshotCatchupEntries: number;
  /** Idle progress-notify watchers hear from the member this often (--experimental-watch-progress-notify-interval). */
  watchProgressNotifyIntervalMs?: number;
  /** Longest time applied entries wait for a backend commit (etcd --backend-batch-interval, 100 ms). */
  backendBatchIntervalMs: number;
  /** Most applied entries per backend commit (etcd --backend-batch-limit, 10000). */
  backendBatchLimit: number;
  maxRequestBytes: number;
  maxTxnOps: number;
  maxRangeResponseBytes: number;
  quotaBackendBytes: number;
  /** --quota-auto-disarm: this member's NOSPACE alarm clears itself once the backend is back under 90% of the quota. */
  quotaAutoDisarm?: boolean;
  preVote: boolean;
  /** --strict-reconfig-check: refuse membership changes that could lose the quorum (etcd: true). */
  strictReconfigCheck?: boolean;
  /** --experimental-max-learners: learners the membership may hold at once (etcd: 1). */
  maxLearners?: number;
  /** --learner-auto-promote: the leader promotes a learner once it is in sync. */
  learnerAutoPromote?: boolean;
  /** Auto-compaction: off when the retention is 0. */
  autoCompactionMode: 'periodic' | 'revision';
  autoCompactionRetentionMs: number;
  autoCompactionRetentionRevisions: number;
  /** --wal-segment-bytes. */
  walSegmentBytes?: number;
  /** --wal-batch-max-bytes: most bytes one WAL write + fdatasync covers. */
  walBatchBytesMax?: number;
  /** --wal-batch-max-delay in microseconds. */
  walBatchDelayUsMax?: number;
  /** --wal-writer-idle-spin in microseconds. */
  walWriterIdleSpinUs?: number;
  /** Most proposals handed to Raft per Ready (--proposal-batch-max); the rest wait for the next. */
  proposalBatchCountMax?: number;
  /** Bytes of committed entries applied per Ready (--apply-batch-max-bytes; Raft's MaxCommittedSizePerReady). */
  applyBatchBytesMax?: number;
  /** Threads of the member's Piscina pool (--worker-threads; 0 or unset = none, everything inline). */
  workerThreads?: number;
  /** Matched watchers of one applied entry from which its watch responses are built on the pool (--watch-pool-min-watchers). */
  watchPoolWatchersMin?: number;
  unsafeNoFsync: boolean;
  /** Lease checkpoints through Raft (tetcd: on unless --lease-checkpoint=false). */
  leaseCheckpoint?: boolean;
  /** How often the leader checkpoints a long lease's remaining TTL (--lease-checkpoint-interval; etcd: 5 min). */
  leaseCheckpointIntervalMs?: number;
  /** --auth-token: 'simple' (default), 'jwt,pub-key=…,priv-key=…,sign-method=…,ttl=…', or '' (no tokens). */
  authToken?: string;
  /** --auth-token-ttl: seconds a simple token lives unused (etcd: 300). */
  authTokenTtlSec?: number;
  /** --bcrypt-cost (etcd: 10). */
  bcryptCost?: number;
  /** --client-cert-auth: a verified client certificate's CN is the user of a call without a token. */
  clientCertAuth?: boolean;
  /** --experimental-initial-corrupt-check: compare HashKV with the peers before serving clients. */
  initialCorruptCheck?: boolean;
  /** --experimental-corrupt-check-time: the leader compares the members' HashKV this often (0: never). */
  corruptCheckTimeMs?: number;
  logger?: Logger;
  /** TLS for https:// peer URLs (listener and dialer); required when a peer URL is https. */
  peerTls?: PeerTls;
}
