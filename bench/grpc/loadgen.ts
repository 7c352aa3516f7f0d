// A lean gRPC unary load generator on raw node:http2, spread over child processes so the client side
// is not the bottleneck: one pre-encoded request body, C concurrent calls over N connections for a
// fixed time. Prints requests/s and latency percentiles as JSON. Reusable for any unary method:
//
//   node dist/bench/grpc/loadgen.js --target 127.0.0.1:2379 --path /etcdserverpb.KV/Put \
//     --body-hex 0a03666f6f120362617a --connections 100 --concurrency 1000 --duration-ms 10000 --workers 2
//
// or from code: `const result = await runLoad({ target, path, body, connections, concurrency, durationMs })`.
import { fork } from 'node:child_process';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

/** What to run. */
export interface LoadOptions {
  /** host:port */
  target: string;
  /** gRPC method path, e.g. /etcdserverpb.KV/Range */
  path: string;
  /** The request message, already protobuf-encoded (without the 5-byte gRPC prefix). */
  body: Uint8Array;
  connections: number;
  /** Calls in flight at any moment, over all connections and workers. */
  concurrency: number;
  durationMs: number;
  /** Run this long before measuring (connections warm, JIT settled). Default 1000. */
  warmupMs?: number;
  /** Child processes generating load. Default 2. */
  workers?: number;
  /** Extra request headers (metadata), e.g. { token: '...' }. */
  metadata?: Record<string, string>;
}

/** What came out. Latencies in milliseconds. */
export interface LoadResult {
  requests: number;
  errors: number;
  rps: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  /** Count per grpc-status (and 'rst'/'http-<status>' for transport failures). */
  statuses: Record<string, number>;
  connections: number;
  concurrency: number;
  workers: number;
  durationMs: number;
}

// Latency histogram: 1 µs buckets below 1 ms, then 1 % wide buckets up to ~100 s.
const LINEAR_US = 1000;
const LOG_STEP = Math.log(1.01);
const BUCKETS = LINEAR_US + Math.ceil(Math.log(100_000_000 / LINEAR_US) / LOG_STEP) + 1;

function bucketOf(us: number): number {
  if (us < LINEAR_US) return Math.max(0, Math.floor(us));
  return Math.min(BUCKETS - 1, LINEAR_US + Math.floor(Math.log(us / LINEAR_US) / LOG_STEP));
}

function bucketUpperUs(b: number): number {
  if (b < LINEAR_US) return b + 1;
  return LINEAR_US * Math.exp((b - LINEAR_US + 1) * LOG_STEP);
}

interface WorkerJob {
  target: string;
  path: string;
  bodyHex: string;
  connections: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  metadata: Record<string, string>;
}

interface WorkerReport {
  counts: number[];
  ok: number;
  errors: number;
  sumUs: number;
  maxUs: number;
  statuses: Record<string, number>;
}

// ---- worker side ----

interface Lane {
  session: ClientHttp2Session;
  startMs: number;
  status: string;
}

const kLane = Symbol('lane');
type LaneStream = ClientHttp2Stream & { [kLane]?: Lane };

async function runWorker(job: WorkerJob): Promise<WorkerReport> {
  const body = Buffer.from(job.bodyHex, 'hex');
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  const headers: OutgoingHttpHeaders = {
    ':method': 'POST', ':path': job.path, 'content-type': 'application/grpc', te: 'trailers', ...job.metadata,
  };
  const sessions: ClientHttp2Session[] = [];
  for (let i = 0; i < job.connections; i++) {
    const s = http2.connect(`http://${job.target}`, { settings: { initialWindowSize: 1 << 20 } });
    s.on('error', () => {});
    await new Promise<void>((resolve, reject) => { s.once('connect', () => resolve()); s.once('error', reject); });
    sessions.push(s);
  }
  const counts = new Array<number>(BUCKETS).fill(0);
  const report: WorkerReport = { counts, ok: 0, errors: 0, sumUs: 0, maxUs: 0, statuses: {} };
  const t0 = performance.now();
  const measureFrom = t0 + job.warmupMs;
  const measureUntil = measureFrom + job.durationMs;
  let inFlight = 0;
  let allDone: (() => void) | undefined;

  const issue = (lane: Lane): void => {
    const req = lane.session.request(headers) as LaneStream;
    req[kLane] = lane;
    lane.startMs = performance.now();
    lane.status = '';
    inFlight++;
    req.on('response', onResponse);
    req.on('trailers', onTrailers);
    req.on('close', onClose);
    req.on('error', noop);
    req.resume();
    req.end(frame);
  };
  function onResponse(this: LaneStream, h: IncomingHttpHeaders): void {
    const lane = this[kLane]!;
    if (Number(h[':status']) !== 200) lane.status = `http-${h[':status']}`;
    else if (h['grpc-status'] !== undefined) lane.status = String(h['grpc-status']);
  }
  function onTrailers(this: LaneStream, t: IncomingHttpHeaders): void {
    const lane = this[kLane]!;
    if (lane.status === '' && t['grpc-status'] !== undefined) lane.status = String(t['grpc-status']);
  }
  function onClose(this: LaneStream): void {
    const lane = this[kLane]!;
    inFlight--;
    const now = performance.now();
    const status = lane.status === '' ? 'rst' : lane.status;
    if (lane.startMs >= measureFrom && now <= measureUntil) {
      report.statuses[status] = (report.statuses[status] ?? 0) + 1;
      if (status === '0') {
        const us = (now - lane.startMs) * 1000;
        counts[bucketOf(us)]++;
        report.ok++;
        report.sumUs += us;
        if (us > report.maxUs) report.maxUs = us;
      } else {
        report.errors++;
      }
    }
    if (now < measureUntil && !lane.session.destroyed) issue(lane);
    else if (inFlight === 0 && allDone !== undefined) allDone();
  }

  const done = new Promise<void>((resolve) => { allDone = resolve; });
  for (let i = 0; i < job.concurrency; i++) {
    issue({ session: sessions[i % sessions.length], startMs: 0, status: '' });
  }
  const guard = setTimeout(() => allDone?.(), job.warmupMs + job.durationMs + 10_000);
  await done;
  clearTimeout(guard);
  for (const s of sessions) s.destroy();
  return report;
}

function noop(): void {}

// ---- coordinator side ----

/** Runs the load in child processes and merges their histograms. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const workers = Math.max(1, Math.min(options.workers ?? 2, options.connections, options.concurrency));
  if (options.concurrency < options.connections) throw new RangeError('loadgen: concurrency must be >= connections');
  const warmupMs = options.warmupMs ?? 1000;
  const jobs: WorkerJob[] = [];
  for (let w = 0; w < workers; w++) {
    const share = (total: number): number => Math.floor(total / workers) + (w < total % workers ? 1 : 0);
    jobs.push({
      target: options.target, path: options.path, bodyHex: Buffer.from(options.body).toString('hex'),
      connections: share(options.connections), concurrency: share(options.concurrency),
      warmupMs, durationMs: options.durationMs, metadata: options.metadata ?? {},
    });
  }
  const self = fileURLToPath(import.meta.url);
  const reports = await Promise.all(jobs.map((job) => new Promise<WorkerReport>((resolve, reject) => {
    const child = fork(self, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let got: WorkerReport | undefined;
    child.on('message', (m) => { got = m as WorkerReport; });
    child.on('exit', (code) => (got !== undefined ? resolve(got) : reject(new Error(`loadgen worker exited with ${code}`))));
    child.send(job);
  })));
  const counts = new Array<number>(BUCKETS).fill(0);
  let ok = 0, errors = 0, sumUs = 0, maxUs = 0;
  const statuses: Record<string, number> = {};
  for (const r of reports) {
    for (let i = 0; i < BUCKETS; i++) counts[i] += r.counts[i];
    ok += r.ok; errors += r.errors; sumUs += r.sumUs; maxUs = Math.max(maxUs, r.maxUs);
    for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
  }
  const pct = (p: number): number => {
    const want = Math.ceil(ok * p);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += counts[i];
      if (seen >= want && want > 0) return round(bucketUpperUs(i) / 1000);
    }
    return 0;
  };
  return {
    requests: ok, errors, rps: Math.round(ok / (options.durationMs / 1000)),
    latencyMs: { mean: ok > 0 ? round(sumUs / ok / 1000) : 0, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), max: round(maxUs / 1000) },
    statuses, connections: options.connections, concurrency: options.concurrency, workers, durationMs: options.durationMs,
  };
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

function parseArgs(argv: string[]): LoadOptions {
  const get = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const need = (name: string): string => {
    const v = get(name);
    if (v === undefined) throw new Error(`loadgen: --${name} is required`);
    return v;
  };
  const bodyHex = get('body-hex');
  const bodyFile = get('body-file');
  const metadata: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--metadata') {
      const [k, ...v] = argv[i + 1].split('=');
      metadata[k.toLowerCase()] = v.join('=');
    }
  }
  return {
    target: need('target'),
    path: need('path'),
    body: bodyFile !== undefined ? readFileSync(bodyFile) : Buffer.from(bodyHex ?? '', 'hex'),
    connections: Number(get('connections') ?? 1),
    concurrency: Number(get('concurrency') ?? 1),
    durationMs: Number(get('duration-ms') ?? 5000),
    warmupMs: Number(get('warmup-ms') ?? 1000),
    workers: Number(get('workers') ?? 2),
    metadata,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--worker')) {
    process.once('message', (job) => {
      void runWorker(job as WorkerJob).then((report) => {
        process.send!(report, () => process.exit(0));
      }, (err: unknown) => {
        console.error('loadgen worker:', err);
        process.exit(1);
      });
    });
  } else {
    const result = await runLoad(parseArgs(process.argv.slice(2)));
    console.log(JSON.stringify(result));
  }
}
