// The whole suite: runs every compiled `*.test.js` under dist/test in its own process (a crash
// in one file cannot take the others down), sums uvu's counts and ends with `N passed, N failed`.
//
//   node dist/test/run.js                 every suite
//   node dist/test/run.js mvcc raft/sim   only files whose path contains one of the words
//
// Run without filters, it then runs the suites that start member processes a second time against the
// client-process mode (TETCD_CLIENT_WORKERS=2 → `--client-workers 2`), so both modes stay tested, and
// the api suites a second time on the node:http2 engine (TETCD_GRPC_ENGINE=node) and the watch suites a
// second time with every watch fan-out on the worker threads (TETCD_WATCH_POOL=1).
// `TETCD_CLIENT_WORKERS=2 node dist/test/run.js` runs every suite in that mode once.
//
// Two files run at a time (TETCD_TEST_JOBS, default 2): most suites wait on members, timers and sockets, not
// the CPU. The suites whose checks are about time (elections, expiry, TTLs, latency bounds, the
// coverage-asserting fault runs) and the benches run alone (SOLO_SUITES). Each file's output is printed whole when it
// ends; each concurrently running file gets its own slice of the port range (TETCD_PORT_SLOT, tools/lib/ports.ts).
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const testRoot = dirname(fileURLToPath(import.meta.url));
const fileTimeoutMs = Number(process.env.TETCD_TEST_FILE_TIMEOUT_MS ?? 15 * 60_000);

function findTests(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

interface FileResult {
  file: string;
  total: number;
  passed: number;
  skipped: number;
  failed: number;
  ms: number;
}

/** Suites that start tetcd member processes: the ones the client-process pass runs again. */
const MEMBER_PROCESS_SUITES = [
  'compat/',
  'cluster/',
  'server/alarms',
  'server/batching',
  'server/lock',
  'server/snapshot-orphan',
  'server/wal-failure',
  'client_procs/client-processes',
  'observability/',
];

/**
 * Suites that run alone: their checks are about time (elections, expiry, TTLs, latency bounds) or need a run
 * long enough to cover their faults, and a second suite beside them would stretch what they time. Suites that
 * check only outcomes (durability after kills and power loss, replication, catch-up) run two at a time.
 */
const SOLO_SUITES = [
  'cluster/linearizability',
  'cluster/partitions',
  'cluster/faults',
  'cluster/watch-faults',
  'cluster/lease',
  'cluster/lock-exclusion',
  'cluster/auth',
  'cluster/graceful',
  'compat/lease-expiry',
  'compat/watch-guarantees',
  'bench/',
];

interface Job {
  file: string;
  label: string;
  env: NodeJS.ProcessEnv;
}

function runFile(job: Job, slot: number): Promise<FileResult & { output: string }> {
  const { file } = job;
  const started = Date.now();
  return new Promise((resolve) => {
    const env = { ...job.env, TETCD_PORT_SLOT: String(slot), TETCD_PORT_SLOTS: String(jobsMax) };
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      output += `\n!! ${file}: killed after ${fileTimeoutMs} ms\n`;
      child.kill('SIGKILL');
    }, fileTimeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      // uvu prints one summary block per process; strip colour codes before reading it.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: ESC starts the colour codes to strip
      const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
      const num = (label: string) => {
        const all = [...plain.matchAll(new RegExp(`${label}:\\s+(\\d+)`, 'g'))];
        return all.reduce((sum, m) => sum + Number(m[1]), 0);
      };
      const total = num('Total');
      const passed = num('Passed');
      const skipped = num('Skipped');
      // uvu's Total counts the tests that ran; skipped ones are counted apart.
      let failed = Math.max(0, total - passed);
      // A file that exits badly without reporting a failure (crash, timeout, load error) counts as one.
      if (code !== 0 && failed === 0) failed = 1;
      resolve({ file: job.label, total, passed, skipped, failed, ms: Date.now() - started, output });
    });
  });
}

const filters = process.argv.slice(2);
const files = findTests(testRoot).filter((f) => {
  const rel = relative(testRoot, f);
  return filters.length === 0 || filters.some((w) => rel.includes(w));
});

const jobsMax = Math.max(1, Number(process.env.TETCD_TEST_JOBS ?? 2));
const rel = (f: string) => relative(testRoot, f);
const jobs: Job[] = files.map((f) => ({ file: f, label: rel(f), env: process.env }));

const CLIENT_WORKERS_PASS = '2';
if (filters.length === 0 && process.env.TETCD_CLIENT_WORKERS === undefined) {
  const env = { ...process.env, TETCD_CLIENT_WORKERS: CLIENT_WORKERS_PASS };
  for (const f of files.filter((f) => MEMBER_PROCESS_SUITES.some((w) => rel(f).startsWith(w)))) {
    jobs.push({ file: f, label: `${rel(f)} [--client-workers ${CLIENT_WORKERS_PASS}]`, env });
  }
}
// The gRPC server's other HTTP/2 engine (node:http2; the default is 'raw'): the api suites, etcdctl and
// the etcd3 client included, run on it too so it stays a working fallback.
const OTHER_ENGINE = 'node';
if (filters.length === 0 && process.env.TETCD_GRPC_ENGINE === undefined) {
  const env = { ...process.env, TETCD_GRPC_ENGINE: OTHER_ENGINE };
  // h2-fuzz always runs the raw engine: nothing to run again.
  for (const f of files.filter((f) => rel(f).startsWith('api/') && !f.includes('h2-fuzz'))) {
    jobs.push({ file: f, label: `${rel(f)} [engine ${OTHER_ENGINE}]`, env });
  }
}
// The watch suites once more with every watch fan-out built on the worker threads (TETCD_WATCH_POOL=1 →
// `--worker-threads 2 --watch-pool-min-watchers 1`), so the pool path keeps etcd's watch behaviour.
const WATCH_SUITES = ['compat/watch', 'compat/etcd3-watch', 'compat/require-leader'];
if (filters.length === 0 && process.env.TETCD_WATCH_POOL === undefined) {
  const env = { ...process.env, TETCD_WATCH_POOL: '1' };
  for (const f of files.filter((f) => WATCH_SUITES.some((w) => rel(f).startsWith(w)))) {
    jobs.push({ file: f, label: `${rel(f)} [watch pool]`, env });
  }
}

/** Runs the jobs `jobsMax` at a time, a solo job with nothing beside it; results in the jobs' order. */
async function runAll(list: Job[]): Promise<FileResult[]> {
  const out: FileResult[] = new Array(list.length);
  const solo = isSolo;
  const freeSlots = Array.from({ length: jobsMax }, (_, i) => i);
  const running = new Set<Promise<void>>();
  let soloRunning = false;
  let next = 0;
  while (next < list.length || running.size > 0) {
    const job = list[next];
    const canStart = job !== undefined && !soloRunning && freeSlots.length > 0 && (running.size === 0 || !solo(job));
    if (!canStart) {
      await Promise.race(running);
      continue;
    }
    const index = next++;
    const slot = freeSlots.shift() as number;
    soloRunning = solo(job);
    const p: Promise<void> = runFile(job, slot).then(({ output, ...r }) => {
      process.stdout.write(`\n=== ${job.label}\n${output}`);
      out[index] = r;
      freeSlots.push(slot);
      if (solo(job)) soloRunning = false;
      running.delete(p);
    });
    running.add(p);
  }
  return out;
}

// The parallel suites first, then the solo ones, so no slot idles behind a solo suite waiting to start.
const isSolo = (j: Job) => SOLO_SUITES.some((w) => rel(j.file).startsWith(w));
jobs.sort((a, b) => Number(isSolo(a)) - Number(isSolo(b)));
const started = Date.now();
const results = await runAll(jobs);
let passed = 0,
  failed = 0,
  skipped = 0;
process.stdout.write('\n--- per file\n');
for (const r of results) {
  passed += r.passed;
  failed += r.failed;
  skipped += r.skipped;
  const mark = r.failed > 0 ? 'FAIL' : 'ok  ';
  process.stdout.write(
    `${mark} ${r.file.padEnd(64)} ${String(r.passed).padStart(4)} passed ${String(r.failed).padStart(3)} failed ${String(r.skipped).padStart(3)} skipped ${(r.ms / 1000).toFixed(1).padStart(6)} s\n`,
  );
}
process.stdout.write(`\n${jobs.length} files in ${((Date.now() - started) / 1000).toFixed(0)} s, ${jobsMax} at a time\n`);
process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
process.exitCode = failed > 0 || files.length === 0 ? 1 : 0;
