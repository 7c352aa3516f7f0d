// Snapshots: made every --snapshot-count applied entries (the backend made durable, then the log behind
// it released), sent to a follower that fell behind the leader's log (a copy of the whole backend),
// received from the leader (the state file arrives before Raft sees the message), and installed
// (durable in the WAL and snap dir, then the backend swapped for the received file).
import { HistogramCounts, DISK_SECONDS_BUCKETS } from '../metrics.js';
import fs from 'node:fs';
import path from 'node:path';
import {
  SnapshotStatus,
  decodeMessage,
  encodeMessage,
  MessageType,
  type ConfState,
  type MemoryStorage,
  type Message,
  type Snapshot,
} from '../raft/index.js';
import type { Logger } from '../log.js';
import { assert } from '../assert.js';
import { saveSnap, type SnapMeta } from './snap_files.js';
import type { MemberBackend } from './backend.js';
import type { MemberLog, MemberPeers } from './ports.js';
import type { Membership } from './membership.js';

/** Where a snapshot's state file waits between being made durable and becoming the backend. */
export function stagedSnapshotDb(snapDir: string, index: number): string {
  return path.join(snapDir, `${index.toString(16).padStart(16, '0')}.snap.db`);
}

/**
 * Finishes a snapshot install a crash interrupted: if the newest snapshot's staged state file is still
 * there, it is the backend. Also drops leftovers of snapshot transfers.
 */
export function finishSnapshotInstall(snapDir: string, snap: SnapMeta | undefined, log: Logger): void {
  if (!fs.existsSync(snapDir)) return;
  if (snap) {
    const staged = stagedSnapshotDb(snapDir, snap.index);
    if (fs.existsSync(staged)) {
      const live = path.join(snapDir, 'db');
      fs.rmSync(live + '-lock', { force: true });
      fs.renameSync(staged, live);
      fs.rmSync(staged + '-lock', { force: true });
      log.info('finished installing a snapshot interrupted by a restart', { 'snapshot-index': snap.index });
    }
  }
  for (const name of fs.readdirSync(snapDir)) {
    if (name.startsWith('incoming-') || name.startsWith('outgoing-') || name.includes('.snap.db')) {
      fs.rmSync(path.join(snapDir, name), { force: true });
    }
  }
}

/** What the snapshot part needs of the member around it. */
export interface SnapshotsDeps {
  snapDir: string;
  log: MemberLog;
  storage: MemoryStorage;
  backend: MemberBackend;
  peers: MemberPeers;
  membership: Membership;
  logger: Logger;
  /** Applied entries between two local snapshots (--snapshot-count). */
  snapshotCount: number;
  /** Entries kept in memory behind a snapshot for slow followers (--snapshot-catchup-entries). */
  catchupEntries: number;
  /** Raft learns how a send went. */
  reportSnapshot(to: bigint, status: SnapshotStatus): void;
  /** Something happened that Raft may have work for. */
  wake(): void;
  /** Where applying stands (the backend holds it once committed). */
  applied(): { index: number; term: number; confState: ConfState };
  /** A local snapshot failed: the member cannot go on. */
  fail(err: unknown): void;
  /** Leader only: the follower's match index as Raft tracks it (undefined when unknown). */
  matchIndex?(id: bigint): number | undefined;
}

/**
 * How long the log is kept for a follower installing a snapshot this member sent it, at most: installing a large
 * backend takes seconds, and a follower that never reports back must not keep the log growing.
 */
const INSTALL_WAIT_MS = 120_000;

/**
 * The member's snapshots.
 *
 *   snaps.maybeMake(applied, term, confState);     // after each Ready
 *   snaps.send(msgSnap);                           // for Raft's MsgSnap
 *   const m = snaps.received(from, bytes, file);   // a transfer finished: step m
 *   await snaps.install(rd.snapshot);              // Raft installs it in a Ready
 */
export class Snapshots {
  /** Index of the newest snapshot. */
  snapshotIndex: number;
  /** State files received with snapshots from the leader, by snapshot index, until Raft installs one. */
  private readonly receivedFiles = new Map<number, string>();
  private making = false;
  /** Snapshots being sent to followers: the log is not compacted meanwhile (etcd's inflightSnapshots). */
  private sending = 0;
  /**
   * Followers installing a snapshot sent to them: the log is kept after its index until their match index
   * passes it (or INSTALL_WAIT_MS goes by), else a busy leader trims it during a slow install and the follower
   * needs the next snapshot, and so on (seen with a 1 GiB backend: 29 snapshots, never caught up).
   */
  private readonly installing = new Map<bigint, { index: number; untilMs: number }>();
  /** The local snapshot in progress (resolved when none): a snapshot from the leader waits for it. */
  private localSnapshot: Promise<void> = Promise.resolve();

  /** etcd_debugging_snap_save_total_duration_seconds: writing (and syncing) a .snap file. */
  readonly saveSeconds = new HistogramCounts(DISK_SECONDS_BUCKETS);

  constructor(
    private readonly d: SnapshotsDeps,
    snapshotIndex: number,
  ) {
    this.snapshotIndex = snapshotIndex;
  }

  /** Snapshots when snapshotCount entries were applied since the last: backend durable, then the log released. */
  maybeMake(appliedIndex: number, appliedTerm: number, cs: ConfState): void {
    if (this.making || appliedIndex - this.snapshotIndex <= this.d.snapshotCount) return;
    this.making = true;
    const index = appliedIndex;
    const term = appliedTerm;
    // etcd's message (etcdserver/server.go triggerSnapshot).
    this.d.logger.info('triggering snapshot', {
      'local-member-applied-index': appliedIndex,
      'local-member-snapshot-index': this.snapshotIndex,
      'local-member-snapshot-count': this.d.snapshotCount,
    });
    const { flushed } = this.d.backend.commit();
    this.localSnapshot = (async () => {
      await flushed;
      const t0 = performance.now();
      await saveSnap(this.d.snapDir, { index, term, voters: cs.voters, learners: cs.learners }, 5);
      this.saveSeconds.observe((performance.now() - t0) / 1000);
      await this.d.log.saveSnapshot({ index, term });
      this.d.storage.createSnapshot(index, cs, new Uint8Array(0));
      // A follower that gets a snapshot needs the entries right after it: while one is on its way the log
      // stays (etcd: "skip compaction since there is an inflight snapshot"), or under load a transfer that
      // takes longer than the log lasts is followed by another, and so on.
      const compactTo = this.keepFor(index - this.d.catchupEntries);
      if (this.sending > 0) this.d.logger.info('skip compaction since there is an inflight snapshot');
      else if (compactTo > this.d.storage.firstIndex()) this.d.storage.compact(compactTo);
      await this.d.log.releaseTo(index);
      this.snapshotIndex = index;
      this.d.logger.info('saved snapshot', { 'snapshot-index': index });
    })().then(
      () => {
        this.making = false;
      },
      (err: unknown) => {
        this.making = false;
        this.d.fail(err);
      },
    );
  }

  /** `compactTo`, lowered to keep the entries after any snapshot a follower is still installing. */
  private keepFor(compactTo: number): number {
    const now = Date.now();
    for (const [id, w] of this.installing) {
      if (w.untilMs <= now || (this.d.matchIndex?.(id) ?? 0) >= w.index) this.installing.delete(id);
      else compactTo = Math.min(compactTo, w.index);
    }
    return compactTo;
  }

  /**
   * Sends a lagging follower the whole backend, as of now: like etcd's createMergedSnapshotMessage, the
   * message says the applied index, term and configuration the backend is committed at, not the last
   * local snapshot's (a member added since that snapshot is not in its configuration, and Raft refuses a
   * snapshot that does not include it). The copy may be further ahead; the follower skips what it holds.
   */
  send(m: Message): void {
    const peer = this.d.membership.get(m.to);
    if (!peer || peer.peerURLs.length === 0 || !m.snapshot) {
      this.d.reportSnapshot(m.to, SnapshotStatus.Failure);
      return;
    }
    const tmp = path.join(this.d.snapDir, `outgoing-${m.to.toString(16)}-${Date.now()}.snap.db`);
    const started = Date.now();
    const at = this.d.applied();
    const { flushed } = this.d.backend.commit();
    const msg: Message = { ...m, snapshot: { ...m.snapshot, metadata: { index: at.index, term: at.term, conf_state: at.confState } } };
    this.sending++;
    void (async () => {
      try {
        await flushed;
        await this.d.backend.store.backup(tmp, true);
        await this.d.peers.sendSnapshot(m.to, encodeMessage(msg), tmp, peer.peerURLs);
        this.d.reportSnapshot(m.to, SnapshotStatus.Finish);
        this.installing.set(m.to, { index: at.index, untilMs: Date.now() + INSTALL_WAIT_MS });
        this.d.logger.info('sent database snapshot to peer', {
          to: m.to.toString(16),
          'snapshot-index': at.index,
          'took-ms': Date.now() - started,
        });
      } catch (err) {
        this.d.logger.warn('failed to send database snapshot to peer', { to: m.to.toString(16), error: err });
        this.d.reportSnapshot(m.to, SnapshotStatus.Failure);
      } finally {
        this.sending--;
        fs.rmSync(tmp, { force: true });
        fs.rmSync(tmp + '-lock', { force: true });
        this.d.wake();
      }
    })();
  }

  /**
   * A snapshot's state file arrived whole. Returns its MsgSnap for Raft to step (Raft may install it in a
   * Ready), or undefined if the transfer is not one (its file is dropped).
   */
  received(from: bigint, message: Uint8Array, statePath: string): Message | undefined {
    let m: Message;
    try {
      m = decodeMessage(message);
    } catch {
      fs.rmSync(statePath, { force: true });
      return undefined;
    }
    if (m.type !== MessageType.MsgSnap || !m.snapshot || m.from !== from) {
      fs.rmSync(statePath, { force: true });
      return undefined;
    }
    const index = m.snapshot.metadata.index;
    // Keep only the newest received file; older ones can never be installed any more.
    for (const [i, p] of this.receivedFiles) {
      if (i <= index) {
        fs.rmSync(p, { force: true });
        this.receivedFiles.delete(i);
      }
    }
    this.receivedFiles.set(index, statePath);
    return m;
  }

  /**
   * Installs a snapshot from the leader: durable in the WAL and snap dir, then the backend swapped for
   * the received state file (MemberBackend.swapBackend). A crash in between is finished by
   * finishSnapshotInstall at start.
   */
  async install(snap: Snapshot): Promise<void> {
    const { index, term, conf_state: cs } = snap.metadata;
    // A local snapshot still finishing (e.g. the member was paused in the middle of one) would otherwise
    // create and release an older snapshot after this one is installed.
    await this.localSnapshot;
    const received = this.receivedFiles.get(index);
    assert(received !== undefined, () => `raft installs snapshot ${index} but no state file arrived with it`);
    this.receivedFiles.delete(index);
    const staged = stagedSnapshotDb(this.d.snapDir, index);
    fs.renameSync(received, staged);
    await this.d.log.saveSnapshot({ index, term });
    await saveSnap(this.d.snapDir, { index, term, voters: cs.voters, learners: cs.learners }, 5);
    // From here the snapshot is the member's state; the staged file must become the backend.
    await this.d.backend.swapBackend(staged, path.join(this.d.snapDir, 'db'));
    this.d.storage.applySnapshot(snap);
    this.snapshotIndex = index;
  }

  /** Drops received files nobody will install. */
  close(): void {
    for (const p of this.receivedFiles.values()) fs.rmSync(p, { force: true });
    this.receivedFiles.clear();
  }
}
