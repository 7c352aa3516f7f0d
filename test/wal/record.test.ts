// Framing and checksum primitives: CRC-32C implementations agree, records round-trip through scanSegment.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32c as crc32cJs } from '../../src/crc32c.js';
import { loadNative } from '../../src/wal/native.js';
import { HEADER_BYTES, RecordType, allZero, frameRecord, getU64, recordBytes, scanSegment, setU64 } from '../../src/wal/record.js';
import { WalCorruptError } from '../../src/wal/errors.js';
import { parseSegmentName, searchStartSegment, segmentName, sortSegments } from '../../src/wal/segment.js';
import { rng } from './helpers.js';

const native = loadNative();

test('crc32c: standard check value from all three implementations', () => {
  const check = new TextEncoder().encode('123456789');
  assert.is(crc32cJs(0, check), 0xe3069283);
  assert.is(native.crc32c(0, check), 0xe3069283);
  assert.is(native.crc32cSoftware(0, check), 0xe3069283);
  assert.is(crc32cJs(0, new Uint8Array(0)), 0);
});

test('crc32c: implementations agree on random data, any alignment, and chain', () => {
  const r = rng(7);
  const buf = new Uint8Array(5000);
  for (let i = 0; i < buf.length; i++) buf[i] = Math.floor(r() * 256);
  for (let trial = 0; trial < 300; trial++) {
    const start = Math.floor(r() * 100);
    const end = start + Math.floor(r() * 4000);
    const seed = Math.floor(r() * 0xffffffff) >>> 0;
    const js = crc32cJs(seed, buf, start, end);
    assert.is(native.crc32c(seed, buf, start, end), js);
    assert.is(native.crc32cSoftware(seed, buf.subarray(start, end)), js);
    const mid = start + Math.floor((end - start) / 2);
    assert.is(native.crc32c(native.crc32c(seed, buf, start, mid), buf, mid, end), js);
  }
  assert.ok(native.crc32cImpl === 'sse4.2' || native.crc32cImpl === 'software');
});

test('recordBytes: 8-byte aligned with room for the marker', () => {
  assert.is(recordBytes(0), 24);
  assert.is(recordBytes(7), 24);
  assert.is(recordBytes(8), 32);
  for (let n = 0; n < 100; n++) {
    assert.is(recordBytes(n) % 8, 0);
    assert.ok(recordBytes(n) >= HEADER_BYTES + n + 1);
  }
});

test('u64 helpers round-trip safe integers and refuse beyond 2^53', () => {
  const view = new DataView(new ArrayBuffer(8));
  for (const n of [0, 1, 0xffffffff, 0x100000000, Number.MAX_SAFE_INTEGER]) {
    setU64(view, 0, n);
    assert.is(getU64(view, 0), n);
    assert.is(view.getBigUint64(0, true), BigInt(n));
  }
  view.setBigUint64(0, 1n << 60n, true);
  assert.throws(() => getU64(view, 0), RangeError);
});

test('segment names sort and parse; search picks the newest segment starting at or before an index', () => {
  assert.is(segmentName(1, 0x20), '0000000000000001-0000000000000020.wal');
  assert.equal(parseSegmentName(segmentName(10, 300)), { name: segmentName(10, 300), seq: 10, firstIndex: 300 });
  assert.is(parseSegmentName('0000000000000001-0000000000000020.wal.tmp'), undefined);
  assert.is(parseSegmentName('junk'), undefined);
  const segs = sortSegments([segmentName(2, 50), segmentName(0, 0), segmentName(1, 20), 'x.tmp']);
  assert.equal(
    segs.map((s) => s.seq),
    [0, 1, 2],
  );
  assert.is(searchStartSegment(segs, 0), 0);
  assert.is(searchStartSegment(segs, 19), 0);
  assert.is(searchStartSegment(segs, 20), 1);
  assert.is(searchStartSegment(segs, 1000), 2);
  assert.is(searchStartSegment(sortSegments([segmentName(3, 10)]), 5), -1);
});

/** Builds a segment in memory the way the writer would: frames here, CRCs filled by the addon's initial-segment
 *  writer is file-based, so fill them with the same rules in TypeScript (independent implementation). */
function fill(buf: Uint8Array, n: number): void {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let chain = 0;
  for (let at = 0; at < n; ) {
    const len = view.getUint32(at, true);
    const size = recordBytes(len);
    const carry = buf[at + 4] === RecordType.crcCarry;
    const dataCrc = crc32cJs(carry ? 0 : chain, buf, at + HEADER_BYTES, at + size);
    view.setUint32(at + 8, dataCrc, true);
    view.setUint32(at + 12, crc32cJs(0, buf, at, at + 12), true);
    chain = carry ? view.getUint32(at + HEADER_BYTES, true) : dataCrc;
    at += size;
  }
}

test('scanSegment: reads back what was framed; zero tail is the end; damage is reported with its offset', () => {
  const buf = new Uint8Array(512);
  const view = new DataView(buf.buffer);
  let at = frameRecord(buf, view, 0, RecordType.crcCarry, 4);
  const mdAt = at;
  at = frameRecord(buf, view, at, RecordType.metadata, 3);
  buf.set([1, 2, 3], mdAt + HEADER_BYTES);
  const eAt = at;
  at = frameRecord(buf, view, at, RecordType.entry, 25);
  fill(buf, at);
  const crc = (s: number, b: Uint8Array, x: number, y: number) => native.crc32c(s, b, x, y);
  const scan = scanSegment(buf, 'seg', undefined, false, crc);
  assert.equal(
    scan.records.map((r) => [r.type, r.offset]),
    [
      [1, 0],
      [2, mdAt],
      [4, eAt],
    ],
  );
  assert.is(scan.endOffset, at);
  assert.is(scan.torn, false);
  // The chain seen by a following segment is the last record's data CRC.
  assert.is(scan.chain, view.getUint32(eAt + 8, true));
  const flipped = buf.slice();
  flipped[eAt + 20]! ^= 0x10;
  try {
    scanSegment(flipped, 'seg', undefined, true, crc);
    assert.unreachable('must throw');
  } catch (e) {
    assert.instance(e, WalCorruptError);
    assert.is((e as WalCorruptError).offset, eAt);
    assert.is((e as WalCorruptError).file, 'seg');
  }
  // A chain that does not continue the previous segment's is damage, not a torn tail.
  assert.throws(
    () => scanSegment(buf, 'seg', 12345, true, crc),
    (e: unknown) => e instanceof WalCorruptError && e.offset === 0,
  );
  const tail = buf.slice();
  tail[400] = 1;
  assert.throws(
    () => scanSegment(tail, 'seg', undefined, true, crc),
    (e: unknown) => e instanceof WalCorruptError && e.offset === 400,
  );
});

test('scanSegment: a power loss that kept a later page of the last write and lost an earlier one is a torn tail', () => {
  // Records of 1000 payload bytes over five 4 KiB pages; the last write began at `synced`.
  const buf = new Uint8Array(64 * 1024);
  const view = new DataView(buf.buffer);
  let at = frameRecord(buf, view, 0, RecordType.crcCarry, 4);
  const starts: number[] = [];
  while (at < 5 * 4096) {
    starts.push(at);
    at = frameRecord(buf, view, at, RecordType.entry, 1000);
    buf.fill(7, at - 1000 - 8, at - 8);
  }
  fill(buf, at);
  const crc = (x: number, b: Uint8Array, y: number, z: number) => native.crc32c(x, b, y, z);
  const synced = starts.find((o) => o > 4096)!; // records before it were synced
  const lost = (page: number): Uint8Array => {
    const b = buf.slice();
    b.fill(0, Math.max(synced, page * 4096), (page + 1) * 4096);
    return b;
  };
  // The page holding `synced` lost, the ones after kept: the tail is cut at `synced`.
  const a = scanSegment(lost(1), 'seg', undefined, true, crc);
  assert.is(a.torn, true);
  assert.is(a.endOffset, synced);
  // A later page lost inside a record, the following kept: cut at that record.
  const b = scanSegment(lost(3), 'seg', undefined, true, crc);
  assert.is(b.torn, true);
  assert.is(b.endOffset, starts.filter((o) => o < 3 * 4096).pop());
  // Not in the last segment: damage.
  assert.throws(
    () => scanSegment(lost(1), 'seg', undefined, false, crc),
    (e: unknown) => e instanceof WalCorruptError,
  );
  // No lost page, a flipped bit: damage, as before.
  const flipped = buf.slice();
  flipped[synced + 100]! ^= 1;
  assert.throws(
    () => scanSegment(flipped, 'seg', undefined, true, crc),
    (e: unknown) => e instanceof WalCorruptError,
  );
  // Garbage farther than one write can reach past a lost page: damage.
  const far = new Uint8Array(12 * 1024 * 1024);
  far.set(lost(1));
  far[far.length - 10] = 1;
  assert.throws(
    () => scanSegment(far, 'seg', undefined, true, crc),
    (e: unknown) => e instanceof WalCorruptError,
  );
});

test('allZero: finds a single set byte anywhere in a large range', () => {
  const big = new Uint8Array(200_000);
  assert.ok(allZero(big, 0, big.length));
  big[150_001] = 4;
  assert.not.ok(allZero(big, 0, big.length));
  assert.ok(allZero(big, 0, 150_001));
  assert.ok(allZero(big, 150_002, big.length));
});

test.run();
