import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { JointConfig } from '../../../src/raft/quorum/joint.js';
import { MajorityConfig } from '../../../src/raft/quorum/majority.js';
import { MapAckIndexer, VoteResult } from '../../../src/raft/quorum/quorum.js';

function joint(incoming: number[], outgoing: number[]): JointConfig {
  return new JointConfig(new MajorityConfig(incoming.map(BigInt)), new MajorityConfig(outgoing.map(BigInt)));
}

function acks(pairs: [number, number][]): MapAckIndexer {
  return new MapAckIndexer(new Map(pairs.map(([id, idx]) => [BigInt(id), idx])));
}

test('not joint: the incoming majority alone decides', () => {
  const c = joint([1, 2, 3], []);
  assert.not.ok(c.isJoint());
  assert.is(
    c.committedIndex(
      acks([
        [1, 5],
        [2, 4],
        [3, 1],
      ]),
    ),
    4,
  );
  assert.is(c.toString(), '(1 2 3)');
});

test('joint: committed is the smaller of the two majorities', () => {
  const c = joint([1, 2, 3], [3, 4, 5]);
  assert.ok(c.isJoint());
  assert.is(c.toString(), '(1 2 3)&&(3 4 5)');
  // Incoming majority reaches 9; in the outgoing half (3,4,5) two members have 2.
  assert.is(
    c.committedIndex(
      acks([
        [1, 9],
        [2, 9],
        [3, 3],
        [4, 1],
        [5, 2],
      ]),
    ),
    2,
  );
  assert.is(
    c.committedIndex(
      acks([
        [1, 9],
        [2, 9],
        [3, 9],
        [4, 9],
        [5, 2],
      ]),
    ),
    9,
  );
  assert.equal([...c.ids()].sort(), [1n, 2n, 3n, 4n, 5n]);
});

test('joint votes: won only if both won, lost if either lost', () => {
  const c = joint([1, 2, 3], [3, 4, 5]);
  const v = (pairs: [number, boolean][]) => new Map(pairs.map(([id, b]) => [BigInt(id), b]));
  assert.is(
    c.voteResult(
      v([
        [1, true],
        [2, true],
      ]),
    ),
    VoteResult.Pending,
    'outgoing half still pending',
  );
  assert.is(
    c.voteResult(
      v([
        [1, true],
        [2, true],
        [4, true],
        [5, true],
      ]),
    ),
    VoteResult.Won,
  );
  assert.is(
    c.voteResult(
      v([
        [1, true],
        [2, true],
        [4, false],
        [5, false],
      ]),
    ),
    VoteResult.Lost,
  );
  assert.is(
    c.voteResult(
      v([
        [3, true],
        [4, true],
        [1, false],
        [2, false],
      ]),
    ),
    VoteResult.Lost,
  );
});

test.run();
