// How many records one fdatasync carries when thousands of appenders wait on a slow disk, and what
// --wal-batch-max-delay and --wal-batch-max-bytes change about it. With no delay the writer starts the next
// write+fdatasync with whatever is queued the moment the previous one ends; the appenders it just released are
// still being resolved on the event loop then, so they miss it and wait a whole period more.
//
//   node dist/bench/wal/deep-queue.js [--appenders 4096] [--ms 2000]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Wal } from '../../src/wal/index.js';

const args = process.argv.slice(2);
const flag = (name: string, def: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const APPENDERS = flag('--appenders', 4096);
const RUN_MS = flag('--ms', 2000);
const WARMUP_MS = 300;
const payload = new Uint8Array(256).fill(7);

interface Row {
  slowMs: number;
  batchKiB: number;
  delayUs: number;
  appendsPerSec: number;
  fsyncsPerSec: number;
  perFsync: number;
  bound: number;
}

async function run(slowMs: number, batchBytesMax: number, batchDelayUsMax: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'tetcd-deepq-'));
  try {
    const wal = await Wal.create(join(dir, 'wal'), new Uint8Array(8), {
      unsafeTesting: { fsyncSleepUs: slowMs * 1000 },
      batchBytesMax,
      batchDelayUsMax,
    });
    let index = 0;
    let appends = 0;
    let stop = false;
    const loop = async (): Promise<void> => {
      while (!stop) {
        await wal.save(undefined, [{ index: ++index, term: 1, type: 0, data: payload }]);
        appends++;
      }
    };
    const runners = Array.from({ length: APPENDERS }, loop);
    await sleep(WARMUP_MS);
    const a0 = appends;
    const f0 = wal.stats.fsyncs;
    const t0 = performance.now();
    await sleep(RUN_MS);
    const secs = (performance.now() - t0) / 1000;
    const da = appends - a0;
    const df = wal.stats.fsyncs - f0;
    stop = true;
    await Promise.all(runners);
    await wal.close();
    // The ideal: every appender in every fdatasync, i.e. appenders ÷ the measured time per write+fdatasync.
    return {
      slowMs,
      batchKiB: batchBytesMax >> 10,
      delayUs: batchDelayUsMax,
      appendsPerSec: da / secs,
      fsyncsPerSec: df / secs,
      perFsync: df > 0 ? da / df : 0,
      bound: df > 0 ? APPENDERS * (df / secs) : 0,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`${APPENDERS} appenders of 256-byte records, ${RUN_MS} ms per row\n`);
console.log(
  '| slow fsync ms | --wal-batch-max-bytes KiB | --wal-batch-max-delay µs | appends/s | fsyncs/s | records per fsync | appenders × fsyncs/s | share of it |',
);
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const slowMs of [2, 10]) {
  for (const [batchKiB, delayUs] of [
    [1024, 0],
    [4096, 0],
    [1024, 1000],
    [4096, 1000],
    [4096, 3000],
  ] as const) {
    const r = await run(slowMs, batchKiB * 1024, delayUs);
    console.log(
      `| ${r.slowMs} | ${r.batchKiB} | ${r.delayUs} | ${Math.round(r.appendsPerSec)} | ${Math.round(r.fsyncsPerSec)} | ${Math.round(r.perFsync)} | ${Math.round(r.bound)} | ${((r.appendsPerSec / r.bound) * 100).toFixed(0)} % |`,
    );
  }
}
