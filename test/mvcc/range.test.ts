// Range reads: prefix, from-key, all keys, limit/more/count, every sort order and target, filters,
// the response byte budget, and the streaming top-k checked against a literal transcription of
// etcd's algorithm (fetch all, filter, sort, cut; then the budget) on random data and random historical
// revisions; and what a budgeted range holds in memory while it sorts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Mvcc, RangeOptions } from '../../src/mvcc/index.js';
import { lastRangeHeld } from '../../src/mvcc/range.js';
import { decodeKeyValue, encodeKeyValue, type KeyValue } from '../../src/proto/kv.js';
import { sizeDelimited } from '../../src/proto/wire.js';
import { b, cleanup, openTemp, put, show, showAll } from './helpers.js';

const rs = (s: Mvcc, key: string, end: string | undefined, opts: RangeOptions = {}): string => {
  const r = s.range(b(key), end === undefined ? undefined : b(end), opts);
  return `count=${r.count} more=${r.more} kvs=[${showAll(r.kvs)}]`;
};

test('etcd sort/filter answers (recorded from etcd 3.4.23)', async () => {
  const { s, dir } = await openTemp();
  try {
    // Same history as the etcd probe, shifted: s/a..s/d at revisions 2..8.
    for (const [k, v] of [
      ['s/a', 'z'],
      ['s/b', 'y'],
      ['s/c', 'z'],
      ['s/d', 'x'],
      ['s/b', 'y'],
      ['s/d', 'w'],
      ['s/a', 'z'],
    ])
      put(s, k, v);
    const P = ['s/', 's0'] as const;
    // etcd (revs +7): all => [s/a=z@c9m15v2 s/b=y@c10m13v2 s/c=z@c11m11v1 s/d=w@c12m14v2]
    assert.is(rs(s, ...P), 'count=4 more=false kvs=[s/a=z@c2m8v2 s/b=y@c3m6v2 s/c=z@c4m4v1 s/d=w@c5m7v2]');
    assert.is(rs(s, ...P, { sortOrder: 1, sortTarget: 4 }), 'count=4 more=false kvs=[s/d=w@c5m7v2 s/b=y@c3m6v2 s/a=z@c2m8v2 s/c=z@c4m4v1]');
    assert.is(rs(s, ...P, { sortOrder: 2, sortTarget: 4 }), 'count=4 more=false kvs=[s/a=z@c2m8v2 s/c=z@c4m4v1 s/b=y@c3m6v2 s/d=w@c5m7v2]');
    assert.is(rs(s, ...P, { sortOrder: 2, sortTarget: 4, limit: 2 }), 'count=4 more=true kvs=[s/a=z@c2m8v2 s/c=z@c4m4v1]');
    // order NONE + VALUE target + limit: etcd sorts only the first limit+1 keys
    assert.is(rs(s, ...P, { sortOrder: 0, sortTarget: 4, limit: 2 }), 'count=4 more=true kvs=[s/b=y@c3m6v2 s/a=z@c2m8v2]');
    assert.is(rs(s, ...P, { sortOrder: 0, sortTarget: 4, limit: 3 }), 'count=4 more=true kvs=[s/d=w@c5m7v2 s/b=y@c3m6v2 s/a=z@c2m8v2]');
    assert.is(rs(s, ...P, { sortOrder: 2, sortTarget: 1 }), 'count=4 more=false kvs=[s/a=z@c2m8v2 s/b=y@c3m6v2 s/d=w@c5m7v2 s/c=z@c4m4v1]');
    assert.is(rs(s, ...P, { sortOrder: 1, sortTarget: 1 }), 'count=4 more=false kvs=[s/c=z@c4m4v1 s/a=z@c2m8v2 s/b=y@c3m6v2 s/d=w@c5m7v2]');
    assert.is(rs(s, ...P, { sortOrder: 2, sortTarget: 2 }), 'count=4 more=false kvs=[s/d=w@c5m7v2 s/c=z@c4m4v1 s/b=y@c3m6v2 s/a=z@c2m8v2]');
    assert.is(rs(s, ...P, { sortOrder: 1, sortTarget: 3, limit: 1 }), 'count=4 more=true kvs=[s/c=z@c4m4v1]');
    assert.is(rs(s, ...P, { sortOrder: 2, sortTarget: 0, limit: 2 }), 'count=4 more=true kvs=[s/d=w@c5m7v2 s/c=z@c4m4v1]');
    assert.is(rs(s, ...P, { minModRevision: 7 }), 'count=4 more=false kvs=[s/a=z@c2m8v2 s/d=w@c5m7v2]');
    assert.is(rs(s, ...P, { minModRevision: 7, limit: 1 }), 'count=4 more=true kvs=[s/a=z@c2m8v2]');
    assert.is(rs(s, ...P, { maxModRevision: 5, limit: 5 }), 'count=4 more=false kvs=[s/c=z@c4m4v1]');
    assert.is(rs(s, ...P, { minCreateRevision: 4, maxCreateRevision: 4 }), 'count=4 more=false kvs=[s/c=z@c4m4v1]');
    assert.is(rs(s, ...P, { minModRevision: 99, countOnly: true }), 'count=4 more=false kvs=[]');
    assert.is(rs(s, ...P, { minModRevision: 99 }), 'count=4 more=false kvs=[]');
    assert.is(rs(s, ...P, { limit: -1 }), 'count=4 more=false kvs=[s/a=z@c2m8v2 s/b=y@c3m6v2 s/c=z@c4m4v1 s/d=w@c5m7v2]');
    assert.is(rs(s, ...P, { keysOnly: true, sortOrder: 1, sortTarget: 4, limit: 2 }), 'count=4 more=true kvs=[s/d=@c5m7v2 s/b=@c3m6v2]');
    assert.is(rs(s, ...P, { rev: -5, limit: 1 }), 'count=4 more=true kvs=[s/a=z@c2m8v2]');
    assert.is(rs(s, ...P, { countOnly: true, limit: 1 }), 'count=4 more=false kvs=[]');
    assert.is(rs(s, ...P, { countOnly: true, keysOnly: true }), 'count=4 more=false kvs=[]');
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('key ranges: single, prefix, from-key, every key, empty and inverted ranges', async () => {
  const { s, dir } = await openTemp();
  try {
    for (const k of ['\0', '\0a', 'a', 'a\0', 'a\xff', 'ab', 'b', '\xff', '\xff\xff']) put(s, k, 'v');
    const keys = (key: string, end?: string) =>
      s.range(b(key), end === undefined ? undefined : b(end)).kvs.map((kv) => Buffer.from(decodeKeyValue(kv).key).toString('latin1'));
    assert.equal(keys('a'), ['a']);
    assert.equal(keys('a', 'b'), ['a', 'a\0', 'ab', 'a\xff']);
    assert.equal(keys('a\0', 'a\xff'), ['a\0', 'ab']);
    assert.equal(keys('ab', '\0'), ['ab', 'a\xff', 'b', '\xff', '\xff\xff']);
    assert.equal(keys('\0', '\0'), ['\0', '\0a', 'a', 'a\0', 'ab', 'a\xff', 'b', '\xff', '\xff\xff']);
    assert.equal(keys('b', 'a'), []);
    assert.equal(keys('a', 'a'), []);
    assert.equal(keys('zz'), []);
    assert.is(s.range(b('\xff'), b('\0')).count, 2);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('maxResponseBytes caps the kvs, sets more, keeps count exact, always returns one kv', async () => {
  const { s, dir } = await openTemp();
  try {
    for (let i = 0; i < 50; i++) put(s, `k${String(i).padStart(2, '0')}`, 'x'.repeat(100));
    const one = s.range(b('k00')).kvs[0].length + 2; // tag + 1-byte length prefix
    const r = s.range(b('k'), b('l'), { maxResponseBytes: one * 10 + 5 });
    assert.is(r.kvs.length, 10);
    assert.is(r.count, 50);
    assert.ok(r.more);
    const r2 = s.range(b('k'), b('l'), { maxResponseBytes: 1 });
    assert.is(r2.kvs.length, 1);
    assert.ok(r2.more);
    const r3 = s.range(b('k'), b('l'), { maxResponseBytes: one * 60 });
    assert.is(r3.kvs.length, 50);
    assert.not.ok(r3.more);
    // with a limit under the budget the limit rules
    const r4 = s.range(b('k'), b('l'), { maxResponseBytes: one * 10, limit: 3 });
    assert.is(r4.kvs.length, 3);
    assert.ok(r4.more);
    // sorted: the budget cuts the sorted order
    const r5 = s.range(b('k'), b('l'), { maxResponseBytes: one * 4, sortOrder: 2, sortTarget: 0 });
    assert.is(
      showAll(r5.kvs)
        .split(' ')
        .map((x) => x.split('=')[0])
        .join(','),
      'k49,k48,k47,k46',
    );
    assert.ok(r5.more);
    assert.is(r5.count, 50);
    // keys_only sizes are counted without the values
    const r6 = s.range(b('k'), b('l'), { maxResponseBytes: one * 10, keysOnly: true });
    assert.is(r6.kvs.length, 50);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

// ----- random comparison with a literal transcription of etcd's applier -----

/** etcd's apply.go Range over a fully materialized key-ordered list. */
function reference(all: KeyValue[], o: RangeOptions): { count: number; more: boolean; kvs: KeyValue[] } {
  if (o.countOnly) return { count: all.length, more: false, kvs: [] };
  const order = o.sortOrder ?? 0;
  const target = o.sortTarget ?? 0;
  const filtered = !!(o.minModRevision || o.maxModRevision || o.minCreateRevision || o.maxCreateRevision);
  let limit = o.limit ?? 0;
  if (order !== 0 || filtered) limit = 0;
  if (limit > 0) limit++;
  let kvs = limit > 0 && limit < all.length ? all.slice(0, limit) : all.slice();
  if (o.maxModRevision) kvs = kvs.filter((kv) => kv.mod_revision <= o.maxModRevision!);
  if (o.minModRevision) kvs = kvs.filter((kv) => kv.mod_revision >= o.minModRevision!);
  if (o.maxCreateRevision) kvs = kvs.filter((kv) => kv.create_revision <= o.maxCreateRevision!);
  if (o.minCreateRevision) kvs = kvs.filter((kv) => kv.create_revision >= o.minCreateRevision!);
  const eff = target !== 0 && order === 0 ? 1 : order;
  if (eff === 1 || eff === 2) {
    const attr = (kv: KeyValue): number | Uint8Array =>
      target === 1 ? kv.version : target === 2 ? kv.create_revision : target === 3 ? kv.mod_revision : target === 4 ? kv.value : kv.key;
    const cmp = (x: KeyValue, y: KeyValue): number => {
      const ax = attr(x),
        ay = attr(y);
      return typeof ax === 'number' ? ax - (ay as number) : Buffer.compare(ax, ay as Uint8Array);
    };
    // Stable sort: ties stay in key order, in both directions (what etcd's small-set sort does).
    kvs.sort(eff === 1 ? cmp : (x, y) => cmp(y, x));
  }
  let more = false;
  if ((o.limit ?? 0) > 0 && kvs.length > o.limit!) {
    kvs = kvs.slice(0, o.limit);
    more = true;
  }
  if (o.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: new Uint8Array(0) }));
  // Beyond etcd: the byte budget keeps the longest prefix that fits, and always the first kv.
  const budget = o.maxResponseBytes ?? 0;
  if (budget > 0) {
    let bytes = 0;
    let n = 0;
    for (; n < kvs.length; n++) {
      bytes += 1 + sizeDelimited(encodeKeyValue(kvs[n]).length);
      if (n > 0 && bytes > budget) break;
    }
    if (n < kvs.length) {
      kvs = kvs.slice(0, n);
      more = true;
    }
  }
  return { count: all.length, more, kvs };
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

test("streaming sorted/filtered ranges match etcd's materialize-and-sort on random data, with and without a byte budget", async () => {
  const { s, dir } = await openTemp();
  try {
    const rand = rng(12345);
    const pick = <T>(a: readonly T[]): T => a[Math.floor(rand() * a.length)];
    const nKeys = 120;
    // Long values sharing their first 256+ bytes make keys_only VALUE sorts compare beyond the kept prefix.
    const long = 'p'.repeat(256);
    const values = [
      '',
      'a',
      'b',
      'bb',
      'c',
      'zz',
      '\0',
      '\xff',
      long,
      long + 'a',
      long + 'b',
      long + 'a\0',
      long.slice(1),
      long.slice(1) + 'q',
    ];
    const keyOf = (i: number) => `k/${String(i).padStart(3, '0')}`;
    for (let step = 0; step < 900; step++) {
      const t = s.write();
      const ops = 1 + Math.floor(rand() * 3);
      for (let j = 0; j < ops; j++) {
        const k = b(keyOf(Math.floor(rand() * nKeys)));
        if (rand() < 0.15) t.deleteRange(k, undefined, false);
        else t.put(k, b(pick(values)), 0n);
      }
      t.end();
    }
    const cur = s.currentRevision;
    const ranges: Array<[string, string | undefined]> = [
      ['k/', 'k0'],
      ['k/050', 'k/080'],
      ['k/1', '\0'],
      ['\0', '\0'],
      ['k/007', undefined],
    ];
    let checks = 0;
    let budgetBound = 0;
    for (let i = 0; i < 3000; i++) {
      const [key, end] = pick(ranges);
      const rev = rand() < 0.3 ? 0 : 1 + Math.floor(rand() * cur);
      const o: RangeOptions = {
        rev,
        limit: pick([0, 0, 1, 2, 3, 5, 10, 50, 500]),
        sortOrder: pick([0, 0, 1, 2]),
        sortTarget: pick([0, 0, 1, 2, 3, 4]),
        keysOnly: rand() < 0.1,
        countOnly: rand() < 0.05,
      };
      if (rand() < 0.3) o.minModRevision = Math.floor(rand() * cur);
      if (rand() < 0.3) o.maxModRevision = Math.floor(rand() * cur);
      if (rand() < 0.3) o.minCreateRevision = Math.floor(rand() * cur);
      if (rand() < 0.3) o.maxCreateRevision = Math.floor(rand() * cur);
      // A kv here is ~15-300 bytes: budgets from "one kv" to "never binds".
      if (rand() < 0.6) o.maxResponseBytes = pick([1, 20, 60, 150, 400, 1000, 3000, 100_000]);
      const endB = end === undefined ? undefined : b(end);
      const all = s.range(b(key), endB, { rev }).kvs.map(decodeKeyValue);
      const want = reference(all, o);
      const got = s.range(b(key), endB, o);
      const label = JSON.stringify({ key, end, ...o });
      assert.is(got.count, want.count, label);
      assert.is(got.more, want.more, label);
      assert.is(showAll(got.kvs), want.kvs.map(show).join(' '), label);
      if (o.maxResponseBytes !== undefined && !o.countOnly && reference(all, { ...o, maxResponseBytes: 0 }).kvs.length > got.kvs.length)
        budgetBound++;
      checks++;
    }
    assert.is(checks, 3000);
    assert.ok(budgetBound > 400, `the budget bound in only ${budgetBound} checks`);
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('sorted and filtered ranges read values only for what they return (VALUE sorts read each once)', async () => {
  const { s, dir } = await openTemp();
  try {
    const t = s.write();
    for (let i = 0; i < 3000; i++) t.put(b(`v/${String(i).padStart(5, '0')}`), b(String((i * 7919) % 3001).padStart(5, '0')), 0n);
    t.end();
    for (let i = 0; i < 3000; i += 3) put(s, `v/${String(i).padStart(5, '0')}`, 'again');
    const reads = (fn: () => void): number => {
      const before = s.stats.valueReads;
      fn();
      return s.stats.valueReads - before;
    };
    let r = s.range(b('v/'), b('v0'));
    assert.is(
      reads(() => {
        r = s.range(b('v/'), b('v0'), { sortOrder: 2, sortTarget: 1, limit: 3 });
      }),
      3,
    );
    assert.is(r.count, 3000);
    assert.ok(r.more);
    assert.is(
      showAll(r.kvs)
        .split(' ')
        .map((x) => x.split('=')[0])
        .join(','),
      'v/00000,v/00003,v/00006',
    );
    assert.is(
      reads(() => {
        r = s.range(b('v/'), b('v0'), { sortOrder: 1, sortTarget: 2, minModRevision: 3, limit: 5 });
      }),
      5,
    );
    assert.is(
      reads(() => {
        r = s.range(b('v/'), b('v0'), { limit: 7 });
      }),
      7,
    );
    assert.is(
      reads(() => {
        r = s.range(b('v/'), b('v0'), { countOnly: true });
      }),
      0,
    );
    assert.is(
      reads(() => {
        r = s.range(b('v/'), b('v0'), { sortOrder: 2, sortTarget: 4, limit: 3 });
      }),
      3000,
    );
    assert.equal(
      r.kvs.map((kv) => Buffer.from(decodeKeyValue(kv).value).toString()),
      ['again', 'again', 'again'],
    );
    r = s.range(b('v/'), b('v0'), { sortOrder: 2, sortTarget: 4, limit: 3, rev: 2 }); // history: before the overwrites
    assert.equal(
      r.kvs.map((kv) => Buffer.from(decodeKeyValue(kv).value).toString()),
      ['03000', '02999', '02998'],
    );
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test('with a byte budget, sorted and filtered ranges hold about the budget, whatever the sort target and order', async () => {
  const { s, dir } = await openTemp();
  try {
    const nKeys = 2000;
    const t = s.write();
    for (let i = 0; i < nKeys; i++)
      t.put(b(`m/${String(i).padStart(5, '0')}`), b(String((i * 7919) % 2003).padStart(5, '0') + 'x'.repeat(1019)), 0n);
    t.end();
    for (let i = 0; i < nKeys; i += 3) put(s, `m/${String(i).padStart(5, '0')}`, String(i % 10).repeat(1024));
    const budget = 8192;
    const kvBytesMax = s.range(b('m/00000')).kvs[0].length + 3;
    // Candidates are kept by a size bound of key + 10 bytes, never more than the budget's worth.
    const candidatesMax = Math.floor(budget / ('m/00000'.length + 10)) + 1;
    const cases: RangeOptions[] = [];
    for (const sortTarget of [0, 1, 2, 3, 4]) {
      for (const sortOrder of [0, 1, 2]) {
        cases.push(
          { sortTarget, sortOrder },
          { sortTarget, sortOrder, keysOnly: true },
          { sortTarget, sortOrder, minModRevision: 3 },
          { sortTarget, sortOrder, maxCreateRevision: 2, limit: 1000 },
        );
      }
    }
    for (const o of cases) {
      const label = JSON.stringify(o);
      const full = s.range(b('m/'), b('m0'), o);
      const before = s.stats.valueReads;
      const got = s.range(b('m/'), b('m0'), { ...o, maxResponseBytes: budget });
      const reads = s.stats.valueReads - before;
      const held = lastRangeHeld();
      // etcd's answer, cut to the budget
      assert.is(got.count, nKeys, label);
      assert.ok(got.more, label);
      assert.ok(got.kvs.length >= 1 && got.kvs.length < full.kvs.length, label);
      assert.is(showAll(got.kvs), showAll(full.kvs.slice(0, got.kvs.length)), label);
      const next = full.kvs[got.kvs.length];
      assert.ok(
        got.kvs.reduce((n, kv) => n + 1 + sizeDelimited(kv.length), 0) + 1 + sizeDelimited(next.length) > budget,
        `${label}: stopped early`,
      );
      // memory: key order streams; other targets keep a bounded heap; values only within the budget
      if (o.sortTarget === 0 || (o.sortOrder === 0 && o.sortTarget === 0)) assert.is(held.candidates, 0, label);
      else assert.ok(held.candidates <= candidatesMax, `${label}: ${held.candidates} candidates`);
      if (o.sortTarget === 4 && o.keysOnly) assert.ok(held.bytes <= (held.candidates + 1) * 256, `${label}: ${held.bytes} bytes held`);
      else assert.ok(held.bytes <= budget + 2 * kvBytesMax, `${label}: ${held.bytes} bytes held`); // + the one arriving, + the fence
      // values are read for what is returned (and the one that did not fit), except to sort by them
      if (o.sortTarget !== 4) assert.ok(reads <= got.kvs.length + 1, `${label}: ${reads} value reads`);
    }
  } finally {
    await s.close();
    cleanup(dir);
  }
});

test.run();
