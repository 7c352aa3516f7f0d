// Child process of crash.test.ts: opens (or creates) the WAL in argv[2] and appends from many concurrent
// appenders until killed, printing the last index of every acknowledged save on stdout (a pipe: written
// synchronously on Linux, so a line the parent reads was acknowledged before the kill).
import { Wal } from '../../src/wal/index.js';
import type { WalOptions } from '../../src/wal/index.js';
import { entryBytes, makeEntry, rng } from './helpers.js';

const dir = process.argv[2]!;
const seed = Number(process.argv[3]);
const opts: WalOptions = { segmentBytes: 64 * 1024, batchBytesMax: 16 * 1024 };
const appenders = 32;

let wal: Wal;
let next: number;
if (Wal.exists(dir)) {
  const r = await Wal.open(dir, { index: 0, term: 0 }, opts);
  wal = r.wal;
  next = r.entries.length + 1;
} else {
  wal = await Wal.create(dir, new TextEncoder().encode('crash'), opts);
  next = 1;
}
process.stdout.write('ready\n');
const r = rng(seed);

async function appender(): Promise<void> {
  for (;;) {
    const n = 1 + Math.floor(r() * 4);
    const ents = [];
    for (let k = 0; k < n; k++) {
      const index = next++;
      ents.push(makeEntry(index, 1, entryBytes(index)));
    }
    const last = next - 1;
    await wal.save({ term: 1, vote: 1n, commit: last }, ents);
    process.stdout.write(`${last}\n`);
  }
}

for (let i = 0; i < appenders; i++) void appender();
