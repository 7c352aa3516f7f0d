// Loads N keys (default 1,000,000) with 256-byte values into a fresh store, one put per write
// transaction (one revision each, as the server applies single Puts), committing every 1000
// revisions; then reopens it (index rebuilt from LMDB). Prints time, RSS (anonymous and
// file-backed, i.e. LMDB's map) and heapUsed. Run with --expose-gc for steadier heap numbers.
//
//   node --expose-gc .build/mvcc/out/bench/mvcc/load.js [keys] [valueBytes]
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Mvcc } from '../../src/mvcc/index.js';

const keys = Number(process.argv[2] ?? 1_000_000);
const valueBytes = Number(process.argv[3] ?? 256);
const commitEvery = 1000;
const prefix = '/registry/bench/';

/** One field of /proc/<pid>/status in MiB. */
export function procStatusMiB(pid: number | 'self', name: string): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
  return m ? Number(m[1]) / 1024 : NaN;
}

function mem(label: string, extra = ''): void {
  (globalThis as { gc?: () => void }).gc?.();
  const m = process.memoryUsage();
  const f = (n: number) => n.toFixed(0).padStart(5);
  const anon = procStatusMiB('self', 'RssAnon');
  const file = procStatusMiB('self', 'RssFile') + procStatusMiB('self', 'RssShmem');
  console.log(
    `${label.padEnd(13)} rss ${f(m.rss / 2 ** 20)} MiB (anon ${f(anon)}, file ${f(file)})  heapUsed ${f(m.heapUsed / 2 ** 20)} MiB (total ${f(m.heapTotal / 2 ** 20)}, external ${f(m.external / 2 ** 20)}, arrayBuffers ${f(m.arrayBuffers / 2 ** 20)})  ${extra}`,
  );
}

async function load(path: string): Promise<void> {
  const s = await Mvcc.open({ path });
  const pool = randomBytes(valueBytes * 64);
  const t0 = performance.now();
  let pending: Promise<void> | undefined;
  for (let i = 0; i < keys; i++) {
    const key = Buffer.from(prefix + String(i).padStart(9, '0'));
    const off = (i * 37) % (pool.length - valueBytes);
    const txn = s.write();
    txn.put(key, pool.subarray(off, off + valueBytes), 0n);
    txn.end();
    if ((i + 1) % commitEvery === 0) {
      // At most one commit in flight, like a server applying Raft batches.
      if (pending !== undefined) await pending;
      pending = s.commit(i + 1, 1).committed;
    }
  }
  await s.commit(keys, 1).flushed;
  const loadMs = performance.now() - t0;
  const st = s.stats;
  mem(
    'after load',
    `${(keys / (loadMs / 1000)).toFixed(0)} puts/s (${(loadMs / 1000).toFixed(1)} s); db ${(st.dbSizeBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  const r0 = performance.now();
  const all = s.range(Buffer.from(prefix), Buffer.from('/registry/bench0'), { countOnly: true });
  const countMs = performance.now() - r0;
  const r1 = performance.now();
  const top = s.range(Buffer.from(prefix), Buffer.from('/registry/bench0'), { sortOrder: 2, sortTarget: 4, limit: 10 });
  const sortMs = performance.now() - r1;
  const r2 = performance.now();
  s.range(Buffer.from(prefix), Buffer.from('/registry/bench0'), { limit: 500 });
  const pageMs = performance.now() - r2;
  console.log(
    `ranges: count of ${all.count} keys ${countMs.toFixed(0)} ms; top-10 by value ${sortMs.toFixed(0)} ms (${top.kvs.length} kvs); first 500 ${pageMs.toFixed(1)} ms`,
  );
  // Overwrite a tenth of the keys, then compact: the index and LMDB both shed the old revisions.
  for (let i = 0; i < keys; i += 10) {
    const txn = s.write();
    txn.put(Buffer.from(prefix + String(i).padStart(9, '0')), pool.subarray(0, valueBytes), 0n);
    txn.end();
  }
  await s.commit(keys + 1, 1).committed;
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const c0 = performance.now();
  const { physicalDone } = s.compact(s.currentRevision);
  await s.commit(keys + 2, 1).committed;
  await physicalDone;
  lag.disable();
  const st2 = s.stats;
  console.log(
    `compaction of ${keys / 10} old revisions among ${keys}: ${((performance.now() - c0) / 1000).toFixed(1)} s, event loop delay max ${(lag.max / 1e6).toFixed(1)} ms p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms; db ${(st2.dbSizeBytes / 2 ** 20).toFixed(0)} MiB, in use ${(st2.dbSizeInUseBytes / 2 ** 20).toFixed(0)} MiB`,
  );
  await s.close();
}

async function reopen(path: string): Promise<void> {
  const o0 = performance.now();
  const s = await Mvcc.open({ path });
  const openMs = performance.now() - o0;
  mem('after reopen', `index rebuilt in ${(openMs / 1000).toFixed(1)} s (${s.stats.keys} keys, rev ${s.currentRevision})`);
  await s.close();
}

const dir = mkdtempSync(join(tmpdir(), 'tetcd-bench-mvcc-'));
const path = join(dir, 'member', 'snap', 'db');
try {
  mem('start');
  await load(path);
  mem('closed');
  await reopen(path);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
