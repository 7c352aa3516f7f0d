// The corruption checker's rules, with members wired to each other in memory: which member the leader's
// periodic check alarms (etcd's checkHashKV), what the initial check refuses, how a request survives a
// dropped answer, and that malformed or late frames change nothing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CorruptionChecker, type CorruptCheckHost } from '../../src/server/corrupt.js';
import { Errors } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import type { HashKVResult } from '../../src/mvcc/index.js';

interface FakeMember {
  id: bigint;
  checker: CorruptionChecker;
  /** HashKV at any revision: this answer (or this error). */
  result: HashKVResult | Error;
  alarms: bigint[];
  /** Frames this member sends that are dropped, counting down. */
  dropSends: number;
}

function cluster(results: Array<HashKVResult | Error>, opts: { leader?: number; timeoutMs?: number } = {}): FakeMember[] {
  const members: FakeMember[] = [];
  results.forEach((result, i) => {
    const id = BigInt(i + 1);
    const m = { id, result, alarms: [], dropSends: 0 } as unknown as FakeMember;
    const host: CorruptCheckHost = {
      memberId: id,
      peerIds: () => members.filter((x) => x.id !== id).map((x) => x.id),
      sendHash: (to, payload) => {
        if (m.dropSends > 0) {
          m.dropSends--;
          return true; // "sent", but lost on the way
        }
        const peer = members.find((x) => x.id === to)!;
        setImmediate(() => peer.checker.receive(id, Buffer.from(payload)));
        return true;
      },
      hashKV: () => {
        if (m.result instanceof Error) throw m.result;
        return m.result;
      },
      linearizableRead: async () => {},
      isLeader: () => i === (opts.leader ?? 0),
      raiseCorrupt: async (memberId) => {
        m.alarms.push(memberId);
      },
      log: silentLogger,
      requestTimeoutMs: opts.timeoutMs ?? 2000,
    };
    m.checker = new CorruptionChecker(host);
    members.push(m);
  });
  return members;
}

const h = (hash: number, compactRevision = 5, currentRevision = 10): HashKVResult => ({
  hash,
  compactRevision,
  hashRevision: currentRevision,
  currentRevision,
});

test('periodic check: a follower with another hash at the same compact revision is alarmed, once', async () => {
  const ms = cluster([h(111), h(111), h(222), h(333)]);
  await ms[0].checker.periodicCheck();
  assert.equal(ms[0].alarms, [3n]);
});

test('periodic check: all equal raises nothing; followers behind (future revision) are skipped', async () => {
  const ms = cluster([h(111), h(111), Errors.FutureRev()]);
  await ms[0].checker.periodicCheck();
  assert.equal(ms[0].alarms, []);
});

test('periodic check: a follower ahead of the leader, or compacted further, is alarmed', async () => {
  const ahead = cluster([h(111, 5, 10), h(111, 5, 12)]);
  await ahead[0].checker.periodicCheck();
  assert.equal(ahead[0].alarms, [2n]);
  const compacted = cluster([h(111, 5, 10), h(999, 7, 10)]);
  await compacted[0].checker.periodicCheck();
  assert.equal(compacted[0].alarms, [2n]);
});

test('periodic check: another compact revision (not past the leader) is no mismatch; only the leader checks', async () => {
  const ms = cluster([h(111, 5, 10), h(999, 3, 10)]);
  await ms[0].checker.periodicCheck();
  assert.equal(ms[0].alarms, []);
  const notLeader = cluster([h(111), h(222)], { leader: 1 });
  await notLeader[0].checker.periodicCheck();
  assert.equal(notLeader[0].alarms, []);
});

test('initial check: refuses on a mismatch at the same compact revision; passes when peers differ only in compaction', async () => {
  const bad = cluster([h(111), h(111), h(222)]);
  await bad[2].checker.initialCheck().then(
    () => assert.unreachable('passed'),
    (e: Error) => assert.is(e.message, '3 found data inconsistency with peers'),
  );
  const ok = cluster([h(111, 5), h(222, 4)]);
  await ok[0].checker.initialCheck();
});

test('a lost answer is asked for again; a peer that never answers is skipped after the timeout', async () => {
  const ms = cluster([h(111), h(222)]);
  ms[1].dropSends = 2; // its first two answers are lost
  const t0 = Date.now();
  await ms[1].checker.initialCheck().then(
    () => assert.unreachable('passed'),
    (e: Error) => assert.match(e.message, /found data inconsistency/),
  );
  assert.ok(Date.now() - t0 < 1900, 'answered before the timeout');
  const silent = cluster([h(111), h(222)], { timeoutMs: 300 });
  silent[1].dropSends = 1000;
  const peers = await silent[0].checker.peerHashes(10);
  assert.equal(peers, []);
});

test('malformed frames and answers nobody waits for are dropped', async () => {
  const ms = cluster([h(111), h(111)]);
  ms[0].checker.receive(2n, Buffer.from([9, 9, 9]));
  const lateAnswer = Buffer.alloc(26);
  lateAnswer[0] = 2;
  lateAnswer.writeUInt32BE(77, 1);
  ms[0].checker.receive(2n, lateAnswer);
  await ms[0].checker.periodicCheck();
  assert.equal(ms[0].alarms, []);
});

test.run();
