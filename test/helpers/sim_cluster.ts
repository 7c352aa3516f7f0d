// Three members in one process on an in-memory WAL, an in-process network (Raft messages and lease frames)
// and a manual scheduler: no sockets, no timers; Raft's election timeouts drawn from a seed. Used by the
// Ready loop's tests and the member's lease tests.
import fs from 'node:fs';
import path from 'node:path';
import { EtcdServer } from '../../src/server/server.js';
import { newClusterState, newRaftNode } from '../../src/server/bootstrap.js';
import type { ApplyEvent, ApplySubscriber } from '../../src/events/apply_events.js';
import type { MemberLog, MemberPeers } from '../../src/server/ports.js';
import type { ServerConfig } from '../../src/server/config.js';
import { Mvcc } from '../../src/mvcc/index.js';
import type { Entry, HardState } from '../../src/raft/index.js';
import { silentLogger, newLogger } from '../../src/log.js';
import { tempDir } from './cleanup.js';
import { ManualScheduler } from './manual_scheduler.js';

/** The WAL, in memory: what was saved, in order. */
export class MemLog implements MemberLog {
  entries: Entry[] = [];
  hardState: HardState | undefined;
  snapshots: Array<{ index: number; term: number }> = [];
  async save(hs: HardState | undefined, entries: readonly Entry[]): Promise<void> {
    if (hs) this.hardState = hs;
    if (entries.length > 0) {
      const first = entries[0].index;
      this.entries = this.entries.filter((e) => e.index < first).concat(entries);
    }
  }
  async saveSnapshot(s: { index: number; term: number }): Promise<void> {
    this.snapshots.push(s);
  }
  async releaseTo(): Promise<void> {}
  async close(): Promise<void> {}
}

export interface Packet {
  from: bigint;
  to: bigint;
  payload: Uint8Array;
  /** A lease frame (forwarded keep-alive or its answer) rather than a Raft message. */
  lease?: boolean;
}

/** The network: FIFO delivery, with members that can be cut off (their traffic is dropped both ways). */
export class SimNet {
  readonly members = new Map<bigint, { server: EtcdServer; snapDir: string }>();
  readonly cut = new Set<bigint>();
  queue: Packet[] = [];
  snapshotsSent = 0;
  pendingTransfers = 0;

  endpoint(self: bigint): MemberPeers {
    return {
      send: (to, payload) => {
        this.queue.push({ from: self, to, payload: Uint8Array.from(payload) });
        return true;
      },
      sendLease: (to, payload) => {
        this.queue.push({ from: self, to, payload: Uint8Array.from(payload), lease: true });
        return true;
      },
      sendSnapshot: async (to, message, statePath) => {
        if (this.cut.has(self) || this.cut.has(to)) throw new Error('peer unreachable');
        const dst = this.members.get(to);
        if (!dst) throw new Error('unknown peer');
        this.snapshotsSent++;
        const incoming = path.join(dst.snapDir, `incoming-${self.toString(16)}-${this.snapshotsSent}.snap.db`);
        fs.copyFileSync(statePath, incoming);
        dst.server.receiveSnapshot(self, Uint8Array.from(message), incoming);
      },
      addPeer: () => {},
      removePeer: () => {},
      isActive: (id) => !this.cut.has(id),
      stop: async () => {},
    };
  }

  /** Delivers what is queued; true if anything was delivered. */
  deliver(): boolean {
    const q = this.queue;
    this.queue = [];
    for (const p of q) {
      if (this.cut.has(p.from) || this.cut.has(p.to)) continue;
      const dst = this.members.get(p.to)?.server;
      if (p.lease) dst?.receiveLease(p.from, p.payload);
      else dst?.receive(p.from, p.payload);
    }
    return q.length > 0;
  }
}

/** Records what a member's hub delivers. */
export class Recorder implements ApplySubscriber {
  readonly name = 'recorder';
  readonly wantsPrevKv = true;
  events: ApplyEvent[] = [];
  deliver(ev: ApplyEvent): boolean {
    this.events.push(ev);
    return true;
  }
  fellBehind(): void {
    throw new Error('the recorder never refuses an event');
  }
}

export interface Cluster {
  net: SimNet;
  sched: ManualScheduler;
  servers: EtcdServer[];
  logs: MemLog[];
  recorders: Recorder[];
  mvccs: Mvcc[];
  dir: string;
}

export function config(name: string, dir: string): ServerConfig {
  return {
    name,
    dataDir: path.join(dir, name),
    initialCluster: ['n1', 'n2', 'n3'].map((n, i) => ({ name: n, peerURLs: [`http://127.0.0.1:${30001 + i}`] })),
    initialClusterToken: 'ready-loop-test',
    initialClusterState: 'new',
    listenPeerUrls: [],
    advertiseClientUrls: [`http://${name}`],
    heartbeatMs: 100,
    electionMs: 1000,
    snapshotCount: 20,
    snapshotCatchupEntries: 5,
    backendBatchIntervalMs: 100,
    backendBatchLimit: 10_000,
    maxRequestBytes: 1.5 * 1024 * 1024,
    maxTxnOps: 128,
    maxRangeResponseBytes: 0,
    quotaBackendBytes: 0,
    preVote: true,
    autoCompactionMode: 'periodic',
    autoCompactionRetentionMs: 0,
    autoCompactionRetentionRevisions: 0,
    unsafeNoFsync: true,
    logger: process.env.DEBUG_READY ? newLogger('debug') : silentLogger,
  };
}

export async function startCluster(seed: number, overrides: Partial<ServerConfig> = {}, withTimers = false): Promise<Cluster> {
  const dir = tempDir('tetcd-ready-');
  const net = new SimNet();
  const sched = new ManualScheduler();
  const c: Cluster = { net, sched, servers: [], logs: [], recorders: [], mvccs: [], dir };
  for (const [i, name] of ['n1', 'n2', 'n3'].entries()) {
    const cfg = { ...config(name, dir), ...overrides };
    const snapDir = path.join(cfg.dataDir, 'member', 'snap');
    fs.mkdirSync(snapDir, { recursive: true });
    const boot = newClusterState(cfg);
    const { node, electionTicks } = newRaftNode(cfg, boot, silentLogger, seed + i);
    const mvcc = await Mvcc.open({ path: path.join(snapDir, 'db') });
    const log = new MemLog();
    const server = new EtcdServer({ cfg, boot, node, electionTicks, mvcc, snapDir, log, peers: net.endpoint(boot.memberId), sched });
    const rec = new Recorder();
    server.subscribe(rec);
    net.members.set(boot.memberId, { server, snapDir });
    c.servers.push(server);
    c.logs.push(log);
    c.recorders.push(rec);
    c.mvccs.push(mvcc);
  }
  // With the members' own timers, the manual clock drives everything (ticks, the lease loop): use advanceAll.
  if (withTimers) for (const s of c.servers) s.startTimers();
  return c;
}

/** Runs the cluster until nothing moves: queued work, messages, and the I/O that LMDB and files finish. */
export async function settle(c: Cluster, roundsMax = 10_000): Promise<void> {
  let quiet = 0;
  for (let i = 0; i < roundsMax; i++) {
    const ran = c.sched.runQueued();
    const sent = c.net.deliver();
    // Let LMDB's and the file system's work finish: a few turns, then real milliseconds once quiet.
    await new Promise((r) => (quiet < 10 ? setImmediate(r) : setTimeout(r, 2)));
    quiet = ran || sent ? 0 : quiet + 1;
    if (quiet >= 20) return;
  }
  throw new Error('the cluster did not settle');
}

/** One heartbeat interval for every member (the manual clock moves with it). */
export async function tickAll(c: Cluster, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    c.sched.advance(100);
    for (const s of c.servers) s.tick();
    await settle(c);
  }
}

/** Moves the manual clock `ms` in heartbeat steps, for members started with their own timers. */
export async function advanceAll(c: Cluster, ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 100) {
    c.sched.advance(100);
    await settle(c);
  }
}

export function leaderOf(c: Cluster): EtcdServer | undefined {
  return c.servers.find((s) => s.status().isLeader);
}

export async function electLeader(c: Cluster): Promise<EtcdServer> {
  await settle(c);
  for (let i = 0; i < 100; i++) {
    const l = leaderOf(c);
    if (l) return l;
    await tickAll(c, 1);
  }
  throw new Error('no leader elected');
}

export async function stopCluster(c: Cluster): Promise<void> {
  for (const s of c.servers) {
    const stopping = s.stop();
    await settle(c).catch(() => {});
    await stopping;
  }
  fs.rmSync(c.dir, { recursive: true, force: true });
}
