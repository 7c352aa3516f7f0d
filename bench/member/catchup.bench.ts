// A new member's catch-up by snapshot beside etcd 3.4 (`npm run bench:catchup`): one fresh 3-member cluster
// per server and round (alternating which goes first), both with the same --snapshot-count (default 1000),
// loaded through the leader with --db-mib MiB of 64 KiB values, then enough small puts that the leader's log
// no longer reaches back to the large ones (both keep 5000 entries behind a snapshot). Then C closed-loop
// clients put 256 B values on the leader for --duration-ms (the baseline), and again while a 4th member is
// added (MemberAdd) and started with --initial-cluster-state existing and an empty data dir. Catch-up time:
// from its spawn until its Status raftAppliedIndex reaches what the leader's was one poll (50 ms) earlier; the
// new member's log must show that it installed a snapshot, or the round fails. Reports catch-up time and the
// put p99 / slowest put of the baseline and during the catch-up. Results go to the console (and, with
// --out FILE, into its `catchup` section, or `catchup-<N>mib` for another --db-mib); medians over the rounds.
import { readFileSync, writeFileSync } from 'node:fs';
import { Cluster, type MemberProc, type ServerKind, freePort } from '../lib/servers.js';
import { GrpcConn } from '../lib/grpc-client.js';
import { p99, put, putLoops } from '../lib/put_probe.js';
import { spliceSection } from '../lib/results.js';
import { alternatingRounds, medianTable } from '../lib/rounds.js';
import { readFlags } from '../lib/flags.js';
import { decodeStatusResponse, type StatusResponse } from '../../src/proto/rpc.js';

export interface Options {
  rounds: number;
  dbMib: number;
  clients: number;
  durationMs: number;
  snapshotCount: number;
  timeoutS: number;
  tetcdCmd: string[];
  etcdCmd: string[];
  out: string;
}

const VALUE_BYTES = 64 * 1024;
const LOAD_CONCURRENCY = 16;
/** Entries both servers keep behind a snapshot for slow followers (etcd 3.4's snapshotCatchUpEntries). */
const CATCHUP_ENTRIES = 5000;
const POLL_MS = 50;
/** What the new member's log says when it installs the leader's snapshot (tetcd; etcd 3.4's capnslog and zap). */
const SNAPSHOT_INSTALLED = /applied snapshot from leader|finished applying incoming snapshot|applied incoming snapshot|applied snapshot/;

export function options(argv: string[]): Options {
  const o = readFlags(
    argv,
    {
      rounds: 0,
      dbMib: 256,
      clients: 16,
      durationMs: 3000,
      snapshotCount: 1000,
      timeoutS: 600,
      tetcdCmd: ['bin/tetcd'],
      etcdCmd: ['/usr/bin/etcd'],
      out: '',
    } as Options,
    {
      '--rounds': ['rounds', 'number'],
      '--db-mib': ['dbMib', 'number'],
      '--clients': ['clients', 'number'],
      '--duration-ms': ['durationMs', 'number'],
      '--snapshot-count': ['snapshotCount', 'number'],
      '--timeout-s': ['timeoutS', 'number'],
      '--tetcd-cmd': ['tetcdCmd', 'command'],
      '--etcd-cmd': ['etcdCmd', 'command'],
      '--out': ['out', 'string'],
    },
  );
  // Large backends take long to load three times per round: two rounds from 1 GiB on unless asked.
  if (o.rounds === 0) o.rounds = o.dbMib >= 1024 ? 2 : 3;
  return o;
}

async function status(c: GrpcConn): Promise<StatusResponse> {
  const r = await c.unary('/etcdserverpb.Maintenance/Status', new Uint8Array(0), 10_000);
  if (r.grpcStatus !== 0) throw new Error(`status: ${r.grpcStatus} ${r.grpcMessage}`);
  return decodeStatusResponse(r.body);
}

/** `n` puts from LOAD_CONCURRENCY connections; `value(i)` gives the i-th put's value. */
async function parallelPuts(ep: string, n: number, key: (i: number) => string, value: () => Buffer): Promise<void> {
  const conns = await Promise.all(Array.from({ length: LOAD_CONCURRENCY }, () => GrpcConn.connect(ep, 5000)));
  let next = 0;
  try {
    await Promise.all(
      conns.map(async (c) => {
        for (let i = next++; i < n; i = next++) await put(c, key(i), value());
      }),
    );
  } finally {
    for (const c of conns) c.close();
  }
}

function randomValue(bytes: number): Buffer {
  const v = Buffer.alloc(bytes);
  for (let j = 0; j < v.length; j += 4) v.writeUInt32LE((Math.random() * 0xffffffff) >>> 0, j);
  return v;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The endpoint of the member that leads (asked of every member until one names a member that is there). */
async function leaderEndpoint(cluster: Cluster): Promise<string> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const ids = new Map<bigint, string>();
    let leader = 0n;
    for (const ep of cluster.endpoints) {
      const c = await GrpcConn.connect(ep, 5000);
      try {
        const s = await status(c);
        if (s.header !== undefined) ids.set(s.header.member_id, ep);
        if (s.leader !== 0n) leader = s.leader;
      } finally {
        c.close();
      }
    }
    const ep = ids.get(leader);
    if (ep !== undefined) return ep;
    await sleep(200);
  }
  throw new Error('no leader');
}

/** The applied index the member's metrics say (etcd_server_proposals_applied_total), or -1 while it does not answer. */
async function metricsApplied(url: string): Promise<number> {
  try {
    const text = await (await fetch(url, { signal: AbortSignal.timeout(1000) })).text();
    const m = /^etcd_server_proposals_applied_total (\d+)/m.exec(text);
    return m === null ? -1 : Number(m[1]);
  } catch {
    return -1;
  }
}

/** Seconds from the new member's spawn until it had applied what the leader had, and until its clients' Status said so. */
interface CatchUp {
  appliedS: number;
  servingS: number;
}

/**
 * Polls every POLL_MS from now (the new member's spawn): the target is the leader's applied index of one poll
 * before; `applied` when the member's metrics reach it, `serving` when its Status does (etcd answers clients only
 * once it has published itself through the log). Throws if it dies or takes longer than timeoutS.
 */
async function watchCatchUp(leaderEp: string, m: MemberProc, metricsUrl: string, timeoutS: number): Promise<CatchUp> {
  const t0 = performance.now();
  const leader = await GrpcConn.connect(leaderEp, 5000);
  let member: GrpcConn | null = null;
  let appliedS = -1;
  try {
    let target = (await status(leader)).raftAppliedIndex;
    for (;;) {
      if (m.child.exitCode !== null || m.child.signalCode !== null) throw new Error(`new member exited: ${m.logPath}`);
      if (performance.now() - t0 > timeoutS * 1000) throw new Error(`new member not caught up after ${timeoutS} s`);
      await sleep(POLL_MS);
      const now = (await status(leader)).raftAppliedIndex;
      if (appliedS < 0 && (await metricsApplied(metricsUrl)) >= target) appliedS = (performance.now() - t0) / 1000;
      try {
        member ??= await GrpcConn.connect(`127.0.0.1:${m.clientPort}`, 1000);
        if ((await status(member)).raftAppliedIndex >= target) {
          const servingS = (performance.now() - t0) / 1000;
          return { appliedS: appliedS < 0 ? servingS : appliedS, servingS };
        }
      } catch {
        // Not serving clients yet, or a broken connection.
        member?.close();
        member = null;
      }
      target = now;
    }
  } finally {
    leader.close();
    member?.close();
  }
}

export type Row = Record<string, number>;

export async function round(kind: ServerKind, o: Options, dir: string): Promise<Row> {
  const cluster = await Cluster.start({
    kind,
    cmd: kind === 'etcd' ? o.etcdCmd : o.tetcdCmd,
    cwd: process.cwd(),
    members: 3,
    baseDir: dir,
    args: ['--snapshot-count', String(o.snapshotCount)],
  });
  try {
    const ep = await leaderEndpoint(cluster);
    const tLoad = performance.now();
    const big = Math.ceil((o.dbMib * 1024 * 1024) / VALUE_BYTES);
    await parallelPuts(
      ep,
      big,
      (i) => `load/${String(i).padStart(8, '0')}`,
      () => randomValue(VALUE_BYTES),
    );
    // Past the large entries by more than what stays behind a snapshot: only a snapshot can bring them.
    const small = Buffer.alloc(64, 0x62);
    await parallelPuts(
      ep,
      CATCHUP_ENTRIES + 2 * o.snapshotCount,
      (i) => `pad/${i % 100}`,
      () => small,
    );
    const loadS = (performance.now() - tLoad) / 1000;
    const base = await putLoops(ep, o.clients, sleep(o.durationMs));
    const metricsUrl = `http://127.0.0.1:${await freePort()}`;
    const m = await cluster.join(['--listen-metrics-urls', metricsUrl]);
    const caughtUp = watchCatchUp(ep, m, `${metricsUrl}/metrics`, o.timeoutS);
    const [during, c] = await Promise.all([putLoops(ep, o.clients, caughtUp), caughtUp]);
    const dead = cluster.deadMembers();
    if (dead.length > 0) throw new Error(`members died: ${dead.join('; ')}`);
    if (!SNAPSHOT_INSTALLED.test(readFileSync(m.logPath, 'utf8')))
      throw new Error(`${kind}: the new member caught up without a snapshot (${m.logPath})`);
    return {
      'caught up s (applied)': c.appliedS,
      'caught up s (serving clients)': c.servingS,
      'put p99 ms (baseline)': p99(base),
      'put p99 ms (during catch-up)': p99(during),
      'slowest put ms (baseline)': Math.max(...base),
      'slowest put ms (during catch-up)': Math.max(...during),
      'puts/s (baseline)': base.length / (o.durationMs / 1000),
      'puts/s (during catch-up)': during.length / c.servingS,
      'load s': loadS,
    };
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const rows = await alternatingRounds(o.rounds, 'catchup', (kind, dir) => round(kind, o, dir));
  const perRound = (k: ServerKind) => rows[k].map((x) => x['caught up s (applied)'].toFixed(2)).join(', ');
  const lines = [
    `## New member catch-up by snapshot beside etcd 3.4, ${o.dbMib} MiB (${new Date().toISOString().slice(0, 10)})`,
    '',
    `\`npm run bench:catchup -- --db-mib ${o.dbMib}\`, ${new Date().toISOString().slice(0, 16)} UTC, medians of ${o.rounds} rounds (alternating which server goes first); a 3-member cluster with \`--snapshot-count ${o.snapshotCount}\` loaded through the leader with ${o.dbMib} MiB of ${VALUE_BYTES / 1024} KiB values and ${CATCHUP_ENTRIES + 2 * o.snapshotCount} small puts after them (the log no longer reaches the large ones); ${o.clients} closed-loop clients putting 256 B values on the leader for ${o.durationMs} ms (baseline), then while a 4th member is added and started with \`--initial-cluster-state existing\` until its applied index reaches the leader's (polled every ${POLL_MS} ms; its log shows the snapshot installed). Catch-up per round: etcd ${perRound('etcd')} s; tetcd ${perRound('tetcd')} s.`,
    '',
    ...medianTable(rows),
  ];
  const text = lines.join('\n');
  process.stdout.write(`\n${text}\n`);
  const section = o.dbMib === 256 ? 'catchup' : `catchup-${o.dbMib}mib`;
  if (o.out !== '') writeFileSync(o.out, spliceSection(readFileSync(o.out, 'utf8'), section, text));
}

if (process.argv[1]?.endsWith('catchup.bench.js')) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
