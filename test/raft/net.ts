// A tiny in-process cluster for unit tests: RawNodes over MemoryStorage, Readies handled in the
// prescribed order (persist, send, apply, advance), and a message queue the test delivers or filters.

import { decodeConfChange, decodeConfChangeV2 } from '../../src/raft/codec.js';
import { RaftError, RaftInvariantError } from '../../src/raft/errors.js';
import type { Config } from '../../src/raft/raft.js';
import { SeededRng } from '../../src/raft/rand.js';
import { RawNode, type Ready } from '../../src/raft/rawnode.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import {
  type ConfState,
  emptyConfState,
  type Entry,
  EntryType,
  type Message,
  MessageType,
  type ReadState,
  type Snapshot,
  SnapshotStatus,
  StateType,
} from '../../src/raft/types.js';

/** Storage whose snapshot() reflects the latest applied state, as a real member produces on demand. */
export class SnapStorage extends MemoryStorage {
  /** Index and membership of the latest applied state (set by TestNet as it applies). */
  appliedIndex = 0;
  conf: ConfState = emptyConfState();

  override snapshot(): Snapshot {
    const cur = super.snapshot();
    if (this.appliedIndex > cur.metadata.index && this.appliedIndex <= this.lastIndex()) {
      return this.createSnapshot(this.appliedIndex, this.conf, new TextEncoder().encode(`state@${this.appliedIndex}`));
    }
    return cur;
  }
}

/** One member with its storage and what it applied. */
export interface TestNode {
  id: bigint;
  rn: RawNode;
  storage: SnapStorage;
  applied: Entry[];
  readStates: ReadState[];
}

/** Options for every node of a TestNet. */
export type NodeOptions = Partial<Omit<Config, 'id' | 'storage'>>;

/** A cluster whose members all start from a snapshot at index 1 (term 1) listing the voters. */
export class TestNet {
  readonly nodes = new Map<bigint, TestNode>();
  /** Messages sent and not yet delivered. */
  queue: Message[] = [];
  /** Messages matching this are dropped when sent. */
  drop: (m: Message) => boolean = () => false;

  constructor(voters: number[], opts: NodeOptions = {}, learners: number[] = []) {
    for (const id of [...voters, ...learners]) {
      const storage = new SnapStorage();
      const cs = { ...emptyConfState(), voters: voters.map(BigInt), learners: learners.map(BigInt) };
      storage.applySnapshot({ data: new Uint8Array(0), metadata: { index: 1, term: 1, conf_state: cs } });
      // The snapshot is from term 1, so the first election is for term 2.
      storage.setHardState({ term: 1, vote: 0n, commit: 1 });
      storage.appliedIndex = 1;
      storage.conf = cs;
      this.add(BigInt(id), storage, opts);
    }
  }

  /** Adds a member over the given storage (a new, empty one by default). */
  add(id: bigint, storage: SnapStorage = new SnapStorage(), opts: NodeOptions = {}): TestNode {
    const rn = new RawNode({
      id,
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      rng: new SeededRng(Number(id)),
      applied: storage.firstIndex() - 1,
      ...opts,
    });
    const n: TestNode = { id, rn, storage, applied: [], readStates: [] };
    this.nodes.set(id, n);
    return n;
  }

  node(id: number | bigint): TestNode {
    const n = this.nodes.get(BigInt(id));
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** Handles one Ready of node n completely; returns it. */
  handle(n: TestNode): Ready {
    const rd = n.rn.ready();
    if (rd.snapshot !== undefined && rd.snapshot.metadata.index > 0) {
      n.storage.applySnapshot(rd.snapshot);
      n.storage.appliedIndex = rd.snapshot.metadata.index;
      n.storage.conf = rd.snapshot.metadata.conf_state;
    }
    n.storage.append(rd.entries);
    if (rd.hardState !== undefined) n.storage.setHardState(rd.hardState);
    for (const m of rd.messages) {
      if (this.drop(m)) {
        if (m.type === MessageType.MsgSnap) this.pendingReports.push({ from: n, to: m.to, ok: false });
        continue;
      }
      this.queue.push(m);
      if (m.type === MessageType.MsgSnap) this.pendingReports.push({ from: n, to: m.to, ok: true });
    }
    for (const e of rd.committedEntries) {
      n.applied.push(e);
      if (e.type === EntryType.ConfChange) n.storage.conf = n.rn.applyConfChange(decodeConfChange(e.data));
      else if (e.type === EntryType.ConfChangeV2) n.storage.conf = n.rn.applyConfChange(decodeConfChangeV2(e.data));
      n.storage.appliedIndex = e.index;
    }
    n.readStates.push(...rd.readStates);
    n.rn.advance(rd);
    return rd;
  }

  /** Snapshot sends to report back to the sender (as a transport does after streaming one). */
  private pendingReports: { from: TestNode; to: bigint; ok: boolean }[] = [];
  /** Report snapshot outcomes automatically (tests of the failure path turn it off). */
  autoReportSnapshots = true;

  /** Handles every pending Ready (without delivering messages). */
  handleAll(): void {
    for (let changed = true; changed; ) {
      changed = false;
      if (this.autoReportSnapshots) {
        for (const r of this.pendingReports.splice(0))
          r.from.rn.reportSnapshot(r.to, r.ok ? SnapshotStatus.Finish : SnapshotStatus.Failure);
      }
      for (const n of this.nodes.values()) {
        if (n.rn.hasReady()) {
          this.handle(n);
          changed = true;
        }
      }
    }
  }

  /** Delivers one message; raft's expected refusals (dropped proposals etc.) are swallowed. */
  deliver(m: Message): void {
    const n = this.nodes.get(m.to);
    if (n === undefined) return;
    try {
      n.rn.step(m);
    } catch (e) {
      if (!(e instanceof RaftError) || e instanceof RaftInvariantError) throw e;
    }
  }

  /** Handles Readies and delivers messages until nothing moves. Returns the messages delivered. */
  stabilize(maxRounds = 1000): Message[] {
    const delivered: Message[] = [];
    for (let round = 0; round < maxRounds; round++) {
      this.handleAll();
      if (this.queue.length === 0) return delivered;
      const q = this.queue;
      this.queue = [];
      for (const m of q) {
        delivered.push(m);
        this.deliver(m);
      }
    }
    throw new Error('did not stabilize');
  }

  /** Ticks every node n times, stabilizing after each tick. */
  tick(n = 1, ids?: number[]): void {
    for (let i = 0; i < n; i++) {
      for (const node of this.nodes.values()) if (ids === undefined || ids.includes(Number(node.id))) node.rn.tick();
      this.stabilize();
    }
  }

  /** Elects id: campaign and stabilize. */
  elect(id: number): void {
    this.node(id).rn.campaign();
    this.stabilize();
    if (this.state(id) !== StateType.Leader) throw new Error(`${id} did not win`);
  }

  state(id: number): StateType {
    return this.node(id).rn.basicStatus().raftState;
  }

  term(id: number): number {
    return this.node(id).rn.basicStatus().term;
  }

  commit(id: number): number {
    return this.node(id).rn.basicStatus().commit;
  }

  /** Payloads applied by id (normal entries with data), as strings. */
  appliedData(id: number): string[] {
    return this.node(id)
      .applied.filter((e) => e.type === EntryType.Normal && e.data.length > 0)
      .map((e) => new TextDecoder().decode(e.data));
  }

  /** Cuts id off: messages to and from it are dropped. */
  isolate(id: number): void {
    const b = BigInt(id);
    this.drop = (m) => m.to === b || m.from === b;
  }

  heal(): void {
    this.drop = () => false;
  }
}

/** Message types of msgs, for compact assertions. */
export function types(msgs: Message[]): string[] {
  return msgs.map((m) => `${m.from}->${m.to} ${MessageType[m.type]}`);
}

export const te = new TextEncoder();
