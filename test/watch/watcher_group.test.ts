// The synced group finds exactly the watchers a scan would: many watchers sharing a range (one interval
// holds them all), single-key watchers, unbounded ranges, through random adds and deletes; a deleted
// watcher's range interval goes when its last watcher does.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { WatcherGroup } from '../../src/watch/watcher_group.js';
import { Watcher, type WatcherOwner } from '../../src/watch/watcher.js';
import { rng } from '../../tools/lib/rng.js';

const key = (n: number): Uint8Array => Buffer.from(n.toString(36).padStart(2, '0'));
const owner = {} as WatcherOwner;

function watcher(id: number, start: number, end: number | 'key' | 'unbounded'): Watcher {
  const e = end === 'key' ? undefined : end === 'unbounded' ? new Uint8Array(0) : key(end);
  return new Watcher(id, owner, key(start), e, 1, [], false, false, false);
}

test('matching equals a scan over 5,000 random adds and deletes of watchers that share ranges', () => {
  const r = rng(11);
  const g = new WatcherGroup();
  const live: Watcher[] = [];
  // Few distinct ranges, so most watchers share one with others.
  const ranges: Array<[number, number | 'key' | 'unbounded']> = [];
  for (let i = 0; i < 12; i++) {
    const a = Math.floor(r() * 40);
    const kind = r();
    ranges.push([a, kind < 0.3 ? 'key' : kind < 0.4 ? 'unbounded' : a + 1 + Math.floor(r() * 20)]);
  }
  for (let op = 0; op < 5000; op++) {
    if (r() < 0.55 || live.length === 0) {
      const [a, e] = ranges[Math.floor(r() * ranges.length)];
      const w = watcher(op, a, e);
      g.add(w);
      live.push(w);
    } else {
      const w = live.splice(Math.floor(r() * live.length), 1)[0];
      assert.ok(g.delete(w));
      assert.not.ok(g.delete(w), 'a deleted watcher is gone');
    }
    assert.is(g.size, live.length);
    if (op % 50 === 0) {
      for (let k = 0; k < 70; k++) {
        const got = new Set<Watcher>();
        g.forMatching(key(k), (w) => got.add(w));
        const want = live.filter((w) => w.contains(key(k)));
        assert.is(got.size, want.length, `key ${k} at op ${op}`);
        for (const w of want) assert.ok(got.has(w));
      }
      assert.is(g.all().length, live.length);
    }
  }
});

test('matching keys in order finds what matching them one by one finds, each watcher in key order', () => {
  const r = rng(12);
  const g = new WatcherGroup();
  const ws: Watcher[] = [];
  for (let i = 0; i < 40; i++) {
    const a = Math.floor(r() * 60);
    const kind = r();
    const w = watcher(i, a, kind < 0.4 ? 'key' : kind < 0.5 ? 'unbounded' : a + 1 + Math.floor(r() * 20));
    ws.push(w);
    g.add(w);
  }
  const keys = Array.from({ length: 70 }, (_, k) => key(k))
    .filter(() => r() < 0.7)
    .sort(Buffer.compare);
  const byOne = new Map<Watcher, number[]>();
  keys.forEach((k, i) => g.forMatching(k, (w) => byOne.set(w, [...(byOne.get(w) ?? []), i])));
  const sorted = new Map<Watcher, number[]>();
  g.forMatchingSorted(keys, (w, i) => sorted.set(w, [...(sorted.get(w) ?? []), i]));
  assert.is(sorted.size, byOne.size);
  for (const [w, is] of byOne) assert.equal(sorted.get(w), is, `watcher ${w.id}`);
  assert.ok(byOne.size > 10, 'the keys met many watchers');
  assert.ok(g.prefersSorted(100_000) && !g.prefersSorted(100), 'a binary search per watched range pays off for many keys only');
});

test('watchers of one prefix are visited once each', () => {
  const g = new WatcherGroup();
  const ws = Array.from({ length: 1000 }, (_, i) => watcher(i, 10, 20));
  for (const w of ws) g.add(w);
  const seen: Watcher[] = [];
  g.forMatching(key(15), (w) => seen.push(w));
  assert.is(seen.length, 1000);
  assert.is(new Set(seen).size, 1000);
  for (const w of ws) g.delete(w);
  g.forMatching(key(15), () => assert.unreachable('no watcher left'));
  assert.is(g.size, 0);
});

test.run();
