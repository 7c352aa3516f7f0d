// Prints the records of a WAL directory (type, file offset, index/term) to look at a log by hand:
//   node dist/tools/wal-dump.js <wal-dir> [--from N] [--to N]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { scanSegment, RecordType, getU64 } from '../src/wal/record.js';
import { listSegments } from '../src/wal/segment.js';
import { crc32c } from '../src/crc32c.js';

const dir = process.argv[2];
if (!dir) {
  process.stderr.write('usage: wal-dump <wal-dir> [--from N] [--to N]\n');
  process.exit(2);
}
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const from = arg('--from', 0);
const to = arg('--to', Number.MAX_SAFE_INTEGER);
const names = Object.fromEntries(Object.entries(RecordType).map(([k, v]) => [v, k]));
let chain: number | undefined;
const segs = listSegments(dir);
segs.forEach((seg, i) => {
  const path = join(dir, seg.name);
  const buf = readFileSync(path);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const scan = scanSegment(buf, path, chain, i === segs.length - 1, crc32c);
  chain = scan.chain;
  process.stdout.write(`# ${seg.name}: ${scan.records.length} records, valid to ${scan.endOffset}${scan.torn ? ' (torn tail)' : ''}\n`);
  for (const r of scan.records) {
    let detail = '';
    if (r.type === RecordType.entry || r.type === RecordType.snapshot || r.type === RecordType.hardState) {
      const a = getU64(view, r.payloadStart);
      if (r.type === RecordType.entry && (a < from || a > to)) continue;
      detail =
        r.type === RecordType.hardState
          ? `term=${a} vote=${view.getBigUint64(r.payloadStart + 8, true).toString(16)} commit=${getU64(view, r.payloadStart + 16)}`
          : `index=${a} term=${getU64(view, r.payloadStart + 8)}`;
    }
    process.stdout.write(`${String(r.offset).padStart(10)} ${names[r.type] ?? r.type} ${detail}\n`);
  }
});
