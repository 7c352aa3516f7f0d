// The Ready/Advance seam: what a Ready holds and when, usage errors, input validation, bootstrap,
// restart from storage, and determinism.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeConfChange, encodeMessage } from '../../src/raft/codec.js';
import { describeReady } from '../../src/raft/describe.js';
import {
  InvalidMessageError,
  RaftConfigError,
  RawNodeUsageError,
  StepLocalMsgError,
  StepPeerNotFoundError,
} from '../../src/raft/errors.js';
import { SeededRng } from '../../src/raft/rand.js';
import { RawNode } from '../../src/raft/rawnode.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import { EntryType, MessageType, newMessage, StateType } from '../../src/raft/types.js';
import { ent } from './helpers.js';
import { TestNet, te } from './net.js';

function single(): { rn: RawNode; s: MemoryStorage } {
  const s = new MemoryStorage();
  const rn = new RawNode({ id: 1n, electionTick: 10, heartbeatTick: 1, storage: s, rng: new SeededRng(1) });
  return { rn, s };
}

test('config validation', () => {
  const s = new MemoryStorage();
  const base = { id: 1n, electionTick: 10, heartbeatTick: 1, storage: s, rng: new SeededRng(1) };
  const bad = (c: object) =>
    assert.throws(
      () => new RawNode({ ...base, ...c }),
      (e: unknown) => e instanceof RaftConfigError,
    );
  bad({ id: 0n });
  bad({ id: 1n << 64n });
  bad({ heartbeatTick: 0 });
  bad({ electionTick: 1 });
  bad({ maxInflightMsgs: 0 });
  bad({ maxSizePerMsg: -1 });
  bad({ readOnlyOption: 1, checkQuorum: false });
});

test('bootstrap: the initial members become committed conf change entries in the first Ready', () => {
  const { rn, s } = single();
  rn.bootstrap([{ id: 1n }, { id: 2n, context: te.encode('m2') }]);
  const rd = rn.ready();
  assert.equal(rd.hardState, { term: 1, vote: 0n, commit: 2 });
  assert.equal(
    rd.entries.map((e) => [e.index, e.term, e.type]),
    [
      [1, 1, EntryType.ConfChange],
      [2, 1, EntryType.ConfChange],
    ],
  );
  assert.equal(rd.committedEntries.length, 2);
  const cc = decodeConfChange(rd.entries[1].data);
  assert.is(cc.node_id, 2n);
  assert.equal(cc.context, te.encode('m2'));
  assert.ok(rd.mustSync);
  s.append(rd.entries);
  s.setHardState(rd.hardState!);
  for (const e of rd.committedEntries) rn.applyConfChange(decodeConfChange(e.data));
  rn.advance(rd);
  assert.equal(rn.status().config.voters, [1n, 2n]);
  assert.throws(
    () => single().rn.bootstrap([]),
    (e: unknown) => e instanceof RawNodeUsageError,
  );
  const nonEmpty = single();
  nonEmpty.s.append([ent(1, 1)]);
  const rn2 = new RawNode({ id: 1n, electionTick: 10, heartbeatTick: 1, storage: nonEmpty.s, rng: new SeededRng(1) });
  assert.throws(
    () => rn2.bootstrap([{ id: 1n }]),
    (e: unknown) => e instanceof RawNodeUsageError,
  );
});

test('ready() twice without advance() is a usage error; so is advance() without ready()', () => {
  const { rn } = single();
  rn.bootstrap([{ id: 1n }]);
  const rd = rn.ready();
  assert.throws(
    () => rn.ready(),
    (e: unknown) => e instanceof RawNodeUsageError,
  );
  rn.advance(rd);
  assert.throws(
    () => rn.advance(rd),
    (e: unknown) => e instanceof RawNodeUsageError,
  );
});

test('hasReady and Ready contents follow state changes: soft state, hard state, messages, mustSync', () => {
  const net = new TestNet([1, 2, 3]);
  const n1 = net.node(1).rn;
  assert.not.ok(n1.hasReady());
  n1.campaign();
  assert.ok(n1.hasReady());
  const rd = n1.ready();
  assert.equal(rd.softState, { lead: 0n, raft_state: StateType.PreCandidate });
  assert.is(rd.hardState, undefined, 'pre-vote changes no hard state');
  assert.not.ok(rd.mustSync);
  assert.is(rd.messages.length, 2);
  n1.advance(rd);
  assert.not.ok(n1.hasReady());
  for (const m of rd.messages) net.deliver(m);
  net.stabilize();
  assert.is(net.state(1), StateType.Leader);
  n1.propose(te.encode('x'));
  const rd2 = n1.ready();
  assert.ok(rd2.mustSync, 'new entries must be fsynced');
  assert.is(rd2.softState, undefined);
  assert.is(rd2.entries.length, 1);
  net.node(1).storage.append(rd2.entries);
  n1.advance(rd2);
});

test('step validates what comes from the network', () => {
  const net = new TestNet([1, 2, 3]);
  const rn = net.node(1).rn;
  const m = newMessage(MessageType.MsgHup, 1n);
  assert.throws(
    () => rn.step(m),
    (e: unknown) => e instanceof StepLocalMsgError,
  );
  const resp = newMessage(MessageType.MsgAppResp, 1n);
  resp.from = 9n;
  resp.term = 1;
  assert.throws(
    () => rn.step(resp),
    (e: unknown) => e instanceof StepPeerNotFoundError,
  );
  const isInvalid = (e: unknown) => e instanceof InvalidMessageError;
  const wrongTo = newMessage(MessageType.MsgHeartbeat, 2n);
  wrongTo.from = 3n;
  assert.throws(() => rn.step(wrongTo), isInvalid);
  const emptyProp = newMessage(MessageType.MsgProp, 1n);
  assert.throws(() => rn.step(emptyProp), isInvalid);
  const read = newMessage(MessageType.MsgReadIndex, 1n);
  assert.throws(() => rn.step(read), isInvalid);
  const snap = newMessage(MessageType.MsgSnap, 1n);
  snap.from = 2n;
  snap.term = 5;
  assert.throws(() => rn.step(snap), isInvalid);
  const gap = newMessage(MessageType.MsgApp, 1n);
  gap.from = 2n;
  gap.term = 3;
  gap.index = 1;
  gap.logTerm = 1;
  gap.entries = [ent(3, 3)];
  assert.throws(() => rn.step(gap), isInvalid, 'entries must follow index');
  const badTerm = { ...gap, entries: [ent(2, 4)] };
  assert.throws(() => rn.step(badTerm), isInvalid, 'entry term above the message term');
  assert.is(net.term(1), 1, 'nothing was applied');
});

test('restart: a member rebuilt from its storage keeps term, vote, log and commit', () => {
  const net = new TestNet([1, 2, 3]);
  net.elect(1);
  net.node(1).rn.propose(te.encode('keep'));
  net.stabilize();
  const before = net.node(2).rn.basicStatus();
  const s2 = net.node(2).storage;
  net.nodes.delete(2n);
  const n2 = net.add(2n, s2);
  const after = n2.rn.basicStatus();
  assert.is(after.term, before.term);
  assert.is(after.vote, before.vote);
  assert.is(after.commit, before.commit);
  assert.is(after.raftState, StateType.Follower);
  assert.is(n2.rn.logBounds().lastIndex, net.node(1).rn.logBounds().lastIndex);
  // With applied set to the snapshot index, committed entries after it come out again to re-apply.
  assert.ok(n2.rn.hasReady());
  const rd = n2.rn.ready();
  assert.ok(rd.committedEntries.some((e) => new TextDecoder().decode(e.data) === 'keep'));
});

test('determinism: the same inputs and rng seeds give byte-identical Readies', () => {
  const run = () => {
    const net = new TestNet([1, 2, 3]);
    const out: string[] = [];
    for (let t = 0; t < 80; t++) {
      for (const n of net.nodes.values()) n.rn.tick();
      if (t % 7 === 3) {
        try {
          net.node(1 + (t % 3)).rn.propose(te.encode(`p${t}`));
        } catch {
          // dropped (no leader yet)
        }
      }
      for (let i = 0; i < 5; i++) {
        for (const n of net.nodes.values()) {
          if (!n.rn.hasReady()) continue;
          const rd = net.handle(n);
          out.push(describeReady(rd));
          for (const m of rd.messages) out.push(Buffer.from(encodeMessage(m)).toString('hex'));
        }
        const q = net.queue.splice(0);
        // Drop every fifth message, deterministically.
        q.forEach((m, i) => i % 5 !== 4 && net.deliver(m));
      }
    }
    return out.join('\n');
  };
  const a = run();
  const b = run();
  assert.ok(a.length > 1000);
  assert.ok(a === b, 'runs differ');
});

test('status: progress only on the leader; config always', () => {
  const net = new TestNet([1, 2, 3]);
  net.elect(1);
  const st = net.node(1).rn.status();
  assert.equal([...st.progress.keys()], [1n, 2n, 3n]);
  assert.equal(st.config.voters, [1n, 2n, 3n]);
  assert.is(net.node(2).rn.status().progress.size, 0);
  assert.is(net.node(2).rn.status().softState.lead, 1n);
});

test.run();
