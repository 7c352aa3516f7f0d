// A follower stopped long enough that the leader snapshots and compacts its log past it (--snapshot-count
// 1000, a few thousand writes while it is stopped) must catch up from a snapshot: same revision and keys as
// the others, nothing acknowledged lost. Then it is SIGKILLed and restarted from its own snapshot + WAL.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LocalCluster } from '../../tools/cluster.js';
import { PutLoad, assertNoCrash, endpointStatus, sleep, startFaultCluster, waitConverged } from '../helpers/faults.js';

let cluster: LocalCluster | undefined;

test.after(async () => {
  await cluster?.stop();
});

test('a follower stopped while the leader compacts its log past it catches up (by snapshot), and restarts from it', async () => {
  cluster = await startFaultCluster({ extraArgs: ['--snapshot-count', '1000'] });
  const c = cluster;
  const load = new PutLoad(c, 'snap', 4);
  load.start();
  await sleep(1_000);
  const leader = await c.leader(10_000);
  const follower = c.members.find((m) => m !== leader)!;
  const before = await endpointStatus(follower.endpoint);
  follower.pause();
  // Enough writes that the leader's log no longer holds what the follower misses: a snapshot every 1000
  // entries keeps 5000 entries behind it, so > ~7000 entries guarantees it.
  const ackedAtPause = load.acked.size;
  const deadline = Date.now() + 60_000;
  while (load.acked.size - ackedAtPause < 8_000 && Date.now() < deadline) await sleep(250);
  const missed = load.acked.size - ackedAtPause;
  follower.resume();
  await sleep(2_000);
  await load.stop();
  assert.ok(missed >= 8_000, `only ${missed} writes while the follower was stopped`);

  const conv = await waitConverged(c, 60_000).catch((err: Error) => {
    // What the stuck follower and the leader said is what explains it.
    throw new Error(`${err.message}\n--- ${follower.name} log:\n${follower.logTail(16 * 1024)}\n--- ${leader.name} log:\n${leader.logTail(16 * 1024)}`);
  });
  assert.ok(conv.revision >= before.revision + missed);
  assert.equal(await load.lostWrites(follower.endpoint), []);
  const sawSnapshot = /received snapshot|applied snapshot/.test(follower.logTail(256 * 1024));
  process.stdout.write(`  ${follower.name} missed ${missed} writes; converged at revision ${conv.revision}; caught up ${sawSnapshot ? 'from a snapshot' : 'from the log'}\n`);

  // Crash it and restart: it recovers from its snapshot and WAL.
  await follower.kill('SIGKILL');
  follower.start();
  await follower.waitHealthy(30_000);
  const again = await waitConverged(c, 60_000);
  assert.is(again.revision, conv.revision);
  assert.equal(await load.lostWrites(follower.endpoint), []);
  assertNoCrash(c);
});

test.run();
