// The oracle test: one scenario of etcdctl invocations run against a fresh real etcd 3.4 and a fresh system
// under test (tetcd by default; TETCD_COMPAT_TARGET=etcd runs etcd against itself to prove the harness),
// every step compared line by line after normalizing only IDs, ports, raft terms/indexes, sizes and timings.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { oracleGate } from '../helpers/oracle.js';
import { registerScenario, stepLabel, type Step } from '../helpers/scenario.js';

/** `txn -i` input: each section's lines, each section ended by an empty line. */
const txn = (compares: string[], success: string[], failure: string[]): string =>
  [compares, success, failure].map((lines) => lines.map((l) => l + '\n').join('') + '\n').join('');

const manyPuts = Array.from({ length: 129 }, (_, i) => `put many${i} v`);
// 2 MiB is refused by etcdctl's own gRPC send limit; 1.6 MiB reaches the server and exceeds --max-request-bytes.
const twoMiB = 'x'.repeat(2 * 1024 * 1024);
const overRequestLimit = 'y'.repeat(Math.ceil(1.6 * 1024 * 1024));

/** The scenario: a fresh member, then these steps in order (revisions in comments are etcd's). */
const STEPS: Step[] = [
  // Puts and gets, every output format.
  { args: ['put', 'foo', 'bar'] }, // rev 2
  { args: ['get', 'foo'] },
  { args: ['get', 'foo', '-w', 'json'] },
  { args: ['get', 'foo', '-w', 'fields'] },
  { args: ['get', 'foo', '-w', 'simple'] },
  { args: ['put', 'foo', 'bar2', '--prev-kv'] }, // rev 3
  { args: ['put', 'foo', 'bar3', '--prev-kv', '-w', 'json'] }, // rev 4
  { args: ['put', 'newkey', 'v', '--prev-kv'] }, // rev 5
  { args: ['get', 'foo', '--print-value-only'] },
  { args: ['get', 'foo', '--keys-only'] },
  { args: ['put', 'foo1', 'v1'] }, // rev 6
  { args: ['put', 'foo2', 'v2'] }, // rev 7
  { args: ['put', 'fop', 'x'] }, // rev 8
  { args: ['put', 'zoo', 'z'] }, // rev 9
  { args: ['put', 'foo1', 'v1b'] }, // rev 10
  { args: ['get', '--prefix', 'foo'] },
  { args: ['get', '--prefix', 'f', '--keys-only'] },
  { args: ['get', 'f', '--from-key'] },
  { args: ['get', 'foo', '--prefix', '--limit=1', '-w', 'json'] },
  { args: ['get', 'foo', '--prefix', '--limit=2'] },
  { args: ['get', 'foo', '--prefix', '--order=DESCEND'] },
  { args: ['get', 'foo', '--prefix', '--sort-by=VERSION', '--order=DESCEND'] },
  { args: ['get', 'foo', '--prefix', '--sort-by=MODIFY', '--order=ASCEND'] },
  { args: ['get', 'foo', '--prefix', '--sort-by=CREATE', '--order=DESCEND', '-w', 'json'] },
  { args: ['get', 'foo', '--prefix', '--sort-by=VALUE'] },
  { args: ['get', 'foo', '--prefix', '--sort-by=KEY', '--order=DESCEND', '--limit=2'] },
  { args: ['get', 'foo', 'zoo'] },
  { args: ['get', '--prefix', ''] },
  { args: ['get', 'foo', '--rev=2'] },
  { args: ['get', 'foo', '--rev=3', '-w', 'json'] },
  { args: ['get', 'foo', '--consistency=s'] },
  { args: ['--hex', 'get', 'foo'] },
  { args: ['get', 'nonexistent'] },
  { args: ['get', 'nonexistent', '-w', 'json'] },
  { args: ['get', 'foo', '--prefix', '--keys-only', '-w', 'json'] },
  { args: ['get', 'f', '--from-key', '--limit=3', '--rev=9'] },

  // Leases: the not-found paths here; the lease commands in lease-etcdctl.test.ts.
  { args: ['put', 'k', 'v', '--lease=123'] },
  { args: ['put', 'foo', '--ignore-lease'] },

  // put variants and their errors.
  { args: ['put', 'missingkey', '--ignore-value'] },
  { args: ['put', 'foo1', '--ignore-value'] }, // rev 11
  { args: ['get', 'foo1', '-w', 'json'] },
  { args: ['put', '', 'v'] },
  { args: ['get', ''] },
  { args: ['del', ''] },
  { args: ['put', 'big'], stdin: twoMiB },
  { args: ['put', 'big2'], stdin: overRequestLimit },

  // Deletes.
  { args: ['del', 'fop'] }, // rev 12
  { args: ['del', 'nonexistent'] },
  { args: ['del', 'foo2', '--prev-kv'] }, // rev 13
  { args: ['del', 'foo', '--prefix', '--prev-kv', '-w', 'json'] }, // rev 14
  { args: ['get', 'foo', '--rev=17', '--prefix'] },

  // Transactions: compares on ver/c/m/val, both branches, errors.
  { args: ['put', 't1', 'a'] }, // rev 15
  { args: ['txn', '-i'], stdin: txn(['val("t1") = "a"'], ['put t1 b', 'get t1'], ['put t1 fail']) }, // rev 16
  { args: ['txn', '-i'], stdin: txn(['val("t1") = "a"'], ['put t1 c'], ['get t1', 'put t2 x']) }, // rev 17
  { args: ['txn', '-i', '-w', 'json'], stdin: txn(['ver("t1") = "2"', 'c("t1") = "19"'], ['get t1 --prefix'], ['del t2']) },
  { args: ['txn', '-i'], stdin: txn(['mod("t1") > "19"', 'ver("t2") < "5"'], ['del t1 --prev-kv', 'put t3 y'], []) }, // rev 18
  { args: ['txn', '-i'], stdin: txn(['val("t2") != "x"'], [], ['get t --prefix']) },
  { args: ['txn', '-i', '-w', 'fields'], stdin: txn(['c("nope") = "0"'], ['put nope 1'], []) }, // rev 19
  { args: ['txn', '-i'], stdin: txn([], manyPuts, []) },
  { args: ['txn', '-i'], stdin: txn([], ['put dup 1', 'put dup 2'], []) },
  { args: ['txn', '-i'], stdin: txn([], ['put dupd 1', 'del dupd'], []) },
  { args: ['txn', '-i'], stdin: txn(['val("") = "x"'], ['put a b'], []) },
  { args: ['txn', '-i'], stdin: txn([], [], []) }, // rev 19: an empty txn writes nothing

  // Compaction and historical reads.
  { args: ['get', 'foo', '--rev=3'] },
  { args: ['compaction', '5'] },
  { args: ['get', 'foo', '--rev=4', '-w', 'json'] },
  { args: ['get', 'foo', '--rev=5'] },
  { args: ['compaction', '4'] },
  { args: ['compaction', '1000'] },
  { args: ['get', 'foo', '--rev=1000'] },
  { args: ['compaction', '--physical', '8'] },
  { args: ['get', 'foo1', '--rev=8', '-w', 'json'] },
  { args: ['put', 'after', 'compaction'] }, // rev 20
  { args: ['get', '--from-key', 'a', '-w', 'json'] },

  // Cluster and maintenance.
  { args: ['alarm', 'list'] },
  { args: ['alarm', 'list', '-w', 'json'] },
  { args: ['endpoint', 'status'] },
  { args: ['endpoint', 'status', '-w', 'json'] },
  { args: ['endpoint', 'health'] },
  { args: ['endpoint', 'health', '-w', 'json'] },
  { args: ['member', 'list'] },
  { args: ['member', 'list', '-w', 'json'] },
  { args: ['del', 'a', '--from-key'] },
  { args: ['get', '', '--prefix', '-w', 'json'] },
];

const t = oracleGate(test);

t('the scenario has at least 60 distinct invocations', () => {
  const distinct = new Set(STEPS.map((s) => stepLabel(s)));
  assert.ok(distinct.size >= 60, `only ${distinct.size} distinct steps`);
  assert.is(distinct.size, STEPS.length, 'a step is listed twice');
});

registerScenario(t, STEPS);

test.run();
