// The bulk delete of a lease revoke (MvccWriteTxn.deleteSorted) against the per-key deletes it replaces:
// the same revisions, events, index answers and LMDB bytes; one walk of the index for neighbouring keys;
// the commit of a big revision spread over several turns; and a file holding part of a commit (what a crash
// or a copy between its chunks leaves) opened at the commit before.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { join } from 'node:path';
import { open } from 'lmdb';
import { Mvcc, type MvccEvent } from '../../src/mvcc/index.js';
import { type Backend, COMMIT_JOBS_MAX } from '../../src/mvcc/backend.js';
import { type KeyIndex, SORTED_WALK_GAP_MAX } from '../../src/mvcc/key_index.js';
import { isTombstoneKey, revKey, revKeyMain } from '../../src/mvcc/revision.js';
import { decodeKeyValue, encodeKeyValue } from '../../src/proto/kv.js';
import { b, cleanup, openTemp, showAll } from './helpers.js';

/** A history with every shape a revoked key can have: packed single puts, longer histories, deleted and re-created keys, unleased neighbours. */
function populate(s: Mvcc): string[] {
  const leased: string[] = [];
  const put = (k: string, v: string, lease: bigint) => {
    const t = s.write();
    t.put(b(k), b(v), lease);
    t.end();
  };
  for (let i = 0; i < 300; i++) {
    const k = `k/${String(i).padStart(4, '0')}`;
    put(k, 'v1', i % 3 === 0 ? 0n : 7n);
    if (i % 5 === 0) put(k, 'v2', 7n); // two revisions, leased at the newest
    if (i % 11 === 0) {
      const t = s.write();
      t.deleteRange(b(k), undefined, false);
      t.end();
      put(k, 'v3', 7n); // a second generation
    }
  }
  // Keys far apart: many unlisted keys between two listed ones (the walk descends afresh).
  for (let i = 0; i < 3 * SORTED_WALK_GAP_MAX; i++) put(`m/${String(i).padStart(4, '0')}`, 'x', 0n);
  put('m/0050a', 'y', 7n);
  put('z', 'last', 7n);
  for (const kv of s.range(b('\0'), b('\0'), {}).kvs) {
    const d = decodeKeyValue(kv);
    if (d.lease === 7n) leased.push(Buffer.from(d.key).toString('latin1'));
  }
  return leased;
}

function eventsText(evs: MvccEvent[]): string[] {
  return evs.map(
    (e) =>
      `${e.type} ${Buffer.from(e.kv.key).toString('latin1')} m${e.kv.mod_revision} c${e.kv.create_revision} v${e.kv.version} prev=${e.prevKv ? showAll([encodeKeyValue(e.prevKv)]) : '-'}`,
  );
}

/** The store's backend and index (private to it). */
function internals(s: Mvcc): { be: Backend; index: KeyIndex } {
  return (s as unknown as { core: { be: Backend; index: KeyIndex } }).core;
}

function lmdbRecords(s: Mvcc): string[] {
  const out: string[] = [];
  for (const { key, value } of internals(s).be.keyDb.getRange({}))
    out.push(`${Buffer.from(key).toString('hex')}=${Buffer.from(value).toString('hex')}`);
  return out;
}

test('deleteSorted gives what a deleteRange per key gives: revisions, events with prevKv, reads, history, hash and LMDB bytes', async () => {
  const a = await openTemp();
  const c = await openTemp();
  try {
    const keys = populate(a.s);
    assert.equal(populate(c.s), keys);
    // Listed keys that are not live, or not in the index at all, are skipped as a delete of nothing would be.
    const listed = [...keys, 'k/0000x', 'zz'].sort();
    const before = a.s.currentRevision;
    const ta = a.s.write(undefined, true);
    for (const k of listed) ta.deleteRange(b(k), undefined, false);
    const ra = ta.end();
    const tc = c.s.write(undefined, true);
    assert.is(tc.deleteSorted(listed), keys.length);
    assert.ok(tc.lastWalkDescents > 1 && tc.lastWalkDescents < 10, `descents ${tc.lastWalkDescents}`);
    const rc = tc.end();
    assert.is(rc.rev, before + 1);
    assert.is(ra.rev, rc.rev);
    assert.equal(eventsText(rc.events), eventsText(ra.events));
    assert.is(rc.events.length, keys.length);
    const compare = () => {
      for (const rev of [0, before, before - 40]) {
        assert.equal(showAll(c.s.range(b('\0'), b('\0'), { rev }).kvs), showAll(a.s.range(b('\0'), b('\0'), { rev }).kvs));
      }
      assert.equal(c.s.stats.keys, a.s.stats.keys);
      assert.equal(c.s.stats.indexKeys, a.s.stats.indexKeys);
      assert.equal(c.s.hashKV(0), a.s.hashKV(0));
      const ha: string[] = [];
      const hc: string[] = [];
      a.s.history(before - 5, rc.rev, (e) => ha.push(eventsText([e])[0]) > 0);
      c.s.history(before - 5, rc.rev, (e) => hc.push(eventsText([e])[0]) > 0);
      assert.equal(hc, ha);
    };
    compare(); // from the overlay
    await a.s.commit(10, 1).committed;
    await c.s.commit(10, 1).committed;
    compare(); // from LMDB
    assert.equal(lmdbRecords(c.s), lmdbRecords(a.s));
    // A put after it starts a new generation, as after any delete.
    for (const s of [a.s, c.s]) {
      const t = s.write();
      t.put(b(keys[0]), b('again'), 0n);
      t.end();
    }
    assert.equal(showAll(c.s.range(b(keys[0])).kvs), showAll(a.s.range(b(keys[0])).kvs));
    // Compaction below the revoke keeps every deleted key's put; at it, the deleted keys leave the index.
    for (const at of [before - 1, rc.rev]) {
      const done = [a.s, c.s].map((s) => s.compact(at).physicalDone);
      await a.s.commit(11, 1).committed;
      await c.s.commit(11, 1).committed;
      await Promise.all(done);
      assert.equal(showAll(c.s.range(b('\0'), b('\0'), { rev: at }).kvs), showAll(a.s.range(b('\0'), b('\0'), { rev: at }).kvs));
      assert.equal(c.s.stats.indexKeys, a.s.stats.indexKeys);
      assert.equal(c.s.hashKV(0), a.s.hashKV(0));
      assert.equal(lmdbRecords(c.s), lmdbRecords(a.s));
    }
    assert.is(internals(c.s).index.deletedRecords, 0, 'compacted deleted keys free their records');
  } finally {
    await a.s.close();
    await c.s.close();
    cleanup(a.dir);
    cleanup(c.dir);
  }
});

test('deleteSorted: one walk for neighbouring keys, no events unless asked, nothing after it in the transaction, abort undoes it', async () => {
  const { s, dir } = await openTemp();
  try {
    const keys: string[] = [];
    for (let i = 0; i < 5000; i++) {
      const k = `n/${String(i).padStart(5, '0')}`;
      keys.push(k);
      const t = s.write();
      t.put(b(k), b('v'), 3n);
      t.end();
    }
    const rev = s.currentRevision;
    let t = s.write();
    assert.is(t.deleteSorted(keys.slice(0, 100)), 100);
    assert.throws(() => t.put(b('other'), b('v'), 0n), /after deleteSorted/);
    t.abort();
    assert.is(s.currentRevision, rev);
    assert.is(s.range(b('n/'), b('n0'), { countOnly: true }).count, 5000);
    assert.is(s.stats.keys, 5000);
    t = s.write();
    assert.is(t.deleteSorted(keys, false), 5000);
    assert.is(t.lastWalkDescents, 1, 'neighbouring keys: one walk of the index');
    const r = t.end();
    assert.is(r.rev, rev + 1);
    assert.is(r.events.length, 0);
    assert.is(s.range(b('n/'), b('n0'), { countOnly: true }).count, 0);
    assert.is(s.range(b('n/'), b('n0'), { countOnly: true, rev }).count, 5000);
    const seen: MvccEvent[] = [];
    s.history(rev + 1, rev + 1, (e) => seen.push(e) > 0);
    assert.is(seen.length, 5000, 'the events are in the history all the same');
    assert.ok(seen.every((e, i) => e.type === 1 && Buffer.from(e.kv.key).toString('latin1') === keys[i]));
  } finally {
    await s.close();
    cleanup(dir);
  }
});

/** Records of LMDB (not the overlay) at main revision `main`. */
function lmdbCountAt(s: Mvcc, main: number): number {
  let n = 0;
  for (const { key } of internals(s).be.keyDb.getRange({ start: revKey(main, 0), end: revKey(main + 1, 0) })) {
    if (revKeyMain(key) === main && isTombstoneKey(key)) n++;
  }
  return n;
}

test('a big commit goes into LMDB over several turns; reads see the whole revision all along', async () => {
  const n = 20_000;
  const { s, dir } = await openTemp({ commitChunkPuts: 500 });
  try {
    const keys = putKeys(s, n);
    await s.commit(1, 1).committed;
    const rev = s.currentRevision;
    const hashBefore = s.hashKV(rev).hash;
    const t = s.write();
    t.deleteSorted(keys, false);
    t.end();
    const res = s.commit(2, 1);
    // The calling turn issued one chunk; the rest follow turn by turn.
    assert.is(internals(s).be.commitsInFlight, 1);
    let turns = 0;
    let done = false;
    res.committed.then(() => {
      done = true;
    });
    let hashWhole: number | undefined;
    while (!done) {
      await yieldTurn();
      turns++;
      assert.is(s.range(b('c/'), b('c0'), { countOnly: true }).count, 0, 'no read sees part of the revision');
      const inLmdb = lmdbCountAt(s, rev + 1);
      if (inLmdb > 0 && inLmdb < n) {
        // LMDB holds part of it (the writer did not merge the chunks): hash and history read LMDB only below the overlay.
        hashWhole ??= s.hashKV(0).hash;
        let seen = 0;
        s.history(rev + 1, rev + 1, () => ++seen > 0);
        assert.is(seen, n);
      }
    }
    assert.ok(turns >= n / 500 - 1, `issued over ${turns} turns`);
    assert.is(lmdbCountAt(s, rev + 1), n);
    if (hashWhole !== undefined) assert.is(s.hashKV(0).hash, hashWhole);
    assert.is(s.hashKV(rev).hash, hashBefore);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('a file with part of a commit (a crash or a copy between chunks) opens at the commit before; applying again gives the same bytes', async () => {
  const n = 5000;
  const { s, dir } = await openTemp();
  const copy = join(dir, 'copy.db');
  let reopened: Mvcc | undefined;
  try {
    const keys = putKeys(s, n);
    await s.commit(1, 1).committed;
    const rev = s.currentRevision;
    const metaBefore = metaRecords(s);
    const t = s.write();
    t.deleteSorted(keys, false);
    t.end();
    await s.commit(2, 1).committed;
    const whole = lmdbRecords(s);
    await s.backup(copy);
    // What a crash between chunks leaves: the meta (applied index, revision) of the commit before, part of the next revision.
    const raw = open<Buffer, Buffer>({ path: copy, noSubdir: true, maxDbs: 4, keyEncoding: 'binary', encoding: 'binary' });
    const keyDb = raw.openDB<Buffer, Buffer>({ name: 'key', keyEncoding: 'binary', encoding: 'binary' });
    const metaDb = raw.openDB<Buffer, Buffer>({ name: 'meta', keyEncoding: 'binary', encoding: 'binary' });
    raw.transactionSync(() => {
      let i = 0;
      for (const { key } of keyDb.getRange({ start: revKey(rev + 1, 0), end: revKey(rev + 2, 0) })) {
        if (i++ % 3 !== 0) keyDb.removeSync(Buffer.from(key));
      }
      for (const [k, v] of metaBefore) metaDb.putSync(k, v);
    });
    await raw.close();

    reopened = await Mvcc.open({ path: copy });
    assert.is(reopened.consistentIndex().index, 1);
    assert.is(reopened.currentRevision, rev);
    assert.is(lmdbCountAt(reopened, rev + 1), 0, 'the torn revision is gone from the file');
    assert.is(reopened.range(b('c/'), b('c0'), { countOnly: true }).count, n);
    const again = reopened.write();
    again.deleteSorted(keys, false);
    assert.is(again.end().rev, rev + 1);
    await reopened.commit(2, 1).committed;
    assert.equal(lmdbRecords(reopened), whole);
  } finally {
    await reopened?.close();
    await s.close();
    cleanup(dir);
  }
});

/** Puts n leased keys c/000000…, one revision each; returns them (latin1, sorted). */
function putKeys(s: Mvcc, n: number): string[] {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = `c/${String(i).padStart(6, '0')}`;
    keys.push(k);
    const t = s.write();
    t.put(b(k), b('v'), 5n);
    t.end();
  }
  return keys;
}

/** The meta bucket's records as they are in LMDB. */
function metaRecords(s: Mvcc): Array<[Buffer, Buffer]> {
  const out: Array<[Buffer, Buffer]> = [];
  for (const { key, value } of internals(s).be.metaDb.getRange({})) out.push([Buffer.from(key), Buffer.from(value)]);
  return out;
}

test('commits waiting for their chunks are bounded: past COMMIT_JOBS_MAX the queue goes into LMDB at once', async () => {
  const { s, dir } = await openTemp({ commitChunkPuts: 2 });
  try {
    const done: Promise<void>[] = [];
    for (let i = 0; i < COMMIT_JOBS_MAX; i++) {
      for (let j = 0; j < 3; j++) {
        const t = s.write();
        t.put(b(`q/${i}/${j}`), b('v'), 0n);
        t.end();
      }
      done.push(s.commit(i + 1, 1).committed);
      assert.is(internals(s).be.commitsInFlight, i + 1, 'three writes, chunks of two: it waits for a turn');
    }
    const t = s.write();
    t.put(b('q/last'), b('v'), 0n);
    t.end();
    done.push(s.commit(COMMIT_JOBS_MAX + 1, 1).committed);
    assert.is(internals(s).be.commitsInFlight, 0);
    await Promise.all(done);
    let n = 0;
    for (const _ of internals(s).be.keyDb.getRange({})) n++;
    assert.is(n, 3 * COMMIT_JOBS_MAX + 1);
    assert.is(s.consistentIndex().index, COMMIT_JOBS_MAX + 1);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test.run();
