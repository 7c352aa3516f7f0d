// The HTTP/JSON gateway beside etcd 3.4's (`npm run bench:http`): autocannon POSTs /v3/kv/put and
// /v3/kv/range (value 256 B) over 1 and 100 connections, pipelining 1 and 10, against one fresh member per
// server and round, alternating which goes first. Medians over the rounds of req/s, p50/p99 latency, and the
// member's CPU (cores) so a run bounded by the generator shows itself: autocannon shares the machine.
//
//   node dist/bench/http/http.bench.js [--rounds 3] [--duration-s 3] [--workloads put-c1-p1,...]
//     [--tetcd-cmd "bin/tetcd --client-workers 2"] [--etcd-cmd /usr/bin/etcd] [--label NAME] [--out bench/RESULTS.md]
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Cluster, type ServerKind } from '../lib/servers.js';
import { spliceSection } from '../lib/results.js';
import { median } from '../lib/stats.js';
import { cpuSecondsOfTrees } from '../lib/proc.js';

const VALUE_BYTES = 256;
const KEY = Buffer.from('bench-http-key').toString('base64');
const PUT_BODY = JSON.stringify({ key: KEY, value: Buffer.alloc(VALUE_BYTES, 0x61).toString('base64') });
const RANGE_BODY = JSON.stringify({ key: KEY });

interface Workload {
  name: string;
  path: string;
  body: string;
  connections: number;
  pipelining: number;
}

const WORKLOADS: Workload[] = [];
for (const [op, path, body] of [
  ['put', '/v3/kv/put', PUT_BODY],
  ['range', '/v3/kv/range', RANGE_BODY],
] as const) {
  for (const connections of [1, 100]) {
    for (const pipelining of [1, 10]) WORKLOADS.push({ name: `${op}-c${connections}-p${pipelining}`, path, body, connections, pipelining });
  }
}

interface Options {
  rounds: number;
  durationS: number;
  workloads: Workload[];
  tetcdCmd: string[];
  etcdCmd: string[];
  label: string;
  out: string;
}

function options(argv: string[]): Options {
  const o: Options = {
    rounds: 3,
    durationS: 3,
    workloads: WORKLOADS,
    tetcdCmd: ['bin/tetcd'],
    etcdCmd: ['/usr/bin/etcd'],
    label: '',
    out: '',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`${k} needs a value`);
    switch (k) {
      case '--rounds':
        o.rounds = Number(v);
        break;
      case '--duration-s':
        o.durationS = Number(v);
        break;
      case '--workloads': {
        const names = v.split(',');
        o.workloads = WORKLOADS.filter((w) => names.includes(w.name));
        if (o.workloads.length !== names.length) throw new Error(`--workloads: known are ${WORKLOADS.map((w) => w.name).join(',')}`);
        break;
      }
      case '--tetcd-cmd':
        o.tetcdCmd = v.split(' ').filter((s) => s !== '');
        break;
      case '--etcd-cmd':
        o.etcdCmd = v.split(' ').filter((s) => s !== '');
        break;
      case '--label':
        o.label = v;
        break;
      case '--out':
        o.out = v;
        break;
      default:
        throw new Error(`unknown option ${k}`);
    }
  }
  if (!(o.rounds >= 1 && o.durationS >= 1)) throw new Error('--rounds and --duration-s must be at least 1');
  return o;
}

type Row = Record<string, number>;

async function runOne(ep: string, pids: number[], w: Workload, durationS: number): Promise<Row> {
  const url = `http://${ep}${w.path}`;
  // A short warm-up (JIT, connections), not counted.
  await autocannon({ url, method: 'POST', body: w.body, connections: w.connections, pipelining: w.pipelining, duration: 1 });
  const cpu0 = cpuSecondsOfTrees(pids);
  const gen0 = process.cpuUsage();
  const r = await autocannon({
    url,
    method: 'POST',
    body: w.body,
    headers: { 'content-type': 'application/json' },
    connections: w.connections,
    pipelining: w.pipelining,
    duration: durationS,
  });
  const cpu = cpuSecondsOfTrees(pids) - cpu0;
  const gen = process.cpuUsage(gen0);
  if (r.non2xx > 0 || r.errors > 0) process.stderr.write(`${w.name}: ${r.non2xx} non-2xx answers, ${r.errors} errors\n`);
  return {
    reqPerSec: r.requests.average,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    errors: r.non2xx + r.errors + r.timeouts,
    memberCores: cpu / r.duration,
    // autocannon runs in this process: near 1, the generator bounds the run.
    genCores: (gen.user + gen.system) / 1e6 / r.duration,
  };
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const base = mkdtempSync('/tmp/tetcd-http-bench-');
  const results: Record<string, Record<ServerKind, Row[]>> = {};
  try {
    for (let round = 0; round < o.rounds; round++) {
      const kinds: ServerKind[] = round % 2 === 0 ? ['etcd', 'tetcd'] : ['tetcd', 'etcd'];
      for (const kind of kinds) {
        const dir = join(base, `${kind}-${round}`);
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
          for (const w of o.workloads) {
            const row = await runOne(ep, cluster.pids, w, o.durationS);
            (results[w.name] ??= { etcd: [], tetcd: [] })[kind].push(row);
            process.stdout.write(`round ${round + 1} ${w.name} ${kind}: ${JSON.stringify(row)}\n`);
          }
        } finally {
          await cluster.stop();
          rmSync(dir, { recursive: true, force: true });
        }
      }
    }
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
  const lines = [
    `### HTTP/JSON gateway beside etcd 3.4's${o.label ? ` (${o.label}: \`${o.tetcdCmd.join(' ')}\`)` : ''}`,
    '',
    `\`npm run bench:http\`, ${new Date().toISOString().slice(0, 16)} UTC, medians of ${o.rounds} rounds of ${o.durationS} s (after 1 s of warm-up), alternating which server goes first; autocannon 9 in the bench process, value ${VALUE_BYTES} B, one key. memberCores: CPU of the member's process tree per second of load; generator cores: autocannon's (this process's) CPU per second, near 1 = the generator bounds the run.`,
    '',
    '| workload | etcd req/s | tetcd req/s | tetcd/etcd | etcd p50/p99 ms | tetcd p50/p99 ms | etcd cores | tetcd cores | req/s per member core etcd / tetcd | generator cores etcd / tetcd runs | errors etcd/tetcd |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const [name, byKind] of Object.entries(results)) {
    const m = (kind: ServerKind, key: string): number => median(byKind[kind].map((r) => r[key]));
    const perCore = (kind: ServerKind): string =>
      Math.round(median(byKind[kind].map((r) => r.reqPerSec / Math.max(r.memberCores, 0.01)))).toLocaleString('en-US');
    const e = m('etcd', 'reqPerSec');
    const t = m('tetcd', 'reqPerSec');
    lines.push(
      `| ${name} | ${Math.round(e).toLocaleString('en-US')} | ${Math.round(t).toLocaleString('en-US')} | **${(t / e).toFixed(2)}** | ${m('etcd', 'p50Ms')} / ${m('etcd', 'p99Ms')} | ${m('tetcd', 'p50Ms')} / ${m('tetcd', 'p99Ms')} | ${m('etcd', 'memberCores').toFixed(2)} | ${m('tetcd', 'memberCores').toFixed(2)} | ${perCore('etcd')} / ${perCore('tetcd')} | ${m('etcd', 'genCores').toFixed(2)} / ${m('tetcd', 'genCores').toFixed(2)} | ${m('etcd', 'errors')}/${m('tetcd', 'errors')} |`,
    );
  }
  const text = lines.join('\n');
  process.stdout.write(`\n${text}\n`);
  if (o.out !== '') {
    const section = o.label ? `http-${o.label}` : 'http';
    writeFileSync(o.out, spliceSection(readFileSync(o.out, 'utf8'), section, text));
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
