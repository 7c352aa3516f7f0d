// The member's Ready loop, deterministically: three members in one process on an in-memory WAL, an
// in-process network and a manual scheduler (no sockets, no timers; Raft's election timeouts drawn from a
// seed). Apply events arrive in log order on every member, a follower cut off past the leader's log
// catches up by a snapshot installed through swapBackend(), and a subscriber that falls behind is told.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { EtcdServer } from '../../src/server/server.js';
import { MemberBackend } from '../../src/server/backend.js';
import { BoundedApplyQueue } from '../../src/events/apply_events.js';
import { EntryType } from '../../src/raft/index.js';
import { decodeInternalRequest } from '../../src/proto/internal.js';
import { decodeKeyValue } from '../../src/proto/kv.js';
import { rng } from '../../tools/lib/rng.js';
import { type MemLog, type Recorder, electLeader, settle, startCluster, stopCluster, tickAll } from '../helpers/sim_cluster.js';

const SEED = Number(process.env.TETCD_READY_SEED ?? 20261207);

const enc = (s: string): Uint8Array => Buffer.from(s);

/** The values under a prefix, read locally on a member. */
function values(s: EtcdServer, prefix: string): string[] {
  const end = Buffer.from(prefix);
  end[end.length - 1]++;
  const res = s.range({ key: enc(prefix), range_end: end } as never);
  return (res.kvs_encoded ?? []).map((b) => dec(decodeKeyValue(b as Uint8Array).value));
}
const dec = (b: Uint8Array): string => Buffer.from(b).toString();

/** Every kv event's entry in the member's WAL is the write that made it, and kv events follow the log. */
function assertEventsFollowLog(rec: Recorder, log: MemLog, label: string): number {
  const byIndex = new Map(log.entries.map((e) => [e.index, e]));
  let lastIndex = 0;
  let lastRev = 1; // a new store is at revision 1; the first write makes 2
  let kvEvents = 0;
  for (const ev of rec.events) {
    assert.ok(ev.index > lastIndex || ev.kind === 'restore', `${label}: event of index ${ev.index} after ${lastIndex}`);
    lastIndex = ev.index;
    if (ev.kind === 'restore') {
      lastRev = ev.revision;
      continue;
    }
    if (ev.kind !== 'kv') continue;
    kvEvents++;
    assert.is(ev.revision, lastRev + 1, `${label}: revision ${ev.revision} after ${lastRev}`);
    lastRev = ev.revision;
    const e = byIndex.get(ev.index);
    assert.ok(e && e.type === EntryType.Normal, `${label}: no normal entry ${ev.index} in the log`);
    const req = decodeInternalRequest(e.data);
    const keysInEntry = new Set<string>();
    if (req.put) keysInEntry.add(dec(req.put.key));
    if (req.delete_range) keysInEntry.add(dec(req.delete_range.key));
    for (const op of req.txn?.success ?? []) {
      if (op.request_put) keysInEntry.add(dec(op.request_put.key));
      if (op.request_delete_range) keysInEntry.add(dec(op.request_delete_range.key));
    }
    for (const ch of ev.changes) {
      assert.ok(keysInEntry.has(dec(ch.kv.key)), `${label}: event key ${dec(ch.kv.key)} is not written by entry ${ev.index}`);
      assert.is(ch.kv.mod_revision, ev.revision);
    }
  }
  return kvEvents;
}

test('apply events follow the log on every member; one txn is one event group', async () => {
  const c = await startCluster(SEED);
  try {
    const leader = await electLeader(c);
    const r = rng(SEED);
    const done: Array<Promise<unknown>> = [];
    for (let i = 0; i < 40; i++) {
      const k = `k${Math.floor(r() * 10)}`;
      if (i % 7 === 3) {
        done.push(
          leader.propose({
            txn: {
              compare: [],
              success: [
                { request_put: { key: enc(`${k}-a`), value: enc(`t${i}`) } },
                { request_put: { key: enc(`${k}-b`), value: enc(`t${i}`) } },
              ],
              failure: [],
            },
          }),
        );
      } else if (i % 5 === 4) {
        done.push(leader.propose({ delete_range: { key: enc(k) } }));
      } else {
        done.push(leader.propose({ put: { key: enc(k), value: enc(`v${i}`) } }));
      }
    }
    await settle(c);
    await tickAll(c, 3);
    await Promise.all(done);
    const counts = c.servers.map((_, i) => assertEventsFollowLog(c.recorders[i], c.logs[i], `member ${i + 1}`));
    assert.ok(counts[0] > 0, 'the leader published kv events');
    assert.equal(counts, [counts[0], counts[0], counts[0]], 'every member published the same kv events');
    // A txn's two puts arrive as one group at one revision.
    const txnGroups = c.recorders[0].events.filter((ev) => ev.kind === 'kv' && ev.changes.length === 2);
    assert.ok(txnGroups.length >= 5, `txn groups: ${txnGroups.length}`);
    // prevKv was asked for: an overwrite carries the value it replaced.
    const overwrite = c.recorders[0].events.find((ev) => ev.kind === 'kv' && ev.changes.some((ch) => ch.kv.version > 1));
    assert.ok(overwrite && overwrite.kind === 'kv');
    const ch = overwrite.changes.find((x) => x.kv.version > 1)!;
    assert.ok(ch.prevKv, 'an overwrite carries its prevKv');
    assert.is(ch.prevKv!.version, ch.kv.version - 1);
  } finally {
    await stopCluster(c);
  }
});

test('a follower cut off past the leader log catches up by a snapshot installed through swapBackend()', async () => {
  const swaps: string[] = [];
  const orig = MemberBackend.prototype.swapBackend;
  MemberBackend.prototype.swapBackend = function (this: MemberBackend, next: string, live: string) {
    swaps.push(next);
    return orig.call(this, next, live);
  };
  const c = await startCluster(SEED + 1);
  try {
    const leader = await electLeader(c);
    const lagging = c.servers.find((s) => s !== leader)!;
    const li = c.servers.indexOf(lagging);
    await Promise.all(
      [leader.propose({ put: { key: enc('before'), value: enc('1') } })].map(async (p) => {
        await settle(c);
        return p;
      }),
    );
    c.net.cut.add(lagging.memberId);
    // Past --snapshot-count (20) twice: the leader snapshots and compacts its log to index − 5.
    for (let i = 0; i < 60; i++) {
      const p = leader.propose({ put: { key: enc(`during-${i}`), value: enc(`${i}`) } });
      await settle(c);
      await p;
    }
    await tickAll(c, 2);
    assert.is(swaps.length, 0, 'no snapshot installed before the follower is back');
    c.net.cut.delete(lagging.memberId);
    for (let i = 0; i < 30 && lagging.status().raftAppliedIndex < leader.status().raftAppliedIndex; i++) await tickAll(c, 1);
    assert.ok(c.net.snapshotsSent >= 1, 'the leader sent a snapshot');
    assert.is(swaps.length, 1, 'the follower installed it through swapBackend()');
    assert.is(lagging.status().raftAppliedIndex, leader.status().raftAppliedIndex);
    assert.equal(values(lagging, 'during-'), values(leader, 'during-'));
    assert.is(values(lagging, 'during-').length, 60);
    const restore = c.recorders[li].events.find((ev) => ev.kind === 'restore');
    assert.ok(restore, 'the follower published a restore event');
    assert.is(restore!.kind === 'restore' && restore.revision, leader.status().revision);
    // Writes after the install reach the follower as ordinary kv events again.
    const p = leader.propose({ put: { key: enc('after'), value: enc('x') } });
    await settle(c);
    await p;
    await tickAll(c, 2);
    const last = c.recorders[li].events.at(-1)!;
    assert.ok(last.kind === 'kv' && dec(last.changes[0].kv.key) === 'after', 'live events resume after the restore');
  } finally {
    MemberBackend.prototype.swapBackend = orig;
    await stopCluster(c);
  }
});

test('a subscriber that cannot keep up falls behind explicitly and resumes; apply never waits', async () => {
  const c = await startCluster(SEED + 2);
  try {
    const leader = await electLeader(c);
    const slow = new BoundedApplyQueue('slow', 3);
    let told = 0;
    const fell = slow.fellBehind.bind(slow);
    slow.fellBehind = (i: number) => {
      told++;
      fell(i);
    };
    slow.subscription = leader.subscribe(slow);
    for (let i = 0; i < 10; i++) {
      const p = leader.propose({ put: { key: enc(`s${i}`), value: enc('v') } });
      await settle(c);
      await p;
    }
    assert.is(told, 1, 'told once that it fell behind');
    assert.is(slow.length, 3, 'it kept what fit');
    assert.ok(slow.behindFrom !== undefined);
    const firstMissed = slow.behindFrom!;
    assert.is(slow.drain().length, 3);
    assert.is(slow.subscription.missedEvents, 7, 'the other seven puts were not delivered');
    // Every put was applied all the same.
    assert.is(leader.range({ key: enc('s'), range_end: enc('t') } as never).count, 10);
    const kvIndexes = c.recorders[c.servers.indexOf(leader)].events.filter((e) => e.kind === 'kv').map((e) => e.index);
    assert.ok(kvIndexes.includes(firstMissed), 'behindFrom names the first missed entry');
    // Caught up from the store: deliveries start with the next applied entry.
    slow.resume();
    const p = leader.propose({ put: { key: enc('s-next'), value: enc('v') } });
    await settle(c);
    await p;
    const got = slow.drain();
    assert.is(got.length, 1);
    assert.ok(got[0].kind === 'kv' && dec(got[0].changes[0].kv.key) === 's-next');
  } finally {
    await stopCluster(c);
  }
});

test.run();
