import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Changer, checkInvariants, describeChanges, parseChanges, restoreConfState } from '../../src/raft/confchange.js';
import { ConfChangeError } from '../../src/raft/errors.js';
import { ProgressTracker } from '../../src/raft/tracker.js';
import { type ConfState, emptyConfState } from '../../src/raft/types.js';

/** Applies changes in sequence, as a leader would, each step on the previous result. */
class Sim {
  readonly t = new ProgressTracker(10);
  constructor(readonly lastIndex = 10) {}
  private set(r: { config: ProgressTracker['config']; progress: ProgressTracker['progress'] }) {
    this.t.config = r.config;
    this.t.progress = r.progress;
    return this.t.config.toString();
  }
  simple(s: string): string {
    return this.set(new Changer(this.t, this.lastIndex).simple(parseChanges(s)));
  }
  enter(auto: boolean, s: string): string {
    return this.set(new Changer(this.t, this.lastIndex).enterJoint(auto, parseChanges(s)));
  }
  leave(): string {
    return this.set(new Changer(this.t, this.lastIndex).leaveJoint());
  }
}

const isConfErr = (e: unknown) => e instanceof ConfChangeError;

test('simple changes: one voter at a time; learners freely', () => {
  const s = new Sim();
  assert.is(s.simple('v1'), 'voters=(1)');
  assert.is(s.simple('v2'), 'voters=(1 2)');
  assert.is(s.simple('l3'), 'voters=(1 2) learners=(3)');
  assert.is(s.simple('v3'), 'voters=(1 2 3)', 'promote');
  assert.is(s.simple('l3'), 'voters=(1 2) learners=(3)', 'demote');
  assert.is(s.simple('r3'), 'voters=(1 2)');
  assert.is(s.simple('u1'), 'voters=(1 2)', 'update changes nothing');
  assert.is(s.simple('l4 l5'), 'voters=(1 2) learners=(4 5)', 'several learners at once');
  assert.throws(() => s.simple('v3 v4'), isConfErr, 'two voters at once need joint consensus');
  assert.throws(() => s.simple('r1 r2'), isConfErr, 'removing all voters');
  assert.is(s.simple('r9'), 'voters=(1 2) learners=(4 5)', 'removing an unknown node is a no-op');
});

test('new members probe from the leader last index and count as active', () => {
  const s = new Sim(42);
  s.simple('v1');
  s.simple('l2');
  const pr = s.t.progress.get(2n)!;
  assert.is(pr.next, 42);
  assert.is(pr.match, 0);
  assert.ok(pr.recentActive);
  assert.ok(pr.isLearner);
});

test('joint: enter moves voters to the outgoing half, leave drops it', () => {
  const s = new Sim();
  s.simple('v1');
  s.simple('v2');
  s.simple('v3');
  assert.is(s.enter(true, 'r1 v4 v5'), 'voters=(2 3 4 5)&&(1 2 3) autoleave');
  assert.ok(s.t.progress.has(1n), 'removed voter keeps its progress while in the outgoing half');
  assert.throws(() => s.enter(false, 'v6'), isConfErr, 'already joint');
  assert.throws(() => s.simple('v6'), isConfErr, 'no simple change while joint');
  assert.is(s.leave(), 'voters=(2 3 4 5)');
  assert.not.ok(s.t.progress.has(1n));
  assert.throws(() => s.leave(), isConfErr, 'not joint');
});

test('joint: a demoted voter sits in learners_next until the joint config is left', () => {
  const s = new Sim();
  s.simple('v1');
  s.simple('v2');
  s.simple('v3');
  assert.is(s.enter(false, 'l3'), 'voters=(1 2)&&(1 2 3) learners_next=(3)');
  assert.not.ok(s.t.progress.get(3n)!.isLearner, 'still votes in the outgoing half');
  assert.is(s.leave(), 'voters=(1 2) learners=(3)');
  assert.ok(s.t.progress.get(3n)!.isLearner);
});

test('restore rebuilds simple and joint configurations from a ConfState', () => {
  const cases: ConfState[] = [
    { ...emptyConfState(), voters: [1n, 2n, 3n] },
    { ...emptyConfState(), voters: [1n, 2n], learners: [3n] },
    { ...emptyConfState(), voters: [1n, 2n, 4n], voters_outgoing: [1n, 2n, 3n], learners_next: [3n], auto_leave: true },
    { ...emptyConfState(), voters: [4n], voters_outgoing: [1n, 2n, 3n], learners: [5n] },
  ];
  for (const cs of cases) {
    const t = new ProgressTracker(10);
    const r = restoreConfState(t, 5, cs);
    t.config = r.config;
    t.progress = r.progress;
    assert.equal(t.confState(), {
      voters: [...cs.voters].sort(),
      voters_outgoing: [...cs.voters_outgoing].sort(),
      learners: [...cs.learners].sort(),
      learners_next: [...cs.learners_next].sort(),
      auto_leave: cs.auto_leave,
    });
    checkInvariants(t.config, t.progress);
  }
});

test('the changer never modifies the tracker it reads', () => {
  const s = new Sim();
  s.simple('v1');
  const before = s.t.config.toString();
  new Changer(s.t, 10).simple(parseChanges('v2'));
  assert.is(s.t.config.toString(), before);
  assert.is(s.t.progress.size, 1);
});

test('describe and parse are inverse', () => {
  const ccs = parseChanges('v1 l2 r3 u4');
  assert.is(describeChanges(ccs), 'v1 l2 r3 u4');
  assert.throws(() => parseChanges('x1'), isConfErr);
  assert.throws(() => parseChanges('v'), isConfErr);
});

test.run();
