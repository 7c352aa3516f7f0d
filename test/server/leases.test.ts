// The member's leases, deterministically: three members in one process (helpers/sim_cluster.ts) on a manual
// clock with their own timers. A keep-alive or time-to-live sent to a follower is answered by the leader
// through the lease frames; expiry is one revoke through the log, applied by every member at the same index
// and revision; and a leader change keeps a long lease's remaining TTL with checkpoints, restarts it without.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { EtcdServer } from '../../src/server/server.js';
import { RENEW_NOT_FOUND } from '../../src/lease/index.js';
import { type Cluster, advanceAll, settle, startCluster, stopCluster, leaderOf } from '../helpers/sim_cluster.js';

const SEED = Number(process.env.TETCD_LEASES_SEED ?? 20261208);
const enc = (s: string): Uint8Array => Buffer.from(s);

async function leaderAfter(c: Cluster, without?: EtcdServer): Promise<EtcdServer> {
  for (let i = 0; i < 200; i++) {
    const l = c.servers.find((s) => s !== without && s.status().isLeader);
    if (l) return l;
    await advanceAll(c, 100);
  }
  throw new Error('no leader elected');
}

/** Runs a member call to completion while the cluster moves. */
async function run<T>(c: Cluster, p: Promise<T> | T): Promise<T> {
  let done = false;
  const q = Promise.resolve(p).finally(() => {
    done = true;
  });
  for (let i = 0; i < 200 && !done; i++) await advanceAll(c, 100);
  return q;
}

function has(s: EtcdServer, key: string): boolean {
  return (s.range({ key: enc(key) } as never).count ?? 0) > 0;
}

test('a keep-alive and a time-to-live sent to a follower are answered by the leader', async () => {
  const c = await startCluster(SEED, {}, true);
  try {
    const leader = await leaderAfter(c);
    const follower = c.servers.find((s) => s !== leader)!;
    const g = await run(c, follower.leaseGrant({ ID: 0n, TTL: 10 }));
    const id = g.ID!;
    await run(c, follower.propose({ put: { key: enc('f/a'), value: enc('1'), lease: id } }));
    await advanceAll(c, 6000);
    // Not renewed yet: the leader says about 4 s are left, and so does the follower (it asks the leader).
    const before = await run(c, follower.leaseTimeToLive(id, true));
    assert.is(before!.ttlSec, (await leader.leaseTimeToLive(id, true))!.ttlSec);
    assert.ok(before!.ttlSec <= 4, `TTL ${before!.ttlSec} after 6 s of 10`);
    assert.equal(before!.keys.map(String), ['f/a']);
    // The follower's lessor has no expiries: the renew is forwarded, and the leader's lease restarts.
    assert.is(await run(c, follower.leaseRenew(id)), 10);
    assert.is((await leader.leaseTimeToLive(id, false))!.ttlSec, 10);
    assert.is(await run(c, follower.leaseRenew(424242n)), RENEW_NOT_FOUND);
    assert.is(await run(c, follower.leaseTimeToLive(424242n, false)), undefined);
    // Kept alive through the follower past several TTLs: the key stays everywhere.
    for (let i = 0; i < 5; i++) {
      await advanceAll(c, 5000);
      assert.is(await run(c, follower.leaseRenew(id)), 10);
    }
    for (const s of c.servers) assert.ok(has(s, 'f/a'), 'the kept-alive key stayed');
    assert.ok(leader.leaseStats.renewed >= 6);
    assert.is(follower.leaseStats.renewed, 0, 'renews are counted where they happen: on the leader');
  } finally {
    await stopCluster(c);
  }
});

test('expiry: the leader proposes the revoke; every member deletes the keys at the same index and revision', async () => {
  const c = await startCluster(SEED + 1, {}, true);
  try {
    const leader = await leaderAfter(c);
    const g = await run(c, leader.leaseGrant({ ID: 77n, TTL: 3 }));
    assert.is(g.ID, 77n);
    for (const k of ['x/b', 'x/a', 'x/c']) await run(c, leader.propose({ put: { key: enc(k), value: enc('v'), lease: 77n } }));
    await advanceAll(c, 2500);
    for (const s of c.servers) assert.ok(has(s, 'x/a'), 'not before the TTL');
    await advanceAll(c, 1500); // TTL 3 s + the lease loop's 500 ms
    await settle(c);
    const revs = c.servers.map((s) => s.status().revision);
    assert.equal(revs, [revs[0], revs[0], revs[0]]);
    for (const s of c.servers) assert.ok(!has(s, 'x/a') && !has(s, 'x/b') && !has(s, 'x/c'), 'the keys are gone everywhere');
    for (const rec of c.recorders) {
      const revoke = rec.events.find((e) => e.kind === 'lease' && e.change === 'revoke');
      assert.ok(revoke && revoke.kind === 'lease' && revoke.leaseId === 77n, 'a revoke event');
      const kv = rec.events.find((e) => e.kind === 'kv' && e.index === revoke.index);
      assert.ok(kv && kv.kind === 'kv', 'the deletes are the same entry');
      assert.equal(
        kv.changes.map((ch) => [ch.type, Buffer.from(ch.kv.key).toString()]),
        [
          [1, 'x/a'],
          [1, 'x/b'],
          [1, 'x/c'],
        ],
      );
      assert.is(kv.revision, revs[0]);
    }
    assert.is(leader.leaseStats.expired, 1);
  } finally {
    await stopCluster(c);
  }
});

/** Grants a 60 s lease, lets 10 s pass, cuts the leader off and asks the new leader for the lease's TTL. */
async function ttlAfterLeaderChange(seed: number, checkpoint: boolean): Promise<number> {
  const c = await startCluster(seed, { leaseCheckpoint: checkpoint, leaseCheckpointIntervalMs: 2000 }, true);
  try {
    const leader = await leaderAfter(c);
    const g = await run(c, leader.leaseGrant({ ID: 5n, TTL: 60 }));
    assert.is(g.TTL, 60);
    await advanceAll(c, 10_000);
    c.net.cut.add(leader.memberId);
    const next = await leaderAfter(c, leader);
    await advanceAll(c, 200);
    const t = await run(c, next.leaseTimeToLive(5n, false));
    c.net.cut.delete(leader.memberId);
    return t!.ttlSec;
  } finally {
    await stopCluster(c);
  }
}

test('a leader change keeps a long lease remaining TTL with checkpoints, and restarts it without (etcd #9526)', async () => {
  const withCp = await ttlAfterLeaderChange(SEED + 2, true);
  const without = await ttlAfterLeaderChange(SEED + 2, false);
  // 60 s granted, ≥ 10 s gone: at most the last checkpoint's remainder (≤ 50 + one 2 s interval) plus the
  // election timeout the new leader adds.
  assert.ok(withCp > 40 && withCp <= 53, `with checkpoints: TTL ${withCp}`);
  assert.ok(without >= 59, `without checkpoints: TTL ${without} (the full TTL again)`);
});

test('every member lists the same leases; a revoke removes one everywhere', async () => {
  const c = await startCluster(SEED + 3, {}, true);
  try {
    const leader = await leaderAfter(c);
    for (const id of [11n, 12n]) await run(c, leader.leaseGrant({ ID: id, TTL: 100 }));
    await settle(c);
    for (const s of c.servers) assert.equal([...s.leaseIdsList()].sort(), [11n, 12n]);
    await run(c, leader.propose({ lease_revoke: { ID: 11n } }));
    await settle(c);
    for (const s of c.servers) assert.equal(s.leaseIdsList(), [12n]);
    assert.ok(leaderOf(c));
  } finally {
    await stopCluster(c);
  }
});

test.run();
