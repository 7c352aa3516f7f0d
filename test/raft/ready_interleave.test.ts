// Proposals that arrive between ready() and advance() (the server persists asynchronously, so they
// always do) must come out in the next Ready, never be taken as persisted by advance().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RawNode, MemoryStorage, SeededRng, type Ready } from '../../src/raft/index.js';

test('a single member hands out a contiguous log however proposals interleave with ready/advance', () => {
  for (let seed = 1; seed <= 200; seed++) {
    const storage = new MemoryStorage();
    const rn = new RawNode({
      id: 1n,
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      rng: new SeededRng(seed),
      checkQuorum: true,
      preVote: true,
    });
    rn.bootstrap([{ id: 1n }]);
    let r = seed * 7919;
    const rand = (n: number) => {
      r = (r * 1103515245 + 12345) % 2147483648;
      return r % n;
    };
    let savedTo = 0;
    let pending: Ready | undefined;
    let pendingSavedTo = 0;
    for (let step = 0; step < 2000; step++) {
      const op = rand(10);
      if (op < 4) {
        try {
          rn.propose(new Uint8Array([1]));
        } catch {
          /* no leader yet */
        }
      } else if (op < 5) {
        rn.tick();
      } else if (op < 6) {
        rn.hasReady();
      } else if (op < 8) {
        if (!pending && rn.hasReady()) {
          pending = rn.ready();
          // What the caller persists is what the Ready held when it was taken.
          const ents = pending.entries.slice();
          if (ents.length > 0) {
            assert.ok(ents[0].index <= savedTo + 1, `seed ${seed} step ${step}: entries from ${ents[0].index} after ${savedTo}`);
            savedTo = ents[ents.length - 1].index;
            storage.append(ents);
          }
          if (pending.hardState) {
            assert.ok(
              pending.hardState.commit <= savedTo,
              `seed ${seed}: commit ${pending.hardState.commit} beyond the persisted log ${savedTo}`,
            );
            storage.setHardState(pending.hardState);
          }
          pendingSavedTo = savedTo;
        }
      } else if (pending) {
        const last = pending.entries.length > 0 ? pending.entries[pending.entries.length - 1].index : 0;
        assert.ok(last <= pendingSavedTo, `seed ${seed}: the Ready's entries grew after it was taken`);
        rn.advance(pending);
        pending = undefined;
      }
    }
  }
});

test.run();
