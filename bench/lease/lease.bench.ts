// Leases beside etcd 3.4 (`npm run bench:lease`): one fresh member per server and round, alternating which
// goes first, the same generator for both. Four workloads:
//   grant-revoke  C closed loops, each a LeaseGrant then a LeaseRevoke of that lease: pairs per second
//   keepalive     S LeaseKeepAlive streams (L leases each: 100,000 leases from 1,000 streams), each sending its
//                 next keep-alive, for its next lease, when the previous one is answered: round trips per
//                 second, and p50/p99 latency
//   lock          C contenders (100), each with its own lease, Lock then Unlock one name in closed loops:
//                 acquisitions per second and the wait for the lock
//   big-revoke    one lease with K attached keys (100,000) revoked while a probe puts every 2 ms: how long the
//                 revoke takes, the slowest probe put meanwhile and the longest time between two probe answers
//                 (how long applying was blocked; the probe waits 2 ms between puts, which the gap includes),
//                 and the server's CPU meanwhile (tetcd: also its main thread's, which bounds the stall)
// Results go to the console (and, with --out FILE, into its `lease` section); medians over the rounds. The
// generator shares the machine with the member: `generatorCores` near 1 means it, not the server, bounds a run.
import http2 from 'node:http2';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type ServerKind } from '../lib/servers.js';
import { GrpcConn } from '../lib/grpc-client.js';
import { spliceSection } from '../lib/results.js';
import { median } from '../lib/stats.js';
import { cpuSecondsOfTrees, threadCpuMs } from '../lib/proc.js';
import { GrpcMessageSplitter, grpcFrame, openGrpcStream, readVarint } from '../lib/grpc-stream.js';
import {
  decodeLeaseGrantResponse,
  decodeRangeResponse,
  encodeLeaseGrantRequest,
  encodePutRequest,
  encodeRangeRequest,
  encodeTxnRequest,
  encodeLeaseKeepAliveRequest,
  encodeLeaseRevokeRequest,
} from '../../src/proto/rpc.js';
import { decodeLockResponse, encodeLockRequest, encodeUnlockRequest } from '../../src/proto/v3lock.js';
import { readFlags } from '../lib/flags.js';

interface Options {
  rounds: number;
  workloads: string[];
  tetcdCmd: string[];
  etcdCmd: string[];
  label: string;
  durationMs: number;
  loops: number;
  streams: number;
  /** keepalive: leases each stream keeps alive, in turn (100: 100,000 leases from 1,000 streams). */
  leasesPerStream: number;
  bigRevokeKeys: number;
  /** lock: clients contending for one lock. */
  contenders: number;
  out: string;
}

function options(argv: string[]): Options {
  const o: Options = {
    rounds: 3,
    workloads: ['grant-revoke', 'keepalive', 'big-revoke', 'lock'],
    tetcdCmd: ['bin/tetcd'],
    etcdCmd: ['/usr/bin/etcd'],
    label: '',
    durationMs: 3000,
    loops: 64,
    streams: 1000,
    leasesPerStream: 100,
    bigRevokeKeys: 100_000,
    contenders: 100,
    out: '',
  };
  return readFlags(argv, o, {
    '--rounds': ['rounds', 'number'],
    '--workloads': ['workloads', 'list'],
    '--tetcd-cmd': ['tetcdCmd', 'command'],
    '--etcd-cmd': ['etcdCmd', 'command'],
    '--label': ['label', 'string'],
    '--duration-ms': ['durationMs', 'number'],
    '--loops': ['loops', 'number'],
    '--streams': ['streams', 'number'],
    '--big-revoke-keys': ['bigRevokeKeys', 'number'],
    '--leases-per-stream': ['leasesPerStream', 'number'],
    '--contenders': ['contenders', 'number'],
    '--out': ['out', 'string'],
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const CONNECTIONS = 8;
const STREAMS_PER_CONNECTION_MAX = 100; // below the members' default concurrent-stream limits

async function connections(endpoint: string, n: number): Promise<GrpcConn[]> {
  return Promise.all(Array.from({ length: n }, () => GrpcConn.connect(endpoint, 5000)));
}

async function grantRevoke(endpoint: string, o: Options): Promise<Record<string, number>> {
  const conns = await connections(endpoint, CONNECTIONS);
  let pairs = 0;
  let errors = 0;
  let stop = false;
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from({ length: o.loops }, async (_, i) => {
      const c = conns[i % conns.length];
      while (!stop) {
        const g = await c.unary('/etcdserverpb.Lease/LeaseGrant', encodeLeaseGrantRequest({ TTL: 60 }), 10_000);
        if (g.grpcStatus !== 0) {
          errors++;
          continue;
        }
        const id = decodeLeaseGrantResponse(g.body).ID;
        const r = await c.unary('/etcdserverpb.Lease/LeaseRevoke', encodeLeaseRevokeRequest({ ID: id }), 10_000);
        if (r.grpcStatus === 0) pairs++;
        else errors++;
      }
    }).concat([sleep(o.durationMs).then(() => void (stop = true))]),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  for (const c of conns) c.close();
  return { pairsPerSec: pairs / elapsedS, errors, generatorCores: (cpu.user + cpu.system) / 1e6 / elapsedS };
}

/**
 * C contenders (each with a lease of its own) take and release one lock through the Lock service in closed
 * loops: acquisitions per second and the wait for the lock (p50/p99, which grows with the queue ahead).
 */
async function lockLoop(endpoint: string, o: Options): Promise<Record<string, number>> {
  const conns = await connections(endpoint, CONNECTIONS);
  const name = Buffer.from('bench-lock');
  const leases = await Promise.all(
    Array.from({ length: o.contenders }, async (_, i) => {
      const g = await conns[i % conns.length].unary('/etcdserverpb.Lease/LeaseGrant', encodeLeaseGrantRequest({ TTL: 60 }), 10_000);
      if (g.grpcStatus !== 0) throw new Error(`LeaseGrant: ${g.grpcMessage}`);
      return decodeLeaseGrantResponse(g.body).ID;
    }),
  );
  let acquired = 0;
  let errors = 0;
  let stop = false;
  const waits: number[] = [];
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  await Promise.all(
    leases
      .map(async (lease, i) => {
        const c = conns[i % conns.length];
        while (!stop) {
          const t0 = performance.now();
          const l = await c.unary('/v3lockpb.Lock/Lock', encodeLockRequest({ name, lease }), 30_000);
          if (l.grpcStatus !== 0) {
            errors++;
            continue;
          }
          waits.push(performance.now() - t0);
          const u = await c.unary('/v3lockpb.Lock/Unlock', encodeUnlockRequest({ key: decodeLockResponse(l.body).key }), 30_000);
          if (u.grpcStatus === 0) acquired++;
          else errors++;
        }
      })
      .concat([sleep(o.durationMs).then(() => void (stop = true))]),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  for (const c of conns) c.close();
  waits.sort((a, b) => a - b);
  return {
    acquisitionsPerSec: acquired / elapsedS,
    waitP50Ms: waits[Math.floor(waits.length * 0.5)] ?? Number.NaN,
    waitP99Ms: waits[Math.floor(waits.length * 0.99)] ?? Number.NaN,
    errors,
    generatorCores: (cpu.user + cpu.system) / 1e6 / elapsedS,
  };
}

/** The TTL (field 3) of a LeaseKeepAliveResponse; 0 (absent) means the lease is gone. */
function ttlOf(b: Buffer, start: number, end: number): number {
  let p = start;
  while (p < end) {
    let tag: number;
    [tag, p] = readVarint(b, p);
    if ((tag & 7) === 0) {
      let v: number;
      [v, p] = readVarint(b, p);
      if (tag >>> 3 === 3) return v;
      continue;
    }
    let len: number;
    [len, p] = readVarint(b, p);
    p += len;
  }
  return 0;
}

/** One keep-alive stream in a closed loop: the next request goes out when the previous answer arrives. */
class KeepAliveLoop {
  private readonly splitter = new GrpcMessageSplitter();
  private readonly req: http2.ClientHttp2Stream;
  private sentAt = 0;
  running = true;
  answered = 0;
  zeroTtl = 0;

  /** One framed request per lease of the stream, sent in turn. */
  private readonly frames: Buffer[];
  private next = 0;

  constructor(
    session: http2.ClientHttp2Session,
    ids: readonly bigint[],
    private readonly lat: number[],
  ) {
    this.frames = ids.map((id) => grpcFrame(encodeLeaseKeepAliveRequest({ ID: id })));
    this.req = openGrpcStream(session, '/etcdserverpb.Lease/LeaseKeepAlive');
    this.req.on('data', (d: Buffer) => this.splitter.push(d, this.onAnswer));
  }

  send(): void {
    this.sentAt = performance.now();
    this.req.write(this.frames[this.next]);
    this.next = (this.next + 1) % this.frames.length;
  }

  close(): void {
    this.running = false;
    this.req.close(http2.constants.NGHTTP2_CANCEL);
  }

  private readonly onAnswer = (b: Buffer, start: number, end: number): void => {
    if (ttlOf(b, start, end) === 0) this.zeroTtl++;
    this.answered++;
    this.lat.push(performance.now() - this.sentAt);
    if (this.running) this.send();
  };
}

async function keepalive(endpoint: string, pids: readonly number[], o: Options): Promise<Record<string, number>> {
  const conns = await connections(endpoint, CONNECTIONS);
  // The leases (streams × leases per stream), granted first.
  const ids: bigint[] = [];
  const leases = o.streams * o.leasesPerStream;
  for (let i = 0; i < leases; i += 64) {
    const batch = Array.from({ length: Math.min(64, leases - i) }, (_, j) =>
      conns[(i + j) % conns.length].unary('/etcdserverpb.Lease/LeaseGrant', encodeLeaseGrantRequest({ TTL: 300 }), 10_000),
    );
    for (const r of await Promise.all(batch)) {
      if (r.grpcStatus !== 0) throw new Error(`grant failed: ${r.grpcMessage}`);
      ids.push(decodeLeaseGrantResponse(r.body).ID);
    }
  }
  for (const c of conns) c.close();
  const sessions: http2.ClientHttp2Session[] = [];
  const lat: number[] = [];
  const loops: KeepAliveLoop[] = [];
  for (let i = 0; i < o.streams; i++) {
    if (i % STREAMS_PER_CONNECTION_MAX === 0) {
      const s = http2.connect(`http://${endpoint}`);
      s.on('error', () => {});
      sessions.push(s);
    }
    loops.push(new KeepAliveLoop(sessions[sessions.length - 1], ids.slice(i * o.leasesPerStream, (i + 1) * o.leasesPerStream), lat));
  }
  // Warm up, then measure.
  for (const l of loops) l.send();
  await sleep(500);
  const a0 = loops.reduce((n, l) => n + l.answered, 0);
  const renewed0 = await renewedTotal(endpoint);
  lat.length = 0;
  const cpu0 = process.cpuUsage();
  const server0 = cpuSecondsOfTrees(pids);
  const started = performance.now();
  await sleep(o.durationMs);
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const serverCores = (cpuSecondsOfTrees(pids) - server0) / elapsedS;
  const answered = loops.reduce((n, l) => n + l.answered, 0) - a0;
  const renewed = (await renewedTotal(endpoint)) - renewed0;
  const zero = loops.reduce((n, l) => n + l.zeroTtl, 0);
  for (const l of loops) l.close();
  for (const s of sessions) s.close();
  const sorted = lat.slice().sort((x, y) => x - y);
  return {
    roundTripsPerSec: answered / elapsedS,
    // The server's own count (etcd_debugging_lease_renewed_total) over the same window: a cross-check.
    serverRenewedPerSec: renewed / elapsedS,
    p50Ms: sorted[Math.floor(sorted.length * 0.5)] ?? Number.NaN,
    p99Ms: sorted[Math.floor(sorted.length * 0.99)] ?? Number.NaN,
    zeroTtlAnswers: zero,
    // The member's CPU (all its processes and threads) in cores over the window.
    serverCores,
    generatorCores: (cpu.user + cpu.system) / 1e6 / elapsedS,
  };
}

async function bigRevoke(endpoint: string, pids: number[], kind: ServerKind, o: Options): Promise<Record<string, number>> {
  const c = await GrpcConn.connect(endpoint, 5000);
  const probeConn = await GrpcConn.connect(endpoint, 5000);
  const g = await c.unary('/etcdserverpb.Lease/LeaseGrant', encodeLeaseGrantRequest({ TTL: 3600 }), 10_000);
  const id = decodeLeaseGrantResponse(g.body).ID;
  const value = Buffer.alloc(64, 'v');
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < o.bigRevokeKeys; i += 128) {
    const ops = [];
    for (let j = i; j < Math.min(o.bigRevokeKeys, i + 128); j++)
      ops.push({ request_put: { key: Buffer.from(`big/${String(j).padStart(7, '0')}`), value, lease: id } });
    pending.push(c.unary('/etcdserverpb.KV/Txn', encodeTxnRequest({ success: ops }), 60_000));
    if (pending.length >= 16) await Promise.all(pending.splice(0));
  }
  await Promise.all(pending);
  await sleep(500);
  let stop = false;
  const probes: Array<[number, number]> = [];
  const probe = (async () => {
    for (let i = 0; !stop; i++) {
      const t = performance.now();
      await probeConn.unary('/etcdserverpb.KV/Put', encodePutRequest({ key: Buffer.from(`probe/${i % 10}`), value }), 10_000);
      probes.push([t, performance.now() - t]);
      await sleep(2);
    }
  })();
  await sleep(300);
  const cpu0 = cpuSecondsOfTrees(pids);
  const main0 = threadCpuMs(pids[0]);
  const t0 = performance.now();
  const r = await c.unary('/etcdserverpb.Lease/LeaseRevoke', encodeLeaseRevokeRequest({ ID: id }), 60_000);
  const revokeMs = performance.now() - t0;
  await sleep(300);
  // CPU over the revoke and the 300 ms after it (the commit's chunks, the probe's puts): what it cost, however
  // busy the machine. tetcd's main thread is the one that applies, so it bounds how long applying can stall.
  const serverCpuMs = (cpuSecondsOfTrees(pids) - cpu0) * 1000;
  const mainThreadCpuMs = kind === 'tetcd' ? threadCpuMs(pids[0]) - main0 : Number.NaN;
  stop = true;
  await probe;
  if (r.grpcStatus !== 0) throw new Error(`revoke failed: ${r.grpcMessage}`);
  const left = decodeRangeResponse(
    (
      await c.unary(
        '/etcdserverpb.KV/Range',
        encodeRangeRequest({ key: Buffer.from('big/'), range_end: Buffer.from('big0'), count_only: true }),
        10_000,
      )
    ).body,
  ).count;
  if (left !== 0) throw new Error(`${left} keys left after the revoke`);
  c.close();
  probeConn.close();
  const during = probes.filter(([t, d]) => t + d >= t0 && t <= t0 + revokeMs).map(([, d]) => d);
  // The longest time between two consecutive probe answers around the revoke: how long no put completed
  // (a put is answered once applied, so this bounds the gap between two applied puts from above).
  let gapMs = 0;
  for (let i = 1; i < probes.length; i++) {
    const [t, d] = probes[i];
    const prevEnd = probes[i - 1][0] + probes[i - 1][1];
    if (t + d >= t0 && prevEnd <= t0 + revokeMs) gapMs = Math.max(gapMs, t + d - prevEnd);
  }
  return { revokeMs, slowestProbePutMs: Math.max(0, ...during), longestProbeGapMs: gapMs, serverCpuMs, mainThreadCpuMs };
}

/** etcd_debugging_lease_renewed_total from the member's /metrics (both servers export it). */
async function renewedTotal(endpoint: string): Promise<number> {
  const res = await fetch(`http://${endpoint}/metrics`);
  const m = /^etcd_debugging_lease_renewed_total (\d+(?:\.\d+)?(?:e\+\d+)?)/m.exec(await res.text());
  return m ? Number(m[1]) : Number.NaN;
}

type Row = Record<string, number>;

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const base = mkdtempSync('/tmp/tetcd-lease-bench-');
  const results: Record<string, Record<ServerKind, Row[]>> = {};
  try {
    for (let round = 0; round < o.rounds; round++) {
      const kinds: ServerKind[] = round % 2 === 0 ? ['etcd', 'tetcd'] : ['tetcd', 'etcd'];
      for (const workload of o.workloads) {
        for (const kind of kinds) {
          const dir = join(base, `${workload}-${kind}-${round}`);
          mkdirSync(dir, { recursive: true });
          const cluster = await Cluster.start({
            kind,
            cmd: kind === 'etcd' ? o.etcdCmd : o.tetcdCmd,
            cwd: process.cwd(),
            members: 1,
            baseDir: dir,
          });
          try {
            const ep = cluster.endpoints[0];
            let row: Row;
            if (workload === 'grant-revoke') row = await grantRevoke(ep, o);
            else if (workload === 'keepalive') row = await keepalive(ep, cluster.pids, o);
            else if (workload === 'big-revoke') row = await bigRevoke(ep, cluster.pids, kind, o);
            else if (workload === 'lock') row = await lockLoop(ep, o);
            else throw new Error(`unknown workload ${workload}`);
            (results[workload] ??= { etcd: [], tetcd: [] })[kind].push(row);
            process.stdout.write(`round ${round + 1} ${workload} ${kind}: ${JSON.stringify(row)}\n`);
          } finally {
            await cluster.stop();
            rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  const lines = [
    `### Leases beside etcd 3.4${o.label ? ` (${o.label}: \`${o.tetcdCmd.join(' ')}\`)` : ''}`,
    '',
    `\`npm run bench:lease\`, ${new Date().toISOString().slice(0, 16)} UTC, medians of ${o.rounds} rounds of ${o.durationMs} ms; grant-revoke: ${o.loops} closed loops over ${CONNECTIONS} connections; keepalive: ${o.streams} streams keeping ${o.streams * o.leasesPerStream} leases alive (${o.leasesPerStream} each, in turn), ${STREAMS_PER_CONNECTION_MAX} streams per connection; big-revoke: ${o.bigRevokeKeys} keys on one lease; lock: ${o.contenders} contenders with a lease each, Lock then Unlock in closed loops.`,
    '',
    '| workload | measure | etcd | tetcd | tetcd/etcd |',
    '|---|---|---|---|---|',
  ];
  for (const [workload, byKind] of Object.entries(results)) {
    for (const measure of Object.keys(byKind.etcd[0] ?? {})) {
      const e = median(byKind.etcd.map((r) => r[measure]));
      const t = median(byKind.tetcd.map((r) => r[measure]));
      lines.push(`| ${workload} | ${measure} | ${e.toFixed(2)} | ${t.toFixed(2)} | ${(t / e).toFixed(2)} |`);
    }
  }
  const text = lines.join('\n');
  process.stdout.write(`\n${text}\n`);
  if (o.out !== '') {
    const section = o.label ? `lease-${o.label}` : 'lease';
    writeFileSync(o.out, spliceSection(readFileSync(o.out, 'utf8'), section, text));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
