// Partitions through the real peer transport: a proxy in front of every member's peer port (tools/lib/peer_proxy.ts)
// isolates the leader (black hole, then resets) while clients keep sending it linearizable reads and writes,
// isolates a follower, splits the cluster 1/1/1, drops one direction of the leader's links only, and delays,
// duplicates and reorders frames. The history of gets, ranges, puts, multi-key txns and compare-and-sets through
// all three members must be linearizable, and the members must converge. The second test proves the harness sees
// what it is for: the same partition with reads served without ReadIndex (serializable) yields a stale read.
// TETCD_FAULTS_SEED replays the choices; a failing history is saved under /tmp/tetcd-lincheck/.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkHistory } from '../../tools/lincheck/check.js';
import { HistoryRecorder, historyToJson } from '../../tools/lincheck/history.js';
import { PeerNet } from '../../tools/lib/peer_proxy.js';
import type { ClusterMember, LocalCluster } from '../../tools/cluster.js';
import {
  ELECTION_MS,
  FAULTS_TARGET,
  LONG,
  assertNoCrash,
  clusterLogs,
  finalReads,
  runClients,
  runSeed,
  saveHistory,
  seededRng,
  startFaultCluster,
  waitConverged,
  type LinRunOptions,
  type NemesisEvent,
} from '../helpers/faults.js';

const seed = runSeed(LONG ? undefined : 20261210);
const log = (l: string): void => {
  process.stdout.write(`  ${l}\n`);
};
/** How long each partition holds: past an election timeout, so CheckQuorum and elections act. */
const HOLD_MS = LONG ? 6_000 : 2_000;
/** Between partitions, healed. */
const HEALED_MS = LONG ? 3_000 : 700;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let cluster: LocalCluster | undefined;
let pn: PeerNet | undefined;

test.after.each(async () => {
  await pn?.close();
  pn = undefined;
  await cluster?.stop();
  cluster = undefined;
});

async function start(): Promise<{ c: LocalCluster; net: PeerNet }> {
  cluster = await startFaultCluster({
    peerProxy: true,
    beforeStart: async (c) => {
      pn = await PeerNet.start(c.proxiedMembers(), seededRng(seed ^ 0x2545f491));
    },
  });
  await cluster.leader(10_000);
  return { c: cluster, net: pn! };
}

/** The member that leads among `among`, or undefined if none does within `ms`. */
async function leaderWithin(c: LocalCluster, among: readonly ClusterMember[], ms: number): Promise<ClusterMember | undefined> {
  try {
    return await c.leader(ms, among);
  } catch {
    return undefined;
  }
}

/** Runs each kind of partition once, in a seeded order, healing in between; returns what happened. */
async function runPartitions(c: LocalCluster, net: PeerNet, rng: () => number): Promise<NemesisEvent[]> {
  const events: NemesisEvent[] = [];
  const t0 = Date.now();
  const note = (what: string): void => {
    events.push({ atMs: Date.now() - t0, what });
    log(`partition +${((Date.now() - t0) / 1000).toFixed(1)}s: ${what}`);
  };
  const kinds = [
    'isolate-leader-drop',
    'isolate-leader-cut',
    'isolate-follower',
    'split-1-1-1',
    'leader-out-only',
    'leader-in-only',
    'chaos',
  ];
  for (let i = kinds.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [kinds[i], kinds[j]] = [kinds[j]!, kinds[i]!];
  }
  for (const kind of kinds) {
    const leader = await c.leader(15_000);
    const others = c.members.filter((m) => m !== leader);
    const names = (ms: readonly ClusterMember[]): string[] => ms.map((m) => m.name);
    switch (kind) {
      case 'isolate-leader-drop':
      case 'isolate-leader-cut':
        net.isolate(leader.name, kind.endsWith('drop') ? 'drop' : 'cut');
        break;
      case 'isolate-follower':
        net.isolate(others[0]!.name);
        break;
      case 'split-1-1-1':
        net.split(c.members.map((m) => [m.name]));
        break;
      case 'leader-out-only':
        net.setLinks([leader.name], names(others), { drop: true });
        break;
      case 'leader-in-only':
        net.setLinks(names(others), [leader.name], { drop: true });
        break;
      case 'chaos':
        net.setLinks(names(c.members), names(c.members), { delayMs: 5, jitterMs: 40, duplicate: 0.1, reorder: 0.1 });
        break;
    }
    note(`${kind} (leader ${leader.name})`);
    const heldUntil = Date.now() + HOLD_MS;
    if (kind.startsWith('isolate-leader') || kind.startsWith('leader-')) {
      // The majority side elects a leader of its own while the old one is cut off.
      const next = await leaderWithin(c, others, HOLD_MS + 2 * ELECTION_MS);
      note(next ? `the majority elected ${next.name}` : 'the majority elected no leader');
    }
    await sleep(Math.max(0, heldUntil - Date.now()));
    net.heal();
    note('healed');
    await sleep(HEALED_MS);
  }
  return events;
}

test(`histories stay linearizable while the peer network partitions, one-way drops and reorders (seed ${seed})`, async () => {
  if (FAULTS_TARGET === 'etcd') return; // the proxy speaks tetcd's peer protocol
  log(`seed ${seed} (TETCD_FAULTS_SEED=${seed} replays the choices)`);
  const { c, net } = await start();
  const h = new HistoryRecorder();
  const opts: LinRunOptions = { clients: 6, keys: 5, durationMs: 0, opTimeoutMs: 2_000, seed, long: LONG, log };
  let untilMs = Number.POSITIVE_INFINITY;
  const clients = runClients(c, h, opts, () => untilMs, seededRng(seed ^ 0x5bd1e995));
  const events = await runPartitions(c, net, seededRng(seed));
  untilMs = Date.now();
  await clients;
  await c.waitHealthy(30_000);
  await finalReads(c, h, opts.keys, opts.clients);
  assertNoCrash(c);

  const ok = h.ops.filter((o) => o.status === 'ok');
  const unknown = h.ops.filter((o) => o.status === 'unknown').length;
  log(`${h.ops.length} ops: ${ok.length} ok, ${unknown} unknown`);
  const r = checkHistory(h.ops, { timeBudgetMs: 60_000 });
  log(r.summary);
  if (r.verdict !== 'ok') {
    const file = saveHistory(historyToJson(h.ops), seed);
    assert.unreachable(
      `${r.summary}\nhistory saved to ${file}\n${r.report}\npartitions: ${events.map((e) => `+${(e.atMs / 1000).toFixed(1)}s ${e.what}`).join('; ')}\n${clusterLogs(c)}`,
    );
  }
  // The partitions were real: the cut-off leaders lost their place, the proxy dropped, refused, duplicated and
  // reordered frames, and work went on meanwhile.
  const elected = events.filter((e) => e.what.startsWith('the majority elected m'));
  assert.ok(elected.length >= 3, `the majority side elected a new leader only ${elected.length} times of 4`);
  const stats = c.members.flatMap((a) => c.members.filter((b) => b !== a).map((b) => net.linkStats(a.name, b.name)));
  const sum = (k: 'dropped' | 'refused' | 'duplicated' | 'reordered'): number => stats.reduce((n, s) => n + s[k], 0);
  assert.ok(sum('dropped') > 0 && sum('refused') > 0 && sum('duplicated') > 0 && sum('reordered') > 0, JSON.stringify(stats));
  assert.ok(ok.length >= 500, `only ${ok.length} operations completed`);
  await waitConverged(c, 30_000);
});

test('the harness catches reads served without ReadIndex: an isolated leader answers serializable reads stale', async () => {
  if (FAULTS_TARGET === 'etcd') return;
  const { c, net } = await start();
  const h = new HistoryRecorder();
  const opts: LinRunOptions = {
    clients: 6,
    keys: 3,
    durationMs: 0,
    opTimeoutMs: 2_000,
    seed,
    long: false,
    log,
    serializableReads: true,
  };
  let untilMs = Number.POSITIVE_INFINITY;
  const clients = runClients(c, h, opts, () => untilMs, seededRng(seed ^ 0x1b873593));
  await sleep(500);
  const leader = await c.leader(10_000);
  net.isolate(leader.name);
  await leaderWithin(
    c,
    c.members.filter((m) => m !== leader),
    10_000,
  );
  await sleep(2_000); // the new leader takes writes; the old one still answers reads from its own state
  net.heal();
  untilMs = Date.now();
  await clients;
  const r = checkHistory(h.ops, { timeBudgetMs: 60_000 });
  assert.is(r.verdict, 'violation', `serializable reads through an isolated leader went unnoticed: ${r.summary}`);
});

test.run();
