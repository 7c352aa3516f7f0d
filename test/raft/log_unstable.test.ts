import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Unstable } from '../../src/raft/log_unstable.js';
import { silentLogger } from '../../src/raft/types.js';
import { ent, it, snapshot } from './helpers.js';

function u(offset: number, entries: [number, number][], snap?: [number, number]): Unstable {
  const x = new Unstable(offset, silentLogger);
  if (snap) x.snapshot = snapshot(snap[0], snap[1]);
  x.entries = entries.map(([i, t]) => ent(i, t));
  return x;
}

test('first and last index come from the pending snapshot and entries', () => {
  assert.is(u(5, [[5, 1]]).maybeFirstIndex(), undefined);
  assert.is(u(5, [[5, 1]], [4, 1]).maybeFirstIndex(), 5);
  assert.is(u(5, [[5, 1]]).maybeLastIndex(), 5);
  assert.is(u(5, [], [4, 1]).maybeLastIndex(), 4);
  assert.is(u(0, []).maybeLastIndex(), undefined);
});

test('maybeTerm knows its entries and the snapshot index only', () => {
  const x = u(5, [[5, 1]], [4, 1]);
  assert.is(x.maybeTerm(5), 1);
  assert.is(x.maybeTerm(4), 1);
  assert.is(x.maybeTerm(3), undefined);
  assert.is(x.maybeTerm(6), undefined);
});

test('stableTo drops persisted entries unless they were replaced meanwhile', () => {
  let x = u(5, [
    [5, 1],
    [6, 1],
    [7, 2],
  ]);
  x.stableTo(6, 1);
  assert.is(x.offset, 7);
  assert.is(it(x.entries), '7/2');
  x = u(5, [
    [5, 1],
    [6, 2],
  ]);
  x.stableTo(6, 1); // the Ready had 6/1, which was since replaced by 6/2
  assert.is(x.offset, 5);
  assert.is(it(x.entries), '5/1 6/2');
  x = u(5, [[5, 1]], [4, 1]);
  x.stableTo(4, 1); // the snapshot index is not an unstable entry
  assert.is(x.offset, 5);
});

test('truncateAndAppend appends, replaces, or truncates then appends — and never mutates handed-out arrays', () => {
  let x = u(5, [[5, 1]]);
  const handedOut = x.entries;
  x.entriesShared = true; // as RaftLog.unstableEntries() marks it when a Ready takes it
  x.truncateAndAppend([ent(6, 1), ent(7, 1)]);
  assert.is(it(x.entries), '5/1 6/1 7/1');
  assert.is(it(handedOut), '5/1', 'an earlier Ready.entries view is unchanged');
  x = u(5, [[5, 1]]);
  x.truncateAndAppend([ent(5, 2), ent(6, 2)]);
  assert.is(x.offset, 5);
  assert.is(it(x.entries), '5/2 6/2');
  x = u(5, [[5, 1]]);
  x.truncateAndAppend([ent(4, 2), ent(5, 2), ent(6, 2)]);
  assert.is(x.offset, 4);
  assert.is(it(x.entries), '4/2 5/2 6/2');
  x = u(5, [
    [5, 1],
    [6, 1],
    [7, 1],
  ]);
  x.truncateAndAppend([ent(6, 2)]);
  assert.is(it(x.entries), '5/1 6/2');
});

test('restore replaces everything with the snapshot', () => {
  const x = u(5, [[5, 1]]);
  x.restore(snapshot(6, 2));
  assert.is(x.offset, 7);
  assert.is(x.entries.length, 0);
  assert.is(x.snapshot?.metadata.index, 6);
  x.stableSnapTo(5);
  assert.ok(x.snapshot !== undefined, 'a different index does not clear it');
  x.stableSnapTo(6);
  assert.is(x.snapshot, undefined);
});

test.run();
