// Regression tests for two restart bugs the linearizability run found (seeds 2895519364 and 2167258899:
// a member SIGKILLed by the nemesis restarted with "member stops serving writes after a fatal error: mvcc:
// applied index going back from X to Y" and never became healthy). Both came from replaying the WAL into
// a backend that already held the entries: the applier committed its applied index to the backend after
// every replayed batch, and the backend refuses an index below its own.
// 1. A commit index that only moved is not written to the WAL (the leader tells it again), yet the entries
//    it commits are applied; so the backend's applied index is normally ahead of the WAL's durable commit
//    index after a stop or crash (a state etcd tolerates too). The test checks that this is the state on
//    disk, then restarts.
// 2. Replay hands committed entries over in Readies of bounded size (~1 MB), so any restart with more
//    than that since the last snapshot commits a first batch below the backend's index.
// Both failed on the member as of this writing and pass since src/server skips the backend commit while
// replaying entries it already holds.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RecordType, getU64, scanSegment } from '../../src/wal/record.js';
import { listSegments } from '../../src/wal/segment.js';
import { crc32c } from '../../src/crc32c.js';
import { ExactKv } from '../helpers/faults.js';
import { startTetcd, type Member } from '../helpers/member.js';

/**
 * The newest durable hard state's commit index and the last durable entry of a WAL. Since the member writes
 * no commit-only hard states at all (they are learned again after a restart), a WAL normally ends with its
 * durable commit index behind the entries the backend has already applied: the state this test needs.
 * Any trailing commit-only record (an older member wrote them) is zeroed, as if never written.
 */
function durableCommit(walDir: string): { commit: number; lastEntry: number; zeroed: number } {
  const segs = listSegments(walDir);
  let chain: number | undefined;
  let commit = 0;
  let lastEntry = 0;
  let last: { path: string; buf: Buffer; records: ReturnType<typeof scanSegment>['records']; endOffset: number } | undefined;
  segs.forEach((seg, i) => {
    const path = join(walDir, seg.name);
    const buf = readFileSync(path);
    const scan = scanSegment(buf, path, chain, i === segs.length - 1, crc32c);
    chain = scan.chain;
    last = { path, buf, records: scan.records, endOffset: scan.endOffset };
  });
  assert.ok(last, 'a WAL segment');
  const { path, buf, records, endOffset } = last!;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let lastEntryAt = -1;
  for (let i = 0; i < records.length; i++) if (records[i]!.type === RecordType.entry) lastEntryAt = i;
  assert.ok(lastEntryAt >= 0, 'entries in the newest segment');
  lastEntry = getU64(view, records[lastEntryAt]!.payloadStart);
  const tail = records.slice(lastEntryAt + 1).filter((r) => r.type === RecordType.hardState);
  if (tail.length > 0) {
    buf.fill(0, tail[0]!.offset, endOffset);
    writeFileSync(path, buf);
  }
  for (const r of records.slice(0, lastEntryAt + 1)) if (r.type === RecordType.hardState) commit = getU64(view, r.payloadStart + 16);
  return { commit, lastEntry, zeroed: tail.length };
}

let m: Member | undefined;

test.after(async () => {
  await m?.stop();
});

test("a member whose backend applied past the WAL's last durable commit index restarts and serves", async () => {
  m = await startTetcd({ readyTimeoutMs: 10_000 });
  const kv = new ExactKv(m.endpoint);
  try {
    for (let i = 0; i < 20; i++) await kv.put(Buffer.from(`k${i}`), Buffer.from(`v${i}`), 5_000);
  } finally {
    kv.close();
  }
  await m.stop();
  const wal = durableCommit(join(m.dataDir, 'member', 'wal'));
  assert.ok(
    wal.commit < wal.lastEntry,
    `the WAL's durable commit ${wal.commit} is behind its last entry ${wal.lastEntry}, which the backend applied`,
  );

  await m.start(); // waits for /health
  const again = new ExactKv(m.endpoint);
  try {
    const r = await again.range(Buffer.from('k'), Buffer.from('l'), 5_000);
    assert.is(r.kvs.length, 20, 'every acknowledged put is still there');
    await again.put(Buffer.from('after'), Buffer.from('restart'), 5_000);
  } finally {
    again.close();
  }
});

test('a member restarts after more committed entries than one Ready applies (2 MB of puts since the last snapshot)', async () => {
  // Found by the same run (seed 2167258899): a follower SIGKILLed after ~18 000 entries restarted with
  // "mvcc: applied index going back from 18357 to 16999" — replay hands committed entries over in
  // Readies of bounded size, and the first one already commits its last index to the backend, which is
  // below the backend's applied index. Needs no crash at all: a graceful stop does it.
  const big = await startTetcd({ readyTimeoutMs: 10_000 });
  try {
    const kv = new ExactKv(big.endpoint);
    const value = Buffer.alloc(1024, 'x');
    const n = 2_000;
    try {
      for (let i = 0; i < n; i += 50) {
        await Promise.all(Array.from({ length: 50 }, (_, j) => kv.put(Buffer.from(`big/${i + j}`), value, 10_000)));
      }
    } finally {
      kv.close();
    }
    await big.stop();
    await big.start();
    const again = new ExactKv(big.endpoint);
    try {
      const r = await again.range(Buffer.from('big/'), Buffer.from('big0'), 10_000);
      assert.is(r.kvs.length, n);
      await again.put(Buffer.from('after'), Buffer.from('restart'), 5_000);
    } finally {
      again.close();
    }
  } finally {
    await big.stop();
  }
});

test.run();
