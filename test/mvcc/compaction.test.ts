// Compaction: etcd's errors and boundaries, what stays in LMDB afterwards (compared with etcd's
// HashKV values for the same history), an interrupted compaction resuming on open, the index
// compacted in chunks while writes go on, and freed pages being reused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { open } from 'lmdb';
import { EtcdError } from '../../src/errors.js';
import { Mvcc } from '../../src/mvcc/index.js';
import { decodeKeyValue } from '../../src/proto/kv.js';
import { b, cleanup, del, openTemp, put, showAll } from './helpers.js';

const isErr = (msg: string) => (e: unknown) => e instanceof EtcdError && e.message === msg;
const COMPACTED = 'etcdserver: mvcc: required revision has been compacted';
const FUTURE = 'etcdserver: mvcc: required revision is a future revision';

/** Revision keys left in the LMDB file, as "main.sub[t]". Opens the file read-only after close. */
async function lmdbRevisions(path: string): Promise<string[]> {
  const env = open({ path, noSubdir: true, maxDbs: 4, readOnly: true });
  const db = env.openDB({ name: 'key', keyEncoding: 'binary', encoding: 'binary' });
  const out: string[] = [];
  for (const k of db.getKeys({})) {
    const kb = k as Buffer;
    out.push(`${kb.readUInt32BE(4)}.${kb.readUInt32BE(13)}${kb.length === 18 ? 't' : ''}`);
  }
  await env.close();
  return out;
}

/** etcd HashKV test history: the values below came from etcd 3.4.23 for the same requests. */
function etcdHistory(s: Mvcc): void {
  put(s, 'a', '1'); // 2
  put(s, 'b', '2'); // 3
  put(s, 'a', '3'); // 4
  del(s, 'a'); // 5
  put(s, 'a', '4'); // 6
  const t = s.write(); // 7
  t.put(b('c'), b('5'), 0n);
  t.put(b('d'), b(''), 0n);
  t.deleteRange(b('b'), undefined, false);
  t.end();
  put(s, 'c', '6'); // 8
}

test("HashKV equals etcd's before and after compaction (so physical compaction deletes what etcd deletes)", async () => {
  const { s, dir, path } = await openTemp();
  try {
    etcdHistory(s);
    const want = [590843758, 1084519789, 2587454935, 1827592406, 2069675932, 1346927904, 243047511, 756122838, 590843758];
    // Before any commit: everything is in the overlay.
    for (let rev = 0; rev <= 8; rev++)
      assert.equal(
        s.hashKV(rev),
        { hash: want[rev], compactRevision: -1, hashRevision: rev === 0 ? 8 : rev, currentRevision: 8 },
        `rev ${rev}`,
      );
    await s.commit(10, 2).committed;
    for (let rev = 0; rev <= 8; rev++) assert.is(s.hashKV(rev).hash, want[rev], `committed rev ${rev}`);
    assert.throws(() => s.hashKV(9), isErr(FUTURE));
    const { physicalDone } = s.compact(5);
    assert.is(s.compactRevision, 5);
    s.commit(11, 2);
    await physicalDone;
    assert.throws(() => s.hashKV(5), isErr(COMPACTED));
    assert.equal(s.hashKV(6), { hash: 3059177743, compactRevision: 5, hashRevision: 6, currentRevision: 8 });
    assert.is(s.hashKV(7).hash, 7406414);
    assert.is(s.hashKV(8).hash, 2870830328);
    await s.close();
    // kept: b@3 (b deleted at 7 > 5), a@6, everything after 5; gone: a@2, a@4, a@5t
    assert.equal(await lmdbRevisions(path), ['3.0', '6.0', '7.0', '7.1', '7.2t', '8.0']);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('compact: errors, reads at and below the compacted revision, compact at current', async () => {
  const { s, dir } = await openTemp();
  try {
    // etcd probe: a@2,a@3 (identical), b@4, c@5, del a@6, a@7; compact 4.
    put(s, 'a', '1');
    put(s, 'a', '1');
    put(s, 'b', '2');
    put(s, 'c', '3');
    del(s, 'a');
    put(s, 'a', '9');
    assert.throws(() => s.compact(8), isErr(FUTURE));
    s.compact(4);
    assert.throws(() => s.compact(4), isErr(COMPACTED));
    assert.throws(() => s.compact(3), isErr(COMPACTED));
    assert.throws(() => s.compact(99), isErr(FUTURE));
    s.commit(1, 1);
    await s.compactBarrier();
    const at = (rev: number) => {
      const r = s.range(b('a'), b('z'), { rev });
      return `count=${r.count} kvs=[${showAll(r.kvs)}]`;
    };
    assert.is(at(4), 'count=2 kvs=[a=1@c2m3v2 b=2@c4m4v1]');
    assert.throws(() => at(3), isErr(COMPACTED));
    assert.is(at(5), 'count=3 kvs=[a=1@c2m3v2 b=2@c4m4v1 c=3@c5m5v1]');
    s.compact(7); // the current revision
    s.commit(2, 1);
    await s.compactBarrier();
    assert.is(at(7), 'count=3 kvs=[a=9@c7m7v1 b=2@c4m4v1 c=3@c5m5v1]');
    assert.is(at(0), 'count=3 kvs=[a=9@c7m7v1 b=2@c4m4v1 c=3@c5m5v1]');
    assert.throws(() => s.get(b('a'), 6), isErr(COMPACTED));
    // after compaction a put still continues version and create revision
    put(s, 'b', '3');
    assert.is(showAll(s.range(b('b')).kvs), 'b=3@c4m8v2');
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('physical compaction waits for the commit that records it; a reopened store sees the compacted state', async () => {
  const { s, dir, path } = await openTemp({ compactionBatchLimit: 3, compactionPauseMs: 1 });
  let s2: Mvcc | undefined;
  try {
    for (let i = 0; i < 20; i++) put(s, `k${i % 4}`, `v${i}`);
    s.commit(1, 1);
    const { physicalDone } = s.compact(15);
    let done = false;
    void physicalDone.then(() => {
      done = true;
    });
    await new Promise((r) => setTimeout(r, 30));
    assert.not.ok(done, 'no physical compaction before the schedule is committed');
    s.commit(2, 1);
    await physicalDone;
    const before = s.range(b('k'), b('l'), { rev: 15 });
    await s.close();
    // k0..k3 keep their newest revision <= 15 (14, 15, 12, 13) and everything after it
    assert.equal(await lmdbRevisions(path), ['12.0', '13.0', '14.0', '15.0', '16.0', '17.0', '18.0', '19.0', '20.0', '21.0']);
    s2 = await Mvcc.open({ path });
    assert.is(s2.compactRevision, 15);
    assert.is(s2.currentRevision, 21);
    assert.equal(s2.range(b('k'), b('l'), { rev: 15 }), before);
    assert.throws(() => s2!.range(b('k'), b('l'), { rev: 14 }), isErr(COMPACTED));
  } finally {
    await s2?.close();
    await s.close();
    cleanup(dir);
  }
});

test('an interrupted compaction resumes on open', async () => {
  const { s, dir, path } = await openTemp({ compactionBatchLimit: 2, compactionPauseMs: 60_000 });
  let s2: Mvcc | undefined;
  try {
    for (let i = 0; i < 30; i++) put(s, `k${i % 3}`, `v${i}`);
    s.commit(1, 1);
    const { physicalDone } = s.compact(25);
    s.commit(2, 1);
    physicalDone.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 100)); // first batch done, now in the long pause
    await s.close(); // cuts the pause: compaction stops half way
    const half = await lmdbRevisions(path);
    assert.ok(half.length < 31 && half.length > 8, `partly compacted: ${half.length}`);
    s2 = await Mvcc.open({ path, compactionBatchLimit: 2, compactionPauseMs: 1 });
    assert.is(s2.compactRevision, 25);
    await s2.compactBarrier();
    assert.equal(
      s2.range(b('k0'), b('k9'), { rev: 25 }).kvs.map((kv) => decodeKeyValue(kv).mod_revision),
      [23, 24, 25],
    );
    await s2.close();
    s2 = undefined;
    assert.equal(await lmdbRevisions(path), ['23.0', '24.0', '25.0', '26.0', '27.0', '28.0', '29.0', '30.0', '31.0']);
  } finally {
    await s2?.close();
    await s.close();
    cleanup(dir);
  }
});

test('an interrupted compaction that already deleted the newest revisions keeps the revision', async () => {
  const { s, dir, path } = await openTemp({ compactionBatchLimit: 2, compactionPauseMs: 60_000 });
  let s2: Mvcc | undefined;
  try {
    put(s, 'a', '1'); // 2
    del(s, 'a'); // 3: compaction at 3 deletes both revisions
    const { physicalDone } = s.compact(3);
    physicalDone.catch(() => undefined);
    s.commit(1, 1);
    await new Promise((r) => setTimeout(r, 100)); // the first (full) batch deleted 2 and 3t, not yet marked finished
    await s.close();
    assert.equal(await lmdbRevisions(path), []);
    s2 = await Mvcc.open({ path, compactionPauseMs: 1 });
    assert.is(s2.currentRevision, 3);
    assert.is(s2.compactRevision, 3);
    await s2.compactBarrier();
    assert.is(put(s2, 'b', '1'), 4);
  } finally {
    await s2?.close();
    await s.close();
    cleanup(dir);
  }
});

test('index compaction in chunks while writes continue; deleted keys leave the index', async () => {
  const { s, dir } = await openTemp({ indexCompactionChunkKeys: 5, compactionPauseMs: 1 });
  try {
    for (let i = 0; i < 40; i++) put(s, `k${String(i).padStart(2, '0')}`, 'a');
    for (let i = 0; i < 40; i += 2) del(s, `k${String(i).padStart(2, '0')}`);
    const rev = s.currentRevision;
    s.compact(rev);
    s.commit(1, 1);
    // interleave writes with the chunked compaction
    const barrier = s.compactBarrier();
    for (let i = 0; i < 10; i++) {
      put(s, `k${String(i).padStart(2, '0')}`, 'b');
      await new Promise((r) => setImmediate(r));
    }
    s.commit(2, 1);
    await barrier;
    assert.is(s.stats.keys, 20 + 5);
    assert.is(s.stats.indexKeys, 25); // the 15 deleted-and-compacted keys are gone
    const r = s.range(b('k'), b('l'));
    assert.is(r.count, 25);
    assert.is(showAll(s.range(b('k00')).kvs), `k00=b@c${rev + 1}m${rev + 1}v1`);
    assert.is(showAll(s.range(b('k01')).kvs), 'k01=b@c3m' + (rev + 2) + 'v2');
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('compaction frees pages: dbSizeInUse drops and new writes reuse them', async () => {
  const { s, dir } = await openTemp({ compactionPauseMs: 0 });
  try {
    const big = Buffer.alloc(2000, 7);
    const write = async (n: number, base: number) => {
      for (let i = 0; i < n; i++) {
        const t = s.write();
        t.put(b(`key${i % 10}`), big, 0n);
        t.end();
        if (i % 100 === 99) await s.commit(base + i, 1).committed;
      }
    };
    const s0 = s.stats.dbSizeBytes;
    await write(1500, 0);
    const s1 = s.stats;
    assert.ok(s1.dbSizeBytes - s0 > 1500 * 2000, `grew ${s1.dbSizeBytes - s0}`);
    s.compact(s.currentRevision);
    await s.commit(10_000, 1).committed;
    await s.compactBarrier();
    await s.commit(10_001, 1).committed; // lets LMDB release the pages the compaction freed
    const s2 = s.stats;
    assert.ok(s2.dbSizeInUseBytes < s1.dbSizeInUseBytes / 5, `in use ${s1.dbSizeInUseBytes} -> ${s2.dbSizeInUseBytes}`);
    assert.ok(s2.dbSizeBytes - s1.dbSizeBytes < 64 * 1024, 'compaction itself barely grows the file');
    await write(1500, 20_000);
    const s3 = s.stats;
    assert.ok(
      s3.dbSizeBytes - s2.dbSizeBytes < (s1.dbSizeBytes - s0) / 2,
      `regrew ${s3.dbSizeBytes - s2.dbSizeBytes} vs ${s1.dbSizeBytes - s0}`,
    );
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test.run();
