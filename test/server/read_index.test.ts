// ReadIndexBatcher: linearizable reads share ReadIndex rounds, a read never rides a round that started
// before it arrived, and each is released only once the applied index reaches its round's index.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReadIndexBatcher } from '../../src/server/read_index.js';
import { EtcdError, Errors } from '../../src/errors.js';

interface Harness {
  reads: ReadIndexBatcher;
  requests: Uint8Array[];
  setApplied(n: number): void;
}

function harness(opts: { retryMs?: number; timeoutMs?: number; waitersMax?: number } = {}): Harness {
  let applied = 0;
  const requests: Uint8Array[] = [];
  const reads = new ReadIndexBatcher({
    requestReadIndex: (ctx) => {
      requests.push(ctx);
    },
    appliedIndex: () => applied,
    retryMs: opts.retryMs ?? 500,
    timeoutMs: opts.timeoutMs ?? 5000,
    waitersMax: opts.waitersMax ?? 1000,
  });
  return {
    reads,
    requests,
    setApplied: (n) => {
      applied = n;
    },
  };
}

/** Tracks a promise's outcome without awaiting it. */
function watch(p: Promise<void>): { state: 'pending' | 'resolved' | 'rejected'; err?: unknown } {
  const s: { state: 'pending' | 'resolved' | 'rejected'; err?: unknown } = { state: 'pending' };
  p.then(
    () => {
      s.state = 'resolved';
    },
    (err: unknown) => {
      s.state = 'rejected';
      s.err = err;
    },
  );
  return s;
}

const settle = () => new Promise<void>((r) => setImmediate(r));

test('a read starts a round at once; all reads arriving while it is in flight share the next one', async () => {
  const h = harness();
  h.setApplied(10);
  const first = watch(h.reads.wait());
  assert.is(h.requests.length, 1, 'the first read asks at once');
  const late = [watch(h.reads.wait()), watch(h.reads.wait()), watch(h.reads.wait())];
  assert.is(h.requests.length, 1, 'reads during a round do not start another one yet');
  h.reads.onReadState(h.requests[0]!, 10);
  await settle();
  assert.is(first.state, 'resolved');
  assert.equal(
    late.map((s) => s.state),
    ['pending', 'pending', 'pending'],
    'a late read must not ride a round that started before it',
  );
  assert.is(h.requests.length, 2, 'one round for all three starts when the previous one ends');
  assert.not.equal(Buffer.from(h.requests[1]!), Buffer.from(h.requests[0]!), 'each round has its own context');
  h.reads.onReadState(h.requests[1]!, 10);
  await settle();
  assert.equal(
    late.map((s) => s.state),
    ['resolved', 'resolved', 'resolved'],
  );
});

test('a read is released only once the applied index reaches its round index', async () => {
  const h = harness();
  h.setApplied(5);
  const r = watch(h.reads.wait());
  h.reads.onReadState(h.requests[0]!, 8);
  await settle();
  assert.is(r.state, 'pending', 'applied 5 < read index 8');
  h.reads.onApplied(7);
  await settle();
  assert.is(r.state, 'pending', 'applied 7 < read index 8');
  h.reads.onApplied(8);
  await settle();
  assert.is(r.state, 'resolved');
});

test('an answer for a context that is not the current round is ignored', async () => {
  const h = harness();
  h.setApplied(3);
  const r = watch(h.reads.wait());
  h.reads.onReadState(Buffer.from('stranger'), 1);
  await settle();
  assert.is(r.state, 'pending');
  h.reads.onReadState(h.requests[0]!, 3);
  await settle();
  assert.is(r.state, 'resolved');
});

test("an unanswered round is asked again after retryMs and fails with etcd's timeout after timeoutMs", async () => {
  const h = harness({ retryMs: 500, timeoutMs: 2000 });
  const t0 = Date.now();
  const r = watch(h.reads.wait());
  h.reads.tick(t0 + 100);
  assert.is(h.requests.length, 1);
  h.reads.tick(t0 + 600);
  assert.is(h.requests.length, 2, 'asked again');
  assert.equal(Buffer.from(h.requests[1]!), Buffer.from(h.requests[0]!), 'with the same context: either answer releases it');
  const next = watch(h.reads.wait());
  h.reads.tick(t0 + 2100);
  await settle();
  assert.is(r.state, 'rejected');
  assert.instance(r.err, EtcdError);
  assert.is((r.err as EtcdError).message, Errors.Timeout().message);
  assert.is(next.state, 'pending', 'the reads that waited behind it get a round of their own');
  assert.is(h.requests.length, 3);
  h.reads.onReadState(h.requests[0]!, 0);
  await settle();
  assert.is(next.state, 'pending', 'a late answer to the timed-out round releases nothing');
  h.reads.onReadState(h.requests[2]!, 0);
  await settle();
  assert.is(next.state, 'resolved');
});

test('more waiting reads than waitersMax are refused with TooManyRequests; released ones free their places', async () => {
  const h = harness({ waitersMax: 2 });
  const a = watch(h.reads.wait());
  const b = watch(h.reads.wait());
  const c = watch(h.reads.wait());
  await settle();
  assert.is(c.state, 'rejected');
  assert.is((c.err as EtcdError).message, Errors.TooManyRequests().message);
  h.reads.onReadState(h.requests[0]!, 0);
  h.reads.onReadState(h.requests[1]!, 0);
  await settle();
  assert.equal([a.state, b.state], ['resolved', 'resolved']);
  const d = watch(h.reads.wait());
  await settle();
  assert.is(d.state, 'pending', 'accepted again');
});

test('failAll rejects the round in flight, the reads behind it and the parked ones', async () => {
  const h = harness();
  h.setApplied(0);
  const parked = watch(h.reads.wait());
  h.reads.onReadState(h.requests[0]!, 9); // parked until applied 9
  const inFlight = watch(h.reads.wait()); // starts round 2
  const queued = watch(h.reads.wait()); // waits behind round 2
  h.reads.failAll(Errors.LeaderChanged());
  await settle();
  for (const s of [parked, inFlight, queued]) {
    assert.is(s.state, 'rejected');
    assert.is((s.err as EtcdError).message, 'etcdserver: leader changed');
  }
  h.setApplied(100);
  h.reads.onApplied(100);
  const after = watch(h.reads.wait());
  assert.is(h.requests.length, 3, 'a new read starts a new round at once: nothing is left in flight');
  h.reads.onReadState(h.requests[2]!, 100);
  await settle();
  assert.is(after.state, 'resolved');
});

test.run();
