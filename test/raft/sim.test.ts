// Deterministic simulation of 3- and 5-member clusters under message loss, duplication, delay,
// reordering, partitions, crashes with torn writes, snapshots and membership changes; every step is
// checked against Raft's safety invariants, and progress is required after healing. A self-test runs
// deliberately broken variants and requires the checker to catch each of them.
//
//   TETCD_SIM_SEEDS=N      seeds per configuration (defaults below: a few thousand in all)
//   TETCD_SIM_SEED=S       run only seed S (add TETCD_SIM_CONFIG=name to pick the configuration)
//   TETCD_SIM_TRACE=1      print the event trace of the run(s)

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ReadOnlyOption } from '../../src/raft/types.js';
import { defaultOptions, type SimOptions, type SimResult, Simulation } from './sim/cluster.js';

interface SimConfig {
  name: string;
  seeds: number;
  opts: SimOptions;
}

const seedsEnv = process.env.TETCD_SIM_SEEDS;
const oneSeed = process.env.TETCD_SIM_SEED;
const onlyConfig = process.env.TETCD_SIM_CONFIG;
const trace = process.env.TETCD_SIM_TRACE === '1';

const configs: SimConfig[] = [
  { name: '3-members', seeds: 2500, opts: defaultOptions(3) },
  { name: '5-members', seeds: 1200, opts: defaultOptions(5) },
  // Without pre-vote and check-quorum: terms churn, stale leaders linger; safety must not care.
  { name: '3-members-classic', seeds: 600, opts: { ...defaultOptions(3), preVote: false, checkQuorum: false } },
  // One entry per message and a window of one: probing and backtracking dominate.
  { name: '3-members-narrow', seeds: 400, opts: { ...defaultOptions(3), maxSizePerMsg: 0, maxInflightMsgs: 1, dropProb: 0.15 } },
  // Frequent partitions, lossy links, crashes during writes, many reads.
  {
    name: '5-members-heavy',
    seeds: 400,
    opts: { ...defaultOptions(5), partitionProb: 0.05, dropProb: 0.15, pendingCrashProb: 0.2, readProb: 0.8 },
  },
];

function replayCommand(config: string, seed: number): string {
  return `TETCD_SIM_CONFIG=${config} TETCD_SIM_SEED=${seed} TETCD_SIM_TRACE=1 node ${process.argv[1]}`;
}

function runOne(c: SimConfig, seed: number): SimResult {
  const sim = new Simulation(seed, { ...c.opts, trace });
  const r = sim.run();
  if (trace) for (const l of sim.traceOutput()) console.log(l);
  return r;
}

for (const c of configs) {
  if (onlyConfig !== undefined && onlyConfig !== c.name) continue;
  const n = seedsEnv !== undefined ? Number(seedsEnv) : c.seeds;
  const seeds = oneSeed !== undefined ? [Number(oneSeed)] : Array.from({ length: n }, (_, i) => i + 1);
  test(`simulation ${c.name}: ${seeds.length} seeds keep every invariant and make progress after healing`, () => {
    const started = Date.now();
    const failures: string[] = [];
    const stats: Record<string, number> = {};
    for (const seed of seeds) {
      const r = runOne(c, seed);
      for (const [k, v] of Object.entries(r.stats)) stats[k] = (stats[k] ?? 0) + v;
      if (r.violation !== undefined || r.liveness !== undefined) {
        const what = r.violation !== undefined ? `violation of ${r.violation.message}` : `liveness: ${r.liveness}`;
        failures.push(`seed ${seed}: ${what}`);
        // Exactly one command line replays it.
        console.log(`FAILED ${c.name} seed ${seed}: ${what}\n${replayCommand(c.name, seed)}`);
        break;
      }
    }
    console.log(
      `  ${c.name}: ${seeds.length} seeds in ${((Date.now() - started) / 1000).toFixed(1)} s; leaders ${stats.leaders}, commits ${stats.commits}, reads answered ${stats.readsAnswered}/${stats.readsIssued}, crashes ${stats.crashes}, snapshots ${stats.snapshots}, conf changes ${stats.confChanges}, messages ${stats.messages}`,
    );
    assert.equal(failures, [], 'no seed fails');
    assert.ok(stats.commits > seeds.length, 'the simulation commits entries');
    if (seeds.length >= 100) {
      assert.ok(stats.readsAnswered > seeds.length, 'reads are answered');
      assert.ok(stats.snapshots > 0 && stats.confChanges > 0 && stats.crashes > 0, 'faults, snapshots and membership changes happen');
    }
  });
}

/** Broken variants the checker must catch, each within the given number of seeds. */
const broken: { name: string; opts: Partial<SimOptions>; seeds: number; members: number[]; invariant?: string }[] = [
  { name: 'a follower votes twice in a term', opts: { faults: { voteTwice: true } }, seeds: 50, members: [3, 5] },
  {
    name: 'a follower votes twice in a term, seen as two leaders of one term',
    opts: { faults: { voteTwice: true }, checkDurableVotes: false },
    seeds: 100,
    members: [3, 5],
    invariant: 'election safety',
  },
  {
    name: 'votes ignore whether the candidate log is up to date',
    opts: { faults: { ignoreLogUpToDate: true } },
    seeds: 50,
    members: [3, 5],
  },
  { name: 'every message is sent before the Ready is persisted', opts: { unsafeSendAllBeforePersist: true }, seeds: 200, members: [3, 5] },
  {
    // Not a bug but an assumption this network breaks (bounded delays and clock drift): the read safety
    // check must see the stale reads a deposed leader serves from its lease.
    name: 'lease-based reads while partitions come and go',
    opts: { readOnlyOption: ReadOnlyOption.LeaseBased, readProb: 1, partitionProb: 0.05 },
    seeds: 400,
    members: [3],
    invariant: 'read safety',
  },
  {
    // etcd 3.4's behaviour; needs a crash while the leader's own write is in flight, so crash more there.
    name: 'the leader counts its own log before it is durable',
    opts: { faults: { leaderAckBeforeDurable: true }, pendingCrashProb: 0.2 },
    seeds: 300,
    members: [3],
  },
];

if (oneSeed === undefined && onlyConfig === undefined) {
  for (const b of broken) {
    test(`self-test: the checker catches a broken variant (${b.name})`, () => {
      for (const members of b.members) {
        let caught: SimResult | undefined;
        for (let seed = 1; seed <= b.seeds && caught === undefined; seed++) {
          const r = new Simulation(seed, { ...defaultOptions(members), ...b.opts }).run();
          if (r.violation !== undefined) caught = r;
        }
        assert.ok(caught !== undefined, `${members} members: no violation detected in ${b.seeds} seeds`);
        if (b.invariant !== undefined) assert.is(caught!.violation!.invariant, b.invariant);
        console.log(`  ${b.name}, ${members} members: caught at seed ${caught!.seed}: ${caught!.violation!.message}`);
      }
    });
  }
}

test.run();
