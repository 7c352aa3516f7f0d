import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CompactedError, RaftInvariantError } from '../../src/raft/errors.js';
import { NO_LIMIT, RaftLog } from '../../src/raft/log.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import { silentLogger } from '../../src/raft/types.js';
import { ent, ents, it, snapshot, storageWith } from './helpers.js';

function logWith(terms: number[]): RaftLog {
  const l = new RaftLog(new MemoryStorage(), silentLogger);
  l.append(ents(1, terms));
  return l;
}

test('findConflict: first entry missing or with another term', () => {
  const l = logWith([1, 2, 3]);
  assert.is(l.findConflict([]), 0);
  assert.is(l.findConflict(ents(1, [1, 2, 3])), 0, 'all present');
  assert.is(l.findConflict(ents(2, [2, 3, 4, 4])), 4, 'new entries after the end');
  assert.is(l.findConflict(ents(1, [4, 4])), 1, 'conflict at the start');
  assert.is(l.findConflict(ents(2, [1, 4])), 2);
  assert.is(l.findConflict(ents(3, [1, 4])), 3);
});

test('findConflictByTerm skips every entry whose term is above the given one', () => {
  // Log terms at 1..7: 1 1 2 2 5 5 5.
  const l = logWith([1, 1, 2, 2, 5, 5, 5]);
  assert.is(l.findConflictByTerm(7, 5), 7);
  assert.is(l.findConflictByTerm(7, 4), 4, 'skips the term-5 run');
  assert.is(l.findConflictByTerm(7, 2), 4);
  assert.is(l.findConflictByTerm(7, 1), 2);
  assert.is(l.findConflictByTerm(7, 0), 0);
  assert.is(l.findConflictByTerm(9, 0), 9, 'beyond the end: unchanged');
  // Below the snapshot terms read as 0, so the search ends there.
  const s = storageWith(3, 2, [1n], ents(4, [5, 5]));
  const c = new RaftLog(s, silentLogger);
  assert.is(c.findConflictByTerm(5, 1), 2);
});

test('maybeAppend: match, conflicts, commit, and refusing to rewrite committed entries', () => {
  const make = () => {
    const l = logWith([1, 2, 3]);
    l.commitTo(1);
    return l;
  };
  let l = make();
  assert.is(l.maybeAppend(3, 2, 3, []), undefined, 'term mismatch at index 3');
  assert.is(l.maybeAppend(4, 3, 3, []), undefined, 'index 4 missing');
  l = make();
  assert.is(l.maybeAppend(3, 3, 3, []), 3);
  assert.is(l.committed, 3);
  l = make();
  assert.is(l.maybeAppend(3, 3, 5, [ent(4, 4)]), 4);
  assert.is(l.committed, 4, 'commit capped at the last new entry');
  assert.is(it(l.allEntries()), '1/1 2/2 3/3 4/4');
  l = make();
  assert.is(l.maybeAppend(1, 1, 2, [ent(2, 4)]), 2);
  assert.is(it(l.allEntries()), '1/1 2/4', 'conflicting suffix replaced');
  assert.is(l.committed, 2);
  l = make();
  assert.is(l.maybeAppend(1, 1, 1, [ent(2, 2)]), 2, 'an older, matching append');
  assert.is(it(l.allEntries()), '1/1 2/2 3/3', 'does not truncate what follows');
  l = make();
  assert.throws(
    () => l.maybeAppend(0, 0, 1, [ent(1, 4)]),
    (e: unknown) => e instanceof RaftInvariantError,
  );
});

test('commitTo never goes back and never past the last index', () => {
  const l = logWith([1, 2, 3]);
  l.commitTo(2);
  l.commitTo(1);
  assert.is(l.committed, 2);
  assert.throws(
    () => l.commitTo(4),
    (e: unknown) => e instanceof RaftInvariantError,
  );
});

test('maybeCommit commits only entries of the given term', () => {
  const l = logWith([1, 2, 2, 3]);
  assert.not.ok(l.maybeCommit(3, 3), 'entry 3 has term 2');
  assert.is(l.committed, 0);
  assert.ok(l.maybeCommit(4, 3));
  assert.is(l.committed, 4);
  assert.not.ok(l.maybeCommit(4, 3), 'no change');
});

test('isUpToDate compares last term, then last index', () => {
  const l = logWith([1, 2, 3]);
  assert.ok(l.isUpToDate(1, 4));
  assert.not.ok(l.isUpToDate(5, 2));
  assert.ok(l.isUpToDate(3, 3));
  assert.ok(l.isUpToDate(4, 3));
  assert.not.ok(l.isUpToDate(2, 3));
});

test('term: zero outside the log, from the unstable tail first, then storage', () => {
  const s = storageWith(3, 3, [1n], ents(4, [4, 5]));
  const l = new RaftLog(s, silentLogger);
  l.append([ent(6, 6)]);
  assert.is(l.term(2), 0, 'below the snapshot: outside the log');
  assert.is(l.term(3), 3);
  assert.is(l.term(5), 5);
  assert.is(l.term(6), 6);
  assert.is(l.term(7), 0);
  s.compact(5);
  assert.is(l.firstIndex(), 6, 'the log follows storage compaction');
  assert.is(l.term(4), 0);
  assert.is(l.term(5), 5);
});

test('slice spans storage and the unstable tail, size-limited, and reports compaction', () => {
  const s = storageWith(3, 3, [1n], [ent(4, 4, 'aaaa'), ent(5, 5, 'bbbb')]);
  const l = new RaftLog(s, silentLogger);
  l.append([ent(6, 6, 'cccc'), ent(7, 6, 'dddd')]);
  assert.is(it(l.slice(4, 8, NO_LIMIT)), '4/4 5/5 6/6 7/6');
  assert.is(it(l.slice(5, 7, NO_LIMIT)), '5/5 6/6');
  assert.is(it(l.slice(4, 8, 40)), '4/4 5/5');
  assert.is(it(l.slice(4, 8, 60)), '4/4 5/5 6/6');
  assert.is(it(l.slice(6, 8, 0)), '6/6');
  assert.throws(
    () => l.slice(3, 5, NO_LIMIT),
    (e: unknown) => e instanceof CompactedError,
  );
  assert.throws(
    () => l.slice(4, 9, NO_LIMIT),
    (e: unknown) => e instanceof RaftInvariantError,
  );
});

test('nextEnts hands out committed entries not yet applied, respecting the Ready size limit', () => {
  const s = storageWith(3, 1, [1n], ents(4, [1, 1, 1]));
  const l = new RaftLog(s, silentLogger, 0);
  l.commitTo(5);
  assert.ok(l.hasNextEnts());
  assert.is(it(l.nextEnts()), '4/1', 'limit 0: one at a time');
  l.appliedTo(4);
  assert.is(it(l.nextEnts()), '5/1');
  l.appliedTo(5);
  assert.not.ok(l.hasNextEnts());
  assert.equal(l.nextEnts(), []);
  assert.throws(
    () => l.appliedTo(6),
    (e: unknown) => e instanceof RaftInvariantError,
  );
});

test('a new log starts committed and applied at the snapshot', () => {
  const l = new RaftLog(storageWith(5, 2, [1n], ents(6, [2])), silentLogger);
  assert.is(l.committed, 5);
  assert.is(l.applied, 5);
  assert.is(l.firstIndex(), 6);
  assert.is(l.lastIndex(), 6);
  assert.is(l.persistedIndex(), 6);
});

test('restore makes the snapshot the base; persistedIndex waits for it', () => {
  const l = logWith([1, 1]);
  l.restore(snapshot(10, 3));
  assert.is(l.committed, 10);
  assert.is(l.firstIndex(), 11);
  assert.is(l.lastIndex(), 10);
  assert.is(l.term(10), 3);
  assert.is(l.persistedIndex(), 0, 'nothing durable until the snapshot is');
  l.append([ent(11, 3)]);
  assert.is(l.lastIndex(), 11);
});

test('entries handed out for a Ready never change afterwards; appends before that go in place', () => {
  const l = logWith([1]);
  l.append([ent(2, 1)]);
  const rd1 = l.unstableEntries();
  l.append([ent(3, 1)]);
  l.append([ent(4, 1)]);
  assert.is(it(rd1), '1/1 2/1');
  assert.is(it(l.unstableEntries()), '1/1 2/1 3/1 4/1');
  const rd2 = l.unstableEntries();
  l.append([ent(4, 2)]); // truncate and replace
  assert.is(it(rd2), '1/1 2/1 3/1 4/1');
  assert.is(it(l.unstableEntries()), '1/1 2/1 3/1 4/2');
});

test('slice copies only what fits the size limit from a long unstable tail', () => {
  const l = new RaftLog(new MemoryStorage(), silentLogger);
  l.append(Array.from({ length: 1000 }, (_, i) => ent(i + 1, 1, 'abcd')));
  assert.is(l.slice(1, 1001, 100).length, 5, '5 entries of 20 bytes');
  assert.is(l.slice(1, 1001, 0).length, 1);
  assert.is(l.slice(1, 1001, NO_LIMIT).length, 1000);
});

test('persistedIndex is everything before the unstable tail', () => {
  const l = logWith([1, 1, 2]);
  assert.is(l.persistedIndex(), 0);
  l.stableTo(2, 1);
  assert.is(l.persistedIndex(), 2);
  l.stableTo(3, 1); // wrong term: not stable
  assert.is(l.persistedIndex(), 2);
  l.stableTo(3, 2);
  assert.is(l.persistedIndex(), 3);
});

test.run();
