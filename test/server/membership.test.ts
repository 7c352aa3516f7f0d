// Membership's rules without processes: etcd's ValidateConfigurationChange and the strict-reconfig quorum
// counts (membership.ts), a refused conf change remembered for replays, the one membership change a member
// queues at a time (proposals.ts) and the bounded questions a follower's promote asks the leader
// (member_forward.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Membership, type MetaStore } from '../../src/server/membership.js';
import { MemberForward, MEMBER_QUESTIONS_MAX } from '../../src/server/member_forward.js';
import { Proposals } from '../../src/server/proposals.js';
import { MemberChanges, MEMBER_CHANGES_WAITING_MAX } from '../../src/server/member_changes.js';
import { ConfChangeType } from '../../src/raft/index.js';
import type { Member } from '../../src/proto/rpc.js';

/** Resolves when `fn()` rejects with a message matching `re`; fails the test otherwise. */
async function rejectsWith(fn: () => Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected a rejection matching ${re}`);
}

/** The meta buckets in a Map. */
function memStore(): MetaStore {
  const m = new Map<string, Map<string, Uint8Array>>();
  const b = (name: string) => {
    let x = m.get(name);
    if (!x) m.set(name, (x = new Map()));
    return x;
  };
  return {
    metaGet: (bucket, key) => b(bucket).get(Buffer.from(key).toString('hex')),
    metaPut: (bucket, key, value) => void b(bucket).set(Buffer.from(key).toString('hex'), value),
    metaDelete: (bucket, key) => void b(bucket).delete(Buffer.from(key).toString('hex')),
    metaScan: (bucket) => [...b(bucket).entries()].sort().map(([k, v]) => [Buffer.from(k, 'hex'), v] as [Uint8Array, Uint8Array]),
  };
}

const member = (id: bigint, url: string, o: Partial<Member> = {}): Member => ({
  ID: id,
  name: `n${id}`,
  peerURLs: [url],
  clientURLs: [],
  isLearner: false,
  ...o,
});

test("validate: etcd's errors for each kind of change", () => {
  const store = memStore();
  const ms = Membership.load(store);
  ms.add(member(1n, 'http://a:1'), store);
  ms.add(member(2n, 'http://b:1', { isLearner: true }), store);
  const err = (e: { message: string } | undefined) => e?.message;
  assert.is(err(ms.validate({ kind: 'add', member: member(1n, 'http://z:1') })), 'etcdserver: member ID already exist');
  assert.is(err(ms.validate({ kind: 'add', member: member(3n, 'http://b:1') })), 'etcdserver: Peer URLs already exists');
  assert.is(
    err(ms.validate({ kind: 'add', member: member(3n, 'http://c:1', { isLearner: true }) })),
    'etcdserver: too many learner members in cluster',
  );
  assert.is(err(ms.validate({ kind: 'add', member: member(3n, 'http://c:1', { isLearner: true }) }, 2)), undefined);
  assert.is(err(ms.validate({ kind: 'add', member: member(3n, 'http://c:1') })), undefined);
  assert.is(err(ms.validate({ kind: 'promote', id: 1n })), 'etcdserver: can only promote a learner member');
  assert.is(err(ms.validate({ kind: 'promote', id: 9n })), 'etcdserver: member not found');
  assert.is(err(ms.validate({ kind: 'promote', id: 2n })), undefined);
  assert.is(err(ms.validate({ kind: 'remove', id: 9n })), 'etcdserver: member not found');
  assert.is(err(ms.validate({ kind: 'update', id: 9n, peerURLs: ['http://q:1'] })), 'etcdserver: member not found');
  assert.is(err(ms.validate({ kind: 'update', id: 2n, peerURLs: ['http://a:1'] })), 'etcdserver: Peer URLs already exists');
  // Its own URLs are not "taken".
  assert.is(err(ms.validate({ kind: 'update', id: 2n, peerURLs: ['http://b:1'] })), undefined);
  ms.remove(2n, store);
  // A removed ID never comes back (etcd: ErrIDRemoved, which the API reports as not found).
  assert.is(err(ms.validate({ kind: 'add', member: member(2n, 'http://b:1') })), 'etcdserver: member not found');
  assert.ok(Membership.load(store).isRemoved(2n), 'removal is stored');
});

test('strict reconfiguration: quorum counts of started (published) voters', () => {
  const store = memStore();
  const ms = Membership.load(store);
  ms.add(member(1n, 'http://a:1'), store);
  // One started voter: a second may be added (restoring a cluster from one member).
  assert.ok(ms.isReadyToAddVoter());
  ms.add(member(2n, 'http://b:1', { name: '' }), store);
  // Two voters, one started: a third voter would leave 1 of 3 started.
  assert.not.ok(ms.isReadyToAddVoter());
  assert.ok(ms.isReadyToRemoveVoter(2n));
  assert.not.ok(ms.isReadyToRemoveVoter(1n), 'removing the only started voter');
  ms.add(member(3n, 'http://c:1', { isLearner: true }), store);
  assert.ok(ms.isReadyToPromote(), 'the learner counts as started: 2 of 3');
});

test('a refused conf change is remembered by index', () => {
  const store = memStore();
  assert.not.ok(Membership.wasRefused(7, store));
  Membership.markRefused(7, store);
  assert.ok(Membership.wasRefused(7, store));
  assert.not.ok(Membership.wasRefused(8, store));
});

test('a member queues one membership change at a time', async () => {
  const p = new Proposals({
    memberId: 1n,
    maxRequestBytes: 1 << 20,
    batchCountMax: 10,
    requestTimeoutMs: 1000,
    wake: () => {},
    now: () => 0,
  });
  const first = p.proposeConfChange({ type: ConfChangeType.RemoveNode, node_id: 5n, context: new Uint8Array(0) });
  await rejectsWith(
    () => p.proposeConfChange({ type: ConfChangeType.RemoveNode, node_id: 6n, context: new Uint8Array(0) }),
    /too many requests/,
  );
  assert.is(p.queued, 1);
  // Handed to Raft once a leader is known; this fake Raft takes it, and the waiter waits for the apply.
  const proposed: unknown[] = [];
  p.flushTo({ proposeConfChange: (cc: unknown) => proposed.push(cc) } as never, 1n);
  assert.is(proposed.length, 1);
  assert.is(p.queued, 0);
  p.failAll(new Error('stopped') as never);
  await rejectsWith(() => first, /stopped/);
});

test('membership changes run one at a time, and only so many wait', async () => {
  const store = memStore();
  const ms = Membership.load(store);
  ms.add(member(1n, 'http://a:1'), store);
  const proposed: bigint[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const changes = new MemberChanges({
    memberId: 1n,
    membership: ms,
    strictReconfigCheck: false,
    proposeConfChange: async (cc) => {
      proposed.push(cc.node_id);
      await gate;
      return { response: { members: ms.list() } as never };
    },
    raftStatus: () => ({ progress: new Map() }) as never,
    leaderId: () => 1n,
    activeSinceMs: () => 0,
    askLeaderLearnerReady: async () => {},
    transferLeader: () => {},
    now: () => Date.now(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    heartbeatMs: 10,
  });
  const running = Array.from({ length: MEMBER_CHANGES_WAITING_MAX }, (_, i) => changes.remove(BigInt(100 + i)));
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(proposed, [100n], 'the second waits for the first');
  await rejectsWith(() => changes.remove(999n), /too many requests/);
  release();
  await Promise.all(running);
  assert.is(proposed.length, MEMBER_CHANGES_WAITING_MAX);
  // Room again once they are done.
  await changes.remove(999n);
});

test('automatic promotion: an in-sync, published, connected learner, when the quorum after it is connected', async () => {
  const store = memStore();
  const ms = Membership.load(store);
  for (const id of [1n, 2n, 3n]) ms.add(member(id, `http://v${id}:1`), store);
  ms.add(member(4n, 'http://l:1', { isLearner: true }), store);
  const now = 100_000;
  let leader = 1n;
  const match = new Map<bigint, number>([
    [1n, 1000],
    [2n, 1000],
    [3n, 1000],
    [4n, 500],
  ]);
  const since = new Map<bigint, number | undefined>([
    [2n, 0],
    [3n, 0],
    [4n, 0],
  ]);
  const proposed: string[] = [];
  let release: (() => void) | undefined;
  const changes = new MemberChanges({
    memberId: 1n,
    membership: ms,
    strictReconfigCheck: true,
    proposeConfChange: async (cc) => {
      proposed.push(`${cc.type}:${cc.node_id}`);
      if (release === undefined) await new Promise<void>((r) => (release = r));
      ms.promote(cc.node_id, store);
      return { response: { members: ms.list() } as never };
    },
    raftStatus: () => ({ id: 1n, progress: new Map([...match].map(([id, m]) => [id, { match: m }])) }) as never,
    leaderId: () => leader,
    activeSinceMs: (id) => since.get(id),
    askLeaderLearnerReady: async () => {},
    transferLeader: () => {},
    now: () => now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    heartbeatMs: 10,
  });
  assert.is(await changes.autoPromote(), undefined, 'behind the leader (not in sync)');
  match.set(4n, 950);
  since.set(4n, now - 1000);
  assert.is(await changes.autoPromote(), undefined, 'connected for less than the health interval');
  since.set(4n, 0);
  since.set(2n, undefined);
  since.set(3n, undefined);
  assert.is(await changes.autoPromote(), undefined, 'two of four voters after it connected: no quorum');
  since.set(3n, now - 1000);
  assert.is(await changes.autoPromote(), undefined, 'a voter connected too recently does not count');
  ms.add(member(4n, 'http://l:1', { isLearner: true, name: '' }), store);
  since.set(3n, 0);
  assert.is(await changes.autoPromote(), undefined, 'a learner that has not published itself');
  ms.add(member(4n, 'http://l:1', { isLearner: true }), store);
  leader = 2n;
  assert.is(await changes.autoPromote(), undefined, 'only the leader promotes');
  leader = 1n;
  assert.equal(proposed, []);
  // One at a time: a second call while the first is in the log does nothing.
  const first = changes.autoPromote();
  await new Promise((r) => setTimeout(r, 5));
  assert.is(await changes.autoPromote(), undefined);
  release!();
  assert.is(await first, 4n);
  assert.equal(proposed, [`${ConfChangeType.AddNode}:4`]);
  assert.is(ms.get(4n)?.isLearner, false);
  assert.is(changes.promoteSuccesses, 1);
  assert.is(await changes.autoPromote(), undefined, 'no learner left');
});

test('promote questions to the leader: bounded, answered, timed out', async () => {
  const sent: Array<[bigint, Buffer]> = [];
  let leaderSays: Error | 'not leader' | undefined;
  const follower = new MemberForward({
    send: (to, payload) => {
      sent.push([to, Buffer.from(payload)]);
      return true;
    },
    leaderId: () => 9n,
    readiness: () => 'not leader',
    timeoutMs: 200,
  });
  const leader = new MemberForward({
    send: (to, payload) => {
      follower.receive(9n, payload);
      return to === 1n;
    },
    leaderId: () => 9n,
    readiness: () => leaderSays,
    timeoutMs: 200,
  });
  // Ready.
  const a = follower.askLearnerReady(3n);
  leader.receive(1n, sent.shift()![1]);
  await a;
  // Not ready.
  leaderSays = new Error('not ready');
  const b = follower.askLearnerReady(3n);
  leader.receive(1n, sent.shift()![1]);
  await rejectsWith(() => b, /in sync with leader/);
  // The limit: questions nobody answers fill it; the next is refused at once; they time out.
  const pending = Array.from({ length: MEMBER_QUESTIONS_MAX }, () => follower.askLearnerReady(3n).catch((e: Error) => e.message));
  await rejectsWith(() => follower.askLearnerReady(3n), /too many requests/);
  for (const r of await Promise.all(pending)) assert.match(r as string, /request timed out/);
  // Malformed frames are dropped.
  follower.receive(9n, Buffer.from([2, 0, 0]));
});

test.run();
