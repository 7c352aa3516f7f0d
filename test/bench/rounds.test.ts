// bench/lib/rounds.ts: rounds alternate which server goes first, each in a temp dir removed after it; the table
// holds each measure's median for both servers and their ratio.
import { existsSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { alternatingRounds, medianTable } from '../../bench/lib/rounds.js';

test('alternatingRounds: etcd first in even rounds, tetcd first in odd ones; dirs removed; results by server', async () => {
  const order: string[] = [];
  const dirs: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = (() => true) as typeof process.stdout.write;
  let rows: Record<string, { n: number }[]> | undefined;
  try {
    rows = await alternatingRounds(3, 'test', async (kind, dir) => {
      order.push(kind);
      dirs.push(dir);
      assert.ok(existsSync(dir));
      return { n: order.length };
    });
  } finally {
    process.stdout.write = write;
  }
  assert.equal(order, ['etcd', 'tetcd', 'tetcd', 'etcd', 'etcd', 'tetcd']);
  assert.ok(
    dirs.every((d) => !existsSync(d)),
    'a round dir was left behind',
  );
  assert.equal(rows, { etcd: [{ n: 1 }, { n: 4 }, { n: 5 }], tetcd: [{ n: 2 }, { n: 3 }, { n: 6 }] });
});

test('medianTable: medians of each measure and the tetcd/etcd ratio', () => {
  const lines = medianTable({ etcd: [{ a: 1 }, { a: 3 }, { a: 2 }], tetcd: [{ a: 4 }, { a: 6 }, { a: 5 }] });
  assert.equal(lines, ['| measure | etcd | tetcd | tetcd/etcd |', '|---|---|---|---|', '| a | 2.00 | 5.00 | 2.50 |']);
  assert.equal(medianTable({ etcd: [{ a: 2 }], tetcd: [{ a: 1 }] }, 1).at(-1), '| a | 2.0 | 1.0 | 0.50 |');
});

test.run();
