// How a stopped follower catches up, in both directions, on one cluster snapshotting every 1000 entries
// (--snapshot-count 1000) and keeping 5000 entries behind each snapshot (--snapshot-catchup-entries'
// default, and etcd's fixed SnapshotCatchUpEntries):
// - missing fewer entries than the leader keeps, it catches up from the log: no snapshot is sent, although
//   the leader snapshots (and compacts) while it is stopped;
// - missing more than that, it must catch up from a snapshot: the leader sends one and the follower
//   installs it. Then it is SIGKILLed and restarts from its own snapshot + WAL.
// Either way: same revision and keys as the others, nothing acknowledged lost. What was sent and installed
// is read from the members' logs, so a member that always or never sends snapshots fails one of the two.
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ClusterMember, LocalCluster } from '../../tools/cluster.js';
import { PutLoad, assertNoCrash, endpointStatus, sleep, startFaultCluster, waitConverged } from '../helpers/faults.js';

/** Lines of a member's log (tetcd's messages; etcd 3.4 logs the same words). */
const SENT_SNAPSHOT = /sent database snapshot/;
const APPLIED_SNAPSHOT = /applied snapshot/;
const SAVED_SNAPSHOT = /saved snapshot/;

let cluster: LocalCluster | undefined;

test.before(async () => {
  cluster = await startFaultCluster({ extraArgs: ['--snapshot-count', '1000'] });
});

test.after(async () => {
  await cluster?.stop();
});

/** Where a member's log ends now: what it logs later is read with logSince. */
function logEnd(m: ClusterMember): number {
  try {
    return statSync(m.logFile).size;
  } catch {
    return 0;
  }
}

/** What a member logged after `offset` (all its processes), up to `end` (default: now). */
function logSince(m: ClusterMember, offset: number, end = Infinity): string {
  const fd = openSync(m.logFile, 'r');
  try {
    const len = Math.max(0, Math.min(fstatSync(fd).size, end) - offset);
    const buf = Buffer.alloc(len);
    readSync(fd, buf, 0, len, offset);
    return buf.toString();
  } finally {
    closeSync(fd);
  }
}

/** The lines matching `re` that members logged after `from` (up to `to`), each prefixed with the member's name. */
function matching(c: LocalCluster, re: RegExp, from: Map<ClusterMember, number>, to?: Map<ClusterMember, number>): string[] {
  const out: string[] = [];
  for (const m of c.members) {
    for (const line of logSince(m, from.get(m) ?? 0, to?.get(m)).split('\n')) if (re.test(line)) out.push(`${m.name}: ${line}`);
  }
  return out;
}

/**
 * Stops a follower while a put load runs until `writes` more are acknowledged, resumes it and waits for the
 * cluster to converge with nothing lost. Returns the follower, the load, every member's log offset at the
 * pause and at the resume, and the revision all converged at.
 */
async function stopFollowerFor(
  c: LocalCluster,
  prefix: string,
  writes: number,
): Promise<{
  follower: ClusterMember;
  load: PutLoad;
  paused: Map<ClusterMember, number>;
  resumed: Map<ClusterMember, number>;
  revision: number;
}> {
  await c.waitHealthy(30_000);
  const load = new PutLoad(c, prefix, 4);
  load.start();
  await sleep(1_000);
  const leader = await c.leader(10_000);
  const follower = c.members.find((m) => m !== leader)!;
  const before = await endpointStatus(follower.endpoint);
  const paused = new Map(c.members.map((m) => [m, logEnd(m)] as const));
  follower.pause();
  const ackedAtPause = load.acked.size;
  const deadline = Date.now() + 60_000;
  while (load.acked.size - ackedAtPause < writes && Date.now() < deadline) await sleep(100);
  const missed = load.acked.size - ackedAtPause;
  const resumed = new Map(c.members.map((m) => [m, logEnd(m)] as const));
  follower.resume();
  await sleep(2_000);
  await load.stop();
  assert.ok(missed >= writes, `only ${missed} writes while the follower was stopped (wanted ${writes})`);

  const conv = await waitConverged(c, 60_000).catch((err: Error) => {
    // What the stuck follower and the leader said is what explains it.
    throw new Error(
      `${err.message}\n--- ${follower.name} log:\n${follower.logTail(16 * 1024)}\n--- ${leader.name} log:\n${leader.logTail(16 * 1024)}`,
    );
  });
  assert.ok(conv.revision >= before.revision + missed);
  assert.equal(await load.lostWrites(follower.endpoint), []);
  process.stdout.write(`  ${follower.name} missed ${missed} writes; converged at revision ${conv.revision}\n`);
  return { follower, load, paused, resumed, revision: conv.revision };
}

test('a follower that missed fewer entries than the leader keeps behind its snapshots catches up from the log, with no snapshot sent', async () => {
  const c = cluster!;
  // 2500 entries: past two snapshots on the leader, well within the 5000 it keeps.
  const { follower, paused, resumed } = await stopFollowerFor(c, 'log', 2_500);
  const saved = matching(c, SAVED_SNAPSHOT, paused, resumed).filter((l) => !l.startsWith(`${follower.name}:`));
  assert.ok(saved.length > 0, 'the others took no snapshot while the follower was stopped: the scenario proves nothing');
  // From the pause to now: the whole catch-up.
  const sent = matching(c, SENT_SNAPSHOT, paused);
  assert.equal(sent, [], 'a snapshot was sent to a follower that the log could catch up');
  const applied = matching(c, APPLIED_SNAPSHOT, paused);
  assert.equal(applied, [], 'a member installed a snapshot from the leader');
  process.stdout.write(`  caught up from the log (${saved.length} snapshots saved by the others while it was stopped, none sent)\n`);
  assertNoCrash(c);
});

test('a follower stopped while the leader compacts its log past it catches up by snapshot, and restarts from it', async () => {
  const c = cluster!;
  // Enough writes that the leader's log no longer holds what the follower misses: a snapshot every 1000
  // entries keeps 5000 entries behind it, so > ~7000 entries guarantees it.
  const { follower, load, paused, revision } = await stopFollowerFor(c, 'snap', 8_000);
  const sent = matching(c, SENT_SNAPSHOT, paused);
  assert.ok(sent.length > 0, `no member logged sending a snapshot:\n${follower.logTail(8 * 1024)}`);
  const applied = logSince(follower, paused.get(follower)!)
    .split('\n')
    .filter((l) => APPLIED_SNAPSHOT.test(l));
  assert.ok(applied.length > 0, `${follower.name} never installed a snapshot from the leader:\n${follower.logTail(8 * 1024)}`);
  process.stdout.write(`  caught up from a snapshot: ${sent[0]}\n`);

  // Crash it and restart: it recovers from its snapshot and WAL.
  await follower.kill('SIGKILL');
  follower.start();
  await follower.waitHealthy(30_000);
  const again = await waitConverged(c, 60_000);
  assert.is(again.revision, revision);
  assert.equal(await load.lostWrites(follower.endpoint), []);
  assertNoCrash(c);
});

test.run();
