// A leader answers a keep-alive or a time-to-live only once it has applied everything committed (etcd's
// waitAppliedIndex in v3_server.go LeaseRenew / LeaseTimeToLive, and its lease handler for followers): a
// committed entry it has not applied yet may revoke the lease, and renewing it meanwhile would tell the
// client a revoked lease lives. Past etcd's applyTimeout (1 s) the answer is ErrTimeoutWaitAppliedIndex.
// MemberLeases on a manual clock with a real lessor; the Raft indexes are the test's.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Lessor, RENEW_NOT_FOUND, type LeaseBackend } from '../../src/lease/index.js';
import { EtcdError, GrpcCode } from '../../src/errors.js';
import { LEASE_APPLY_WAIT_MS, LEASE_APPLY_WAITERS_MAX, MemberLeases } from '../../src/server/leases.js';
import { LeaseAnswerStatus, LeaseFrameKind, decodeLeaseFrame, encodeLeaseRequest } from '../../src/server/lease_forward.js';
import { silentLogger } from '../../src/log.js';
import { ManualScheduler } from '../helpers/manual_scheduler.js';

const be: LeaseBackend = { metaPut: () => {}, metaDelete: () => {}, metaScan: () => [] };
const ME = 1n;
const FOLLOWER = 2n;

function setup() {
  const sched = new ManualScheduler();
  const lessor = new Lessor({ minTtlSec: 1, now: sched.now, checkpointIntervalMs: 0 });
  lessor.promote(0);
  lessor.grant(7n, 30, be);
  const raft = { committed: 10, applied: 10 };
  const sent: Array<{ to: bigint; payload: Uint8Array }> = [];
  const ml = new MemberLeases({
    lessor,
    sched,
    memberId: ME,
    leaderId: () => ME,
    propose: () => Promise.reject(new Error('no proposals here')),
    sendLease: (to, payload) => sent.push({ to, payload }) > 0,
    electionMs: 1000,
    requestTimeoutMs: 7000,
    committedIndex: () => raft.committed,
    appliedIndex: () => raft.applied,
    logger: silentLogger,
  });
  return { sched, lessor, raft, ml, sent };
}

/** Lets the promise callbacks run. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test('with nothing left to apply a keep-alive is answered at once', () => {
  const { ml } = setup();
  assert.is(ml.renew(7n), 30);
});

test('a keep-alive and a time-to-live wait for a committed revoke to apply, then find no lease', async () => {
  const { sched, lessor, raft, ml } = setup();
  sched.advance(20_000);
  raft.committed = 11; // the revoke of lease 7 is committed, not applied
  const renew = ml.renew(7n);
  assert.ok(renew instanceof Promise, 'not answered before the committed entries apply');
  const ttl = ml.timeToLive(7n, false);
  let renewed: number | undefined;
  void (renew as Promise<number>).then((r) => {
    renewed = r;
  });
  await settle();
  assert.is(renewed, undefined);
  assert.is(lessor.timeToLive(7n, false)!.ttlSec, 10, 'the lease was not renewed meanwhile');
  lessor.revoke(7n, be, () => {});
  raft.applied = 11;
  ml.onApplied(11);
  assert.is(await renew, RENEW_NOT_FOUND);
  assert.is(await ttl, undefined);
});

test('a lease the applied entries keep is renewed once they are applied', async () => {
  const { sched, lessor, raft, ml } = setup();
  sched.advance(20_000);
  raft.committed = 12;
  const renew = ml.renew(7n);
  raft.applied = 11;
  ml.onApplied(11); // not yet what was committed when the keep-alive came
  await settle();
  assert.is(lessor.timeToLive(7n, false)!.ttlSec, 10);
  raft.applied = 12;
  ml.onApplied(12);
  assert.is(await renew, 30);
  assert.is(lessor.timeToLive(7n, false)!.ttlSec, 30);
});

test("past etcd's applyTimeout: ErrTimeoutWaitAppliedIndex; a follower's forwarded request is told to ask again", async () => {
  const { sched, raft, ml, sent } = setup();
  raft.committed = 11;
  const renew = ml.renew(7n) as Promise<number>;
  const ttl = ml.timeToLive(7n, true);
  ml.receive(FOLLOWER, encodeLeaseRequest({ kind: LeaseFrameKind.Renew, requestId: 5, leaseId: 7n, withKeys: false }));
  await settle();
  assert.is(sent.length, 0, 'the forwarded keep-alive waits as well');
  sched.advance(LEASE_APPLY_WAIT_MS - 1);
  await settle();
  assert.is(sent.length, 0);
  sched.advance(1);
  for (const p of [renew, ttl]) {
    const err = await p.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof EtcdError);
    assert.is(err.code, GrpcCode.Unavailable);
    assert.is(err.message, 'etcdserver: request timed out, waiting for the applied index took too long');
  }
  await settle();
  assert.is(sent.length, 1);
  const a = decodeLeaseFrame(sent[0].payload);
  assert.ok(a.kind === LeaseFrameKind.Answer && a.requestId === 5 && a.status === LeaseAnswerStatus.NotLeader);
});

test('the waiters are bounded: one more gets too many requests; stop fails the rest', async () => {
  const { raft, ml } = setup();
  raft.committed = 11;
  const waits: Promise<unknown>[] = [];
  for (let i = 0; i < LEASE_APPLY_WAITERS_MAX; i++) waits.push((ml.renew(7n) as Promise<number>).catch((e: unknown) => e));
  const over = await (ml.renew(7n) as Promise<number>).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(over instanceof EtcdError && over.message === 'etcdserver: too many requests', String(over));
  ml.stop();
  const errs = await Promise.all(waits);
  assert.ok(errs.every((e) => e instanceof EtcdError && e.message === 'etcdserver: server stopped'));
});

test.run();
