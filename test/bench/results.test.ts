// Medians, ratios, the Markdown tables and the marker splice that keeps other sections of RESULTS.md.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { median, roundTo } from '../../bench/lib/stats.js';
import { mediansOf, ratioOf, renderRun, renderMemory, spliceSection, type LoadSample, type RunFacts } from '../../bench/lib/results.js';
import { WORKLOADS } from '../../bench/lib/workloads.js';

const facts: RunFacts = {
  date: '2026-01-01 00:00:00 UTC',
  commandLine: 'node dist/bench/run.js',
  machine: 'nproc 2',
  rounds: 3,
  durationMs: 1000,
  warmupMs: 100,
  clientProcs: 2,
  tetcdCmd: 'node bin/tetcd',
  etcdCmd: '/usr/bin/etcd',
  engine: 'raw',
};

function sample(server: 'etcd' | 'tetcd', round: number, rps: number, extra: Partial<LoadSample> = {}): LoadSample {
  return {
    server,
    round,
    rps,
    p50Ms: rps / 1000,
    p99Ms: rps / 100,
    errors: 0,
    statuses: { '0': rps },
    serverCores: 1,
    clientCores: 0.2,
    rssBytes: 100 * 2 ** 20,
    otherCores: 0,
    ...extra,
  };
}

test('median and roundTo', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.ok(Number.isNaN(median([])));
  assert.is(median([NaN, 5]), 5);
  assert.is(roundTo(1.23456, 2), 1.23);
});

test('medians skip skipped rounds and the ratio is tetcd over etcd', () => {
  const samples = [
    sample('etcd', 1, 100),
    sample('tetcd', 1, 150),
    sample('etcd', 2, 300),
    sample('tetcd', 2, 50),
    sample('etcd', 3, 200),
    { ...sample('tetcd', 3, 0), skipped: 'member died' },
  ];
  const e = mediansOf(samples, 'etcd');
  const t = mediansOf(samples, 'tetcd');
  assert.is(e.rps, 200);
  assert.is(t.rps, 100);
  assert.is(t.rounds, 2);
  assert.equal(t.skipped, ['member died']);
  assert.is(ratioOf(e, t), 0.5);
  assert.ok(Number.isNaN(ratioOf(e, mediansOf([], 'tetcd'))));
});

test('renderRun: one row per workload with ratio, and a skipped cluster is a "skipped: why" cell', () => {
  const put = WORKLOADS.find((w) => w.name === 'put-1000')!;
  const c3 = WORKLOADS.find((w) => w.name === 'c3-put-1000')!;
  const md = renderRun(
    facts,
    [
      { workload: put, samples: [sample('etcd', 1, 10_000), sample('tetcd', 1, 12_000)] },
      { workload: c3, samples: [sample('etcd', 1, 8_000), { ...sample('tetcd', 1, 0), skipped: 'cluster not ready | after 60000 ms' }] },
    ],
    undefined,
  );
  const putRow = md.split('\n').find((l) => l.startsWith('| put-1000 |'))!;
  assert.match(putRow, '| 10,000 | 12,000 | **1.20** |');
  assert.match(putRow, '| 10,000 / 12,000 |');
  const c3Row = md.split('\n').find((l) => l.startsWith('| c3-put-1000 |'))!;
  assert.match(c3Row, 'skipped: cluster not ready \\| after 60000 ms');
  assert.match(c3Row, '| – |');
  assert.match(md, '`node dist/bench/run.js`');
});

test('renderMemory shows both servers and the RSS ratio', () => {
  const md = renderMemory(facts, [
    {
      server: 'etcd',
      keys: 1000,
      loadMs: 2000,
      rssBytes: 200 * 2 ** 20,
      peakRssBytes: 250 * 2 ** 20,
      anonBytes: 150 * 2 ** 20,
      fileBytes: 50 * 2 ** 20,
      diskBytes: 50 * 2 ** 20,
    },
    {
      server: 'tetcd',
      keys: 1000,
      loadMs: 1000,
      rssBytes: 300 * 2 ** 20,
      peakRssBytes: 320 * 2 ** 20,
      anonBytes: 280 * 2 ** 20,
      fileBytes: 20 * 2 ** 20,
      diskBytes: 60 * 2 ** 20,
    },
  ]);
  assert.match(md, '| etcd | 1,000 | 2 | 500 | 200 | 150 / 50 | 250 | 50 |');
  assert.match(md, 'RSS ratio tetcd/etcd: **1.50**');
});

test('spliceSection replaces only its own block and keeps everything else', () => {
  const wal = '# Benchmarks\n\n## WAL\n\nfsync numbers\n';
  const once = spliceSection(wal, 'bench:run', 'first');
  assert.ok(once.startsWith(wal.trimEnd()));
  assert.match(once, '<!-- bench:run start -->\nfirst\n<!-- bench:run end -->');
  const withTail = once + '\n## Later section\n\nkept\n';
  const twice = spliceSection(withTail, 'bench:run', 'second');
  assert.not.match(twice, 'first');
  assert.match(twice, 'second');
  assert.match(twice, '## WAL\n\nfsync numbers');
  assert.match(twice, '## Later section\n\nkept');
  assert.is(twice.split('<!-- bench:run start -->').length, 2);
  const both = spliceSection(twice, 'bench:profile', 'prof');
  assert.match(spliceSection(both, 'bench:run', 'third'), 'prof');
  assert.is(spliceSection('', 'bench:run', 'x'), '# Benchmarks\n\n<!-- bench:run start -->\nx\n<!-- bench:run end -->\n');
  assert.throws(() => spliceSection('<!-- bench:run start -->\nno end', 'bench:run', 'x'));
});

test.run();
