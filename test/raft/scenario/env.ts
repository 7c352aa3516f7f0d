// The interpreter behind test/raft/testdata/*.txt: a few RawNodes in one process, a message list between
// them, and commands (add-nodes, campaign, propose, stabilize, deliver-msgs, ...) that print what happens
// in etcd's notation, so a scenario reads as inputs and expected outputs.

import { decodeConfChange, decodeConfChangeV2, decodeMessage, encodeMessage } from '../../../src/raft/codec.js';
import { parseChanges } from '../../../src/raft/confchange.js';
import { describeEntries, describeMessage, describeReady } from '../../../src/raft/describe.js';
import { RaftError } from '../../../src/raft/errors.js';
import { stateName } from '../../../src/raft/raft.js';
import { SeededRng } from '../../../src/raft/rand.js';
import { RawNode } from '../../../src/raft/rawnode.js';
import { MemoryStorage } from '../../../src/raft/storage.js';
import {
  ConfChangeTransition,
  type ConfState,
  EMPTY_BYTES,
  EntryType,
  type HardState,
  type Message,
  type RaftLogger,
  ReadOnlyOption,
  type Snapshot,
  SnapshotStatus,
  StateType,
  cloneConfState,
  emptyConfState,
} from '../../../src/raft/types.js';
import type { CmdArg, TestCase } from './datadriven.js';
import { type NodeView, Trace } from './trace.js';

const levels = ['DEBUG', 'INFO', 'WARN', 'ERROR', 'NONE'] as const;

/** Storage whose snapshot() is the node's latest applied state, as a real member would produce on demand. */
class EnvStorage extends MemoryStorage {
  snapshotOverride: (() => Snapshot) | undefined;
  override snapshot(): Snapshot {
    return this.snapshotOverride ? this.snapshotOverride() : super.snapshot();
  }
}

interface AppliedState {
  index: number;
  term: number;
  confState: ConfState;
  data: Uint8Array;
}

interface EnvNode {
  id: bigint;
  rn: RawNode;
  storage: EnvStorage;
  /** State after each applied entry (the first is the initial snapshot). */
  history: AppliedState[];
  opts: NodeOptions;
}

interface NodeOptions {
  preVote: boolean;
  checkQuorum: boolean;
  maxInflight: number;
  maxSizePerMsg: number;
  readOnly: ReadOnlyOption;
  electionTick: number;
  heartbeatTick: number;
  maxUncommitted: number;
}

const te = new TextEncoder();

/** Every member's election timeout, in ticks (a heartbeat is one tick). */
export const ELECTION_TICK = 10;

/** Runs scenario commands against an in-process cluster and returns their output. */
export class Env {
  private nodes: EnvNode[] = [];
  private messages: Message[] = [];
  private readonly isolated = new Set<bigint>();
  private out: string[] = [];
  /** The run as data, for property checks that do not read the transcript. */
  readonly trace = new Trace();
  /** Index into levels; DEBUG by default, NONE silences everything but errors. */
  private level = 0;
  private readonly logger: RaftLogger = {
    debug: (m) => this.log(0, m),
    info: (m) => this.log(1, m),
    warn: (m) => this.log(2, m),
    error: (m) => this.log(3, m),
  };

  private log(lvl: number, msg: string): void {
    if (lvl >= this.level) this.write(`${levels[lvl]} ${msg}`);
  }

  private write(line: string): void {
    this.out.push(line);
  }

  /** Runs one command; returns its output ("ok" when silent). */
  handle(c: TestCase): string {
    this.out = [];
    this.trace.begin(c);
    try {
      this.dispatch(c);
    } catch (e) {
      if (!(e instanceof RaftError) && !(e instanceof EnvError)) throw e;
      this.trace.record({ kind: 'error', name: e.constructor.name, message: e.message });
      this.write(`error: ${e.constructor.name}: ${e.message}`);
    }
    const step = this.trace.steps[this.trace.steps.length - 1];
    for (const n of this.nodes) step.after.set(n.id, this.view(n));
    if (this.level === levels.length - 1) {
      const errs = this.out.filter((l) => l.startsWith('error: '));
      return errs.length > 0 ? errs.join('\n') : 'ok (quiet)';
    }
    const s = this.out.join('\n');
    return s === '' ? 'ok' : s;
  }

  private dispatch(c: TestCase): void {
    switch (c.cmd) {
      case 'log-level':
        this.level = levels.indexOf(arg0(c).toUpperCase() as (typeof levels)[number]);
        if (this.level < 0) throw new EnvError(`unknown level ${arg0(c)}`);
        return;
      case 'add-nodes':
        return this.addNodes(c);
      case 'campaign':
        return this.node(c).rn.campaign();
      case 'propose':
        return this.node(c).rn.propose(te.encode(c.args[1]?.key ?? ''));
      case 'propose-conf-change':
        return this.proposeConfChange(c);
      case 'process-ready':
        for (const id of ids(c)) this.processReadyOf(this.byId(id), false);
        return;
      case 'deliver-msgs':
        return this.deliverCmd(c);
      case 'stabilize':
        return this.stabilize(ids(c).map((id) => this.byId(id)));
      case 'tick-heartbeat': {
        const n = this.node(c);
        for (let i = 0; i < n.opts.heartbeatTick; i++) this.tick(n);
        return;
      }
      case 'tick-election': {
        // Twice the election tick always passes the randomized timeout.
        const n = this.node(c);
        for (let i = 0; i < 2 * n.opts.electionTick; i++) this.tick(n);
        return;
      }
      case 'tick': {
        const n = this.node(c);
        const times = Number(c.args[1]?.key ?? '1');
        for (let i = 0; i < times; i++) this.tick(n);
        return;
      }
      case 'raft-state':
        return this.raftState();
      case 'raft-log':
        return this.raftLog(this.node(c));
      case 'status':
        return this.status(this.node(c));
      case 'compact':
        return this.compact(this.node(c), Number(c.args[1].key));
      case 'read-index':
        return this.node(c).rn.readIndex(te.encode(c.args[1]?.key ?? ''));
      case 'transfer-leadership': {
        const from = BigInt(kv(c, 'from'));
        const to = BigInt(kv(c, 'to'));
        return this.byId(from).rn.transferLeader(to);
      }
      case 'report-unreachable':
        return this.node(c).rn.reportUnreachable(BigInt(c.args[1].key));
      case 'report-snapshot': {
        const status = kv(c, 'status', 'finish') === 'failure' ? SnapshotStatus.Failure : SnapshotStatus.Finish;
        return this.node(c).rn.reportSnapshot(BigInt(c.args[1].key), status);
      }
      case 'restart':
        return this.restart(this.node(c));
      case 'isolate':
        // Messages to and from these members are lost (as sent) until heal.
        for (const id of ids(c)) this.isolated.add(id);
        return;
      case 'heal':
        this.isolated.clear();
        return;
      default:
        throw new EnvError(`unknown command ${c.cmd}`);
    }
  }

  private addNodes(c: TestCase): void {
    const n = Number(arg0(c));
    const cs = emptyConfState();
    let index = 0;
    let data: Uint8Array = EMPTY_BYTES;
    const opts: NodeOptions = {
      preVote: false,
      checkQuorum: false,
      maxInflight: 256,
      maxSizePerMsg: Number.MAX_SAFE_INTEGER,
      readOnly: ReadOnlyOption.Safe,
      electionTick: ELECTION_TICK,
      heartbeatTick: 1,
      maxUncommitted: 0,
    };
    for (const a of c.args.slice(1)) {
      switch (a.key) {
        case 'voters':
          cs.voters = a.vals.map((v) => BigInt(v));
          break;
        case 'learners':
          cs.learners = a.vals.map((v) => BigInt(v));
          break;
        case 'index':
          index = Number(a.vals[0]);
          break;
        case 'content':
          data = te.encode(a.vals[0]);
          break;
        case 'prevote':
          opts.preVote = a.vals[0] === 'true';
          break;
        case 'checkquorum':
          opts.checkQuorum = a.vals[0] === 'true';
          break;
        case 'max-inflight':
          opts.maxInflight = Number(a.vals[0]);
          break;
        case 'max-size-per-msg':
          opts.maxSizePerMsg = Number(a.vals[0]);
          break;
        case 'max-uncommitted':
          opts.maxUncommitted = Number(a.vals[0]);
          break;
        case 'read-only':
          opts.readOnly = a.vals[0] === 'lease' ? ReadOnlyOption.LeaseBased : ReadOnlyOption.Safe;
          break;
        default:
          throw new EnvError(`unknown add-nodes argument ${a.key}`);
      }
    }
    for (let i = 0; i < n; i++) {
      const id = BigInt(this.nodes.length + 1);
      const storage = new EnvStorage();
      const initial: AppliedState = { index: 0, term: 0, confState: emptyConfState(), data: EMPTY_BYTES };
      if (index > 0) {
        // Start from a snapshot at `index` (term 1) holding the membership, like a bootstrapped cluster.
        if (index <= 1) throw new EnvError('index must be > 1');
        const snap: Snapshot = { data, metadata: { index, term: 1, conf_state: cloneConfState(cs) } };
        storage.applySnapshot(snap);
        initial.index = index;
        initial.term = 1;
        initial.confState = cloneConfState(cs);
        initial.data = data;
      }
      const node: EnvNode = { id, rn: undefined as unknown as RawNode, storage, history: [initial], opts: { ...opts } };
      storage.snapshotOverride = () => {
        const h = node.history[node.history.length - 1];
        return { data: h.data, metadata: { index: h.index, term: h.term, conf_state: cloneConfState(h.confState) } };
      };
      node.rn = this.newRawNode(node, index);
      this.nodes.push(node);
    }
  }

  private newRawNode(node: EnvNode, applied: number): RawNode {
    return new RawNode({
      id: node.id,
      electionTick: node.opts.electionTick,
      heartbeatTick: node.opts.heartbeatTick,
      storage: node.storage,
      rng: new SeededRng(Number(node.id)),
      applied,
      preVote: node.opts.preVote,
      checkQuorum: node.opts.checkQuorum,
      maxInflightMsgs: node.opts.maxInflight,
      maxSizePerMsg: node.opts.maxSizePerMsg,
      maxUncommittedEntriesSize: node.opts.maxUncommitted,
      readOnlyOption: node.opts.readOnly,
      logger: this.logger,
    });
  }

  /** Crash and restart: a new RawNode over the same (durable) storage; in-flight messages to it are lost. */
  private restart(node: EnvNode): void {
    this.messages = this.messages.filter((m) => m.to !== node.id);
    const applied = node.history[node.history.length - 1].index;
    node.rn = this.newRawNode(node, applied);
  }

  private proposeConfChange(c: TestCase): void {
    const node = this.node(c);
    const changes = parseChanges(c.input.join(' '));
    if (kv(c, 'v1', 'false') === 'true') {
      if (changes.length !== 1) throw new EnvError('v1 conf change takes exactly one change');
      node.rn.proposeConfChange({ type: changes[0].type, node_id: changes[0].node_id, context: EMPTY_BYTES });
      return;
    }
    const tr = kv(c, 'transition', 'auto');
    const transition =
      tr === 'auto'
        ? ConfChangeTransition.Auto
        : tr === 'implicit'
          ? ConfChangeTransition.JointImplicit
          : ConfChangeTransition.JointExplicit;
    node.rn.proposeConfChange({ transition, changes, context: EMPTY_BYTES });
  }

  private processReadyOf(node: EnvNode, indent: boolean): void {
    const before = this.out.length;
    const rd = node.rn.ready();
    for (const l of describeReady(rd).split('\n')) if (l !== '') this.write(l);
    if (rd.hardState !== undefined) node.storage.setHardState(rd.hardState as HardState);
    node.storage.append(rd.entries);
    if (rd.snapshot !== undefined && rd.snapshot.metadata.index > 0) {
      node.storage.applySnapshot(rd.snapshot);
      const s = rd.snapshot;
      node.history.push({ index: s.metadata.index, term: s.metadata.term, confState: cloneConfState(s.metadata.conf_state), data: s.data });
    }
    for (const e of rd.committedEntries) {
      const prev = node.history[node.history.length - 1];
      let cs = prev.confState;
      let update: Uint8Array = e.data;
      if (e.type === EntryType.ConfChange) {
        const cc = decodeConfChange(e.data);
        cs = node.rn.applyConfChange(cc);
        update = cc.context;
      } else if (e.type === EntryType.ConfChangeV2) {
        const cc = decodeConfChangeV2(e.data);
        cs = node.rn.applyConfChange(cc);
        update = cc.context;
      }
      const data = new Uint8Array(prev.data.length + update.length);
      data.set(prev.data);
      data.set(update, prev.data.length);
      node.history.push({ index: e.index, term: e.term, confState: cs, data });
    }
    const sent: Array<{ msg: Message; lost: boolean }> = [];
    for (const m of rd.messages) {
      const lost = this.isolated.has(m.from) || this.isolated.has(m.to);
      sent.push({ msg: decodeMessage(encodeMessage(m)), lost });
      if (!lost) this.messages.push(decodeMessage(encodeMessage(m)));
    }
    node.rn.advance(rd);
    this.trace.record({ kind: 'ready', node: node.id, ready: rd, after: this.view(node) });
    for (const x of sent) this.trace.record({ kind: 'send', ...x });
    if (indent) for (let i = before; i < this.out.length; i++) this.out[i] = '  ' + this.out[i];
  }

  private deliverCmd(c: TestCase): void {
    let n = 0;
    for (const a of c.args) {
      if (a.key === 'drop') {
        for (const v of a.vals) n += this.deliver(BigInt(v), true, false);
      } else if (a.vals.length === 0) {
        n += this.deliver(BigInt(a.key), false, false);
      }
    }
    if (n === 0) this.write('no messages');
  }

  /** Delivers (or drops) every queued message to `to`, in order. */
  private deliver(to: bigint, drop: boolean, indent: boolean): number {
    const mine = this.messages.filter((m) => m.to === to);
    this.messages = this.messages.filter((m) => m.to !== to);
    const pad = indent ? '  ' : '';
    for (const m of mine) {
      this.write(`${pad}${drop ? 'dropped: ' : ''}${describeMessage(m)}`);
      const node = this.nodes.find((x) => x.id === to);
      if (drop || node === undefined) {
        this.trace.record({ kind: 'deliver', msg: m, dropped: true, after: undefined });
        continue;
      }
      const before = this.out.length;
      try {
        node.rn.step(m);
      } catch (e) {
        if (!(e instanceof RaftError)) throw e;
        this.trace.record({ kind: 'error', name: e.constructor.name, message: e.message });
        this.write(`${e.constructor.name}: ${e.message}`);
      }
      this.trace.record({ kind: 'deliver', msg: m, dropped: false, after: this.view(node) });
      if (indent) for (let i = before; i < this.out.length; i++) this.out[i] = '  ' + this.out[i];
    }
    return mine.length;
  }

  private stabilize(only: EnvNode[]): void {
    const nodes = only.length > 0 ? only : this.nodes;
    for (let round = 0; ; round++) {
      if (round > 1000) throw new EnvError('stabilize did not converge');
      let done = true;
      for (const n of nodes) {
        if (n.rn.hasReady()) {
          done = false;
          this.write(`> ${n.id} handling Ready`);
          this.processReadyOf(n, true);
        }
      }
      for (const n of nodes) {
        if (this.messages.some((m) => m.to === n.id)) {
          done = false;
          this.write(`> ${n.id} receiving messages`);
          this.deliver(n.id, false, true);
        }
      }
      if (done) return;
    }
  }

  private tick(n: EnvNode): void {
    n.rn.tick();
    this.trace.record({ kind: 'tick', node: n.id, after: this.view(n) });
  }

  /** The member as the trace records it. */
  private view(n: EnvNode): NodeView {
    const st = n.rn.status();
    const b = n.rn.logBounds();
    return {
      id: n.id,
      state: st.softState.raft_state,
      term: st.hardState.term,
      vote: st.hardState.vote,
      lead: st.softState.lead,
      commit: st.hardState.commit,
      applied: st.applied,
      firstIndex: b.firstIndex,
      lastIndex: b.lastIndex,
      config: cloneConfState(st.config),
      progress: st.progress,
      log: n.rn.logEntries(),
      persisted: { ...n.storage.initialState().hardState },
    };
  }

  private raftState(): void {
    for (const n of this.nodes) {
      const st = n.rn.status();
      const cs = st.config;
      const voter = cs.voters.includes(n.id) || cs.voters_outgoing.includes(n.id);
      this.write(
        `${n.id}: ${stateName(st.softState.raft_state)} (${voter ? 'Voter' : 'Non-Voter'}) Term:${st.hardState.term} Lead:${st.softState.lead}`,
      );
    }
  }

  private raftLog(n: EnvNode): void {
    const ents = n.rn.logEntries();
    if (ents.length === 0) {
      const b = n.rn.logBounds();
      this.write(`log is empty: first index=${b.firstIndex}, last index=${b.lastIndex}`);
      return;
    }
    for (const l of describeEntries(ents).split('\n')) if (l !== '') this.write(l);
  }

  private status(n: EnvNode): void {
    const st = n.rn.status();
    if (st.softState.raft_state !== StateType.Leader) {
      this.write(
        `${n.id}: ${stateName(st.softState.raft_state)} term=${st.hardState.term} commit=${st.hardState.commit} applied=${st.applied}`,
      );
      return;
    }
    for (const [id, p] of n.rn.describeProgress()) this.write(`${id}: ${p}`);
  }

  private compact(n: EnvNode, index: number): void {
    const h = n.history.find((x) => x.index === index);
    if (h === undefined) throw new EnvError(`no applied state at index ${index}`);
    n.storage.createSnapshot(index, h.confState, h.data);
    n.storage.compact(index);
    this.raftLog(n);
  }

  private node(c: TestCase): EnvNode {
    return this.byId(BigInt(arg0(c)));
  }

  private byId(id: bigint): EnvNode {
    const n = this.nodes.find((x) => x.id === id);
    if (n === undefined) throw new EnvError(`no node ${id}`);
    return n;
  }
}

class EnvError extends Error {}

function arg0(c: TestCase): string {
  if (c.args.length === 0) throw new EnvError(`${c.cmd}: missing argument`);
  return c.args[0].key;
}

function ids(c: TestCase): bigint[] {
  return c.args.filter((a: CmdArg) => a.vals.length === 0).map((a) => BigInt(a.key));
}

function kv(c: TestCase, key: string, dflt?: string): string {
  const a = c.args.find((x) => x.key === key);
  if (a === undefined || a.vals.length === 0) {
    if (dflt !== undefined) return dflt;
    throw new EnvError(`${c.cmd}: missing ${key}=`);
  }
  return a.vals[0];
}
