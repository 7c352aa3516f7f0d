// Recovery against damage: truncate the last segment at every byte offset (exactly the whole records before the
// cut come back, and the WAL keeps working), and flip single bits anywhere in any segment (refused, with file and
// offset of the damaged record).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Wal, WalCorruptError } from '../../src/wal/index.js';
import type { WalEntry, WalHardState, WalSnapshot } from '../../src/wal/index.js';
import { loadNative } from '../../src/wal/native.js';
import { ENTRY_HEAD_BYTES, RecordType, getU64, scanSegment } from '../../src/wal/record.js';
import type { ScannedRecord } from '../../src/wal/record.js';
import { recoverWal } from '../../src/wal/recovery.js';
import { cleanup, makeEntry, rng, tempDir } from './helpers.js';

const native = loadNative();
const crc = native.crc32c;
const SEGMENT_BYTES = 3072;
const meta = new TextEncoder().encode('truncation-test');

/** Writes a log of three-plus segments whose last one holds entries, hard states, a snapshot and an overwrite. */
async function buildLog(dir: string): Promise<void> {
  const wal = await Wal.create(dir, meta, { segmentBytes: SEGMENT_BYTES, batchBytesMax: 512 });
  const r = rng(42);
  let index = 0;
  for (let i = 0; i < 40; i++) {
    const ents = [];
    const n = 1 + Math.floor(r() * 3);
    for (let k = 0; k < n; k++) ents.push(makeEntry(++index, 1, Math.floor(r() * 90)));
    await wal.save(i % 4 === 0 ? { term: 1, vote: 1n, commit: index - 1 } : undefined, ents);
  }
  await wal.saveSnapshot({ index: index - 3, term: 1 });
  index -= 2; // overwrite the last two entries with a new term
  await wal.save({ term: 2, vote: 5n, commit: index - 1 }, [makeEntry(++index, 2, 33), makeEntry(++index, 2, 3)]);
  await wal.save(undefined, [makeEntry(++index, 2, 0)]);
  await wal.close();
}

interface Parsed {
  file: string;
  buf: Buffer;
  records: ScannedRecord[];
  end: number;
}

function parseAll(dir: string): Parsed[] {
  const names = readdirSync(dir)
    .filter((n) => n.endsWith('.wal'))
    .sort();
  let chain: number | undefined;
  return names.map((name, i) => {
    const file = join(dir, name);
    const buf = readFileSync(file);
    const scan = scanSegment(buf, file, chain, i === names.length - 1, crc);
    chain = scan.chain;
    return { file, buf, records: scan.records, end: scan.endOffset };
  });
}

/** Expected recovery of the given records (in log order) with the overwrite rule, the model side of the test. */
function expected(segs: Array<{ buf: Buffer; records: ScannedRecord[] }>) {
  const entries: WalEntry[] = [];
  let hardState: WalHardState | undefined;
  const snapshots: WalSnapshot[] = [];
  for (const { buf, records } of segs) {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (const r of records) {
      const p = r.payloadStart;
      if (r.type === RecordType.entry) {
        const index = getU64(view, p);
        entries.length = index - 1;
        entries.push({
          index,
          term: getU64(view, p + 8),
          type: view.getUint32(p + 16, true),
          data: new Uint8Array(buf.subarray(p + ENTRY_HEAD_BYTES, r.payloadEnd)),
        });
      } else if (r.type === RecordType.hardState) {
        hardState = { term: getU64(view, p), vote: view.getBigUint64(p + 8, true), commit: getU64(view, p + 16) };
      } else if (r.type === RecordType.snapshot) {
        snapshots.push({ index: getU64(view, p), term: getU64(view, p + 8) });
      }
    }
  }
  return { entries, hardState, snapshots };
}

test('truncate the last segment at every byte offset: exactly the whole records before the cut come back', async () => {
  const root = tempDir('trunc');
  const src = join(root, 'src');
  try {
    await buildLog(src);
    const segs = parseAll(src);
    assert.ok(segs.length >= 3, `want several segments, got ${segs.length}`);
    const last = segs[segs.length - 1]!;
    assert.ok(last.records.length > 5, 'last segment too small to be interesting');
    const work = join(root, 'work');
    mkdirSync(work);
    for (const s of segs.slice(0, -1)) copyFileSync(s.file, join(work, s.file.split('/').pop()!));
    const lastName = join(work, last.file.split('/').pop()!);
    let torn = 0;
    let dropped = 0;
    for (let cut = 0; cut <= last.end + 40; cut++) {
      writeFileSync(lastName, last.buf.subarray(0, cut));
      const whole = last.records.filter(
        (r) =>
          r.offset + (r.payloadEnd - r.payloadStart) + 17 <= cut &&
          (cut >= last.end || last.records.some((q) => q.offset > r.offset && q.offset <= cut) || recEnd(last, r) <= cut),
      );
      const kept = whole.length >= 2 ? [...segs.slice(0, -1), { buf: last.buf, records: whole }] : segs.slice(0, -1);
      const want = expected(kept);
      const got = recoverWal(work, { index: 0, term: 0 }, crc);
      assert.equal(got.entries, want.entries, `entries after cut at ${cut}`);
      assert.equal(got.hardState, want.hardState, `hard state after cut at ${cut}`);
      assert.equal(got.snapshots, want.snapshots, `snapshots after cut at ${cut}`);
      if (whole.length >= 2) {
        const wholeEnd = whole.length > 0 ? recEnd(last, whole[whole.length - 1]!) : 0;
        assert.is(got.tail.endOffset, wholeEnd, `tail end after cut at ${cut}`);
        assert.is(got.tail.torn, cut > wholeEnd && cut < last.end, `torn flag after cut at ${cut}`);
        if (got.tail.torn) torn++;
      } else {
        assert.is(got.dropSegments.length, 1, `cut at ${cut} inside the header drops the last segment`);
        dropped++;
      }
    }
    assert.ok(torn > 100 && dropped > 10, `torn ${torn} dropped ${dropped}`);
  } finally {
    cleanup(root);
  }
});

function recEnd(seg: { buf: Buffer }, r: ScannedRecord): number {
  const view = new DataView(seg.buf.buffer, seg.buf.byteOffset, seg.buf.byteLength);
  const len = view.getUint32(r.offset, true);
  return r.offset + ((16 + len + 1 + 7) & ~7);
}

test('after a torn tail is cut off, the WAL appends and recovers again (sampled cut offsets)', async () => {
  const root = tempDir('resume');
  const src = join(root, 'src');
  try {
    await buildLog(src);
    const segs = parseAll(src);
    const last = segs[segs.length - 1]!;
    const wantAll = expected(segs);
    for (let cut = 0; cut <= last.end; cut += 37) {
      const work = join(root, `w${cut}`);
      mkdirSync(work);
      for (const s of segs.slice(0, -1)) copyFileSync(s.file, join(work, s.file.split('/').pop()!));
      writeFileSync(join(work, last.file.split('/').pop()!), last.buf.subarray(0, cut));
      const opened = await Wal.open(work, { index: 0, term: 0 }, { segmentBytes: SEGMENT_BYTES });
      const next = opened.entries.length + 1;
      assert.ok(opened.entries.length <= wantAll.entries.length);
      await opened.wal.save({ term: 9, vote: 9n, commit: next - 1 }, [makeEntry(next, 9), makeEntry(next + 1, 9)]);
      await opened.wal.close();
      const again = await Wal.open(work, { index: 0, term: 0 }, { segmentBytes: SEGMENT_BYTES });
      assert.equal(again.entries, [...opened.entries, makeEntry(next, 9), makeEntry(next + 1, 9)], `cut ${cut}`);
      assert.equal(again.hardState, { term: 9, vote: 9n, commit: next - 1 });
      await again.wal.close();
      cleanup(work);
    }
  } finally {
    cleanup(root);
  }
});

test('flip one bit at every byte of every segment: recovery refuses, naming the file and the damaged record', async () => {
  const root = tempDir('flip');
  const dir = join(root, 'wal');
  try {
    await buildLog(dir);
    const segs = parseAll(dir);
    const r = rng(99);
    let refused = 0;
    for (let s = 0; s < segs.length; s++) {
      const seg = segs[s]!;
      // Every byte of the records, and a sample of the zero tail the last segment is preallocated with.
      const limit = s === segs.length - 1 ? Math.min(seg.buf.length, seg.end + 256) : seg.buf.length;
      for (let at = 0; at < limit; at++) {
        const bit = 1 << Math.floor(r() * 8);
        const damaged = Buffer.from(seg.buf);
        damaged[at]! ^= bit;
        writeFileSync(seg.file, damaged);
        let err: unknown;
        try {
          recoverWal(dir, { index: 0, term: 0 }, crc);
        } catch (e) {
          err = e;
        }
        if (s === segs.length - 1 && at >= seg.end && at < seg.end + 16) {
          // A set bit where the next header would go is what a header torn after its first bytes looks like;
          // cutting it off loses nothing, since every record is before it.
          assert.is(err, undefined, `flip in the would-be next header at ${at}`);
          assert.is(recoverWal(dir, { index: 0, term: 0 }, crc).tail.endOffset, seg.end);
          continue;
        }
        const owner = seg.records.filter((q) => q.offset <= at).pop()!;
        const wantOffset = at >= seg.end ? at : owner.offset;
        assert.instance(err, WalCorruptError, `flip at ${seg.file}:${at} bit ${bit} was not detected`);
        assert.is((err as WalCorruptError).file, seg.file);
        assert.is((err as WalCorruptError).offset, wantOffset, `flip at ${at}: reported ${(err as WalCorruptError).offset}`);
        refused++;
      }
      writeFileSync(seg.file, seg.buf);
    }
    assert.ok(refused > 5000, `only ${refused} flips tried`);
    // Wal.open refuses too (and leaves the files alone).
    const seg = segs[1]!;
    const damaged = Buffer.from(seg.buf);
    damaged[seg.records[2]!.payloadStart + 3]! ^= 4;
    writeFileSync(seg.file, damaged);
    try {
      await Wal.open(dir, { index: 0, term: 0 });
      assert.unreachable('opened a corrupt WAL');
    } catch (e) {
      assert.instance(e, WalCorruptError);
      assert.match((e as Error).message, seg.file);
      assert.match((e as Error).message, `offset ${seg.records[2]!.offset}`);
    }
    assert.equal(readFileSync(seg.file), damaged);
  } finally {
    cleanup(root);
  }
});

test('a missing middle segment is reported, not skipped', async () => {
  const root = tempDir('gap');
  const dir = join(root, 'wal');
  try {
    await buildLog(dir);
    const names = readdirSync(dir)
      .filter((n) => n.endsWith('.wal'))
      .sort();
    const { unlinkSync } = await import('node:fs');
    unlinkSync(join(dir, names[1]!));
    assert.throws(
      () => recoverWal(dir, { index: 0, term: 0 }, crc),
      (e: unknown) => e instanceof WalCorruptError && /missing/.test((e as Error).message),
    );
  } finally {
    cleanup(root);
  }
});

test.run();
