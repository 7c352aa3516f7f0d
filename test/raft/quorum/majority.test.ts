import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { MajorityConfig } from '../../../src/raft/quorum/majority.js';
import { INDEX_UNBOUNDED, MapAckIndexer, VoteResult } from '../../../src/raft/quorum/quorum.js';

function acks(pairs: [number, number][]): MapAckIndexer {
  return new MapAckIndexer(new Map(pairs.map(([id, idx]) => [BigInt(id), idx])));
}

function cfg(...ids: number[]): MajorityConfig {
  return new MajorityConfig(ids.map(BigInt));
}

test('committedIndex is the highest index a majority acknowledged', () => {
  assert.is(cfg().committedIndex(acks([])), INDEX_UNBOUNDED, 'no voters: no constraint');
  assert.is(cfg(1).committedIndex(acks([[1, 5]])), 5);
  assert.is(cfg(1).committedIndex(acks([])), 0, 'missing acks count as 0');
  assert.is(
    cfg(1, 2).committedIndex(
      acks([
        [1, 5],
        [2, 3],
      ]),
    ),
    3,
  );
  assert.is(
    cfg(1, 2, 3).committedIndex(
      acks([
        [1, 5],
        [2, 3],
        [3, 9],
      ]),
    ),
    5,
  );
  assert.is(
    cfg(1, 2, 3).committedIndex(
      acks([
        [1, 5],
        [3, 9],
      ]),
    ),
    5,
  );
  assert.is(cfg(1, 2, 3).committedIndex(acks([[1, 5]])), 0);
  assert.is(
    cfg(1, 2, 3, 4).committedIndex(
      acks([
        [1, 5],
        [2, 6],
        [3, 7],
        [4, 8],
      ]),
    ),
    6,
    'even: 3 of 4 needed',
  );
  assert.is(
    cfg(1, 2, 3, 4, 5).committedIndex(
      acks([
        [1, 1],
        [2, 9],
        [3, 2],
        [4, 8],
        [5, 3],
      ]),
    ),
    3,
  );
  assert.is(
    cfg(1, 2, 3).committedIndex(
      acks([
        [1, 7],
        [2, 7],
        [9, 100],
      ]),
    ),
    7,
    'non-voters are ignored',
  );
});

test('voteResult: won at a majority of yes, lost when a majority is impossible, else pending', () => {
  const v = (pairs: [number, boolean][]) => new Map(pairs.map(([id, b]) => [BigInt(id), b]));
  assert.is(cfg().voteResult(v([])), VoteResult.Won);
  assert.is(cfg(1, 2, 3).voteResult(v([])), VoteResult.Pending);
  assert.is(cfg(1, 2, 3).voteResult(v([[1, true]])), VoteResult.Pending);
  assert.is(
    cfg(1, 2, 3).voteResult(
      v([
        [1, true],
        [2, true],
      ]),
    ),
    VoteResult.Won,
  );
  assert.is(
    cfg(1, 2, 3).voteResult(
      v([
        [1, true],
        [2, false],
      ]),
    ),
    VoteResult.Pending,
  );
  assert.is(
    cfg(1, 2, 3).voteResult(
      v([
        [1, false],
        [2, false],
      ]),
    ),
    VoteResult.Lost,
  );
  assert.is(
    cfg(1, 2, 3, 4).voteResult(
      v([
        [1, true],
        [2, true],
        [3, false],
        [4, false],
      ]),
    ),
    VoteResult.Lost,
    'a tie loses',
  );
  assert.is(
    cfg(1, 2).voteResult(
      v([
        [1, true],
        [5, true],
      ]),
    ),
    VoteResult.Pending,
    'non-voters do not count',
  );
});

test('toString and slice are sorted', () => {
  assert.is(cfg(3, 1, 2).toString(), '(1 2 3)');
  assert.equal(cfg(3, 1, 2).slice(), [1n, 2n, 3n]);
});

test.run();
