// Watchers under faults on a real 3-member cluster: while writers put, delete and run multi-key txns and
// the nemesis kills, pauses and restarts members (test/helpers/faults.ts), watchers of the whole keyspace,
// of prefixes, of a range and of single keys (some with prev_kv, some filtered) follow the writes on
// different members. A watcher whose stream breaks (member killed) or goes silent (member stopped: its
// progress requests go unanswered) resumes on the next member from its last revision + 1. At the end every
// watcher must have seen each revision of its range exactly once, in order, equal to the history every
// member serves from revision 1; that history is itself checked against the final keys and every
// acknowledged write. Three patient watchers stay through pauses, and at the end two stay on a follower
// while it catches up by snapshot (--snapshot-count 100, --snapshot-catchup-entries 20). Short in
// `npm test`; 3 minutes with the long nemesis under TETCD_FAULTS_LONG=1.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { ClusterMember, LocalCluster } from '../../tools/cluster.js';
import type { WatchResponse } from '../../src/proto/rpc.js';
import { Event_EventType, type KeyValue } from '../../src/proto/kv.js';
import {
  ExactKv,
  FAULTS_TARGET,
  LONG,
  assertNoCrash,
  clusterLogs,
  runNemesis,
  runSeed,
  seededRng,
  sleep,
  startFaultCluster,
  waitConverged,
} from '../helpers/faults.js';
import {
  RawWatchStream,
  STREAM_WATCH_ID,
  checkBookmarks,
  checkWatcher,
  createRequest,
  inRange,
  showEvent,
  type History,
  type WatchSpec,
} from '../helpers/watch-check.js';

const seed = runSeed();
const DURATION_MS = LONG ? 3 * 60_000 : 20_000;
const WRITERS = 3;
/** Pause between a writer's operations: keeps the history (read back whole at the end) small. */
const WRITE_GAP_MS = LONG ? 10 : 15;
const OP_TIMEOUT_MS = 2_000;
/** A watcher asks for progress this often... */
const PROGRESS_EVERY_MS = 500;
/** ...and takes this long without any response as a stopped member... */
const SILENCE_MS = 2_000;
/** ...except patient watchers, which stay through a pause and see their member catch up (by snapshot too). */
const PATIENT_SILENCE_MS = 30_000;

const log = (l: string) => process.stdout.write(`  ${l}\n`);
const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const KEYS = [
  ...Array.from({ length: 20 }, (_, i) => `wf/a/${String(i).padStart(2, '0')}`),
  ...Array.from({ length: 20 }, (_, i) => `wf/b/${String(i).padStart(2, '0')}`),
];

function spec(key: string, end: string | undefined, o: Partial<WatchSpec> = {}): WatchSpec {
  return { key: b(key), end: end === undefined ? undefined : b(end), noPut: false, noDelete: false, prevKv: false, fragment: false, ...o };
}

/** The watchers: [label, spec, patient]; they start on members in turn. */
const WATCHERS: Array<[string, WatchSpec, patient?: boolean]> = [
  ['all+prev', spec('\0', '', { prevKv: true })],
  ['all', spec('\0', '')],
  ['prefix a+prev', spec('wf/a/', 'wf/a0', { prevKv: true })],
  ['prefix b', spec('wf/b/', 'wf/b0')],
  ['range a/15..b/05+prev', spec('wf/a/15', 'wf/b/05', { prevKv: true })],
  ['key hot+prev', spec('wf/hot', undefined, { prevKv: true })],
  ['key a/07', spec('wf/a/07', undefined)],
  ['deletes only', spec('wf/', 'wf0', { noPut: true, prevKv: true })],
  ['puts of b only', spec('wf/b/', 'wf/b0', { noDelete: true })],
  ['patient all+prev', spec('\0', '', { prevKv: true }), true],
  ['patient prefix a', spec('wf/a/', 'wf/a0'), true],
  ['patient key hot', spec('wf/hot', undefined), true],
];

/**
 * One watcher that follows the cluster: a stream to one member; when it breaks or stays silent past
 * SILENCE_MS it opens one to the next member from the revision after the last event it got.
 */
class RoamingWatcher {
  /** Every watcher started, so that the test's end stops them whatever happened. */
  static readonly all: RoamingWatcher[] = [];
  readonly streams: RawWatchStream[] = [];
  /** Every response that carried events, in arrival order across streams. */
  readonly eventResponses: WatchResponse[] = [];
  readonly reconnects: string[] = [];
  lastRev: number;
  /** The highest progress response of the current stream. */
  progressRev = 0;
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(
    readonly label: string,
    readonly spec: WatchSpec,
    private readonly endpoints: readonly string[],
    private at: number,
    readonly startRev: number,
    private readonly silenceMs: number,
  ) {
    this.lastRev = startRev - 1;
  }

  start(): void {
    RoamingWatcher.all.push(this);
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const endpoint = this.endpoints[this.at]!;
      const why = await this.follow(endpoint);
      if (this.stopped) break;
      this.reconnects.push(`${endpoint}: ${why}`);
      this.at = (this.at + 1) % this.endpoints.length;
      await sleep(100);
    }
  }

  /** One stream, until it breaks or goes silent; resolves with why it ended. */
  private follow(endpoint: string): Promise<string> {
    const s = new RawWatchStream(endpoint);
    this.streams.push(s);
    this.progressRev = 0;
    let heardMs = Date.now();
    let created = false;
    return new Promise((resolve) => {
      const finish = (why: string): void => {
        clearInterval(timer);
        s.onResponse = undefined;
        s.close();
        resolve(why);
      };
      s.onResponse = (r) => {
        heardMs = Date.now();
        if (r.canceled) finish(`canceled (${r.cancel_reason}, compact revision ${r.compact_revision})`);
        else if (r.created) created = true;
        else if (r.watch_id === STREAM_WATCH_ID) this.progressRev = Math.max(this.progressRev, r.header?.revision ?? 0);
        else if (r.events.length > 0) {
          this.eventResponses.push(r);
          this.lastRev = r.events.at(-1)!.kv!.mod_revision;
        }
      };
      s.send(createRequest(this.spec, this.lastRev + 1));
      const timer = setInterval(() => {
        if (this.stopped) finish('stopped');
        else if (s.ended !== undefined) finish(s.ended);
        else if (Date.now() - heardMs > this.silenceMs) finish(`silent for ${this.silenceMs} ms`);
        else if (created) s.send({ progress_request: {} });
      }, PROGRESS_EVERY_MS);
    });
  }
}

/** An acknowledged write: its revision and the changes it must have made there. */
interface AckedWrite {
  rev: number;
  what: string;
  puts: Array<[key: string, value: string]>;
  deletes: string[];
}

/** Writers putting, deleting (one key or a range) and running 3-op txns through any member, no retries. */
class WriteLoad {
  readonly acked: AckedWrite[] = [];
  unknown = 0;
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(
    private readonly endpoints: readonly string[],
    private readonly rng: () => number,
  ) {}

  start(): void {
    this.running = true;
    for (let w = 0; w < WRITERS; w++) this.loops.push(this.writer(w));
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  private async writer(w: number): Promise<void> {
    let at = w % this.endpoints.length;
    let kv: ExactKv | null = null;
    const key = () => (this.rng() < 0.2 ? 'wf/hot' : KEYS[Math.floor(this.rng() * KEYS.length)]!);
    for (let seq = 0; this.running; seq++) {
      kv ??= new ExactKv(this.endpoints[at]!);
      const value = `w${w}.${seq}`;
      const x = this.rng();
      try {
        if (x < 0.45) {
          const k = key();
          const r = await kv.put(b(k), b(value), OP_TIMEOUT_MS);
          this.acked.push({ rev: r.revision, what: `put ${k}`, puts: [[k, value]], deletes: [] });
        } else if (x < 0.7) {
          const k = key();
          const end = x < 0.6 ? null : b(`${k.slice(0, -1)}9`);
          const r = await kv.deleteRange(b(k), end, OP_TIMEOUT_MS, true);
          const deletes = r.prev_kvs.map((p) => Buffer.from(p.key).toString('latin1'));
          if (deletes.length > 0) this.acked.push({ rev: r.header!.revision, what: `delete ${k}${end ? '..' : ''}`, puts: [], deletes });
        } else {
          const ks = new Set<string>();
          while (ks.size < 3) ks.add(key());
          const [k1, k2, k3] = [...ks] as [string, string, string];
          const r = await kv.txn(
            {
              success: [
                { request_put: { key: b(k1), value: b(`${value}a`) } },
                { request_delete_range: { key: b(k2), prev_kv: true } },
                { request_put: { key: b(k3), value: b(`${value}b`) } },
              ],
            },
            OP_TIMEOUT_MS,
          );
          const deletes = (r.responses[1]?.response_delete_range?.prev_kvs ?? []).map((p) => Buffer.from(p.key).toString('latin1'));
          this.acked.push({
            rev: r.header!.revision,
            what: `txn ${k1} ${k2} ${k3}`,
            puts: [
              [k1, `${value}a`],
              [k3, `${value}b`],
            ],
            deletes,
          });
        }
      } catch {
        this.unknown++;
        kv.close();
        kv = null;
        at = (at + 1) % this.endpoints.length;
        await sleep(50);
        continue;
      }
      await sleep(WRITE_GAP_MS);
    }
    kv?.close();
  }
}

/** Every change from revision 1 to `toRev` as one member's watch from revision 1 (with prev_kv) tells it. */
async function readHistory(endpoint: string, toRev: number): Promise<History> {
  const s = new RawWatchStream(endpoint);
  try {
    s.send(createRequest(spec('\0', '', { prevKv: true }), 1));
    const deadline = Date.now() + 60_000;
    let progress = 0;
    s.onResponse = (r) => {
      if (r.watch_id === STREAM_WATCH_ID && !r.created) progress = Math.max(progress, r.header?.revision ?? 0);
    };
    while (progress < toRev) {
      if (Date.now() > deadline) throw new Error(`the history from ${endpoint} did not reach revision ${toRev} (progress at ${progress})`);
      if (s.ended !== undefined) throw new Error(`the history stream to ${endpoint} ended: ${s.ended}`);
      s.send({ progress_request: {} });
      await sleep(300);
    }
    const h: History = new Map();
    for (const r of s.responses) {
      assert.ok(!r.canceled, `the history stream was canceled: ${r.cancel_reason}`);
      for (const e of r.events) {
        const rev = e.kv!.mod_revision;
        let list = h.get(rev);
        if (list === undefined) h.set(rev, (list = []));
        list.push({ type: e.type, kv: e.kv!, prev: e.prev_kv });
      }
    }
    return h;
  } finally {
    s.close();
  }
}

function showHistory(h: History): string[] {
  return [...h.entries()].sort(([x], [y]) => x - y).flatMap(([, chs]) => chs.map((c) => showEvent(c.type, c.kv, c.prev, true)));
}

const sameKv = (x: KeyValue | undefined, y: KeyValue | undefined): boolean =>
  x === undefined || y === undefined ? x === y : showEvent(0, x, undefined, false) === showEvent(0, y, undefined, false);

/**
 * The history is the store's: a change at every revision 2..toRev, each put and delete consistent with
 * the key before it (prev_kv, create revision, version), replaying to the keys read at the end, and every
 * acknowledged write at its revision.
 */
function checkHistory(h: History, toRev: number, finalKvs: readonly KeyValue[], acked: readonly AckedWrite[]): string[] {
  const problems: string[] = [];
  const state = new Map<string, KeyValue>();
  for (let rev = 2; rev <= toRev && problems.length < 10; rev++) {
    const chs = h.get(rev);
    if (chs === undefined) {
      problems.push(`no change at revision ${rev}`);
      continue;
    }
    for (const c of chs) {
      const k = Buffer.from(c.kv.key).toString('latin1');
      const before = state.get(k);
      if (!sameKv(c.prev, before)) problems.push(`revision ${rev}: ${k}'s prev_kv is not the key as it was`);
      if (c.type === Event_EventType.PUT) {
        const ok = c.kv.create_revision === (before?.create_revision ?? rev) && c.kv.version === (before?.version ?? 0) + 1;
        if (!ok || c.kv.mod_revision !== rev)
          problems.push(
            `revision ${rev}: ${showEvent(c.type, c.kv, c.prev, true)} after ${before ? showEvent(0, before, undefined, false) : 'nothing'}`,
          );
        state.set(k, c.kv);
      } else {
        if (before === undefined) problems.push(`revision ${rev}: ${k} deleted but absent`);
        state.delete(k);
      }
    }
  }
  if ([...h.keys()].some((rev) => rev > toRev)) problems.push(`changes past revision ${toRev}`);
  const got = [...state.values()].map((kv) => showEvent(0, kv, undefined, false)).sort();
  const want = finalKvs.map((kv) => showEvent(0, kv, undefined, false)).sort();
  if (got.join('\n') !== want.join('\n')) problems.push(`the history replays to ${got.length} keys, the store has ${want.length}`);
  for (const a of acked) {
    const chs = h.get(a.rev) ?? [];
    const shown = chs.map(
      (c) =>
        `${c.type === Event_EventType.PUT ? 'put' : 'del'} ${Buffer.from(c.kv.key).toString('latin1')}${c.type === Event_EventType.PUT ? `=${Buffer.from(c.kv.value).toString('latin1')}` : ''}`,
    );
    const want = [...a.puts.map(([k, v]) => `put ${k}=${v}`), ...a.deletes.map((k) => `del ${k}`)];
    if (shown.length !== want.length || want.some((w) => !shown.includes(w))) {
      if (problems.length < 20)
        problems.push(
          `acknowledged ${a.what} at revision ${a.rev}: the history there is [${shown.join(', ')}], expected [${want.join(', ')}]`,
        );
    }
  }
  return problems;
}

const APPLIED_SNAPSHOT = /applied snapshot/g;
/** How long the follower stays stopped at least: past the peer streams' 5 s idle timeout (src/transport). */
const STOPPED_MIN_MS = 6_500;
const SAVED_SNAPSHOT = /saved snapshot/g;

/** How often a member logged `what` (every process it ran as). */
function logCount(m: ClusterMember, what: RegExp): number {
  return (readFileSync(m.logFile, 'utf8').match(what) ?? []).length;
}

let cluster: LocalCluster | undefined;

/** The writers, once started: a failed assertion leaves them writing (they would keep the process alive too). */
let load: WriteLoad | undefined;

test.after(async () => {
  // A failed assertion leaves watchers following and writers writing: they would keep the process alive.
  await Promise.all(RoamingWatcher.all.map((w) => w.stop()));
  await load?.stop();
  await cluster?.stop();
});

test(`watchers that resume on another member from last + 1 see every revision of their range once under kill/pause/restart (seed ${seed}, ${DURATION_MS / 1000} s)`, async () => {
  log(`seed ${seed} (TETCD_FAULTS_SEED=${seed} replays the nemesis and the writers' choices)`);
  // Frequent snapshots and a short log behind them: a member that was down or stopped for a second
  // catches up by snapshot, and the watchers on it live through the restore.
  cluster = await startFaultCluster(
    FAULTS_TARGET === 'tetcd' ? { extraArgs: ['--snapshot-count', '100', '--snapshot-catchup-entries', '20'] } : {},
  );
  const c = cluster;
  const endpoints = c.members.map((m) => m.endpoint);
  const first = new ExactKv(endpoints[0]!);
  const marker = await first.put(b('wf/start'), b('x'), 10_000);
  first.close();
  // Half the watchers start from revision 1 (catching up from history first), half after the marker.
  const watchers = WATCHERS.map(
    ([label, s, patient], i) =>
      new RoamingWatcher(label, s, endpoints, i % 3, i % 2 === 0 ? 1 : marker.revision + 1, patient ? PATIENT_SILENCE_MS : SILENCE_MS),
  );
  for (const w of watchers) w.start();
  const writers = new WriteLoad(endpoints, seededRng(seed ^ 0x2545f491));
  load = writers;
  writers.start();
  const events = await runNemesis(c, Date.now() + DURATION_MS, seededRng(seed), LONG, log);

  // Then, still under load, a follower is stopped until the leader is far enough ahead that it must send
  // a snapshot, and two watchers stay on the follower while it installs it. Far enough: past the 512
  // appends the leader sends ahead unanswered (they wait in the stopped member's socket), then past a
  // snapshot and the log kept behind it: 8 snapshots of 100 entries.
  await c.waitHealthy(30_000);
  const leader = await c.leader(10_000);
  const follower = c.members.find((m) => m !== leader)!;
  const from = Math.max(...writers.acked.map((a) => a.rev)) + 1;
  const pinned = [
    new RoamingWatcher('pinned all+prev', spec('\0', '', { prevKv: true }), [follower.endpoint], 0, from, PATIENT_SILENCE_MS),
    new RoamingWatcher('pinned prefix b', spec('wf/b/', 'wf/b0'), [follower.endpoint], 0, from, PATIENT_SILENCE_MS),
  ];
  for (const w of pinned) w.start();
  await sleep(1_000);
  const followerSnapshots = logCount(follower, APPLIED_SNAPSHOT);
  // A stopped member's socket still holds the leader's unanswered appends, so a member stopped for less than the
  // peer streams' idle timeout (5 s, etcd's ConnReadTimeout) keeps its stream and catches up from those: it stays
  // stopped at least STOPPED_MIN_MS, so the leader drops the stream, probes it from its match index and, the log
  // being compacted past it, must send a snapshot. Now and then it still catches up without one: then it is
  // stopped again (at most three times).
  let restored = 0;
  for (let attempt = 1; attempt <= 3 && restored === 0; attempt++) {
    const leaderSnapshots = logCount(leader, SAVED_SNAPSHOT);
    follower.pause();
    const pausedMs = Date.now();
    const stoppedEnough = () =>
      Date.now() - pausedMs >= STOPPED_MIN_MS && (FAULTS_TARGET !== 'tetcd' || logCount(leader, SAVED_SNAPSHOT) >= leaderSnapshots + 8);
    while (Date.now() - pausedMs < 20_000 && !stoppedEnough()) await sleep(200);
    follower.resume();
    await follower.waitHealthy(30_000);
    await sleep(1_000);
    restored = logCount(follower, APPLIED_SNAPSHOT) - followerSnapshots;
    log(`${follower.name} stopped for ${Date.now() - pausedMs} ms with 2 watchers on it: ${restored} snapshot(s) installed on resuming`);
    if (FAULTS_TARGET !== 'tetcd') break;
  }
  if (FAULTS_TARGET === 'tetcd') assert.ok(restored > 0, `${follower.name} caught up without a snapshot, three times`);
  watchers.push(...pinned);
  await writers.stop();
  await c.waitHealthy(30_000);
  const conv = await waitConverged(c, 30_000);
  const toRev = conv.revision;
  log(`${writers.acked.length} writes acknowledged, ${writers.unknown} unknown; revision ${toRev}; ${events.length} faults`);

  // Every watcher hears a progress response at the final revision: it was sent everything up to there.
  const deadline = Date.now() + 30_000;
  while (watchers.some((w) => w.progressRev < toRev) && Date.now() < deadline) await sleep(200);
  for (const w of watchers) await w.stop();
  const behind = watchers.filter((w) => w.progressRev < toRev).map((w) => `${w.label} at ${w.progressRev}`);
  assert.equal(behind, [], `watchers not caught up with revision ${toRev}`);

  // The reference: the history each member serves from revision 1, the same on all, and the store's.
  const histories = await Promise.all(endpoints.map((e) => readHistory(e, toRev)));
  const shown = histories.map(showHistory);
  for (let i = 1; i < shown.length; i++) assert.equal(shown[i], shown[0], `the history of ${endpoints[i]} differs from ${endpoints[0]}'s`);
  const history = histories[0]!;
  const kv = new ExactKv(endpoints[0]!);
  const final = await kv.range(Buffer.from([0]), Buffer.from([0]), 10_000).finally(() => kv.close());
  assert.is(final.revision, toRev, 'no write after the cluster converged');
  const historyProblems = checkHistory(history, toRev, final.kvs, writers.acked);
  assert.equal(historyProblems, [], 'the history is the store’s');

  const problems: string[] = [];
  for (const w of watchers) {
    problems.push(...checkWatcher({ label: w.label, spec: w.spec, responses: w.eventResponses, history, fromRev: w.startRev, toRev }));
    for (const [i, s] of w.streams.entries()) problems.push(...checkBookmarks(`${w.label} stream ${i} (${s.endpoint})`, s.responses));
    // The acknowledged writes of its range, spelled out (checkWatcher already compared every event).
    const got = new Set(
      w.eventResponses.flatMap((r) => r.events.map((e) => `${e.kv!.mod_revision} ${Buffer.from(e.kv!.key).toString('latin1')}`)),
    );
    for (const a of writers.acked) {
      if (a.rev < w.startRev) continue;
      for (const [k] of a.puts)
        if (!w.spec.noPut && inRange(w.spec, b(k)) && !got.has(`${a.rev} ${k}`))
          problems.push(`${w.label}: missed acknowledged ${a.what} at ${a.rev}`);
      for (const k of a.deletes)
        if (!w.spec.noDelete && inRange(w.spec, b(k)) && !got.has(`${a.rev} ${k}`))
          problems.push(`${w.label}: missed acknowledged ${a.what} at ${a.rev}`);
    }
  }
  const reconnects = watchers.flatMap((w) => w.reconnects.map((r) => `${w.label} left ${r}`));
  log(`${reconnects.length} reconnections: ${reconnects.slice(0, 12).join('; ')}${reconnects.length > 12 ? '; …' : ''}`);
  for (const w of watchers)
    log(`${w.label}: ${w.eventResponses.reduce((n, r) => n + r.events.length, 0)} events over ${w.streams.length} streams`);
  log(`snapshots installed from the leader: ${c.members.map((m) => `${m.name} ${logCount(m, APPLIED_SNAPSHOT)}`).join(', ')}`);
  if (problems.length > 0) log(clusterLogs(c, 1024));
  assert.equal(problems.slice(0, 20), [], `${problems.length} problems (seed ${seed}); nemesis: ${events.map((e) => e.what).join('; ')}`);

  // The run tested what it claims: members were killed and paused, streams broke, watchers moved on.
  const faults = events.filter((e) => !e.what.startsWith('no leader'));
  assert.ok(faults.length >= 3, `only ${faults.length} faults injected`);
  assert.ok(reconnects.length >= 2, `only ${reconnects.length} watcher streams broke`);
  assert.ok(writers.acked.length >= 300, `only ${writers.acked.length} writes acknowledged`);
  assertNoCrash(c);
});

test.run();
