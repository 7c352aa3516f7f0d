// `etcdctl snapshot save` beside etcd 3.4 (`npm run bench:snapshot`): one fresh member per server and round,
// alternating which goes first, loaded with --db-mib MiB of 64 KiB values; then C closed-loop clients put
// small values for --duration-ms (the baseline), and again while the real etcdctl saves a snapshot. Reports
// the save's wall time (etcdctl's whole run: connect, stream, fsync), the file's size, and the put p99 and
// slowest put of the baseline and during the save. Results go to the console (and, with --out FILE, into its
// `snapshot` section); medians over the rounds.
import { spawn } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type ServerKind } from '../lib/servers.js';
import { GrpcConn } from '../lib/grpc-client.js';
import { p99, put, putLoops } from '../lib/put_probe.js';
import { spliceSection } from '../lib/results.js';
import { alternatingRounds, medianTable } from '../lib/rounds.js';
import { readFlags } from '../lib/flags.js';

interface Options {
  rounds: number;
  dbMib: number;
  clients: number;
  durationMs: number;
  tetcdCmd: string[];
  etcdCmd: string[];
  out: string;
}

const VALUE_BYTES = 64 * 1024;
const LOAD_CONCURRENCY = 16;

function options(argv: string[]): Options {
  return readFlags(
    argv,
    { rounds: 3, dbMib: 256, clients: 16, durationMs: 3000, tetcdCmd: ['bin/tetcd'], etcdCmd: ['/usr/bin/etcd'], out: '' } as Options,
    {
      '--rounds': ['rounds', 'number'],
      '--db-mib': ['dbMib', 'number'],
      '--clients': ['clients', 'number'],
      '--duration-ms': ['durationMs', 'number'],
      '--tetcd-cmd': ['tetcdCmd', 'command'],
      '--etcd-cmd': ['etcdCmd', 'command'],
      '--out': ['out', 'string'],
    },
  );
}

async function load(ep: string, mib: number): Promise<void> {
  const conns = await Promise.all(Array.from({ length: LOAD_CONCURRENCY }, () => GrpcConn.connect(ep, 5000)));
  const n = Math.ceil((mib * 1024 * 1024) / VALUE_BYTES);
  let next = 0;
  await Promise.all(
    conns.map(async (c) => {
      const value = Buffer.alloc(VALUE_BYTES);
      for (let i = next++; i < n; i = next++) {
        for (let j = 0; j < value.length; j += 4) value.writeUInt32LE((Math.random() * 0xffffffff) >>> 0, j);
        await put(c, `load/${String(i).padStart(8, '0')}`, value);
      }
    }),
  );
  for (const c of conns) c.close();
}

function saveSnapshot(ep: string, file: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('etcdctl', [`--endpoints=${ep}`, 'snapshot', 'save', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ETCDCTL_API: '3' },
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.once('close', (code) =>
      code === 0 ? resolve((performance.now() - t0) / 1000) : reject(new Error(`etcdctl snapshot save: ${code} ${err.slice(-500)}`)),
    );
  });
}

type Row = Record<string, number>;

async function round(kind: ServerKind, o: Options, dir: string): Promise<Row> {
  const cluster = await Cluster.start({
    kind,
    cmd: kind === 'etcd' ? o.etcdCmd : o.tetcdCmd,
    cwd: process.cwd(),
    members: 1,
    baseDir: dir,
  });
  try {
    const ep = cluster.endpoints[0];
    await load(ep, o.dbMib);
    const base = await putLoops(ep, o.clients, new Promise((r) => setTimeout(r, o.durationMs)));
    const file = join(dir, 'snap.db');
    let saveS = 0;
    const saved = saveSnapshot(ep, file).then((s) => {
      saveS = s;
    });
    const during = await putLoops(ep, o.clients, saved);
    return {
      'save s': saveS,
      'file MiB': statSync(file).size / 1024 / 1024,
      'put p99 ms (baseline)': p99(base),
      'put p99 ms (during save)': p99(during),
      'slowest put ms (baseline)': Math.max(...base),
      'slowest put ms (during save)': Math.max(...during),
      'puts during save': during.length,
    };
  } finally {
    await cluster.stop();
  }
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const rows = await alternatingRounds(o.rounds, 'snap', (kind, dir) => round(kind, o, dir));
  const lines = [
    `## Snapshot save beside etcd 3.4 (${new Date().toISOString().slice(0, 10)})`,
    '',
    `\`npm run bench:snapshot -- --db-mib ${o.dbMib}\`, ${new Date().toISOString().slice(0, 16)} UTC, medians of ${o.rounds} rounds (alternating which server goes first); one member loaded with ${o.dbMib} MiB of ${VALUE_BYTES / 1024} KiB values; ${o.clients} closed-loop clients putting 256 B values for ${o.durationMs} ms (baseline), then while the real \`etcdctl snapshot save\` runs (its wall time, fsync included).`,
    '',
    ...medianTable(rows),
  ];
  const text = lines.join('\n');
  process.stdout.write(`\n${text}\n`);
  if (o.out !== '') writeFileSync(o.out, spliceSection(readFileSync(o.out, 'utf8'), 'snapshot', text));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
