// What the thread hand-off costs one lone writer: a save through the native WAL (main thread → writer
// thread → fdatasync → back through a thread-safe function) against write+fdatasync done synchronously on
// the main thread, one record at a time. The difference is the latency a single sequential client pays for
// "the event loop never blocks on disk".
//
//   node dist/bench/wal/roundtrip.js [--n 2000] [--dir /tmp]
import fs from 'node:fs';
import { join } from 'node:path';
import { Wal } from '../../src/wal/index.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const n = Number(arg('n', '2000'));
const dir = fs.mkdtempSync(join(arg('dir', '/tmp'), 'tetcd-wal-rt-'));
const RECORD_BYTES = 280; // a put of 8 B key + 256 B value in its entry envelope, roughly

async function nativeSaveUs(run: number): Promise<number> {
  const wal = await Wal.create(join(dir, `wal-${run}`), new Uint8Array(0));
  const data = Buffer.alloc(RECORD_BYTES, 1);
  let i = 1;
  const save = () => wal.save({ term: 1, vote: 1n, commit: i - 1 }, [{ index: i++, term: 1, type: 0, data }]);
  for (let w = 0; w < 200; w++) await save();
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) await save();
  const us = Number(process.hrtime.bigint() - t0) / n / 1000;
  await wal.close();
  return us;
}

function syncUs(run: number): number {
  const path = join(dir, `plain-${run}`);
  const fd = fs.openSync(path, 'w');
  fs.writeSync(fd, Buffer.alloc(64 << 20), 0); // preallocated and written, like a WAL segment after a while
  fs.fsyncSync(fd);
  const buf = Buffer.alloc(RECORD_BYTES + 16, 7);
  for (let w = 0; w < 200; w++) {
    fs.writeSync(fd, buf, 0, buf.length, w * buf.length);
    fs.fdatasyncSync(fd);
  }
  const t0 = process.hrtime.bigint();
  for (let k = 0; k < n; k++) {
    fs.writeSync(fd, buf, 0, buf.length, k * buf.length);
    fs.fdatasyncSync(fd);
  }
  const us = Number(process.hrtime.bigint() - t0) / n / 1000;
  fs.closeSync(fd);
  fs.rmSync(path);
  return us;
}

const rows: Array<[number, number]> = [];
try {
  for (let r = 0; r < 5; r++) rows.push([syncUs(r), await nativeSaveUs(r)]);
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const s = median(rows.map((r) => r[0]));
const w = median(rows.map((r) => r[1]));
console.log(`| write+fdatasync on the main thread µs | native WAL save round trip µs | hand-off µs |`);
console.log(`|---:|---:|---:|`);
console.log(`| ${s.toFixed(0)} | ${w.toFixed(0)} | ${(w - s).toFixed(0)} |`);
console.log(
  `(${n} sequential ${RECORD_BYTES}-byte records per run, medians of 5 runs; per run: ${rows.map((r) => `${r[0].toFixed(0)}/${r[1].toFixed(0)}`).join(', ')})`,
);
