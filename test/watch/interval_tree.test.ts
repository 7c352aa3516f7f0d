// The interval index answers "which intervals hold this key" exactly as a scan of every interval does,
// through random inserts and deletes (unbounded ends and shared starts included).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IntervalTree } from '../../src/watch/interval_tree.js';
import { rng } from '../../tools/lib/rng.js';

const key = (n: number): Uint8Array => Buffer.from(n.toString(36).padStart(2, '0'));

test('stabbing queries match a scan over 5,000 random operations', () => {
  const r = rng(7);
  const t = new IntervalTree<number>();
  const live = new Map<number, { start: Uint8Array; end: Uint8Array }>();
  let id = 0;
  for (let op = 0; op < 5000; op++) {
    if (r() < 0.6 || live.size === 0) {
      const a = Math.floor(r() * 300);
      const unbounded = r() < 0.1;
      const end = unbounded ? new Uint8Array(0) : key(a + 1 + Math.floor(r() * 60));
      id++;
      t.insert(key(a), end, id, id);
      live.set(id, { start: key(a), end });
    } else {
      const ids = [...live.keys()];
      const victim = ids[Math.floor(r() * ids.length)];
      assert.ok(t.delete(live.get(victim)!.start, victim));
      live.delete(victim);
    }
    const k = key(Math.floor(r() * 400));
    const got: number[] = [];
    t.forEachContaining(k, (v) => got.push(v));
    const want = [...live]
      .filter(([, iv]) => Buffer.compare(iv.start, k) <= 0 && (iv.end.length === 0 || Buffer.compare(k, iv.end) < 0))
      .map(([i]) => i);
    assert.equal(
      got.sort((x, y) => x - y),
      want.sort((x, y) => x - y),
      `op ${op}`,
    );
    assert.is(t.size, live.size);
  }
  assert.not.ok(t.delete(key(1), 999_999), 'deleting what is not there');
});

test.run();
