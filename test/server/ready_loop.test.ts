// The member's Ready loop, deterministically: three members in one process on an in-memory WAL, an
// in-process network and a manual scheduler (no sockets, no timers; Raft's election timeouts drawn from a
// seed). Apply events arrive in log order on every member, a follower cut off past the leader's log
// catches up by a snapshot installed through swapBackend(), and a subscriber that falls behind is told.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import path from 'node:path';
import { EtcdServer } from '../../src/server/server.js';
import { newClusterState, newRaftNode } from '../../src/server/bootstrap.js';
import { MemberBackend } from '../../src/server/backend.js';
import { BoundedApplyQueue, type ApplyEvent, type ApplySubscriber } from '../../src/events/apply_events.js';
import type { MemberLog, MemberPeers } from '../../src/server/ports.js';
import type { ServerConfig } from '../../src/server/config.js';
import { Mvcc } from '../../src/mvcc/index.js';
import { EntryType, type Entry, type HardState } from '../../src/raft/index.js';
import { decodeInternalRequest } from '../../src/proto/internal.js';
import { decodeKeyValue } from '../../src/proto/kv.js';
import { silentLogger, newLogger } from '../../src/log.js';
import { tempDir } from '../helpers/cleanup.js';
import { ManualScheduler } from '../helpers/manual_scheduler.js';
import { rng } from '../../tools/lib/rng.js';

const SEED = Number(process.env.TETCD_READY_SEED ?? 20261207);

/** The WAL, in memory: what was saved, in order. */
class MemLog implements MemberLog {
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

interface Packet {
  from: bigint;
  to: bigint;
  payload: Uint8Array;
  /** A lease frame (forwarded keep-alive or its answer) rather than a Raft message. */
  lease?: boolean;
}

/** The network: FIFO delivery, with members that can be cut off (their traffic is dropped both ways). */
class SimNet {
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
class Recorder implements ApplySubscriber {
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

interface Cluster {
  net: SimNet;
  sched: ManualScheduler;
  servers: EtcdServer[];
  logs: MemLog[];
  recorders: Recorder[];
  mvccs: Mvcc[];
  dir: string;
}

function config(name: string, dir: string): ServerConfig {
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

async function startCluster(seed: number): Promise<Cluster> {
  const dir = tempDir('tetcd-ready-');
  const net = new SimNet();
  const sched = new ManualScheduler();
  const c: Cluster = { net, sched, servers: [], logs: [], recorders: [], mvccs: [], dir };
  for (const [i, name] of ['n1', 'n2', 'n3'].entries()) {
    const cfg = config(name, dir);
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
  return c;
}

/** Runs the cluster until nothing moves: queued work, messages, and the I/O that LMDB and files finish. */
async function settle(c: Cluster, roundsMax = 10_000): Promise<void> {
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
async function tickAll(c: Cluster, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    c.sched.advance(100);
    for (const s of c.servers) s.tick();
    await settle(c);
  }
}

function leaderOf(c: Cluster): EtcdServer | undefined {
  return c.servers.find((s) => s.status().isLeader);
}

async function electLeader(c: Cluster): Promise<EtcdServer> {
  await settle(c);
  for (let i = 0; i < 100; i++) {
    const l = leaderOf(c);
    if (l) return l;
    await tickAll(c, 1);
  }
  throw new Error('no leader elected');
}

const enc = (s: string): Uint8Array => Buffer.from(s);

/** The values under a prefix, read locally on a member. */
function values(s: EtcdServer, prefix: string): string[] {
  const end = Buffer.from(prefix);
  end[end.length - 1]++;
  const res = s.range({ key: enc(prefix), range_end: end } as never);
  return (res.kvs_encoded ?? []).map((b) => dec(decodeKeyValue(b as Uint8Array).value));
}
const dec = (b: Uint8Array): string => Buffer.from(b).toString();

/** Every kv event's entry in the member's WAL is the write that made it, and kv events follow the log. */
function assertEventsFollowLog(rec: Recorder, log: MemLog, label: string): number {
  const byIndex = new Map(log.entries.map((e) => [e.index, e]));
  let lastIndex = 0;
  let lastRev = 1; // a new store is at revision 1; the first write makes 2
  let kvEvents = 0;
  for (const ev of rec.events) {
    assert.ok(ev.index > lastIndex || ev.kind === 'restore', `${label}: event of index ${ev.index} after ${lastIndex}`);
    lastIndex = ev.index;
    if (ev.kind === 'restore') {
      lastRev = ev.revision;
      continue;
    }
    if (ev.kind !== 'kv') continue;
    kvEvents++;
    assert.is(ev.revision, lastRev + 1, `${label}: revision ${ev.revision} after ${lastRev}`);
    lastRev = ev.revision;
    const e = byIndex.get(ev.index);
    assert.ok(e && e.type === EntryType.Normal, `${label}: no normal entry ${ev.index} in the log`);
    const req = decodeInternalRequest(e.data);
    const keysInEntry = new Set<string>();
    if (req.put) keysInEntry.add(dec(req.put.key));
    if (req.delete_range) keysInEntry.add(dec(req.delete_range.key));
    for (const op of req.txn?.success ?? []) {
      if (op.request_put) keysInEntry.add(dec(op.request_put.key));
      if (op.request_delete_range) keysInEntry.add(dec(op.request_delete_range.key));
    }
    for (const ch of ev.changes) {
      assert.ok(keysInEntry.has(dec(ch.kv.key)), `${label}: event key ${dec(ch.kv.key)} is not written by entry ${ev.index}`);
      assert.is(ch.kv.mod_revision, ev.revision);
    }
  }
  return kvEvents;
}

test('apply events follow the log on every member; one txn is one event group', async () => {
  const c = await startCluster(SEED);
  try {
    const leader = await electLeader(c);
    const r = rng(SEED);
    const done: Array<Promise<unknown>> = [];
    for (let i = 0; i < 40; i++) {
      const k = `k${Math.floor(r() * 10)}`;
      if (i % 7 === 3) {
        done.push(
          leader.propose({
            txn: {
              compare: [],
              success: [
                { request_put: { key: enc(`${k}-a`), value: enc(`t${i}`) } },
                { request_put: { key: enc(`${k}-b`), value: enc(`t${i}`) } },
              ],
              failure: [],
            },
          }),
        );
      } else if (i % 5 === 4) {
        done.push(leader.propose({ delete_range: { key: enc(k) } }));
      } else {
        done.push(leader.propose({ put: { key: enc(k), value: enc(`v${i}`) } }));
      }
    }
    await settle(c);
    await tickAll(c, 3);
    await Promise.all(done);
    const counts = c.servers.map((_, i) => assertEventsFollowLog(c.recorders[i], c.logs[i], `member ${i + 1}`));
    assert.ok(counts[0] > 0, 'the leader published kv events');
    assert.equal(counts, [counts[0], counts[0], counts[0]], 'every member published the same kv events');
    // A txn's two puts arrive as one group at one revision.
    const txnGroups = c.recorders[0].events.filter((ev) => ev.kind === 'kv' && ev.changes.length === 2);
    assert.ok(txnGroups.length >= 5, `txn groups: ${txnGroups.length}`);
    // prevKv was asked for: an overwrite carries the value it replaced.
    const overwrite = c.recorders[0].events.find((ev) => ev.kind === 'kv' && ev.changes.some((ch) => ch.kv.version > 1));
    assert.ok(overwrite && overwrite.kind === 'kv');
    const ch = overwrite.changes.find((x) => x.kv.version > 1)!;
    assert.ok(ch.prevKv, 'an overwrite carries its prevKv');
    assert.is(ch.prevKv!.version, ch.kv.version - 1);
  } finally {
    await stopCluster(c);
  }
});

test('a follower cut off past the leader log catches up by a snapshot installed through swapBackend()', async () => {
  const swaps: string[] = [];
  const orig = MemberBackend.prototype.swapBackend;
  MemberBackend.prototype.swapBackend = function (this: MemberBackend, next: string, live: string) {
    swaps.push(next);
    return orig.call(this, next, live);
  };
  const c = await startCluster(SEED + 1);
  try {
    const leader = await electLeader(c);
    const lagging = c.servers.find((s) => s !== leader)!;
    const li = c.servers.indexOf(lagging);
    await Promise.all(
      [leader.propose({ put: { key: enc('before'), value: enc('1') } })].map(async (p) => {
        await settle(c);
        return p;
      }),
    );
    c.net.cut.add(lagging.memberId);
    // Past --snapshot-count (20) twice: the leader snapshots and compacts its log to index − 5.
    for (let i = 0; i < 60; i++) {
      const p = leader.propose({ put: { key: enc(`during-${i}`), value: enc(`${i}`) } });
      await settle(c);
      await p;
    }
    await tickAll(c, 2);
    assert.is(swaps.length, 0, 'no snapshot installed before the follower is back');
    c.net.cut.delete(lagging.memberId);
    for (let i = 0; i < 30 && lagging.status().raftAppliedIndex < leader.status().raftAppliedIndex; i++) await tickAll(c, 1);
    assert.ok(c.net.snapshotsSent >= 1, 'the leader sent a snapshot');
    assert.is(swaps.length, 1, 'the follower installed it through swapBackend()');
    assert.is(lagging.status().raftAppliedIndex, leader.status().raftAppliedIndex);
    assert.equal(values(lagging, 'during-'), values(leader, 'during-'));
    assert.is(values(lagging, 'during-').length, 60);
    const restore = c.recorders[li].events.find((ev) => ev.kind === 'restore');
    assert.ok(restore, 'the follower published a restore event');
    assert.is(restore!.kind === 'restore' && restore.revision, leader.status().revision);
    // Writes after the install reach the follower as ordinary kv events again.
    const p = leader.propose({ put: { key: enc('after'), value: enc('x') } });
    await settle(c);
    await p;
    await tickAll(c, 2);
    const last = c.recorders[li].events.at(-1)!;
    assert.ok(last.kind === 'kv' && dec(last.changes[0].kv.key) === 'after', 'live events resume after the restore');
  } finally {
    MemberBackend.prototype.swapBackend = orig;
    await stopCluster(c);
  }
});

test('a subscriber that cannot keep up falls behind explicitly and resumes; apply never waits', async () => {
  const c = await startCluster(SEED + 2);
  try {
    const leader = await electLeader(c);
    const slow = new BoundedApplyQueue('slow', 3);
    let told = 0;
    const fell = slow.fellBehind.bind(slow);
    slow.fellBehind = (i: number) => {
      told++;
      fell(i);
    };
    slow.subscription = leader.subscribe(slow);
    for (let i = 0; i < 10; i++) {
      const p = leader.propose({ put: { key: enc(`s${i}`), value: enc('v') } });
      await settle(c);
      await p;
    }
    assert.is(told, 1, 'told once that it fell behind');
    assert.is(slow.length, 3, 'it kept what fit');
    assert.ok(slow.behindFrom !== undefined);
    const firstMissed = slow.behindFrom!;
    assert.is(slow.drain().length, 3);
    assert.is(slow.subscription.missedEvents, 7, 'the other seven puts were not delivered');
    // Every put was applied all the same.
    assert.is(leader.range({ key: enc('s'), range_end: enc('t') } as never).count, 10);
    const kvIndexes = c.recorders[c.servers.indexOf(leader)].events.filter((e) => e.kind === 'kv').map((e) => e.index);
    assert.ok(kvIndexes.includes(firstMissed), 'behindFrom names the first missed entry');
    // Caught up from the store: deliveries start with the next applied entry.
    slow.resume();
    const p = leader.propose({ put: { key: enc('s-next'), value: enc('v') } });
    await settle(c);
    await p;
    const got = slow.drain();
    assert.is(got.length, 1);
    assert.ok(got[0].kind === 'kv' && dec(got[0].changes[0].kv.key) === 's-next');
  } finally {
    await stopCluster(c);
  }
});

async function stopCluster(c: Cluster): Promise<void> {
  for (const s of c.servers) {
    const stopping = s.stop();
    await settle(c).catch(() => {});
    await stopping;
  }
  fs.rmSync(c.dir, { recursive: true, force: true });
}

test.run();
