// The member: Raft's Ready loop (persist to the WAL, send, apply, advance), proposals and their
// waiters, linearizable reads by ReadIndex, membership, and the answers the API layer needs.
// Everything here runs on the main thread; disk syncs happen on the WAL's and LMDB's own threads.
import fs from 'node:fs';
import path from 'node:path';
import {
  RawNode, MemoryStorage, canSendBeforePersist, EntryType, MessageType, StateType, ConfChangeType,
  encodeMessage, decodeMessage, encodeConfChange, decodeConfChange,
  SnapshotStatus, type Entry, type HardState, type Message, type Ready, type ConfState, type ConfChange, type Snapshot,
} from '../raft/index.js';
import { Wal, WalSnapshotNotFoundError, lockDataDir, type WalHardState, type WalOptions } from '../wal/index.js';
import { Mvcc } from '../mvcc/index.js';
import { Transport } from '../transport/transport.js';
import { EtcdError, Errors } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { IdGenerator } from './idgen.js';
import { WaitRegistry } from './wait.js';
import { ReadIndexBatcher } from './read_index.js';
import { Membership, parseMemberRecord, encodeMemberRecord } from './membership.js';
import { loadNewestSnap, loadSnaps, removeSnap, saveSnap, type SnapMeta } from './snap_files.js';
import { Applier, type ApplyResult } from './apply.js';
import { bootstrapIds, memberId as memberIdFor } from './ids.js';
import { decodeInternalRequest, type InternalRequestInit, type InternalRequest } from '../proto/internal.js';
import type { Member, ResponseHeaderInit } from '../proto/rpc.js';
import { encodeProposal } from './proposal.js';
import { AlarmStore } from './alarms.js';
import { BackendQuota } from './quota.js';
import { AlarmType, AlarmRequest_AlarmAction } from '../proto/rpc.js';
import type { ServerConfig } from './config.js';
export type { ServerConfig, InitialMember } from './config.js';
import { PeriodicCompactor, RevisionCompactor, type Compactor, type CompactorHost } from './compactor.js';

/** Proposals handed to Raft per Ready unless --proposal-batch-max says otherwise. */
const PROPOSAL_BATCH_MAX_DEFAULT = 4096;
/** Proposals and reads in flight at once; beyond it clients get ErrTooManyRequests. */
const WAITERS_MAX = 200_000;
/** Bytes of proposals queued for the next batch (or for a leader to appear); beyond it: TooManyRequests. */
const PROPOSAL_QUEUE_BYTES_MAX = 256 * 1024 * 1024;
/** etcd refuses proposals when committed − applied exceeds this. */
const MAX_GAP_BETWEEN_APPLY_AND_COMMIT = 5000;
/** Raft flow control, as etcd configures it. */
const MAX_SIZE_PER_MSG = 1024 * 1024;
const MAX_INFLIGHT_MSGS = 4096 / 8;

/** The rng Raft draws election timeouts from; seeded from the member ID and the clock, not shared. */
function makeRng(seed: number): { intn(n: number): number } {
  let s = seed >>> 0 || 0x9e3779b9;
  return {
    intn(n: number): number {
      s ^= s << 13; s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5; s >>>= 0;
      return s % n;
    },
  };
}

/** Where a snapshot's state file waits between being made durable and becoming the backend. */
function stagedSnapshotDb(snapDir: string, index: number): string {
  return path.join(snapDir, `${index.toString(16).padStart(16, '0')}.snap.db`);
}

/**
 * Finishes a snapshot install a crash interrupted: if the newest snapshot's staged state file is still
 * there, it is the backend. Also drops leftovers of snapshot transfers.
 */
function finishSnapshotInstall(snapDir: string, snap: SnapMeta | undefined, log: Logger): void {
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

/**
 * Opens the WAL at the newest snapshot it has a marker for. A snapshot's metadata file is written before
 * its WAL marker, so a crash between the two leaves a file the WAL knows nothing of: that one is skipped
 * and removed (etcd 3.5 likewise loads the newest snapshot among the WAL's snapshot records), and the WAL
 * replays from the previous snapshot, whose entries it still holds (segments are released only after a
 * marker is durable). With no snapshot file at all, the WAL is read from its start.
 */
async function openWalAtSnapshot(walDir: string, snapDir: string, walOpts: WalOptions, log: Logger): Promise<{ snap: SnapMeta | undefined; opened: Awaited<ReturnType<typeof Wal.open>> }> {
  const snaps = loadSnaps(snapDir);
  if (snaps.length === 0) return { snap: undefined, opened: await Wal.open(walDir, { index: 0, term: 0 }, walOpts) };
  let firstError: unknown;
  for (let i = 0; i < snaps.length; i++) {
    const snap = snaps[i];
    try {
      const opened = await Wal.open(walDir, { index: snap.index, term: snap.term }, walOpts);
      for (const orphan of snaps.slice(0, i)) {
        log.warn('removed a snapshot file the WAL has no marker for (a crash between the two)', { 'snapshot-index': orphan.index, 'snapshot-term': orphan.term });
        removeSnap(snapDir, orphan);
      }
      return { snap, opened };
    } catch (err) {
      if (!(err instanceof WalSnapshotNotFoundError)) throw err;
      firstError ??= err;
    }
  }
  throw firstError;
}

function walMetadata(memberId: bigint, clusterId: bigint): Uint8Array {
  return Buffer.from(JSON.stringify({ member_id: memberId.toString(16), cluster_id: clusterId.toString(16) }));
}

function parseWalMetadata(b: Uint8Array): { memberId: bigint; clusterId: bigint } {
  const j = JSON.parse(Buffer.from(b).toString()) as { member_id: string; cluster_id: string };
  return { memberId: BigInt('0x' + j.member_id), clusterId: BigInt('0x' + j.cluster_id) };
}

/**
 * One tetcd member.
 *
 *   const s = await EtcdServer.start(config);
 *   const res = await s.propose({ put: { key, value } });
 *   await s.stop();
 */
export class EtcdServer {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly cfg: ServerConfig;
  readonly log: Logger;
  /** The backend; replaced when a snapshot from the leader is installed. */
  mvcc: Mvcc;
  membership: Membership;
  readonly applier: Applier;
  readonly quota: BackendQuota;

  private readonly node: RawNode;
  private readonly storage: MemoryStorage;
  private readonly wal: Wal;
  private readonly transport: Transport;
  private readonly ids: IdGenerator;
  private readonly waits = new WaitRegistry<ApplyResult>(WAITERS_MAX);
  private readonly reads: ReadIndexBatcher;
  private readonly snapDir: string;

  private term = 0;
  private leaderId = 0n;
  private raftState: StateType = StateType.Follower;
  private committedIndex = 0;
  private appliedIndex = 0;
  private appliedTerm = 0;
  /** Entries at or below this are already in the backend (applied before a restart or carried by a snapshot). */
  private backendIndex: number;
  /** State files received with snapshots from the leader, by snapshot index, until Raft installs one. */
  private readonly receivedSnapshots = new Map<number, string>();
  private snapshotIndex = 0;
  /** Index of the last entry handed to the WAL. */
  private lastSavedIndex = 0;
  private confState: ConfState;
  private readyScheduled = false;
  /** Proposals waiting for the next turn's batch. */
  private proposalData: Uint8Array[] = [];
  private proposalIds: bigint[] = [];
  private proposalBytes = 0;
  private readonly proposalBatchMax: number;
  /** --proposal-batch-max-delay in ms (setTimeout's unit; sub-millisecond values round up to 1). */
  private readonly proposalDelayMs: number;
  private proposalTimer: NodeJS.Timeout | undefined;
  private readonly scheduleReadyBound = (): void => {
    this.proposalTimer = undefined;
    this.scheduleReady();
  };
  private readyRunning = false;
  private snapshotting = false;
  /** The local snapshot in progress (resolved when none): a snapshot from the leader waits for it. */
  private localSnapshot: Promise<void> = Promise.resolve();
  private stopped = false;
  private fatalError: EtcdError | undefined;
  private published = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private tickTimer: NodeJS.Timeout | undefined;
  private readonly requestTimeoutMs: number;

  private constructor(init: {
    cfg: ServerConfig; memberId: bigint; clusterId: bigint; node: RawNode; storage: MemoryStorage; wal: Wal;
    mvcc: Mvcc; membership: Membership; snapDir: string; snap: SnapMeta | undefined; confState: ConfState;
  }) {
    this.cfg = init.cfg;
    this.log = (init.cfg.logger ?? silentLogger).with({ 'local-member-id': init.memberId.toString(16) });
    this.memberId = init.memberId;
    this.clusterId = init.clusterId;
    this.node = init.node;
    this.storage = init.storage;
    this.wal = init.wal;
    this.mvcc = init.mvcc;
    this.membership = init.membership;
    this.snapDir = init.snapDir;
    this.confState = init.confState;
    this.snapshotIndex = init.snap?.index ?? 0;
    this.appliedIndex = init.snap?.index ?? 0;
    this.appliedTerm = init.snap?.term ?? 0;
    this.backendIndex = init.mvcc.consistentIndex().index;
    this.ids = new IdGenerator(init.memberId, Date.now());
    this.requestTimeoutMs = 5000 + 2 * init.cfg.electionMs;
    this.proposalBatchMax = Math.max(1, init.cfg.proposalBatchCountMax ?? PROPOSAL_BATCH_MAX_DEFAULT);
    const delayUs = init.cfg.proposalBatchMaxDelayUs ?? 0;
    this.proposalDelayMs = delayUs > 0 ? Math.max(1, Math.round(delayUs / 1000)) : 0;
    // The backend's size is read from LMDB's stats when a commit lands (reading it per write cost a quarter
    // of the member's CPU under load); the quota counts the writes accepted since at their cost.
    this.quota = new BackendQuota(init.cfg.quotaBackendBytes, init.mvcc.stats.dbSizeBytes);
    this.applier = new Applier(this.mvcc, {
      maxTxnOps: init.cfg.maxTxnOps,
      maxRangeResponseBytes: init.cfg.maxRangeResponseBytes,
    });
    this.reads = new ReadIndexBatcher({
      requestReadIndex: (ctx) => { this.node.readIndex(ctx); this.scheduleReady(); },
      appliedIndex: () => this.appliedIndex,
      retryMs: 500,
      timeoutMs: this.requestTimeoutMs,
      waitersMax: WAITERS_MAX,
    });
    this.transport = new Transport({
      memberId: init.memberId,
      clusterId: init.clusterId,
      listenUrls: init.cfg.listenPeerUrls,
      onMessage: (from, payload) => this.onPeerMessage(from, payload),
      onPeerUnreachable: (id) => { this.node.reportUnreachable(id); },
      logger: this.log,
      snapshotDir: init.snapDir,
      onSnapshot: (from, message, statePath) => this.onSnapshotReceived(from, message, statePath),
    });
  }

  /** Opens (or creates) the member's data dir, replays the WAL and starts Raft, peers and timers. */
  static async start(cfg: ServerConfig): Promise<EtcdServer> {
    const log = cfg.logger ?? silentLogger;
    const memberDir = path.join(cfg.dataDir, 'member');
    const walDir = cfg.walDir ?? path.join(memberDir, 'wal');
    const snapDir = path.join(memberDir, 'snap');
    fs.mkdirSync(snapDir, { recursive: true, mode: 0o700 });
    try {
      lockDataDir(path.join(memberDir, 'lock'));
    } catch (err) {
      throw new Error(`data dir ${cfg.dataDir} is in use by another member: ${(err as Error).message}`);
    }
    const walOpts = {
      segmentBytes: cfg.walSegmentBytes, batchBytesMax: cfg.walBatchBytesMax,
      batchDelayUsMax: cfg.walBatchDelayUsMax, idleSpinUs: cfg.walWriterIdleSpinUs, noFsync: cfg.unsafeNoFsync,
    };
    finishSnapshotInstall(snapDir, loadNewestSnap(snapDir), log);
    const mvcc = await Mvcc.open({ path: path.join(snapDir, 'db') });
    const storage = new MemoryStorage();
    let wal: Wal;
    let memberId: bigint;
    let clusterId: bigint;
    let snap: SnapMeta | undefined;
    let confState: ConfState;
    let hardState: HardState | undefined;
    let bootstrapPeers: Array<{ id: bigint; context: Uint8Array }> | undefined;

    let opened: Awaited<ReturnType<typeof Wal.open>> | undefined;
    if (Wal.exists(walDir)) {
      ({ snap, opened } = await openWalAtSnapshot(walDir, snapDir, walOpts, log));
      if (!snap && !opened.hardState && opened.entries.length === 0) {
        // Created but never got its bootstrap entries persisted (a crash right after creation):
        // nothing was ever acknowledged, so start over as a new member.
        await opened.wal.close();
        fs.rmSync(walDir, { recursive: true, force: true });
        opened = undefined;
      }
    }
    if (opened) {
      wal = opened.wal;
      ({ memberId, clusterId } = parseWalMetadata(opened.metadata));
      confState = { voters: snap?.voters ?? [], learners: snap?.learners ?? [], voters_outgoing: [], learners_next: [], auto_leave: false };
      if (snap) storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: snap.index, term: snap.term, conf_state: confState } });
      if (opened.hardState) {
        hardState = { term: opened.hardState.term, vote: opened.hardState.vote, commit: opened.hardState.commit };
        storage.setHardState(hardState);
      }
      storage.append(opened.entries);
      const ci = mvcc.consistentIndex().index;
      const last = opened.entries.length ? opened.entries[opened.entries.length - 1].index : (snap?.index ?? 0);
      if (ci > last && !snap) {
        throw new Error(`backend applied index ${ci} is ahead of the WAL's last index ${last}: the WAL is missing entries`);
      }
      log.info('restarted member from WAL', { 'wal-entries': opened.entries.length, 'snapshot-index': snap?.index ?? 0, 'applied-index': ci });
    } else {
      if (cfg.initialClusterState !== 'new') {
        throw new Error('--initial-cluster-state=existing needs a data dir of a member that was added (joining is not supported yet)');
      }
      const boot = bootstrapIds(cfg.initialCluster.map((m) => ({ name: m.name, peerUrls: m.peerURLs })), cfg.initialClusterToken);
      const members: Member[] = boot.members.map((m) => ({ ID: m.id, name: '', peerURLs: m.peerUrls, clientURLs: [], isLearner: false }));
      const self = cfg.initialCluster.find((m) => m.name === cfg.name);
      if (!self) throw new Error(`couldn't find local name "${cfg.name}" in the initial cluster configuration`);
      memberId = memberIdFor(self.peerURLs, cfg.initialClusterToken);
      clusterId = boot.clusterId;
      wal = await Wal.create(walDir, walMetadata(memberId, clusterId), walOpts);
      confState = { voters: members.map((m) => m.ID), learners: [], voters_outgoing: [], learners_next: [], auto_leave: false };
      bootstrapPeers = members.map((m) => ({ id: m.ID, context: encodeMemberRecord(m) }));
      log.info('starting a new member', { 'initial-cluster': cfg.initialCluster.map((m) => `${m.name}=${m.peerURLs.join(',')}`).join(',') });
    }

    const membership = Membership.load(mvcc);
    const electionTick = Math.max(1, Math.round(cfg.electionMs / cfg.heartbeatMs));
    const node = new RawNode({
      id: memberId,
      electionTick,
      heartbeatTick: 1,
      storage,
      applied: snap?.index ?? 0,
      maxSizePerMsg: MAX_SIZE_PER_MSG,
      maxCommittedSizePerReady: cfg.applyBatchBytesMax ?? MAX_SIZE_PER_MSG,
      maxInflightMsgs: MAX_INFLIGHT_MSGS,
      checkQuorum: true,
      preVote: cfg.preVote,
      rng: makeRng(Number(memberId & 0xffffffffn) ^ Date.now()),
      logger: log.with({ component: 'raft' }),
    });
    // Bootstrap as etcd does: one committed ConfChange(AddNode) entry per initial member at term 1,
    // persisted and applied through the first Ready like any other entries.
    if (bootstrapPeers) node.bootstrap(bootstrapPeers);
    const server = new EtcdServer({ cfg, memberId, clusterId, node, storage, wal, mvcc, membership, snapDir, snap, confState });
    server.term = hardState?.term ?? 0;
    server.lastSavedIndex = storage.lastIndex();
    await server.transport.listen();
    for (const m of membership.list()) server.transport.addPeer(m.ID, m.peerURLs);
    // A new cluster has no members in the backend until the bootstrap entries apply; dial them now.
    if (membership.size === 0) for (const m of cfg.initialCluster) server.transport.addPeer(memberIdFor(m.peerURLs, cfg.initialClusterToken), m.peerURLs);
    server.startTimers(electionTick);
    server.scheduleReady();
    return server;
  }

  private startTimers(electionTick: number): void {
    const tick = setInterval(() => {
      this.node.tick();
      this.scheduleReady();
    }, this.cfg.heartbeatMs);
    this.tickTimer = tick;
    const sweep = setInterval(() => {
      const now = Date.now();
      this.waits.sweep(now, () => (this.leaderId === 0n ? Errors.TimeoutDueToLeaderFail() : Errors.Timeout()));
      this.reads.tick(now);
      if (!this.published) this.publish();
    }, 100);
    this.timers.push(tick, sweep);
    const compactor = this.makeCompactor();
    if (compactor) this.timers.push(setInterval(() => compactor.tick(Date.now()), compactor.tickIntervalMs));
    // A single-member cluster need not wait a whole election timeout (etcd's initial-election-tick-advance).
    if (this.confState.voters.length === 1 && this.confState.voters[0] === this.memberId) {
      for (let i = 0; i < electionTick - 1; i++) this.node.tick();
    }
  }

  private makeCompactor(): Compactor | undefined {
    const host: CompactorHost = {
      currentRevision: () => this.mvcc.currentRevision,
      isLeader: () => this.isLeader,
      compact: async (revision) => { await this.propose({ compaction: { revision } }); },
      log: this.log,
    };
    const c = this.cfg;
    if (c.autoCompactionMode === 'periodic' && c.autoCompactionRetentionMs > 0) return new PeriodicCompactor(c.autoCompactionRetentionMs, host, Date.now());
    if (c.autoCompactionMode === 'revision' && c.autoCompactionRetentionRevisions > 0) return new RevisionCompactor(c.autoCompactionRetentionRevisions, host);
    return undefined;
  }

  // ---- the Ready loop ----

  private scheduleReady(): void {
    if (this.readyScheduled || this.stopped) return;
    this.readyScheduled = true;
    setImmediate(this.runReady);
  }

  private flushProposals(): void {
    // Without a leader Raft would drop them; like etcd, proposals wait for one (until their timeout).
    if (this.proposalData.length === 0 || this.leaderId === 0n) return;
    if (this.proposalTimer !== undefined) {
      clearTimeout(this.proposalTimer);
      this.proposalTimer = undefined;
    }
    let data = this.proposalData;
    let ids = this.proposalIds;
    if (data.length <= this.proposalBatchMax) {
      this.proposalData = [];
      this.proposalIds = [];
      this.proposalBytes = 0;
    } else {
      // The rest go with the next Ready, which the end of this one starts at once.
      data = this.proposalData.splice(0, this.proposalBatchMax);
      ids = this.proposalIds.splice(0, this.proposalBatchMax);
      for (let i = 0; i < data.length; i++) this.proposalBytes -= data[i].length;
    }
    if (ids.some((id) => !this.waits.has(id))) {
      // Some waited for a leader longer than their timeout; their clients were told so, don't propose them.
      const keep = ids.map((id) => this.waits.has(id));
      data = data.filter((_, i) => keep[i]);
      ids = ids.filter((_, i) => keep[i]);
      if (ids.length === 0) return;
    }
    try {
      this.node.proposeBatch(data);
    } catch {
      const err = this.leaderId === 0n ? Errors.NoLeader() : Errors.LeaderChanged();
      for (const id of ids) this.waits.fail(id, err);
    }
  }

  private readonly runReady = (): void => {
    this.readyScheduled = false;
    if (!this.stopped && !this.fatalError) this.flushProposals();
    if (this.readyRunning || this.stopped || this.fatalError) return;
    if (!this.node.hasReady()) return;
    this.readyRunning = true;
    const rd = this.node.ready();
    this.handleReady(rd).then(
      () => {
        this.readyRunning = false;
        // Go on at once: after a persisted Ready, Raft usually has the commit of those entries ready,
        // and a trip through the event loop would add its latency to every write. The loop cannot
        // spin: new work only arrives through I/O, and a Ready with entries waits for the WAL.
        if (!this.readyScheduled && (this.node.hasReady() || this.proposalData.length > 0)) this.runReady();
      },
      (err: unknown) => {
        this.readyRunning = false;
        this.fail(err);
      },
    );
  };

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.hardState) {
      this.term = rd.hardState.term;
      this.committedIndex = Math.max(this.committedIndex, rd.hardState.commit);
    }
    if (rd.softState) this.onSoftState(rd.softState.lead, rd.softState.raft_state);
    // Persist before anything that depends on it leaves this member (votes, acknowledgements). The
    // leader's appends and heartbeats may go first: Raft counts the leader's own log toward the quorum
    // only after advance(), i.e. once it is durable, so followers can write in parallel with us.
    if (rd.snapshot && rd.snapshot.metadata.index > 0) await this.installSnapshot(rd.snapshot);
    const early: Message[] = [];
    const late: Message[] = [];
    for (const m of rd.messages) (canSendBeforePersist(rd, m) ? early : late).push(m);
    for (const m of early) this.send(m);
    if (rd.entries.length > 0) {
      // The log on disk must stay contiguous: a Ready's entries continue it or overwrite its tail.
      const first = rd.entries[0].index;
      if (first > this.lastSavedIndex + 1) throw new Error(`raft handed entries from ${first} after ${this.lastSavedIndex}: a gap in the log`);
      this.lastSavedIndex = rd.entries[rd.entries.length - 1].index;
    }
    // A Ready that only moves the commit index promises nothing to anyone: a lost commit index is learned
    // again from the leader, and the next Ready with entries persists the current one anyway. Writing it
    // would cost an fdatasync of its own that the next put's entries would queue behind.
    if (rd.mustSync && (rd.hardState || rd.entries.length > 0)) {
      const hs: WalHardState | undefined = rd.hardState ? { term: rd.hardState.term, vote: rd.hardState.vote, commit: rd.hardState.commit } : undefined;
      await this.wal.save(hs, rd.entries);
    }
    if (rd.hardState) this.storage.setHardState(rd.hardState);
    if (rd.entries.length > 0) this.storage.append(rd.entries);
    for (const m of late) this.send(m);
    if (rd.committedEntries.length > 0) this.applyEntries(rd.committedEntries);
    for (const rs of rd.readStates) this.reads.onReadState(rs.request_ctx, rs.index);
    this.node.advance(rd);
    this.reads.onApplied(this.appliedIndex);
    this.maybeSnapshot();
  }

  private send(m: Message): void {
    if (m.to === this.memberId) return;
    if (m.type === MessageType.MsgSnap) {
      this.sendSnapshot(m);
      return;
    }
    this.transport.send(m.to, encodeMessage(m));
  }

  /**
   * Sends a lagging follower the whole backend. The copy's applied index is at least the snapshot's
   * (snapshots are cut only after the backend is durable there); the follower skips what it already holds.
   */
  private sendSnapshot(m: Message): void {
    const peer = this.membership.get(m.to);
    if (!peer || peer.peerURLs.length === 0) {
      this.node.reportSnapshot(m.to, SnapshotStatus.Failure);
      return;
    }
    const tmp = path.join(this.snapDir, `outgoing-${m.to.toString(16)}-${Date.now()}.snap.db`);
    const started = Date.now();
    void (async () => {
      try {
        await this.mvcc.backup(tmp, true);
        await this.transport.sendSnapshot(m.to, encodeMessage(m), tmp, peer.peerURLs);
        this.node.reportSnapshot(m.to, SnapshotStatus.Finish);
        this.log.info('sent database snapshot to peer', { to: m.to.toString(16), 'snapshot-index': m.snapshot?.metadata.index, 'took-ms': Date.now() - started });
      } catch (err) {
        this.log.warn('failed to send database snapshot to peer', { to: m.to.toString(16), error: err });
        this.node.reportSnapshot(m.to, SnapshotStatus.Failure);
      } finally {
        fs.rmSync(tmp, { force: true });
        fs.rmSync(tmp + '-lock', { force: true });
        this.scheduleReady();
      }
    })();
  }

  /** A snapshot's state file arrived whole; hand the MsgSnap to Raft, which may install it in a Ready. */
  private onSnapshotReceived(from: bigint, message: Buffer, statePath: string): void {
    let m: Message;
    try {
      m = decodeMessage(message);
    } catch {
      fs.rmSync(statePath, { force: true });
      return;
    }
    if (m.type !== MessageType.MsgSnap || !m.snapshot || m.from !== from) {
      fs.rmSync(statePath, { force: true });
      return;
    }
    const index = m.snapshot.metadata.index;
    // Keep only the newest received file; older ones can never be installed any more.
    for (const [i, p] of this.receivedSnapshots) {
      if (i <= index) { fs.rmSync(p, { force: true }); this.receivedSnapshots.delete(i); }
    }
    this.receivedSnapshots.set(index, statePath);
    this.onPeerMessage(from, message);
  }

  /**
   * Installs a snapshot from the leader: make it durable in the WAL and snap dir, then swap the backend
   * for the received state file. A crash in between is finished by finishSnapshotInstall at start.
   */
  private async installSnapshot(snap: Snapshot): Promise<void> {
    const { index, term, conf_state: cs } = snap.metadata;
    // A local snapshot still finishing (e.g. the member was paused in the middle of one) would otherwise
    // create and release an older snapshot after this one is installed.
    await this.localSnapshot;
    const received = this.receivedSnapshots.get(index);
    if (!received) throw new Error(`raft installs snapshot ${index} but no state file arrived with it`);
    this.receivedSnapshots.delete(index);
    const staged = stagedSnapshotDb(this.snapDir, index);
    fs.renameSync(received, staged);
    await this.wal.saveSnapshot({ index, term });
    await saveSnap(this.snapDir, { index, term, voters: cs.voters, learners: cs.learners }, 5);
    // From here the snapshot is the member's state; the staged file must become the backend.
    const old = this.mvcc;
    const next = await Mvcc.open({ path: staged });
    this.mvcc = next;
    this.applier.store = next;
    this.applier.alarms = AlarmStore.load(next);
    await old.close();
    const live = path.join(this.snapDir, 'db');
    fs.renameSync(staged, live);
    if (fs.existsSync(staged + '-lock')) fs.renameSync(staged + '-lock', live + '-lock');
    this.storage.applySnapshot(snap);
    this.confState = cs;
    this.appliedIndex = index;
    this.appliedTerm = term;
    this.snapshotIndex = index;
    this.lastSavedIndex = index;
    this.committedIndex = Math.max(this.committedIndex, index);
    this.backendIndex = next.consistentIndex().index;
    this.quota.settled(this.quota.mark(), next.stats.dbSizeBytes);
    const reloaded = Membership.load(next);
    this.membership = reloaded;
    for (const mem of reloaded.list()) this.transport.addPeer(mem.ID, mem.peerURLs);
    this.log.info('applied snapshot from leader', { 'snapshot-index': index, 'backend-index': this.backendIndex });
  }

  private onPeerMessage(from: bigint, payload: Buffer): void {
    // A failed member no longer drains Raft's output: stepping messages would only pile them up.
    if (this.fatalError) return;
    let m: Message;
    try {
      m = decodeMessage(payload);
    } catch (err) {
      this.log.warn('dropped an undecodable peer message', { from: from.toString(16), error: err });
      return;
    }
    if (m.from !== from) {
      this.log.warn('dropped a peer message with a forged sender', { stream: from.toString(16), claimed: m.from.toString(16) });
      return;
    }
    if (this.membership.isRemoved(from)) return;
    try {
      this.node.step(m);
    } catch (err) {
      this.log.debug('raft refused a message', { from: from.toString(16), type: MessageType[m.type], error: err });
    }
    this.scheduleReady();
  }

  private onSoftState(lead: bigint, state: StateType): void {
    if (lead !== this.leaderId) {
      this.log.info(lead === 0n ? 'lost leader' : 'elected leader', { leader: lead.toString(16), term: this.term });
      this.leaderId = lead;
      if (lead !== 0n && this.proposalData.length > 0) this.scheduleReady();
    }
    this.raftState = state;
  }

  // ---- applying ----

  private applyEntries(entries: readonly Entry[]): void {
    for (const e of entries) {
      if (e.index <= this.appliedIndex) continue;
      if (e.index !== this.appliedIndex + 1) throw new Error(`applying entry ${e.index} after ${this.appliedIndex}: gap in the committed log`);
      const toBackend = e.index > this.backendIndex;
      if (e.type === EntryType.Normal) {
        if (toBackend && e.data.length > 0) this.applyNormal(e);
      } else if (e.type === EntryType.ConfChange) {
        this.applyConfChange(e, toBackend);
      } else {
        throw new Error(`unsupported entry type ${e.type} at index ${e.index}`);
      }
      this.appliedIndex = e.index;
      this.appliedTerm = e.term;
    }
    // Backend commits are batched like etcd's (--backend-batch-interval/-limit): the WAL already made
    // these entries durable, and one LMDB transaction (with its own sync) per Ready would double the
    // disk work of every write. Reads see applied data at once from the store's overlay.
    this.entriesSinceBackendCommit += entries.length;
    if (this.entriesSinceBackendCommit >= this.cfg.backendBatchLimit) this.commitBackend();
    else if (!this.backendCommitTimer) this.backendCommitTimer = setTimeout(this.commitBackendBound, this.cfg.backendBatchIntervalMs);
  }

  private applyNormal(e: Entry): void {
    let req: InternalRequest;
    try {
      req = decodeInternalRequest(e.data);
    } catch (err) {
      // Only this member's own proposals and its peers' reach the log; undecodable data is a bug or corruption.
      throw new Error(`entry ${e.index}: undecodable request: ${(err as Error).message}`);
    }
    if (req.member_attr_set) {
      const a = req.member_attr_set;
      this.membership.setAttributes(a.member_ID, a.attributes?.name ?? '', a.attributes?.client_urls ?? [], this.mvcc);
      if (a.member_ID === this.memberId) this.published = true;
      this.waits.trigger(req.ID, { response: {} });
      return;
    }
    const result = this.applier.applyWrite(req);
    this.waits.trigger(req.ID, result);
  }

  private applyConfChange(e: Entry, toBackend: boolean): void {
    const cc: ConfChange = decodeConfChange(e.data);
    this.confState = this.node.applyConfChange(cc);
    this.scheduleReady();
    if (!toBackend) return;
    switch (cc.type) {
      case ConfChangeType.AddNode:
      case ConfChangeType.AddLearnerNode: {
        const m = parseMemberRecord(cc.context);
        this.membership.add({ ...m, isLearner: cc.type === ConfChangeType.AddLearnerNode }, this.mvcc);
        this.transport.addPeer(m.ID, m.peerURLs);
        break;
      }
      case ConfChangeType.RemoveNode:
        this.membership.remove(cc.node_id, this.mvcc);
        this.transport.removePeer(cc.node_id);
        break;
      case ConfChangeType.UpdateNode: {
        const m = parseMemberRecord(cc.context);
        this.membership.updatePeerURLs(m.ID, m.peerURLs, this.mvcc);
        this.transport.addPeer(m.ID, m.peerURLs);
        break;
      }
    }
  }

  /**
   * Commits what was applied to the backend in one LMDB transaction with the applied index; resolves
   * `flushed` once durable. Replaying entries the backend already holds (its applied index can be ahead
   * of the WAL's commit index after a restart) commits nothing.
   */
  private commitBackend(): { flushed: Promise<void> } {
    if (this.backendCommitTimer) clearTimeout(this.backendCommitTimer);
    this.backendCommitTimer = undefined;
    this.entriesSinceBackendCommit = 0;
    if (this.appliedIndex <= this.backendIndex) return { flushed: Promise.resolve() };
    const mark = this.quota.mark();
    const store = this.mvcc;
    const r = store.commit(this.appliedIndex, this.appliedTerm);
    if (this.quota.enabled) r.flushed.then(() => { if (this.mvcc === store) this.quota.settled(mark, store.stats.dbSizeBytes); }, () => {});
    return r;
  }
  private readonly commitBackendBound = () => { this.commitBackend(); };
  private backendCommitTimer: NodeJS.Timeout | undefined;
  private entriesSinceBackendCommit = 0;

  /** Snapshots every snapshotCount applied entries: the backend is made durable, then the log behind it is released. */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.appliedIndex - this.snapshotIndex <= this.cfg.snapshotCount) return;
    this.snapshotting = true;
    const index = this.appliedIndex;
    const term = this.appliedTerm;
    const cs = this.confState;
    const { flushed } = this.commitBackend();
    this.localSnapshot = (async () => {
      await flushed;
      await saveSnap(this.snapDir, { index, term, voters: cs.voters, learners: cs.learners }, 5);
      await this.wal.saveSnapshot({ index, term });
      this.storage.createSnapshot(index, cs, new Uint8Array(0));
      const compactTo = index - this.cfg.snapshotCatchupEntries;
      if (compactTo > this.storage.firstIndex()) this.storage.compact(compactTo);
      await this.wal.releaseTo(index);
      this.snapshotIndex = index;
      this.log.info('saved snapshot', { 'snapshot-index': index });
    })().then(
      () => { this.snapshotting = false; },
      (err: unknown) => { this.snapshotting = false; this.fail(err); },
    );
  }

  // ---- proposals and reads (the API layer calls these) ----

  /**
   * Proposes a request through Raft and resolves with its apply result once this member applied it.
   * Rejects with etcd's errors: too large, no leader, timeout, too many requests, stopped.
   */
  async propose(init: Omit<InternalRequestInit, 'ID'>): Promise<ApplyResult> {
    if (this.fatalError) throw this.fatalError;
    if (this.stopped) throw Errors.Stopped();
    if (this.committedIndex - this.appliedIndex > MAX_GAP_BETWEEN_APPLY_AND_COMMIT) throw Errors.TooManyRequests();
    const id = this.ids.next();
    const data = encodeProposal(id, init);
    if (data.length > this.cfg.maxRequestBytes) throw Errors.RequestTooLarge();
    if (this.proposalBytes + data.length > PROPOSAL_QUEUE_BYTES_MAX) throw Errors.TooManyRequests();
    const done = this.waits.register(id, Date.now() + this.requestTimeoutMs);
    // Proposals of one event-loop turn go to Raft together: one append, one MsgApp per follower.
    this.proposalBytes += data.length;
    this.proposalData.push(data);
    this.proposalIds.push(id);
    if (this.proposalDelayMs === 0 || this.proposalData.length >= this.proposalBatchMax) this.scheduleReady();
    else this.proposalTimer ??= setTimeout(this.scheduleReadyBound, this.proposalDelayMs);
    const result = await done;
    if (result.error) throw result.error;
    return result;
  }

  /** Resolves when a linearizable read may be served locally (ReadIndex). */
  async linearizableRead(): Promise<void> {
    if (this.fatalError) throw this.fatalError;
    if (this.stopped) throw Errors.Stopped();
    await this.reads.wait();
  }

  /**
   * Raises the NOSPACE alarm for this member (after a write was refused by the quota). Fire and forget:
   * the refused client already has its ErrNoSpace; one raise at a time.
   */
  raiseNoSpace(): void {
    if (this.raisingNoSpace || this.applier.alarms.has(AlarmType.NOSPACE)) return;
    this.raisingNoSpace = true;
    this.propose({ alarm: { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: this.memberId, alarm: AlarmType.NOSPACE } }).then(
      () => { this.raisingNoSpace = false; },
      () => { this.raisingNoSpace = false; },
    );
  }
  private raisingNoSpace = false;

  /** Publishes this member's name and client URLs through Raft (etcd does it once after start). */
  private publish(): void {
    if (this.leaderId === 0n || this.publishing) return;
    this.publishing = true;
    this.propose({
      member_attr_set: { member_ID: this.memberId, attributes: { name: this.cfg.name, client_urls: this.cfg.advertiseClientUrls } },
    }).then(
      () => { this.publishing = false; this.published = true; this.log.info('published local member to cluster through raft'); },
      () => { this.publishing = false; },
    );
  }
  private publishing = false;

  // ---- state for responses ----

  /** A response header at the store's current revision (or `revision`). */
  header(revision = this.mvcc.currentRevision): ResponseHeaderInit {
    return { cluster_id: this.clusterId, member_id: this.memberId, revision, raft_term: this.term };
  }

  get leader(): bigint { return this.leaderId; }
  get raftTerm(): number { return this.term; }
  get raftIndex(): number { return this.committedIndex; }
  get raftAppliedIndex(): number { return this.appliedIndex; }
  get isLeader(): boolean { return this.raftState === StateType.Leader; }
  get isLearner(): boolean { return this.membership.get(this.memberId)?.isLearner ?? false; }

  // ---- stopping ----

  /**
   * A leader that stops hands leadership to its most up-to-date voter first (etcd does the same), so the
   * cluster does not wait an election timeout for a new leader. Bounded by one election timeout.
   */
  private async transferLeadershipBeforeStop(): Promise<void> {
    if (!this.isLeader || this.fatalError) return;
    const st = this.node.status();
    let best: bigint | undefined;
    let bestMatch = -1;
    for (const [id, p] of st.progress) {
      if (id === this.memberId || p.isLearner || !this.transport.isActive(id)) continue;
      if (p.match > bestMatch) { best = id; bestMatch = p.match; }
    }
    if (best === undefined) return;
    this.log.info('leader is stopping; transferring leadership', { transferee: best.toString(16) });
    this.node.transferLeader(best);
    this.scheduleReady();
    const deadline = Date.now() + this.cfg.electionMs;
    while (this.isLeader && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  private fail(err: unknown): void {
    if (this.fatalError) return;
    const msg = err instanceof Error ? err.message : String(err);
    this.log.error('member stops serving writes after a fatal error', { error: msg });
    this.fatalError = Errors.Unknown(`etcdserver: ${msg}`);
    // No Ready is handled from here on (runReady checks fatalError), so Raft must not be fed either: ticks
    // and peer messages would queue heartbeats and entries in memory with no one to take them. To the rest
    // of the cluster this member is now down, and it elects a leader without it.
    if (this.tickTimer !== undefined) clearInterval(this.tickTimer);
    this.waits.failAll(this.fatalError);
    this.reads.failAll(this.fatalError);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.transferLeadershipBeforeStop();
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    if (this.proposalTimer !== undefined) clearTimeout(this.proposalTimer);
    this.waits.failAll(Errors.Stopped());
    this.reads.failAll(Errors.Stopped());
    await this.transport.stop();
    // Let a Ready that is being persisted finish before closing the files under it.
    while (this.readyRunning) await new Promise((r) => setTimeout(r, 1));
    await this.commitBackend().flushed;
    await this.wal.close();
    await this.mvcc.close();
  }
}
