// The lessor on a manual clock, with an in-memory backend: grant (minimum TTL, limits, errors), renew,
// expiry found only on the leader and only after the TTL, the revoke rate limit, checkpoints (scheduled,
// applied, cleared by a renew), promote (election timeout added, a checkpointed remainder honoured, a pile
// of expiries spread out), demote, and recovery from the backend.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  Lessor,
  LEASE_BUCKET,
  LEASE_REVOKE_RATE,
  LEASE_TTL_MAX_SEC,
  RENEW_NOT_FOUND,
  RENEW_NOT_PRIMARY,
  decodeLeaseRecord,
  leaseKey,
  type LeaseBackend,
  type LeaseCheckpointEntry,
} from '../../src/lease/index.js';
import { EtcdError, GrpcCode } from '../../src/errors.js';
import { ManualScheduler } from '../helpers/manual_scheduler.js';

function memoryBackend(): LeaseBackend & { map: Map<string, Uint8Array> } {
  const map = new Map<string, Uint8Array>();
  const k = (b: string, key: Uint8Array) => `${b}/${Buffer.from(key).toString('hex')}`;
  return {
    map,
    metaPut: (b, key, v) => {
      map.set(k(b, key), v);
    },
    metaDelete: (b, key) => {
      map.delete(k(b, key));
    },
    metaScan: (b) =>
      [...map.entries()].filter(([key]) => key.startsWith(`${b}/`)).map(([key, v]) => [Buffer.from(key.slice(b.length + 1), 'hex'), v]),
  };
}

const noKeys = { forEachLeasedKey: () => {} };
const kb = (s: string) => Buffer.from(s);

function setup(checkpointIntervalMs = 0) {
  const sched = new ManualScheduler();
  const be = memoryBackend();
  const le = new Lessor({ minTtlSec: 2, now: sched.now, checkpointIntervalMs });
  const cps: LeaseCheckpointEntry[][] = [];
  le.setCheckpointer((c) => cps.push(c));
  return { sched, be, le, cps };
}

function throwsEtcd(fn: () => unknown, code: number, message: string): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, EtcdError);
    assert.is((err as EtcdError).code, code);
    assert.is((err as EtcdError).message, message);
    return;
  }
  assert.unreachable(`expected ${message}`);
}

test('grant raises a TTL below the minimum (0 and negative too) and refuses ID 0, a taken ID and a TTL past the maximum', () => {
  const { le, be } = setup();
  assert.is(le.grant(1n, 0, be).ttlSec, 2);
  assert.is(le.grant(2n, -5, be).ttlSec, 2);
  assert.is(le.grant(3n, 60, be).ttlSec, 60);
  assert.is(le.grant(4n, LEASE_TTL_MAX_SEC, be).ttlSec, LEASE_TTL_MAX_SEC);
  throwsEtcd(() => le.grant(5n, LEASE_TTL_MAX_SEC + 1, be), GrpcCode.OutOfRange, 'etcdserver: too large lease TTL');
  throwsEtcd(() => le.grant(3n, 10, be), GrpcCode.FailedPrecondition, 'etcdserver: lease already exists');
  throwsEtcd(() => le.grant(0n, 10, be), GrpcCode.NotFound, 'etcdserver: requested lease not found');
  assert.is(le.size, 4);
  assert.equal(decodeLeaseRecord(be.map.get(`${LEASE_BUCKET}/${leaseKey(3n).toString('hex')}`)!), {
    id: 3n,
    ttlSec: 60,
    remainingTtlSec: 0,
  });
});

test('a follower holds leases forever: nothing expires and renew says "not primary"', () => {
  const { le, be, sched } = setup();
  le.grant(1n, 5, be);
  sched.advance(3_600_000);
  assert.equal(le.findExpired(100), []);
  assert.is(le.renew(1n), RENEW_NOT_PRIMARY);
});

test('on the leader a lease expires after TTL + the promote extension, not before; a renew restarts the TTL', () => {
  const { le, be, sched } = setup();
  le.grant(1n, 5, be);
  le.promote(1000);
  sched.advance(5999);
  assert.equal(le.findExpired(100), []);
  assert.is(le.renew(1n), 5);
  assert.is(le.timeToLive(1n, false)!.ttlSec, 5);
  sched.advance(4999);
  assert.equal(le.findExpired(100), []);
  assert.is(le.timeToLive(1n, false)!.ttlSec, 0);
  sched.advance(1);
  assert.equal(le.findExpired(100), [1n]);
  // Proposed once: not again until the retry interval, then again if it is still there.
  assert.equal(le.findExpired(100), []);
  sched.advance(3000);
  assert.equal(le.findExpired(100), [1n]);
});

test('a lease granted on the leader counts from the grant; unknown leases renew as not found', () => {
  const { le, be, sched } = setup();
  le.promote(1000);
  le.grant(9n, 3, be);
  sched.advance(2999);
  assert.equal(le.findExpired(10), []);
  sched.advance(1);
  assert.equal(le.findExpired(10), [9n]);
  assert.is(le.renew(12345n), RENEW_NOT_FOUND);
  assert.is(le.timeToLive(12345n, true), undefined);
});

test('a renew of an expired lease waits for its revoke (not found) or for demotion (not primary)', async () => {
  const { le, be, sched } = setup();
  le.promote(0);
  le.grant(1n, 2, be);
  le.grant(2n, 2, be);
  sched.advance(2000);
  const r1 = le.renew(1n);
  const r2 = le.renew(2n);
  assert.instance(r1, Promise);
  le.revoke(1n, be, () => {});
  assert.is(await r1, RENEW_NOT_FOUND);
  le.demote();
  assert.is(await r2, RENEW_NOT_PRIMARY);
});

test('revoke hands the attached keys over in byte order, forgets the lease and its record; twice is not found', () => {
  const { le, be } = setup();
  le.grant(1n, 10, be);
  for (const k of ['b', 'a', 'c\xff', 'c', 'a\x00']) le.attach(1n, Buffer.from(k, 'latin1'));
  le.detach(1n, kb('b'));
  let got: string[] = [];
  le.revoke(1n, be, (keys) => {
    got = keys;
  });
  assert.equal(got, ['a', 'a\x00', 'c', 'c\xff']);
  assert.is(le.exists(1n), false);
  assert.is(be.map.size, 0);
  throwsEtcd(() => le.revoke(1n, be, () => {}), GrpcCode.NotFound, 'etcdserver: requested lease not found');
});

test('the leader finds at most `limit` expired leases per call (the revoke rate limit), soonest first', () => {
  const { le, be, sched } = setup();
  le.promote(0);
  for (let i = 1; i <= 1200; i++) le.grant(BigInt(i), 2, be);
  sched.advance(2000);
  const first = le.findExpired(LEASE_REVOKE_RATE / 2);
  assert.is(first.length, 500);
  assert.is(le.findExpired(LEASE_REVOKE_RATE / 2).length, 500);
  assert.is(le.findExpired(LEASE_REVOKE_RATE / 2).length, 200);
  assert.is(le.findExpired(LEASE_REVOKE_RATE / 2).length, 0);
});

test('promote with more leases than the revoke rate spreads a pile of expiries over time', () => {
  const { le, be, sched } = setup();
  for (let i = 1; i <= 3000; i++) le.grant(BigInt(i), 10, be);
  le.promote(0);
  // Without spreading all 3000 would expire in the same second; with it at most ~3/4 of the rate per second.
  sched.advance(10_000);
  const first = le.findExpired(10_000);
  assert.ok(first.length <= (3 * LEASE_REVOKE_RATE) / 4 + 1, `${first.length} expire at once`);
  for (const id of first) le.revoke(id, be, () => {});
  sched.advance(10_000);
  assert.is(first.length + le.findExpired(10_000).length, 3000);
});

test('checkpoints: scheduled for leases longer than the interval, carry the remaining TTL, honoured by the next promote', () => {
  const { le, be, sched, cps } = setup(10_000);
  le.promote(0);
  le.grant(1n, 60, be);
  le.grant(2n, 5, be); // shorter than the interval: never checkpointed
  sched.advance(10_000);
  assert.is(le.checkpointDue(), 1);
  assert.equal(cps, [[{ ID: 1n, remaining_TTL: 50 }]]);
  // Applied (on every member): kept and persisted.
  le.checkpoint(1n, 50, be);
  assert.is(decodeLeaseRecord(be.map.get(`${LEASE_BUCKET}/${leaseKey(1n).toString('hex')}`)!).remainingTtlSec, 50);
  // A new leader counts from the remainder, not from the full TTL (etcd #9526).
  le.demote();
  sched.advance(1000);
  le.promote(1000);
  assert.is(le.timeToLive(1n, false)!.ttlSec, 51);
  sched.advance(50_999);
  assert.equal(le.findExpired(10), [2n]);
  sched.advance(1);
  assert.equal(le.findExpired(10), [1n]);
});

test('a renew of a checkpointed lease clears the remainder through the checkpointer and renews to the full TTL', () => {
  const { le, be, cps } = setup(10_000);
  le.grant(1n, 60, be);
  le.checkpoint(1n, 20, be);
  le.promote(0);
  assert.is(le.timeToLive(1n, false)!.ttlSec, 20);
  assert.is(le.renew(1n), 60);
  assert.equal(cps.at(-1), [{ ID: 1n, remaining_TTL: 0 }]);
  assert.is(le.timeToLive(1n, false)!.ttlSec, 60);
});

test('with checkpointing off nothing is scheduled and a leader change restarts the TTL', () => {
  const { le, be, sched, cps } = setup(0);
  le.promote(0);
  le.grant(1n, 600, be);
  sched.advance(400_000);
  assert.is(le.checkpointDue(), 0);
  assert.equal(cps, []);
  le.demote();
  le.promote(0);
  assert.is(le.timeToLive(1n, false)!.ttlSec, 600);
});

test('recover rebuilds leases (TTL raised to the minimum) and their keys from the backend', () => {
  const { le, be } = setup(10_000);
  le.grant(1n, 30, be);
  le.grant(2n, 5, be);
  le.checkpoint(1n, 12, be);
  const le2 = new Lessor({ minTtlSec: 6, now: () => 0, checkpointIntervalMs: 10_000 });
  le2.recover(be, {
    forEachLeasedKey: (visit) => {
      visit(kb('x'), 1n);
      visit(kb('y'), 1n);
      visit(kb('z'), 3n); // a key whose lease is gone: ignored
    },
  });
  assert.equal(le2.leaseIds().sort(), [1n, 2n]);
  assert.is(le2.lookup(2n)!.ttlSec, 6);
  assert.is(le2.lookup(1n)!.remainingTtlSec, 12);
  assert.equal(
    le2.timeToLive(1n, true)!.keys.map((k) => k.toString()),
    ['x', 'y'],
  );
  le2.recover(be, noKeys);
  assert.is(le2.lookup(1n)!.keys.size, 0);
});

test('stats count grants, renews, revokes and the TTL histogram', () => {
  const { le, be } = setup();
  le.promote(0);
  le.grant(1n, 1, be);
  le.grant(2n, 100, be);
  le.renew(2n);
  le.revoke(1n, be, () => {});
  assert.is(le.stats.granted, 2);
  assert.is(le.stats.renewed, 1);
  assert.is(le.stats.revoked, 1);
  assert.is(le.stats.ttlBuckets[1], 1); // 2 s (raised from 1) in the ≤ 2 bucket
  assert.is(le.stats.ttlBuckets[7], 1); // 100 s in the ≤ 128 bucket
});

test.run();
