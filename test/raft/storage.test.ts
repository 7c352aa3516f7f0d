import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CompactedError, RaftInvariantError, SnapOutOfDateError, UnavailableError } from '../../src/raft/errors.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import { emptyConfState } from '../../src/raft/types.js';
import { ent, it, snapshot } from './helpers.js';

/** Storage with a dummy at (3,3) and entries 4/4 5/5 (like etcd's storage tests). */
function base(): MemoryStorage {
  const s = new MemoryStorage();
  s.applySnapshot(snapshot(3, 3));
  s.append([ent(4, 4), ent(5, 5)]);
  return s;
}

test('term: compacted below the snapshot, unavailable past the end', () => {
  const s = base();
  assert.throws(
    () => s.term(2),
    (e: unknown) => e instanceof CompactedError,
  );
  assert.is(s.term(3), 3);
  assert.is(s.term(4), 4);
  assert.is(s.term(5), 5);
  assert.throws(
    () => s.term(6),
    (e: unknown) => e instanceof UnavailableError,
  );
});

test('entries: bounds, and the size limit keeps at least one entry', () => {
  const s = new MemoryStorage();
  s.applySnapshot(snapshot(3, 3));
  s.append([ent(4, 4, 'aaaa'), ent(5, 5, 'bbbb'), ent(6, 6, 'cccc')]);
  assert.throws(
    () => s.entries(2, 6, 1e9),
    (e: unknown) => e instanceof CompactedError,
  );
  assert.throws(
    () => s.entries(3, 4, 1e9),
    (e: unknown) => e instanceof CompactedError,
  );
  assert.is(it(s.entries(4, 5, 1e9)), '4/4');
  assert.is(it(s.entries(4, 7, 1e9)), '4/4 5/5 6/6');
  assert.is(it(s.entries(4, 7, 0)), '4/4', 'limit 0: one entry');
  assert.is(it(s.entries(4, 7, 40)), '4/4 5/5', 'two entries of 20 bytes fit in 40');
  assert.is(it(s.entries(4, 7, 39)), '4/4');
  assert.throws(
    () => s.entries(4, 8, 1e9),
    (e: unknown) => e instanceof RaftInvariantError,
  );
  assert.throws(
    () => new MemoryStorage().entries(1, 1, 1e9),
    (e: unknown) => e instanceof UnavailableError,
  );
});

test('first and last index follow snapshot, append and compact', () => {
  const s = base();
  assert.is(s.firstIndex(), 4);
  assert.is(s.lastIndex(), 5);
  s.append([ent(6, 5)]);
  assert.is(s.lastIndex(), 6);
  s.compact(4);
  assert.is(s.firstIndex(), 5);
  assert.is(s.term(4), 4, 'the compacted-to entry becomes the dummy');
  assert.throws(
    () => s.compact(4),
    (e: unknown) => e instanceof CompactedError,
  );
  assert.throws(
    () => s.compact(7),
    (e: unknown) => e instanceof RaftInvariantError,
  );
});

test('append truncates a conflicting tail, skips compacted entries, refuses gaps', () => {
  const cases: { add: [number, number][]; want: string }[] = [
    {
      add: [
        [4, 4],
        [5, 5],
      ],
      want: '4/4 5/5',
    },
    {
      add: [
        [4, 4],
        [5, 6],
        [6, 6],
      ],
      want: '4/4 5/6 6/6',
    },
    {
      add: [
        [4, 4],
        [5, 5],
        [6, 5],
      ],
      want: '4/4 5/5 6/5',
    },
    {
      add: [
        [2, 3],
        [3, 3],
        [4, 5],
      ],
      want: '4/5',
    },
    { add: [[4, 5]], want: '4/5' },
    { add: [[6, 5]], want: '4/4 5/5 6/5' },
  ];
  for (const c of cases) {
    const s = base();
    s.append(c.add.map(([i, t]) => ent(i, t)));
    assert.is(it(s.entries(s.firstIndex(), s.lastIndex() + 1, 1e9)), c.want, JSON.stringify(c.add));
  }
  assert.throws(
    () => base().append([ent(7, 5)]),
    (e: unknown) => e instanceof RaftInvariantError,
  );
});

test('createSnapshot and applySnapshot refuse older snapshots', () => {
  const s = base();
  const cs = { ...emptyConfState(), voters: [1n, 2n, 3n] };
  const snap = s.createSnapshot(4, cs, new Uint8Array([7]));
  assert.is(snap.metadata.index, 4);
  assert.is(snap.metadata.term, 4);
  assert.equal(snap.metadata.conf_state.voters, [1n, 2n, 3n]);
  assert.throws(
    () => s.createSnapshot(4, cs, new Uint8Array()),
    (e: unknown) => e instanceof SnapOutOfDateError,
  );
  assert.throws(
    () => s.applySnapshot(snapshot(4, 4)),
    (e: unknown) => e instanceof SnapOutOfDateError,
  );
  s.applySnapshot(snapshot(10, 7, cs));
  assert.is(s.firstIndex(), 11);
  assert.is(s.lastIndex(), 10);
  assert.is(s.term(10), 7);
  assert.equal(s.initialState().confState.voters, [1n, 2n, 3n]);
});

test('initialState returns copies', () => {
  const s = new MemoryStorage();
  s.setHardState({ term: 3, vote: 2n, commit: 0 });
  const a = s.initialState();
  a.hardState.term = 99;
  assert.is(s.initialState().hardState.term, 3);
});

test.run();
