// Defragment beside etcd 3.4 (`npm run bench:defrag`): one fresh member per server and round, alternating which
// goes first. Each member gets K keys of V bytes written twice (so half the file is history), a compaction at
// the last revision (physical), then C closed loops of 256-byte puts: first for a baseline, then while a
// Defragment runs. Reported: the file before and after (Status dbSize), how long Defragment took, and the
// puts' p99 and slowest during the baseline and during the defragment. etcd blocks writes while it copies
// (its defrag holds the backend's lock); tetcd copies while serving and swaps files at the end.
// Results go to the console (and, with --out FILE, into its `defrag` section); medians over the rounds.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Cluster, type ServerKind } from '../lib/servers.js';
import { GrpcConn } from '../lib/grpc-client.js';
import { spliceSection } from '../lib/results.js';
import { medianTable } from '../lib/rounds.js';
import { readFlags } from '../lib/flags.js';
import {
  decodeStatusResponse,
  decodeTxnResponse,
  encodeCompactionRequest,
  encodePutRequest,
  encodeTxnRequest,
} from '../../src/proto/rpc.js';

interface Options {
  rounds: number;
  keys: number;
  valueBytes: number;
  loops: number;
  baselineMs: number;
  tetcdCmd: string[];
  etcdCmd: string[];
  out: string;
}

function options(argv: string[]): Options {
  const o: Options = {
    rounds: 3,
    keys: 40_000,
    valueBytes: 4096,
    loops: 16,
    baselineMs: 3000,
    tetcdCmd: ['bin/tetcd'],
    etcdCmd: ['/usr/bin/etcd'],
    out: '',
  };
  return readFlags(argv, o, {
    '--rounds': ['rounds', 'number'],
    '--keys': ['keys', 'number'],
    '--value-bytes': ['valueBytes', 'number'],
    '--loops': ['loops', 'number'],
    '--baseline-ms': ['baselineMs', 'number'],
    '--tetcd-cmd': ['tetcdCmd', 'command'],
    '--etcd-cmd': ['etcdCmd', 'command'],
    '--out': ['out', 'string'],
  });
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const PUTS_PER_TXN = 64;

async function dbSizeBytes(c: GrpcConn): Promise<number> {
  const r = await c.unary('/etcdserverpb.Maintenance/Status', new Uint8Array(0), 10_000);
  if (r.grpcStatus !== 0) throw new Error(`status: ${r.grpcMessage}`);
  return decodeStatusResponse(r.body).dbSize;
}

/** Every key written twice, then everything before the last revision compacted away. */
async function fill(c: GrpcConn, o: Options): Promise<void> {
  const value = Buffer.alloc(o.valueBytes, 'v');
  let rev = 0;
  for (let pass = 0; pass < 2; pass++) {
    const pending: Promise<void>[] = [];
    for (let i = 0; i < o.keys; i += PUTS_PER_TXN) {
      const ops = [];
      for (let j = i; j < Math.min(o.keys, i + PUTS_PER_TXN); j++)
        ops.push({ request_put: { key: Buffer.from(`fill/${String(j).padStart(8, '0')}`), value } });
      const req = encodeTxnRequest({ success: ops });
      pending.push(
        (async () => {
          // A txn can time out on a busy shared machine; a retry writes the same keys again (no harm here).
          for (let attempt = 1; ; attempt++) {
            const r = await c.unary('/etcdserverpb.KV/Txn', req, 60_000);
            if (r.grpcStatus === 0) {
              rev = Math.max(rev, decodeTxnResponse(r.body).header?.revision ?? 0);
              return;
            }
            if (attempt === 3) throw new Error(`fill: ${r.grpcStatus} ${r.grpcMessage}`);
          }
        })(),
      );
      if (pending.length >= 8) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
  }
  const r = await c.unary('/etcdserverpb.KV/Compact', encodeCompactionRequest({ revision: rev, physical: true }), 120_000);
  if (r.grpcStatus !== 0) throw new Error(`compact: ${r.grpcMessage}`);
}

/** C closed loops of puts until `until` resolves; every put's latency in ms. */
async function putLoops(conns: GrpcConn[], loops: number, until: Promise<unknown>): Promise<number[]> {
  let stop = false;
  void until.finally(() => {
    stop = true;
  });
  const lat: number[] = [];
  const value = Buffer.alloc(256, 'p');
  await Promise.all(
    Array.from({ length: loops }, async (_, l) => {
      const c = conns[l % conns.length];
      for (let i = 0; !stop; i++) {
        const t = performance.now();
        const r = await c.unary('/etcdserverpb.KV/Put', encodePutRequest({ key: Buffer.from(`probe/${l}/${i % 100}`), value }), 60_000);
        if (r.grpcStatus !== 0) throw new Error(`put: ${r.grpcMessage}`);
        lat.push(performance.now() - t);
      }
    }),
  );
  return lat;
}

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

type Row = Record<string, number>;

async function run(endpoint: string, o: Options): Promise<Row> {
  const c = await GrpcConn.connect(endpoint, 5000);
  const conns = await Promise.all(Array.from({ length: 4 }, () => GrpcConn.connect(endpoint, 5000)));
  try {
    await fill(c, o);
    await sleep(1000);
    const beforeBytes = await dbSizeBytes(c);
    const baseline = await putLoops(conns, o.loops, sleep(o.baselineMs));
    let defragMs = 0;
    const defrag = (async () => {
      await sleep(200);
      const t0 = performance.now();
      const r = await c.unary('/etcdserverpb.Maintenance/Defragment', new Uint8Array(0), 600_000);
      defragMs = performance.now() - t0;
      if (r.grpcStatus !== 0) throw new Error(`defragment: status ${r.grpcStatus} ${r.grpcMessage}`);
      await sleep(200);
    })();
    const during = await putLoops(conns, o.loops, defrag);
    await defrag;
    const afterBytes = await dbSizeBytes(c);
    return {
      dbBeforeMiB: beforeBytes / 2 ** 20,
      dbAfterMiB: afterBytes / 2 ** 20,
      defragMs,
      baselinePutP99Ms: quantile(baseline, 0.99),
      defragPutP99Ms: quantile(during, 0.99),
      defragPutMaxMs: Math.max(...during),
      putsDuringDefrag: during.length,
    };
  } finally {
    c.close();
    for (const x of conns) x.close();
  }
}

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const base = mkdtempSync('/tmp/tetcd-defrag-bench-');
  const results: Record<ServerKind, Row[]> = { etcd: [], tetcd: [] };
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
          const row = await run(cluster.endpoints[0], o);
          results[kind].push(row);
          // tetcd logs where its defragment's time went (copy, sync, catch-up rounds, how long writes were held).
          const phases = readFileSync(cluster.members[0].logPath, 'utf8')
            .split('\n')
            .find((l) => l.includes('"finished defragment"'));
          process.stdout.write(`round ${round + 1} ${kind}: ${JSON.stringify(row)}${phases ? `\n  ${phases}` : ''}\n`);
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
    '### Defragment beside etcd 3.4',
    '',
    `\`npm run bench:defrag\`, ${new Date().toISOString().slice(0, 16)} UTC, medians of ${o.rounds} rounds: ${o.keys} keys × ${o.valueBytes} B written twice, compacted at the last revision, then ${o.loops} closed loops of 256-byte puts for ${o.baselineMs} ms (baseline) and during one Defragment.`,
    '',
    ...medianTable(results, 1),
  ];
  const text = lines.join('\n');
  process.stdout.write(`\n${text}\n`);
  if (o.out !== '') writeFileSync(o.out, spliceSection(readFileSync(o.out, 'utf8'), 'defrag', text));
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
