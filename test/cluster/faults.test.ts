// Faults on a real 3-member cluster (started by tools/cluster.ts, etcd's default 100 ms heartbeat and
// 1 s election timeout): SIGKILL of the leader under load, SIGSTOP of a follower for 10 s under load, and
// SIGSTOP of the leader with a linearizable read sent to it as it resumes. After each: no acknowledged
// write lost, and every member ends with the same revision and the same keys.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LocalCluster } from '../../tools/cluster.js';
import {
  ELECTION_MS,
  LONG,
  ExactKv,
  PutLoad,
  assertNoCrash,
  clusterLogs,
  endpointStatus,
  firstWrite,
  sleep,
  startFaultCluster,
  waitConverged,
} from '../helpers/faults.js';

/**
 * Failover budget: 3 election timeouts, as the spec says, from the SIGKILL to the first acknowledged write.
 * A follower notices the dead leader after a randomized election timeout in [1, 2) s; pre-vote and vote take
 * two round trips and a WAL fsync; the new leader commits an empty entry of its term and then the probe
 * write (two fsync rounds on a quorum). That leaves about 1 s for a split vote's extra randomized timeout
 * or for scheduling lag on this shared 2-core machine, and the probe interval (50 ms).
 */
const FAILOVER_BUDGET_MS = 3 * ELECTION_MS;

let cluster: LocalCluster;

test.before(async () => {
  cluster = await startFaultCluster();
});

test.after(async () => {
  await cluster?.stop();
});

test('SIGKILL the leader under load: a new leader serves writes within 3 election timeouts, nothing acknowledged is lost, the member catches up', async () => {
  const c = cluster;
  for (let round = 1; round <= (LONG ? 3 : 1); round++) {
    await c.waitHealthy(30_000);
    const load = new PutLoad(c, `kill${round}`, 4);
    load.start();
    await sleep(2_000);
    const old = await c.leader(10_000);
    const survivors = c.members.filter((m) => m !== old);
    const termBefore = (await endpointStatus(old.endpoint)).raftTerm;
    const ackedBefore = load.acked.size;
    const t0 = Date.now();
    await old.kill('SIGKILL');
    const w = await firstWrite(survivors, Buffer.from(`probe/kill${round}`), 20_000);
    const failoverMs = w.atMs - t0;
    process.stdout.write(
      `  round ${round}: killed leader ${old.name}; first write via ${w.via} after ${failoverMs} ms (budget ${FAILOVER_BUDGET_MS} ms)\n`,
    );
    assert.ok(failoverMs <= FAILOVER_BUDGET_MS, `failover took ${failoverMs} ms > ${FAILOVER_BUDGET_MS} ms\n${clusterLogs(c)}`);
    const next = await c.leader(10_000, survivors);
    assert.is.not(next, old);
    const nextSt = await endpointStatus(next.endpoint);
    assert.ok(nextSt.raftTerm > termBefore, `the new leader's term ${nextSt.raftTerm} is past the old one's ${termBefore}`);
    assert.is(nextSt.headerRaftTerm, nextSt.raftTerm, 'response headers carry the real raft term');
    assert.is(nextSt.leader, nextSt.memberId, 'Status names the new leader');

    await sleep(2_000);
    assert.ok(load.acked.size > ackedBefore, 'the load kept committing through the survivors');
    old.start();
    await old.waitHealthy(30_000);
    await sleep(1_000);
    await load.stop();
    assert.ok(load.acked.size > 50, `only ${load.acked.size} writes acknowledged`);

    const conv = await waitConverged(c, 30_000);
    const st = await endpointStatus(old.endpoint);
    assert.is(st.revision, conv.revision, 'the restarted member reached the cluster revision');
    const lost = await load.lostWrites(old.endpoint);
    assert.equal(
      lost,
      [],
      `${lost.length} problems (of ${load.acked.size} acked, ${load.unknown.size} unknown):\n${lost.slice(0, 20).join('\n')}`,
    );
    process.stdout.write(
      `  round ${round}: ${load.acked.size} acked, ${load.unknown.size} unknown, ${load.errors} errors; converged at revision ${conv.revision}\n`,
    );
  }
  assertNoCrash(c);
});

test('SIGSTOP a follower for 10 s under load, SIGCONT: it catches up and nothing acknowledged is lost', async () => {
  const c = cluster;
  await c.waitHealthy(30_000);
  const load = new PutLoad(c, 'pause', 4);
  load.start();
  await sleep(1_500);
  const leader = await c.leader(10_000);
  const follower = c.members.find((m) => m !== leader)!;
  const statusBefore = await endpointStatus(follower.endpoint);
  follower.pause();
  const ackedAtPause = load.acked.size;
  await sleep(10_000);
  const ackedDuringPause = load.acked.size - ackedAtPause;
  follower.resume();
  await sleep(2_000);
  await load.stop();
  assert.ok(ackedDuringPause > 50, `only ${ackedDuringPause} writes committed while a follower was stopped`);

  const conv = await waitConverged(c, 30_000);
  assert.ok(conv.revision > statusBefore.revision + ackedDuringPause - 1, 'the follower applied what it missed');
  const lost = await load.lostWrites(follower.endpoint);
  assert.equal(lost, [], `${lost.length} problems:\n${lost.slice(0, 20).join('\n')}`);
  process.stdout.write(
    `  paused ${follower.name} for 10 s: ${ackedDuringPause} writes committed meanwhile; converged at revision ${conv.revision}\n`,
  );
  assertNoCrash(c);
});

/** The outcome of one read sent to the deposed leader. */
type ReadOutcome = { ok: true; value: string; mod: number; revision: number } | { ok: false; error: string };

async function readOutcome(p: Promise<{ revision: number; kv: { value: Uint8Array; mod_revision: number } | null }>): Promise<ReadOutcome> {
  try {
    const g = await p;
    return { ok: true, value: g.kv ? Buffer.from(g.kv.value).toString() : '<absent>', mod: g.kv?.mod_revision ?? 0, revision: g.revision };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}

test('SIGSTOP the leader: while it is stopped a new leader takes a write; the old leader never serves a stale linearizable read', async () => {
  const c = cluster;
  let staleSerializable = 0;
  const rounds = LONG ? 6 : 2;
  for (let round = 1; round <= rounds; round++) {
    await c.waitHealthy(30_000);
    const old = await c.leader(10_000);
    const others = c.members.filter((m) => m !== old);
    const key = Buffer.from(`stale/${round}`);
    const toOld = new ExactKv(old.endpoint);
    const toOldSer = new ExactKv(old.endpoint);
    try {
      await toOld.put(key, Buffer.from('v1'), 5_000);
      // Both connections are up before the pause, so requests sent later wait in the socket buffers.
      assert.is(Buffer.from((await toOld.get(key, 5_000)).kv!.value).toString(), 'v1');
      await toOldSer.get(key, 5_000, true);

      old.pause();
      const t0 = Date.now();
      const next = await c.leader(15_000, others);
      const electedMs = Date.now() - t0;
      const toNew = new ExactKv(next.endpoint);
      const w2 = await toNew.put(key, Buffer.from('v2'), 5_000).finally(() => toNew.close());

      // Sent while the old leader is stopped: it handles them the moment it runs again, before it has
      // necessarily heard of the new term.
      const queued = readOutcome(toOld.get(key, 15_000));
      const queuedSer = readOutcome(toOldSer.get(key, 15_000, true));
      await sleep(100);
      old.resume();
      // And a stream of fresh reads right after it resumes.
      const after: Promise<ReadOutcome>[] = [];
      for (let i = 0; i < 20; i++) {
        after.push(readOutcome(toOld.get(key, 15_000)));
        await sleep(25);
      }
      const outcomes = [await queued, ...(await Promise.all(after))];
      const ser = await queuedSer;
      if (ser.ok && ser.value === 'v1') staleSerializable++;
      const report =
        `round ${round}: leader ${old.name} stopped, ${next.name} elected after ${electedMs} ms, v2 at revision ${w2.revision}; ` +
        `serializable read on the old leader: ${ser.ok ? ser.value : ser.error}; linearizable reads: ` +
        outcomes.map((o) => (o.ok ? `${o.value}@${o.mod}` : `error(${o.error})`)).join(', ');
      process.stdout.write(`  ${report}\n`);
      for (const o of outcomes) {
        if (!o.ok) continue;
        assert.ok(
          o.value === 'v2' && o.mod >= w2.revision && o.revision >= w2.revision,
          `stale linearizable read from the deposed leader: ${JSON.stringify(o)}\n${report}\n${clusterLogs(c)}`,
        );
      }
      assert.ok(
        outcomes.some((o) => o.ok),
        `the resumed member never answered a read: ${report}`,
      );
    } finally {
      toOld.close();
      toOldSer.close();
    }
    await old.waitHealthy(30_000);
  }
  // The check above is sharp only if a read served from local state at that moment (what a serializable
  // read does) is stale: then a member answering linearizable reads locally would have failed it. If no
  // round produced one, the scenario proved nothing about linearizable reads.
  process.stdout.write(`  serializable reads on the resumed old leader that were stale: ${staleSerializable}/${rounds}\n`);
  assert.ok(
    staleSerializable >= 1,
    `no serializable read on the resumed old leader was stale in ${rounds} rounds: the scenario cannot tell a local read from a linearizable one`,
  );
  await waitConverged(c, 30_000);
  assertNoCrash(c);
});

test('SIGKILL every member at once under load: after they restart nothing acknowledged is lost', async () => {
  const c = cluster;
  await c.waitHealthy(30_000);
  const load = new PutLoad(c, 'all', 4);
  load.start();
  await sleep(2_000);
  await Promise.all(c.members.map((m) => m.kill('SIGKILL')));
  await load.stop();
  const acked = load.acked.size;
  assert.ok(acked > 50, `only ${acked} writes acknowledged before the crash`);
  for (const m of c.members) m.start();
  await c.waitHealthy(30_000);
  const conv = await waitConverged(c, 30_000);
  const lost = await load.lostWrites(c.members[0]!.endpoint);
  assert.equal(lost, [], `${lost.length} problems (of ${acked} acked):\n${lost.slice(0, 20).join('\n')}`);
  process.stdout.write(
    `  killed all 3 members with ${acked} writes acknowledged (${load.unknown.size} unknown); all there after restart, revision ${conv.revision}\n`,
  );
  assertNoCrash(c);
});

test.run();
