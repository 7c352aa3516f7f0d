// What the member needs from the world outside the event loop's logic: its durable log, its peers and
// a way to run work later. The member is given these at construction, so a test can hand it an
// in-memory log, an in-process network and a manual scheduler (test/server/ready_loop.test.ts).
import type { Entry, HardState } from '../raft/index.js';

/** The write-ahead log as the member uses it (src/wal's Wal in production). */
export interface MemberLog {
  /** Makes the hard state and entries durable (entries continue the log or overwrite its tail). */
  save(hardState: HardState | undefined, entries: readonly Entry[]): Promise<void>;
  /** Records a snapshot marker: replay after a restart may start there. */
  saveSnapshot(snap: { index: number; term: number }): Promise<void>;
  /** Entries up to `index` are no longer needed for replay. */
  releaseTo(index: number): Promise<void>;
  close(): Promise<void>;
}

/** The member's peers (src/transport's Transport in production). */
export interface MemberPeers {
  /** Queues an encoded Raft message for a peer; false if it was dropped (unknown peer, queue full). */
  send(to: bigint, payload: Uint8Array): boolean;
  /** Streams a snapshot message and its state file to a peer; resolves when the peer has it whole. */
  sendSnapshot(to: bigint, message: Uint8Array, statePath: string, urls: readonly string[]): Promise<void>;
  addPeer(id: bigint, urls: string[]): void;
  removePeer(id: bigint): void;
  /** True while a stream to the peer is up (leader transfer picks a live peer). */
  isActive(id: bigint): boolean;
  stop(): Promise<void>;
}

/** Deferred work: Node's timers in production, a manual queue in deterministic tests. */
export interface Scheduler {
  /** Runs fn after the current turn's I/O (setImmediate). */
  immediate(fn: () => void): void;
  /** Runs fn once after ms; the handle cancels it. */
  timeout(fn: () => void, ms: number): unknown;
  /** Runs fn every ms; the handle cancels it. */
  interval(fn: () => void, ms: number): unknown;
  cancel(handle: unknown): void;
  /** Milliseconds since the epoch. */
  now(): number;
}

/** Node's timers. */
export const nodeScheduler: Scheduler = {
  immediate: (fn) => { setImmediate(fn); },
  timeout: (fn, ms) => setTimeout(fn, ms),
  interval: (fn, ms) => setInterval(fn, ms),
  cancel: (h) => { clearTimeout(h as NodeJS.Timeout); },
  now: () => Date.now(),
};
