// The property each scenario in test/raft/testdata is about, stated outright and checked on the run's
// trace (trace.ts), independently of the transcript. TETCD_REWRITE=1 regenerates transcripts, never these:
// a change in src/raft that breaks a property fails here even when its new transcript has been accepted.
//
// Every scenario file must have an entry; checkGeneral runs on all of them.

import * as assert from 'uvu/assert';
import { ProgressState } from '../../../src/raft/progress.js';
import { EntryType, type Message, MessageType, type NodeId, StateType } from '../../../src/raft/types.js';
import { ELECTION_TICK } from './env.js';
import { type NodeView, type Trace, type TraceEvent, msgName, stateOf } from './trace.js';

type Check = (t: Trace) => void;

const td = new TextDecoder();
const text = (b: Uint8Array): string => td.decode(b);

function quorum(voters: number): number {
  return Math.floor(voters / 2) + 1;
}

function ids(...xs: number[]): NodeId[] {
  return xs.map((x) => BigInt(x));
}

function sorted(xs: readonly NodeId[]): string {
  return [...xs].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)).join(',');
}

/** Every view of a member the trace holds, in order (after each Ready, delivery, tick and command). */
function views(t: Trace): NodeView[] {
  const out: NodeView[] = [];
  for (const step of t.steps) {
    for (const e of step.events)
      if ((e.kind === 'ready' || e.kind === 'deliver' || e.kind === 'tick') && e.after !== undefined) out.push(e.after);
    for (const v of step.after.values()) out.push(v);
  }
  return out;
}

/** The view an event leaves of a member, if it shows one. */
function viewOf(e: TraceEvent): NodeView | undefined {
  return e.kind === 'ready' || e.kind === 'deliver' || e.kind === 'tick' ? e.after : undefined;
}

/** Position (in t.events()) of the first event after which `id` is in `state`; -1 if none. */
function firstInState(t: Trace, id: NodeId, state: StateType): number {
  const evs = t.events();
  for (let i = 0; i < evs.length; i++) {
    const v = viewOf(evs[i]);
    if (v !== undefined && v.id === id && v.state === state) return i;
  }
  return -1;
}

/** The first event position belonging to step `step`. */
function eventPos(t: Trace, step: number): number {
  return t.events(0, step).length;
}

/** Members (the candidate included) whose vote for `candidate` at `term` reached it by event `upTo` (included). */
function votesFor(t: Trace, candidate: NodeId, term: number, upTo: number): Set<NodeId> {
  const type = MessageType.MsgVoteResp;
  const got = new Set<NodeId>([candidate]);
  const evs = t.events();
  for (let i = 0; i <= upTo && i < evs.length; i++) {
    const e = evs[i];
    if (e.kind === 'deliver' && !e.dropped && e.msg.to === candidate && e.msg.type === type && !e.msg.reject && e.msg.term === term)
      got.add(e.msg.from);
  }
  return got;
}

/** A member's log as "term/index type data" lines. */
function logText(v: NodeView): string {
  return v.log.map((e) => `${e.term}/${e.index} ${EntryType[e.type]} ${JSON.stringify(text(e.data))}`).join('\n');
}

/**
 * What holds in every scenario: at most one leader per term; a member persists its term and vote before a
 * vote (or its own candidacy) leaves it; members never apply different entries at the same index.
 */
export function checkGeneral(t: Trace): void {
  const leaders = new Map<number, NodeId>();
  for (const v of views(t)) {
    if (v.state !== StateType.Leader) continue;
    const other = leaders.get(v.term);
    assert.ok(other === undefined || other === v.id, `two leaders at term ${v.term}: ${other} and ${v.id}`);
    leaders.set(v.term, v.id);
  }
  const applied = new Map<number, string>();
  for (const e of t.events()) {
    if (e.kind !== 'ready') continue;
    for (const m of e.ready.messages) {
      if (m.type === MessageType.MsgVoteResp && !m.reject) {
        assert.ok(
          e.after.persisted.term >= m.term && (e.after.persisted.term > m.term || e.after.persisted.vote === m.to),
          `${msgName(m)} left before the vote was persisted (persisted term ${e.after.persisted.term} vote ${e.after.persisted.vote})`,
        );
      }
      if (m.type === MessageType.MsgVote) {
        assert.ok(
          e.after.persisted.term >= m.term && (e.after.persisted.term > m.term || e.after.persisted.vote === m.from),
          `${msgName(m)} left before the candidate persisted its term and self-vote`,
        );
      }
    }
    for (const ent of e.ready.committedEntries) {
      const key = `${ent.term} ${EntryType[ent.type]} ${text(ent.data)}`;
      const prev = applied.get(ent.index);
      assert.ok(prev === undefined || prev === key, `members applied different entries at index ${ent.index}: ${prev} / ${key}`);
      applied.set(ent.index, key);
    }
  }
}

/** A candidate becomes leader only with a quorum's votes, at the term it campaigned in; its empty entry commits the term. */
const campaign: Check = (t) => {
  const evs = t.events();
  const at = firstInState(t, 1n, StateType.Leader);
  assert.ok(at >= 0, '1 never became leader');
  const term = viewOf(evs[at])!.term;
  assert.is(term, 1, 'the candidate won at term 1 (the term after 0)');
  const voters = votesFor(t, 1n, term, at);
  assert.ok(voters.size >= quorum(3), `1 became leader with votes from ${sorted([...voters])} only (quorum of 3 is ${quorum(3)})`);
  for (const id of ids(1, 2, 3)) {
    const v = t.node(id);
    assert.is(v.term, 1, stateOf(v));
    assert.is(v.lead, 1n, stateOf(v));
    assert.is(v.state, id === 1n ? StateType.Leader : StateType.Follower, stateOf(v));
    const e3 = v.log.find((e) => e.index === 3);
    assert.ok(e3 !== undefined && e3.term === 1 && e3.data.length === 0, `${id} lacks the leader's empty entry 1/3:\n${logText(v)}`);
    assert.ok(v.commit >= 3, `${id} has not committed the leader's empty entry: ${stateOf(v)}`);
  }
};

/** A pre-candidate does not bump terms; members in a leader's lease ignore it; a stale log is refused. */
const prevote: Check = (t) => {
  const elected = t.stepIndex('stabilize');
  for (const v of views(t)) {
    if (v.term > 1) assert.unreachable(`a term moved past 1: ${stateOf(v)}`);
  }
  for (const v of t.steps.slice(elected).flatMap((s) => [...s.after.values()])) {
    assert.is(v.persisted.term, 1, `a persisted term moved: ${stateOf(v)}`);
  }
  const pre = t.sent().filter((m) => m.type === MessageType.MsgPreVote && m.from === 3n);
  assert.ok(pre.length > 0, '3 never pre-campaigned: the scenario proves nothing');
  for (const m of pre) assert.is(m.term, 2, `a pre-vote asks for the next term without taking it: ${msgName(m)}`);
  assert.ok(!views(t).some((v) => v.id === 3n && v.state === StateType.Candidate), '3 became a candidate');
  assert.ok(!t.sent().some((m) => m.type === MessageType.MsgVote && m.from === 3n), '3 asked for a real vote');
  assert.ok(!t.sent().some((m) => m.type === MessageType.MsgPreVoteResp && m.to === 3n && !m.reject), '3 was granted a pre-vote');
  // In the lease (the second campaign of 3): 1 and 2 ignore it, no answer at all.
  const inLease = t.nextIndex('stabilize', t.stepIndex('heal'));
  const answers = t.sent(inLease, inLease + 1).filter((m) => m.type === MessageType.MsgPreVoteResp);
  assert.equal(answers.map(msgName), [], 'members within the leader lease answered a pre-vote');
  // After 2's lease expires: 2 answers, and refuses 3's stale log.
  const stale = t.stepIndex('stabilize 2 3');
  const refused = t.sent(stale, stale + 1).filter((m) => m.type === MessageType.MsgPreVoteResp && m.from === 2n && m.to === 3n);
  assert.ok(refused.length > 0 && refused.every((m) => m.reject), `2 did not refuse 3's stale log: ${refused.map(msgName)}`);
  assert.is(t.node(1).state, StateType.Leader, stateOf(t.node(1)));
  assert.is(t.node(3).term, 1);
};

/** A leader that hears from no quorum steps down within two election timeouts (the first check may still count older contact); the rest elect a new one. */
const checkquorum: Check = (t) => {
  const cut = t.stepIndex('isolate 1');
  const leader = t.steps[cut].after.get(1n)!;
  assert.is(leader.state, StateType.Leader, 'the isolated member leads');
  const evs = t.events();
  let ticks = 0;
  let stepDown = -1;
  for (let i = eventPos(t, cut + 1); i < evs.length; i++) {
    const e = evs[i];
    if (e.kind === 'tick' && e.node === 1n) {
      ticks++;
      if (e.after.state !== StateType.Leader) {
        stepDown = i;
        break;
      }
    }
  }
  assert.ok(stepDown >= 0, `1 still leads without a quorum after ${ticks} ticks`);
  assert.ok(
    ticks <= 2 * ELECTION_TICK,
    `1 stepped down only after ${ticks} ticks without a quorum (> 2 election timeouts of ${ELECTION_TICK})`,
  );
  assert.ok(ticks > ELECTION_TICK, `1 stepped down after ${ticks} ticks, before its followers' last contact was an election timeout old`);
  const down = viewOf(evs[stepDown])!;
  assert.is(down.state, StateType.Follower);
  assert.is(down.term, 1, 'stepping down does not move the term');
  assert.is(down.lead, 0n);
  const at = firstInState(t, 2n, StateType.Leader);
  assert.ok(at >= 0, '2 never became leader');
  const term = viewOf(evs[at])!.term;
  assert.is(term, 2);
  const voters = votesFor(t, 2n, term, at);
  assert.ok(voters.size >= quorum(3), `2 won with ${sorted([...voters])}`);
  for (const id of ids(1, 2, 3)) {
    const v = t.node(id);
    assert.ok(v.term === 2 && v.lead === 2n, `after healing all follow 2 at term 2: ${stateOf(v)}`);
  }
};

/** The transferee becomes leader once its log is up to date; proposals are dropped during the transfer. */
const leaderTransfer: Check = (t) => {
  const start = t.stepIndex('transfer-leadership from=1 to=3');
  const leaderLast = t.steps[start].after.get(1n)!.lastIndex;
  const drop = t.step('propose 1 bar').events.filter((e) => e.kind === 'error');
  assert.equal(
    drop.map((e) => (e.kind === 'error' ? e.name : '')),
    ['ProposalDroppedError'],
    'a proposal during the transfer is dropped',
  );
  for (const v of t.final.values()) assert.ok(!v.log.some((e) => text(e.data) === 'bar'), `${v.id} holds the dropped proposal`);
  const evs = t.events();
  const timeoutNow = evs.findIndex((e) => e.kind === 'send' && e.msg.type === MessageType.MsgTimeoutNow);
  assert.ok(timeoutNow >= 0, 'no MsgTimeoutNow was sent');
  const tn = (evs[timeoutNow] as { msg: Message }).msg;
  assert.ok(tn.from === 1n && tn.to === 3n, msgName(tn));
  const caughtUp = evs
    .slice(0, timeoutNow)
    .some(
      (e) =>
        e.kind === 'deliver' &&
        !e.dropped &&
        e.msg.type === MessageType.MsgAppResp &&
        e.msg.from === 3n &&
        e.msg.to === 1n &&
        !e.msg.reject &&
        e.msg.index >= leaderLast,
    );
  assert.ok(caughtUp, `MsgTimeoutNow went to 3 before 3 acknowledged the leader's last index ${leaderLast}`);
  assert.ok(!t.sent(start).some((m) => m.type === MessageType.MsgPreVote), 'the transferee campaigned with pre-vote');
  const at = firstInState(t, 3n, StateType.Leader);
  assert.ok(at >= 0, '3 never became leader');
  assert.is(viewOf(evs[at])!.term, 2);
  assert.ok(votesFor(t, 3n, 2, at).size >= quorum(3), 'the transferee won without a quorum');
  for (const id of ids(1, 2, 3)) {
    const v = t.node(id);
    assert.ok(v.term === 2 && v.lead === 3n, stateOf(v));
  }
  assert.is(t.node(3).state, StateType.Leader);
};

/**
 * A read index is the leader's commit index when the read is released, no lower than when it was asked
 * (and, for a new leader, past its first entry of its term), and is released only after a quorum of
 * heartbeat responses carrying the request's context.
 */
const readindex: Check = (t) => {
  const evs = t.events();
  const cases: Array<{ ctx: string; asked: string; leader: NodeId; requester: NodeId }> = [
    { ctx: 'ctx-a', asked: 'read-index 1 ctx-a', leader: 1n, requester: 1n },
    { ctx: 'ctx-b', asked: 'read-index 3 ctx-b', leader: 1n, requester: 3n },
    { ctx: 'ctx-c', asked: 'read-index 2 ctx-c', leader: 2n, requester: 2n },
  ];
  for (const c of cases) {
    const asked = t.stepIndex(c.asked);
    const commitAsked = t.steps[asked].after.get(c.leader)!.commit;
    // Where the leader releases it: a ReadState of its own, or the MsgReadIndexResp to the requester.
    let release = -1;
    let index = -1;
    let leaderAt: NodeView | undefined;
    for (let i = eventPos(t, asked); i < evs.length && release < 0; i++) {
      const e = evs[i];
      if (e.kind !== 'ready' || e.node !== c.leader) continue;
      const rs = e.ready.readStates.find((r) => text(r.request_ctx) === c.ctx);
      const resp = e.ready.messages.find((m) => m.type === MessageType.MsgReadIndexResp && m.entries.some((x) => text(x.data) === c.ctx));
      if (rs !== undefined) index = rs.index;
      else if (resp !== undefined) index = resp.index;
      else continue;
      release = i;
      leaderAt = e.after;
    }
    assert.ok(release >= 0 && leaderAt !== undefined, `${c.ctx} was never answered`);
    assert.is(index, leaderAt.commit, `${c.ctx}: read index ${index} is not the leader's commit index ${leaderAt.commit}`);
    assert.ok(index >= commitAsked, `${c.ctx}: read index ${index} below the commit index ${commitAsked} when it was asked`);
    const firstOfTerm = leaderAt.log.find((e) => e.term === leaderAt!.term);
    assert.ok(
      firstOfTerm !== undefined && index >= firstOfTerm.index,
      `${c.ctx}: read index ${index} before the leader's first entry of its term`,
    );
    const acks = new Set<NodeId>([c.leader]);
    for (let i = eventPos(t, asked); i < release; i++) {
      const e = evs[i];
      if (
        e.kind === 'deliver' &&
        !e.dropped &&
        e.msg.to === c.leader &&
        e.msg.type === MessageType.MsgHeartbeatResp &&
        text(e.msg.context) === c.ctx
      )
        acks.add(e.msg.from);
    }
    assert.ok(acks.size >= quorum(3), `${c.ctx} released after heartbeat acknowledgements from ${sorted([...acks])} only`);
    if (c.requester !== c.leader) {
      const got = evs
        .slice(release)
        .find((e) => e.kind === 'ready' && e.node === c.requester && e.ready.readStates.some((r) => text(r.request_ctx) === c.ctx));
      assert.ok(got !== undefined && got.kind === 'ready', `${c.ctx} never reached ${c.requester}`);
      assert.is(got.ready.readStates.find((r) => text(r.request_ctx) === c.ctx)!.index, index, `${c.ctx}: the requester got another index`);
    }
  }
  // The new leader's read waits for its term's entry: no heartbeat for ctx-c before it commits it.
  const newLeader = t.node(2);
  const termStart = newLeader.log.find((e) => e.term === newLeader.term)!.index;
  for (const e of evs) {
    if (
      e.kind === 'ready' &&
      e.node === 2n &&
      e.ready.messages.some((m) => m.type === MessageType.MsgHeartbeat && text(m.context) === 'ctx-c')
    ) {
      assert.ok(e.after.commit >= termStart, `a heartbeat for ctx-c left before 2 committed its term's entry ${termStart}`);
    }
  }
};

/** Voter and learner sets, on every member, after each change is applied (and not before). */
function assertConfig(v: NodeView, voters: number[], learners: number[], outgoing: number[] = []): void {
  const got = `voters=${sorted(v.config.voters)} learners=${sorted(v.config.learners)} outgoing=${sorted(v.config.voters_outgoing)}`;
  const want = `voters=${sorted(ids(...voters))} learners=${sorted(ids(...learners))} outgoing=${sorted(ids(...outgoing))}`;
  assert.is(got, want, `member ${v.id} has ${got}, not ${want}`);
}

const confchangeLearner: Check = (t) => {
  const proposed = t.stepIndex('propose-conf-change 1 v1=true');
  assertConfig(t.steps[proposed].after.get(1n)!, [1, 2, 3], []);
  const added = t.steps[t.stepIndex('stabilize', 1)].after;
  for (const id of ids(1, 2, 3, 4)) assertConfig(added.get(id)!, [1, 2, 3], [4]);
  assert.ok(
    t.sent().some((m) => m.type === MessageType.MsgSnap && m.to === 4n),
    'the empty learner got no snapshot',
  );
  // The change proposed while another was pending became an empty entry, not a conf change.
  const e5 = t.node(1).log.find((e) => e.index === 5);
  assert.ok(e5 !== undefined && e5.type === EntryType.Normal && e5.data.length === 0, 'the second pending change was not refused');
  for (const id of ids(1, 3, 4)) assertConfig(t.node(id), [1, 3, 4], []);
  assert.equal([...t.node(1).progress.keys()].map(String).sort(), ['1', '3', '4'], 'the leader still tracks the removed member');
  const after = t.node(1).log.find((e) => text(e.data) === 'after')!;
  for (const id of ids(1, 3, 4)) assert.ok(t.node(id).commit >= after.index, `${id} did not commit "after"`);
  assert.ok(t.node(2).lastIndex < after.index, 'the removed member took part');
};

const confchangeV2Joint: Check = (t) => {
  const joint = t.stepIndex('stabilize 1 2 3');
  const leader = t.steps[joint].after.get(1n)!;
  assertConfig(leader, [1, 4, 5], [], [1, 2, 3]);
  assert.ok(leader.config.auto_leave, 'the joint config leaves automatically');
  // 2 and 3 (a majority of the old voters) acknowledged the leave entry; the new half did not: not committed.
  const leave = leader.log.filter((e) => e.type === EntryType.ConfChangeV2)[1];
  assert.ok(leave !== undefined, 'the leader did not propose leaving the joint config');
  for (const id of ids(2, 3)) assert.ok(leader.progress.get(id)!.match >= leave.index, `${id} has not acknowledged ${leave.index}`);
  assert.ok(
    leader.commit < leave.index,
    `index ${leave.index} committed in the joint config with only the old voters (commit ${leader.commit})`,
  );
  for (const id of ids(1, 2, 3, 4, 5)) assertConfig(t.node(id), [1, 4, 5], []);
  const added = t.node(1).log.find((e) => text(e.data) === 'new')!;
  assert.ok(t.node(1).commit >= added.index, 'the new voters 1 and 4 did not commit alone');
  assert.ok(t.node(5).lastIndex < added.index, '5 took part');
  assert.ok(t.node(2).lastIndex < added.index && t.node(3).lastIndex < added.index, 'a removed voter took part');
};

/** The follower gets a MsgSnap at the leader's compacted index and ends at the leader's index, replicating. */
const snapshotLaggingFollower: Check = (t) => {
  const compacted = t.steps[t.stepIndex('compact 1 5')].after.get(1n)!;
  const snaps = t.sent().filter((m) => m.type === MessageType.MsgSnap);
  assert.is(snaps.length, 1, `MsgSnaps: ${snaps.map(msgName)}`);
  const snap = snaps[0];
  assert.ok(snap.from === 1n && snap.to === 3n && snap.snapshot !== undefined, msgName(snap));
  assert.is(snap.snapshot!.metadata.index, compacted.firstIndex - 1, 'the snapshot is at the compacted index');
  const sentAt = t
    .events()
    .find((e) => e.kind === 'ready' && e.node === 1n && e.ready.messages.some((m) => m.type === MessageType.MsgSnap));
  assert.ok(
    sentAt?.kind === 'ready' && sentAt.after.progress.get(3n)!.state === ProgressState.Snapshot,
    'the leader did not pause 3 in StateSnapshot',
  );
  const installed = t
    .events()
    .find((e) => e.kind === 'ready' && e.node === 3n && e.ready.snapshot !== undefined && e.ready.snapshot.metadata.index > 0);
  assert.ok(installed !== undefined, '3 never installed the snapshot');
  const l = t.node(1);
  const f = t.node(3);
  assert.is(f.lastIndex, l.lastIndex, 'the follower ends at the leader index');
  assert.is(f.commit, l.commit);
  assert.is(f.applied, l.lastIndex);
  const pr = l.progress.get(3n)!;
  assert.ok(
    pr.state === ProgressState.Replicate && pr.match === l.lastIndex,
    `leader's progress of 3: ${JSON.stringify({ ...pr, state: ProgressState[pr.state] })}`,
  );
};

/** The follower's divergent log converges to the leader's, in one rejected round trip. */
const backtracking: Check = (t) => {
  const healed = t.stepIndex('heal');
  const before1 = t.steps[healed].after.get(1n)!;
  assert.ok(
    before1.log.some((e) => text(e.data) === 'x1'),
    'the divergent entries were never there',
  );
  const leader = t.node(3);
  const follower = t.node(1);
  assert.is(leader.state, StateType.Leader);
  assert.is(logText(follower), logText(leader), "the follower's log did not converge to the leader's");
  assert.ok(follower.commit === leader.commit && follower.commit === leader.lastIndex, `${stateOf(follower)} / ${stateOf(leader)}`);
  const rejections = t.sent(healed).filter((m) => m.type === MessageType.MsgAppResp && m.reject && m.from === 1n);
  assert.is(rejections.length, 1, `rejections: ${rejections.map(msgName).join('; ')}`);
};

/** At most max-inflight (2) appends unacknowledged, one at a time while probing, and the window is used. */
const replicationFlow: Check = (t) => {
  const maxInflight = 2;
  let acked = 0;
  let inflight: number[] = [];
  let peak = 0;
  for (const e of t.events()) {
    if (e.kind === 'send' && e.msg.type === MessageType.MsgApp && e.msg.from === 1n && e.msg.to === 2n && e.msg.entries.length > 0) {
      assert.ok(e.msg.entries.length <= 1, `max-size-per-msg=0 allows one entry per append: ${msgName(e.msg)}`);
      inflight.push(e.msg.entries[e.msg.entries.length - 1].index);
      inflight = inflight.filter((i) => i > acked);
      peak = Math.max(peak, inflight.length);
      assert.ok(inflight.length <= maxInflight, `${inflight.length} appends in flight: ${inflight}`);
    }
    if (e.kind === 'deliver' && !e.dropped && e.msg.type === MessageType.MsgAppResp && e.msg.from === 2n && !e.msg.reject) {
      acked = Math.max(acked, e.msg.index);
      inflight = inflight.filter((i) => i > acked);
    }
  }
  assert.is(peak, maxInflight, 'the window was never filled: pipelining not shown');
  // report-unreachable: probing until the next acknowledgement.
  const unreachable = t.stepIndex('report-unreachable 1 2');
  assert.is(t.steps[unreachable].after.get(1n)!.progress.get(2n)!.state, ProgressState.Probe);
  let sentWhileProbing = 0;
  for (const e of t.events(unreachable)) {
    if (e.kind === 'deliver' && !e.dropped && e.msg.type === MessageType.MsgAppResp && e.msg.from === 2n) break;
    if (e.kind === 'send' && e.msg.type === MessageType.MsgApp && e.msg.to === 2n) sentWhileProbing++;
  }
  assert.is(sentWhileProbing, 1, 'a probing follower gets one append until it answers');
  const full = t.steps[t.stepIndex('process-ready 1')].after.get(1n)!.progress.get(2n)!;
  assert.ok(full.paused && full.inflight === maxInflight, `the full window did not pause replication: ${JSON.stringify(full)}`);
  assert.is(logText(t.node(2)), logText(t.node(1)));
  assert.is(t.node(1).progress.get(2n)!.state, ProgressState.Replicate);
};

/** By scenario file name. */
export const PROPERTIES: Record<string, Check> = {
  'backtracking.txt': backtracking,
  'campaign.txt': campaign,
  'checkquorum.txt': checkquorum,
  'confchange_learner.txt': confchangeLearner,
  'confchange_v2_joint.txt': confchangeV2Joint,
  'leader_transfer.txt': leaderTransfer,
  'prevote.txt': prevote,
  'readindex.txt': readindex,
  'replication_flow.txt': replicationFlow,
  'snapshot_lagging_follower.txt': snapshotLaggingFollower,
};
