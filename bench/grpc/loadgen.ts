// A lean gRPC unary load generator, spread over child processes so the client side is not the
// bottleneck: pre-encoded request bodies (one, or many rotated), C concurrent calls over N connections
// (to one or several targets) for a fixed time, on a bare-socket HTTP/2 client (bench/lib/h2-raw.ts) or
// on node:http2. Prints requests/s, latency percentiles and the generator's own CPU use as JSON.
// Reusable for any unary method:
//
//   node dist/bench/grpc/loadgen.js --target 127.0.0.1:2379[,127.0.0.1:22379] --path /etcdserverpb.KV/Put \
//     --body-hex 0a03666f6f120362617a --connections 100 --concurrency 1000 --duration-ms 10000 --workers 2 \
//     [--engine raw|http2] [--put-keys N (instead of a body: the bench's puts over N keys)]
//
// or from code: `const result = await runLoad({ target, path, body, connections, concurrency, durationMs })`.
import { fork } from 'node:child_process';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { RawH2Connection, frameBody, RAW_BODY_BYTES_MAX, type RawLane, type RawCallSink } from '../lib/h2-raw.js';
import { putBodies, PUT_BODIES } from '../lib/workloads.js';

/** What to run. */
export interface LoadOptions {
  /** host:port */
  target: string;
  /** Several host:port; connection i goes to targets[i % length] (like etcd's benchmark spreading clients over endpoints). Overrides target. */
  targets?: readonly string[];
  /** gRPC method path, e.g. /etcdserverpb.KV/Range */
  path: string;
  /** The request message, already protobuf-encoded (without the 5-byte gRPC prefix). Ignored when bodies is given. */
  body?: Uint8Array;
  /** Several encoded requests, sent in rotation (each worker starts at a different offset), e.g. puts over a key space. */
  bodies?: readonly Uint8Array[];
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
  /** TLS to the targets (ALPN h2), verifying them with this CA's PEM; cleartext without. */
  tlsCa?: string;
  /** Write a V8 CPU profile of each worker process into this directory (node --cpu-prof). */
  cpuProfDir?: string;
  /** 'raw' (default): the lean HTTP/2 client of bench/lib/h2-raw.ts; 'http2': node:http2 (several times the CPU per call). */
  engine?: LoadEngine;
  /** Called (in this process) when the measured window opens and closes, e.g. to sample the server's CPU. */
  onMeasureStart?: () => void;
  onMeasureEnd?: () => void;
}

/** Which HTTP/2 client the workers use. */
export type LoadEngine = 'raw' | 'http2';

/** What came out. Latencies in milliseconds. */
export interface LoadResult {
  requests: number;
  errors: number;
  rps: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  /** Count per grpc-status (and 'rst'/'http-<status>' for transport failures). */
  statuses: Record<string, number>;
  /** One grpc-message per failed status, e.g. { '2': 'etcdserver: request timed out' }. */
  errorMessages: Record<string, string>;
  connections: number;
  concurrency: number;
  workers: number;
  durationMs: number;
  engine: LoadEngine;
  /** CPU used by the generator's worker processes over the measured window, in cores (1 = one core busy). */
  clientCpuCores: number;
  /** Generator CPU per completed request, in microseconds. */
  clientCpuUsPerRequest: number;
}

/** Error messages are samples for a report line, not logs. */
const ERROR_MESSAGE_CHARS_MAX = 300;

/** Upper bound on distinct pre-encoded bodies: they are all copied to every worker. */
export const BODIES_MAX = 65_536;

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
  engine: LoadEngine;
  targets: string[];
  path: string;
  bodies: Uint8Array[];
  /** Index of the first body this worker sends. */
  bodyOffset: number;
  connections: number;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  metadata: Record<string, string>;
  tlsCa: string | undefined;
}

interface WorkerReport {
  counts: number[];
  ok: number;
  errors: number;
  sumUs: number;
  maxUs: number;
  statuses: Record<string, number>;
  errorMessages: Record<string, string>;
  /** Worker CPU (user + system) over the measured window. */
  cpuUs: number;
}

/** Coordinator → worker after every worker has connected: start now. */
interface GoMessage {
  go: true;
}
/** Worker → coordinator once its connections are up. */
interface ReadyMessage {
  ready: true;
}

// ---- worker side ----

/** Counts calls into the histogram when they fall in the measured window; knows when to stop. */
class Meter {
  readonly report: WorkerReport;
  readonly measureFrom: number;
  readonly measureUntil: number;
  inFlight = 0;
  private allDone: (() => void) | undefined;
  readonly done: Promise<void>;

  constructor(warmupMs: number, durationMs: number) {
    this.report = {
      counts: new Array<number>(BUCKETS).fill(0),
      ok: 0,
      errors: 0,
      sumUs: 0,
      maxUs: 0,
      statuses: {},
      errorMessages: {},
      cpuUs: 0,
    };
    this.measureFrom = performance.now() + warmupMs;
    this.measureUntil = this.measureFrom + durationMs;
    this.done = new Promise<void>((resolve) => {
      this.allDone = resolve;
    });
  }

  /** Records one finished call; returns whether its lane should issue another. */
  finished(startMs: number, rawStatus: string, message: string): boolean {
    this.inFlight--;
    const now = performance.now();
    const status = rawStatus === '' ? 'rst' : rawStatus;
    const r = this.report;
    if (startMs >= this.measureFrom && now <= this.measureUntil) {
      r.statuses[status] = (r.statuses[status] ?? 0) + 1;
      if (status === '0') {
        const us = (now - startMs) * 1000;
        r.counts[bucketOf(us)]++;
        r.ok++;
        r.sumUs += us;
        if (us > r.maxUs) r.maxUs = us;
      } else {
        r.errors++;
        if (r.errorMessages[status] === undefined) r.errorMessages[status] = message.slice(0, ERROR_MESSAGE_CHARS_MAX);
      }
    }
    if (now < this.measureUntil) return true;
    if (this.inFlight === 0) this.allDone!();
    return false;
  }

  /** A lane that cannot continue (its connection is gone): end if it was the last. */
  laneStopped(): void {
    if (this.inFlight === 0) this.allDone!();
  }

  forceDone(): void {
    this.allDone!();
  }
}

/** A connected call engine: start() issues job.concurrency calls and keeps them going; close() drops the connections. */
interface Engine {
  start(meter: Meter): void;
  close(): void;
}

/** Calls through node:http2 (the reference engine; it costs several times the raw engine's CPU per call). */
async function connectHttp2(job: WorkerJob): Promise<Engine> {
  const frames = frameAll(job.bodies);
  let nextFrame = job.bodyOffset % frames.length;
  const headers: OutgoingHttpHeaders = {
    ':method': 'POST',
    ':path': job.path,
    'content-type': 'application/grpc',
    te: 'trailers',
    ...job.metadata,
  };
  interface Lane {
    session: ClientHttp2Session;
    startMs: number;
    status: string;
    message: string;
  }
  const kLane = Symbol('lane');
  type LaneStream = ClientHttp2Stream & { [kLane]?: Lane };
  const sessions: ClientHttp2Session[] = [];
  for (let i = 0; i < job.connections; i++) {
    const scheme = job.tlsCa === undefined ? 'http' : 'https';
    const s = http2.connect(`${scheme}://${job.targets[i % job.targets.length]}`, {
      settings: { initialWindowSize: 1 << 20 },
      ...(job.tlsCa === undefined ? {} : { ca: job.tlsCa }),
    });
    s.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('error', reject);
    });
    sessions.push(s);
  }
  let meter!: Meter;
  const issue = (lane: Lane): void => {
    const req = lane.session.request(headers) as LaneStream;
    req[kLane] = lane;
    lane.startMs = performance.now();
    lane.status = '';
    lane.message = '';
    meter.inFlight++;
    req.on('response', onResponse);
    req.on('trailers', onTrailers);
    req.on('close', onClose);
    req.on('error', noop);
    req.resume();
    req.end(frames[nextFrame]);
    if (++nextFrame === frames.length) nextFrame = 0;
  };
  function onResponse(this: LaneStream, h: IncomingHttpHeaders): void {
    const lane = this[kLane]!;
    if (Number(h[':status']) !== 200) lane.status = `http-${h[':status']}`;
    else if (h['grpc-status'] !== undefined) lane.status = String(h['grpc-status']);
    if (h['grpc-message'] !== undefined) lane.message = String(h['grpc-message']);
  }
  function onTrailers(this: LaneStream, t: IncomingHttpHeaders): void {
    const lane = this[kLane]!;
    if (lane.status === '' && t['grpc-status'] !== undefined) lane.status = String(t['grpc-status']);
    if (t['grpc-message'] !== undefined) lane.message = String(t['grpc-message']);
  }
  function onClose(this: LaneStream): void {
    const lane = this[kLane]!;
    if (meter.finished(lane.startMs, lane.status, lane.message)) {
      if (!lane.session.destroyed) issue(lane);
      else meter.laneStopped();
    }
  }
  return {
    start(m: Meter): void {
      meter = m;
      for (let i = 0; i < job.concurrency; i++) issue({ session: sessions[i % sessions.length], startMs: 0, status: '', message: '' });
    },
    close(): void {
      for (const s of sessions) s.destroy();
    },
  };
}

interface RawTimedLane extends RawLane {
  startMs: number;
}

/** Calls through the raw HTTP/2 client (bench/lib/h2-raw.ts): pre-framed requests, one write per turn. */
async function connectRaw(job: WorkerJob): Promise<Engine> {
  const bodies = job.bodies.map(frameBody);
  let nextBody = job.bodyOffset % bodies.length;
  let meter!: Meter;
  const issue = (lane: RawTimedLane): void => {
    lane.startMs = performance.now();
    lane.bodyIndex = nextBody;
    if (++nextBody === bodies.length) nextBody = 0;
    meter.inFlight++;
    lane.conn.call(lane);
  };
  const sink: RawCallSink<RawTimedLane> = {
    callEnded(lane: RawTimedLane): void {
      if (meter.finished(lane.startMs, lane.status, lane.message)) {
        if (lane.conn.usable) issue(lane);
        else meter.laneStopped();
      }
    },
  };
  const conns: RawH2Connection<RawTimedLane>[] = [];
  for (let i = 0; i < job.connections; i++) {
    const target = job.targets[i % job.targets.length];
    conns.push(
      await RawH2Connection.connect<RawTimedLane>(
        { target, path: job.path, metadata: job.metadata, bodies, connectTimeoutMs: 10_000, tlsCa: job.tlsCa },
        sink,
      ),
    );
  }
  return {
    start(m: Meter): void {
      meter = m;
      for (let i = 0; i < job.concurrency; i++)
        issue({ conn: conns[i % conns.length], bodyIndex: 0, streamId: 0, status: '', message: '', startMs: 0 });
    },
    close(): void {
      for (const c of conns) c.destroy();
    },
  };
}

/** All bodies framed (5-byte gRPC prefix) into one buffer; the frames are views into it. */
function frameAll(bodies: readonly Uint8Array[]): Buffer[] {
  let total = 0;
  for (const b of bodies) total += 5 + b.length;
  const all = Buffer.alloc(total);
  const frames: Buffer[] = [];
  let at = 0;
  for (const b of bodies) {
    all.writeUInt32BE(b.length, at + 1);
    all.set(b, at + 5);
    frames.push(all.subarray(at, at + 5 + b.length));
    at += 5 + b.length;
  }
  return frames;
}

async function runWorker(job: WorkerJob, waitGo: () => Promise<void>): Promise<WorkerReport> {
  const engine = job.engine === 'raw' ? await connectRaw(job) : await connectHttp2(job);
  // The clock starts when the coordinator says go, after every worker has connected.
  await waitGo();
  const meter = new Meter(job.warmupMs, job.durationMs);
  // CPU over the measured window; if the last call ends before the end timer fires, the end is taken then.
  let cpuAtStart: NodeJS.CpuUsage | undefined;
  let cpuTaken = false;
  const takeCpu = (): void => {
    if (cpuTaken || cpuAtStart === undefined) return;
    cpuTaken = true;
    const d = process.cpuUsage(cpuAtStart);
    meter.report.cpuUs = d.user + d.system;
  };
  const cpuStartTimer = setTimeout(
    () => {
      cpuAtStart = process.cpuUsage();
    },
    Math.max(0, meter.measureFrom - performance.now()),
  );
  const cpuEndTimer = setTimeout(takeCpu, Math.max(0, meter.measureUntil - performance.now()));
  const guard = setTimeout(() => meter.forceDone(), job.warmupMs + job.durationMs + 10_000);
  engine.start(meter);
  await meter.done;
  takeCpu();
  clearTimeout(guard);
  clearTimeout(cpuStartTimer);
  clearTimeout(cpuEndTimer);
  engine.close();
  return meter.report;
}

function noop(): void {}

// ---- coordinator side ----

/** Runs the load in child processes and merges their histograms. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const workers = Math.max(1, Math.min(options.workers ?? 2, options.connections, options.concurrency));
  if (options.concurrency < options.connections) throw new RangeError('loadgen: concurrency must be >= connections');
  const warmupMs = options.warmupMs ?? 1000;
  const bodies = options.bodies !== undefined ? [...options.bodies] : options.body !== undefined ? [options.body] : [];
  if (bodies.length === 0) throw new RangeError('loadgen: body or bodies is required');
  if (bodies.length > BODIES_MAX) throw new RangeError(`loadgen: at most ${BODIES_MAX} bodies`);
  const targets = options.targets !== undefined && options.targets.length > 0 ? [...options.targets] : [options.target];
  const engine: LoadEngine = options.engine ?? 'raw';
  if (engine === 'raw')
    for (const b of bodies)
      if (b.length > RAW_BODY_BYTES_MAX) throw new RangeError(`loadgen: raw engine bodies are at most ${RAW_BODY_BYTES_MAX} B`);
  const jobs: WorkerJob[] = [];
  for (let w = 0; w < workers; w++) {
    const share = (total: number): number => Math.floor(total / workers) + (w < total % workers ? 1 : 0);
    // Each worker's first connection continues the global round-robin over targets.
    const firstConn = w * Math.floor(options.connections / workers) + Math.min(w, options.connections % workers);
    const rotated = targets.map((_, i) => targets[(firstConn + i) % targets.length]);
    jobs.push({
      engine,
      targets: rotated,
      path: options.path,
      bodies,
      bodyOffset: Math.floor((w * bodies.length) / workers),
      connections: share(options.connections),
      concurrency: share(options.concurrency),
      warmupMs,
      durationMs: options.durationMs,
      metadata: options.metadata ?? {},
      tlsCa: options.tlsCa,
    });
  }
  const self = fileURLToPath(import.meta.url);
  const execArgv = options.cpuProfDir !== undefined ? ['--cpu-prof', '--cpu-prof-dir', options.cpuProfDir] : [];
  const children = jobs.map(() =>
    fork(self, ['--worker'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced', execArgv }),
  );
  let readyCount = 0;
  let measureTimers: NodeJS.Timeout[] = [];
  const startAll = (): void => {
    for (const c of children) c.send({ go: true } satisfies GoMessage);
    if (options.onMeasureStart !== undefined) measureTimers.push(setTimeout(options.onMeasureStart, warmupMs));
    if (options.onMeasureEnd !== undefined) measureTimers.push(setTimeout(options.onMeasureEnd, warmupMs + options.durationMs));
  };
  let reports: WorkerReport[];
  try {
    reports = await Promise.all(
      children.map(
        (child, w) =>
          new Promise<WorkerReport>((resolve, reject) => {
            let got: WorkerReport | undefined;
            child.on('message', (m: WorkerReport | ReadyMessage) => {
              if ('ready' in m) {
                if (++readyCount === children.length) startAll();
              } else {
                got = m;
              }
            });
            child.on('exit', (code) => (got !== undefined ? resolve(got) : reject(new Error(`loadgen worker exited with ${code}`))));
            child.send(jobs[w]);
          }),
      ),
    );
  } catch (err) {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    throw err;
  } finally {
    for (const t of measureTimers) clearTimeout(t);
    measureTimers = [];
  }
  const counts = new Array<number>(BUCKETS).fill(0);
  let ok = 0,
    errors = 0,
    sumUs = 0,
    maxUs = 0,
    cpuUs = 0;
  const statuses: Record<string, number> = {};
  const errorMessages: Record<string, string> = {};
  for (const r of reports) {
    for (const [k, v] of Object.entries(r.errorMessages))
      if (errorMessages[k] === undefined || errorMessages[k] === '') errorMessages[k] = decodeGrpcMessage(v);
    for (let i = 0; i < BUCKETS; i++) counts[i] += r.counts[i];
    ok += r.ok;
    errors += r.errors;
    sumUs += r.sumUs;
    maxUs = Math.max(maxUs, r.maxUs);
    cpuUs += r.cpuUs;
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
    requests: ok,
    errors,
    rps: Math.round(ok / (options.durationMs / 1000)),
    latencyMs: { mean: ok > 0 ? round(sumUs / ok / 1000) : 0, p50: pct(0.5), p90: pct(0.9), p99: pct(0.99), max: round(maxUs / 1000) },
    statuses,
    errorMessages,
    connections: options.connections,
    concurrency: options.concurrency,
    workers,
    durationMs: options.durationMs,
    engine,
    clientCpuCores: round(cpuUs / (options.durationMs * 1000)),
    clientCpuUsPerRequest: ok > 0 ? round(cpuUs / ok) : 0,
  };
}

/** grpc-message is percent-encoded on the wire. */
function decodeGrpcMessage(m: string): string {
  try {
    return decodeURIComponent(m);
  } catch {
    return m;
  }
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
  const target = need('target');
  const putKeys = get('put-keys');
  if (putKeys !== undefined && !(Number.isInteger(Number(putKeys)) && Number(putKeys) >= 1))
    throw new Error(`loadgen: --put-keys wants a key count >= 1, got ${putKeys}`);
  return {
    target: target.split(',')[0],
    targets: target.split(','),
    path: need('path'),
    body: bodyFile !== undefined ? readFileSync(bodyFile) : Buffer.from(bodyHex ?? '', 'hex'),
    // The bench's put workloads: keys drawn from N, 256 B values (bench/lib/workloads.ts).
    bodies: putKeys !== undefined ? putBodies(PUT_BODIES, Number(putKeys), 1) : undefined,
    connections: Number(get('connections') ?? 1),
    concurrency: Number(get('concurrency') ?? 1),
    durationMs: Number(get('duration-ms') ?? 5000),
    warmupMs: Number(get('warmup-ms') ?? 1000),
    workers: Number(get('workers') ?? 2),
    engine: get('engine') === 'http2' ? 'http2' : 'raw',
    metadata,
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--worker')) {
    let go: (() => void) | undefined;
    const gotGo = new Promise<void>((resolve) => {
      go = resolve;
    });
    const waitGo = (): Promise<void> => {
      process.send!({ ready: true } satisfies ReadyMessage);
      return gotGo;
    };
    let job: WorkerJob | undefined;
    process.on('message', (m: WorkerJob | GoMessage) => {
      if ('go' in m) {
        go!();
        return;
      }
      if (job !== undefined) return;
      job = m;
      void runWorker(job, waitGo).then(
        (report) => {
          process.send!(report, () => process.exit(0));
        },
        (err: unknown) => {
          console.error('loadgen worker:', err);
          process.exit(1);
        },
      );
    });
  } else {
    const result = await runLoad(parseArgs(process.argv.slice(2)));
    console.log(JSON.stringify(result));
  }
}
