import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RaftInvariantError } from '../../src/raft/errors.js';
import { Inflights } from '../../src/raft/inflights.js';

test('add fills the window up to its size, then refuses', () => {
  const f = new Inflights(3);
  f.add(1);
  f.add(2);
  assert.not.ok(f.full());
  f.add(3);
  assert.ok(f.full());
  assert.is(f.countInflight(), 3);
  assert.throws(
    () => f.add(4),
    (e: unknown) => e instanceof RaftInvariantError,
  );
});

test('freeLE frees acknowledged messages in order, across the ring wrap', () => {
  const f = new Inflights(4);
  for (const i of [1, 2, 3, 4]) f.add(i);
  f.freeLE(2);
  assert.is(f.countInflight(), 2);
  f.add(5);
  f.add(6); // wraps around the ring
  assert.ok(f.full());
  f.freeLE(1); // stale ack: nothing below 3 is in flight
  assert.is(f.countInflight(), 4);
  f.freeLE(5);
  assert.is(f.countInflight(), 1);
  f.freeLE(100);
  assert.is(f.countInflight(), 0);
  f.add(7);
  assert.is(f.countInflight(), 1);
});

test('freeFirstOne frees exactly one; reset frees all; clone is independent', () => {
  const f = new Inflights(10);
  for (const i of [5, 10, 15]) f.add(i);
  f.freeFirstOne();
  assert.is(f.countInflight(), 2);
  const c = f.clone();
  f.reset();
  assert.is(f.countInflight(), 0);
  assert.is(c.countInflight(), 2);
  f.freeFirstOne(); // empty: no-op
  assert.is(f.countInflight(), 0);
});

test('a window of one', () => {
  const f = new Inflights(1);
  f.add(9);
  assert.ok(f.full());
  f.freeLE(8);
  assert.ok(f.full());
  f.freeLE(9);
  assert.not.ok(f.full());
  assert.throws(
    () => new Inflights(0),
    (e: unknown) => e instanceof RaftInvariantError,
  );
});

test.run();
