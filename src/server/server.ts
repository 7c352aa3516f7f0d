// The member's composition root: opens what bootstrap found, wires the Ready loop, proposals, applying,
// the backend, snapshots, ReadIndex and membership together, starts the timers, and answers the API
// layer through MemberApi. Each part owns its state in a file of its own; none of them imports this one.
import path from 'node:path';
import { ETCD_CLUSTER_VERSION } from '../config/version.js';
import { REMOVED_MEMBER_TEXT, Transport, type PeerTls } from '../transport/transport.js';
import {
  decodeMessage,
  MessageType,
  RaftInvariantError,
  type Message,
  type RawNode,
  type MemoryStorage,
  type Snapshot,
  type ConfChange,
} from '../raft/index.js';
import { backendCommitSeconds, type HashKVResult, type Mvcc } from '../mvcc/index.js';
import { CorruptionChecker, corruptAlarm } from './corrupt.js';
import { type EtcdError, Errors } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import type { InternalRequestInit, RequestHeaderInit } from '../proto/internal.js';
import {
  AlarmType,
  AlarmRequest_AlarmAction,
  type Member,
  type AlarmMember,
  type RangeRequest,
  type RangeResponseInit,
  type TxnRequest,
  type TxnResponseInit,
  type ResponseHeaderInit,
} from '../proto/rpc.js';
import { ReadIndexBatcher } from './read_index.js';
import { LEARNERS_MAX, Membership } from './membership.js';
import { MemberChanges } from './member_changes.js';
import { MemberForward } from './member_forward.js';
import { Applier, type ApplyResult } from './apply.js';
import { BackendQuota } from './quota.js';
import { PeriodicCompactor, RevisionCompactor, type Compactor, type CompactorHost } from './compactor.js';
import { ApplyEventHub, type ApplySubscriber, type ApplySubscription } from '../events/apply_events.js';
import { MemberBackend } from './backend.js';
import { ClientSnapshots, type SnapshotFile } from './client_snapshot.js';
import { Snapshots } from './snapshots.js';
import { Proposals, WAITERS_MAX, PROPOSAL_BATCH_COUNT_MAX_DEFAULT } from './proposals.js';
import { EntryApplier } from './apply_entries.js';
import { ReadyLoop } from './ready_loop.js';
import { openMember, newRaftNode, type BootState } from './bootstrap.js';
import { memberId as memberIdFor } from './ids.js';
import { nodeScheduler, type MemberLog, type MemberPeers, type Scheduler } from './ports.js';
import type { MemberApi, MemberLimits, MemberObservations, MemberStatus } from './member_api.js';
import {
  WatchFanout,
  WatchHub,
  WatchStream,
  WATCH_FANOUT_DEFAULTS,
  WATCH_HUB_DEFAULTS,
  startFanoutThreads,
  type WatchSink,
} from '../watch/index.js';
import type { ServerConfig } from './config.js';
import { Lessor, LEASE_CHECKPOINT_INTERVAL_MS_DEFAULT, type LessorStats, type LeaseTtl } from '../lease/index.js';
import { MemberLeases } from './leases.js';
import { IdGenerator } from './idgen.js';
import type { LeaseGrantRequest, LeaseGrantResponseInit } from '../proto/rpc.js';
import { AuthStore, MEMBER_AS_ROOT } from '../auth/store.js';
import type { TokenProvider } from '../auth/tokens.js';
import { tokenProviderFor } from './auth_tokens.js';
import { HashPool, HASH_POOL_THREADS_DEFAULT, HASH_QUEUE_MAX_DEFAULT } from '../auth/hash_pool.js';
import { LoginLimiter, LOGIN_LIMITER_DEFAULTS } from '../auth/login_limiter.js';
import { MemberAuth } from './member_auth.js';
export type { ServerConfig, InitialMember } from './config.js';

/** etcd refuses proposals when committed − applied exceeds this. */
const MAX_GAP_BETWEEN_APPLY_AND_COMMIT = 5000;
/** Election timeouts without a leader after which require-leader streams are cancelled (etcd's maxNoLeaderCnt). */
const NO_LEADER_INTERVALS_MAX = 3;
/** What etcd allows a gRPC message beyond --max-request-bytes (v3rpc grpcOverheadBytes). */
const GRPC_OVERHEAD_BYTES = 512 * 1024;
/** Watchers one Watch stream may hold. */
const WATCHERS_PER_STREAM_MAX = 100_000;
/** How often waiters past their deadline are failed and an unpublished member retries publishing. */
const SWEEP_INTERVAL_MS = 100;
/** How often --quota-auto-disarm looks whether a NOSPACE alarm may clear (also right after a defragment). */
const AUTO_DISARM_CHECK_MS = 1000;

/** Everything a member is built from: its state, its files and its ports to the world. */
export interface MemberParts {
  cfg: ServerConfig;
  boot: BootState;
  node: RawNode;
  electionTicks: number;
  mvcc: Mvcc;
  snapDir: string;
  log: MemberLog;
  peers: MemberPeers;
  sched: Scheduler;
}

/**
 * One tetcd member.
 *
 *   const s = await EtcdServer.start(config);
 *   const res = await s.propose({ put: { key, value } });
 *   await s.stop();
 */
export class EtcdServer implements MemberApi {
  readonly memberId: bigint;
  readonly clusterId: bigint;
  readonly limits: MemberLimits;
  readonly log: Logger;

  private readonly cfg: ServerConfig;
  private readonly node: RawNode;
  private readonly storage: MemoryStorage;
  private readonly wal: MemberLog;
  private readonly peers: MemberPeers;
  private readonly sched: Scheduler;
  private readonly events = new ApplyEventHub();
  private readonly quota: BackendQuota;
  private readonly backend: MemberBackend;
  private readonly applier: Applier;
  private readonly membership: Membership;
  private readonly changes: MemberChanges;
  private readonly forward: MemberForward;
  private removedListener: (() => void) | undefined;
  /** Joining: the cluster's members as a peer listed them. */
  private readonly joinPeers: Array<{ id: bigint; peerURLs: string[] }> | undefined;
  private removing = false;
  private readonly proposals: Proposals;
  private readonly applying: EntryApplier;
  private readonly snapshots: Snapshots;
  private readonly clientSnapshots: ClientSnapshots;
  private readonly reads: ReadIndexBatcher;
  private readonly loop: ReadyLoop;
  private readonly watches: WatchHub;
  private readonly lessor: Lessor;
  private readonly leases: MemberLeases;
  private readonly leaseIds: IdGenerator;
  private readonly tokens: TokenProvider;
  private readonly hashPool: HashPool;
  private readonly corruption: CorruptionChecker;
  /** The initial corruption check runs: Raft messages are dropped (the member is not part of the cluster yet). */
  private checkingBeforeServe = false;
  readonly auth: MemberAuth;
  /** The worker threads' watch fan-out (--worker-threads > 0). */
  private readonly fanout: WatchFanout | undefined;
  private readonly electionTicks: number;
  private readonly requestTimeoutMs: number;
  private readonly timers: unknown[] = [];
  private tickTimer: unknown = undefined;
  private stopped = false;
  /** etcd_server_snapshot_apply_in_progress_total */
  private snapshotApplying = false;
  private fatalError: EtcdError | undefined;
  private published = false;
  private publishing = false;
  private raisingNoSpace = false;
  private disarmingNoSpace = false;
  private readonly leaderLostListeners = new Set<() => void>();
  private noLeaderIntervals = 0;

  /** Wires a member from its parts; start() opens the real ones, tests hand in their own. Starts nothing. */
  constructor(p: MemberParts) {
    const cfg = p.cfg;
    this.cfg = cfg;
    this.memberId = p.boot.memberId;
    this.joinPeers = p.boot.joinPeers;
    this.clusterId = p.boot.clusterId;
    this.log = (cfg.logger ?? silentLogger).with({ 'local-member-id': this.memberId.toString(16) });
    this.limits = { maxTxnOps: cfg.maxTxnOps, maxRequestBytes: cfg.maxRequestBytes, quotaBackendBytes: cfg.quotaBackendBytes };
    this.node = p.node;
    this.storage = p.boot.storage;
    this.wal = p.log;
    this.peers = p.peers;
    this.sched = p.sched;
    this.electionTicks = p.electionTicks;
    this.requestTimeoutMs = 5000 + 2 * cfg.electionMs;
    const wake = (): void => this.loop.schedule();

    // The backend's size is read from LMDB's stats when a commit lands (reading it per write cost a quarter
    // of the member's CPU under load); the quota counts the writes accepted since at their cost.
    this.quota = new BackendQuota(cfg.quotaBackendBytes, p.mvcc.stats.dbSizeBytes);
    const snap = p.boot.snap;
    const applied = { index: snap?.index ?? 0, term: snap?.term ?? 0 };
    // A commit records where applying stands (applying is wired below, and needs the backend).
    this.backend = new MemberBackend(
      p.mvcc,
      {
        batchIntervalMs: cfg.backendBatchIntervalMs,
        batchLimit: cfg.backendBatchLimit,
        quota: this.quota,
        sched: p.sched,
        onFail: (err) => this.fail(err),
        dbPath: path.join(p.snapDir, 'db'),
      },
      () => this.applying,
    );
    this.lessor = new Lessor({
      minTtlSec: minLeaseTtlSec(p.electionTicks, cfg.heartbeatMs),
      now: p.sched.now,
      checkpointIntervalMs: cfg.leaseCheckpoint === false ? 0 : (cfg.leaseCheckpointIntervalMs ?? LEASE_CHECKPOINT_INTERVAL_MS_DEFAULT),
    });
    this.lessor.recover(p.mvcc, p.mvcc);
    this.leaseIds = new IdGenerator(this.memberId, p.sched.now());
    const authStore = AuthStore.load(p.mvcc);
    const tokens = tokenProviderFor(cfg.authToken ?? 'simple', cfg.authTokenTtlSec ?? 300, p.sched.now);
    this.tokens = tokens;
    authStore.onEnabledChange = (on) => (on ? tokens.enable() : tokens.disable());
    authStore.onUserInvalidated = (name) => tokens.invalidateUser(name);
    if (authStore.enabled) tokens.enable();
    this.applier = new Applier(p.mvcc, { maxTxnOps: cfg.maxTxnOps, maxRangeResponseBytes: cfg.maxRangeResponseBytes }, this.lessor, {
      store: authStore,
      tokens,
    });
    this.hashPool = new HashPool({ threads: HASH_POOL_THREADS_DEFAULT, queueMax: HASH_QUEUE_MAX_DEFAULT });
    this.auth = new MemberAuth({
      store: authStore,
      tokens,
      hasher: this.hashPool,
      limiter: new LoginLimiter({ ...LOGIN_LIMITER_DEFAULTS, now: p.sched.now }),
      bcryptCost: cfg.bcryptCost ?? 10,
      clientCertAuth: cfg.clientCertAuth ?? false,
      appliedIndex: () => this.applying.appliedIndex,
      waitApplied: (index, deadlineMs) => this.waitApplied(index, deadlineMs),
      linearizableRead: () => this.linearizableRead(),
      propose: (init) => this.propose(init),
      log: this.log,
      requestTimeoutMs: this.requestTimeoutMs,
    });
    this.membership = Membership.load(p.mvcc);
    this.backend.onSwap((store) => {
      this.applier.useStore(store);
      this.lessor.recover(store, store);
      this.membership.reload(store);
      for (const m of this.membership.list()) this.peers.addPeer(m.ID, m.peerURLs);
    });
    this.proposals = new Proposals({
      memberId: this.memberId,
      maxRequestBytes: cfg.maxRequestBytes,
      batchCountMax: Math.max(1, cfg.proposalBatchCountMax ?? PROPOSAL_BATCH_COUNT_MAX_DEFAULT),
      requestTimeoutMs: this.requestTimeoutMs,
      wake,
      now: p.sched.now,
    });
    this.applying = new EntryApplier(
      {
        memberId: this.memberId,
        backend: this.backend,
        applier: this.applier,
        membership: this.membership,
        events: this.events,
        peers: this.peers,
        applyConfChange: (cc) => {
          const cs = this.node.applyConfChange(cc);
          wake();
          return cs;
        },
        trigger: (id, result) => {
          this.proposals.trigger(id, result);
        },
        onPublished: () => {
          this.published = true;
        },
        onEmptyEntry: () => {
          this.leases.onEmptyEntry(this.loop.isLeader);
        },
        onRemoved: () => this.removed(),
        learnersMax: cfg.maxLearners ?? LEARNERS_MAX,
        logger: this.log,
      },
      applied,
      p.boot.confState,
    );
    this.snapshots = new Snapshots(
      {
        snapDir: p.snapDir,
        log: p.log,
        storage: this.storage,
        backend: this.backend,
        peers: p.peers,
        membership: this.membership,
        logger: this.log,
        snapshotCount: cfg.snapshotCount,
        catchupEntries: cfg.snapshotCatchupEntries,
        reportSnapshot: (to, status) => {
          this.node.reportSnapshot(to, status);
        },
        wake,
        applied: () => ({ index: this.applying.appliedIndex, term: this.applying.appliedTerm, confState: this.applying.confState }),
        fail: (err) => this.fail(err),
        matchIndex: (id) => this.node.status().progress.get(id)?.match,
      },
      snap?.index ?? 0,
    );
    this.clientSnapshots = new ClientSnapshots({ snapDir: p.snapDir, backend: this.backend, log: this.log });
    this.reads = new ReadIndexBatcher({
      requestReadIndex: (ctx) => {
        this.node.readIndex(ctx);
        wake();
      },
      appliedIndex: () => this.applying.appliedIndex,
      retryMs: 500,
      timeoutMs: this.requestTimeoutMs,
      waitersMax: WAITERS_MAX,
    });
    this.changes = new MemberChanges({
      memberId: this.memberId,
      membership: this.membership,
      strictReconfigCheck: cfg.strictReconfigCheck ?? true,
      proposeConfChange: (cc) => this.proposeConfChange(cc),
      raftStatus: () => this.node.status(),
      leaderId: () => this.loop.leaderId,
      activeSinceMs: (id) => (this.peers.activeSinceMs ? this.peers.activeSinceMs(id) : this.peers.isActive(id) ? 0 : undefined),
      askLeaderLearnerReady: (id) => this.forward.askLearnerReady(id),
      transferLeader: (to) => {
        this.node.transferLeader(to);
        this.loop.schedule();
      },
      now: () => Date.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      heartbeatMs: cfg.heartbeatMs,
    });
    this.forward = new MemberForward({
      send: (to, payload) => this.peers.sendMember?.(to, payload) ?? false,
      leaderId: () => this.loop.leaderId,
      readiness: (id) => this.changes.learnerReadiness(id),
      timeoutMs: this.requestTimeoutMs,
    });
    const threads = cfg.workerThreads ?? 0;
    this.fanout =
      threads > 0
        ? new WatchFanout(
            startFanoutThreads(threads),
            (rev) => this.header(rev),
            { ...WATCH_FANOUT_DEFAULTS, watchersMin: cfg.watchPoolWatchersMin ?? WATCH_FANOUT_DEFAULTS.watchersMin },
            (err) => this.log.warn('watch fan-out task failed; its responses were sent inline', { error: String(err) }),
          )
        : undefined;
    this.watches = new WatchHub(
      () => this.backend.store,
      p.sched,
      {
        ...WATCH_HUB_DEFAULTS,
        progressNotifyIntervalMs: cfg.watchProgressNotifyIntervalMs ?? WATCH_HUB_DEFAULTS.progressNotifyIntervalMs,
      },
      this.fanout,
    );
    this.events.subscribe(this.watches);
    this.leases = new MemberLeases({
      lessor: this.lessor,
      sched: p.sched,
      memberId: this.memberId,
      leaderId: () => this.loop.leaderId,
      // Expired leases are revoked as root (etcd's WithRoot), whatever their keys' permissions.
      propose: (init) => this.propose(init.lease_revoke !== undefined ? { ...init, header: MEMBER_AS_ROOT } : init),
      sendLease: (to, payload) => this.peers.sendLease(to, payload),
      electionMs: cfg.electionMs,
      requestTimeoutMs: this.requestTimeoutMs,
      committedIndex: () => this.loop.committedIndex,
      appliedIndex: () => this.applying.appliedIndex,
      logger: this.log,
    });
    this.corruption = new CorruptionChecker({
      memberId: this.memberId,
      peerIds: () =>
        this.membership
          .list()
          .map((m) => m.ID)
          .filter((id) => id !== this.memberId),
      sendHash: (to, payload) => this.peers.sendHash?.(to, payload) ?? false,
      hashKV: (rev) => this.backend.store.hashKV(rev),
      linearizableRead: () => this.linearizableRead(),
      isLeader: () => this.loop.isLeader,
      raiseCorrupt: async (id) => {
        await this.propose({ alarm: corruptAlarm(id) });
      },
      log: this.log,
      requestTimeoutMs: this.requestTimeoutMs,
    });
    this.loop = new ReadyLoop(
      {
        memberId: this.memberId,
        node: this.node,
        storage: this.storage,
        log: p.log,
        peers: p.peers,
        sched: p.sched,
        proposals: this.proposals,
        applying: this.applying,
        reads: this.reads,
        logger: this.log,
        installSnapshot: (s) => this.installSnapshot(s),
        sendSnapshot: (m) => this.snapshots.send(m),
        afterReady: () => this.snapshots.maybeMake(this.applying.appliedIndex, this.applying.appliedTerm, this.applying.confState),
        fail: (err) => this.fail(err),
        onLeadershipChange: (isLeader) => this.leases.onLeadershipChange(isLeader),
        onApplied: (index) => this.leases.onApplied(index),
      },
      { term: p.boot.hardState?.term ?? 0, lastSavedIndex: this.storage.lastIndex() },
    );
  }

  /** Opens (or creates) the member's data dir, replays the WAL and starts Raft, peers and timers. */
  static async start(cfg: ServerConfig): Promise<EtcdServer> {
    const log = cfg.logger ?? silentLogger;
    const opened = await openMember(cfg, log);
    const { node, electionTicks } = newRaftNode(cfg, opened, log);
    let server: EtcdServer | undefined;
    const transport = new Transport({
      memberId: opened.memberId,
      clusterId: opened.clusterId,
      listenUrls: cfg.listenPeerUrls,
      onMessage: (from, payload) => server?.receive(from, payload),
      onLease: (from, payload) => server?.receiveLease(from, payload),
      onHash: (from, payload) => server?.receiveHash(from, payload),
      onPeerUnreachable: (id) => {
        node.reportUnreachable(id);
      },
      logger: log.with({ 'local-member-id': opened.memberId.toString(16) }),
      snapshotDir: opened.snapDir,
      onSnapshot: (from, message, statePath) => server?.receiveSnapshot(from, message, statePath),
      tls: cfg.peerTls,
      isFresh: () => (opened.bootstrapPeers !== undefined || opened.joinPeers !== undefined) && server?.publishedSelf !== true,
      isBootstrapped: (id) => (server?.members().find((m) => m.ID === id)?.clientURLs.length ?? 0) > 0,
      onRefused: (peer, reason) => server?.refusedByPeer(peer, reason),
      onMember: (from, payload) => server?.receiveMember(from, payload),
      membersInfo: () => server?.membersInfo(),
      isRemoved: (id) => server?.isRemovedMember(id) ?? false,
    });
    server = new EtcdServer({
      cfg,
      boot: opened,
      node,
      electionTicks,
      mvcc: opened.mvcc,
      snapDir: opened.snapDir,
      log: opened.wal,
      peers: transport,
      sched: nodeScheduler,
    });
    await transport.listen();
    server.dialPeers();
    if (cfg.initialCorruptCheck === true) {
      server.checkingBeforeServe = true;
      try {
        await server.corruption.initialCheck();
      } catch (err) {
        await server.stop();
        throw err;
      } finally {
        server.checkingBeforeServe = false;
      }
    }
    server.startTimers();
    return server;
  }

  /** Dials every known member (a new cluster's initial members before its bootstrap entries apply). */
  dialPeers(): void {
    for (const m of this.membership.list()) this.peers.addPeer(m.ID, m.peerURLs);
    if (this.membership.size === 0 && this.joinPeers !== undefined) {
      for (const m of this.joinPeers) this.peers.addPeer(m.id, m.peerURLs);
    } else if (this.membership.size === 0) {
      for (const m of this.cfg.initialCluster) this.peers.addPeer(memberIdFor(m.peerURLs, this.cfg.initialClusterToken), m.peerURLs);
    }
  }

  /** Starts ticking Raft and the periodic work (sweeps, publish, auto-compaction); the first Ready runs. */
  startTimers(): void {
    const sched = this.sched;
    this.tickTimer = sched.interval(() => this.tick(), this.cfg.heartbeatMs);
    this.timers.push(
      this.tickTimer,
      sched.interval(() => this.sweep(), SWEEP_INTERVAL_MS),
    );
    this.timers.push(sched.interval(() => this.monitorLeader(), this.cfg.electionMs));
    if (this.cfg.learnerAutoPromote === true) this.timers.push(sched.interval(() => this.autoPromoteLearner(), this.cfg.electionMs));
    // etcd's simple-token TTL keeper looks once a second.
    const tokens = this.tokens;
    if (tokens.kind === 'simple') this.timers.push(sched.interval(() => tokens.sweep(), 1000));
    this.leases.start();
    const compactor = this.makeCompactor();
    if (compactor) this.timers.push(sched.interval(() => compactor.tick(sched.now()), compactor.tickIntervalMs));
    const checkMs = this.cfg.corruptCheckTimeMs ?? 0;
    if (checkMs > 0) this.timers.push(sched.interval(() => void this.corruption.periodicCheck(), checkMs));
    if (this.cfg.quotaAutoDisarm) this.timers.push(sched.interval(() => this.autoDisarmNoSpace(), AUTO_DISARM_CHECK_MS));
    this.advanceElectionTicksIfAlone();
    this.loop.schedule();
  }

  /** A single-member cluster need not wait a whole election timeout (etcd's initial-election-tick-advance). */
  private advanceElectionTicksIfAlone(): void {
    const cs = this.applying.confState;
    if (cs.voters.length === 1 && cs.voters[0] === this.memberId) {
      for (let i = 0; i < this.electionTicks - 1; i++) this.node.tick();
    }
  }

  /** One heartbeat interval passed. */
  tick(): void {
    this.node.tick();
    this.loop.schedule();
  }

  /** Fails waiters past their deadline; publishes this member's attributes until that is done. */
  sweep(): void {
    const now = this.sched.now();
    this.proposals.sweep(now, this.loop.leaderId !== 0n);
    this.reads.tick(now);
    if (!this.published) this.publish();
  }

  /** --learner-auto-promote: the leader promotes a learner that caught up (MemberChanges.autoPromote). */
  private autoPromoteLearner(): void {
    this.changes.autoPromote().then(
      (id) => {
        if (id !== undefined) this.log.info('promoted a learner that caught up', { 'member-id': id.toString(16) });
      },
      (err) => this.log.warn('automatic promotion of a learner failed', { error: String(err) }),
    );
  }

  /** etcd's monitorLeader: streams that require a leader end once it has been gone for a while. */
  monitorLeader(): void {
    if (this.loop.leaderId !== 0n) {
      this.noLeaderIntervals = 0;
      return;
    }
    if (++this.noLeaderIntervals <= NO_LEADER_INTERVALS_MAX) return;
    const fns = [...this.leaderLostListeners];
    this.leaderLostListeners.clear();
    if (fns.length > 0) this.log.warn('no leader for too long; cancelling streams that require one', { streams: fns.length });
    for (const fn of fns) fn();
  }

  private makeCompactor(): Compactor | undefined {
    const host: CompactorHost = {
      currentRevision: () => this.backend.store.currentRevision,
      isLeader: () => this.loop.isLeader,
      compact: async (revision) => {
        await this.propose({ compaction: { revision } });
      },
      log: this.log,
    };
    const c = this.cfg;
    if (c.autoCompactionMode === 'periodic' && c.autoCompactionRetentionMs > 0)
      return new PeriodicCompactor(c.autoCompactionRetentionMs, host, this.sched.now());
    if (c.autoCompactionMode === 'revision' && c.autoCompactionRetentionRevisions > 0)
      return new RevisionCompactor(c.autoCompactionRetentionRevisions, host);
    return undefined;
  }

  // ---- peers ----

  /** A Raft message from a peer (the transport's onMessage). */
  receive(from: bigint, payload: Uint8Array): void {
    // A failed member no longer drains Raft's output: stepping messages would only pile them up. Before the
    // initial corruption check has passed the member takes no part in Raft (etcd serves no peer then).
    if (this.fatalError || this.checkingBeforeServe) return;
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
    this.step(m);
  }

  /** A lease frame from a peer (the transport's onLease): a forwarded keep-alive or time-to-live, or an answer. */
  receiveLease(from: bigint, payload: Uint8Array): void {
    if (this.fatalError || this.stopped || this.membership.isRemoved(from)) return;
    this.leases.receive(from, payload);
  }

  /** A membership frame from a peer (the transport's onMember). */
  receiveMember(from: bigint, payload: Uint8Array): void {
    if (this.fatalError || this.stopped || this.membership.isRemoved(from)) return;
    this.forward.receive(from, payload);
  }

  /** The cluster's ID and members as a joining member asks for them (undefined before any are known). */
  membersInfo(): Buffer | undefined {
    if (this.fatalError || this.stopped || this.membership.size === 0) return undefined;
    const members = this.membership.list().map((m) => ({
      id: m.ID.toString(16),
      name: m.name,
      peerURLs: m.peerURLs,
      clientURLs: m.clientURLs,
      isLearner: m.isLearner,
    }));
    return Buffer.from(JSON.stringify({ cluster_id: this.clusterId.toString(16), members }));
  }

  isRemovedMember(id: bigint): boolean {
    return this.membership.isRemoved(id);
  }

  /** A snapshot's state file arrived whole (the transport's onSnapshot). */
  /** A hash frame from a peer (the transport's onHash): a corruption check's request, or an answer. */
  receiveHash(from: bigint, payload: Uint8Array): void {
    if (!this.stopped) this.corruption.receive(from, payload);
  }

  receiveSnapshot(from: bigint, message: Uint8Array, statePath: string): void {
    const m = this.snapshots.received(from, message, statePath);
    if (m !== undefined && !this.fatalError) this.step(m);
  }

  private step(m: Message): void {
    if (this.membership.isRemoved(m.from)) return;
    try {
      this.node.step(m);
    } catch (err) {
      // A broken invariant is this member's own state contradicting the cluster's, e.g. a leader committing
      // past the end of a log that was lost with its data dir (then the member restarted as a new one):
      // it must not take part any further (etcd panics here).
      if (err instanceof RaftInvariantError) {
        this.fail(new Error(`raft: ${err.message} (message ${MessageType[m.type]} from ${m.from.toString(16)})`));
        return;
      }
      this.log.debug('raft refused a message', { from: m.from.toString(16), type: MessageType[m.type], error: err });
    }
    this.loop.schedule();
  }

  private async installSnapshot(snap: Snapshot): Promise<void> {
    const { index, term, conf_state: cs } = snap.metadata;
    this.snapshotApplying = true;
    try {
      await this.snapshots.install(snap);
    } finally {
      this.snapshotApplying = false;
    }
    this.applying.restored(index, term, cs);
    const store = this.backend.store;
    this.events.publish({ kind: 'restore', index, revision: store.currentRevision });
    this.log.info('applied snapshot from leader', { 'snapshot-index': index, 'backend-index': this.backend.backendIndex });
  }

  // ---- MemberApi ----

  range(req: RangeRequest): RangeResponseInit {
    return this.applier.range(req);
  }

  txnReadOnly(req: TxnRequest): TxnResponseInit {
    return this.applier.txnReadOnly(req);
  }

  /**
   * Proposes a request through Raft and resolves with its apply result once this member applied it.
   * Rejects with etcd's errors: too large, no leader, timeout, too many requests, stopped.
   */
  async propose(init: Omit<InternalRequestInit, 'ID'>): Promise<ApplyResult> {
    if (this.fatalError) throw this.fatalError;
    if (this.stopped) throw Errors.Stopped();
    if (this.loop.committedIndex - this.applying.appliedIndex > MAX_GAP_BETWEEN_APPLY_AND_COMMIT) throw Errors.TooManyRequests();
    const result = await this.proposals.propose(init);
    if (result.error) throw result.error;
    return result;
  }

  /** Resolves true once `index` is applied here, false at `deadlineMs` or when the member stops. */
  private async waitApplied(index: number, deadlineMs: number): Promise<boolean> {
    while (this.applying.appliedIndex < index) {
      if (this.stopped || this.fatalError || Date.now() >= deadlineMs) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    return true;
  }

  async linearizableRead(): Promise<void> {
    if (this.fatalError) throw this.fatalError;
    if (this.stopped) throw Errors.Stopped();
    await this.reads.wait();
  }

  /** etcd's quotaKVServer: a write the backend quota has no room for is refused, and NOSPACE raised. */
  admit(costBytes: number): void {
    if (costBytes === 0) return;
    if (this.quota.available(costBytes)) {
      this.quota.charge(costBytes);
      return;
    }
    this.raiseNoSpace();
    throw Errors.NoSpace();
  }

  header(revision = this.backend.store.currentRevision): ResponseHeaderInit {
    return { cluster_id: this.clusterId, member_id: this.memberId, revision, raft_term: this.loop.term };
  }

  get raftTerm(): number {
    return this.loop.term;
  }

  get hasLeader(): boolean {
    return this.loop.leaderId !== 0n;
  }

  status(): MemberStatus {
    const store = this.backend.store;
    const st = store.stats;
    return {
      leader: this.loop.leaderId,
      isLeader: this.loop.isLeader,
      isLearner: this.membership.get(this.memberId)?.isLearner ?? false,
      raftTerm: this.loop.term,
      raftIndex: this.loop.committedIndex,
      raftAppliedIndex: this.applying.appliedIndex,
      revision: store.currentRevision,
      compactRevision: store.compactRevision,
      keys: st.keys,
      dbSizeBytes: st.dbSizeBytes,
      dbSizeInUseBytes: st.dbSizeInUseBytes,
      alarms: this.applier.alarms.get(),
      fatalError: this.fatalError?.message,
    };
  }

  hashKV(rev: number): HashKVResult {
    return this.backend.store.hashKV(rev);
  }

  async hash(): Promise<{ hash: number; revision: number }> {
    await this.backend.store.compactBarrier();
    await this.backend.commit().committed;
    return this.backend.store.hash();
  }

  async defragment(): Promise<void> {
    if (this.fatalError) throw this.fatalError;
    if (this.stopped) throw Errors.Stopped();
    this.log.info('starting defragment');
    const startedMs = Date.now();
    const r = await this.backend.defragment();
    this.log.info('finished defragment', {
      'current-db-size-bytes-diff': r.sizeAfterBytes - r.sizeBeforeBytes,
      'current-db-size-bytes': r.sizeAfterBytes,
      took: `${Date.now() - startedMs}ms`,
      'copy-took': `${Math.round(r.copyMs)}ms`,
      'sync-took': `${Math.round(r.syncMs)}ms`,
      'catch-up-rounds': r.catchupRounds,
      'writes-held': `${r.swapMs.toFixed(1)}ms`,
    });
    this.autoDisarmNoSpace();
  }

  members(): Member[] {
    return this.membership.list();
  }

  get isLearner(): boolean {
    return this.membership.get(this.memberId)?.isLearner ?? false;
  }

  memberAdd(peerURLs: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    return this.changes.add(peerURLs, isLearner);
  }

  memberRemove(id: bigint): Promise<Member[]> {
    return this.changes.remove(id);
  }

  memberUpdate(id: bigint, peerURLs: string[]): Promise<Member[]> {
    return this.changes.update(id, peerURLs);
  }

  memberPromote(id: bigint): Promise<Member[]> {
    return this.changes.promote(id);
  }

  moveLeader(target: bigint, deadlineMs: number): Promise<void> {
    return this.changes.moveLeader(target, Math.min(deadlineMs, Date.now() + this.requestTimeoutMs));
  }

  private async proposeConfChange(cc: Omit<ConfChange, 'id'>): Promise<ApplyResult> {
    if (this.fatalError) throw this.fatalError;
    if (this.stopped) throw Errors.Stopped();
    return this.proposals.proposeConfChange(cc);
  }

  snapshot(signal: AbortSignal): Promise<SnapshotFile> {
    if (this.fatalError) return Promise.reject(this.fatalError);
    if (this.stopped) return Promise.reject(Errors.Stopped());
    return this.clientSnapshots.make(signal);
  }

  alarms(): AlarmMember[] {
    return this.applier.alarms.get();
  }

  subscribe(sub: ApplySubscriber): ApplySubscription {
    return this.events.subscribe(sub);
  }

  onLeaderLost(fn: () => void): () => void {
    this.leaderLostListeners.add(fn);
    return () => {
      this.leaderLostListeners.delete(fn);
    };
  }

  async leaseGrant(req: LeaseGrantRequest, header?: RequestHeaderInit): Promise<LeaseGrantResponseInit> {
    // etcd picks a positive int64 when the client did not (v3_server.go LeaseGrant).
    let id = req.ID;
    while (id === 0n) id = this.leaseIds.next() & 0x7fff_ffff_ffff_ffffn;
    const r = await this.propose({ lease_grant: { ID: id, TTL: req.TTL }, header });
    return r.response as LeaseGrantResponseInit;
  }

  leaseRenew(id: bigint): number | Promise<number> {
    if (this.fatalError) throw this.fatalError;
    if (this.stopped) throw Errors.Stopped();
    return this.leases.renew(id);
  }

  leaseTimeToLive(id: bigint, withKeys: boolean): Promise<LeaseTtl | undefined> {
    if (this.fatalError) return Promise.reject(this.fatalError);
    if (this.stopped) return Promise.reject(Errors.Stopped());
    return this.leases.timeToLive(id, withKeys);
  }

  leaseIdsList(): bigint[] {
    return this.lessor.leaseIds();
  }

  get leaseStats(): LessorStats {
    return this.lessor.stats;
  }

  observe(): MemberObservations {
    return {
      leaderChanges: this.loop.leaderChanges,
      proposalsPending: this.proposals.pending,
      proposalsFailed: this.proposals.failed,
      slowApplies: this.applying.slowApplies,
      failed: this.fatalError !== undefined,
      walFsyncSeconds: this.wal.fsyncSeconds,
      walWriteBytes: this.wal.stats?.bytesWritten ?? 0,
      backendCommitSeconds,
      backendSnapshotSeconds: this.clientSnapshots.durationSeconds,
      peers: this.peers.peerObservations?.() ?? [],
      heartbeatSendFailures: this.loop.heartbeatSendFailures,
      compactionMs: this.applying.compactionMs,
      snapSaveSeconds: this.snapshots.saveSeconds,
      readIndexesFailed: this.reads.failed,
      slowReadIndexes: this.reads.slow,
      snapshotApplying: this.snapshotApplying,
      mvcc: this.applier.counts,
      watchers: this.watches.size,
      slowWatchers: this.watches.unsyncedCount,
      proposalBatchSizes: this.proposals.batchSizes,
      learnerPromotes: { successes: this.changes.promoteSuccesses, failures: this.changes.promoteFailures },
      walSaves: this.wal.stats?.appends ?? 0,
      walFsyncs: this.wal.stats?.fsyncs ?? 0,
      watchPool:
        this.fanout === undefined
          ? undefined
          : {
              tasks: this.fanout.stats.tasks,
              failedTasks: this.fanout.stats.failedTasks,
              tasksInflight: this.fanout.tasksInflight,
              inflightBytes: this.fanout.inflightBytes,
            },
    };
  }

  watch(sink: WatchSink): WatchStream {
    // With the fan-out pool, the stream writes through a FIFO that keeps its responses behind pool-built ones.
    const out = this.fanout?.wrap(sink) ?? sink;
    const ws = new WatchStream(this.watches, out, {
      header: (rev) => this.header(rev),
      // etcd splits at --max-request-bytes plus its gRPC overhead allowance (v3rpc/watch.go).
      fragmentBytes: this.cfg.maxRequestBytes + GRPC_OVERHEAD_BYTES,
      watchersPerStreamMax: WATCHERS_PER_STREAM_MAX,
    });
    this.fanout?.register(ws, out);
    return ws;
  }

  /**
   * Raises the NOSPACE alarm for this member (after a write was refused by the quota). Fire and forget:
   * the refused client already has its ErrNoSpace; one raise at a time.
   */
  private raiseNoSpace(): void {
    if (this.raisingNoSpace || this.applier.alarms.has(AlarmType.NOSPACE)) return;
    this.raisingNoSpace = true;
    this.propose({ alarm: { action: AlarmRequest_AlarmAction.ACTIVATE, memberID: this.memberId, alarm: AlarmType.NOSPACE } }).then(
      () => {
        this.raisingNoSpace = false;
      },
      () => {
        this.raisingNoSpace = false;
      },
    );
  }

  /**
   * --quota-auto-disarm: once this member's backend has room again (compaction, then defragment), its NOSPACE
   * alarm is deactivated through Raft, as `etcdctl alarm disarm` does. One proposal at a time.
   */
  private autoDisarmNoSpace(): void {
    if (!this.cfg.quotaAutoDisarm || this.disarmingNoSpace || this.fatalError || this.stopped) return;
    if (!this.applier.alarms.get(AlarmType.NOSPACE).some((a) => a.memberID === this.memberId)) return;
    const inUse = this.backend.store.stats.dbSizeInUseBytes;
    if (!this.quota.roomAgain(inUse)) return;
    this.disarmingNoSpace = true;
    this.log.info('backend has room again; disarming NOSPACE (--quota-auto-disarm)', {
      'db-size-in-use-bytes': inUse,
      'quota-size-bytes': this.cfg.quotaBackendBytes,
    });
    const done = () => {
      this.disarmingNoSpace = false;
    };
    this.propose({ alarm: { action: AlarmRequest_AlarmAction.DEACTIVATE, memberID: this.memberId, alarm: AlarmType.NOSPACE } }).then(
      done,
      done,
    );
  }

  /** Publishes this member's name and client URLs through Raft (etcd does it once after start). */
  private publish(): void {
    if (this.loop.leaderId === 0n || this.publishing) return;
    this.publishing = true;
    this.propose({
      member_attr_set: { member_ID: this.memberId, attributes: { name: this.cfg.name, client_urls: this.cfg.advertiseClientUrls } },
    }).then(
      () => {
        this.publishing = false;
        this.published = true;
        const cid = this.clusterId.toString(16);
        this.log.info('published local member to cluster through raft', {
          'local-member-attributes': `{Name:${this.cfg.name} ClientURLs:[${this.cfg.advertiseClientUrls.join(' ')}]}`,
          'request-path': `/0/members/${this.memberId.toString(16)}/attributes`,
          'cluster-id': cid,
        });
        // tetcd's cluster version is fixed (every member speaks 3.4): it is set once the member is part of
        // the cluster, where etcd's leader decides it; etcd's messages, for whoever waits for them.
        const version = ETCD_CLUSTER_VERSION.split('.').slice(0, 2).join('.');
        this.log.info('set initial cluster version', { 'cluster-id': cid, 'cluster-version': version });
        this.log.info('enabled capabilities for version', { 'cluster-version': version });
      },
      () => {
        this.publishing = false;
      },
    );
  }

  // ---- stopping ----

  /**
   * A leader that stops hands leadership to its most up-to-date voter first (etcd does the same), so the
   * cluster does not wait an election timeout for a new leader. Bounded by one election timeout.
   */
  private async transferLeadershipBeforeStop(): Promise<void> {
    if (!this.loop.isLeader || this.fatalError) return;
    const st = this.node.status();
    let best: bigint | undefined;
    let bestMatch = -1;
    for (const [id, p] of st.progress) {
      if (id === this.memberId || p.isLearner || !this.peers.isActive(id)) continue;
      if (p.match > bestMatch) {
        best = id;
        bestMatch = p.match;
      }
    }
    if (best === undefined) return;
    this.log.info('leader is stopping; transferring leadership', { transferee: best.toString(16) });
    this.node.transferLeader(best);
    this.loop.schedule();
    const deadline = Date.now() + this.cfg.electionMs;
    while (this.loop.isLeader && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /** Whether this member's own publish (its name and client URLs) has been applied. */
  get publishedSelf(): boolean {
    return this.published;
  }

  /** A peer refused this member's stream: if it knows this member as bootstrapped, this data dir lost its state. */
  refusedByPeer(peer: bigint, reason: string): void {
    if (reason === REMOVED_MEMBER_TEXT) {
      this.removed();
      return;
    }
    if (!reason.includes('has already been bootstrapped')) return;
    this.fail(
      new Error(
        `peer ${peer.toString(16)} refuses this member: ${reason}. The data dir ${this.cfg.dataDir} is new but this member ` +
          `had run before (its data dir was lost?); refusing to run as a new member: remove it from the cluster and add it back`,
      ),
    );
    // Nothing to say to the peers any more (they refuse it anyway).
    void this.peers.stop();
  }

  /**
   * This member was removed from the cluster (its removal applied here, or a peer refuses it as removed):
   * it stops, as etcd's does, after a short delay that lets the removal's entry reach the others.
   */
  private removed(): void {
    if (this.removing) return;
    this.removing = true;
    this.log.warn(REMOVED_MEMBER_TEXT);
    setTimeout(() => {
      if (this.removedListener !== undefined) this.removedListener();
      else void this.stop();
    }, 1000);
  }

  /** Who stops the process once this member was removed (the CLI); without one the member stops itself. */
  whenRemoved(fn: () => void): void {
    this.removedListener = fn;
  }

  /** Whether this member learned it was removed from the cluster. */
  get isRemoved(): boolean {
    return this.removing;
  }

  private fail(err: unknown): void {
    if (this.fatalError) return;
    const msg = err instanceof Error ? err.message : String(err);
    this.log.error('member stops serving writes after a fatal error', { error: msg });
    this.fatalError = Errors.Unknown(`etcdserver: ${msg}`);
    // No Ready is handled from here on, so Raft must not be fed either: ticks and peer messages would
    // queue heartbeats and entries in memory with no one to take them. To the rest of the cluster this
    // member is now down, and it elects a leader without it.
    this.loop.halt();
    if (this.tickTimer !== undefined) this.sched.cancel(this.tickTimer);
    this.proposals.failAll(this.fatalError);
    this.reads.failAll(this.fatalError);
  }

  /** Rotated peer TLS files: new peer connections use the new material. */
  setPeerTls(t: PeerTls): void {
    this.peers.setTls?.(t);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    await this.transferLeadershipBeforeStop();
    this.stopped = true;
    this.loop.halt();
    for (const t of this.timers) this.sched.cancel(t);
    this.leases.stop();
    this.corruption.stop();
    this.proposals.failAll(Errors.Stopped());
    this.reads.failAll(Errors.Stopped());
    this.forward.failAll(Errors.Stopped());
    await this.peers.stop();
    // Let a Ready that is being persisted finish before closing the files under it.
    while (this.loop.busy) await new Promise((r) => setTimeout(r, 1));
    await this.backend.close();
    await this.wal.close();
    this.snapshots.close();
    await this.fanout?.close();
    await this.hashPool.close();
  }
}

/** etcd's minimum lease TTL: ⌈⌊3 × election ticks / 2⌋ × heartbeat⌉ in seconds (2 s with the defaults). */
export function minLeaseTtlSec(electionTicks: number, heartbeatMs: number): number {
  return Math.max(1, Math.ceil((Math.floor((3 * electionTicks) / 2) * heartbeatMs) / 1000));
}
