// What metrics cost the put path: put throughput of tetcd variants started one after another, round by
// round (alternating, so drift of the shared machine hits all alike), with bench's put workload and load
// generator. The baseline is a build of tetcd without this metrics work (--base-cmd), beside the current
// one, the current one with --metrics extensive, and the current one scraped once a second (a Prometheus
// scraping ten times more often than its 15 s default). Medians and ratios to the baseline are printed
// as a markdown table for bench/RESULTS.md.
//   node dist/bench/obs/put-cost.js --base-cmd "node /tmp/base/bin/tetcd" [--rounds 5] [--duration-ms 5000]
//     [--workload put-1000] [--profile-dir DIR]
// --profile-dir instead runs the current build once under node's CPU profiler (--profile-metrics extensive,
// --profile-scrape-ms 1000 by default) and prints the share of the member's busy time spent in metrics and logging code: a share
// of CPU samples, which the machine's other load does not skew the way it skews throughput.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import { runLoad, type LoadResult } from '../grpc/loadgen.js';
import { Cluster } from '../lib/servers.js';
import { cpuSecondsOfTrees } from '../lib/proc.js';
import { readCpuProfile, summarize, monotonicNowUs, type TimeWindowUs } from '../lib/cpuprofile.js';
import { readdirSync } from 'node:fs';
import { WORKLOADS, putBodies, PUT_BODIES, PUT_KEY_SPACE } from '../lib/workloads.js';

const args = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const rounds = Number(arg('rounds', '5'));
const durationMs = Number(arg('duration-ms', '5000'));
const workloadName = arg('workload', 'put-1000');
const baseCmd = arg('base-cmd', '').split(' ').filter(Boolean);
// bin/tetcd itself (not node bin/tetcd): its shebang carries the node flags the member runs with.
const current = [join(root, 'bin', 'tetcd')];

interface Variant {
  name: string;
  cmd: string[];
  scrapeEveryMs?: number;
}
const variants: Variant[] = [
  ...(baseCmd.length > 0 ? [{ name: 'baseline (before the metrics work)', cmd: baseCmd }] : []),
  { name: 'metrics basic (default)', cmd: current },
  { name: 'metrics extensive', cmd: [...current, '--metrics', 'extensive'] },
  { name: 'metrics basic, scraped every 1 s', cmd: current, scrapeEveryMs: 1000 },
];

const workload = WORKLOADS.find((w) => w.name === workloadName);
if (workload === undefined || workload.kind !== 'load' || workload.method !== 'put') throw new Error(`not a put workload: ${workloadName}`);
const bodies = putBodies(PUT_BODIES, PUT_KEY_SPACE, 0x7e7cd);

function scrape(port: number): Promise<void> {
  return new Promise((res) => {
    http
      .get(`http://127.0.0.1:${port}/metrics`, (r) => {
        r.resume();
        r.on('end', () => res());
      })
      .on('error', () => res());
  });
}

interface Sample {
  load: LoadResult;
  /** The member's CPU (all its threads and child processes) per put, in microseconds. */
  cpuUsPerPut: number;
  /** The measured window on the profiles' clock. */
  window: TimeWindowUs;
}

async function once(v: Variant, cpuProfDir?: string): Promise<Sample> {
  const baseDir = mkdtempSync(join(tmpdir(), 'tetcd-put-cost-'));
  const cluster = await Cluster.start({ kind: 'tetcd', cmd: v.cmd, cwd: root, members: 1, baseDir, cpuProfDir });
  let scraper: NodeJS.Timeout | undefined;
  try {
    if (v.scrapeEveryMs !== undefined) {
      const port = cluster.members[0].clientPort;
      scraper = setInterval(() => void scrape(port), v.scrapeEveryMs);
    }
    let cpu0 = 0;
    let cpu1 = 0;
    const window: TimeWindowUs = { fromUs: 0, toUs: 0 };
    const load = await runLoad({
      onMeasureStart: () => {
        cpu0 = cpuSecondsOfTrees(cluster.pids);
        window.fromUs = monotonicNowUs();
      },
      onMeasureEnd: () => {
        cpu1 = cpuSecondsOfTrees(cluster.pids);
        window.toUs = monotonicNowUs();
      },
      target: cluster.endpoints[0],
      path: '/etcdserverpb.KV/Put',
      bodies,
      connections: workload!.connections,
      concurrency: workload!.concurrency,
      durationMs,
      warmupMs: 1000,
    });
    return { load, cpuUsPerPut: ((cpu1 - cpu0) * 1e6) / Math.max(1, load.requests), window };
  } finally {
    if (scraper !== undefined) clearInterval(scraper);
    await cluster.stop();
    rmSync(baseDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const profileDir = arg('profile-dir', '');
if (profileDir !== '') {
  const level = arg('profile-metrics', 'extensive');
  const scrapeMs = Number(arg('profile-scrape-ms', '1000'));
  const res = await once(
    { name: 'profiled', cmd: [...current, '--metrics', level], scrapeEveryMs: scrapeMs > 0 ? scrapeMs : undefined },
    profileDir,
  );
  const file = readdirSync(profileDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no profile in ${profileDir}`);
  // Only the measured window: not start-up (loading prom-client and pino), warm-up or shutdown.
  const sum = summarize(readCpuProfile(join(profileDir, file)), 100_000, root, res.window);
  const isObs = (where: string) => /src\/metrics\.js|src\/log\.js|src\/api\/http\.js|prom-client|pino|sonic-boom|perf_hooks/.test(where);
  const obsFiles = sum.files.filter((f) => isObs(f.name));
  const handled = sum.functions.filter((f) => f.name === '_handled');
  const share = (xs: { share: number }[]) => xs.reduce((n, x) => n + x.share, 0);
  const scraped = scrapeMs > 0 ? `scraped every ${scrapeMs} ms` : 'not scraped';
  console.log(
    `profiled ${workload.name}, --metrics ${level}, ${scraped}: ${res.load.rps.toFixed(0)} req/s, busy ${sum.busyMs.toFixed(0)} ms`,
  );
  for (const f of [...obsFiles, ...handled]) console.log(`  ${(f.share * 100).toFixed(2)} %  ${f.name} ${f.where}`);
  console.log(`metrics and logging code: ${((share(obsFiles) + share(handled)) * 100).toFixed(2)} % of the member's busy time`);
  process.exit(0);
}

const results = new Map<string, Sample[]>(variants.map((v) => [v.name, []]));
for (let r = 0; r < rounds; r++) {
  // Each round in a rotated order, so no variant always runs first after a pause.
  for (let i = 0; i < variants.length; i++) {
    const v = variants[(i + r) % variants.length];
    const res = await once(v);
    results.get(v.name)!.push(res);
    const l = res.load;
    process.stderr.write(
      `round ${r + 1} ${v.name}: ${l.rps.toFixed(0)} req/s, ${res.cpuUsPerPut.toFixed(1)} µs CPU/put, p99 ${l.latencyMs.p99.toFixed(2)} ms, errors ${l.errors}\n`,
    );
  }
}

const first = results.get(variants[0].name)!;
const baseRps = baseCmd.length > 0 ? median(first.map((x) => x.load.rps)) : undefined;
const baseCpu = baseCmd.length > 0 ? median(first.map((x) => x.cpuUsPerPut)) : undefined;
const pct = (v: number, base: number | undefined) => (base === undefined ? '' : `${(((v - base) / base) * 100).toFixed(1)} %`);
// On a shared machine other work only ever slows a round down: the best round (most req/s, least CPU per
// put) is the least disturbed one, so it is shown beside the median.
const bestRps = baseCmd.length > 0 ? Math.max(...first.map((x) => x.load.rps)) : undefined;
const bestCpu = baseCmd.length > 0 ? Math.min(...first.map((x) => x.cpuUsPerPut)) : undefined;
console.log(
  `| ${workload.name}: ${workload.title} | req/s median of ${rounds} | vs baseline | best req/s | vs baseline | CPU µs/put median | vs baseline | least CPU µs/put | vs baseline | p99 ms median | req/s per round |`,
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|');
for (const v of variants) {
  const rs = results.get(v.name)!;
  const rps = median(rs.map((x) => x.load.rps));
  const cpu = median(rs.map((x) => x.cpuUsPerPut));
  const maxRps = Math.max(...rs.map((x) => x.load.rps));
  const minCpu = Math.min(...rs.map((x) => x.cpuUsPerPut));
  console.log(
    `| ${v.name} | ${rps.toFixed(0)} | ${pct(rps, baseRps)} | ${maxRps.toFixed(0)} | ${pct(maxRps, bestRps)} | ${cpu.toFixed(1)} | ${pct(cpu, baseCpu)} | ${minCpu.toFixed(1)} | ${pct(minCpu, bestCpu)} | ${median(rs.map((x) => x.load.latencyMs.p99)).toFixed(1)} | ${rs.map((x) => x.load.rps.toFixed(0)).join(' ')} |`,
  );
}
