// The packed key entries: generations, lookups at a revision, versions and etcd's compaction rules
// (the expectations are etcd's TestKeyIndexCompactAndKeep table for the same history).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  codeSub,
  ENTRY_HEAD,
  entryCompact,
  entryCreated,
  entryFind,
  entryGenStart,
  entryHas,
  entryKeep,
  entryLive,
  entryNew,
  entryPut,
  entryTombstone,
  entryVersion,
  KeyIndex,
  type KeyEntry,
} from '../../src/mvcc/key_index.js';

// etcd's newTestKeyIndex: put 2, put 4, del 6, put 8, put 10, del 12, put 14.0, put 14.1, del 16.
function fooEntry(): KeyEntry {
  const e = entryNew(2, 0, false);
  entryPut(e, 4, 0, false);
  entryTombstone(e, 6, 0);
  entryPut(e, 8, 0, false);
  entryPut(e, 10, 0, false);
  entryTombstone(e, 12, 0);
  entryPut(e, 14, 0, false);
  entryPut(e, 14, 1, false);
  entryTombstone(e, 16, 0);
  return e;
}

/** The entry's revisions as "main[.sub][t]". */
function revs(e: KeyEntry): string {
  const out: string[] = [];
  for (let p = ENTRY_HEAD; p < e.length; p += 2) {
    const sub = codeSub(e[p + 1]);
    out.push(`${e[p]}${sub ? '.' + sub : ''}${e[p + 1] < 0 ? 't' : ''}`);
  }
  return out.join(' ');
}

function pairStr(e: KeyEntry, p: number): string {
  if (p < 0) return '-';
  const sub = codeSub(e[p + 1]);
  return `${e[p]}${sub ? '.' + sub : ''}`;
}

test('find: the put visible at a revision, none inside a deleted span', () => {
  const e = fooEntry();
  const want: Record<number, string> = {
    1: '-',
    2: '2',
    3: '2',
    4: '4',
    5: '4',
    6: '-',
    7: '-',
    8: '8',
    9: '8',
    10: '10',
    11: '10',
    12: '-',
    13: '-',
    14: '14.1',
    15: '14.1',
    16: '-',
    17: '-',
    100: '-',
  };
  for (const [rev, w] of Object.entries(want)) assert.is(pairStr(e, entryFind(e, Number(rev))), w, `at ${rev}`);
  assert.not.ok(entryLive(e));
});

test('created and version per generation', () => {
  const e = fooEntry();
  const cv = (rev: number): string => {
    const p = entryFind(e, rev);
    const gs = entryGenStart(e, p);
    return `c${entryCreated(e, gs)}v${entryVersion(e, p, gs)}`;
  };
  assert.is(cv(2), 'c2v1');
  assert.is(cv(5), 'c2v2');
  assert.is(cv(9), 'c8v1');
  assert.is(cv(11), 'c8v2');
  assert.is(cv(14), 'c14v2');
});

test('compaction keeps what etcd keeps, at every revision', () => {
  // compact rev → remaining revisions, kept revision (etcd's "available" set).
  const want: Array<[number, string, string]> = [
    [1, '2 4 6t 8 10 12t 14 14.1 16t', '-'],
    [2, '2 4 6t 8 10 12t 14 14.1 16t', '2'],
    [3, '2 4 6t 8 10 12t 14 14.1 16t', '2'],
    [4, '4 6t 8 10 12t 14 14.1 16t', '4'],
    [5, '4 6t 8 10 12t 14 14.1 16t', '4'],
    [6, '8 10 12t 14 14.1 16t', '-'],
    [7, '8 10 12t 14 14.1 16t', '-'],
    [8, '8 10 12t 14 14.1 16t', '8'],
    [9, '8 10 12t 14 14.1 16t', '8'],
    [10, '10 12t 14 14.1 16t', '10'],
    [11, '10 12t 14 14.1 16t', '10'],
    [12, '14 14.1 16t', '-'],
    [13, '14 14.1 16t', '-'],
    [14, '14.1 16t', '14.1'],
    [15, '14.1 16t', '14.1'],
    [16, '', '-'],
  ];
  for (const [rev, left, kept] of want) {
    const e = fooEntry();
    assert.is(pairStr(e, entryKeep(e, rev)), kept, `keep at ${rev}`);
    const survives = entryCompact(e, rev);
    assert.is(survives, left !== '', `survives at ${rev}`);
    if (survives) assert.is(revs(e), left, `left at ${rev}`);
  }
});

test('compaction keeps created and version of a trimmed generation; reads at >= rev unchanged', () => {
  const e = entryNew(2, 0, false);
  for (const m of [3, 5, 9]) entryPut(e, m, 0, false);
  const before = [9, 10, 5, 6].map((r) => pairStr(e, entryFind(e, r)));
  assert.ok(entryCompact(e, 5));
  assert.is(revs(e), '5 9');
  assert.equal(
    [9, 10, 5, 6].map((r) => pairStr(e, entryFind(e, r))),
    before,
  );
  const p = entryFind(e, 9);
  const gs = entryGenStart(e, p);
  assert.is(entryCreated(e, gs), 2);
  assert.is(entryVersion(e, p, gs), 4);
  // compacting again further keeps counting from the trimmed base
  assert.ok(entryCompact(e, 9));
  assert.is(revs(e), '9');
  assert.is(entryVersion(e, ENTRY_HEAD, ENTRY_HEAD), 4);
  assert.is(entryCreated(e, ENTRY_HEAD), 2);
});

test('a put and a delete of one key inside one revision', () => {
  // etcd allows it in a txn (put k, then delete a from-key range holding k).
  const e = entryNew(5, 0, false);
  entryTombstone(e, 5, 3);
  assert.is(entryFind(e, 5), -1);
  assert.is(entryFind(e, 4), -1);
  assert.ok(entryHas(e, 5, 3, true));
  assert.ok(entryHas(e, 5, 0, false));
  assert.not.ok(entryHas(e, 5, 3, false));
  assert.not.ok(entryCompact(e, 5));
});

test('revisions must grow; tombstones need a live key', () => {
  const e = entryNew(5, 1, false);
  assert.throws(() => entryPut(e, 5, 1, false));
  assert.throws(() => entryPut(e, 4, 9, false));
  entryTombstone(e, 6, 0);
  assert.throws(() => entryTombstone(e, 7, 0));
});

test('binary search finds history in long entries', () => {
  const e = entryNew(10, 0, false);
  for (let m = 11; m < 5000; m++) {
    if (m % 7 === 0) entryTombstone(e, m, 0);
    else if (!entryLive(e) || m % 3 !== 0) entryPut(e, m, 0, false);
  }
  // reference: linear scan from the end
  for (let rev = 1; rev < 5100; rev += 13) {
    let want = -1;
    for (let p = e.length - 2; p >= ENTRY_HEAD; p -= 2) {
      if (e[p] <= rev) {
        want = e[p + 1] >= 0 ? p : -1;
        break;
      }
    }
    assert.is(entryFind(e, rev), want, `at ${rev}`);
  }
});

test('KeyIndex: live key count, copies of keys, undo', () => {
  const idx = new KeyIndex();
  const k = Buffer.from('k');
  idx.put(k, 2, 0, false);
  k[0] = 0x78; // the caller's buffer changing must not move the index's key
  assert.ok(idx.get(Buffer.from('k')) !== undefined);
  assert.is(idx.liveKeys, 1);
  idx.tombstone(Buffer.from('k'), 3, 0);
  assert.is(idx.liveKeys, 0);
  idx.put(Buffer.from('k'), 4, 0, true);
  assert.is(idx.liveKeys, 1);
  idx.undoLast(Buffer.from('k'));
  assert.is(idx.liveKeys, 0);
  idx.undoLast(Buffer.from('k'));
  assert.is(idx.liveKeys, 1);
  idx.undoLast(Buffer.from('k'));
  assert.is(idx.liveKeys, 0);
  assert.is(idx.size, 0);
});

test('the newest generation start stays right through puts, deletes, undo and compaction', () => {
  // Reference: scan back from the last pair for a tombstone that is not the last pair.
  const refGenStart = (e: KeyEntry): number => {
    for (let q = e.length - 4; q >= ENTRY_HEAD; q -= 2) if (e[q + 1] < 0) return q + 2;
    return ENTRY_HEAD;
  };
  let seed = 12345;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const key = Buffer.from('k');
  for (let round = 0; round < 300; round++) {
    const index = new KeyIndex();
    let rev = 1;
    index.put(key, rev, 0, false);
    for (let step = 0; step < 60; step++) {
      const e = index.get(key);
      if (e === undefined) break;
      const op = rand(10);
      if (op < 5 || !entryLive(e)) index.put(key, ++rev, 0, false);
      else if (op < 7) index.tombstone(key, ++rev, 0);
      else if (op < 8) index.undoLast(key);
      else for (const [k, slot] of [...index.tree.entries()]) index.compactKey(k, slot, rev - rand(5));
      const after = index.get(key);
      if (after === undefined) break;
      assert.is(entryGenStart(after, after.length - 2), refGenStart(after), `round ${round} step ${step}`);
    }
  }
});

test.run();
