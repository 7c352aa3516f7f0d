// The lease queue: one entry per lease, earliest first, updates move an entry, removal anywhere.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LeaseQueue } from '../../src/lease/index.js';

test('pops in time order; upsert moves an entry instead of adding one; remove works anywhere', () => {
  const q = new LeaseQueue();
  q.upsert(1n, 50);
  q.upsert(2n, 10);
  q.upsert(3n, 30);
  q.upsert(1n, 5);
  q.upsert(2n, 100);
  assert.is(q.size, 3);
  q.remove(3n);
  q.remove(42n);
  assert.equal([q.pop()!.id, q.pop()!.id, q.pop()], [1n, 2n, undefined]);
});

test('matches a sorted model over random operations', () => {
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const q = new LeaseQueue();
  const model = new Map<bigint, number>();
  for (let i = 0; i < 20_000; i++) {
    const id = BigInt(Math.floor(rnd() * 200));
    const r = rnd();
    if (r < 0.5) {
      const t = Math.floor(rnd() * 1000);
      q.upsert(id, t);
      model.set(id, t);
    } else if (r < 0.7) {
      q.remove(id);
      model.delete(id);
    } else if (model.size > 0) {
      const min = Math.min(...model.values());
      const top = q.pop()!;
      assert.is(top.timeMs, min);
      assert.is(model.get(top.id), min);
      model.delete(top.id);
    }
    assert.is(q.size, model.size);
  }
});

test.run();
