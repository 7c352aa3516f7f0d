// Deterministic simulation of a Raft cluster in one process: members are RawNodes over MemoryStorage with
// a separate "disk" (what was persisted); a seeded network drops, duplicates, delays and reorders
// messages and partitions; members crash (losing everything not on disk) and restart; clients propose,
// read and change membership. Everything is driven by one seeded PRNG, so a seed replays exactly.

import { decodeMessage, encodeMessage } from '../../../src/raft/codec.js';
import { CompactedError, RaftError, RaftInvariantError } from '../../../src/raft/errors.js';
import { SeededRng } from '../../../src/raft/rand.js';
import { canSendBeforePersist, RawNode, type Ready } from '../../../src/raft/rawnode.js';
import { MemoryStorage } from '../../../src/raft/storage.js';
import {
  type ConfChange,
  type ConfChangeSingle,
  ConfChangeTransition,
  ConfChangeType,
  type ConfChangeV2,
  type ConfState,
  EMPTY_BYTES,
  type Entry,
  EntryType,
  type HardState,
  type Message,
  MessageType,
  type ReadOnlyOption,
  type Snapshot,
  SnapshotStatus,
  StateType,
  cloneConfState,
  confChangeAsV2,
  emptyConfState,
  emptyHardState,
} from '../../../src/raft/types.js';
import { decodeConfChange, decodeConfChangeV2 } from '../../../src/raft/codec.js';
import { Checker, type MemberView, Violation } from './checker.js';
import { injectFaults, type SimFaults } from './faults.js';

/** Knobs of one simulation run. */
export interface SimOptions {
  /** Initial voters. */
  members: number;
  /** Ticks of chaos (faults on), then up to livenessTicks of calm in which progress is required. */
  chaosTicks: number;
  livenessTicks: number;
  electionTick: number;
  heartbeatTick: number;
  /** Per-message probabilities and delay (in ticks). */
  dropProb: number;
  dupProb: number;
  maxDelayTicks: number;
  /** Per-tick probabilities of faults. */
  crashProb: number;
  partitionProb: number;
  healProb: number;
  /** Per-tick probabilities of client work. */
  proposeProb: number;
  readProb: number;
  snapshotProb: number;
  confChangeProb: number;
  transferProb: number;
  /** Probability of crashing while handling a Ready (before, during, or after persisting). */
  readyCrashProb: number;
  /** Probability that persisting a Ready takes 1-4 ticks, during which the member keeps receiving messages. */
  slowDiskProb: number;
  /** Per-tick probability that a member crashes while such a slow write is in progress. */
  pendingCrashProb: number;
  /** Probability of sending the messages canSendBeforePersist allows before persisting a Ready. */
  earlySendProb: number;
  /** Raft options under test (etcd 3.5 defaults: both on). */
  preVote: boolean;
  checkQuorum: boolean;
  /** ReadIndex mode; LeaseBased assumes bounded clock drift and delays, which this network does not give. */
  readOnlyOption?: ReadOnlyOption;
  maxInflightMsgs: number;
  maxSizePerMsg: number;
  /** Bound on messages in the network; beyond it new ones are dropped. */
  networkMsgsMax: number;
  /** Deliberate raft bugs (self-test), injected by faults.ts. */
  faults?: SimFaults;
  /** Harness bug (self-test): send every message before persisting. */
  unsafeSendAllBeforePersist?: boolean;
  /** Check that a durable vote never changes within a term (default on; off to exercise election safety alone). */
  checkDurableVotes?: boolean;
  /** Print every event. */
  trace?: boolean;
}

/** A reasonable adversarial default. */
export function defaultOptions(members: number): SimOptions {
  return {
    members,
    chaosTicks: 240,
    livenessTicks: 400,
    electionTick: 10,
    heartbeatTick: 2,
    dropProb: 0.05,
    dupProb: 0.03,
    maxDelayTicks: 3,
    crashProb: 0.01,
    partitionProb: 0.012,
    healProb: 0.06,
    proposeProb: 0.5,
    readProb: 0.2,
    snapshotProb: 0.02,
    confChangeProb: 0.02,
    transferProb: 0.005,
    readyCrashProb: 0.004,
    slowDiskProb: 0.2,
    pendingCrashProb: 0.05,
    earlySendProb: 0.5,
    preVote: true,
    checkQuorum: true,
    maxInflightMsgs: 4,
    maxSizePerMsg: 64,
    networkMsgsMax: 4096,
  };
}

/** The outcome of one run. */
export interface SimResult {
  seed: number;
  violation?: Violation;
  /** Set when the cluster failed to make progress after healing. */
  liveness?: string;
  stats: Checker['stats'] & { ticks: number; messages: number; crashes: number; snapshots: number; confChanges: number };
}

interface InFlight {
  deliverAt: number;
  seq: number;
  from: bigint;
  fromIncarnation: number;
  to: bigint;
  type: MessageType;
  bytes: Uint8Array;
}

/** Bound on same-tick delivery rounds (zero-delay request/response chains). */
const DELIVERY_ROUNDS_PER_TICK_MAX = 8;

/** The applied state: a hash chain over applied entries. */
interface AppliedState {
  index: number;
  hash: number;
}

/** Storage whose snapshot() is made on demand from the latest applied state (as a member would). */
class SimStorage extends MemoryStorage {
  constructor(private readonly onDemand: () => { index: number; cs: ConfState; data: Uint8Array } | undefined) {
    super();
  }
  override snapshot(): Snapshot {
    const cur = super.snapshot();
    const want = this.onDemand();
    if (want !== undefined && want.index > cur.metadata.index && want.index <= this.lastIndex()) {
      return this.createSnapshot(want.index, want.cs, want.data);
    }
    return cur;
  }
}

/** A Ready whose write is still in progress (slow disk). */
interface PendingReady {
  rd: Ready;
  sent: Set<Message>;
  doneAt: number;
}

/** One simulated member process (and its disk, which outlives the process). */
class Member {
  alive = true;
  /** Multiplies slowDiskProb: members differ in disk speed. */
  diskSlowness = 1;
  pending: PendingReady | undefined = undefined;
  /** Stopped for good after applying its own removal (like etcd's server); restarted if re-added. */
  removed = false;
  incarnation = 0;
  rn!: RawNode;
  storage!: SimStorage;
  /** What survives a crash. */
  disk = { hs: emptyHardState(), log: new MemoryStorage() };
  sm: AppliedState = { index: 0, hash: 0 };
  /** Membership as of sm.index. */
  confState: ConfState = emptyConfState();
  constructor(readonly id: bigint) {}
}

const te = new TextEncoder();

function hashStep(h: number, e: Entry): number {
  // FNV-1a over term, type and payload, chained.
  let x = (h ^ 0x811c9dc5) >>> 0;
  const mix = (b: number) => {
    x ^= b & 0xff;
    x = Math.imul(x, 0x01000193) >>> 0;
  };
  for (let t = e.term; t > 0; t = Math.floor(t / 256)) mix(t);
  mix(e.type);
  for (let i = 0; i < e.data.length; i++) mix(e.data[i]);
  return x;
}

function encodeState(s: AppliedState): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setFloat64(0, s.index);
  v.setUint32(8, s.hash);
  return b;
}

function decodeState(b: Uint8Array): AppliedState {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { index: v.getFloat64(0), hash: v.getUint32(8) };
}

/** One seeded run. */
export class Simulation {
  private readonly rng: SeededRng;
  private readonly members: Member[] = [];
  private readonly checker: Checker;
  private net: InFlight[] = [];
  private seq = 0;
  private now = 0;
  /** Groups that can talk; undefined = fully connected. */
  private partition: Map<bigint, number> | undefined;
  private proposals = 0;
  private reads = 0;
  private readonly counters = { messages: 0, crashes: 0, snapshots: 0, confChanges: 0 };
  private readonly traceLines: string[] = [];

  constructor(
    readonly seed: number,
    readonly opts: SimOptions,
  ) {
    this.rng = new SeededRng(seed);
    this.checker = new Checker(opts.checkDurableVotes ?? true);
    const voters = Array.from({ length: opts.members }, (_, i) => BigInt(i + 1));
    // One spare member that membership changes can add later.
    for (let i = 1; i <= opts.members + 1; i++) {
      const m = new Member(BigInt(i));
      m.diskSlowness = [0, 1, 3][this.rng.intn(3)];
      if (i <= opts.members) {
        // Bootstrapped from a snapshot at index 1 holding the initial membership.
        const cs: ConfState = { ...emptyConfState(), voters };
        m.sm = { index: 1, hash: 1 };
        m.disk.log.applySnapshot({ data: encodeState(m.sm), metadata: { index: 1, term: 1, conf_state: cs } });
        m.confState = cloneConfState(cs);
      } else {
        m.alive = false;
        m.removed = true;
      }
      this.members.push(m);
      if (m.alive) this.start(m);
    }
    this.checker.onSnapshot(0n, 1, 1);
  }

  private trace(s: string): void {
    if (this.opts.trace) this.traceLines.push(`[t${this.now}] ${s}`);
  }

  /** The event log (when tracing). */
  traceOutput(): string[] {
    return this.traceLines;
  }

  /** Builds a process from the disk state. */
  private start(m: Member): void {
    m.incarnation++;
    const storage = new SimStorage(() => (m.sm.index > 0 ? { index: m.sm.index, cs: m.confState, data: encodeState(m.sm) } : undefined));
    const snap = m.disk.log.snapshot();
    if (snap.metadata.index > 0) storage.applySnapshot(snap);
    const first = m.disk.log.firstIndex();
    const last = m.disk.log.lastIndex();
    if (last >= first) storage.append(m.disk.log.entries(first, last + 1, Number.MAX_SAFE_INTEGER));
    storage.setHardState(m.disk.hs);
    m.storage = storage;
    // The state machine restarts from the snapshot and re-applies the log.
    if (snap.metadata.index > 0) {
      m.sm = decodeState(snap.data);
      m.confState = cloneConfState(snap.metadata.conf_state);
    } else {
      m.sm = { index: 0, hash: 0 };
      m.confState = emptyConfState();
    }
    m.rn = new RawNode({
      id: m.id,
      electionTick: this.opts.electionTick,
      heartbeatTick: this.opts.heartbeatTick,
      storage,
      rng: new SeededRng((this.seed * 31 + Number(m.id) * 1009 + m.incarnation * 7919) >>> 0),
      applied: snap.metadata.index,
      preVote: this.opts.preVote,
      checkQuorum: this.opts.checkQuorum,
      readOnlyOption: this.opts.readOnlyOption,
      maxInflightMsgs: this.opts.maxInflightMsgs,
      maxSizePerMsg: this.opts.maxSizePerMsg,
      maxUncommittedEntriesSize: 4096,
    });
    if (this.opts.faults) injectFaults(m.rn, this.opts.faults);
    m.alive = true;
    this.trace(
      `start ${m.id} (incarnation ${m.incarnation}) hs=${JSON.stringify(m.disk.hs, big)} snap=${snap.metadata.index} last=${last}`,
    );
  }

  private crash(m: Member, why: string): void {
    if (!m.alive) return;
    m.alive = false;
    if (m.pending !== undefined) {
      const st = m.rn.basicStatus();
      this.trace(
        `${m.id} loses an unfinished write of ${m.pending.rd.entries.length} entries (${StateType[st.raftState]}, commit ${st.commit}, disk last ${m.disk.log.lastIndex()})`,
      );
    }
    m.pending = undefined;
    // A machine crash also loses part of what was still queued for sending.
    if (!this.calm) this.net = this.net.filter((f) => f.from !== m.id || this.rng.chance(0.5));
    this.counters.crashes++;
    this.trace(`crash ${m.id}: ${why}`);
  }

  // --- network

  private connected(a: bigint, b: bigint): boolean {
    if (this.partition === undefined) return true;
    return this.partition.get(a) === this.partition.get(b);
  }

  private send(from: Member, m: Message, calm: boolean): void {
    this.counters.messages++;
    if (this.net.length >= this.opts.networkMsgsMax) return;
    const bytes = encodeMessage(m);
    const copies = !calm && this.rng.chance(this.opts.dupProb) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      if (!calm && this.rng.chance(this.opts.dropProb)) {
        this.onUndelivered(from, from.incarnation, m.to, m.type);
        continue;
      }
      // Each link has its own base latency (near and far members), plus jitter.
      const delay = calm ? this.rng.intn(2) : this.linkDelay(m.from, m.to) + (this.rng.chance(0.5) ? 0 : this.rng.intn(2));
      this.net.push({
        deliverAt: this.now + delay,
        seq: this.seq++,
        from: m.from,
        fromIncarnation: from.incarnation,
        to: m.to,
        type: m.type,
        bytes,
      });
    }
  }

  /** The transport noticed a failed delivery: tell the sender as a real transport would. */
  private onUndelivered(from: Member, incarnation: number, to: bigint, type: MessageType): void {
    if (!from.alive || from.incarnation !== incarnation) return;
    if (type === MessageType.MsgSnap) from.rn.reportSnapshot(to, SnapshotStatus.Failure);
    else if (this.rng.chance(0.3)) from.rn.reportUnreachable(to);
  }

  /** Base latency of each directed link, in ticks; redrawn when a partition heals. */
  private readonly links = new Map<string, number>();

  private linkDelay(from: bigint, to: bigint): number {
    const key = `${from}>${to}`;
    let d = this.links.get(key);
    if (d === undefined) {
      // Mostly near, sometimes far.
      d = this.rng.chance(0.6) ? 0 : this.rng.intn(this.opts.maxDelayTicks + 1);
      this.links.set(key, d);
    }
    return d;
  }

  /** Delivers every message due now, in random order (reordering). */
  private deliverDue(): void {
    // Messages sent while delivering (with no delay) arrive within the same tick: a few rounds.
    for (let round = 0; round < DELIVERY_ROUNDS_PER_TICK_MAX; round++) {
      const due: InFlight[] = [];
      const rest: InFlight[] = [];
      for (const f of this.net) (f.deliverAt <= this.now ? due : rest).push(f);
      if (due.length === 0) return;
      this.net = rest;
      // Fisher-Yates with the run's rng.
      for (let i = due.length - 1; i > 0; i--) {
        const j = this.rng.intn(i + 1);
        const t = due[i];
        due[i] = due[j];
        due[j] = t;
      }
      for (const f of due) {
        this.deliver(f);
        this.processReadies();
      }
    }
  }

  private deliver(f: InFlight): void {
    const to = this.member(f.to);
    const from = this.member(f.from);
    if (to === undefined || !to.alive || !this.connected(f.from, f.to)) {
      if (from !== undefined) this.onUndelivered(from, f.fromIncarnation, f.to, f.type);
      return;
    }
    const m = decodeMessage(f.bytes);
    if (m.type === MessageType.MsgSnap && from !== undefined) {
      // Delivered: the sender's transport reports success.
      if (from.alive && from.incarnation === f.fromIncarnation) from.rn.reportSnapshot(f.to, SnapshotStatus.Finish);
    }
    try {
      to.rn.step(m);
    } catch (e) {
      if (!(e instanceof RaftError) || e instanceof RaftInvariantError) throw e;
    }
    this.check();
  }

  private member(id: bigint): Member | undefined {
    return this.members[Number(id) - 1];
  }

  // --- Ready handling

  private processReadies(): void {
    for (let guard = 0; guard < 100; guard++) {
      let any = false;
      for (const m of this.members) {
        if (m.alive && m.pending === undefined && m.rn.hasReady()) {
          any = true;
          this.beginReady(m);
        }
      }
      if (!any) return;
    }
  }

  /** Writes that finished: the rest of their Ready's handling happens now. */
  private completePending(): void {
    for (const m of this.members) {
      const p = m.pending;
      if (m.alive && p !== undefined && p.doneAt <= this.now) {
        m.pending = undefined;
        this.finishReady(m, p.rd, p.sent);
      }
    }
  }

  /** Takes a Ready, sends what may go early, and starts persisting (finished now or after a slow write). */
  private beginReady(m: Member): void {
    const rd = m.rn.ready();
    const calm = this.calm;
    const crashProb = calm ? 0 : this.opts.readyCrashProb;
    const sent = new Set<Message>();
    if (rd.entries.length > 0) {
      let prevTerm: number | undefined;
      try {
        prevTerm = m.rn.logTerm(rd.entries[0].index - 1);
      } catch (e) {
        if (!(e instanceof CompactedError)) throw e;
      }
      this.checker.onAppend(m.id, rd.entries, prevTerm);
    }
    // Messages that may leave before persisting (a leader's appends and heartbeats).
    if (this.opts.unsafeSendAllBeforePersist) {
      for (const msg of rd.messages) {
        this.send(m, msg, calm);
        sent.add(msg);
      }
    } else if (this.rng.chance(this.opts.earlySendProb)) {
      for (const msg of rd.messages) {
        if (canSendBeforePersist(rd, msg)) {
          this.send(m, msg, calm);
          sent.add(msg);
        }
      }
    }
    if (this.rng.chance(crashProb)) return this.crash(m, 'before persisting a Ready');
    if (!calm && this.rng.chance(this.opts.slowDiskProb * m.diskSlowness)) {
      m.pending = { rd, sent, doneAt: this.now + 1 + this.rng.intn(4) };
      return;
    }
    this.finishReady(m, rd, sent);
  }

  /** Persists (possibly torn by a crash), sends the remaining messages, applies, advances. */
  private finishReady(m: Member, rd: Ready, sent: Set<Message>): void {
    const calm = this.calm;
    const crashProb = calm ? 0 : this.opts.readyCrashProb;
    // Persist: snapshot first, then entries, then the hard state. A crash may tear the write.
    if (rd.snapshot !== undefined && rd.snapshot.metadata.index > 0) {
      m.disk.log.applySnapshot(rd.snapshot);
      m.storage.applySnapshot(rd.snapshot);
    }
    if (this.rng.chance(crashProb)) {
      const k = this.rng.intn(rd.entries.length + 1);
      if (k > 0) m.disk.log.append(rd.entries.slice(0, k));
      if (k === rd.entries.length && rd.hardState !== undefined && this.rng.chance(0.5)) this.persistHardState(m, rd.hardState);
      return this.crash(m, `torn write (${k}/${rd.entries.length} entries)`);
    }
    m.disk.log.append(rd.entries);
    m.storage.append(rd.entries);
    if (rd.hardState !== undefined) {
      this.persistHardState(m, rd.hardState);
      m.storage.setHardState(rd.hardState);
    }
    if (this.rng.chance(crashProb)) return this.crash(m, 'after persisting, before sending');

    for (const msg of rd.messages) if (!sent.has(msg)) this.send(m, msg, calm);

    // Apply.
    if (rd.snapshot !== undefined && rd.snapshot.metadata.index > 0) {
      m.sm = decodeState(rd.snapshot.data);
      if (m.sm.index !== rd.snapshot.metadata.index) throw new Violation('snapshot', 'snapshot data index mismatch');
      m.confState = cloneConfState(rd.snapshot.metadata.conf_state);
      this.checker.onSnapshot(m.id, m.sm.index, m.sm.hash);
      this.trace(`${m.id} installed snapshot ${m.sm.index}`);
    }
    for (const e of rd.committedEntries) {
      if (e.index <= m.sm.index) continue;
      if (e.index !== m.sm.index + 1) throw new Violation('apply order', `member ${m.id} applies ${e.index} after ${m.sm.index}`);
      const next: AppliedState = { index: e.index, hash: hashStep(m.sm.hash, e) };
      if (e.type === EntryType.ConfChange || e.type === EntryType.ConfChangeV2) {
        const cc = e.type === EntryType.ConfChange ? confChangeAsV2(decodeConfChange(e.data)) : decodeConfChangeV2(e.data);
        // raft may ask for a snapshot while it applies the change (to probe new members): until the change
        // returns, the state machine is still at the previous index with the previous membership.
        const cs = m.rn.applyConfChange(cc);
        m.sm = next;
        m.confState = cs;
        // Remember the latest change of each member's status, cluster-wide.
        for (const ch of cc.changes) {
          const prev = this.latestChange.get(ch.node_id);
          if (prev === undefined || prev.index < e.index) {
            const removed = ch.type === ConfChangeType.RemoveNode;
            this.latestChange.set(ch.node_id, { index: e.index, removed });
            // Re-added: it may run again (restarted by the fault loop or the liveness phase).
            const target = this.member(ch.node_id);
            if (!removed && target !== undefined) target.removed = false;
          }
        }
        this.trace(
          `${m.id} applied conf change at ${e.index}: voters=${m.confState.voters} outgoing=${m.confState.voters_outgoing} learners=${m.confState.learners}`,
        );
      } else {
        m.sm = next;
      }
      this.checker.onApply(m.id, e, m.sm.hash);
      if (this.markerIndex === 0 && this.marker !== undefined && bytesEqual(e.data, this.marker)) this.markerIndex = e.index;
    }
    for (const rs of rd.readStates) this.checker.onReadState(new TextDecoder().decode(rs.request_ctx), m.id, rs.index);
    m.rn.advance(rd);
    this.check();
    // Like etcd's server: a member that applied its own removal shuts down (unless it was re-added since,
    // which a restarted member replaying its log can see).
    const latest = this.latestChange.get(m.id);
    if (latest?.removed && latest.index <= m.sm.index) {
      m.removed = true;
      this.crash(m, 'removed from the cluster');
    }
  }

  private persistHardState(m: Member, hs: HardState): void {
    this.checker.onPersistHardState(m.id, hs);
    m.disk.hs = { ...hs };
  }

  // --- checks

  private views(): MemberView[] {
    const out: MemberView[] = [];
    for (const m of this.members) {
      if (!m.alive) continue;
      const st = m.rn.basicStatus();
      const b = m.rn.logBounds();
      const rn = m.rn;
      out.push({
        id: m.id,
        incarnation: m.incarnation,
        isLeader: st.raftState === StateType.Leader,
        term: st.term,
        committed: b.committed,
        firstIndex: b.firstIndex,
        lastIndex: b.lastIndex,
        slice: (lo, hi) => rn.logSlice(lo, hi),
      });
    }
    return out;
  }

  private check(): void {
    this.checker.afterStep(this.views());
  }

  // --- client and operator actions

  private calm = false;

  private randomAlive(): Member | undefined {
    const alive = this.members.filter((m) => m.alive);
    return alive.length === 0 ? undefined : alive[this.rng.intn(alive.length)];
  }

  private leader(): Member | undefined {
    let best: Member | undefined;
    let bestTerm = -1;
    for (const m of this.members) {
      if (!m.alive) continue;
      const st = m.rn.basicStatus();
      if (st.raftState === StateType.Leader && st.term > bestTerm) {
        best = m;
        bestTerm = st.term;
      }
    }
    return best;
  }

  private propose(m: Member, data: Uint8Array): boolean {
    try {
      m.rn.propose(data);
      return true;
    } catch (e) {
      if (!(e instanceof RaftError) || e instanceof RaftInvariantError) throw e;
      return false;
    }
  }

  private clientWork(): void {
    if (this.rng.chance(this.opts.proposeProb)) {
      const m = this.randomAlive();
      if (m !== undefined) this.propose(m, te.encode(`p${this.seed}-${this.proposals++}`));
    }
    if (this.rng.chance(this.opts.readProb)) {
      const m = this.randomAlive();
      if (m !== undefined) {
        const ctx = `r${this.reads++}`;
        this.checker.onReadRequest(ctx, m.id);
        m.rn.readIndex(te.encode(ctx));
      }
    }
    if (this.rng.chance(this.opts.snapshotProb)) {
      const m = this.randomAlive();
      if (m !== undefined) this.snapshot(m);
    }
    if (this.rng.chance(this.opts.confChangeProb)) this.confChange();
    if (this.rng.chance(this.opts.transferProb)) {
      const l = this.leader();
      if (l !== undefined) {
        const voters = l.rn.status().config.voters;
        l.rn.transferLeader(voters[this.rng.intn(voters.length)]);
      }
    }
  }

  /** Snapshot at the applied index and compact the log (in memory and on disk), keeping a short tail. */
  private snapshot(m: Member): void {
    const a = m.sm.index;
    const disk = m.disk.log;
    if (a <= disk.snapshot().metadata.index || a > disk.lastIndex()) return;
    const data = encodeState(m.sm);
    disk.createSnapshot(a, m.confState, data);
    const keep = this.rng.intn(4);
    const c = a - keep;
    if (c > disk.firstIndex() - 1) disk.compact(c);
    if (a > m.storage.snapshot().metadata.index && a <= m.storage.lastIndex()) m.storage.createSnapshot(a, m.confState, data);
    if (c > m.storage.firstIndex() - 1 && c <= m.storage.lastIndex()) m.storage.compact(c);
    this.counters.snapshots++;
    this.trace(`${m.id} snapshot at ${a}, compacted to ${c}`);
  }

  /**
   * Adds a learner, promotes one, or removes a member (keeping at least `members` voters); sometimes as a
   * ConfChangeV2 that also replaces a voter through a joint configuration (auto or explicit leave).
   */
  private confChange(): void {
    const l = this.leader();
    if (l === undefined) return;
    const cs = l.rn.status().config;
    if (cs.voters_outgoing.length > 0) {
      // Joint with explicit leave: leave it.
      if (!cs.auto_leave) this.proposeConf(l, { transition: ConfChangeTransition.Auto, changes: [], context: EMPTY_BYTES }, 'leave joint');
      return;
    }
    const all = this.members.map((m) => m.id);
    const inConfig = new Set([...cs.voters, ...cs.learners]);
    const choices: ConfChangeSingle[] = [];
    for (const id of all) if (!inConfig.has(id)) choices.push({ type: ConfChangeType.AddLearnerNode, node_id: id });
    for (const id of cs.learners)
      choices.push({ type: ConfChangeType.AddNode, node_id: id }, { type: ConfChangeType.RemoveNode, node_id: id });
    if (cs.voters.length > this.opts.members) for (const id of cs.voters) choices.push({ type: ConfChangeType.RemoveNode, node_id: id });
    if (choices.length === 0) return;
    let changes: ConfChangeSingle[];
    if (cs.learners.length > 0 && this.rng.chance(0.5)) {
      // Replace a voter by a learner in one step: two voters change, so it goes through joint consensus.
      const promote = cs.learners[this.rng.intn(cs.learners.length)];
      const demote = cs.voters[this.rng.intn(cs.voters.length)];
      changes = [
        { type: ConfChangeType.AddNode, node_id: promote },
        { type: this.rng.chance(0.5) ? ConfChangeType.RemoveNode : ConfChangeType.AddLearnerNode, node_id: demote },
      ];
      const transition = this.rng.chance(0.5) ? ConfChangeTransition.Auto : ConfChangeTransition.JointExplicit;
      this.proposeConf(l, { transition, changes, context: EMPTY_BYTES }, `v2 ${ConfChangeTransition[transition]}`);
    } else {
      changes = [choices[this.rng.intn(choices.length)]];
      this.proposeConf(l, { type: changes[0].type, node_id: changes[0].node_id, context: EMPTY_BYTES }, 'v1');
    }
    // A member being added must be running (from whatever it has on disk) to catch up.
    for (const ch of changes) {
      const target = this.member(ch.node_id)!;
      if (ch.type !== ConfChangeType.RemoveNode && !target.alive) {
        target.removed = false;
        this.start(target);
      }
    }
  }

  private proposeConf(l: Member, cc: ConfChange | ConfChangeV2, what: string): void {
    try {
      l.rn.proposeConfChange(cc);
      this.counters.confChanges++;
      const changes = 'changes' in cc ? cc.changes : [cc];
      this.trace(
        `propose conf change (${what}) ${changes.map((c) => `${ConfChangeType[c.type]} ${c.node_id}`).join(', ')} at leader ${l.id}`,
      );
    } catch (e) {
      if (!(e instanceof RaftError) || e instanceof RaftInvariantError) throw e;
    }
  }

  private faultsTick(): void {
    const o = this.opts;
    for (const m of this.members) {
      if (m.removed) continue;
      if (m.alive && this.rng.chance(o.crashProb)) this.crash(m, 'random crash');
      else if (m.alive && m.pending !== undefined && this.rng.chance(o.pendingCrashProb)) this.crash(m, 'crash during a slow write');
      else if (!m.alive && this.rng.chance(0.1)) this.start(m);
    }
    if (this.partition === undefined && this.rng.chance(o.partitionProb)) {
      this.partition = new Map();
      const groups = 2 + this.rng.intn(2);
      for (const m of this.members) this.partition.set(m.id, this.rng.intn(groups));
      this.trace(`partition ${[...this.partition].map(([id, g]) => `${id}:${g}`).join(' ')}`);
    } else if (this.partition !== undefined && this.rng.chance(o.healProb)) {
      this.partition = undefined;
      this.links.clear();
      this.trace('heal');
    }
  }

  private tickAll(): void {
    for (const m of this.members) {
      // Clocks drift: a member occasionally misses a tick.
      if (m.alive && (this.calm || !this.rng.chance(0.05))) m.rn.tick();
    }
    this.check();
  }

  /** Runs the chaos phase and the liveness phase. */
  run(): SimResult {
    let liveness: string | undefined;
    try {
      for (; this.now < this.opts.chaosTicks; this.now++) {
        this.faultsTick();
        this.completePending();
        this.clientWork();
        this.tickAll();
        this.processReadies();
        this.deliverDue();
      }
      liveness = this.runLiveness();
    } catch (e) {
      if (e instanceof Violation) return this.result(e, undefined);
      // A member's own assertion (e.g. a commit index beyond its log: data it acknowledged is gone).
      if (e instanceof RaftInvariantError) return this.result(new Violation('raft assertion', e.message), undefined);
      throw e;
    }
    return this.result(undefined, liveness);
  }

  /** Heals everything and requires a leader and a committed, everywhere-applied proposal in bounded time. */
  private runLiveness(): string | undefined {
    this.calm = true;
    this.partition = undefined;
    for (const m of this.members) if (!m.alive && !m.removed) this.start(m);
    const deadline = this.now + this.opts.livenessTicks;
    const marker = te.encode(`live-${this.seed}`);
    this.marker = marker;
    let proposedAt = -1;
    for (; this.now < deadline; this.now++) {
      this.completePending();
      // Members re-added meanwhile come back.
      for (const m of this.members) if (!m.alive && !m.removed) this.start(m);
      this.tickAll();
      this.processReadies();
      this.deliverDue();
      const l = this.leader();
      if (l === undefined) continue;
      const cs = l.rn.status().config;
      if (cs.voters_outgoing.length > 0 && !cs.auto_leave && this.now % this.opts.electionTick === 0) {
        this.proposeConf(l, { transition: ConfChangeTransition.Auto, changes: [], context: EMPTY_BYTES }, 'leave joint');
      }
      if (proposedAt < 0 || this.now - proposedAt > 4 * this.opts.electionTick) {
        if (this.propose(l, marker)) proposedAt = this.now;
      }
      // Done when every member of the configuration applied the marker.
      const need = [...new Set([...cs.voters, ...cs.voters_outgoing, ...cs.learners])].map((id) => this.member(id)!);
      if (need.every((m) => m.alive && this.appliedMarker(m))) return undefined;
    }
    const states = this.members
      .filter((m) => m.alive)
      .map((m) => {
        const st = m.rn.status();
        return `${m.id}:${StateType[st.softState.raft_state]}@${st.hardState.term} commit=${st.hardState.commit} applied=${m.sm.index}`;
      });
    return `no progress within ${this.opts.livenessTicks} ticks after healing: ${states.join(', ')}`;
  }

  /** The liveness proposal, and the index where it was first applied (0 = not yet). */
  private marker: Uint8Array | undefined;
  private markerIndex = 0;
  private readonly latestChange = new Map<bigint, { index: number; removed: boolean }>();

  /** By state machine safety, a member past markerIndex has applied the marker. */
  private appliedMarker(m: Member): boolean {
    return this.markerIndex > 0 && m.sm.index >= this.markerIndex;
  }

  private result(violation: Violation | undefined, liveness: string | undefined): SimResult {
    return { seed: this.seed, violation, liveness, stats: { ...this.checker.stats, ticks: this.now, ...this.counters } };
  }
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? v.toString() : v;
}
