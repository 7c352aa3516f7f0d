// Watch beside etcd 3.4 (`npm run bench:watch`): one fresh member per server and round, alternating which
// goes first, the same generator for both. Three workloads:
//   fanout    W watchers on one prefix, one put every P ms: latency from the put's acknowledgement to each
//             watcher's delivery (0 when the event arrived first), p50 and p99, and events delivered per second
//   distinct  K watchers on K distinct keys under sustained puts to those keys: events delivered per second
//   idle      N idle watchers on distinct keys: the member's resident memory per watcher
// Watchers share streams (100 per stream) and streams share connections, as clients multiplex them.
// Results: the console and the `watch` section of bench/RESULTS.md (medians over the rounds).
// --variants "off=bin/tetcd;pool100=bin/tetcd --worker-threads 2 --watch-pool-min-watchers 100" runs tetcd
// commands against each other instead of etcd (back to back, the order rotating by round), e.g. the
// worker-thread fan-out on and off; server cores (process CPU / wall time) and the main thread's share
// are measured over each workload's load phase.
import http2 from 'node:http2';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type ServerKind } from '../lib/servers.js';
import { GrpcConn } from '../lib/grpc-client.js';
import { cpuSecondsOfTrees, memOfTrees, threadCpuSeconds } from '../lib/proc.js';
import { spliceSection } from '../lib/results.js';
import { median } from '../lib/stats.js';
import { GrpcMessageSplitter, grpcFrame, openGrpcStream, readVarint } from '../lib/grpc-stream.js';
import { encodePutRequest, encodeWatchRequest } from '../../src/proto/rpc.js';

interface Options {
  rounds: number;
  workloads: string[];
  tetcdCmd: string[];
  etcdCmd: string[];
  label: string;
  fanoutWatchers: number;
  fanoutPutIntervalMs: number;
  durationMs: number;
  distinctWatchers: number;
  idleWatchers: number;
  out: string;
  /** label=command pairs (tetcd only) to compare instead of etcd and tetcd. */
  variants: Array<{ label: string; cmd: string[] }>;
  /**
   * The watch clients' HTTP/2 receive windows (stream and connection); 0 = Node's defaults (64 KiB each).
   * grpc-go grows its windows up to 16 MiB by BDP estimation, so a Go client is closer to a large value.
   */
  clientWindowBytes: number;
}

function options(argv: string[]): Options {
  const o: Options = {
    rounds: 3,
    workloads: ['fanout', 'distinct', 'idle'],
    tetcdCmd: ['bin/tetcd'],
    etcdCmd: ['/usr/bin/etcd'],
    label: '',
    fanoutWatchers: 10_000,
    fanoutPutIntervalMs: 10,
    durationMs: 3000,
    distinctWatchers: 1000,
    idleWatchers: 100_000,
    out: 'bench/RESULTS.md',
    clientWindowBytes: 0,
    variants: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const [k, v] = [argv[i], argv[i + 1]];
    switch (k) {
      case '--rounds':
        o.rounds = Number(v);
        i++;
        break;
      case '--workloads':
        o.workloads = v.split(',');
        i++;
        break;
      case '--tetcd-cmd':
        o.tetcdCmd = v.split(' ');
        i++;
        break;
      case '--etcd-cmd':
        o.etcdCmd = v.split(' ');
        i++;
        break;
      case '--label':
        o.label = v;
        i++;
        break;
      case '--fanout-watchers':
        o.fanoutWatchers = Number(v);
        i++;
        break;
      case '--fanout-put-interval-ms':
        o.fanoutPutIntervalMs = Number(v);
        i++;
        break;
      case '--duration-ms':
        o.durationMs = Number(v);
        i++;
        break;
      case '--distinct-watchers':
        o.distinctWatchers = Number(v);
        i++;
        break;
      case '--idle-watchers':
        o.idleWatchers = Number(v);
        i++;
        break;
      case '--client-window-bytes':
        o.clientWindowBytes = Number(v);
        i++;
        break;
      case '--out':
        o.out = v;
        i++;
        break;
      case '--variants':
        o.variants = v.split(';').map((x) => {
          const eq = x.indexOf('=');
          if (eq <= 0) throw new Error(`--variants: expected label=command, got ${x}`);
          return {
            label: x.slice(0, eq).trim(),
            cmd: x
              .slice(eq + 1)
              .trim()
              .split(/\s+/),
          };
        });
        i++;
        break;
      default:
        throw new Error(`unknown option ${k}`);
    }
  }
  return o;
}

/** What the generator reads of a WatchResponse: the header revision, created, and the number of events. */
interface Seen {
  revision: number;
  created: boolean;
  events: number;
}

function scanWatchResponse(b: Buffer, start: number, end: number, out: Seen): void {
  out.revision = 0;
  out.created = false;
  out.events = 0;
  let p = start;
  while (p < end) {
    let tag: number;
    [tag, p] = readVarint(b, p);
    const field = tag >>> 3;
    if ((tag & 7) === 0) {
      let v: number;
      [v, p] = readVarint(b, p);
      if (field === 3) out.created = v !== 0;
      continue;
    }
    let len: number;
    [len, p] = readVarint(b, p);
    if (field === 1) {
      // ResponseHeader: revision is field 3.
      let q = p;
      while (q < p + len) {
        let t: number;
        [t, q] = readVarint(b, q);
        if ((t & 7) !== 0) {
          let l: number;
          [l, q] = readVarint(b, q);
          q += l;
          continue;
        }
        let v: number;
        [v, q] = readVarint(b, q);
        if (t >>> 3 === 3) out.revision = v;
      }
    } else if (field === 11) {
      out.events++;
    }
    p += len;
  }
}

/** One Watch stream: creates watchers, parses responses as they arrive. */
class WatchStreamClient {
  private readonly splitter = new GrpcMessageSplitter();
  private readonly seen: Seen = { revision: 0, created: false, events: 0 };
  private readonly req: http2.ClientHttp2Stream;

  constructor(
    session: http2.ClientHttp2Session,
    private readonly onResponse: (s: Seen) => void,
  ) {
    this.req = openGrpcStream(session, '/etcdserverpb.Watch/Watch');
    this.req.on('data', (d: Buffer) => this.splitter.push(d, this.onMessage));
  }

  create(key: Uint8Array, rangeEnd?: Uint8Array): void {
    this.req.write(grpcFrame(encodeWatchRequest({ create_request: { key, range_end: rangeEnd } })));
  }

  close(): void {
    this.req.close(http2.constants.NGHTTP2_CANCEL);
  }

  private readonly onMessage = (b: Buffer, start: number, end: number): void => {
    scanWatchResponse(b, start, end, this.seen);
    this.onResponse(this.seen);
  };
}

const WATCHERS_PER_STREAM = 100;
/** --client-window-bytes (set once from the options). */
let clientWindowBytes = 0;
const STREAMS_PER_CONNECTION = 10;

/** Opens enough connections and streams for `keys.length` watchers and creates them; resolves once every one is created. */
async function createWatchers(
  endpoint: string,
  count: number,
  keyOf: (i: number) => [Uint8Array, Uint8Array | undefined],
  onResponse: (s: Seen) => void,
): Promise<{ close(): void }> {
  const sessions: http2.ClientHttp2Session[] = [];
  const streams: WatchStreamClient[] = [];
  let created = 0;
  let allCreated!: () => void;
  const done = new Promise<void>((r) => {
    allCreated = r;
  });
  const handler = (s: Seen): void => {
    if (s.created) {
      if (++created === count) allCreated();
      return;
    }
    onResponse(s);
  };
  for (let i = 0; i < count; i++) {
    if (i % (WATCHERS_PER_STREAM * STREAMS_PER_CONNECTION) === 0) {
      const s =
        clientWindowBytes > 0
          ? http2.connect(`http://${endpoint}`, { settings: { initialWindowSize: clientWindowBytes } })
          : http2.connect(`http://${endpoint}`);
      if (clientWindowBytes > 0) s.once('connect', () => s.setLocalWindowSize(clientWindowBytes));
      s.on('error', () => {});
      sessions.push(s);
    }
    if (i % WATCHERS_PER_STREAM === 0) streams.push(new WatchStreamClient(sessions[sessions.length - 1], handler));
    const [k, e] = keyOf(i);
    streams[streams.length - 1].create(k, e);
  }
  const timer = setTimeout(() => {}, 120_000);
  await done;
  clearTimeout(timer);
  return {
    close: () => {
      for (const st of streams) st.close();
      for (const s of sessions) s.close();
    },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const enc = (s: string): Uint8Array => Buffer.from(s);
const VALUE = Buffer.alloc(256, 'v');

interface FanoutResult {
  p50Ms: number;
  p99Ms: number;
  eventsPerSec: number;
  puts: number;
  /** CPU the generator used, in cores: near 1 means the generator, not the server, bounds the run. */
  generatorCores: number;
  /** CPU the server's processes used (every thread), in cores, and its main threads alone. */
  serverCores: number;
  serverMainCores: number;
}

/** CPU seconds of the servers' processes and of their main threads, for a cores figure over a phase. */
function serverCpu(pids: readonly number[]): { all: number; main: number } {
  let main = 0;
  for (const [name, sec] of threadCpuSeconds(pids)) if (name.includes('(main)')) main += sec;
  return { all: cpuSecondsOfTrees(pids), main };
}

async function fanout(endpoint: string, pids: readonly number[], o: Options): Promise<FanoutResult> {
  const ack = new Map<number, number>();
  const arrivals: number[] = [];
  const arrivalRevs: number[] = [];
  let events = 0;
  const w = await createWatchers(
    endpoint,
    o.fanoutWatchers,
    () => [enc('w/'), enc('w0')],
    (s) => {
      if (s.events === 0) return;
      events += s.events;
      arrivals.push(performance.now());
      arrivalRevs.push(s.revision);
    },
  );
  const conn = await GrpcConn.connect(endpoint, 5000);
  const started = performance.now();
  const cpuAtStart = process.cpuUsage();
  const serverAtStart = serverCpu(pids);
  let puts = 0;
  const pending: Promise<void>[] = [];
  while (performance.now() - started < o.durationMs) {
    const next = started + (puts + 1) * o.fanoutPutIntervalMs;
    pending.push(
      conn.unary('/etcdserverpb.KV/Put', encodePutRequest({ key: enc(`w/${puts % 100}`), value: VALUE }), 10_000).then((r) => {
        if (r.grpcStatus !== 0) return;
        const rev = readRevision(r.body);
        ack.set(rev, performance.now());
      }),
    );
    puts++;
    const wait = next - performance.now();
    if (wait > 0) await sleep(wait);
  }
  await Promise.all(pending);
  const deadline = performance.now() + 10_000;
  while (events < puts * o.fanoutWatchers && performance.now() < deadline) await sleep(50);
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuAtStart);
  const serverAtEnd = serverCpu(pids);
  w.close();
  conn.close();
  const lat: number[] = [];
  for (let i = 0; i < arrivals.length; i++) {
    const a = ack.get(arrivalRevs[i]);
    if (a !== undefined) lat.push(Math.max(0, arrivals[i] - a));
  }
  lat.sort((x, y) => x - y);
  return {
    p50Ms: lat[Math.floor(lat.length * 0.5)] ?? NaN,
    p99Ms: lat[Math.floor(lat.length * 0.99)] ?? NaN,
    eventsPerSec: events / elapsedS,
    puts,
    generatorCores: (cpu.user + cpu.system) / 1e6 / elapsedS,
    serverCores: (serverAtEnd.all - serverAtStart.all) / elapsedS,
    serverMainCores: (serverAtEnd.main - serverAtStart.main) / elapsedS,
  };
}

/** The header revision of a PutResponse. */
function readRevision(body: Buffer): number {
  const s: Seen = { revision: 0, created: false, events: 0 };
  scanWatchResponse(body, 0, body.length, s);
  return s.revision;
}

async function distinct(
  endpoint: string,
  pids: readonly number[],
  o: Options,
): Promise<{ eventsPerSec: number; putsPerSec: number; serverCores: number; serverMainCores: number }> {
  let events = 0;
  const keys = Array.from({ length: o.distinctWatchers }, (_, i) => enc(`d/${i.toString().padStart(6, '0')}`));
  const w = await createWatchers(
    endpoint,
    keys.length,
    (i) => [keys[i], undefined],
    (s) => {
      events += s.events;
    },
  );
  const conns = await Promise.all(Array.from({ length: 10 }, () => GrpcConn.connect(endpoint, 5000)));
  let puts = 0;
  let stop = false;
  const started = performance.now();
  const serverAtStart = serverCpu(pids);
  const eventsAtStart = events;
  const loops = Array.from({ length: 100 }, async (_, i) => {
    const c = conns[i % conns.length];
    let n = i;
    while (!stop) {
      const r = await c.unary('/etcdserverpb.KV/Put', encodePutRequest({ key: keys[n % keys.length], value: VALUE }), 10_000);
      if (r.grpcStatus === 0) puts++;
      n += 100;
    }
  });
  await sleep(o.durationMs);
  stop = true;
  const elapsedS = (performance.now() - started) / 1000;
  const serverAtEnd = serverCpu(pids);
  const got = events - eventsAtStart;
  await Promise.all(loops);
  w.close();
  for (const c of conns) c.close();
  return {
    eventsPerSec: got / elapsedS,
    putsPerSec: puts / elapsedS,
    serverCores: (serverAtEnd.all - serverAtStart.all) / elapsedS,
    serverMainCores: (serverAtEnd.main - serverAtStart.main) / elapsedS,
  };
}

async function idle(
  endpoint: string,
  pids: number[],
  o: Options,
): Promise<{ bytesPerWatcher: number; rssBeforeMiB: number; rssAfterMiB: number }> {
  await sleep(500);
  const before = memOfTrees(pids).rssBytes;
  const w = await createWatchers(
    endpoint,
    o.idleWatchers,
    (i) => [enc(`i/${i}`), undefined],
    () => {},
  );
  await sleep(1000);
  const after = memOfTrees(pids).rssBytes;
  w.close();
  return { bytesPerWatcher: (after - before) / o.idleWatchers, rssBeforeMiB: before / 2 ** 20, rssAfterMiB: after / 2 ** 20 };
}

type Row = Record<string, number>;

/** One server to measure: etcd or tetcd, or a labelled tetcd variant. */
interface Server {
  label: string;
  kind: ServerKind;
  cmd: string[];
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  clientWindowBytes = o.clientWindowBytes;
  const servers: Server[] =
    o.variants.length > 0
      ? o.variants.map((v) => ({ label: v.label, kind: 'tetcd' as const, cmd: v.cmd }))
      : [
          { label: 'etcd', kind: 'etcd', cmd: o.etcdCmd },
          { label: 'tetcd', kind: 'tetcd', cmd: o.tetcdCmd },
        ];
  const base = mkdtempSync('/tmp/tetcd-watch-bench-');
  const results: Record<string, Record<string, Row[]>> = {};
  try {
    for (let round = 0; round < o.rounds; round++) {
      // Who goes first rotates by round.
      const order = servers.map((_, i) => servers[(i + round) % servers.length]);
      for (const workload of o.workloads) {
        for (const server of order) {
          const dir = join(base, `${workload}-${server.label}-${round}`);
          mkdirSync(dir, { recursive: true });
          const cluster = await Cluster.start({
            kind: server.kind,
            cmd: server.cmd,
            cwd: process.cwd(),
            members: 1,
            baseDir: dir,
          });
          try {
            const ep = cluster.endpoints[0];
            let row: Row;
            if (workload === 'fanout') row = { ...(await fanout(ep, cluster.pids, o)) };
            else if (workload === 'distinct') row = { ...(await distinct(ep, cluster.pids, o)) };
            else row = { ...(await idle(ep, cluster.pids, o)) };
            ((results[workload] ??= {})[server.label] ??= []).push(row);
            process.stdout.write(`round ${round + 1} ${workload} ${server.label}: ${JSON.stringify(row)}\n`);
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
  const labels = servers.map((s) => s.label);
  const first = labels[0];
  const variants = o.variants.length > 0;
  const lines = [
    variants
      ? `### Watch: tetcd variants (${o.label ? `${o.label}: ` : ''}${servers.map((s) => `${s.label} = \`${s.cmd.join(' ')}\``).join(', ')})`
      : `### Watch beside etcd 3.4${o.label ? ` (${o.label}: \`${o.tetcdCmd.join(' ')}\`)` : ''}`,
    '',
    `\`npm run bench:watch\`, ${new Date().toISOString().slice(0, 16)} UTC, medians of ${o.rounds} rounds; fanout: ${o.fanoutWatchers} watchers on one prefix, a put every ${o.fanoutPutIntervalMs} ms for ${o.durationMs} ms; distinct: ${o.distinctWatchers} watchers on distinct keys, 100 putters; idle: ${o.idleWatchers} watchers.`,
    '',
    variants
      ? `| workload | measure | ${labels.join(' | ')} | ${labels
          .slice(1)
          .map((l) => `${l}/${first}`)
          .join(' | ')} |`
      : '| workload | measure | etcd | tetcd | tetcd/etcd |',
    `|---|---|${labels.map(() => '---|').join('')}${labels
      .slice(1)
      .map(() => '---|')
      .join('')}`,
  ];
  for (const [workload, byServer] of Object.entries(results)) {
    for (const measure of Object.keys(byServer[first]?.[0] ?? {})) {
      const med = labels.map((l) => median((byServer[l] ?? []).map((r) => r[measure])));
      const ratios = variants ? med.slice(1).map((m) => (m / med[0]).toFixed(2)) : [(med[1] / med[0]).toFixed(2)];
      lines.push(`| ${workload} | ${measure} | ${med.map((m) => m.toFixed(2)).join(' | ')} | ${ratios.join(' | ')} |`);
    }
  }
  const text = lines.join('\n');
  process.stdout.write(`\n${text}\n`);
  const section = o.label ? `watch-${o.label}` : 'watch';
  writeFileSync(o.out, spliceSection(readFileSync(o.out, 'utf8'), section, text));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
