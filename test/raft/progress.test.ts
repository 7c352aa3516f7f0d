import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Progress, ProgressState } from '../../src/raft/progress.js';

function pr(state: ProgressState, match: number, next: number, inflight = 8): Progress {
  const p = new Progress(next, inflight, false);
  p.match = match;
  p.state = state;
  return p;
}

test('state transitions reset next from match (and from a pending snapshot)', () => {
  let p = pr(ProgressState.Replicate, 1, 5);
  p.becomeProbe();
  assert.is(p.state, ProgressState.Probe);
  assert.is(p.next, 2);
  p = pr(ProgressState.Probe, 1, 5);
  p.becomeSnapshot(10);
  assert.is(p.pendingSnapshot, 10);
  p.becomeProbe();
  assert.is(p.next, 11, 'after a snapshot, probe after it');
  p = pr(ProgressState.Snapshot, 12, 13);
  p.pendingSnapshot = 10;
  p.becomeProbe();
  assert.is(p.next, 13, 'or after match if that is further');
  p.becomeReplicate();
  assert.is(p.state, ProgressState.Replicate);
  assert.is(p.next, 13);
});

test('maybeUpdate moves match and next forward only, and unpauses a probe', () => {
  const p = pr(ProgressState.Probe, 3, 5);
  p.probeSent = true;
  assert.not.ok(p.maybeUpdate(2));
  assert.is(p.match, 3);
  assert.ok(p.probeSent, 'a stale ack does not unpause');
  assert.ok(p.maybeUpdate(4));
  assert.is(p.match, 4);
  assert.is(p.next, 5);
  assert.not.ok(p.probeSent);
  assert.ok(p.maybeUpdate(7));
  assert.is(p.next, 8);
});

test('maybeDecrTo: in replicate, back to match+1 unless the rejection is stale', () => {
  const p = pr(ProgressState.Replicate, 5, 10);
  assert.not.ok(p.maybeDecrTo(5, 5), 'rejection at match is stale');
  assert.not.ok(p.maybeDecrTo(4, 4));
  assert.ok(p.maybeDecrTo(9, 9));
  assert.is(p.next, 6);
});

test('maybeDecrTo: in probe, only the outstanding probe counts; the hint jumps back', () => {
  let p = pr(ProgressState.Probe, 0, 10);
  assert.not.ok(p.maybeDecrTo(5, 3), 'not the probe we sent (next-1 = 9)');
  p.probeSent = true;
  assert.ok(p.maybeDecrTo(9, 3));
  assert.is(p.next, 4, 'hint 3: try 4 next');
  assert.not.ok(p.probeSent);
  p = pr(ProgressState.Probe, 0, 10);
  assert.ok(p.maybeDecrTo(9, 20));
  assert.is(p.next, 9, 'a hint past the rejected index does not move next forward');
  p = pr(ProgressState.Probe, 0, 2);
  assert.ok(p.maybeDecrTo(1, 0));
  assert.is(p.next, 1, 'never below 1');
});

test('isPaused: probe waits for its answer, replicate for window space, snapshot always', () => {
  const p = pr(ProgressState.Probe, 0, 1);
  assert.not.ok(p.isPaused());
  p.probeSent = true;
  assert.ok(p.isPaused());
  const r = pr(ProgressState.Replicate, 0, 1, 2);
  r.inflights.add(1);
  assert.not.ok(r.isPaused());
  r.inflights.add(2);
  assert.ok(r.isPaused());
  const s = pr(ProgressState.Snapshot, 0, 1);
  assert.ok(s.isPaused());
});

test('toString reads like etcd', () => {
  const p = pr(ProgressState.Snapshot, 0, 1);
  p.pendingSnapshot = 4;
  assert.is(p.toString(), 'StateSnapshot match=0 next=1 paused pendingSnap=4 inactive');
});

test.run();
