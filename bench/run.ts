// `npm run bench`: tetcd and etcd 3.4 side by side on this machine, driven by the same gRPC load
// generator with the same settings, alternating round by round; medians, ratios and machine facts go
// to bench/RESULTS.md. `--profile` instead runs tetcd under node's CPU profiler and names the top costs.
//
//   node dist/bench/run.js [--rounds 5] [--duration-ms 5000] [--warmup-ms 1000] [--workloads put-1,put-1000|default|all]
//     [--quick] [--profile] [--tetcd-cmd bin/tetcd] [--etcd-cmd /usr/bin/etcd] [--out bench/RESULTS.md]
//     [--client-procs 2] [--memory-keys 1000000] [--profile-dir DIR] [--keep] [--engine raw|http2] [--label NAME]
//     [--wal-writer native|js] [--generator ts|go] [--requests N]
//
// --generator go drives the same workloads with bench/go/etcdload, a generator on etcd's own Go client
// (clientv3, grpc-go), shaped as etcd's benchmark tool (connections shared by clients); its results go to
// sections of their own (label "go", "go-NAME" with --label). --requests N sends exactly N requests per round
// instead of running for --duration-ms (with --warmup-ms 0: a fresh member's first N requests).
//
// --label names a variant of tetcd (e.g. `--label client-workers-2 --tetcd-cmd "bin/tetcd --client-workers 2"`):
// its results go to their own sections of RESULTS.md (bench:run-NAME, ...) so several variants sit side by side.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { runLoad, type LoadEngine, type LoadOptions, type LoadResult as GeneratorResult } from './grpc/loadgen.js';
import { buildEtcdLoad, runEtcdLoad, type EtcdLoadOptions } from './lib/etcdload.js';
import { Cluster, StartError, dirBytes, freePort, type BenchTls, type ServerKind } from './lib/servers.js';
import { makeCa, makeCert } from '../tools/lib/certs.js';
import { cpuSecondsOfTrees, memOfTrees, machineBusySeconds, threadCpuSeconds, threadCpuDelta } from './lib/proc.js';
import {
  WORKLOADS,
  KEY_BYTES,
  keyOf,
  RANGE_KEYS,
  VALUE_BYTES,
  TXN_OPS_MAX,
  loadKeys,
  requestsFor,
  putBodies,
  PUT_BODIES,
  PUT_KEY_SPACE,
  type Workload,
} from './lib/workloads.js';
import { GrpcConn } from './lib/grpc-client.js';
import { KV, encodeRangeRequest, decodeRangeResponse } from '../src/proto/rpc.js';
import { readCpuProfile, summarize, monotonicNowUs, type ProfileSummary, type TimeWindowUs } from './lib/cpuprofile.js';
import {
  renderRun,
  renderMemory,
  renderProfiles,
  spliceSection,
  mediansOf,
  ratioOf,
  type LoadResult,
  type LoadSample,
  type CeilingResult,
  type MemoryResult,
  type ProfiledWorkload,
  type RunFacts,
} from './lib/results.js';

const here = dirname(fileURLToPath(import.meta.url));

/** The repository root: the first directory above this file holding package.json. */
function repoRoot(): string {
  let dir = here;
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('bench: no package.json above ' + here);
    dir = up;
  }
}

/** Parsed command line. */
export interface BenchOptions {
  rounds: number;
  durationMs: number;
  warmupMs: number;
  workloads: Workload[];
  profile: boolean;
  quick: boolean;
  tetcdCmd: string[];
  etcdCmd: string[];
  out: string;
  clientProcs: number;
  memoryKeys: number;
  profileDir: string;
  keep: boolean;
  engine: LoadEngine;
  /** '' or the variant name that suffixes the RESULTS.md sections. */
  label: string;
  /** Which WAL writer tetcd members use: the native addon, or bench/wal/js-writer.ts (same interface, TypeScript). */
  walWriter: 'native' | 'js';
  /** Which load generator: tetcd's own (TypeScript, raw HTTP/2) or the Go one on etcd's client. */
  generator: 'ts' | 'go';
  /** Requests per measured round (Go generator only); 0 = run for durationMs. */
  requests: number;
  /** Client and peer TLS on both servers (a CA and certificate made with openssl for the run). */
  tls: boolean;
}

const USAGE = `usage: node dist/bench/run.js [--rounds N] [--duration-ms MS] [--warmup-ms MS] [--workloads LIST|default|all]
  [--quick] [--profile] [--tetcd-cmd CMD] [--etcd-cmd CMD] [--out FILE] [--client-procs N] [--memory-keys N]
  [--profile-dir DIR] [--keep] [--engine raw|http2] [--label NAME] [--wal-writer native|js]
  [--generator ts|go] [--requests N] [--tls]
workloads: ${WORKLOADS.map((w) => w.name).join(', ')} (default: all of them)`;

function parseOptions(argv: string[], root: string): BenchOptions {
  const given = new Map<string, string>();
  const flags = new Set<string>();
  const valued = new Set([
    'rounds',
    'duration-ms',
    'warmup-ms',
    'workloads',
    'tetcd-cmd',
    'etcd-cmd',
    'out',
    'client-procs',
    'memory-keys',
    'profile-dir',
    'engine',
    'label',
    'wal-writer',
    'generator',
    'requests',
  ]);
  const boolean = new Set(['profile', 'quick', 'keep', 'help', 'tls']);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}\n${USAGE}`);
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (boolean.has(name)) {
      flags.add(name);
      continue;
    }
    if (!valued.has(name)) throw new Error(`unknown option ${a}\n${USAGE}`);
    const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
    if (v === undefined) throw new Error(`option --${name} needs a value`);
    given.set(name, v);
  }
  if (flags.has('help')) {
    console.log(USAGE);
    process.exit(0);
  }
  const quick = flags.has('quick');
  const num = (name: string, dflt: number, min: number): number => {
    const v = given.has(name) ? Number(given.get(name)) : dflt;
    if (!Number.isFinite(v) || v < min) throw new Error(`--${name} must be a number >= ${min}`);
    return Math.floor(v);
  };
  const profile = flags.has('profile');
  const wanted = given.get('workloads') ?? 'default';
  let workloads: Workload[];
  if (wanted === 'default') workloads = WORKLOADS.filter((w) => w.inDefault);
  else if (wanted === 'all') workloads = [...WORKLOADS];
  else {
    workloads = wanted.split(',').map((n) => {
      const w = WORKLOADS.find((x) => x.name === n.trim());
      if (w === undefined) throw new Error(`unknown workload ${n}\n${USAGE}`);
      return w;
    });
  }
  // A profile is of the member; the generator's own ceiling and the memory fill have nothing to profile.
  if (profile) workloads = workloads.filter((w) => w.kind === 'load');
  const splitCmd = (s: string): string[] => {
    const parts = s
      .trim()
      .split(/\s+/)
      .filter((p) => p !== '');
    if (parts.length === 0) throw new Error('empty command');
    if (parts[0] === 'node') parts[0] = process.execPath;
    return parts;
  };
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const generator = generatorOf(given.get('generator') ?? 'ts');
  const requests = num('requests', 0, 0);
  if (requests > 0 && generator !== 'go') throw new Error('--requests needs --generator go');
  if (generator === 'go' && (profile || workloads.some((w) => w.kind !== 'load'))) {
    workloads = workloads.filter((w) => w.kind === 'load');
  }
  const tls = flags.has('tls');
  const label = [generator === 'go' ? 'go' : '', tls ? 'tls' : '', labelOf(given.get('label') ?? '')].filter((x) => x !== '').join('-');
  return {
    rounds: profile ? 1 : num('rounds', quick ? 1 : 5, 1),
    durationMs: num('duration-ms', quick ? 2000 : 5000, 100),
    warmupMs: num('warmup-ms', quick ? 500 : 1000, 0),
    workloads,
    profile,
    quick,
    tetcdCmd: splitCmd(given.get('tetcd-cmd') ?? 'bin/tetcd'),
    etcdCmd: splitCmd(given.get('etcd-cmd') ?? '/usr/bin/etcd'),
    out: resolve(given.get('out') ?? join(root, 'bench', 'RESULTS.md')),
    clientProcs: num('client-procs', 2, 1),
    memoryKeys: num('memory-keys', quick ? 100_000 : 1_000_000, 1),
    profileDir: resolve(given.get('profile-dir') ?? `/tmp/tetcd-bench-profiles-${stamp}`),
    keep: flags.has('keep'),
    engine: engineOf(given.get('engine') ?? 'raw'),
    label,
    walWriter: walWriterOf(given.get('wal-writer') ?? 'native'),
    generator,
    requests,
    tls,
  };
}

function generatorOf(s: string): 'ts' | 'go' {
  if (s !== 'ts' && s !== 'go') throw new Error('--generator is ts or go');
  return s;
}

function walWriterOf(s: string): 'native' | 'js' {
  if (s !== 'native' && s !== 'js') throw new Error('--wal-writer is native or js');
  return s;
}

function labelOf(s: string): string {
  if (s !== '' && !/^[a-z0-9][a-z0-9-]{0,40}$/.test(s)) throw new Error('--label is lower-case letters, digits and dashes');
  return s;
}

function engineOf(s: string): LoadEngine {
  if (s !== 'raw' && s !== 'http2') throw new Error('--engine is raw or http2');
  return s;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs `cmd --version`; null if it works, else the most telling line of its output. */
function preflight(cmd: readonly string[], cwd: string): string | null {
  const r = spawnSync(cmd[0], [...cmd.slice(1), '--version'], { cwd, encoding: 'utf8', timeout: 20_000 });
  if (r.error !== undefined) return r.error.message;
  if (r.status === 0 && /Version/.test(r.stdout)) return null;
  const lines = `${r.stderr}\n${r.stdout}`
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  return lines.find((l) => /error/i.test(l)) ?? lines[0] ?? `exit status ${r.status}`;
}

function machineFacts(etcdCmd: readonly string[]): string {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU';
  let etcdVersion = 'unknown';
  try {
    const v = execFileSync(etcdCmd[0], [...etcdCmd.slice(1), '--version'], { encoding: 'utf8', timeout: 10_000 });
    etcdVersion = /etcd Version: (\S+)/.exec(v)?.[1] ?? v.split('\n')[0];
  } catch {
    // The version is a fact for the table only.
  }
  return `nproc ${availableParallelism()}, ${model}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${release()}, Node ${process.version}, etcd ${etcdVersion}`;
}

// ---- run state, so a signal can clean up ----

const live = new Set<Cluster>();
/** The run's TLS material with --tls (made in main). */
let benchTls: BenchTls | undefined;
let baseDir = '';
let keepDirs = false;

function installSignalHandlers(): void {
  const bail = (sig: string): void => {
    console.error(`\nbench: ${sig}, stopping servers`);
    for (const c of live) for (const m of c.members) m.child.kill('SIGKILL');
    if (baseDir !== '' && !keepDirs) rmSync(baseDir, { recursive: true, force: true });
    process.exit(130);
  };
  process.on('SIGINT', () => bail('SIGINT'));
  process.on('SIGTERM', () => bail('SIGTERM'));
}

function runDir(name: string): string {
  const d = join(baseDir, name);
  mkdirSync(d, { recursive: true });
  return d;
}

function dropDir(d: string): void {
  if (!keepDirs) rmSync(d, { recursive: true, force: true });
}

function cmdFor(kind: ServerKind, o: BenchOptions): string[] {
  return kind === 'etcd' ? o.etcdCmd : o.tetcdCmd;
}

/** Starts a cluster, or returns why not. */
async function startCluster(
  kind: ServerKind,
  o: BenchOptions,
  members: number,
  dir: string,
  root: string,
  cpuProfDir?: string,
): Promise<Cluster | string> {
  try {
    // The JS writer replaces the addon through src/wal's TETCD_WAL_ADDON override (bench/wal/js-writer.ts).
    const env = kind === 'tetcd' && o.walWriter === 'js' ? { TETCD_WAL_ADDON: join(here, 'wal', 'js-writer.js') } : undefined;
    const c = await Cluster.start({
      tls: benchTls,
      kind,
      cmd: cmdFor(kind, o),
      cwd: root,
      members,
      baseDir: dir,
      cpuProfDir,
      readyTimeoutMs: members > 1 ? 60_000 : 30_000,
      env,
    });
    live.add(c);
    return c;
  } catch (err) {
    if (err instanceof StartError) return err.reason;
    return `could not start: ${(err as Error).message}`;
  }
}

async function stopCluster(c: Cluster): Promise<void> {
  await c.stop();
  live.delete(c);
}

/** One server, one round of one load workload. */
async function runLoadOnce(
  kind: ServerKind,
  w: Workload,
  round: number,
  o: BenchOptions,
  root: string,
  requests: { path: string; bodies: Uint8Array[] },
  prof?: { memberDir: string; clientDir: string },
): Promise<LoadSample> {
  const blank: LoadSample = {
    server: kind,
    round,
    rps: 0,
    p50Ms: NaN,
    p99Ms: NaN,
    errors: 0,
    statuses: {},
    serverCores: NaN,
    clientCores: NaN,
    rssBytes: NaN,
    otherCores: NaN,
  };
  const dir = runDir(`${w.name}-r${round}-${kind}`);
  const started = await startCluster(kind, o, w.members, dir, root, prof?.memberDir);
  if (typeof started === 'string') {
    dropDir(dir);
    return { ...blank, skipped: started };
  }
  const cluster = started;
  try {
    if (w.method === 'range') {
      await loadKeys(cluster.endpoints, {
        tlsCa: benchTls?.caPem,
        prefix: 'k',
        count: RANGE_KEYS,
        valueBytes: VALUE_BYTES,
        connections: 1,
        inFlightPerConnection: 4,
        txnOps: 100,
        callTimeoutMs: 30_000,
      });
    }
    const pids = cluster.pids;
    let cpu0 = 0,
      cpu1 = 0,
      t0 = 0,
      t1 = 0,
      rss = NaN,
      busy0 = 0,
      busy1 = 0,
      mono0 = 0,
      mono1 = 0;
    let threads0 = new Map<string, number>();
    let threads: [string, number][] = [];
    const load = o.generator === 'go' ? (lo: LoadOptions) => runGoLoad(w, o, root, cluster.endpoints, lo) : runLoad;
    const res = await load({
      tlsCa: benchTls?.caPem,
      target: cluster.endpoints[0],
      targets: cluster.endpoints,
      path: requests.path,
      bodies: requests.bodies,
      connections: w.connections,
      concurrency: w.concurrency,
      durationMs: o.durationMs,
      warmupMs: o.warmupMs,
      workers: o.clientProcs,
      cpuProfDir: prof?.clientDir,
      engine: o.engine,
      onMeasureStart: () => {
        t0 = performance.now();
        mono0 = monotonicNowUs();
        cpu0 = cpuSecondsOfTrees(pids);
        busy0 = machineBusySeconds();
        threads0 = threadCpuSeconds(pids);
      },
      onMeasureEnd: () => {
        t1 = performance.now();
        mono1 = monotonicNowUs();
        cpu1 = cpuSecondsOfTrees(pids);
        busy1 = machineBusySeconds();
        rss = memOfTrees(pids).rssBytes;
        threads = threadCpuDelta(threads0, threadCpuSeconds(pids));
      },
    });
    const dead = cluster.deadMembers();
    if (dead.length > 0) return { ...blank, skipped: `member died during the run: ${dead.join('; ')}` };
    // A run where more than a few calls fail measures the failure path, not the server: void it, say why.
    const failedShare = res.errors / Math.max(1, res.requests + res.errors);
    if (res.requests === 0 || failedShare > FAILED_SHARE_MAX) {
      return {
        ...blank,
        skipped: `${Math.round(failedShare * 100)} % of calls failed: ${describeFailures(res.statuses, res.errorMessages)}`,
      };
    }
    const windowS = t1 > t0 ? (t1 - t0) / 1000 : o.durationMs / 1000;
    const serverCores = (cpu1 - cpu0) / windowS;
    return {
      server: kind,
      round,
      rps: res.rps,
      p50Ms: res.latencyMs.p50,
      p99Ms: res.latencyMs.p99,
      errors: res.errors,
      statuses: res.statuses,
      serverCores,
      clientCores: res.clientCpuCores,
      rssBytes: rss,
      otherCores: Math.max(0, (busy1 - busy0) / windowS - serverCores - res.clientCpuCores),
      threadCores: threads.map(([name, sec]) => [name, sec / windowS]),
      windowUs: { fromUs: mono0, toUs: mono1 },
      memberPids: pids,
    };
  } catch (err) {
    return { ...blank, skipped: `run failed: ${(err as Error).message}` };
  } finally {
    await stopCluster(cluster);
    dropDir(dir);
  }
}

/**
 * One measured run of the Go generator on etcd's client, in runLoad's terms: a warm-up run first when
 * --warmup-ms is set, then --requests requests or --duration-ms of load. Each run is its own process, so the
 * measured one connects afresh (etcd's benchmark tool does too).
 */
async function runGoLoad(
  w: Workload,
  o: BenchOptions,
  root: string,
  endpoints: readonly string[],
  lo: LoadOptions,
): Promise<GeneratorResult> {
  const bin = buildEtcdLoad(root, join(root, 'dist', 'bench', 'go'));
  const shape: EtcdLoadOptions = {
    endpoints,
    caFile: benchTls?.caFile,
    conns: w.connections,
    clients: w.concurrency,
    total: 0,
    durationMs: o.durationMs,
    workload:
      w.method === 'put'
        ? { method: 'put', keyBytes: KEY_BYTES, valueBytes: VALUE_BYTES, keySpace: PUT_KEY_SPACE }
        : { method: 'range', key: keyOf('k', 0).toString('latin1'), serializable: w.serializable },
  };
  if (o.warmupMs > 0) await runEtcdLoad(bin, { ...shape, durationMs: o.warmupMs });
  lo.onMeasureStart?.();
  const r = await runEtcdLoad(bin, { ...shape, total: o.requests });
  lo.onMeasureEnd?.();
  const statuses: Record<string, number> = { '0': r.requests };
  if (r.errors > 0) statuses.error = r.errors;
  return {
    requests: r.requests,
    errors: r.errors,
    rps: Math.round(r.requestsPerSecond),
    latencyMs: { mean: NaN, p50: r.p50Ms, p90: r.p90Ms, p99: r.p99Ms, max: r.maxMs },
    statuses,
    errorMessages: r.firstError === undefined ? {} : { error: r.firstError },
    connections: w.connections,
    concurrency: w.concurrency,
    workers: 1,
    durationMs: r.seconds * 1000,
    engine: o.engine,
    clientCpuCores: r.cpuSeconds / r.seconds,
    clientCpuUsPerRequest: (r.cpuSeconds * 1e6) / Math.max(1, r.requests),
  };
}

/** Above this share of failed calls a run is void. */
const FAILED_SHARE_MAX = 0.01;

function describeFailures(statuses: Record<string, number>, messages: Record<string, string>): string {
  return Object.entries(statuses)
    .filter(([k]) => k !== '0')
    .map(([k, v]) => `${v} × status ${k}${messages[k] ? ` "${messages[k]}"` : ''}`)
    .join(', ');
}

function describe(s: LoadSample): string {
  if (s.skipped !== undefined) return `skipped: ${s.skipped}`;
  return `${String(s.rps).padStart(7)} req/s  p50 ${s.p50Ms.toFixed(2)} ms  p99 ${s.p99Ms.toFixed(2)} ms  failed ${s.errors}  server ${s.serverCores.toFixed(2)} cores  gen ${s.clientCores.toFixed(2)}  other ${s.otherCores.toFixed(2)}  rss ${Math.round(s.rssBytes / 2 ** 20)} MiB`;
}

async function runLoadWorkload(w: Workload, o: BenchOptions, root: string): Promise<LoadResult> {
  const requests = requestsFor(w, 0x7e7cd);
  const samples: LoadSample[] = [];
  for (let round = 1; round <= o.rounds; round++) {
    const order: ServerKind[] = round % 2 === 1 ? ['etcd', 'tetcd'] : ['tetcd', 'etcd'];
    for (const kind of order) {
      const s = await runLoadOnce(kind, w, round, o, root, requests);
      samples.push(s);
      console.log(`  ${w.name.padEnd(18)} round ${round} ${kind.padEnd(5)} ${describe(s)}`);
    }
  }
  const e = mediansOf(samples, 'etcd');
  const t = mediansOf(samples, 'tetcd');
  const ratio = ratioOf(e, t);
  console.log(
    `  ${w.name.padEnd(18)} medians: etcd ${Math.round(e.rps)} req/s, tetcd ${Math.round(t.rps)} req/s, ratio ${Number.isFinite(ratio) ? ratio.toFixed(2) : '–'}`,
  );
  return { workload: w, samples };
}

/** The generator against the trivial server: what the generator alone can drive and what it costs. */
async function runCeiling(w: Workload, o: BenchOptions): Promise<CeilingResult> {
  const serverProcs = 2;
  const port = await freePort();
  const child = spawn(process.execPath, [join(here, 'lib', 'trivial-server.js'), '--procs', String(serverProcs), '--port', String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const blank: CeilingResult = {
    serverProcs,
    rps: 0,
    p50Ms: NaN,
    p99Ms: NaN,
    clientCores: NaN,
    clientCpuUsPerRequest: NaN,
    serverCores: NaN,
  };
  try {
    const ready = await Promise.race([
      new Promise<boolean>((r) => child.stdout!.once('data', () => r(true))),
      exited.then(() => false),
      sleep(15_000).then(() => false),
    ]);
    if (!ready) return { ...blank, skipped: 'trivial server did not start' };
    const pids = [child.pid!];
    let cpu0 = 0,
      cpu1 = 0,
      t0 = 0,
      t1 = 0;
    const res = await runLoad({
      target: `127.0.0.1:${port}`,
      path: KV.methods.Put.path,
      bodies: putBodies(PUT_BODIES, PUT_KEY_SPACE, 0x7e7cd),
      connections: w.connections,
      concurrency: w.concurrency,
      durationMs: o.durationMs,
      warmupMs: o.warmupMs,
      workers: o.clientProcs,
      engine: o.engine,
      onMeasureStart: () => {
        t0 = performance.now();
        cpu0 = cpuSecondsOfTrees(pids);
      },
      onMeasureEnd: () => {
        t1 = performance.now();
        cpu1 = cpuSecondsOfTrees(pids);
      },
    });
    if (res.requests === 0) return { ...blank, skipped: `no call succeeded: ${describeFailures(res.statuses, res.errorMessages)}` };
    return {
      serverProcs,
      rps: res.rps,
      p50Ms: res.latencyMs.p50,
      p99Ms: res.latencyMs.p99,
      clientCores: res.clientCpuCores,
      clientCpuUsPerRequest: res.clientCpuUsPerRequest,
      serverCores: (cpu1 - cpu0) / ((t1 - t0) / 1000),
    };
  } catch (err) {
    return { ...blank, skipped: `failed: ${(err as Error).message}` };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

/** Fills one member with o.memoryKeys keys and reads its resident memory. */
async function runMemoryOnce(kind: ServerKind, w: Workload, o: BenchOptions, root: string): Promise<MemoryResult> {
  const blank: MemoryResult = {
    server: kind,
    keys: o.memoryKeys,
    loadMs: NaN,
    rssBytes: NaN,
    peakRssBytes: NaN,
    anonBytes: NaN,
    fileBytes: NaN,
    diskBytes: NaN,
  };
  const dir = runDir(`memory-${kind}`);
  const started = await startCluster(kind, o, 1, dir, root);
  if (typeof started === 'string') {
    dropDir(dir);
    return { ...blank, skipped: started };
  }
  const cluster = started;
  try {
    const t0 = performance.now();
    let lastPrintedTenth = 0;
    await loadKeys(cluster.endpoints, {
      tlsCa: benchTls?.caPem,
      prefix: 'm',
      count: o.memoryKeys,
      valueBytes: VALUE_BYTES,
      connections: w.connections,
      inFlightPerConnection: Math.max(1, Math.floor(w.concurrency / w.connections)),
      txnOps: TXN_OPS_MAX,
      callTimeoutMs: 120_000,
      onProgress: (n) => {
        const tenth = Math.floor((n * 10) / o.memoryKeys);
        if (tenth > lastPrintedTenth) {
          lastPrintedTenth = tenth;
          console.log(`    ${kind}: ${n} keys in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        }
      },
    });
    const loadMs = performance.now() - t0;
    // Prove the data is there, so the RSS is of a member that really holds it.
    const c = await GrpcConn.connect(cluster.endpoints[0], 5_000, benchTls?.caPem);
    const r = await c.unary(
      KV.methods.Range.path,
      encodeRangeRequest({ key: Buffer.from('m'), range_end: Buffer.from('n'), count_only: true }),
      60_000,
    );
    c.close();
    if (r.grpcStatus !== 0) return { ...blank, skipped: `count failed: grpc-status ${r.grpcStatus} ${r.grpcMessage}` };
    const count = decodeRangeResponse(r.body).count;
    if (count !== o.memoryKeys) return { ...blank, skipped: `member holds ${count} keys, expected ${o.memoryKeys}` };
    // Let background work (backend commit, GC) settle before reading memory.
    await sleep(3_000);
    const mem = memOfTrees(cluster.pids);
    const diskBytes = dirBytes(cluster.members[0].dataDir);
    return {
      server: kind,
      keys: o.memoryKeys,
      loadMs,
      rssBytes: mem.rssBytes,
      peakRssBytes: mem.peakRssBytes,
      anonBytes: mem.anonBytes,
      fileBytes: mem.fileBytes,
      diskBytes,
    };
  } catch (err) {
    return { ...blank, skipped: `failed: ${(err as Error).message}` };
  } finally {
    await stopCluster(cluster);
    dropDir(dir);
  }
}

function findProfiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f));
}

/** The pid in a node --cpu-prof file name (CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile). */
export function profilePid(file: string): number {
  const m = /CPU\.\d+\.\d+\.(\d+)\.\d+\.\d+\.cpuprofile$/.exec(file);
  return m === null ? -1 : Number(m[1]);
}

/** The busiest profile in dir (on 3 members: the leader's) among those `keep` accepts, summarised. */
function busiestProfile(
  dir: string,
  top: number,
  root: string,
  window: TimeWindowUs | undefined,
  keep: (file: string) => boolean = () => true,
): { summary: ProfileSummary; file: string } | undefined {
  let best: { summary: ProfileSummary; file: string } | undefined;
  for (const f of findProfiles(dir)) {
    if (!keep(f)) continue;
    const s = summarize(readCpuProfile(f), top, root, window);
    if (best === undefined || s.busyMs > best.summary.busyMs) best = { summary: s, file: f };
  }
  return best;
}

async function runProfiled(w: Workload, o: BenchOptions, root: string, topN: number): Promise<ProfiledWorkload> {
  const dirOut = join(o.profileDir, w.name);
  const memberDir = join(dirOut, 'member');
  const clientDir = join(dirOut, 'client');
  mkdirSync(memberDir, { recursive: true });
  mkdirSync(clientDir, { recursive: true });
  const s = await runLoadOnce('tetcd', w, 1, o, root, requestsFor(w, 0x7e7cd), { memberDir, clientDir });
  console.log(`  ${w.name.padEnd(18)} tetcd (profiled) ${describe(s)}`);
  const base: ProfiledWorkload = {
    workload: w,
    rps: s.rps,
    p99Ms: s.p99Ms,
    memberLabel: '',
    profileDir: dirOut,
    serverCores: s.serverCores,
    threadCores: s.threadCores ?? [],
  };
  if (s.skipped !== undefined) return { ...base, skipped: s.skipped };
  const window = s.windowUs;
  // With --client-workers the member's client processes write profiles into the same directory.
  const memberPids = new Set(s.memberPids ?? []);
  const isMember = (f: string): boolean => memberPids.size === 0 || memberPids.has(profilePid(f));
  const member = busiestProfile(memberDir, topN, root, window, isMember);
  const client = busiestProfile(clientDir, topN, root, window);
  const clientProcess = busiestProfile(memberDir, topN, root, window, (f) => !isMember(f));
  const nMembers = findProfiles(memberDir).filter(isMember).length;
  const nClientProcesses = findProfiles(memberDir).length - nMembers;
  const label = nMembers > 1 ? `the busiest of ${nMembers} members' profiles, i.e. the leader` : 'the only member';
  return {
    ...base,
    member: member?.summary,
    client: client?.summary,
    memberLabel: label,
    clientProcess: clientProcess?.summary,
    clientProcessLabel: `the busiest of ${nClientProcesses}`,
    ...(member === undefined ? { skipped: 'the member wrote no profile' } : {}),
  };
}

function writeSection(o: BenchOptions, name: string, markdown: string): void {
  const existing = existsSync(o.out) ? readFileSync(o.out, 'utf8') : '';
  if (o.label !== '') {
    name = `${name}-${o.label}`;
    markdown = markdown.replace(/^(## [^\n]*)/, `$1 — ${o.label}`);
  }
  writeFileSync(o.out, spliceSection(existing, name, markdown));
  console.log(`bench: wrote ${o.out} (section ${name})`);
}

async function main(): Promise<void> {
  const root = repoRoot();
  const o = parseOptions(process.argv.slice(2), root);
  keepDirs = o.keep;
  // Fail fast, with the reason, if a server command cannot even print its version (e.g. dist/ not built).
  for (const [name, cmd] of [
    ['tetcd', o.tetcdCmd],
    ['etcd', o.etcdCmd],
  ] as const) {
    const problem = preflight(cmd, root);
    if (problem !== null)
      throw new Error(
        `${name} command \`${cmd.join(' ')}\` does not run: ${problem}${name === 'tetcd' ? ' (build first: npm run build, or pass --tetcd-cmd)' : ''}`,
      );
  }
  if (o.generator === 'go') console.log(`bench: Go generator ${buildEtcdLoad(root, join(root, 'dist', 'bench', 'go'))}`);
  baseDir = mkdtempSync('/tmp/tetcd-bench-');
  installSignalHandlers();
  if (o.tls) {
    const ca = makeCa(baseDir, 'tls-ca');
    const cert = makeCert(ca, 'member', { cn: 'member', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    benchTls = { certFile: cert.cert, keyFile: cert.key, caFile: ca.cert, caPem: readFileSync(ca.cert, 'utf8') };
  }
  const facts: RunFacts = {
    date: new Date()
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, ' UTC'),
    commandLine: ['node', fileURLToPath(import.meta.url).slice(root.length + 1), ...process.argv.slice(2)]
      .map((a) => (/\s/.test(a) ? `"${a}"` : a))
      .join(' '),
    machine: machineFacts(o.etcdCmd),
    rounds: o.rounds,
    durationMs: o.durationMs,
    warmupMs: o.warmupMs,
    clientProcs: o.clientProcs,
    tetcdCmd:
      (o.walWriter === 'js' ? 'TETCD_WAL_ADDON=bench/wal/js-writer.js ' : '') + o.tetcdCmd.join(' ').replace(process.execPath, 'node'),
    etcdCmd: o.etcdCmd.join(' '),
    engine: o.engine,
  };
  console.log(`bench: ${facts.machine}`);
  console.log(
    `bench: workloads ${o.workloads.map((w) => w.name).join(', ')}; ${o.rounds} round(s) × ${o.durationMs} ms (+${o.warmupMs} ms warm-up); temp dir ${baseDir}`,
  );
  const started = performance.now();
  try {
    if (o.profile) {
      const topN = 10;
      const runs: ProfiledWorkload[] = [];
      for (const w of o.workloads) runs.push(await runProfiled(w, o, root, topN));
      writeSection(o, 'bench:profile', renderProfiles(facts, runs, topN));
      console.log(`bench: profiles in ${o.profileDir}`);
      for (const r of runs) {
        if (r.member === undefined) continue;
        console.log(`  ${r.workload.name}: top self time of the member`);
        r.member.functions.forEach((f, i) =>
          console.log(`    ${String(i + 1).padStart(2)}. ${(f.share * 100).toFixed(1).padStart(5)} %  ${f.name}  ${f.where}`),
        );
        if (r.clientProcess !== undefined) {
          console.log(`  ${r.workload.name}: top self time of a client process (${r.clientProcessLabel ?? ''})`);
          r.clientProcess.functions.forEach((f, i) =>
            console.log(`    ${String(i + 1).padStart(2)}. ${(f.share * 100).toFixed(1).padStart(5)} %  ${f.name}  ${f.where}`),
          );
        }
      }
    } else {
      const loads: LoadResult[] = [];
      let ceiling: CeilingResult | undefined;
      const memory: MemoryResult[] = [];
      for (const w of o.workloads) {
        console.log(`bench: ${w.name} — ${w.title}`);
        if (w.kind === 'ceiling') {
          ceiling = await runCeiling(w, o);
          console.log(
            ceiling.skipped !== undefined
              ? `  skipped: ${ceiling.skipped}`
              : `  ${ceiling.rps} req/s, generator ${ceiling.clientCores.toFixed(2)} cores (${ceiling.clientCpuUsPerRequest.toFixed(1)} µs/request), trivial server ${ceiling.serverCores.toFixed(2)} cores`,
          );
        } else if (w.kind === 'memory') {
          for (const kind of ['etcd', 'tetcd'] as const) {
            const m = await runMemoryOnce(kind, w, o, root);
            memory.push(m);
            console.log(
              m.skipped !== undefined
                ? `  ${kind}: skipped: ${m.skipped}`
                : `  ${kind}: ${m.keys} keys loaded in ${(m.loadMs / 1000).toFixed(1)} s, RSS ${Math.round(m.rssBytes / 2 ** 20)} MiB (peak ${Math.round(m.peakRssBytes / 2 ** 20)} MiB), data dir ${Math.round(m.diskBytes / 2 ** 20)} MiB`,
            );
          }
        } else {
          loads.push(await runLoadWorkload(w, o, root));
        }
        // Rewrite after every workload so a long run that is interrupted still leaves numbers behind.
        if (w.kind === 'memory') writeSection(o, 'bench:memory', renderMemory(facts, memory));
        else writeSection(o, 'bench:run', renderRun(facts, loads, ceiling));
      }
    }
  } finally {
    for (const c of live) await c.stop();
    if (!keepDirs) rmSync(baseDir, { recursive: true, force: true });
  }
  console.log(`bench: done in ${((performance.now() - started) / 60_000).toFixed(1)} min`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(`bench: ${err instanceof Error ? err.message : String(err)}`);
    for (const c of live) for (const m of c.members) m.child.kill('SIGKILL');
    process.exit(1);
  },
);
