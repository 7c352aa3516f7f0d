// Leases on a 3-member cluster (tetcd; TETCD_FAULTS_TARGET=etcd runs the same against etcd 3.4): keep-alives
// and time-to-live sent to a follower are forwarded to the leader; expiry is one revoke through the log, so
// every member deletes the same keys at the same revision; a lease survives the leader's kill -9 and a
// member's restart; a revoke of 20,000 keys deletes them at one revision everywhere, a follower killed
// meanwhile included; and with checkpoints (tetcd's default) a leader change does not restart a long lease's
// TTL (etcd #9526).
import { Etcd3 } from 'etcd3';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ClusterMember, LocalCluster } from '../../tools/cluster.js';
import { ELECTION_MS, FAULTS_TARGET, assertNoCrash, clusterLogs, sleep, startFaultCluster, waitConverged } from '../helpers/faults.js';

const CHECKPOINT_INTERVAL_MS = 2000;

let c: LocalCluster | undefined;
const clients: Etcd3[] = [];

function clientOf(m: ClusterMember): Etcd3 {
  const cl = new Etcd3({ hosts: `http://${m.endpoint}`, dialTimeout: 5_000 });
  clients.push(cl);
  return cl;
}

test.after(async () => {
  for (const cl of clients) cl.close();
  await c?.stop();
});

async function exists(cl: Etcd3, key: string): Promise<boolean> {
  return (await cl.get(key).serializable(true).string()) !== null;
}

/** Sends a keep-alive every `everyMs` on one stream until stopped; counts the answers with TTL > 0. */
function keepAliving(cl: Etcd3, id: string, everyMs: number): { stop(): Promise<number> } {
  let running = true;
  let answered = 0;
  const done = (async () => {
    const stream = await cl.leaseClient.leaseKeepAlive();
    stream.on('data', (r: { TTL: string }) => {
      if (Number(r.TTL) > 0) answered++;
    });
    while (running) {
      stream.write({ ID: id });
      await sleep(everyMs);
    }
    stream.end();
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return answered;
    },
  };
}

test('start a 3-member cluster with short lease checkpoints', async () => {
  const extraArgs = FAULTS_TARGET === 'tetcd' ? ['--lease-checkpoint-interval', `${CHECKPOINT_INTERVAL_MS}ms`] : [];
  c = await startFaultCluster({ extraArgs });
});

test('keep-alives and time-to-live on a follower reach the leader; expiry deletes the same keys at the same revision everywhere', async () => {
  const leader = await c!.leader(10_000);
  const follower = c!.members.find((m) => m !== leader)!;
  const cl = clientOf(follower);
  const { ID } = await cl.leaseClient.leaseGrant({ TTL: 3 });
  for (const k of ['fw/a', 'fw/b']) await cl.put(k).value('v').lease(ID).exec();
  await cl.put('fw/keep').value('no lease').exec();
  const ka = keepAliving(cl, ID, 700);
  await sleep(6_000); // twice the TTL
  for (const m of c!.members)
    assert.ok(await exists(clientOf(m), 'fw/a'), `${m.name}: the key outlived its TTL while kept alive through a follower`);
  const ttl = await cl.leaseClient.leaseTimeToLive({ ID, keys: true });
  assert.ok(Number(ttl.TTL) > 0 && Number(ttl.TTL) <= 3, `the follower answered TTL ${ttl.TTL}`);
  assert.equal(ttl.keys.map((k) => Buffer.from(k).toString()).sort(), ['fw/a', 'fw/b']);
  const answered = await ka.stop();
  assert.ok(answered >= 7, `only ${answered} keep-alives answered`);
  const deadline = Date.now() + 3000 + ELECTION_MS + 1000;
  while ((await exists(cl, 'fw/a')) && Date.now() < deadline) await sleep(100);
  assert.is(await exists(cl, 'fw/a'), false, 'the keys outlived TTL + election timeout after the keep-alives stopped');
  const conv = await waitConverged(c!, 20_000);
  assert.equal(
    conv.lines.filter((l) => l.startsWith('fw/')).map((l) => l.split(' = ')[0]),
    ['fw/keep'],
  );
  assertNoCrash(c!);
});

test('a lease survives a kill -9 of the leader and the restart of a member, and still expires afterwards', async () => {
  const leader = await c!.leader(10_000);
  const cl = clientOf(leader);
  const { ID } = await cl.leaseClient.leaseGrant({ TTL: 8 });
  await cl.put('lk/a').value('1').lease(ID).exec();
  await leader.kill();
  const rest = c!.members.filter((m) => m !== leader);
  const next = await c!.leader(15_000, rest);
  const ncl = clientOf(next);
  const ttl = await ncl.leaseClient.leaseTimeToLive({ ID, keys: true });
  assert.ok(Number(ttl.TTL) > 0, `the lease is gone after the leader's kill (TTL ${ttl.TTL})\n${clusterLogs(c!)}`);
  assert.equal(
    ttl.keys.map((k) => Buffer.from(k).toString()),
    ['lk/a'],
  );
  // Renew through the new leader, then restart the killed member while the lease is alive.
  const r = await ncl.leaseClient.leaseTimeToLive({ ID });
  assert.ok(Number(r.TTL) > 0);
  const ka = keepAliving(ncl, ID, 1000);
  leader.start();
  await leader.waitHealthy(20_000);
  const lcl = clientOf(leader);
  const again = await lcl.leaseClient.leaseTimeToLive({ ID, keys: true });
  assert.ok(Number(again.TTL) > 0, 'the restarted member lost the lease');
  await ka.stop();
  const deadline = Date.now() + 8000 + ELECTION_MS + 2000;
  while ((await exists(ncl, 'lk/a')) && Date.now() < deadline) await sleep(100);
  assert.is(await exists(ncl, 'lk/a'), false, 'the lease did not expire after the keep-alives stopped');
  await waitConverged(c!, 20_000);
  assertNoCrash(c!);
});

test('a revoke of 20,000 keys: one revision and one event each on every member, also on a follower killed while committing it', async () => {
  const n = 20_000; // more than one LMDB chunk of a tetcd commit (16,384 revision writes)
  const leader = await c!.leader(10_000);
  const follower = c!.members.find((m) => m !== leader)!;
  const cl = clientOf(leader);
  const { ID } = await cl.leaseClient.leaseGrant({ TTL: 600 });
  const value = Buffer.from('v');
  const txns: Promise<unknown>[] = [];
  for (let i = 0; i < n; i += 128) {
    const success = [];
    for (let j = i; j < Math.min(n, i + 128); j++)
      success.push({ request_put: { key: Buffer.from(`big/${String(j).padStart(6, '0')}`), value, lease: ID } });
    txns.push(cl.kv.txn({ success }));
    if (txns.length >= 16) await Promise.all(txns.splice(0));
  }
  await Promise.all(txns);
  const wcl = clientOf(follower);
  const w = await wcl.watch().prefix('big/').create();
  const revs = new Set<string>();
  let deletes = 0;
  w.on('delete', (kv: { mod_revision: string }) => {
    deletes++;
    revs.add(kv.mod_revision);
  });
  await cl.leaseClient.leaseRevoke({ ID });
  const deadline = Date.now() + 20_000;
  while (deletes < n && Date.now() < deadline) await sleep(50);
  assert.is(deletes, n, 'a delete event per key');
  assert.equal([...revs].length, 1, 'all at one revision');
  await w.cancel();
  // A follower killed right after it applied the revoke (its commit may be part-way into LMDB) comes back the same.
  await follower.kill();
  follower.start();
  await follower.waitHealthy(20_000);
  const conv = await waitConverged(c!, 30_000);
  assert.is(conv.lines.filter((l) => l.startsWith('big/')).length, 0);
  assert.is(conv.revision, Number([...revs][0]));
  assertNoCrash(c!);
});

test('checkpoints: a leader change does not restart a long lease from its full TTL (etcd #9526)', async () => {
  if (FAULTS_TARGET !== 'tetcd') return; // etcd 3.4 checkpoints only with --experimental-enable-lease-checkpoint
  const leader = await c!.leader(10_000);
  const cl = clientOf(leader);
  const ttlSec = 30;
  const { ID } = await cl.leaseClient.leaseGrant({ TTL: ttlSec });
  const grantedAt = Date.now();
  // Let a few checkpoints (every 2 s) reach the log.
  await sleep(3 * CHECKPOINT_INTERVAL_MS + 500);
  const killedAt = Date.now();
  await leader.kill();
  const next = await c!.leader(
    15_000,
    c!.members.filter((m) => m !== leader),
  );
  const ncl = clientOf(next);
  const r = await ncl.leaseClient.leaseTimeToLive({ ID });
  // Without checkpoints the new leader would count the full TTL again (plus the election timeout): ~30 s.
  // With them it counts from the last checkpoint, which the old leader wrote at most one interval before it
  // was killed: at most that interval and the election timeout more than what was left at the kill (the time
  // spent electing and asking only lowers the answer; the +1 is the TTL's rounding up to whole seconds).
  const elapsedSec = (killedAt - grantedAt) / 1000;
  const bound = ttlSec - elapsedSec + CHECKPOINT_INTERVAL_MS / 1000 + ELECTION_MS / 1000 + 1;
  assert.ok(
    Number(r.TTL) > 0 && Number(r.TTL) <= bound,
    `TTL ${r.TTL} after the leader change (elapsed ${elapsedSec.toFixed(1)} s, bound ${bound.toFixed(1)})`,
  );
  assert.ok(Number(r.TTL) < ttlSec - 3, `TTL ${r.TTL}: the leader change restarted the lease`);
  leader.start();
  await leader.waitHealthy(20_000);
  await ncl.leaseClient.leaseRevoke({ ID });
  await waitConverged(c!, 20_000);
  assertNoCrash(c!);
});

test.run();
