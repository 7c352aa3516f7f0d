// Bootstrap: what a member starts from. A new member of a new cluster (IDs from --initial-cluster, one
// ConfChange per initial member), a restart (the newest snapshot the WAL has a marker for, then the WAL's
// entries after it), or joining an existing cluster (--initial-cluster-state existing: IDs from a peer). Opens the data dir, the backend and the WAL; starts nothing.
import fs from 'node:fs';
import path from 'node:path';
import { RawNode, MemoryStorage, type ConfState, type HardState } from '../raft/index.js';
import { Wal, WalSnapshotNotFoundError, lockDataDir, mkdirDurable, syncDir, type WalOptions } from '../wal/index.js';
import { Mvcc } from '../mvcc/index.js';
import type { Member } from '../proto/rpc.js';
import type { Logger } from '../log.js';
import { bootstrapIds, memberId as memberIdFor } from './ids.js';
import { encodeMemberRecord } from './membership.js';
import { loadNewestSnap, loadSnaps, removeSnap, type SnapMeta } from './snap_files.js';
import { finishSnapshotInstall } from './snapshots.js';
import { checkDataDirFormat, checkDataDirWritable, markDataDirFormat } from './data_dir.js';
import { fetchClusterMembers } from '../transport/transport.js';
import type { ServerConfig } from './config.js';

/** How long a joining member waits for each peer's member list. */
const JOIN_FETCH_TIMEOUT_MS = 2000;
/** Raft flow control, as etcd configures it. */
const MAX_SIZE_PER_MSG_BYTES = 1024 * 1024;
const MAX_INFLIGHT_MSGS = 4096 / 8;
/** Bytes of proposals a leader holds uncommitted before it drops more (etcd 3.5 and raftexample: 1 GiB). */
export const UNCOMMITTED_ENTRIES_BYTES_MAX = 1 << 30;

/** A member's identity and the Raft state it resumes from. */
export interface BootState {
  memberId: bigint;
  clusterId: bigint;
  storage: MemoryStorage;
  /** The newest snapshot the member resumes from (undefined: the log from its start). */
  snap: SnapMeta | undefined;
  confState: ConfState;
  hardState: HardState | undefined;
  /** A new cluster's initial members, to bootstrap Raft with (undefined on a restart). */
  bootstrapPeers: Array<{ id: bigint; context: Uint8Array }> | undefined;
  /** Joining an existing cluster: its members as a peer listed them (to dial before the log arrives). */
  joinPeers?: Array<{ id: bigint; peerURLs: string[] }>;
}

/** A member's files, opened. */
export interface OpenedMember extends BootState {
  wal: Wal;
  mvcc: Mvcc;
  snapDir: string;
}

/** The member ID, cluster ID and initial configuration of a new cluster (no disk involved). */
export function newClusterState(cfg: Pick<ServerConfig, 'name' | 'initialCluster' | 'initialClusterToken'>): BootState {
  const boot = bootstrapIds(
    cfg.initialCluster.map((m) => ({ name: m.name, peerUrls: m.peerURLs })),
    cfg.initialClusterToken,
  );
  const members: Member[] = boot.members.map((m) => ({ ID: m.id, name: '', peerURLs: m.peerUrls, clientURLs: [], isLearner: false }));
  const self = cfg.initialCluster.find((m) => m.name === cfg.name);
  if (!self) throw new Error(`couldn't find local name "${cfg.name}" in the initial cluster configuration`);
  return {
    memberId: memberIdFor(self.peerURLs, cfg.initialClusterToken),
    clusterId: boot.clusterId,
    storage: new MemoryStorage(),
    snap: undefined,
    confState: { voters: members.map((m) => m.ID), learners: [], voters_outgoing: [], learners_next: [], auto_leave: false },
    hardState: undefined,
    bootstrapPeers: members.map((m) => ({ id: m.ID, context: encodeMemberRecord(m) })),
  };
}

/**
 * Opens (or creates) the member's data dir: the lock, the backend, the WAL at its newest snapshot, and
 * the Raft storage filled from them.
 */
export async function openMember(cfg: ServerConfig, log: Logger): Promise<OpenedMember> {
  const memberDir = path.join(cfg.dataDir, 'member');
  const walDir = cfg.walDir ?? path.join(memberDir, 'wal');
  const snapDir = path.join(memberDir, 'snap');
  checkDataDirWritable(cfg.dataDir);
  checkDataDirFormat(cfg.dataDir);
  // The data dir's structure must survive a power loss like its files do: without an fsync of the data dir,
  // member/ itself can vanish and the member would come back empty, as a brand-new member (etcd 3.4 too).
  mkdirDurable(snapDir);
  try {
    lockDataDir(path.join(memberDir, 'lock'));
  } catch (err) {
    throw new Error(`data dir ${cfg.dataDir} is in use by another member: ${(err as Error).message}`);
  }
  markDataDirFormat(cfg.dataDir);
  const walOpts: WalOptions = {
    segmentBytes: cfg.walSegmentBytes,
    batchBytesMax: cfg.walBatchBytesMax,
    batchDelayUsMax: cfg.walBatchDelayUsMax,
    idleSpinUs: cfg.walWriterIdleSpinUs,
    noFsync: cfg.unsafeNoFsync,
  };
  finishSnapshotInstall(snapDir, loadNewestSnap(snapDir), log);
  const dbPath = path.join(snapDir, 'db');
  const dbExisted = fs.existsSync(dbPath);
  const mvcc = await Mvcc.open({ path: dbPath });
  // LMDB syncs the file it writes, never the directory that holds it.
  if (!dbExisted) syncDir(snapDir);

  let opened: Awaited<ReturnType<typeof Wal.open>> | undefined;
  let snap: SnapMeta | undefined;
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
  if (opened) return { ...restartState(opened, snap, mvcc, dbPath, log), wal: opened.wal, mvcc, snapDir };
  refuseWithoutWal(cfg, walDir, snapDir, dbPath, mvcc);
  const state = cfg.initialClusterState === 'new' ? newClusterState(cfg) : await joinExistingCluster(cfg, log);
  const wal = await Wal.create(walDir, walMetadata(state.memberId, state.clusterId), walOpts);
  // etcd's message (etcdserver/raft.go startNode) with its fields.
  log.info('starting local member', {
    'local-member-id': state.memberId.toString(16),
    'cluster-id': state.clusterId.toString(16),
    'initial-cluster': cfg.initialCluster.map((m) => `${m.name}=${m.peerURLs.join(',')}`).join(','),
  });
  return { ...state, wal, mvcc, snapDir };
}

/**
 * Joining an existing cluster (a member added with `etcdctl member add`, started with
 * --initial-cluster-state existing and an empty data dir): the cluster's ID and members come from the other
 * members of --initial-cluster (etcd's GetClusterFromRemotePeers); every member given must match one of
 * them by peer URLs (ValidateClusterAndAssignIDs), and this one takes the ID MemberAdd gave it. Raft
 * starts with an empty log and configuration: the leader sends the log, or a snapshot, once it knows us.
 */
async function joinExistingCluster(cfg: ServerConfig, log: Logger): Promise<BootState> {
  const self = cfg.initialCluster.find((m) => m.name === cfg.name);
  if (!self) throw new Error(`couldn't find local name "${cfg.name}" in the initial cluster configuration`);
  const others = cfg.initialCluster.filter((m) => m !== self).flatMap((m) => m.peerURLs);
  if (others.length === 0) throw new Error('cannot join an existing cluster: --initial-cluster lists no other member');
  let info: Awaited<ReturnType<typeof fetchClusterMembers>>;
  try {
    info = await fetchClusterMembers(others, cfg.peerTls ?? {}, JOIN_FETCH_TIMEOUT_MS);
  } catch (err) {
    // etcd's text; what each peer answered goes to the log.
    log.warn('failed to get cluster information from peers', { urls: others, errors: (err as { attempts?: string[] }).attempts });
    throw new Error(`cannot fetch cluster info from peer urls: ${(err as Error).message}`);
  }
  const remote = info.members.map((m) => ({ id: BigInt('0x' + m.id), peerURLs: [...m.peerURLs].sort() }));
  if (remote.length !== cfg.initialCluster.length) throw new Error('error validating peerURLs: member count is unequal');
  let memberId: bigint | undefined;
  for (const local of cfg.initialCluster) {
    const urls = [...local.peerURLs].sort();
    const match = remote.find((r) => r.peerURLs.length === urls.length && r.peerURLs.every((u, i) => u === urls[i]));
    if (match === undefined) {
      throw new Error(`error validating peerURLs: unmatched member while checking PeerURLs (${local.name}=${local.peerURLs.join(',')})`);
    }
    if (local === self) memberId = match.id;
  }
  const clusterId = BigInt('0x' + info.cluster_id);
  log.info('joining an existing cluster', { 'local-member-id': memberId!.toString(16), 'cluster-id': info.cluster_id });
  return {
    memberId: memberId!,
    clusterId,
    storage: new MemoryStorage(),
    snap: undefined,
    confState: { voters: [], learners: [], voters_outgoing: [], learners_next: [], auto_leave: false },
    hardState: undefined,
    bootstrapPeers: undefined,
    joinPeers: remote,
  };
}

/**
 * A member with no WAL starts as a new one. That is right for an empty data dir, never for one whose backend or
 * snapshot files show the member had data: its WAL was lost (deleted, or never made durable), and starting
 * anew would silently drop what it acknowledged and let it vote again in terms it already voted in.
 */
function refuseWithoutWal(cfg: ServerConfig, walDir: string, snapDir: string, dbPath: string, mvcc: Mvcc): void {
  const applied = mvcc.consistentIndex().index;
  const snaps = loadSnaps(snapDir);
  if (applied === 0 && snaps.length === 0) return;
  const evidence =
    applied > 0
      ? `${dbPath} holds entries applied up to index ${applied}`
      : `${snapDir} holds snapshot files (newest at index ${snaps[0]!.index})`;
  throw new Error(
    `data dir ${cfg.dataDir}: ${evidence} but ${walDir} holds no WAL: the member's log is lost; refusing to start it as a new member ` +
      `(remove the member and add it back with an empty data dir, or restore the WAL)`,
  );
}

/** The Raft state of a restart: the snapshot, then the WAL's hard state and entries after it. */
function restartState(
  opened: Awaited<ReturnType<typeof Wal.open>>,
  snap: SnapMeta | undefined,
  mvcc: Mvcc,
  dbPath: string,
  log: Logger,
): BootState {
  const storage = new MemoryStorage();
  const { memberId, clusterId } = parseWalMetadata(opened.metadata);
  const confState: ConfState = {
    voters: snap?.voters ?? [],
    learners: snap?.learners ?? [],
    voters_outgoing: [],
    learners_next: [],
    auto_leave: false,
  };
  if (snap) storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: snap.index, term: snap.term, conf_state: confState } });
  let hardState: HardState | undefined;
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
  // The WAL resumes after the snapshot; the entries up to it exist only in the backend, which must hold them
  // (a snapshot is cut only once the backend is durable past it). A backend behind it lost data: a missing
  // or rolled-back file.
  if (snap && ci < snap.index) {
    throw new Error(
      `${dbPath}: backend applied index ${ci} is behind snapshot index ${snap.index}, where the WAL resumes: ` +
        `entries ${ci + 1}..${snap.index} are lost (the backend file was lost or rolled back); refusing to start`,
    );
  }
  // etcd's message (etcdserver/raft.go restartNode).
  log.info('restarting local member', {
    'local-member-id': memberId.toString(16),
    'cluster-id': clusterId.toString(16),
    'wal-entries': opened.entries.length,
    'snapshot-index': snap?.index ?? 0,
    'commit-index': ci,
  });
  return { memberId, clusterId, storage, snap, confState, hardState, bootstrapPeers: undefined };
}

/** The member's Raft node, configured as etcd configures its own; election timeouts drawn from `rngSeed`. */
export function newRaftNode(
  cfg: Pick<ServerConfig, 'electionMs' | 'heartbeatMs' | 'preVote' | 'applyBatchBytesMax'>,
  boot: BootState,
  log: Logger,
  rngSeed = Number(boot.memberId & 0xffffffffn) ^ Date.now(),
): { node: RawNode; electionTicks: number } {
  const electionTicks = Math.max(1, Math.round(cfg.electionMs / cfg.heartbeatMs));
  const node = new RawNode({
    id: boot.memberId,
    electionTick: electionTicks,
    heartbeatTick: 1,
    storage: boot.storage,
    applied: boot.snap?.index ?? 0,
    maxSizePerMsg: MAX_SIZE_PER_MSG_BYTES,
    maxCommittedSizePerReady: cfg.applyBatchBytesMax ?? MAX_SIZE_PER_MSG_BYTES,
    maxUncommittedEntriesSize: UNCOMMITTED_ENTRIES_BYTES_MAX,
    maxInflightMsgs: MAX_INFLIGHT_MSGS,
    checkQuorum: true,
    preVote: cfg.preVote,
    rng: makeRng(rngSeed),
    logger: log.with({ logger: 'raft' }),
  });
  // Bootstrap as etcd does: one committed ConfChange(AddNode) entry per initial member at term 1,
  // persisted and applied through the first Ready like any other entries.
  if (boot.bootstrapPeers) node.bootstrap(boot.bootstrapPeers);
  return { node, electionTicks };
}

/** The rng Raft draws election timeouts from; seeded from the member ID and the clock, not shared. */
function makeRng(seed: number): { intn(n: number): number } {
  let s = seed >>> 0 || 0x9e3779b9;
  return {
    intn(n: number): number {
      s ^= s << 13;
      s >>>= 0;
      s ^= s >>> 17;
      s ^= s << 5;
      s >>>= 0;
      return s % n;
    },
  };
}

/**
 * Opens the WAL at the newest snapshot it has a marker for. A snapshot's metadata file is written before
 * its WAL marker, so a crash between the two leaves a file the WAL knows nothing of: that one is skipped
 * and removed (etcd 3.5 likewise loads the newest snapshot among the WAL's snapshot records), and the WAL
 * replays from the previous snapshot, whose entries it still holds (segments are released only after a
 * marker is durable). With no snapshot file at all, or none with a marker, the WAL is read from its start.
 */
async function openWalAtSnapshot(
  walDir: string,
  snapDir: string,
  walOpts: WalOptions,
  log: Logger,
): Promise<{ snap: SnapMeta | undefined; opened: Awaited<ReturnType<typeof Wal.open>> }> {
  const snaps = loadSnaps(snapDir);
  if (snaps.length === 0) return { snap: undefined, opened: await Wal.open(walDir, { index: 0, term: 0 }, walOpts) };
  let firstError: unknown;
  for (let i = 0; i < snaps.length; i++) {
    const snap = snaps[i];
    try {
      const opened = await Wal.open(walDir, { index: snap.index, term: snap.term }, walOpts);
      for (const orphan of snaps.slice(0, i)) {
        log.warn('removed a snapshot file the WAL has no marker for (a crash between the two)', {
          'snapshot-index': orphan.index,
          'snapshot-term': orphan.term,
        });
        removeSnap(snapDir, orphan);
      }
      return { snap, opened };
    } catch (err) {
      if (!(err instanceof WalSnapshotNotFoundError)) throw err;
      firstError ??= err;
    }
  }
  // No snapshot file has a marker: the crash came between the first snapshot's file and its marker, so no
  // segment was released yet and the log is whole from its start (a missing start is refused by recovery).
  let opened: Awaited<ReturnType<typeof Wal.open>>;
  try {
    opened = await Wal.open(walDir, { index: 0, term: 0 }, walOpts);
  } catch (err) {
    if (err instanceof WalSnapshotNotFoundError) throw firstError;
    throw err;
  }
  for (const orphan of snaps) {
    log.warn('removed a snapshot file the WAL has no marker for (a crash between the two)', {
      'snapshot-index': orphan.index,
      'snapshot-term': orphan.term,
    });
    removeSnap(snapDir, orphan);
  }
  return { snap: undefined, opened };
}

/** The WAL's metadata record: the member and cluster IDs (read back on every restart). */
export function walMetadata(memberId: bigint, clusterId: bigint): Uint8Array {
  return Buffer.from(JSON.stringify({ member_id: memberId.toString(16), cluster_id: clusterId.toString(16) }));
}

function parseWalMetadata(b: Uint8Array): { memberId: bigint; clusterId: bigint } {
  const j = JSON.parse(Buffer.from(b).toString()) as { member_id: string; cluster_id: string };
  return { memberId: BigInt('0x' + j.member_id), clusterId: BigInt('0x' + j.cluster_id) };
}
