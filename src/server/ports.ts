// What the member needs from the world outside the event loop's logic: its durable log, its peers and
// a way to run work later. The member is given these at construction, so a test can hand it an
// in-memory log, an in-process network and a manual scheduler (test/server/ready_loop.test.ts).
import type { HistogramCounts } from '../metrics.js';
import type { PeerObservation } from '../transport/transport.js';
import type { Entry, HardState } from '../raft/index.js';
import type { PeerTls } from '../transport/transport.js';

/** The write-ahead log as the member uses it (src/wal's Wal in production). */
export interface MemberLog {
  /** Makes the hard state and entries durable (entries continue the log or overwrite its tail). */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void>;
  /** Records a snapshot marker: replay after a restart may start there. */
  saveSnapshot(snap: { index: number; term: number }): Promise<void>;
  /** Entries up to `index` are no longer needed for replay. */
  releaseTo(index: number): Promise<void>;
  close(): Promise<void>;
  /** etcd_disk_wal_fsync_duration_seconds (src/wal keeps it; fakes may not). */
  readonly fsyncSeconds?: HistogramCounts;
  /** etcd_disk_wal_write_bytes_total */
  readonly stats?: { bytesWritten: number; appends: number; fsyncs: number };
}

/** The member's peers (src/transport's Transport in production). */
export interface MemberPeers {
  /** Queues an encoded Raft message for a peer; false if it was dropped (unknown peer, queue full). */
  send(to: bigint, payload: Uint8Array): boolean;
  /** Queues a lease frame (a forwarded keep-alive or time-to-live, or its answer) for a peer; false if dropped. */
  sendLease(to: bigint, payload: Uint8Array): boolean;
  /** Queues a hash frame (a corruption check's request or answer) for a peer; false if dropped. Absent: no checks. */
  sendHash?(to: bigint, payload: Uint8Array): boolean;
  /** Streams a snapshot message and its state file to a peer; resolves when the peer has it whole. */
  sendSnapshot(to: bigint, message: Uint8Array, statePath: string, urls: readonly string[]): Promise<void>;
  addPeer(id: bigint, urls: string[]): void;
  removePeer(id: bigint): void;
  /** True while a stream to the peer is up (leader transfer picks a live peer). */
  isActive(id: bigint): boolean;
  /** Since when (Date.now()) the stream to a peer has been up; undefined while down (absent: isActive only). */
  activeSinceMs?(id: bigint): number | undefined;
  /** Queues a membership frame (member_forward.ts) for a peer; false if dropped (absent: not forwarded). */
  sendMember?(to: bigint, payload: Uint8Array): boolean;
  /** New TLS material for peer connections (rotated files); absent where peers are not on sockets. */
  setTls?(t: PeerTls): void;
  /** Per-peer counters for /metrics (src/transport keeps them; fakes may not). */
  peerObservations?(): PeerObservation[];
  stop(): Promise<void>;
}

export { nodeScheduler, type Scheduler } from '../scheduler.js';
